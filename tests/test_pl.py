"""grids.pl: every plot drawn headless and checked for what it drew."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mudata  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

import grids_sc as grids  # noqa: E402
from grids_sc.pl import METHOD_COLORS  # noqa: E402

GENE = "gene1"
WINDOW = 250_000


@pytest.fixture(scope="module")
def results(sim_fitted):
    """A GRIDS result (two restarts) and two baselines for one gene, fidelity and evaluation."""
    m = sim_fitted.copy()
    L = int((m["atac"].var["cre_gene"] == GENE).sum())
    grids.tl.explain(m, GENE, L=L, window=WINDOW, restarts=2, n_steps=40, progress=False)
    for method in ("saliency", "correlation"):
        grids.tl.attribute(m, GENE, method, L=L, window=WINDOW, progress=False)
    grids.tl.surrogate_fidelity(m)
    grids.tl.evaluate(m)
    return m


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


KEYS = [f"grids_{GENE}_all", f"saliency_{GENE}_all", f"correlation_{GENE}_all"]


def _bars(ax, label):
    return [c for c in ax.containers if c.get_label() == label]


# ---------------------------------------------------------------------------- track


def test_track_draws_window_peaks_and_selection(results):
    m = results
    var = m["atac"].var
    axs = grids.pl.track(m, KEYS, truth=False)
    assert len(axs) == 1 + len(KEYS)
    gene_ax = axs[0]
    assert any(p.get_gid() == f"gene:{GENE}" for p in gene_ax.patches)
    g = m["rna"].var.loc[GENE]
    assert axs[-1].get_xlim() == pytest.approx((g["start"] - WINDOW, g["end"] + WINDOW))
    for a, key in zip(axs[1:], KEYS):
        (peaks,) = _bars(a, "peaks")
        (sel,) = _bars(a, "selected")
        n_window = int(var[f"{key}_score"].notna().sum())
        n_sel = int((var[f"{key}_rank"] > 0).sum())
        assert len(peaks) + len(sel) == n_window
        assert len(sel) == n_sel
        assert all(to_hex(p.get_edgecolor()) == "#000000" for p in sel)
        markers = [c for c in a.collections if c.get_label() == "selected peak"]
        assert len(markers) == 1 and len(markers[0].get_offsets()) == n_sel
        method = m.uns["grids"]["explain"][key]["settings"]["method"]
        assert to_hex(markers[0].get_facecolor()[0]) == METHOD_COLORS[method].lower()
        # bar heights are the stored scores, selected bars at the selected peaks' centres
        order = np.argsort(var[f"{key}_rank"].to_numpy())[-n_sel:]
        centres = sorted(p.get_x() + p.get_width() / 2 for p in sel)
        want = sorted(((var["start"] + var["end"]) / 2).to_numpy()[order])
        assert centres == pytest.approx(want)
    labels = [a.get_ylabel() for a in axs[1:]]
    assert labels == ["GRIDS", "Saliency", "Correlation"]
    assert len(axs[0].figure.axes) == len(axs) + 1  # the score colour bar
    assert "peak score" in axs[0].figure.axes[-1].get_ylabel()


def test_track_marks_pchic_tiles(results):
    m = results
    key = KEYS[0]
    var = m["atac"].var
    window = var.index[var[key + "_score"].notna()]
    tiles = window[::10]
    pchic = pd.DataFrame(
        {
            "tile": tiles,
            "gene": GENE,
            "celltype": "all",
            "pchic_significant": np.arange(len(tiles)) % 3 == 0,
        }
    )
    axs = grids.pl.track(m, [key], pchic=pchic, truth=False)
    assert len(axs) == 3
    (sig,) = _bars(axs[1], "significant")
    (tested,) = _bars(axs[1], "tested")
    assert len(sig) == int(pchic["pchic_significant"].sum())
    assert len(sig) + len(tested) == len(tiles)
    assert "PCHi-C" in axs[1].get_ylabel()
    with pytest.warns(UserWarning, match="no rows"):
        axs = grids.pl.track(m, [key], pchic=pchic.assign(celltype="B cells"), truth=False)
    assert len(axs) == 2


def test_track_draws_planted_cres_of_simulated_data(results):
    var = results["atac"].var
    axs = grids.pl.track(results, KEYS[0])  # simulated: the planted row by default
    assert len(axs) == 3 and "planted" in axs[1].get_ylabel()
    planted = var[var["cre_gene"].astype(str) == GENE]
    drawn = {c.get_label(): c for c in axs[1].containers}
    for logic, n in planted["cre_logic"].astype(str).value_counts().items():
        bars = drawn[f"{logic} ({n})"]
        assert len(bars) == n
        assert to_hex(bars[0].get_facecolor()) == grids.pl._style.LOGIC_COLORS[logic].lower()
    with pytest.raises(ValueError, match="cre_gene"):
        m = results.copy()
        m["atac"].var = m["atac"].var.drop(columns=["cre_gene"])
        grids.pl.track(m, KEYS[0], truth=True)


def test_track_checks_its_input(results):
    with pytest.raises(KeyError, match="not in mdata.uns"):
        grids.pl.track(results, "nope")
    other = results.copy()
    grids.tl.attribute(other, "gene2", "random", L=3, window=WINDOW, progress=False)
    with pytest.raises(ValueError, match="different genes"):
        grids.pl.track(other, [KEYS[0], "random_gene2_all"])
    with pytest.raises(ValueError, match="not explained"):
        grids.pl.track(results, KEYS[0], gene="gene2")


def test_track_into_given_axes_and_unchanged_data(results):
    before_var = results["atac"].var.copy()
    fig, (a, b) = plt.subplots(1, 2, figsize=(14, 5))
    axs = grids.pl.track(results, KEYS[:2], ax=a, truth=False)
    assert all(x.figure is fig for x in axs) and len(axs) == 3
    assert a not in fig.axes and b in fig.axes
    pd.testing.assert_frame_equal(results["atac"].var, before_var)


# ---------------------------------------------------------------------------- delta, trace


def test_delta_draws_every_cell_by_split(results):
    key = KEYS[0]
    rec = results.uns["grids"]["explain"][key]
    a = grids.pl.delta(results, key)
    split = np.asarray(rec["per_cell"]["split"]).astype(str)
    pts = {c.get_label().split(" (")[0]: c for c in a.collections}
    assert len(pts["search cells"].get_offsets()) == (split == "train").sum()
    held = pts["held-out cells"]
    assert len(held.get_offsets()) == (split == "test").sum()
    assert to_hex(held.get_facecolor()[0]) == METHOD_COLORS["grids"].lower()
    before = np.asarray(rec["per_cell"]["before"]).reshape(len(split), -1).mean(1)
    assert np.allclose(held.get_offsets()[:, 0], before[split == "test"])
    labels = [t.get_text() for t in a.get_legend().get_texts()]
    rel = rec["delta"]["rel_of_means_test"]
    assert any(f"{rel:+.1%}" in t for t in labels)
    axs = grids.pl.delta(results, KEYS[:2])
    assert len(axs) == 2 and "Saliency" in axs[1].get_title()
    with pytest.raises(ValueError, match="panel"):
        grids.pl.delta(results, KEYS[:2], ax=axs[0])


def test_trace_lines_restarts_and_baselines(results):
    rec = results.uns["grids"]["explain"][KEYS[0]]
    a = grids.pl.trace(results, KEYS)
    lines = {ln.get_label(): ln for ln in a.get_lines()}
    main = lines["GRIDS"]
    assert np.allclose(main.get_ydata(), rec["trace"])
    faint = [ln for ln in a.get_lines() if ln.get_alpha() == pytest.approx(0.3)]
    assert len(faint) == 1  # two restarts: one not kept
    base = lines["Saliency (no search)"]
    want = results.uns["grids"]["explain"][KEYS[1]]["delta"]["rel_of_means_train"]
    assert base.get_ydata()[0] == pytest.approx(want)
    assert "Correlation (no search)" in lines
    with pytest.raises(ValueError, match="no search trace|none of these"):
        grids.pl.trace(results, KEYS[1:])


# ---------------------------------------------------------------------------- compare


def test_compare_bars_per_method(results):
    df = grids.tl.evaluate(results, KEYS)
    axs = grids.pl.compare(df)
    assert len(axs) == 3  # pchic_enrichment left out: evaluated without pchic
    for a in axs:
        bars = a.patches
        assert len(bars) == 3
        assert [to_hex(b.get_facecolor()) for b in bars] == [
            METHOD_COLORS[m].lower() for m in ("grids", "saliency", "correlation")
        ]
    assert [t.get_text() for t in axs[0].get_xticklabels()] == ["GRIDS", "Saliency", "Correlation"]
    heights = [b.get_height() for b in axs[0].patches]
    want = df.set_index("method").loc[["grids", "saliency", "correlation"], "rel_delta"]
    assert heights == pytest.approx(want.to_numpy())
    axs = grids.pl.compare(results, metrics=["precision", "recall"])  # the stored table
    assert len(axs) == 2 and axs[0].get_ylim()[1] == pytest.approx(1.1)
    with pytest.raises(KeyError, match="pchic_enrichment"):
        grids.pl.compare(df, metrics=["rel_delta", "pchic_enrichment"])


# ---------------------------------------------------------------------------- interactions


def test_interactions_points_and_diagonal(results):
    key = KEYS[0]
    rec = results.uns["grids"]["explain"][key]
    a = grids.pl.interactions(results, key)
    (pts,) = [c for c in a.collections if "selected peaks" in str(c.get_label())]
    xy = pts.get_offsets()
    assert np.allclose(xy[:, 0], -np.asarray(rec["per_peak"]["alone"]))
    assert np.allclose(xy[:, 1], np.asarray(rec["per_peak"]["restored"]))
    diag = [ln for ln in a.get_lines() if ln.get_label().startswith("independent")]
    assert len(diag) == 1 and np.allclose(diag[0].get_xdata(), diag[0].get_ydata())
    ranks = {t.get_text() for t in a.texts}
    assert {str(r) for r in rec["per_peak"]["rank"]} <= ranks
    a = grids.pl.interactions(results, key, label="peak")
    assert set(np.asarray(rec["per_peak"]["peak"]).astype(str)) <= {t.get_text() for t in a.texts}


# ---------------------------------------------------------------------------- fidelity


def test_fidelity_stores_predictions_and_draws_them(results, tmp_path):
    m = results
    entry = m.uns["grids"]["fidelity"]["surrogate"]
    preds = entry["predictions"]
    n_test, n_genes = int(entry["n_test"][0]), len(entry["gene"])
    assert preds["observed"].shape == preds["surrogate"].shape == (n_test, n_genes)
    assert preds["surrogate"].dtype == np.float32
    axs = grids.pl.fidelity(m)
    assert len(axs) == 4  # 8 genes: the 90th, 50th and 10th percentile of r
    (genes_pts,) = [c for c in axs[0].collections if str(c.get_label()).startswith("genes")]
    assert np.allclose(genes_pts.get_offsets()[:, 1], entry["pearson_surrogate"])
    axs = grids.pl.fidelity(m, genes=["gene0"])
    per_cell = {c.get_label().split(" (")[0]: c for c in axs[1].collections}
    j = list(preds["gene"]).index("gene0")
    assert np.allclose(per_cell["surrogate"].get_offsets()[:, 1], preds["surrogate"][:, j])
    assert len(per_cell["ridge"].get_offsets()) == n_test
    # stored predictions survive writing and reading, and every plot reads the file's results
    path = tmp_path / "m.h5mu"
    m.write(path)
    back = mudata.read_h5mu(path)
    axs = grids.pl.fidelity(back, genes="gene0")
    assert len(axs) == 2
    assert len(grids.pl.track(back, KEYS, truth=False)) == 1 + len(KEYS)
    assert len(grids.pl.trace(back, KEYS).get_lines()) >= 3
    assert len(grids.pl.delta(back, KEYS)) == len(KEYS)
    assert len(grids.pl.compare(back)) == 3
    grids.pl.interactions(back, KEYS[0])


def test_fidelity_prediction_options(fitted):
    grids.tl.surrogate_fidelity(fitted, predictions=["gene3", "gene0"], ridge_alphas=(100.0,))
    entry = fitted.uns["grids"]["fidelity"]["surrogate"]
    assert list(entry["predictions"]["gene"]) == ["gene0", "gene3"]
    with pytest.raises(KeyError, match="not stored"):
        grids.pl.fidelity(fitted, genes="gene1")
    assert len(grids.pl.fidelity(fitted, genes=[])) == 1
    grids.tl.surrogate_fidelity(fitted, predictions=False, ridge_alphas=(100.0,))
    assert "predictions" not in fitted.uns["grids"]["fidelity"]["surrogate"]
    with pytest.raises(KeyError, match="does not model"):
        grids.tl.surrogate_fidelity(fitted, predictions=["nope"])
    with pytest.raises(KeyError, match="surrogate_fidelity"):
        grids.pl.fidelity(fitted, key="other")


# ---------------------------------------------------------------------------- mask


def _overlay(a):
    return np.asarray(a.get_images()[-1].get_array())


def test_mask_from_indices_mask_and_record():
    image = np.random.default_rng(0).random(784)
    a = grids.pl.mask([5, 100, 783], image=image)
    over = _overlay(a)
    assert over.shape == (28, 28, 4)
    assert (over[..., 3] > 0).sum() == 3 and over[0, 5, 3] > 0 and over[27, 27, 3] > 0
    assert np.allclose(a.get_images()[0].get_array(), image.reshape(28, 28))
    bool_mask = np.zeros((28, 28), dtype=bool)
    bool_mask[10, 3:9] = True
    a = grids.pl.mask(bool_mask)
    assert (_overlay(a)[..., 3] > 0).sum() == 6 and "6 selected" in a.get_title()
    a = grids.pl.mask({"selected_index": np.array([1, 2, 3, 4])}, ranks=True)
    assert (_overlay(a)[..., 3] > 0).sum() == 4
    assert len(a.figure.axes) == 2  # the rank colour bar
    with pytest.raises(ValueError, match="pixel indices"):
        grids.pl.mask([784])
    with pytest.raises(ValueError, match="image has"):
        grids.pl.mask([1], image=np.zeros(10))
    with pytest.raises(ValueError, match="duplicate"):
        grids.pl.mask([1, 1])


# ---------------------------------------------------------------------------- show and save


def test_show_and_save_follow_scanpy(results, tmp_path, monkeypatch):
    import scanpy as sc

    figdir = sc.settings.figdir
    sc.settings.figdir = tmp_path
    try:
        key = KEYS[0]
        a = grids.pl.delta(results, key, save=True)
        assert (tmp_path / f"delta.{sc.settings.file_format_figs}").is_file()
        assert a is not None  # Agg cannot show: the axes come back
        grids.pl.trace(results, key, save="_cd14.pdf")
        assert (tmp_path / "trace_cd14.pdf").is_file()
    finally:
        sc.settings.figdir = figdir
    out = tmp_path / "sub" / "track.png"
    grids.pl.track(results, key, save=out)
    assert out.is_file() and out.stat().st_size > 0
    shown = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(True))
    assert grids.pl.interactions(results, key, show=True) is None and shown == [True]
    fig, ax = plt.subplots()
    assert grids.pl.interactions(results, key, ax=ax) is ax and shown == [True]
    with pytest.raises(TypeError, match="save must be"):
        grids.pl.mask([1], save=3)


def test_fidelity_stores_a_spread_of_genes_when_there_are_many():
    from grids_sc.tl._fidelity import SPREAD_GENES, _prediction_genes

    r = np.random.default_rng(0).uniform(-0.2, 0.9, 2000)
    genes = np.array([f"g{i}" for i in range(2000)])
    cols = _prediction_genes(None, r, genes)
    assert len(cols) == SPREAD_GENES and np.all(np.diff(cols) > 0)
    assert {int(np.argmin(r)), int(np.argmax(r))} <= set(cols.tolist())
    assert len(_prediction_genes(None, r[:30], genes[:30])) == 30
    assert len(_prediction_genes(True, r, genes)) == 2000
    assert list(_prediction_genes(["g7", "g3"], r, genes)) == [3, 7]
