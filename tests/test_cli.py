"""The ``grids`` command line end to end on the shipped PBMC data."""

import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mudata
import numpy as np
import pandas as pd
import pytest

import grids_sc as grids
from grids_sc.cli import main

GENE, GROUP = "HLA-DQB1", "CD14+ Monocytes"
KEY = f"grids_{GENE}_{GROUP}"
EXPLAIN = ["-g", GENE, "--groupby", "celltype", "--groups", GROUP, "--window", "250000"]
EXPLAIN += ["-L", "4", "--n-steps", "10", "--seed", "1"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Raw PBMC cells written to .h5mu, then ``grids fit`` and ``grids explain`` outputs."""
    d = tmp_path_factory.mktemp("cli")
    raw = grids.datasets.pbmc10k_tiles()[:1000].copy()
    raw.write(d / "raw.h5mu")
    fit = ["fit", str(d / "raw.h5mu"), "-o", str(d / "fit.h5mu"), "--binarize", "-q"]
    fit += ["--groupby", "celltype", "--max-epochs", "2", "--cis-max-epochs", "5"]
    assert main(fit) == 0
    assert main(["explain", str(d / "fit.h5mu"), "-o", str(d / "ex.h5mu"), "-q", *EXPLAIN]) == 0
    return d


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("grids: error: "), err
    return err[0]


def test_fit_writes_a_new_file_and_leaves_the_input(files):
    raw = mudata.read_h5mu(files / "raw.h5mu")
    fit = mudata.read_h5mu(files / "fit.h5mu")
    assert "grids" not in raw.uns and raw["atac"].X.max() > 1  # counts, untouched
    entry = fit.uns["grids"]["surrogates"]["surrogate"]
    assert list(entry["genes"]) == list(fit["rna"].var_names)
    assert entry["config"]["training"]["max_epochs"] == 2
    assert set(np.unique(fit["atac"].X.data)) == {1.0}  # --binarize
    assert not [p for p in os.listdir(files) if p.startswith(".")]  # no temporary files left


def test_explain_equals_the_python_api(files):
    ex = mudata.read_h5mu(files / "ex.h5mu")
    rec = ex.uns["grids"]["explain"][KEY]
    api = mudata.read_h5mu(files / "fit.h5mu")
    grids.tl.explain(
        api, GENE, L=4, groupby="celltype", groups=GROUP, window=250_000, n_steps=10, seed=1,
        progress=False,
    )  # fmt: skip
    ref = api.uns["grids"]["explain"][KEY]
    assert list(rec["selected"]) == list(ref["selected"]) and len(rec["selected"]) == 4
    assert rec["delta"]["avg_test"] == pytest.approx(ref["delta"]["avg_test"])
    assert f"{KEY}_rank" in ex["atac"].var.columns


def test_explain_from_several_starts(files, tmp_path):
    out = tmp_path / "starts.h5mu"
    argv = ["explain", str(files / "fit.h5mu"), "-o", str(out), "-q", *EXPLAIN]
    assert main([*argv, "--init", "first_order", "integrated_gradients"]) == 0
    rec = mudata.read_h5mu(out).uns["grids"]["explain"][KEY]
    assert rec["settings"]["init"] == "first_order+integrated_gradients"
    assert len(rec["restart_scores"]) == 2


def test_genes_and_gene_sets_in_one_run(files, tmp_path):
    out = tmp_path / "sets.h5mu"
    argv = ["explain", str(files / "fit.h5mu"), "-o", str(out), "-q", "-g", "CCR7"]
    argv += ["--gene-set", "pair=HLA-DQB1,ZEB2", "--groupby", "celltype", "--groups", GROUP]
    assert main([*argv, "-L", "3", "--n-steps", "5"]) == 0
    m = mudata.read_h5mu(out)
    assert list(m.uns["grids"]["explain"]) == [f"grids_CCR7_{GROUP}", f"grids_pair_{GROUP}"]
    df = grids.get.explain_df(m, f"grids_pair_{GROUP}")
    assert sorted(set(df["gene"])) == ["HLA-DQB1", "ZEB2"] and len(df) == 6


def test_attribute_inplace_then_evaluate_and_export(files, tmp_path, capsys):
    work = tmp_path / "work.h5mu"
    shutil.copy(files / "ex.h5mu", work)
    args = ["attribute", str(work), "--inplace", "-m", "saliency", *EXPLAIN[:8], "-L", "4"]
    assert main([*args, "-q"]) == 0
    keys = list(mudata.read_h5mu(work).uns["grids"]["explain"])
    assert keys == [KEY, f"saliency_{GENE}_{GROUP}"]

    out = tmp_path / "evaluated.h5mu"
    assert main(["evaluate", str(work), "-o", str(out), "--pchic", "pbmc10k", "-q"]) == 0
    table = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out), sep="\t")
    assert table["key"].tolist() == keys and table["method"].tolist() == ["grids", "saliency"]
    assert "pchic_pvalue" in table.columns and (table["L"] == 4).all()
    stored = mudata.read_h5mu(out).uns["grids"]["evaluations"]["evaluation"]
    assert list(stored["key"]) == keys
    assert main(["evaluate", str(work), "--table", str(tmp_path / "ev.csv"), "-q"]) == 0
    assert pd.read_csv(tmp_path / "ev.csv")["key"].tolist() == keys

    for name, n_head in (("l.bedpe", 2), ("l.interact.bed", 1), ("l.tsv", 1)):
        assert main(["export", str(work), "-o", str(tmp_path / name), "-q"]) == 0
        lines = (tmp_path / name).read_text().splitlines()
        assert len(lines) == n_head + 8  # 2 results x 4 peaks, one gene each
    interact = (tmp_path / "l.interact.bed").read_text().splitlines()
    assert interact[0].startswith("track type=interact")
    assert main(["export", str(work), "-o", str(tmp_path / "x.txt"), "-f", "bedpe", "-q"]) == 0
    assert (tmp_path / "x.txt").read_text().startswith("track name=")


def test_progress_and_messages_go_to_stderr(files, tmp_path, capsys):
    assert main(["export", str(files / "ex.h5mu"), "-o", str(tmp_path / "l.tsv")]) == 0
    cap = capsys.readouterr()
    assert cap.out == "" and "grids: wrote tsv links" in cap.err


def _installed_grids() -> str:
    script = Path(sys.executable).with_name("grids")
    return str(script) if script.exists() else shutil.which("grids")


def test_installed_script_runs_and_fails_cleanly(files, tmp_path):
    exe = _installed_grids()
    assert exe, "the grids console script is not installed"
    ok = subprocess.run(
        [exe, "export", str(files / "ex.h5mu"), "-o", str(tmp_path / "l.bedpe"), "-q"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    rows = [r for r in (tmp_path / "l.bedpe").read_text().splitlines() if r[0] not in "t#"]
    assert len(rows) == 4 and rows[0].split("\t")[3] == "chr6"
    bad = subprocess.run(
        [exe, "explain", str(tmp_path / "missing.h5mu"), "-o", str(tmp_path / "o.h5mu"), "-g", "X",
         "-q"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        f"grids: error: input file {str(tmp_path / 'missing.h5mu')!r} not found"
    ]
    assert "Traceback" not in bad.stderr and not (tmp_path / "o.h5mu").exists()


EX = ["explain", "{fit}", "-o", "{out}", "-q", "-g"]
AT = ["attribute", "{fit}", "-o", "{out}", "-q", "-m"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["explain", "{fit}", "-o", "{out}", "-g", "NOTAGENE", "-q"], 1, "not among the 3 genes"),
        ([*EX, GENE, "--groupby", "celltype", "--groups", "Martians"], 1, "'Martians' not found"),
        (["explain", "{fit}", "-o", "{out}", "-g", GENE, "--key", "other", "-q"], 1, "other"),
        (["explain", "{fit}", "-o", "{out}", "-q"], 1, "give --gene"),
        ([*EX, "CCR7", "--gene-set", "CCR7=ZEB2"], 1, "given twice"),
        ([*EX[:-1], "--gene-set", "empty="], 2, "NAME=GENE1,GENE2"),
        (["explain", "{fit}", "-g", GENE, "-q"], 2, "-o/--output --inplace is required"),
        (["explain", "{fit}", "-o", "{out}", "-g", GENE, "--L", "x"], 2, "invalid int value"),
        (["explain", "{fit}", "-o", "{out}", "-g", GENE, "--restarts", "0", "-q"], 1, "at least 1"),
        (["explain", "{raw}", "-o", "{out}", "-g", GENE, "-q"], 1, "surrogate"),
        ([*AT, "nope", "-g", GENE], 2, "invalid choice"),
        ([*AT, "lime", "-g", GENE, "--param", "x"], 2, "NAME=VALUE"),
        (["fit", "{raw}", "-o", "{out}", "--model", "big", "-q"], 2, "invalid choice"),
        (["fit", "{raw}", "-o", "{out}", "--train-size", "2", "-q"], 1, "train_size"),
        (["evaluate", "{fit}", "-q"], 1, "no results to evaluate"),
        (["evaluate", "{ex}", "--pchic", "{out}", "-q"], 1, "not found"),
        (["export", "{ex}", "-o", "{out}.bed", "-q"], 1, "pass --format"),
        (["export", "{ex}", "-o", "{out}.tsv", "--keys", "nope", "-q"], 1, "nope"),
        (["export", "{txt}", "-o", "{out}.tsv", "-q"], 1, "cannot read"),
        (["export", "{ex}", "-o", "/no/such/dir/l.tsv", "-q"], 1, "does not exist"),
    ],
)
def test_bad_input_exits_with_one_line(files, tmp_path, capsys, args, code, message):
    (tmp_path / "notes.txt").write_text("not hdf5\n")
    paths = {
        "fit": files / "fit.h5mu", "raw": files / "raw.h5mu", "ex": files / "ex.h5mu",
        "out": tmp_path / "out.h5mu", "txt": tmp_path / "notes.txt",
    }  # fmt: skip
    argv = [a.format(**{k: str(v) for k, v in paths.items()}) for a in args]
    assert main(argv) == code
    line = _one_error_line(capsys)
    assert message in line
    assert not (tmp_path / "out.h5mu").exists()


def test_help_lists_every_option_of_the_python_api(capsys):
    commands = {
        "fit": grids.tl.fit_surrogate,
        "explain": grids.tl.explain,
        "attribute": grids.tl.attribute,
        "evaluate": grids.tl.evaluate,
        "export": grids.io.write_links,
    }
    skip = {"mdata", "gene", "method", "path", "copy", "progress", "pchic", "method_kwargs"}
    for command, func in commands.items():
        assert main([command, "--help"]) == 0
        text = capsys.readouterr().out
        for name in inspect.signature(func).parameters:
            if name not in skip:
                assert f"--{name.replace('_', '-')}" in text, (command, name)
        assert ":ref:" not in text and ":doc:" not in text and ":func:" not in text, command
    assert main(["--help"]) == 0
    assert "grids fit" in capsys.readouterr().out
    assert main(["quickstart", "--help"]) == 0
    assert "--epochs" in capsys.readouterr().out


def test_executor_option_follows_the_api(files, tmp_path, capsys):
    assert "executor" in inspect.signature(grids.tl.explain).parameters
    assert main(["explain", "--help"]) == 0
    assert "--executor" in capsys.readouterr().out
    argv = ["explain", str(files / "fit.h5mu"), "-o", str(tmp_path / "o.h5mu"), "-q"]
    assert main([*argv, "-g", GENE, "--executor", "0"]) == 1
    assert "at least 1" in _one_error_line(capsys)


# ---- issue 17: outputs checked first, failed writes in one line, --inplace through links ----
def _no_work(*args, **kwargs):
    raise AssertionError("worked before checking the output paths")


def test_output_paths_are_checked_before_any_work(files, tmp_path, capsys, monkeypatch):
    import grids_sc.cli._commands as commands

    monkeypatch.setattr(commands, "read_h5mu", _no_work)
    monkeypatch.setattr(grids.tl, "fit_surrogate", _no_work)
    fit, ex = str(files / "fit.h5mu"), str(files / "ex.h5mu")
    before = (files / "fit.h5mu").read_bytes()
    missing = tmp_path / "missing"
    cases = [
        (["fit", str(files / "raw.h5mu"), "-o", str(missing / "x.h5mu"), "--binarize"],
         f"output directory {str(missing)!r} does not exist"),
        (["explain", fit, "-o", str(tmp_path), "-g", GENE], "is a directory"),
        (["explain", fit, "-o", fit, "-g", GENE], "is the input file; pass --inplace"),
        (["evaluate", ex, "--table", str(missing / "t.tsv")], "table directory"),
        (["evaluate", ex, "-o", str(tmp_path / "o.h5mu"), "--table", str(missing / "t.csv")],
         "table directory"),
        (["export", ex, "-o", str(missing / "l.bedpe")], "does not exist"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main([*argv, "-q"]) == 1, argv
        assert message in _one_error_line(capsys), argv
    assert (files / "fit.h5mu").read_bytes() == before and not os.listdir(tmp_path)


@pytest.mark.parametrize("error", [RuntimeError, OSError])
def test_a_failed_write_is_one_error_line_and_leaves_nothing(
    files, tmp_path, capsys, monkeypatch, error
):
    def disk_full(self, *args, **kwargs):
        raise error("Can't write data (file write failed: No space left on device)")

    monkeypatch.setattr(mudata.MuData, "write", disk_full)
    out = tmp_path / "o.h5mu"
    assert main(["evaluate", str(files / "ex.h5mu"), "-o", str(out), "-q"]) == 1
    line = _one_error_line(capsys)
    assert line == (
        f"grids: error: cannot write {str(out)!r}: Can't write data (file write failed: No "
        "space left on device)"
    )
    assert not os.listdir(tmp_path)


def test_inplace_through_a_symlink_replaces_its_target(files, tmp_path, capsys):
    import stat

    real = tmp_path / "data" / "work.h5mu"
    real.parent.mkdir()
    shutil.copy(files / "ex.h5mu", real)
    os.chmod(real, 0o640)
    link = tmp_path / "link.h5mu"
    link.symlink_to(real)
    table = str(tmp_path / "t.tsv")
    assert main(["evaluate", str(link), "--inplace", "--table", table, "-q"]) == 0
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert "evaluation" in mudata.read_h5mu(real).uns["grids"]["evaluations"]
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(os.listdir(real.parent)) == ["work.h5mu"]

    hard = tmp_path / "hard.h5mu"  # documented: the file is replaced, other links keep it
    os.link(real, hard)
    argv = ["evaluate", str(real), "--inplace", "--table", table, "--key-added", "again"]
    assert main(argv) == 0
    assert "grids: warning: " in capsys.readouterr().err
    assert "again" in mudata.read_h5mu(real).uns["grids"]["evaluations"]
    assert "again" not in mudata.read_h5mu(hard).uns["grids"]["evaluations"]
