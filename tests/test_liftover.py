import numpy as np
import pandas as pd
import pytest

import grids_sc as grids


def _two_builds(seed=0, n=4000, length=60_000_000, shared=0.4):
    """Peaks on a source build and a target build whose offset is piecewise constant."""
    rng = np.random.default_rng(seed)
    breaks = np.array([0, 20_000_000, 35_000_000, length])
    shifts = np.array([120_000, -850_000, 40_000])
    offset = lambda p: shifts[np.searchsorted(breaks, p, side="right") - 1]  # noqa: E731
    src = np.sort(rng.integers(0, length, n))
    common = rng.random(n) < shared
    jitter = rng.integers(-150, 150, n)
    tgt = np.concatenate(
        [
            src[common] + offset(src[common]) + jitter[common],
            rng.integers(0, length, n - common.sum()),
        ]
    )

    def peaks(c):
        return pd.DataFrame({"chrom": "chr1", "start": c - 250, "end": c + 250})

    tss = np.sort(rng.integers(1_000_000, length - 1_000_000, 60))
    genes = pd.DataFrame(
        {
            "chrom": "1",  # bare name: normalised like the peaks
            "start": tss,
            "end": tss + 20_000,
            "strand": "+",
            "gene": [f"g{i}" for i in range(len(tss))],
        }
    )
    return genes, peaks(src), peaks(tgt), offset(tss)


def test_anchor_liftover_recovers_piecewise_offsets():
    genes, src, tgt, true = _two_builds()
    out = grids.pp.anchor_liftover(genes, src, tgt)
    lifted = out["lift_offset"].notna().to_numpy()
    assert lifted.mean() > 0.9
    err = np.abs(out["lift_offset"].to_numpy()[lifted] - true[lifted])
    # genes near a breakpoint may take the neighbouring block's offset; all others are exact
    near_break = np.min(np.abs(genes["start"].to_numpy()[:, None] - [20e6, 35e6]), axis=1) < 1.5e6
    assert (err[~near_break[lifted]] < 500).all()
    width = (out["end"] - out["start"]).to_numpy()[lifted]
    np.testing.assert_allclose(width, (genes["end"] - genes["start"]).to_numpy()[lifted])
    assert (out["lift_support"][lifted] >= 5).all()
    assert list(genes.columns) == list(out.columns[: len(genes.columns)])  # input left intact


def test_anchor_liftover_refuses_without_evidence():
    genes, src, _, _ = _two_builds()
    rng = np.random.default_rng(1)
    c = rng.integers(0, 60_000_000, 4000)
    unrelated = pd.DataFrame({"chrom": "chr1", "start": c, "end": c + 500})
    out = grids.pp.anchor_liftover(genes, src, unrelated)
    assert out["lift_offset"].notna().mean() < 0.1
    other_chrom = genes.assign(chrom="chr2")
    assert grids.pp.anchor_liftover(other_chrom, src, unrelated)["start"].isna().all()


def test_anchor_liftover_bad_input():
    genes, src, tgt, _ = _two_builds()
    with pytest.raises(ValueError, match="anchors_target needs columns"):
        grids.pp.anchor_liftover(genes, src, tgt.drop(columns="end"))
    with pytest.raises(ValueError, match="neighbourhood must be positive"):
        grids.pp.anchor_liftover(genes, src, tgt, neighbourhood=0)


def test_a549_hg19_gene_coordinates():
    try:
        m = grids.datasets.a549_scicar(gene_coordinates=True)
    except grids.datasets.SharedDataNotFound:
        pytest.skip("shared data not at hand")
    var = m["rna"].var
    assert var["chrom"].notna().sum() > 900
    # hg19 positions (UCSC hg19) of three well-known genes, within 1 kb
    for gene, col, hg19 in (("GAPDH", "start", 6_643_585), ("TP53", "end", 7_590_856)):
        if gene in var.index:
            assert abs(var.loc[gene, col] - hg19) < 1_000
    # lifted TSSs carry an A549 (hg19) peak far more often than the hg38 positions do
    peaks = grids.pp.parse_peaks(m["atac"], copy=True).var
    bounds = grids.datasets.gene_bounds().drop_duplicates("gene").set_index("gene")

    def promoter_rate(tss, chrom):
        hits = []
        for t, c in zip(tss, chrom):
            s = np.sort(((peaks["start"] + peaks["end"]) // 2)[peaks["chrom"] == c].to_numpy())
            i = np.searchsorted(s, t)
            near = [abs(s[j] - t) for j in (i - 1, i) if 0 <= j < len(s)]
            hits.append(min(near) < 1_000)
        return np.mean(hits)

    have = var.index[var["tss"].notna()]
    b = bounds.loc[have]
    hg38_tss = np.where(b["strand"] == "-", b["end"], b["start"])
    lifted = promoter_rate(var.loc[have, "tss"], var.loc[have, "chrom"])
    before = promoter_rate(hg38_tss, b["chrom"])
    assert lifted > 0.7
    assert lifted > 4 * before
