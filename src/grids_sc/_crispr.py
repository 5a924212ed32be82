"""Enhancer–gene predictions scored against CRISPRi ground truth, as the ENCODE benchmark does.

The conventions are those of EngreitzLab's CRISPR_comparison pipeline (ENCODE-rE2G, scE2G):
element–gene pairs with ``ValidConnection`` ``"TRUE"``, ``Regulated`` as the label, the
scores of predicted elements of the same gene overlapping a tested element aggregated (sum by
default), unpredicted pairs filled, AUPRC by the trapezoid rule over the precision–recall
points of the distinct score thresholds, and a distance-to-TSS baseline on the same pairs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from mudata import MuData

#: the distance bins (bp) of the per-bin AUPRC: (low, high], the first including 0
DISTANCE_BINS = ((0, 20_000, "0_20kb"), (20_000, 100_000, "20_100kb"), (100_000, 2_500_000,
                 "100_2500kb"))  # fmt: skip
AGGREGATES = ("sum", "max", "mean")
MIN_RECALL = 0.7
CRISPR_COLUMNS = ("chrom", "chromStart", "chromEnd", "measuredGeneSymbol", "Regulated")
PREDICTION_COLUMNS = ("chr", "start", "end", "TargetGene")
#: columns of :func:`crispr_pairs` before the predictor's
PAIR_COLUMNS = ("chrom", "chromStart", "chromEnd", "measuredGeneSymbol", "CellType",
                "Regulated", "distance", "predicted")  # fmt: skip
BASELINE = "distance"


# ---------------------------------------------------------------------------- reading inputs


def _as_bool(values: pd.Series, column: str) -> np.ndarray:
    """TRUE/FALSE text, booleans or 1/0 as booleans, with a clear error for anything else."""
    if values.dtype == bool:
        return values.to_numpy()
    text = values.astype(str).str.strip().str.upper()
    known = text.isin(["TRUE", "FALSE", "1", "0", "1.0", "0.0"])
    if not known.all():
        bad = sorted(set(values[~known].astype(str)))[:5]
        raise ValueError(f"column {column!r} must hold TRUE/FALSE (or 1/0); it has {bad}")
    return text.isin(["TRUE", "1", "1.0"]).to_numpy()


def read_crispr(crispr: pd.DataFrame | str | os.PathLike) -> pd.DataFrame:
    """The valid element–gene pairs of a CRISPR benchmark table (``ValidConnection`` TRUE).

    ``ValidConnection`` is read as text: ``"TRUE"`` (or a boolean ``True``) is valid, any
    other text names why the pair is not (e.g. ``"overlaps potential promoter"``).
    """
    if isinstance(crispr, (str, os.PathLike)):
        if not os.path.exists(crispr):
            raise FileNotFoundError(f"CRISPR benchmark file {str(crispr)!r} not found")
        table = pd.read_csv(crispr, sep="\t", dtype={"ValidConnection": str, "CellType": str})
    elif isinstance(crispr, pd.DataFrame):
        table = crispr
    else:
        raise TypeError(f"crispr must be a DataFrame or a path, got {type(crispr).__name__}")
    missing = [c for c in CRISPR_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"the CRISPR table lacks columns {missing}: it must have {list(CRISPR_COLUMNS)} "
            "(and ValidConnection, CellType, startTSS/endTSS), as the ENCODE benchmark files do"
        )
    if "ValidConnection" in table.columns:
        valid = [v is True or isinstance(v, np.bool_) and bool(v) or str(v).strip() == "TRUE"
                 for v in table["ValidConnection"]]  # fmt: skip
        table = table.loc[np.asarray(valid, dtype=bool)]
    out = table.reset_index(drop=True).copy()
    out["Regulated"] = _as_bool(out["Regulated"], "Regulated")
    if "CellType" not in out.columns:
        out["CellType"] = ""
    out["CellType"] = out["CellType"].astype(str)
    keys = ["CellType", "measuredGeneSymbol", "chrom", "chromStart", "chromEnd"]
    dup = out.duplicated(keys)
    if dup.any():
        row = out.loc[dup].iloc[0]
        raise ValueError(
            f"the CRISPR table holds the pair {row['measuredGeneSymbol']} | {row['chrom']}:"
            f"{row['chromStart']}-{row['chromEnd']} ({row['CellType']}) more than once; "
            "each tested element–gene pair of a cell type must appear once"
        )
    if len(out) == 0:
        raise ValueError("the CRISPR table has no pair with ValidConnection TRUE")
    return out


def _read_predictions(predictions, score: str, keys) -> pd.DataFrame:
    if isinstance(predictions, MuData):
        from .io._e2g import e2g_table

        table = e2g_table(predictions, keys)
    elif keys is not None:
        raise ValueError("keys= selects results of a MuData; the predictions are a table")
    elif isinstance(predictions, (str, os.PathLike)):
        if not os.path.exists(predictions):
            raise FileNotFoundError(f"predictions file {str(predictions)!r} not found")
        wanted = {*PREDICTION_COLUMNS, "CellType", score}  # genome-wide files are large
        table = pd.read_csv(predictions, sep="\t", usecols=lambda c: c in wanted,
                            dtype={"CellType": str, "TargetGene": str})  # fmt: skip
    elif isinstance(predictions, pd.DataFrame):
        table = predictions
    else:
        raise TypeError(
            "predictions must be an E2G DataFrame, a path to an E2G file or a MuData with "
            f"grids-sc results, got {type(predictions).__name__}"
        )
    missing = [c for c in PREDICTION_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"the predictions lack columns {missing}; E2G predictions have "
            f"{list(PREDICTION_COLUMNS)}, CellType and score columns"
        )
    if score not in table.columns:
        numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
        raise KeyError(f"score column {score!r} not in the predictions; numeric columns: {numeric}")
    values = pd.to_numeric(table[score], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(values).any():
        raise ValueError(f"score column {score!r} has no numeric value")
    out = pd.DataFrame(
        {
            "chrom": table["chr"].astype(str).to_numpy(),
            "start": table["start"].to_numpy(dtype=np.int64),
            "end": table["end"].to_numpy(dtype=np.int64),
            "gene": table["TargetGene"].astype(str).to_numpy(),
            "cell_type": table["CellType"].astype(str).to_numpy()
            if "CellType" in table.columns
            else "",
            "value": values,
        }
    )
    bad = ~np.isfinite(values)
    if bad.any():
        warnings.warn(
            f"leaving out {int(bad.sum())} predictions without a finite {score!r}",
            UserWarning,
            stacklevel=3,
        )
        out = out.loc[~bad].reset_index(drop=True)
    return out


def _cell_types(pred: pd.DataFrame, expt: pd.DataFrame, cell_type) -> tuple[pd.Series, bool]:
    """The experiment cell type of each prediction, and whether pairs are matched by it."""
    pred_types = sorted(set(pred["cell_type"]))
    if cell_type is None:
        if len(pred_types) <= 1:
            return pd.Series("", index=pred.index), False
        mapping = {t: t for t in pred_types}
    elif isinstance(cell_type, str):
        if len(pred_types) > 1:
            raise ValueError(
                f"the predictions hold {len(pred_types)} cell types ({pred_types[:5]}); "
                "cell_type= as a string maps one; pass a dict {prediction type: experiment type}"
            )
        mapping = {t: cell_type for t in pred_types}
    elif isinstance(cell_type, Mapping):
        mapping = {t: str(cell_type.get(t, t)) for t in pred_types}
    else:
        raise TypeError(f"cell_type must be None, a string or a dict, got {type(cell_type)}")
    mapped = pred["cell_type"].map(mapping)
    if not set(mapped) & set(expt["CellType"]):
        raise ValueError(
            f"no prediction cell type maps to a cell type of the CRISPR data "
            f"({sorted(set(expt['CellType']))}): the predictions map to {sorted(set(mapped))}; "
            "pass cell_type= (a string, or a dict {prediction type: experiment type})"
        )
    return mapped, True


def _tss_centre(expt: pd.DataFrame, genes: pd.DataFrame | None) -> np.ndarray:
    """Each pair's TSS position (the centre of ``startTSS``/``endTSS``, or of ``genes``)."""
    if genes is not None:
        need = {"gene", "start", "end", "strand"}
        if not need <= set(genes.columns):
            raise ValueError(
                f"genes= needs columns {sorted(need)} (e.g. grids.datasets.gene_bounds()); it "
                f"has {list(genes.columns)[:10]}"
            )
        g = genes.drop_duplicates("gene")
        strand = g["strand"].astype(str).to_numpy()
        tss = np.where(strand == "-", g["end"], np.where(strand == "+", g["start"], np.nan))
        by_gene = pd.Series(tss.astype(np.float64), index=g["gene"].astype(str).to_numpy())
        return expt["measuredGeneSymbol"].astype(str).map(by_gene).to_numpy(dtype=np.float64)
    if {"startTSS", "endTSS"} <= set(expt.columns):
        start = pd.to_numeric(expt["startTSS"], errors="coerce").to_numpy(dtype=np.float64)
        end = pd.to_numeric(expt["endTSS"], errors="coerce").to_numpy(dtype=np.float64)
        return (start + end) / 2
    return np.full(len(expt), np.nan)


def _distances(expt: pd.DataFrame, genes: pd.DataFrame | None) -> np.ndarray:
    """Distance (bp) from each element's centre to its gene's TSS: from ``genes``, else the table's
    ``distanceToTSS``, else the centre of its ``startTSS``/``endTSS`` (NaN where none).
    """
    centre = (expt["chromStart"].to_numpy(np.float64) + expt["chromEnd"].to_numpy(np.float64)) / 2
    dist = np.abs(centre - _tss_centre(expt, genes))
    if genes is None and "distanceToTSS" in expt.columns:
        given = pd.to_numeric(expt["distanceToTSS"], errors="coerce").to_numpy(dtype=np.float64)
        dist = np.where(np.isfinite(given), np.abs(given), dist)
    return dist


# ---------------------------------------------------------------------------- merging


def crispr_pairs(
    predictions: pd.DataFrame | str | os.PathLike | MuData,
    crispr: pd.DataFrame | str | os.PathLike,
    *,
    score: str = "Score",
    name: str = "grids",
    aggregate: str = "sum",
    fill: float = 0.0,
    cell_type: str | Mapping[str, str] | None = None,
    keys: str | Sequence[str] | None = None,
    genes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The tested element–gene pairs of a CRISPR benchmark with a predictor's score for each.

    The first step of :func:`evaluate_crispr` (see there for the parameters), and what
    :func:`grids_sc.pl.pr_curve` draws.

    Returns
    -------
    DataFrame
        One row per valid pair: ``chrom``, ``chromStart``, ``chromEnd``,
        ``measuredGeneSymbol``, ``CellType``, ``Regulated`` (the label), ``distance`` (bp
        from the element's centre to the gene's TSS; NaN without a TSS), ``predicted``
        (whether a predicted element overlaps it) and the column ``name``: the aggregated
        score of the overlapping predicted elements, ``fill`` where there are none.
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {list(AGGREGATES)}, got {aggregate!r}")
    if name in PAIR_COLUMNS or name == BASELINE:
        raise ValueError(f"name {name!r} is taken by a column of the pair table; choose another")
    expt = read_crispr(crispr)
    pred = _read_predictions(predictions, score, keys)
    mapped, by_type = _cell_types(pred, expt, cell_type)
    if by_type:
        pred = pred.assign(cell_type=mapped.to_numpy())
        expt = expt.loc[expt["CellType"].isin(set(mapped))].reset_index(drop=True)
    if genes is not None:  # the gene universe: pairs of other genes are left out
        known = set(genes["gene"].astype(str)) if "gene" in genes.columns else set()
        expt = expt.loc[expt["measuredGeneSymbol"].astype(str).isin(known)].reset_index(drop=True)
        if len(expt) == 0:
            raise ValueError("no gene of the CRISPR pairs is in genes=")
    agg = _overlap_scores(expt, pred, aggregate, by_type)
    predicted = np.isfinite(agg)
    out = pd.DataFrame(
        {
            "chrom": expt["chrom"].astype(str).to_numpy(),
            "chromStart": expt["chromStart"].to_numpy(dtype=np.int64),
            "chromEnd": expt["chromEnd"].to_numpy(dtype=np.int64),
            "measuredGeneSymbol": expt["measuredGeneSymbol"].astype(str).to_numpy(),
            "CellType": expt["CellType"].to_numpy(),
            "Regulated": expt["Regulated"].to_numpy(dtype=bool),
            "distance": _distances(expt, genes),
            "predicted": predicted,
            name: np.where(predicted, agg, float(fill)),
        }
    )
    return out


def _overlap_scores(expt: pd.DataFrame, pred: pd.DataFrame, aggregate: str, by_type: bool):
    """Per pair, the aggregate of the scores of overlapping predicted elements of its gene
    (NaN where none). Coordinates are compared as closed intervals, as GenomicRanges does
    with the BED columns the pipeline passes it: elements sharing an end base overlap.
    """
    e_key = expt["chrom"].astype(str) + "\t" + expt["measuredGeneSymbol"].astype(str)
    p_key = pred["chrom"] + "\t" + pred["gene"]
    if by_type:
        e_key = e_key + "\t" + expt["CellType"]
        p_key = p_key + "\t" + pred["cell_type"]
    left = pd.DataFrame(
        {
            "pair": np.arange(len(expt)),
            "key": e_key.to_numpy(),
            "e_start": expt["chromStart"].to_numpy(dtype=np.int64),
            "e_end": expt["chromEnd"].to_numpy(dtype=np.int64),
        }
    )
    right = pd.DataFrame(
        {
            "key": p_key.to_numpy(),
            "p_start": pred["start"].to_numpy(),
            "p_end": pred["end"].to_numpy(),
            "value": pred["value"].to_numpy(),
        }
    )
    right = right.loc[right["key"].isin(set(left["key"]))]
    hits = left.merge(right, on="key", how="inner")
    hits = hits.loc[(hits["p_start"] <= hits["e_end"]) & (hits["p_end"] >= hits["e_start"])]
    agg = hits.groupby("pair")["value"].agg(aggregate)
    out = np.full(len(expt), np.nan)
    out[agg.index.to_numpy()] = agg.to_numpy(dtype=np.float64)
    return out


# ---------------------------------------------------------------------------- the PR curve


def pr_points(
    score: np.ndarray, label: np.ndarray, weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall at each distinct score threshold, highest threshold first.

    Returns ``(threshold, precision, recall)``: at threshold ``t`` the pairs scoring at
    least ``t`` are called positive. ``weight`` counts each pair that many times (0 leaves
    it out, as a bootstrap sample does).
    """
    score = np.asarray(score, dtype=np.float64)
    label = np.asarray(label, dtype=bool)
    w = np.ones(len(score)) if weight is None else np.asarray(weight, dtype=np.float64)
    order = np.argsort(-score, kind="stable")
    s, y, w = score[order], label[order], w[order]
    keep = w > 0
    s, y, w = s[keep], y[keep], w[keep]
    if len(s) == 0:
        return np.empty(0), np.empty(0), np.empty(0)
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True))  # last pair of each threshold
    tp = np.cumsum(w * y)[last]
    called = np.cumsum(w)[last]
    n_pos = tp[-1]
    recall = tp / n_pos if n_pos > 0 else np.full(len(tp), np.nan)
    return s[last], tp / called, recall


def auprc_from_points(precision: np.ndarray, recall: np.ndarray) -> float:
    """Trapezoid rule over the points, highest threshold first, leaving out the last point
    (the lowest score, where every pair is called and the unpredicted pairs enter).
    """
    p, r = precision[:-1], recall[:-1]
    if len(p) < 2:
        return 0.0
    return float(np.sum((r[1:] - r[:-1]) * (p[1:] + p[:-1]) / 2))


def precision_at_recall(precision: np.ndarray, recall: np.ndarray, min_recall: float) -> float:
    """Precision at the first threshold whose recall reaches ``min_recall`` (all points)."""
    ok = recall >= min_recall
    if not ok.any():
        return float("nan")
    first = recall[ok].min()
    return float(precision[recall == first].max())


def auprc(score: np.ndarray, label: np.ndarray) -> float:
    """AUPRC as CRISPR_comparison computes it (see :func:`evaluate_crispr`)."""
    label = np.asarray(label, dtype=bool)
    if label.all() or not label.any():
        return float("nan")
    _, p, r = pr_points(score, label)
    return auprc_from_points(p, r)


def _bootstrap(scores: dict[str, np.ndarray], label: np.ndarray, n_boot: int, seed: int, conf):
    """Percentile intervals of each predictor's AUPRC over pairs resampled with replacement
    (the same resamples for every predictor).
    """
    n = len(label)
    rng = np.random.default_rng(seed)
    values = {k: [] for k in scores}
    for _ in range(n_boot):
        counts = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        n_pos = counts[label].sum()
        if n_pos == 0 or n_pos == counts.sum():
            continue
        for k, s in scores.items():
            _, p, r = pr_points(s, label, counts)
            values[k].append(auprc_from_points(p, r))
    tail = (1 - conf) / 2 * 100
    out = {}
    for k, v in values.items():
        out[k] = tuple(np.percentile(v, [tail, 100 - tail])) if v else (np.nan, np.nan)
    return out


# ---------------------------------------------------------------------------- the evaluation


def evaluate_crispr(
    predictions: pd.DataFrame | str | os.PathLike | MuData,
    crispr: pd.DataFrame | str | os.PathLike,
    *,
    score: str = "Score",
    name: str = "grids",
    aggregate: str = "sum",
    fill: float = 0.0,
    cell_type: str | Mapping[str, str] | None = None,
    n_boot: int = 1000,
    keys: str | Sequence[str] | None = None,
    genes: pd.DataFrame | None = None,
    conf: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Score enhancer–gene predictions against CRISPRi ground truth (the ENCODE benchmark).

    Follows EngreitzLab's CRISPR_comparison pipeline, which ENCODE-rE2G and scE2G are judged
    by: the tested element–gene pairs with ``ValidConnection`` ``"TRUE"`` are labelled by
    ``Regulated``; each gets the scores of the predicted elements of the same gene that
    overlap it, aggregated; pairs no predicted element overlaps get ``fill``. The distance
    from the element's centre to the gene's TSS, smaller first, is the baseline on the same
    pairs.

    Parameters
    ----------
    predictions
        E2G predictions (``chr``, ``start``, ``end``, ``TargetGene``, ``CellType`` and the
        ``score`` column): a DataFrame, a path to a tab-separated file (gzip read by
        suffix), or a MuData holding grids-sc results, converted by
        :func:`grids_sc.io.e2g_table` (the table ``write_links(format="e2g")`` writes; its
        ``Score`` is the peak's effect alone in the searched direction, its ``CellType`` the
        result's group).
    crispr
        The benchmark's pairs (e.g. :func:`grids_sc.datasets.crispr_benchmark`) or a path
        to such a file: ``chrom``, ``chromStart``, ``chromEnd``, ``measuredGeneSymbol``,
        ``Regulated``, and ``ValidConnection`` (read as text; ``"TRUE"`` or a boolean
        ``True`` is valid), ``CellType``, ``startTSS``/``endTSS`` where present.
    score
        The predictions' score column (larger = stronger link), e.g. ``"powerlaw.Score"``
        for ABC; ``"Score"`` (default) for grids-sc exports and ENCODE-rE2G.
    name
        The predictor's row in the result.
    aggregate
        How the scores of several predicted elements overlapping one tested element are
        combined: ``"sum"`` (the pipeline's default for ABC), ``"max"`` or ``"mean"``.
    fill
        The score of pairs no predicted element overlaps.
    cell_type
        Which experiment cell type the predictions are for. ``None``: when the predictions
        hold one cell type, every pair of the CRISPR table is used whatever its cell type;
        when they hold several, each is matched to the experiment's cell type of the same
        name, and the pairs of those cell types are used. A string: the experiment cell type
        of the (one-cell-type) predictions; only its pairs are used. A dict maps prediction
        cell types to experiment cell types (others keep their name).
    n_boot
        Bootstrap resamples of the pairs for the AUPRC interval (0: none).
    keys
        With a MuData: the result keys to export (default all; one method).
    genes
        A gene table with ``gene``, ``start``, ``end``, ``strand`` (e.g.
        :func:`grids_sc.datasets.gene_bounds`, the pipeline's gene universe): the distance
        baseline then takes each gene's TSS from it (``start`` on ``+``, ``end`` on ``-``)
        and pairs of genes not in it are left out, as the pipeline does with its gene
        universe (that file). Default: the CRISPR table's own ``distanceToTSS`` (the
        benchmark files of Gschwind et al. have it, computed from that gene universe), else
        the centre of its ``startTSS``/``endTSS``.
    conf
        Level of the bootstrap interval.
    seed
        Seed of the bootstrap.

    Returns
    -------
    DataFrame
        Indexed by predictor: ``name`` and ``distance``. Columns: ``auprc`` (trapezoid rule
        over the precision–recall points of the distinct score thresholds, highest first,
        leaving out the point of the lowest score, where the filled pairs enter, as the
        pipeline computes it), ``auprc_low`` and ``auprc_high`` (percentile bootstrap
        interval over pairs), ``precision_at_70_recall`` (precision at the highest threshold
        with recall at least 70%), ``n_pairs``, ``n_positives``, ``n_predicted`` (pairs a
        predicted element overlaps; all pairs with a TSS for the baseline), and the AUPRC of
        the pairs in each distance bin: ``auprc_0_20kb`` (0–20 kb), ``auprc_20_100kb`` and
        ``auprc_100_2500kb`` (NaN for a bin without positives or negatives).

    Raises
    ------
    ValueError
        When a table lacks a required column, a cell type does not map, ``aggregate`` is
        unknown, or there are not both positive and negative pairs.
    KeyError
        When ``score`` is not a column of the predictions.

    Warns
    -----
    UserWarning
        When pairs have no TSS (the baseline scores them lowest).
    """
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    if not 0 < conf < 1:
        raise ValueError(f"conf must be between 0 and 1, got {conf}")
    pairs = crispr_pairs(predictions, crispr, score=score, name=name, aggregate=aggregate,
                         fill=fill, cell_type=cell_type, keys=keys, genes=genes)  # fmt: skip
    label = pairs["Regulated"].to_numpy(dtype=bool)
    if label.all() or not label.any():
        raise ValueError(
            f"the {len(pairs)} evaluated pairs are all {'positive' if label.any() else 'negative'}"
            "; AUPRC needs both"
        )
    dist = pairs["distance"].to_numpy(dtype=np.float64)
    no_tss = ~np.isfinite(dist)
    if no_tss.any():
        genes_missing = sorted(set(pairs.loc[no_tss, "measuredGeneSymbol"]))
        warnings.warn(
            f"{int(no_tss.sum())} pairs have no TSS (genes {genes_missing[:5]}); the distance "
            "baseline scores them lowest (pass genes=grids.datasets.gene_bounds() for TSSs)",
            UserWarning,
            stacklevel=2,
        )
    scores = {
        name: pairs[name].to_numpy(dtype=np.float64),
        BASELINE: np.where(no_tss, -np.inf, -dist),
    }
    rows = {}
    ci = _bootstrap(scores, label, n_boot, seed, conf) if n_boot else {}
    for key, s in scores.items():
        _, p, r = pr_points(s, label)
        row = {
            "auprc": auprc_from_points(p, r),
            "auprc_low": ci.get(key, (np.nan, np.nan))[0],
            "auprc_high": ci.get(key, (np.nan, np.nan))[1],
            "precision_at_70_recall": precision_at_recall(p, r, MIN_RECALL),
            "n_pairs": len(label),
            "n_positives": int(label.sum()),
            "n_predicted": int(pairs["predicted"].sum()) if key == name else int((~no_tss).sum()),
        }
        for lo, hi, tag in DISTANCE_BINS:
            inside = (dist >= lo if lo == 0 else dist > lo) & (dist <= hi)
            row[f"auprc_{tag}"] = auprc(s[inside], label[inside])
        rows[key] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "predictor"
    return table
