"""The CRISPRi benchmark: E2G export, grids.tl.evaluate_crispr, datasets.crispr_benchmark,
pl.pr_curve and ``grids crispr``.

Hand-made tables check the pipeline's conventions against AUPRCs worked out by hand; on the
shared benchmark files the figures are checked against an implementation written here
differently (dictionary overlap, one threshold at a time), and a grids-sc result exported in
E2G format and read back scores the same as the result itself.
"""

import gzip

import matplotlib
import numpy as np
import pandas as pd
import pytest

import grids_sc as grids
from grids_sc._crispr import auprc, pr_points
from grids_sc.cli import main
from grids_sc.io import E2G_COLUMNS

matplotlib.use("Agg")

# ---- hand-made tables ---------------------------------------------------------------------


def _crispr(rows, **extra) -> pd.DataFrame:
    """A CRISPR table from ``(start, end, gene, regulated, valid, tss)`` rows on chr1."""
    start, end, gene, reg, valid, tss = zip(*rows)
    table = pd.DataFrame(
        {
            "chrom": "chr1",
            "chromStart": start,
            "chromEnd": end,
            "measuredGeneSymbol": gene,
            "Regulated": reg,
            "ValidConnection": valid,
            "CellType": "K562",
            "startTSS": tss,
            "endTSS": np.asarray(tss) + 1,
        }
    )
    return table.assign(**extra)


def _pred(rows, cell_type="K562_ABC") -> pd.DataFrame:
    """E2G predictions from ``(start, end, gene, score)`` rows on chr1."""
    start, end, gene, score = zip(*rows)
    return pd.DataFrame(
        {"chr": "chr1", "start": start, "end": end, "TargetGene": gene, "CellType": cell_type,
         "Score": score}
    )  # fmt: skip


# Six valid pairs of gene A (TSS 0) scored 0.9 (P), 0.8 (N), 0.7 (P), 0.6 (N) and two
# unpredicted pairs (P, N) filled with 0. Points, highest threshold first:
# (recall, precision) = (1/3, 1), (1/3, 1/2), (2/3, 2/3), (2/3, 1/2), and (1, 1/2) at the
# lowest score, left out. AUPRC = (1/3) * (1/2 + 2/3) / 2 = 7/36. Precision at 70% recall:
# the first threshold reaching it is the lowest (recall 1): 1/2.
HAND = [
    (1000, 1100, "A", "TRUE", "TRUE", 0),
    (2000, 2100, "A", "FALSE", "TRUE", 0),
    (30000, 30100, "A", "TRUE", True, 0),  # a boolean True counts as valid
    (40000, 40100, "A", "FALSE", "TRUE", 0),
    (150000, 150100, "A", "TRUE", "TRUE", 0),
    (160000, 160100, "A", "FALSE", "TRUE", 0),
    (5000, 5100, "A", "TRUE", "overlaps potential promoter", 0),  # not valid: left out
]
HAND_PRED = [
    (1050, 1060, "A", 0.9),
    (2000, 2100, "A", 0.8),
    (30050, 30300, "A", 0.7),
    (40000, 40050, "A", 0.6),
    (5000, 5100, "A", 5.0),  # an invalid pair's element
    (150000, 150100, "B", 9.0),  # another gene
]


def test_hand_made_auprc_and_precision_at_70_recall():
    table = grids.tl.evaluate_crispr(_pred(HAND_PRED), _crispr(HAND), name="abc", n_boot=0)
    assert list(table.index) == ["abc", "distance"]
    row = table.loc["abc"]
    assert row["auprc"] == pytest.approx(7 / 36)
    assert row["precision_at_70_recall"] == pytest.approx(0.5)
    assert (row["n_pairs"], row["n_positives"], row["n_predicted"]) == (6, 3, 4)
    assert np.isnan(row["auprc_low"]) and np.isnan(row["auprc_high"])  # no bootstrap
    # the baseline: distances 1050, 2050, 30050, 40050, 150050, 160050 (P N P N P N):
    # points (1/3, 1), (1/3, 1/2), (2/3, 2/3), (2/3, 1/2), (1, 3/5), [(1, 1/2) left out]
    base = table.loc["distance"]
    assert base["auprc"] == pytest.approx(7 / 36 + (1 / 3) * (1 / 2 + 3 / 5) / 2)
    assert base["precision_at_70_recall"] == pytest.approx(3 / 5)
    # bins: 0-20 kb holds a P (1050) and an N (2050), the P first: one point left: 0
    assert base["auprc_0_20kb"] == 0.0 and row["auprc_0_20kb"] == 0.0
    # 100-2500 kb: P unpredicted (0), N unpredicted (0): one tied threshold, area 0
    assert row["auprc_100_2500kb"] == 0.0


def test_ties_are_one_threshold_and_sklearn_differs():
    # scores 3 (P), 2 (P, N tied), 1 (N), 0 (P): points (1/3, 1), (2/3, 2/3), (2/3, 1/2)
    score = np.array([3.0, 2.0, 2.0, 1.0, 0.0])
    label = np.array([True, True, False, False, True])
    t, p, r = pr_points(score, label)
    assert t.tolist() == [3, 2, 1, 0]
    np.testing.assert_allclose(p, [1, 2 / 3, 1 / 2, 3 / 5])
    np.testing.assert_allclose(r, [1 / 3, 2 / 3, 2 / 3, 1])
    assert auprc(score, label) == pytest.approx((1 / 3) * (1 + 2 / 3) / 2)
    from sklearn.metrics import average_precision_score

    # average precision is a step sum from recall 0 over all points: another number
    assert average_precision_score(label, score) != pytest.approx(auprc(score, label))


def test_overlapping_elements_are_aggregated():
    crispr = _crispr([(1000, 2000, "A", "TRUE", "TRUE", 0), (5000, 6000, "A", "FALSE", "TRUE", 0)])
    pred = _pred(
        [
            (900, 1100, "A", 1.0),
            (1500, 1600, "A", 3.0),
            (2000, 2500, "A", 0.5),  # shares the element's end base: overlaps (closed ranges)
            (2001, 2500, "A", 100.0),  # does not overlap
            (1200, 1300, "B", 100.0),  # another gene
        ]
    )
    expected = {"sum": 4.5, "max": 3.0, "mean": 1.5}
    for agg, value in expected.items():
        pairs = grids.tl.crispr_pairs(pred, crispr, aggregate=agg, fill=-1.0, name="p")
        assert pairs["p"].tolist() == [value, -1.0]
        assert pairs["predicted"].tolist() == [True, False]
    with pytest.raises(ValueError, match="aggregate"):
        grids.tl.crispr_pairs(pred, crispr, aggregate="median")


def test_cell_type_mapping():
    rows = [
        (1000, 1100, "A", "TRUE", "TRUE", 0),
        (2000, 2100, "A", "FALSE", "TRUE", 0),
        (3000, 3100, "A", "TRUE", "TRUE", 0),
        (4000, 4100, "A", "FALSE", "TRUE", 0),
    ]
    crispr = _crispr(rows).assign(CellType=["K562", "K562", "GM12878", "GM12878"])
    pred = _pred([(1000, 1100, "A", 1.0), (3000, 3100, "A", 2.0)], cell_type="K562_ABC")
    # one prediction cell type, no mapping: every pair, whatever its cell type
    pairs = grids.tl.crispr_pairs(pred, crispr, name="p")
    assert len(pairs) == 4 and pairs["p"].tolist() == [1.0, 0.0, 2.0, 0.0]
    # mapped to K562: only K562 pairs, and only predictions matched there
    pairs = grids.tl.crispr_pairs(pred, crispr, name="p", cell_type="K562")
    assert pairs["CellType"].tolist() == ["K562", "K562"] and pairs["p"].tolist() == [1.0, 0.0]
    pairs = grids.tl.crispr_pairs(pred, crispr, name="p", cell_type={"K562_ABC": "GM12878"})
    assert pairs["CellType"].tolist() == ["GM12878"] * 2 and pairs["p"].tolist() == [2.0, 0.0]
    # several prediction cell types: matched by name
    two = pd.concat([pred.assign(CellType="K562"), pred.assign(CellType="GM12878", Score=[5, 6])])
    pairs = grids.tl.crispr_pairs(two, crispr, name="p")
    assert pairs["p"].tolist() == [1.0, 0.0, 6.0, 0.0]
    with pytest.raises(ValueError, match="dict"):
        grids.tl.crispr_pairs(two, crispr, cell_type="K562")
    with pytest.raises(ValueError, match="maps to"):
        grids.tl.crispr_pairs(pred, crispr, cell_type="HepG2")


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    n = 400
    label = rng.random(n) < 0.15
    rows = [(i * 1000, i * 1000 + 100, "A", "TRUE" if y else "FALSE", "TRUE", 0)
            for i, y in enumerate(label)]  # fmt: skip
    pred = _pred([(i * 1000, i * 1000 + 100, "A", float(y) + rng.normal())
                  for i, y in enumerate(label)])  # fmt: skip
    a = grids.tl.evaluate_crispr(pred, _crispr(rows), n_boot=200, seed=3)
    b = grids.tl.evaluate_crispr(pred, _crispr(rows), n_boot=200, seed=3)
    pd.testing.assert_frame_equal(a, b)
    for name in ("grids", "distance"):
        lo, mid, hi = a.loc[name, ["auprc_low", "auprc", "auprc_high"]]
        assert lo < mid < hi and hi - lo < 0.4
    assert a.loc["grids", "auprc"] > a.loc["grids", "n_positives"] / n  # better than chance


def test_bad_input_is_named():
    crispr, pred = _crispr(HAND), _pred(HAND_PRED)
    with pytest.raises(ValueError, match="lacks columns"):
        grids.tl.evaluate_crispr(pred, crispr.drop(columns="Regulated"))
    with pytest.raises(KeyError, match="powerlaw"):
        grids.tl.evaluate_crispr(pred, crispr, score="powerlaw.Score")
    with pytest.raises(ValueError, match="both"):
        grids.tl.evaluate_crispr(pred, crispr.assign(Regulated="FALSE"))
    with pytest.raises(ValueError, match="TRUE/FALSE"):
        grids.tl.evaluate_crispr(pred, crispr.assign(Regulated="maybe"))
    with pytest.raises(ValueError, match="more than once"):
        grids.tl.evaluate_crispr(pred, pd.concat([crispr, crispr.iloc[:1]]))
    with pytest.raises(FileNotFoundError, match="not found"):
        grids.tl.evaluate_crispr("/no/such/file.tsv", crispr)
    with pytest.raises(ValueError, match="taken"):
        grids.tl.evaluate_crispr(pred, crispr, name="distance")


# ---- an independent implementation (for the shared benchmark files) -------------------------


def _independent_scores(pred, crispr, score, agg=sum, fill=0.0):
    """Per valid pair the summed scores of same-gene predicted elements it overlaps."""
    valid = crispr[crispr["ValidConnection"].astype(str) == "TRUE"]
    by_gene = {}
    for chrom, s, e, g, v in zip(pred["chr"], pred["start"], pred["end"], pred["TargetGene"],
                                 pred[score]):  # fmt: skip
        by_gene.setdefault((chrom, g), []).append((s, e, v))
    out = []
    for chrom, s, e, g in zip(valid["chrom"], valid["chromStart"], valid["chromEnd"],
                              valid["measuredGeneSymbol"]):  # fmt: skip
        hits = [v for ps, pe, v in by_gene.get((chrom, g), []) if not (pe < s or ps > e)]
        out.append(agg(hits) if hits else fill)
    labels = valid["Regulated"].astype(str).str.upper().eq("TRUE").to_numpy()
    return np.array(out, dtype=float), labels


def _independent_curve(score, label):
    """AUPRC and precision at 70% recall, one threshold at a time."""
    points = []
    n_pos = label.sum()
    for t in sorted(set(score.tolist()), reverse=True):
        called = score >= t
        tp = int((called & label).sum())
        points.append((tp / n_pos, tp / int(called.sum())))
    at70 = next(p for r, p in points if r >= 0.7)
    kept = points[:-1]  # the lowest score's point is left out
    area = sum((r1 - r0) * (p0 + p1) / 2 for (r0, p0), (r1, p1) in zip(kept, kept[1:]))
    return area, at70


def _shared(name):
    try:
        return grids.datasets.crispr_benchmark(name)
    except grids.datasets.SharedDataNotFound as err:
        pytest.skip(str(err))


def test_abc_on_fulco2019_matches_an_independent_implementation(capsys):
    pred, crispr = _shared("ABC_Fulco2019"), _shared("Fulco2019")
    bounds = grids.datasets.gene_bounds()  # the pipeline's gene universe gives the TSSs
    table = grids.tl.evaluate_crispr(pred, crispr, score="powerlaw.Score", name="ABC",
                                     n_boot=200, genes=bounds)  # fmt: skip
    score, label = _independent_scores(pred, crispr, "powerlaw.Score")
    area, at70 = _independent_curve(score, label)
    valid = crispr[crispr["ValidConnection"] == "TRUE"]
    strand = bounds.set_index("gene")["strand"]
    tss = [bounds.set_index("gene").loc[g, "start" if strand[g] == "+" else "end"]
           for g in valid["measuredGeneSymbol"]]  # fmt: skip
    dist = np.abs((valid["chromStart"] + valid["chromEnd"]).to_numpy() / 2 - np.array(tss))
    d_area, d_at70 = _independent_curve(-dist, label)
    base = table.loc["distance"]
    assert base["auprc"] == pytest.approx(d_area, abs=1e-12)
    assert base["precision_at_70_recall"] == pytest.approx(d_at70, abs=1e-12)
    row = table.loc["ABC"]
    assert (row["n_pairs"], row["n_positives"]) == (len(label), label.sum()) == (3852, 101)
    assert row["auprc"] == pytest.approx(area, abs=1e-12)
    assert row["precision_at_70_recall"] == pytest.approx(at70, abs=1e-12)
    assert row["auprc_low"] < row["auprc"] < row["auprc_high"]
    assert row["auprc"] > table.loc["distance", "auprc"]  # ABC beats distance here
    with capsys.disabled():
        print(f"\nABC on Fulco 2019: {row['auprc']:.4f} (independent {area:.4f}), "
              f"precision at 70% recall {row['precision_at_70_recall']:.4f} ({at70:.4f}); "
              f"distance {base['auprc']:.4f} (independent {d_area:.4f}), precision at 70% "
              f"recall {base['precision_at_70_recall']:.4f} ({d_at70:.4f})")  # fmt: skip


def test_distance_baseline_on_k562_training_matches_an_independent_implementation(capsys):
    crispr = _shared("training_K562")
    pred = _pred([(0, 1, "none", 1.0)])  # predicts nothing: only the baseline matters
    table = grids.tl.evaluate_crispr(pred, crispr, n_boot=0)
    label = crispr["Regulated"].to_numpy(dtype=bool)
    area, at70 = _independent_curve(-crispr["distanceToTSS"].to_numpy(dtype=float), label)
    base = table.loc["distance"]
    assert (base["n_pairs"], base["n_positives"]) == (10356, 471)
    assert base["auprc"] == pytest.approx(area, abs=1e-12)
    assert base["precision_at_70_recall"] == pytest.approx(at70, abs=1e-12)
    # the gene universe's TSS (start on +, end on -) gives the same distances to ~1 bp
    bounds = grids.datasets.gene_bounds().drop_duplicates("gene").set_index("gene")
    genes = crispr["measuredGeneSymbol"]
    tss = np.where(genes.map(bounds["strand"]) == "+", genes.map(bounds["start"]),
                   genes.map(bounds["end"]))  # fmt: skip
    centre = (crispr["chromStart"] + crispr["chromEnd"]) / 2
    dist = np.abs(centre.to_numpy() - tss)
    assert np.abs(dist - crispr["distanceToTSS"]).max() <= 1.5
    with_bounds = grids.tl.evaluate_crispr(
        pred, crispr, n_boot=0, genes=grids.datasets.gene_bounds()
    )
    area_b, at70_b = _independent_curve(-dist, label)
    assert with_bounds.loc["distance", "auprc"] == pytest.approx(area_b, abs=1e-12)
    assert with_bounds.loc["distance", "precision_at_70_recall"] == pytest.approx(at70_b)
    assert abs(area_b - area) < 0.01
    for lo, hi, tag in (
        (0, 20e3, "0_20kb"),
        (20e3, 100e3, "20_100kb"),
        (100e3, 2.5e6, "100_2500kb"),
    ):
        d = crispr["distanceToTSS"].to_numpy(dtype=float)
        inside = ((d >= lo) if lo == 0 else (d > lo)) & (d <= hi)
        assert base[f"auprc_{tag}"] == pytest.approx(
            _independent_curve(-d[inside], label[inside])[0]
        )
    with capsys.disabled():
        print(f"\ndistance on K562 training: {base['auprc']:.4f} (independent {area:.4f}; "
              f"gene-bounds TSS {area_b:.4f}), precision at 70% recall "
              f"{base['precision_at_70_recall']:.4f}")  # fmt: skip


def test_crispr_benchmark_without_shared_data(monkeypatch, tmp_path):
    from grids_sc.datasets import _shared

    monkeypatch.setattr(_shared, "_candidates", lambda: [tmp_path])
    with pytest.raises(grids.datasets.SharedDataNotFound, match="GRIDS_SHARED_DATA"):
        grids.datasets.crispr_benchmark("Fulco2019")


def test_cli_help_lists_every_option(capsys):
    import inspect

    assert main(["crispr", "--help"]) == 0
    text = capsys.readouterr().out
    for name in inspect.signature(grids.tl.evaluate_crispr).parameters:
        if name not in ("predictions", "crispr"):
            assert f"--{name.replace('_', '-')}" in text, name
    assert main(["export", "--help"]) == 0
    assert "e2g" in capsys.readouterr().out


def test_crispr_benchmark_loader():
    table = _shared("training_K562")
    assert len(table) == 10356 and table["Regulated"].sum() == 471
    assert table["ValidConnection"].dtype == object and (table["ValidConnection"] == "TRUE").all()
    held = grids.datasets.read_shared("crispr_heldout_5_cell_types")
    assert len(held) == 4378 and held["CellType"].nunique() == 5
    with pytest.raises(KeyError, match="known"):
        grids.datasets.crispr_benchmark("nope")


# ---- a grids-sc result in E2G format ------------------------------------------------------

GENES = ["gene3", "gene1"]
WINDOW = 250_000


@pytest.fixture(scope="module")
def explained(sim_fitted):
    m = sim_fitted.copy()
    grids.tl.explain(m, GENES, L=4, window=WINDOW, n_steps=20, progress=False)
    grids.tl.attribute(m, GENES[0], "saliency", L=4, window=WINDOW, progress=False)
    return m


def _sim_crispr(m) -> pd.DataFrame:
    """Every peak within the window of each explained gene, a planted CRE of it positive."""
    var, rna = m["atac"].var, m["rna"].var
    rows = []
    for gene in GENES:
        tss = int(rna.loc[gene, "tss"])
        near = var[(var["chrom"] == rna.loc[gene, "chrom"]) & ((var["start"] - tss).abs() < WINDOW)]
        planted = (near["cre_gene"] == gene) & (near["cre_logic"] != "decoy")
        rows.append(pd.DataFrame({
            "chrom": near["chrom"].astype(str), "chromStart": near["start"],
            "chromEnd": near["end"], "measuredGeneSymbol": gene,
            "Regulated": np.where(planted, "TRUE", "FALSE"), "ValidConnection": "TRUE",
            "CellType": "sim", "startTSS": tss, "endTSS": tss + 1,
        }))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def test_e2g_export_reads_back_and_scores_the_same(explained, tmp_path):
    m = explained
    keys = [f"grids_{g}_all" for g in GENES]
    path = tmp_path / "grids.e2g.tsv.gz"
    grids.io.write_links(m, path, keys=keys, format="e2g")
    with gzip.open(path, "rt") as fh:
        header = fh.readline().rstrip("\n").split("\t")
    # the columns CRISPR_comparison reads (chr start end TargetGene CellType and a score),
    # in the ENCODE E2G order, then the score columns
    assert header == [*E2G_COLUMNS, "Score", "rank", "alone", "restored", "score", "frequency"]
    back = pd.read_csv(path, sep="\t")
    table = grids.io.e2g_table(m, keys)
    assert len(back) == 8 and set(back["TargetGene"]) == set(GENES)
    assert (back["CellType"] == "all").all()
    np.testing.assert_allclose(back["Score"], -back["alone"])  # close/down: the drop alone
    for gene in GENES:  # one TSS per gene, the RNA var's
        assert set(back.loc[back["TargetGene"] == gene, "TargetGeneTSS"]) == {
            int(m["rna"].var.loc[gene, "tss"])
        }
    assert set(back["class"]) <= {"promoter", "genic", "distal"}
    assert (back["name"] == back["class"] + "|" + back["chr"] + ":" + back["start"].astype(str)
            + "-" + back["end"].astype(str)).all()  # fmt: skip
    crispr = _sim_crispr(m)
    from_file = grids.tl.evaluate_crispr(path, crispr, n_boot=50)
    from_mdata = grids.tl.evaluate_crispr(m, crispr, keys=keys, n_boot=50)
    from_table = grids.tl.evaluate_crispr(table, crispr, n_boot=50)
    pd.testing.assert_frame_equal(from_file, from_mdata)
    pd.testing.assert_frame_equal(from_table, from_mdata)
    assert from_mdata.loc["grids", "n_predicted"] == 8
    # the planted CREs: GRIDS's selections rank them above the distance to the TSS
    assert from_mdata.loc["grids", "auprc"] > from_mdata.loc["distance", "auprc"]


def test_e2g_export_needs_one_predictor(explained, tmp_path):
    with pytest.raises(ValueError, match="one method"):
        grids.io.write_links(explained, tmp_path / "x.e2g", format="e2g")
    out = tmp_path / "sal.e2g"
    grids.io.write_links(explained, out, keys="saliency_gene3_all", format="e2g", value="score")
    back = pd.read_csv(out, sep="\t")
    np.testing.assert_allclose(back["Score"], back["score"])


def test_pr_curve_draws_predictors_and_baseline(explained):
    import matplotlib.pyplot as plt

    crispr = _sim_crispr(explained)
    keys = [f"grids_{g}_all" for g in GENES]
    pairs = grids.tl.crispr_pairs(explained, crispr, keys=keys)
    sal = grids.tl.crispr_pairs(explained, crispr, keys="saliency_gene3_all", name="saliency")
    fig, ax = plt.subplots()
    out = grids.pl.pr_curve([pairs, sal], ax=ax, show=False)
    assert out is ax
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    table = grids.tl.evaluate_crispr(explained, crispr, keys=keys, n_boot=0)
    assert labels[0] == f"GRIDS (AUPRC {table.loc['grids', 'auprc']:.2f})"
    assert labels[1].startswith("Saliency") and labels[2].startswith("Distance to TSS")
    plt.close(fig)
    with pytest.raises(ValueError, match="different pairs"):
        grids.pl.pr_curve([pairs, sal.iloc[:-1]], show=False)


def test_cli_export_e2g_and_crispr(explained, tmp_path, capsys):
    h5 = tmp_path / "ex.h5mu"
    explained.write(h5)
    crispr = tmp_path / "crispr.tsv"
    _sim_crispr(explained).to_csv(crispr, sep="\t", index=False)
    e2g = tmp_path / "links.tsv.gz"  # .tsv.gz: E2G by its suffix
    argv = ["export", str(h5), "-o", str(e2g), "--keys", *[f"grids_{g}_all" for g in GENES]]
    assert main([*argv, "-q"]) == 0
    out = tmp_path / "table.tsv"
    assert main(["crispr", str(e2g), str(crispr), "--n-boot", "20", "-t", str(out), "-q"]) == 0
    table = pd.read_csv(out, sep="\t", index_col="predictor")
    ref = grids.tl.evaluate_crispr(e2g, crispr, n_boot=20)
    np.testing.assert_allclose(table["auprc"], ref["auprc"])
    assert main(["crispr", str(e2g), str(crispr), "--score", "nope", "-q"]) == 1
    assert "nope" in capsys.readouterr().err
