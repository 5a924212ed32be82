"""The pipeline subcommands: ``fit``, ``explain``, ``attribute``, ``evaluate``, ``export``.

Each reads an ``.h5mu``, runs the Python function of the same name with the options given,
and writes the result; options are made from the function's signature (see ``_options``).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import textwrap
from functools import partial
from pathlib import Path

import pandas as pd

from .. import _records as records
from ._files import atomic_path, output_target, read_h5mu, write_h5mu, write_text
from ._options import (
    CLIError,
    add_function_options,
    add_table_option,
    function_kwargs,
    parameter_docs,
    parse_gene_set,
    parse_param,
)

FORMAT_SUFFIXES = {
    ".bedpe": "bedpe",
    ".interact": "interact",
    ".inter.bed": "interact",
    ".interact.bed": "interact",
    ".tsv": "tsv",
    ".txt": "tsv",
    ".e2g": "e2g",
    ".e2g.tsv": "e2g",
    ".e2g.tsv.gz": "e2g",
    ".tsv.gz": "e2g",
}
RAW = argparse.RawDescriptionHelpFormatter


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=88)


def _io_options(p: argparse.ArgumentParser, *, required: bool = True, what: str = "") -> None:
    p.add_argument("input", metavar="INPUT.h5mu", help="the MuData to read")
    out = p.add_mutually_exclusive_group(required=required)
    out.add_argument(
        "-o",
        "--output",
        metavar="OUTPUT.h5mu",
        help=f"write the MuData{what} here (written whole to a temporary file, then moved "
        "into place, so a failed run leaves no partial file)"
        + ("" if required else "; default: the input is not rewritten"),
    )
    out.add_argument(
        "--inplace",
        action="store_true",
        help="rewrite INPUT.h5mu instead (safely, as for --output)",
    )


def _gene_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("genes (at least one of)")
    g.add_argument(
        "-g",
        "--gene",
        dest="genes",
        nargs="+",
        action="extend",
        default=[],
        metavar="GENE",
        help="gene(s) to explain, one run each (repeatable)",
    )
    g.add_argument(
        "--gene-set",
        dest="gene_sets",
        action="append",
        type=parse_gene_set,
        default=[],
        metavar="NAME=GENE1,GENE2",
        help="a gene set searched with the gene-set objective (mean relative change over the "
        "set), stored as NAME (repeatable)",
    )


def _gene_arg(args) -> list[str] | dict[str, list[str]]:
    """The ``gene`` argument: the genes (one run each) or, with sets, ``{name: genes}``.

    A gene is the one-gene set of its name to ``explain``, so one call runs them all (and an
    executor gets every task at once).
    """
    if not args.genes and not args.gene_sets:
        raise CLIError("give --gene and/or --gene-set")
    genes = list(dict.fromkeys(args.genes))
    if not args.gene_sets:
        return genes
    sets = {g: [g] for g in genes}
    for name, members in args.gene_sets:
        if name in sets:
            raise CLIError(f"gene set name {name!r} is given twice (as a gene or a set)")
        sets[name] = members
    return sets


def _finish(mdata, args, say, what: str) -> None:
    target = output_target(args)
    if target is None:
        return
    say(f"writing {target}")
    write_h5mu(mdata, target)
    say(f"wrote {what} to {target}")


def _read(args, say):
    say(f"reading {args.input}")
    mdata = read_h5mu(args.input)
    mods = ", ".join(f"{k} {v.n_vars}" for k, v in mdata.mod.items())
    say(f"read {mdata.n_obs} cells ({mods} features)")
    return mdata


def _results(mdata) -> dict:
    """The stored selections (records by key) after bringing the layout up to date."""
    records.upgrade(mdata)
    return dict(records.store(mdata, "selection"))


def _changed(mdata, before: dict) -> list[str]:
    return [k for k, v in records.store(mdata, "selection").items() if before.get(k) is not v]


def _report_results(mdata, keys: list[str], say) -> None:
    for rec in records.read_selections(mdata, keys) if keys else []:
        d = rec.delta
        say(
            f"{rec.key}: {len(rec.selected)} peaks, held-out Avg delta "
            f"{float(d.get('avg_test', float('nan'))):+.4f}, Rel delta "
            f"{100 * float(d.get('rel_test', float('nan'))):+.1f}%"
        )


# ---- fit -------------------------------------------------------------------------------------

FIT_EXAMPLE = """\
example:
  grids fit pbmc.h5mu -o pbmc_fit.h5mu --binarize --groupby celltype
  grids fit raw.h5mu -o fit.h5mu --binarize --gene-bounds genes.gtf --max-epochs 40

Stores the surrogate in mdata.uns['grids'][KEY_ADDED] (weights as plain arrays), which
grids explain / attribute read back with --key.
"""


def add_fit(sub, common) -> None:
    """``grids fit``."""
    from .. import tl
    from .._engine import MODELS
    from .._inputs import RNA_TRANSFORMS
    from ..model import CHROM_NORMS

    p = sub.add_parser(
        "fit",
        parents=[common],
        formatter_class=RAW,
        help="fit the surrogate (grids.tl.fit_surrogate)",
        description=_wrap(
            "Fit the surrogate F (binarised ATAC -> predicted RNA) with "
            "grids.tl.fit_surrogate and store it in the MuData."
        ),
        epilog=FIT_EXAMPLE,
    )
    _io_options(p, what=" with the fitted surrogate")
    pre = p.add_argument_group("preparation, before fitting")
    pre.add_argument(
        "--binarize",
        action="store_true",
        help="binarise the ATAC matrix first (grids.pp.binarize; into --layer when given, "
        "else .X; the written MuData holds the binary matrix)",
    )
    pre.add_argument(
        "--binarize-threshold",
        type=float,
        default=0.0,
        metavar="T",
        help="with --binarize: values > T become 1 (default: 0)",
    )
    pre.add_argument(
        "--gene-bounds",
        metavar="PATH",
        help="annotate the RNA genes with coordinates, strand and TSS from a BED, GTF/GFF or "
        "table file first (grids.pp.annotate_genes); models 'cis', 'loco' and --window need them",
    )
    names = add_function_options(
        p,
        tl.fit_surrogate,
        choices={"model": MODELS, "rna_transform": RNA_TRANSFORMS, "chrom_norm": CHROM_NORMS},
    )
    p.set_defaults(run=partial(_fit, names=names))


def _fit(args, say, names) -> None:
    from .. import pp, tl

    mdata = _read(args, say)
    if args.gene_bounds:
        say(f"annotating genes from {args.gene_bounds}")
        pp.annotate_genes(mdata, args.gene_bounds, rna=args.rna)
    if args.binarize:
        say("binarising ATAC" + (f" layer {args.layer!r}" if args.layer else ""))
        pp.binarize(
            mdata,
            atac=args.atac,
            threshold=args.binarize_threshold,
            layer=args.layer,
            key_added=args.layer,
        )
    kwargs = function_kwargs(args, names)
    say(f"fitting the {kwargs['model']!r} surrogate")
    tl.fit_surrogate(mdata, progress=not args.quiet, **kwargs)
    rec = records.read_surrogate(mdata, args.key_added)
    say(f"fitted {len(rec.genes)} genes from {len(rec.peaks)} peaks")
    _finish(mdata, args, say, f"surrogate {args.key_added!r}")


# ---- explain / attribute ---------------------------------------------------------------------

EXPLAIN_EXAMPLE = """\
example:
  grids explain fit.h5mu -o explained.h5mu -g HLA-DQB1 --groupby celltype \\
      --groups "CD14+ Monocytes" --window 250000 --restarts 3
  grids explain fit.h5mu --inplace -g CCR7 ZEB2 --groupby celltype   # every group
  grids explain fit.h5mu -o sets.h5mu --gene-set mhc2=HLA-DQB1,HLA-DRA -L 20

Each (gene, group) run is stored in mdata.uns['grids']['explain'][KEY] (KEY defaults to
grids_{gene}_{group}) with ATAC var columns {KEY}_selected, _rank, _score; see
grids export and grids evaluate for tables and browser tracks.
"""

ATTRIBUTE_EXAMPLE = """\
example:
  grids attribute fit.h5mu -m saliency -o attributed.h5mu -g HLA-DQB1 --groupby celltype \\
      --groups "CD14+ Monocytes" --window 250000
  grids attribute fit.h5mu -m lime --inplace -g CCR7 --param n_samples=500

Results are stored like grids explain's (default keys {method}_{gene}_{group}), so
grids evaluate compares them with GRIDS.
"""


def _executor_option(p, func) -> bool:
    """Add ``--executor`` when the function takes one (the distributed explain)."""
    if "executor" not in inspect.signature(func).parameters:
        return False
    p.add_argument_group("distributed runs").add_argument(
        "--executor",
        metavar="ADDRESS|N",
        default=None,
        help="run the (gene, group) tasks on a Dask scheduler at ADDRESS "
        "(e.g. tcp://host:8786) or on N local worker processes; results equal the serial "
        "run's",
    )
    return True


@contextlib.contextmanager
def _executor(value: str | None):
    """``None``, a scheduler address, or a pool of N local processes (shut down after)."""
    try:
        n = int(value) if value is not None else None
    except ValueError:
        yield value  # a scheduler address
        return
    if n is None:
        yield None
        return
    if n < 1:
        raise CLIError(f"--executor N must be at least 1, got {n}")
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(n) as pool:
        yield pool


def add_explain(sub, common) -> None:
    """``grids explain``."""
    from .. import tl
    from .._engine import DIRECTION, INIT_NAMES, MOVES, PERTURB

    p = sub.add_parser(
        "explain",
        parents=[common],
        formatter_class=RAW,
        help="find the peaks a gene depends on (grids.tl.explain)",
        description=_wrap(
            "Run the GRIDS subset search (grids.tl.explain): the L peaks whose joint "
            "closing (or opening) moves a gene's predicted expression most in a group of cells."
        ),
        epilog=EXPLAIN_EXAMPLE,
    )
    _io_options(p, what=" with the results")
    _gene_options(p)
    names = add_function_options(
        p,
        tl.explain,
        skip={"gene", "executor"},
        choices={"perturb": PERTURB, "direction": DIRECTION, "moves": MOVES, "init": INIT_NAMES},
    )
    has_executor = _executor_option(p, tl.explain)
    p.set_defaults(run=partial(_explain, names=names, has_executor=has_executor))


def _explain(args, say, names, has_executor) -> None:
    from .. import tl

    gene = _gene_arg(args)
    mdata = _read(args, say)
    kwargs = function_kwargs(args, names)
    before = _results(mdata)
    with _executor(args.executor if has_executor else None) as executor:
        if has_executor:
            kwargs["executor"] = executor
        say(f"explaining {_describe(gene)}")
        tl.explain(mdata, gene, progress=not args.quiet, **kwargs)
    _report_results(mdata, _changed(mdata, before), say)
    _finish(mdata, args, say, "the results")


def _describe(gene) -> str:
    if isinstance(gene, dict):
        return ", ".join(k if v == [k] else f"{k} ({len(v)} genes)" for k, v in gene.items())
    return ", ".join(gene)


LINKS_EXAMPLE = """\
example:
  grids links fitted.h5mu --groupby celltype -o linked.h5mu --table links.tsv
  grids links fitted.h5mu --genes CD74 HLA-DQB1 --groupby celltype --method correlation --inplace

Every expressed gene of the surrogate (or --genes) is linked to the peaks of its window in
every group, with p-values and BH q-values; --table writes the significant links
(grids.get.link_peaks_df), 'grids export --links KEY' writes them for genome browsers.
"""


def add_links(sub, common) -> None:
    """``grids links``."""
    from .. import tl
    from ..tl._links import METHODS

    p = sub.add_parser(
        "links",
        parents=[common],
        formatter_class=RAW,
        help="call peak-gene links for every gene and group (grids.tl.link_peaks)",
        description=_wrap(
            "Call peak-gene links with p-values and q-values for every expressed gene and "
            "group (grids.tl.link_peaks): cross-fitted surrogate effects, or the "
            "LinkPeaks-style correlation with --method correlation."
        ),
        epilog=LINKS_EXAMPLE,
    )
    _io_options(p, required=False, what=" with the links")
    p.add_argument(
        "-t",
        "--table",
        default=None,
        metavar="PATH",
        help="also write the significant links here (comma-separated for .csv, else "
        "tab-separated; '-' for stdout)",
    )
    names = add_function_options(p, tl.link_peaks, skip={"executor"}, choices={"method": METHODS})
    has_executor = _executor_option(p, tl.link_peaks)
    p.set_defaults(run=partial(_links, names=names, has_executor=has_executor))


def _links(args, say, names, has_executor) -> None:
    from .. import get, tl

    mdata = _read(args, say)
    kwargs = function_kwargs(args, names)
    with _executor(args.executor if has_executor else None) as executor:
        if has_executor:
            kwargs["executor"] = executor
        tl.link_peaks(mdata, progress=not args.quiet, **kwargs)
    key = kwargs.get("key_added", "links")
    table = get.link_peaks_df(mdata, key, significant=True)
    say(f"{len(table)} significant link(s) in uns['grids']['links'][{key!r}]")
    if args.table is not None:
        sep = "," if args.table.endswith(".csv") else "\t"
        write_text(args.table, lambda fh: table.to_csv(fh, sep=sep, index=False, na_rep="NA"))
    _finish(mdata, args, say, "the links")


def add_attribute(sub, common) -> None:
    """``grids attribute``."""
    from .. import tl
    from .._engine import DIRECTION, PERTURB
    from ..attribution import METHODS

    p = sub.add_parser(
        "attribute",
        parents=[common],
        formatter_class=RAW,
        help="rank peaks by a baseline method (grids.tl.attribute)",
        description=_wrap(
            "Rank a gene's peaks by a baseline attribution method and keep the top L "
            "(grids.tl.attribute), stored and scored like grids explain's results."
        ),
        epilog=ATTRIBUTE_EXAMPLE,
    )
    _io_options(p, what=" with the results")
    p.add_argument(
        "-m", "--method", required=True, choices=list(METHODS), help="the attribution method"
    )
    _gene_options(p)
    docs = parameter_docs(tl.attribute)
    docs["key_added"] = (
        "Result key (one run) or key prefix (several runs); default {method}_{gene}_{group}."
    )
    names = add_function_options(
        p,
        tl.attribute,
        skip={"gene", "method", "executor"},
        choices={"perturb": PERTURB, "direction": DIRECTION},
        docs=docs,
    )
    has_executor = _executor_option(p, tl.attribute)
    p.add_argument(
        "--param",
        dest="method_kwargs",
        action="append",
        type=parse_param,
        default=[],
        metavar="NAME=VALUE",
        help="a keyword argument of the method, e.g. n_samples=500 for lime, nt_samples=20 for "
        "smoothgrad, n_permutations=64 for sage (repeatable; numbers and true/false are "
        "converted)",
    )
    p.set_defaults(run=partial(_attribute, names=names, has_executor=has_executor))


def _attribute(args, say, names, has_executor) -> None:
    from .. import tl

    gene = _gene_arg(args)
    mdata = _read(args, say)
    kwargs = function_kwargs(args, names) | dict(args.method_kwargs)
    before = _results(mdata)
    with _executor(args.executor if has_executor else None) as executor:
        if has_executor:
            kwargs["executor"] = executor
        say(f"{args.method}: {_describe(gene)}")
        tl.attribute(mdata, gene, args.method, progress=not args.quiet, **kwargs)
    _report_results(mdata, _changed(mdata, before), say)
    _finish(mdata, args, say, "the results")


# ---- evaluate --------------------------------------------------------------------------------

EVALUATE_EXAMPLE = """\
example:
  grids evaluate explained.h5mu --table evaluation.tsv
  grids evaluate explained.h5mu --pchic pbmc10k --table evaluation.csv --inplace
  grids evaluate explained.h5mu > evaluation.tsv

The table is also stored in mdata.uns['grids'][KEY_ADDED] when the MuData is written
(--output or --inplace).
"""


def add_evaluate(sub, common) -> None:
    """``grids evaluate``."""
    from .. import tl

    p = sub.add_parser(
        "evaluate",
        parents=[common],
        formatter_class=RAW,
        help="compare stored results in one table (grids.tl.evaluate)",
        description=_wrap(
            "Tabulate every stored explain/attribute result (grids.tl.evaluate): "
            "held-out effects, hit rates near the gene, PCHi-C enrichment, and, on simulated "
            "data, the planted CREs found."
        ),
        epilog=EVALUATE_EXAMPLE,
    )
    _io_options(p, required=False, what=" with the table in .uns")
    add_table_option(p)
    p.add_argument(
        "--pchic",
        metavar="PATH|pbmc10k",
        default=None,
        help="promoter-capture Hi-C support: a CSV/TSV with columns tile, gene, celltype, "
        "pchic_significant, or 'pbmc10k' for the support shipped with the PBMC tiles "
        "(grids.datasets.pchic_support); default: no PCHi-C columns",
    )
    names = add_function_options(p, tl.evaluate, skip={"pchic"})
    p.set_defaults(run=partial(_evaluate, names=names))


def _read_pchic(value: str | None) -> pd.DataFrame | None:
    if value is None:
        return None
    if value == "pbmc10k":
        from ..datasets import pchic_support

        return pchic_support()
    path = Path(value)
    if not path.exists():
        raise CLIError(f"PCHi-C file {value!r} not found")
    sep = "," if ".csv" in path.suffixes else "\t"
    return pd.read_csv(path, sep=sep)


def _evaluate(args, say, names) -> None:
    from .. import tl

    pchic = _read_pchic(args.pchic)
    mdata = _read(args, say)
    table = tl.evaluate(mdata, pchic=pchic, **function_kwargs(args, names))
    sep = "," if args.table.endswith(".csv") else "\t"
    write_text(args.table, lambda fh: table.to_csv(fh, sep=sep, index=False, na_rep="NA"))
    if args.table != "-":
        say(f"wrote the evaluation of {len(table)} results to {args.table}")
    _finish(mdata, args, say, f"the table (uns['grids'][{args.key_added!r}])")


# ---- export ----------------------------------------------------------------------------------

EXPORT_EXAMPLE = """\
example:
  grids export explained.h5mu -o links.bedpe                  # IGV, bedtools
  grids export explained.h5mu -o links.interact.bed --value restored   # UCSC interact
  grids export explained.h5mu -o links.tsv --keys "grids_HLA-DQB1_CD14+ Monocytes"
  grids export explained.h5mu -o grids.e2g.tsv.gz   # ENCODE E2G, for the CRISPR benchmark

The format follows the suffix (.bedpe; .interact, .inter.bed or .interact.bed; .tsv or .txt;
.e2g, .e2g.tsv or .tsv.gz for ENCODE E2G predictions) unless --format is given. Browser and
E2G formats link each selected peak to its gene's TSS and need gene coordinates with a
strand in the RNA var (grids fit --gene-bounds). Score E2G files with 'grids crispr'.
"""


def add_export(sub, common) -> None:
    """``grids export``."""
    from .. import io
    from .._records import PEAK_VALUES

    p = sub.add_parser(
        "export",
        parents=[common],
        formatter_class=RAW,
        help="write peak-gene links for genome browsers (grids.io.write_links)",
        description=_wrap(
            "Write the stored results as peak-gene links (grids.io.write_links): IGV "
            "BEDPE, UCSC interact, the tidy table of grids.get.links as TSV, or ENCODE E2G "
            "predictions for the CRISPR enhancer-gene benchmark."
        ),
        epilog=EXPORT_EXAMPLE,
    )
    p.add_argument("input", metavar="INPUT.h5mu", help="the MuData to read")
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="the file to write")
    p.add_argument(
        "-f",
        "--format",
        choices=list(io.FORMATS),
        default=None,
        help="the file format (default: from the suffix of --output)",
    )
    names = add_function_options(
        p, io.write_links, skip={"path", "format"}, choices={"value": PEAK_VALUES}
    )
    p.set_defaults(run=partial(_export, names=names))


def export_format(path: str, given: str | None) -> str:
    """``given``, else the format the suffix of ``path`` names."""
    if given is not None:
        return given
    name = Path(path).name.lower()
    for suffix, fmt in sorted(FORMAT_SUFFIXES.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return fmt
    raise CLIError(
        f"cannot tell the format of {path!r} from its suffix "
        f"({', '.join(FORMAT_SUFFIXES)}); pass --format"
    )


def _export(args, say, names) -> None:
    from .. import io

    fmt = export_format(args.output, args.format)
    mdata = _read(args, say)
    with atomic_path(args.output) as tmp:
        io.write_links(mdata, tmp, format=fmt, **function_kwargs(args, names))
    say(f"wrote {fmt} links to {args.output}")
