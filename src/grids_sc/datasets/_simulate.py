"""A seeded single-cell multiome simulator with planted cis-regulatory elements (CREs).

:func:`synthetic_multiome` builds paired ATAC (binary peak accessibility) and RNA (counts)
for cells of several types. Each gene depends on a few planted peaks near its TSS, grouped
in *units* with a known logic:

- ``single``: activity ``x_a`` (the peak's 0/1 accessibility),
- ``or`` (redundant pair): activity ``x_a OR x_b = x_a + x_b - x_a x_b``; expression drops
  only when both peaks close,
- ``and`` (cooperative pair): activity ``x_a x_b``; closing either peak removes the effect,
- ``decoy``: a single with a small effect on a peak open in most cells.

The log rate of gene ``g`` in cell ``c`` is
``eta = intercept_g + celltype_effect[type_c, g] + sum_u w_u activity_u(x_c)``, and the
counts are negative binomial with mean ``lib_c exp(eta) / 1e4``. :func:`true_expression`
recomputes the noise-free ``log1p(exp(eta))`` from the stored truth and the ATAC matrix,
optionally after closing or opening peaks, so knock-out effects are known exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .._mudata import local_options
from .._validate import get_modality, is_backed

__all__ = ["CONFOUNDED", "NULL", "REDUNDANT", "synthetic_multiome", "true_expression"]

PEAK_WIDTH = 500
"""Width of every simulated peak in bp."""

LOGICS = ("single", "or", "and", "decoy")
"""Unit logics, in the order they are planted for each gene."""

CONFOUNDED: dict[str, Any] = {"state_peaks": 0.15, "state_genes": 0.3}
"""The confounded regime: a continuous cell state opens a module of 15% of the non-planted
peaks and drives 30% of the genes, so module peaks near a driven gene correlate with it while
closing them changes nothing. ``synthetic_multiome(**CONFOUNDED)``."""

NULL: dict[str, Any] = {"n_single": 0, "n_or": 0, "n_and": 0, "n_decoys": 0}
"""No planted peaks at all: no peak affects any gene (combine with :data:`CONFOUNDED` for a
null with a confounding state)."""

REDUNDANT: dict[str, Any] = {"n_single": 0, "n_or": 3, "n_and": 0, "n_decoys": 3,
                             "cre_open": (0.65, 0.75), "cre_off": 0.0}  # fmt: skip
"""The redundant regime: OR pairs open in about 70% of cells next to decoys open in ~90%."""

# activity = ca * x_a + cb * x_b + cab * x_a * x_b  (singles and decoys use b = a)
_COEF = {"single": (1.0, 0.0, 0.0), "decoy": (1.0, 0.0, 0.0), "or": (1.0, 1.0, -1.0),
         "and": (0.0, 0.0, 1.0)}  # fmt: skip

_BLOCK = 1 << 23  # elements per dense block of cells x columns (bounds working memory)
_DEPTH_SD = 0.5  # sd of the per-cell accessibility logit offset
_BASE_SD = 0.8  # sd of background peak logits around their centre
_LIB_SD = 0.3  # sd of log library size
_RATE_RANGE = (0.5, 50.0)  # range of per-gene typical rates (per 10k transcripts)


# --------------------------------------------------------------------------- helpers


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return np.log(p) - np.log1p(-p)


def _rows_per_block(n_cols: int) -> int:
    return max(1, _BLOCK // max(1, n_cols))


def _unit_design(
    logic: np.ndarray, ia: np.ndarray, ib: np.ndarray, col: np.ndarray, w: np.ndarray, n_out: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, sp.csr_matrix]:
    """Arrays that turn open peaks into per-gene cis effects (see :func:`_cis_effect`).

    ``ia``/``ib`` index the columns of the open-peak matrix (``ib = -1`` for singles),
    ``col`` the output gene column of each unit and ``w`` its effect.
    """
    logic = np.asarray(logic).astype(str)
    coef = np.array([_COEF[lg] for lg in logic], dtype=np.float64).reshape(-1, 3)
    ib = np.where(ib < 0, ia, ib)
    weights = sp.csr_matrix(
        (np.asarray(w, dtype=np.float64), (np.arange(len(logic)), np.asarray(col))),
        shape=(len(logic), n_out),
    )
    return ia, ib, coef[:, 0], coef[:, 1], coef[:, 2], weights


def _cis_effect(open_: np.ndarray, design: tuple) -> np.ndarray:
    """Sum of ``w_u * activity_u`` per gene for a dense boolean [cells, peaks] block."""
    ia, ib, ca, cb, cab, weights = design
    xa = open_[:, ia].astype(np.float64)
    xb = open_[:, ib].astype(np.float64)
    activity = ca * xa + cb * xb + cab * (xa * xb)
    return np.asarray((weights.T @ activity.T).T)


def _categorical(codes: np.ndarray, categories: np.ndarray) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, categories=[str(c) for c in categories])


def _pop_concat(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenate and empty ``parts`` (so the pieces can be freed)."""
    out = np.concatenate(parts)
    parts.clear()
    return out


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_prob(name: str, value: Any, *, open_interval: bool = False) -> float:
    v = float(value)
    ok = 0.0 < v < 1.0 if open_interval else 0.0 <= v <= 1.0
    if not ok:
        rng = "(0, 1)" if open_interval else "[0, 1]"
        raise ValueError(f"{name} must lie in {rng}, got {value!r}")
    return v


def _check_range(name: str, value: Any, lo: float, hi: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}") from None
    if not (lo <= a <= b <= hi):
        raise ValueError(f"{name} must satisfy {lo} <= low <= high <= {hi}, got {value!r}")
    return a, b


# --------------------------------------------------------------------------- simulator


def synthetic_multiome(
    n_cells: int = 2000,
    n_peaks: int = 20_000,
    n_genes: int = 200,
    *,
    n_celltypes: int = 5,
    n_chromosomes: int | None = None,
    peak_spacing: float = 10_000,
    window: int = 250_000,
    n_single: int = 2,
    n_or: int = 1,
    n_and: int = 1,
    n_decoys: int = 0,
    effect: tuple[float, float] = (0.5, 1.0),
    decoy_effect: float = 0.15,
    decoy_open: float = 0.9,
    cre_open: tuple[float, float] = (0.5, 0.85),
    cre_off: float = 0.25,
    background_open: float = 0.03,
    celltype_specific: float = 0.3,
    trans_effect: float = 0.3,
    library_size: float = 5000.0,
    dispersion: float = 0.1,
    atac_counts: bool = False,
    state_peaks: float = 0.0,
    state_genes: float = 0.0,
    state_strength: float = 2.0,
    state_effect: tuple[float, float] = (0.3, 0.6),
    seed: int = 0,
) -> md.MuData:
    """Simulate paired single-cell ATAC and RNA with known cis-regulatory elements.

    Parameters
    ----------
    n_cells, n_peaks, n_genes
        Numbers of cells, ATAC peaks and genes.
    n_celltypes
        Number of cell types (``type0``, ``type1``, ...), with random proportions of at
        least half the uniform share each.
    n_chromosomes
        Number of chromosomes (``chr1``, ...); default ``max(1, min(22, n_peaks // 500))``.
    peak_spacing
        Mean distance in bp between consecutive peak starts (peaks are 500 bp wide).
    window
        Planted peaks lie entirely within ``window`` bp of their gene's TSS.
    n_single, n_or, n_and, n_decoys
        Units planted per gene: single peaks, redundant OR pairs, cooperative AND pairs and
        decoy singles. A gene whose window has too few free peaks gets the units that fit
        (in the order singles, OR, AND, decoys; see ``rna.var['n_units']``).
    effect
        Range of the uniform effect (log-rate increase) of single, OR and AND units.
    decoy_effect
        Effect of each decoy unit.
    decoy_open
        Open probability of decoy peaks (in every cell type, at average depth).
    cre_open
        Range of the open probability of non-decoy planted peaks in the cell types where
        their gene is active (at average depth).
    cre_off
        Probability, per gene and cell type, that the gene's non-decoy planted peaks are
        mostly closed in that type (at least one type stays active). Use 0 to keep planted
        peaks open at ``cre_open`` rates in all types.
    background_open
        Approximate mean open probability of the other peaks.
    celltype_specific
        Fraction of the other peaks whose accessibility is raised (mostly) or lowered in one
        or two cell types.
    trans_effect
        Standard deviation of the per cell type and gene log-rate shifts.
    library_size
        Median library size; each cell's ``lib_c`` is log-normal around it.
    dispersion
        Negative binomial dispersion ``phi`` (variance ``mu + phi mu^2``); 0 gives Poisson.
    atac_counts
        Write 1-4 fragments for open peaks instead of 1. The open pattern, the RNA and the
        truth are identical to those of ``atac_counts=False`` with the same seed.
    state_peaks
        Fraction of the non-planted peaks forming the *state module*: a continuous cell state
        ``u_c ~ N(0, 1)``, drawn independently of the cell type, shifts their open log-odds
        by ``state_strength * u_c``. Module peaks never affect expression. 0 (the default)
        draws no state, and the object is identical to one made without these arguments.
    state_genes
        Fraction of the genes whose log rate gains ``b_g * u_c`` (state-driven genes),
        ``|b_g|`` uniform on ``state_effect`` with a random sign. Module peaks in the window
        of such a gene correlate with its expression although closing them changes nothing:
        the *confounded regime* (see :data:`CONFOUNDED`).
    state_strength
        Log-odds shift of module peaks per unit of the state.
    state_effect
        Range of ``|b_g|``.
    seed
        Seed of the random generator; equal arguments give identical objects.

    Returns
    -------
    MuData
        Modalities ``rna`` and ``atac`` with ``obs['celltype']`` (also on the MuData).

        - ``atac``: ``X`` binary CSR float32 (fragment counts with ``atac_counts``);
          ``var`` has ``chrom``, ``start``, ``end``, ``cre_gene`` (``""`` if none),
          ``cre_unit`` (-1), ``cre_logic`` (``"single"``, ``"or"``, ``"and"``,
          ``"decoy"`` or ``""``) and ``cre_effect`` (0); ``obs['n_peaks_open']``.
        - ``rna``: ``layers['counts']`` CSR float32 counts, ``X = log1p(counts / lib_c *
          1e4)`` CSR float32; ``var`` has ``chrom``, ``start``, ``end``, ``strand``,
          ``tss``, ``n_cres`` (planted peaks), ``n_units`` and ``intercept``;
          ``obs['n_counts_rna'] = lib_c``.
        - with a state (``state_peaks`` or ``state_genes`` > 0): ``obs['state']`` (``u_c``,
          on both modalities and the MuData), ATAC ``var['state_module']`` (bool) and RNA
          ``var['state_effect']`` (``b_g``, 0 for genes the state does not drive).
        - ``uns['simulation']``: ``params`` (the arguments), ``units`` (equal-length arrays
          ``unit``, ``gene``, ``logic``, ``peak_a``, ``peak_b`` (peak names, ``""`` for
          none) and ``effect``), ``celltypes``, ``celltype_effect`` [types, genes],
          ``intercept`` and ``genes``. Only plain arrays, so it survives ``write`` and
          :func:`mudata.read_h5mu`.

    Notes
    -----
    Peak ``p`` is open in cell ``c`` of type ``t`` with probability
    ``sigmoid(base_p + shift_tp + depth_c)``, ``depth_c ~ N(0, 0.5)``; draws are made in
    blocks of cells so no dense cells x peaks matrix is ever held. ``lib_c`` is the cell's
    total transcript count, of which the simulated genes are a part: the rate of a gene is
    its share per 10k transcripts, so ``rna.X`` is a noisy estimate of
    ``log1p(exp(eta))``, the value :func:`true_expression` returns. Intercepts are set so
    that each gene's ``intercept + cis`` log rate, averaged over the simulated cells, is
    uniform on ``[log 0.5, log 50]`` (cell-type effects then spread it further).

    The redundant regime (OR pairs open in about 70% of cells next to decoys open in about
    90%) is e.g. ``n_single=0, n_or=3, n_and=0, n_decoys=3,
    cre_open=(0.65, 0.75), cre_off=0``.
    """
    n_cells = _check_int("n_cells", n_cells, 1)
    n_peaks = _check_int("n_peaks", n_peaks, 1)
    n_genes = _check_int("n_genes", n_genes, 1)
    n_celltypes = _check_int("n_celltypes", n_celltypes, 1)
    if n_chromosomes is None:
        n_chromosomes = max(1, min(22, n_peaks // 500))
    n_chromosomes = _check_int("n_chromosomes", n_chromosomes, 1)
    if n_chromosomes > n_peaks:
        raise ValueError(f"n_chromosomes ({n_chromosomes}) exceeds n_peaks ({n_peaks})")
    n_single = _check_int("n_single", n_single, 0)
    n_or = _check_int("n_or", n_or, 0)
    n_and = _check_int("n_and", n_and, 0)
    n_decoys = _check_int("n_decoys", n_decoys, 0)
    window = _check_int("window", window, PEAK_WIDTH)
    peak_spacing = float(peak_spacing)
    if not peak_spacing > PEAK_WIDTH:
        raise ValueError(
            f"peak_spacing must exceed the peak width {PEAK_WIDTH}, got {peak_spacing}"
        )
    effect = _check_range("effect", effect, 0.0, np.inf)
    cre_open = _check_range("cre_open", cre_open, 1e-6, 1 - 1e-6)
    decoy_effect = float(decoy_effect)
    if not np.isfinite(decoy_effect) or decoy_effect < 0:
        raise ValueError(f"decoy_effect must be finite and >= 0, got {decoy_effect}")
    decoy_open = _check_prob("decoy_open", decoy_open, open_interval=True)
    cre_off = _check_prob("cre_off", cre_off)
    background_open = _check_prob("background_open", background_open, open_interval=True)
    celltype_specific = _check_prob("celltype_specific", celltype_specific)
    for name, v in (("trans_effect", trans_effect), ("dispersion", dispersion)):
        if not np.isfinite(float(v)) or float(v) < 0:
            raise ValueError(f"{name} must be finite and >= 0, got {v!r}")
    trans_effect, dispersion = float(trans_effect), float(dispersion)
    library_size = float(library_size)
    if not library_size > 0 or not np.isfinite(library_size):
        raise ValueError(f"library_size must be positive, got {library_size}")
    seed = _check_int("seed", seed, 0)
    state_peaks = _check_prob("state_peaks", state_peaks)
    state_genes = _check_prob("state_genes", state_genes)
    state_strength = float(state_strength)
    if not np.isfinite(state_strength):
        raise ValueError(f"state_strength must be finite, got {state_strength}")
    state_effect = _check_range("state_effect", state_effect, 0.0, np.inf)
    with_state = state_peaks > 0 or state_genes > 0

    params: dict[str, Any] = {
        "n_cells": n_cells, "n_peaks": n_peaks, "n_genes": n_genes,
        "n_celltypes": n_celltypes, "n_chromosomes": n_chromosomes,
        "peak_spacing": peak_spacing, "window": window, "n_single": n_single, "n_or": n_or,
        "n_and": n_and, "n_decoys": n_decoys, "effect": np.array(effect),
        "decoy_effect": decoy_effect, "decoy_open": decoy_open,
        "cre_open": np.array(cre_open), "cre_off": cre_off,
        "background_open": background_open, "celltype_specific": celltype_specific,
        "trans_effect": trans_effect, "library_size": library_size,
        "dispersion": dispersion, "atac_counts": bool(atac_counts), "seed": seed,
    }  # fmt: skip
    if with_state:  # recorded only when used, so default objects stay identical
        params.update(
            state_peaks=state_peaks,
            state_genes=state_genes,
            state_strength=state_strength,
            state_effect=np.array(state_effect),
        )

    # independent streams: layout/parameters, accessibility, RNA counts, ATAC fragment counts
    rng, rng_atac, rng_rna, rng_frag = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )

    # ---- cells
    celltypes = np.array([f"type{i}" for i in range(n_celltypes)])
    prop = rng.dirichlet(np.full(n_celltypes, 5.0))
    prop = np.maximum(prop, 0.5 / n_celltypes)
    prop /= prop.sum()
    n_per = np.floor(prop * n_cells).astype(np.int64)
    extra = rng.choice(n_celltypes, n_cells - n_per.sum(), replace=False, p=prop)
    n_per[extra] += 1
    ctype = rng.permutation(np.repeat(np.arange(n_celltypes), n_per))
    depth = rng.normal(0.0, _DEPTH_SD, n_cells)
    lib = library_size * np.exp(rng.normal(0.0, _LIB_SD, n_cells))

    # ---- peaks: chromosome sizes, sorted positions with exponential gaps
    chrom_names = np.array([f"chr{i + 1}" for i in range(n_chromosomes)])
    share = rng.dirichlet(np.full(n_chromosomes, 20.0))
    per_chrom = 1 + np.floor(share * (n_peaks - n_chromosomes)).astype(np.int64)
    rest = n_peaks - per_chrom.sum()
    if rest:
        per_chrom[rng.choice(n_chromosomes, rest, replace=False)] += 1
    peak_chrom = np.repeat(np.arange(n_chromosomes), per_chrom)
    gaps = PEAK_WIDTH + rng.exponential(peak_spacing - PEAK_WIDTH, n_peaks)
    chrom_first = np.concatenate([[0], np.cumsum(per_chrom)[:-1]])
    gaps[chrom_first] = 10_000 + rng.exponential(peak_spacing, n_chromosomes)
    cum = np.cumsum(gaps)
    cum -= np.repeat(cum[chrom_first] - gaps[chrom_first], per_chrom)
    peak_start = np.round(cum).astype(np.int64)
    peak_end = peak_start + PEAK_WIDTH
    peak_names = np.char.add(
        np.char.add(np.char.add(chrom_names[peak_chrom], ":"), peak_start.astype(str)),
        np.char.add("-", peak_end.astype(str)),
    )

    # ---- genes: TSS uniform in the peak-covered range of a chromosome
    gene_chrom = rng.choice(n_chromosomes, n_genes, p=per_chrom / n_peaks)
    chrom_last = chrom_first + per_chrom - 1
    lo, hi = peak_start[chrom_first[gene_chrom]], peak_end[chrom_last[gene_chrom]]
    tss = lo + np.floor(rng.random(n_genes) * (hi - lo + 1)).astype(np.int64)
    order = np.lexsort((tss, gene_chrom))
    gene_chrom, tss = gene_chrom[order], tss[order]
    length = np.clip(np.round(rng.lognormal(np.log(30_000), 0.6, n_genes)), 2_000, 500_000)
    length = length.astype(np.int64)
    plus = rng.random(n_genes) < 0.5
    g_start = np.where(plus, tss, np.maximum(1, tss - length))
    g_end = np.where(plus, tss + length, tss)
    gene_names = np.array([f"gene{i}" for i in range(n_genes)])

    # ---- planted units: free peaks inside each gene's window, genes in random order
    requested = (["single"] * n_single + ["or"] * n_or + ["and"] * n_and
                 + ["decoy"] * n_decoys)  # fmt: skip
    used = np.zeros(n_peaks, dtype=bool)
    u_gene: list[int] = []
    u_logic: list[str] = []
    u_a: list[int] = []
    u_b: list[int] = []
    for g in rng.permutation(n_genes):
        c0, c1 = chrom_first[gene_chrom[g]], chrom_last[gene_chrom[g]] + 1
        i0 = c0 + np.searchsorted(peak_start[c0:c1], tss[g] - window, side="left")
        i1 = c0 + np.searchsorted(peak_end[c0:c1], tss[g] + window, side="right")
        cand = np.arange(i0, i1)
        cand = rng.permutation(cand[~used[cand]])
        k = 0
        for logic in requested:
            need = 2 if logic in ("or", "and") else 1
            if k + need > len(cand):
                continue
            u_gene.append(int(g))
            u_logic.append(logic)
            u_a.append(int(cand[k]))
            u_b.append(int(cand[k + 1]) if need == 2 else -1)
            k += need
        used[cand[:k]] = True
    # sort units by gene, then logic order, for a readable table
    rank = {lg: i for i, lg in enumerate(LOGICS)}
    u_order = np.lexsort((np.array(u_a, dtype=np.int64),
                          np.array([rank[lg] for lg in u_logic], dtype=np.int64),
                          np.array(u_gene, dtype=np.int64)))  # fmt: skip
    u_gene_a = np.array(u_gene, dtype=np.int64)[u_order]
    u_logic_a = np.array(u_logic, dtype=str)[u_order] if u_logic else np.array([], dtype=str)
    u_a_a = np.array(u_a, dtype=np.int64)[u_order]
    u_b_a = np.array(u_b, dtype=np.int64)[u_order]
    n_units = len(u_gene_a)
    is_decoy = u_logic_a == "decoy"
    u_w = rng.uniform(effect[0], effect[1], n_units)
    u_w[is_decoy] = decoy_effect

    # ---- accessibility logits: base per peak plus cell-type shifts
    spread = np.sqrt(_BASE_SD**2 + _DEPTH_SD**2)
    centre = _logit(background_open) * np.sqrt(1.0 + np.pi * spread**2 / 8.0)
    base = centre + _BASE_SD * rng.standard_normal(n_peaks)
    shift = np.zeros((n_celltypes, n_peaks))
    free = np.flatnonzero(~used)
    spec = free[rng.random(len(free)) < celltype_specific]
    mag = rng.uniform(1.5, 3.5, len(spec)) * np.where(rng.random(len(spec)) < 0.75, 1.0, -1.0)
    t1 = rng.integers(0, n_celltypes, len(spec))
    shift[t1, spec] = mag
    if n_celltypes > 1:  # half of them in a second, different type too
        two = rng.random(len(spec)) < 0.5
        t2 = (t1 + 1 + rng.integers(0, n_celltypes - 1, len(spec))) % n_celltypes
        shift[t2[two], spec[two]] = mag[two]
    # planted peaks: non-decoys open at cre_open rates, closed in the gene's off types
    off = rng.random((n_genes, n_celltypes)) < cre_off
    all_off = off.all(axis=1)
    off[np.flatnonzero(all_off), rng.integers(0, n_celltypes, int(all_off.sum()))] = False
    cre_units = np.flatnonzero(~is_decoy)
    cre_peaks = np.concatenate([u_a_a[cre_units], u_b_a[cre_units]])
    cre_genes = np.concatenate([u_gene_a[cre_units], u_gene_a[cre_units]])
    keep = cre_peaks >= 0
    cre_peaks, cre_genes = cre_peaks[keep], cre_genes[keep]
    base[cre_peaks] = _logit(rng.uniform(cre_open[0], cre_open[1], len(cre_peaks)))
    shift[:, cre_peaks] = np.where(
        off[cre_genes].T, -rng.uniform(2.5, 4.0, (n_celltypes, len(cre_peaks))), 0.0
    )
    decoy_peaks = u_a_a[is_decoy]
    base[decoy_peaks] = _logit(decoy_open)
    shift[:, decoy_peaks] = 0.0
    # open <=> u < sigmoid(l + d) <=> u * (1 + exp(-l) exp(-d)) < 1
    e_type = np.exp(-np.clip(base + shift, -15.0, 15.0)).astype(np.float32)
    e_cell = np.exp(-depth).astype(np.float32)

    # ---- the continuous cell state (its own stream: without it nothing else changes)
    if with_state:
        rng_state = np.random.SeedSequence(seed).spawn(5)[4]
        rng_state = np.random.default_rng(rng_state)
        state = rng_state.standard_normal(n_cells)
        free_peaks = np.flatnonzero(~used)
        module = np.sort(
            rng_state.choice(free_peaks, int(round(state_peaks * len(free_peaks))), replace=False)
        )
        n_driven = int(round(state_genes * n_genes))
        b_state = np.zeros(n_genes)
        driven = rng_state.choice(n_genes, n_driven, replace=False)
        b_state[driven] = rng_state.uniform(state_effect[0], state_effect[1], n_driven) * (
            np.where(rng_state.random(n_driven) < 0.5, 1.0, -1.0)
        )
        e_state = np.exp(-np.clip(state_strength * state, -15.0, 15.0)).astype(np.float32)

    # ---- ATAC in blocks of cells; the cis effect per gene from the planted peaks
    planted = np.unique(np.concatenate([u_a_a, u_b_a[u_b_a >= 0]]))
    local = np.full(n_peaks, -1, dtype=np.int64)
    local[planted] = np.arange(len(planted))
    design = _unit_design(
        u_logic_a,
        local[u_a_a],
        np.where(u_b_a >= 0, local[np.maximum(u_b_a, 0)], -1),
        u_gene_a,
        u_w,
        n_genes,
    )
    cis = np.zeros((n_cells, n_genes))
    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    idx_dtype = np.int32 if n_cells * n_peaks < np.iinfo(np.int32).max else np.int64
    # index buffer sized from the expected number of open entries (probit approximation of
    # the depth-averaged sigmoid); grown by extrapolation in the rare case it is too small
    p_type = 1.0 / (1.0 + e_type.astype(np.float64) ** (1.0 / np.sqrt(1 + np.pi * 0.25 / 8)))
    expected = float(np.bincount(ctype, minlength=n_celltypes) @ p_type.sum(axis=1))
    cap = int(min(n_cells * n_peaks, 1.01 * expected + 6 * np.sqrt(expected) + 1024))
    indices = np.empty(cap, dtype=idx_dtype)
    nnz = 0
    rows = _rows_per_block(n_peaks)
    thr = np.empty((min(rows, n_cells), n_peaks), dtype=np.float32)
    unif = np.empty_like(thr)
    is_open = np.empty(thr.shape, dtype=bool)
    for r0 in range(0, n_cells, rows):
        r1 = min(n_cells, r0 + rows)
        m = r1 - r0
        b, u, o = thr[:m], unif[:m], is_open[:m]
        np.take(e_type, ctype[r0:r1], axis=0, out=b)
        b *= e_cell[r0:r1, None]
        if with_state and len(module):
            b[:, module] *= e_state[r0:r1, None]
        b += 1.0
        # u: 32 random bits per entry as a float in [0, 2^32]; open <=> u * b < 2^32
        raw = rng_atac.bit_generator.random_raw((m * n_peaks + 1) // 2).view(np.uint32)
        np.copyto(u, raw[: m * n_peaks].reshape(m, n_peaks), casting="unsafe")
        del raw
        b *= u
        np.less(b, np.float32(2.0**32), out=o)
        cis[r0:r1] = _cis_effect(o[:, planted], design)
        need = nnz + int(np.count_nonzero(o))
        if need > len(indices):  # grow to the size extrapolated from the cells done so far
            cap = min(n_cells * n_peaks, max(need, int(1.02 * need * n_cells / r1) + 1024))
            grown = np.empty(cap, dtype=idx_dtype)
            grown[:nnz] = indices[:nnz]
            indices = grown
        for i in range(m):
            cols = np.flatnonzero(o[i])
            indices[nnz : nnz + len(cols)] = cols
            nnz += len(cols)
            indptr[r0 + i + 1] = nnz
    del thr, unif, is_open
    atac_x = sp.csr_matrix(
        (np.ones(nnz, dtype=np.float32), indices[:nnz], indptr.astype(idx_dtype)),
        shape=(n_cells, n_peaks),
    )
    del indices
    if atac_counts:  # 1 + Binomial(3, 0.3) fragments per open peak, drawn in pieces
        for k in range(0, nnz, _BLOCK):
            piece = atac_x.data[k : k + _BLOCK]
            piece += rng_frag.binomial(3, 0.3, len(piece)).astype(np.float32)
    n_open = np.diff(indptr)

    # ---- RNA: intercepts from the realised cis effects, then gamma-Poisson counts
    ct_effect = rng.normal(0.0, trans_effect, (n_celltypes, n_genes))
    target = rng.uniform(np.log(_RATE_RANGE[0]), np.log(_RATE_RANGE[1]), n_genes)
    intercept = target - cis.mean(axis=0)
    c_data, x_data, c_ind = [], [], []
    c_ptr = np.zeros(n_cells + 1, dtype=np.int64)
    rows = max(1, (_BLOCK // 4) // n_genes)  # float64 work arrays: keep blocks small
    for r0 in range(0, n_cells, rows):
        r1 = min(n_cells, r0 + rows)
        eta = intercept + ct_effect[ctype[r0:r1]] + cis[r0:r1]
        if with_state:
            eta += state[r0:r1, None] * b_state
        mu = np.exp(eta) * (lib[r0:r1, None] / 1e4)
        if dispersion > 0:
            mu *= rng_rna.gamma(1.0 / dispersion, dispersion, mu.shape)
        counts = rng_rna.poisson(mu)
        r, c = np.nonzero(counts)
        val = counts[r, c].astype(np.float64)
        c_data.append(val.astype(np.float32))
        x_data.append(np.log1p(val * (1e4 / lib[r0 + r])).astype(np.float32))
        c_ind.append(c.astype(np.int32))
        c_ptr[r0 + 1 : r1 + 1] = np.count_nonzero(counts, axis=1)
    del cis
    np.cumsum(c_ptr, out=c_ptr)
    shape = (n_cells, n_genes)
    rna_ind = np.concatenate(c_ind)
    del c_ind
    counts_x = sp.csr_matrix((_pop_concat(c_data), rna_ind, c_ptr), shape=shape)
    rna_x = sp.csr_matrix((_pop_concat(x_data), rna_ind.copy(), c_ptr.copy()), shape=shape)

    # ---- annotations
    cell_names = pd.Index([f"cell{i}" for i in range(n_cells)])
    peak_a_names = peak_names[u_a_a] if n_units else np.array([], dtype=str)
    peak_b_names = np.where(u_b_a >= 0, peak_names[np.maximum(u_b_a, 0)], "")
    peak_b_names = peak_b_names if n_units else np.array([], dtype=str)

    cre_gene = np.full(n_peaks, "", dtype=object)
    cre_unit = np.full(n_peaks, -1, dtype=np.int64)
    cre_logic = np.full(n_peaks, "", dtype=object)
    cre_effect = np.zeros(n_peaks)
    for pk in (u_a_a, u_b_a):
        has = pk >= 0
        cre_gene[pk[has]] = gene_names[u_gene_a[has]]
        cre_unit[pk[has]] = np.arange(n_units)[has]
        cre_logic[pk[has]] = u_logic_a[has]
        cre_effect[pk[has]] = u_w[has]
    atac_var = pd.DataFrame(
        {
            "chrom": chrom_names[peak_chrom].astype(object),
            "start": peak_start,
            "end": peak_end,
            "cre_gene": cre_gene,
            "cre_unit": cre_unit,
            "cre_logic": cre_logic,
            "cre_effect": cre_effect,
        },
        index=pd.Index(peak_names.astype(object)),
    )
    n_peaks_per_unit = np.where(u_b_a >= 0, 2, 1)
    rna_var = pd.DataFrame(
        {
            "chrom": chrom_names[gene_chrom].astype(object),
            "start": g_start.astype(np.int64),
            "end": g_end.astype(np.int64),
            "strand": np.where(plus, "+", "-").astype(object),
            "tss": tss.astype(np.int64),
            "n_cres": np.bincount(u_gene_a, weights=n_peaks_per_unit, minlength=n_genes).astype(
                np.int64
            ),
            "n_units": np.bincount(u_gene_a, minlength=n_genes).astype(np.int64),
            "intercept": intercept,
        },
        index=pd.Index(gene_names.astype(object)),
    )
    atac = AnnData(
        X=atac_x,
        obs=pd.DataFrame(
            {"celltype": _categorical(ctype, celltypes), "n_peaks_open": n_open}, index=cell_names
        ),
        var=atac_var,
    )
    rna = AnnData(
        X=rna_x,
        obs=pd.DataFrame(
            {"celltype": _categorical(ctype, celltypes), "n_counts_rna": lib}, index=cell_names
        ),
        var=rna_var,
        layers={"counts": counts_x},
    )
    if with_state:
        atac.var["state_module"] = np.isin(np.arange(n_peaks), module)
        rna.var["state_effect"] = b_state
        atac.obs["state"] = state
        rna.obs["state"] = state
    with local_options():
        mdata = md.MuData({"rna": rna, "atac": atac})
    mdata.obs["celltype"] = _categorical(ctype, celltypes)
    if with_state:
        mdata.obs["state"] = state
    mdata.uns["simulation"] = {
        "params": params,
        "units": {
            "unit": np.arange(n_units, dtype=np.int64),
            "gene": gene_names[u_gene_a] if n_units else np.array([], dtype=str),
            "logic": u_logic_a,
            "peak_a": peak_a_names,
            "peak_b": peak_b_names,
            "effect": u_w,
        },
        "celltypes": celltypes,
        "celltype_effect": ct_effect,
        "intercept": intercept,
        "genes": gene_names,
    }
    if with_state:
        mdata.uns["simulation"]["state_effect"] = b_state
    return mdata


# --------------------------------------------------------------------------- truth


def _simulation(mdata: Any) -> dict:
    if not isinstance(mdata, md.MuData):
        raise TypeError(
            "true_expression needs the MuData returned by grids.datasets.synthetic_multiome, "
            f"got {type(mdata).__name__}"
        )
    sim = mdata.uns.get("simulation")
    needed = ("units", "celltypes", "celltype_effect", "intercept", "genes")
    if not isinstance(sim, dict) or any(k not in sim for k in needed):
        raise ValueError(
            "mdata is not a simulated object: uns['simulation'] with "
            f"{', '.join(needed)} is missing; create one with "
            "grids.datasets.synthetic_multiome()"
        )
    units = sim["units"]
    for k in ("gene", "logic", "peak_a", "peak_b", "effect"):
        if k not in units:
            raise ValueError(f"uns['simulation']['units'] lacks {k!r}; not a simulated object")
    return sim


def _str_array(x: Any) -> np.ndarray:
    return np.asarray(x).astype(str).reshape(-1)


def _resolve_index(sel: Any, names: pd.Index, what: str, *, allow_bool: bool = True) -> np.ndarray:
    """Integer positions of ``sel`` (names, integers or a boolean mask) in ``names``."""
    n = len(names)
    if isinstance(sel, (str, np.str_, int, np.integer)):
        sel = [sel]
    arr = np.asarray(sel)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    arr = arr.reshape(-1)
    if arr.dtype == bool:
        if not allow_bool or len(arr) != n:
            raise ValueError(f"boolean {what} mask has length {len(arr)}, expected {n}")
        return np.flatnonzero(arr)
    if arr.dtype.kind in "iu":
        if arr.min() < -n or arr.max() >= n:
            raise IndexError(f"{what} index out of range for {n} entries")
        return np.where(arr < 0, arr + n, arr).astype(np.int64)
    arr = arr.astype(str)
    pos = names.get_indexer(arr)
    if (pos < 0).any():
        missing = arr[pos < 0]
        shown = ", ".join(map(repr, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise KeyError(f"{what} {shown} not found")
    return pos.astype(np.int64)


def _cell_values(
    mdata: md.MuData, a_atac: AnnData, rows: np.ndarray, rna: str, column: str
) -> np.ndarray:
    """``obs[column]`` of the selected ATAC cells, from the first obs that has it."""
    if column in a_atac.obs:
        return np.asarray(a_atac.obs[column].to_numpy()[rows])
    names = a_atac.obs_names[rows]
    for obs in (mdata.obs, mdata.mod[rna].obs if rna in mdata.mod else None):
        if obs is not None and column in obs and names.isin(obs.index).all():
            return np.asarray(obs[column].reindex(names).to_numpy())
    raise KeyError(f"obs[{column!r}] not found on the ATAC modality or the MuData")


def _cell_types(mdata: md.MuData, a_atac: AnnData, rows: np.ndarray, rna: str) -> np.ndarray:
    """Cell type labels of the selected ATAC cells, from the first obs that has them."""
    return _str_array(_cell_values(mdata, a_atac, rows, rna, "celltype"))


def true_expression(
    mdata: md.MuData,
    genes: str | Sequence[str] | Sequence[int] | None = None,
    *,
    cells: Any = None,
    close: str | int | Sequence[str] | Sequence[int] | None = None,
    open: str | int | Sequence[str] | Sequence[int] | None = None,  # noqa: A002
    rna: str = "rna",
    atac: str = "atac",
) -> np.ndarray:
    """Noise-free expression ``log1p(exp(eta))`` of a simulated object, after an intervention.

    Parameters
    ----------
    mdata
        A MuData from :func:`synthetic_multiome` (also after ``write`` / ``read_h5mu``, and
        after subsetting cells, genes or peaks as long as the planted peaks of the requested
        genes remain in the ATAC modality).
    genes
        Gene names, or positions in the default list. Default: the genes of the RNA
        modality (so columns match ``mdata[rna].X``), or all simulated genes without one.
    cells
        Cells of the ATAC modality: a boolean mask, integer positions or obs names; default
        all, in order.
    close, open
        Peaks (ATAC var names or integer positions) set closed (0) or open (1) in every
        selected cell before the expression is computed.
    rna, atac
        Modality names.

    Returns
    -------
    numpy.ndarray
        Float64 array [cells, genes] on the scale of ``rna.X``. The knock-out effect of
        closing a set ``S`` is ``true_expression(m, close=S) - true_expression(m)``.

    Raises
    ------
    TypeError
        If ``mdata`` is not a MuData.
    ValueError
        If ``mdata`` holds no simulation truth, or a peak is both closed and opened.
    KeyError
        If a gene, cell, peak or planted peak is missing.
    """
    sim = _simulation(mdata)
    a_atac = get_modality(mdata, atac, "atac")
    all_genes = pd.Index(_str_array(sim["genes"]))
    default = pd.Index(mdata.mod[rna].var_names.astype(str)) if rna in mdata.mod else all_genes
    if genes is None:
        gene_sel = default
    else:
        arr = np.asarray([genes] if isinstance(genes, str) else genes).reshape(-1)
        if arr.dtype.kind in "iu":
            arr = default[_resolve_index(arr, default, "gene", allow_bool=False)].to_numpy()
        gene_sel = pd.Index(_str_array(arr))
    _resolve_index(gene_sel, all_genes, "gene (not simulated)")
    if gene_sel.has_duplicates:
        raise ValueError("genes must not contain duplicates")
    g_idx = all_genes.get_indexer(gene_sel)

    units = sim["units"]
    u_gene = _str_array(units["gene"])
    u_col = gene_sel.get_indexer(u_gene)
    keep = u_col >= 0
    u_col = u_col[keep]
    logic = _str_array(units["logic"])[keep]
    peak_a = _str_array(units["peak_a"])[keep]
    peak_b = _str_array(units["peak_b"])[keep]
    w = np.asarray(units["effect"], dtype=np.float64).reshape(-1)[keep]

    needed = pd.Index(np.unique(np.concatenate([peak_a, peak_b[peak_b != ""]])))
    var_names = pd.Index(a_atac.var_names.astype(str))
    cols = var_names.get_indexer(needed)
    if (cols < 0).any():
        missing = needed[cols < 0]
        shown = ", ".join(map(repr, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise KeyError(
            f"{len(missing)} planted peak(s) missing from ATAC modality {atac!r}: {shown}; "
            "keep the planted peaks (atac.var['cre_unit'] >= 0) when subsetting"
        )
    ia = needed.get_indexer(peak_a)
    ib = np.where(peak_b != "", needed.get_indexer(peak_b), -1)
    design = _unit_design(logic, ia, ib, u_col, w, len(gene_sel))

    obs_names = pd.Index(a_atac.obs_names.astype(str))
    rows = np.arange(a_atac.n_obs) if cells is None else _resolve_index(cells, obs_names, "cell")
    labels = _cell_types(mdata, a_atac, rows, rna)
    celltypes = pd.Index(_str_array(sim["celltypes"]))
    t_idx = celltypes.get_indexer(labels)
    if (t_idx < 0).any():
        bad = np.unique(labels[t_idx < 0])[:5].tolist()
        raise ValueError(f"cell types {bad} are not among the simulated {list(celltypes)}")

    none = np.zeros(0, dtype=np.int64)
    kw = {"allow_bool": False}
    to_close = none if close is None else _resolve_index(close, var_names, "peak to close", **kw)
    to_open = none if open is None else _resolve_index(open, var_names, "peak to open", **kw)
    both = np.intersect1d(to_close, to_open)
    if len(both):
        raise ValueError(f"peaks {var_names[both[:5]].tolist()} are both closed and opened")
    pos = pd.Index(cols)
    close_local = pos.get_indexer(to_close)
    close_local = close_local[close_local >= 0]
    open_local = pos.get_indexer(to_open)
    open_local = open_local[open_local >= 0]

    x = a_atac.X
    if is_backed(x):  # on disk: each block's rows are read alone
        x = _RowReader(x)
    elif sp.issparse(x) and x.format != "csr":  # only the planted columns, as CSR
        x = sp.csr_matrix(x[:, cols] if x.format == "csc" else x.tocsr()[:, cols])
        cols = np.arange(len(cols))
    elif not sp.issparse(x):
        x = np.asarray(x)

    intercept = np.asarray(sim["intercept"], dtype=np.float64).reshape(-1)[g_idx]
    ct_effect = np.asarray(sim["celltype_effect"], dtype=np.float64)[:, g_idx]
    b_state = u_state = None
    if "state_effect" in sim:
        b_state = np.asarray(sim["state_effect"], dtype=np.float64).reshape(-1)[g_idx]
        u_state = _cell_values(mdata, a_atac, rows, rna, "state").astype(np.float64)
    out = np.empty((len(rows), len(gene_sel)))
    step = _rows_per_block(max(len(cols), len(gene_sel)))
    for r0 in range(0, len(rows), step):
        r1 = min(len(rows), r0 + step)
        sel = slice(r0, r1) if cells is None else rows[r0:r1]
        blk = x[sel][:, cols]  # row block first: CSR row slices are cheap
        is_open = (blk.toarray() if sp.issparse(blk) else np.asarray(blk)) > 0
        is_open[:, close_local] = False
        is_open[:, open_local] = True
        eta = intercept + ct_effect[t_idx[r0:r1]] + _cis_effect(is_open, design)
        if b_state is not None:
            eta += u_state[r0:r1, None] * b_state
        out[r0:r1] = np.logaddexp(0.0, eta)
    return out


class _RowReader:
    """Rows of a backed matrix, read in sorted order and returned in the order asked."""

    def __init__(self, x) -> None:
        self.x = x

    def __getitem__(self, rows):
        if isinstance(rows, slice):
            return self.x[rows]
        uniq, inverse = np.unique(np.asarray(rows), return_inverse=True)
        return self.x[uniq][inverse]
