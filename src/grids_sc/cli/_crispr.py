"""``grids crispr``: score E2G predictions (or stored results) against a CRISPR benchmark file."""

from __future__ import annotations

import argparse
import textwrap
from functools import partial
from pathlib import Path

import pandas as pd

from .._crispr import AGGREGATES
from ._files import read_h5mu, write_text
from ._options import CLIError, add_function_options, add_table_option, function_kwargs

EXAMPLE = """\
example:
  grids crispr ABC_K562_Fulco2019Genes_GRCh38.tsv.gz \\
      EPCrisprBenchmark_Fulco2019_K562_GRCh38.tsv.gz \\
      --score powerlaw.Score --name ABC --genes CollapsedGeneBounds.hg38.bed
  grids crispr explained.h5mu EPCrisprBenchmark_combined_data.training_K562.GRCh38.tsv.gz \\
      --cell-type K562 --table crispr.tsv

PREDICTIONS is an ENCODE E2G file (as 'grids export -f e2g' writes) or an .h5mu with
grids-sc results (exported the same way; --keys picks them). The table has a row for the
predictor and one for the distance-to-TSS baseline on the same pairs.
"""


def _read_genes(value: str | None) -> pd.DataFrame | None:
    """A BED6 gene table (chrom start end gene score strand, a header line allowed)."""
    if value is None:
        return None
    path = Path(value)
    if not path.exists():
        raise CLIError(f"gene table {value!r} not found")
    table = pd.read_csv(path, sep="\t", header=None, comment="#", dtype=str)
    if table.shape[1] < 6:
        raise CLIError(f"gene table {value!r} needs 6 BED columns (…, gene, score, strand)")
    if not str(table.iloc[0, 1]).isdigit():  # a header line
        table = table.iloc[1:]
    table = table.iloc[:, :6].copy()
    table.columns = ["chrom", "start", "end", "gene", "score", "strand"]
    table["start"] = table["start"].astype(int)
    table["end"] = table["end"].astype(int)
    return table.reset_index(drop=True)


def add_crispr(sub, common) -> None:
    """``grids crispr``."""
    from .. import tl

    p = sub.add_parser(
        "crispr",
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="score links against CRISPRi ground truth (grids.tl.evaluate_crispr)",
        description=textwrap.fill(
            "Score enhancer-gene predictions against a CRISPR benchmark file as the ENCODE "
            "pipeline CRISPR_comparison does (grids.tl.evaluate_crispr): AUPRC with a "
            "bootstrap interval, precision at 70% recall and AUPRC by distance, with the "
            "distance-to-TSS baseline.",
            width=88,
        ),
        epilog=EXAMPLE,
    )
    p.add_argument("predictions", metavar="PREDICTIONS", help="E2G file (.tsv/.tsv.gz) or .h5mu")
    p.add_argument("crispr", metavar="CRISPR", help="the benchmark's pairs (.tsv/.tsv.gz)")
    add_table_option(p)
    p.add_argument(
        "--genes",
        metavar="BED",
        default=None,
        help="gene bounds (BED6 with strand, e.g. CollapsedGeneBounds.hg38.bed): the TSS of "
        "the distance baseline, and the gene universe (default: the CRISPR file's distances)",
    )
    names = add_function_options(
        p,
        tl.evaluate_crispr,
        skip={"predictions", "crispr", "genes"},
        choices={"aggregate": AGGREGATES},
    )
    p.set_defaults(run=partial(_crispr, names=names))


def _crispr(args, say, names) -> None:
    from .. import tl

    kwargs = function_kwargs(args, names)
    predictions = args.predictions
    if not Path(predictions).exists():
        raise CLIError(f"predictions {predictions!r} not found")
    if predictions.endswith(".h5mu"):
        say(f"reading {predictions}")
        predictions = read_h5mu(predictions)
    if not Path(args.crispr).exists():
        raise CLIError(f"CRISPR file {args.crispr!r} not found")
    genes = _read_genes(args.genes)
    table = tl.evaluate_crispr(predictions, args.crispr, genes=genes, **kwargs).reset_index()
    sep = "," if args.table.endswith(".csv") else "\t"
    write_text(args.table, lambda fh: table.to_csv(fh, sep=sep, index=False, na_rep="NA"))
    best = table.set_index("predictor")["auprc"]
    say(", ".join(f"{k} AUPRC {v:.3f}" for k, v in best.items()))
    if args.table != "-":
        say(f"wrote the table to {args.table}")
