"""``grids.tl.fit_surrogate`` and reading a fitted surrogate back from ``.uns``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from mudata import MuData

from .. import _records as records
from .._device import resolve_device
from .._engine import MODELS
from .._inputs import (
    atac_binary,
    group_codes,
    obs_column,
    peak_chromosomes,
    rna_values,
    split_cells,
)
from .._logging import logger as log
from .._mudata import copy_of
from .._validate import check_paired
from ..model import (
    PHASES,
    CisConfig,
    CisSurrogate,
    CisTrainConfig,
    LocoSurrogate,
    Surrogate,
    SurrogateConfig,
    TrainConfig,
    fit_cis_heads,
    fit_loco_state,
    fit_surrogate_module,
    loco_cell_state,
    shared_latent,
    surrogate_from_record,
    surrogate_to_record,
)
from ..model._atac import check_chrom_norm
from ..model._parallel import DataParallel, setup, teardown, want_distributed
from ._cis import cis_windows, screen_pairs

# fit_surrogate(chrom_norm=None)
DEFAULT_CHROM_NORM = {"grids": "center", "cis": "layer", "loco": "center"}
# model="loco" (CisTrainConfig.keep_rule, keep_margin, shrink_floor; benchmarks/README.md): a
# head whose cross-fitted validation gain is above the margin is kept whole; one below it is
# scaled by its cross-fitted least-squares scale, at least the floor where it beat the state
# alone on the validation cells at some epoch, else silent
LOCO_KEEP_RULE = "shrink"
LOCO_KEEP_MARGIN = 0.0
LOCO_SHRINK_FLOOR = 0.1
# model="loco": weight of the heads' sign-consistency penalty (CisTrainConfig.consistency);
# the benchmarks' tables are in benchmarks/README.md, "Sign-consistent heads"
LOCO_CONSISTENCY = 0.3
MIN_CELLS = 20


def fit_surrogate(
    mdata: MuData,
    *,
    rna: str = "rna",
    atac: str = "atac",
    groupby: str | None = None,
    layer: str | None = None,
    rna_layer: str | None = None,
    rna_transform: str = "auto",
    model: str = "loco",
    n_latent: int = 32,
    emb_dim: int = 32,
    chrom_hidden: int = 32,
    hidden: int = 128,
    dropout: float = 0.1,
    chrom_norm: str | None = None,
    cis_window: int = 250_000,
    cis_peaks: int | None = 16,
    cis_dim: int = 8,
    cis_hidden: int = 16,
    cis_monotone: bool = False,
    cis_consistency: float | None = None,
    cis_max_epochs: int = 300,
    max_epochs: int = 60,
    batch_size: int = 256,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    patience: int = 6,
    train_size: float = 0.7,
    validation_size: float = 0.1,
    device: str = "auto",
    seed: int = 0,
    distributed: bool | None = None,
    progress: bool = True,
    key_added: str = "surrogate",
    copy: bool = False,
) -> MuData | None:
    """Fit the surrogate ``F``: predicted expression from binarised accessibility.

    ``F(x) = clamp(RNA-decode(translate(ATAC-encode(x))), min=0)``: an embedding-sum ATAC
    autoencoder (two embeddings per peak, summed per chromosome), an RNA autoencoder, and
    affine translators between their latents, trained in three phases (ATAC autoencoder, RNA
    autoencoder, translation with expression, alignment, cycle and adversarial losses). Each
    phase stops early on validation cells.

    Parameters
    ----------
    mdata
        Paired multiome data. ATAC must be binary (see :func:`grids_sc.pp.binarize`) with
        ``var['chrom']`` (or parseable peak names); RNA normalised expression.
    rna, atac
        Names of the modalities.
    groupby
        Cell annotation (e.g. cell type) that conditions the discriminator and stratifies the
        train/validation/test split.
    layer, rna_layer
        ATAC and RNA layers to use instead of ``.X``.
    rna_transform
        ``"log1p"``, ``"none"`` or ``"auto"``, which decides from the values: integers are
        counts and get ``log1p``; non-integers with a maximum above 20 are normalised but not
        logged and get ``log1p``; other values (and data with scanpy's ``uns['log1p']``) are
        taken as log-scale and kept. Predictions are on the transformed scale. Negative
        expression (e.g. after ``sc.pp.scale``) is refused: pass ``rna_layer=`` a layer of
        counts or (log-)normalised values.
    model
        Surrogate architecture; all but ``"grids"`` need gene coordinates in the RNA
        ``var`` (``grids.pp.annotate_genes``) in the genome build of the peaks.
        ``"loco"`` (the default): every gene's cell state is trained on expression from all
        chromosomes but the gene's own (leave one chromosome out, so the state cannot absorb
        the gene's cis effects), plus a small head per gene over its screened window peaks
        (per-gene peak embeddings summed, then a two-layer network with the state), which
        can learn redundant (OR) and cooperative (AND) peaks and is trained sign-consistent
        (``cis_consistency``). A head that does not improve on the state on validation cells
        that did not pick its epoch (cross-fitted) is scaled down towards the state's
        prediction; one that never beats the state stays silent, and then no peak of the
        gene's own chromosome changes its prediction (``explain`` warns for such genes).
        ``"cis"``: the same heads, with the ATAC autoencoder's latent, fit without the
        expression, as the cell state (the default up to version 0.2: its state reads the
        gene's window too, and on very sparse genome-wide ATAC, e.g. A549 sci-CAR, it says
        little about expression). ``"grids"``: the paper's, every gene read from one shared
        latent (nearly additive in a gene's peaks, its predicted knock-out effects shrunk).
        The measured figures of all three are in the documentation (method page, "Choosing
        the architecture").
    n_latent, emb_dim, chrom_hidden, hidden, dropout
        Architecture (see :class:`grids_sc.model.SurrogateConfig`).
    chrom_norm
        How each chromosome's pooled embedding sum is normalised before its layer:
        ``"center"`` subtracts its mean and keeps its scale (how many of the chromosome's
        peaks are open still reaches the model); ``"layer"`` is the paper's layer
        normalisation, which divides the scale out. ``None``: ``"center"`` for
        ``model="grids"``, whose encoder is trained to predict expression (on sparse ATAC
        it is more accurate centred) and for ``"loco"``, and ``"layer"`` for
        ``model="cis"``, whose shared encoder only describes the cell state and is as
        accurate either way (figures: method page, "Choosing the architecture").
    cis_window
        ``model="cis"`` and ``"loco"``: peaks within this many bp of a gene body are in its
        window.
    cis_peaks
        ``model="cis"`` and ``"loco"``: keep at most this many window peaks per gene, those most
        associated with the gene on the training cells given the cell state (absolute
        partial correlation given the fitted shared ATAC latent, so peaks that merely mark
        the cell types where the gene is high are not taken for its CREs; ``"loco"``: the
        absolute correlation with what its fitted state leaves of the gene); ``None``: all.
    cis_dim, cis_hidden
        ``model="cis"`` and ``"loco"``: size of the per-gene peak embeddings and hidden
        layer.
    cis_monotone
        ``model="cis"`` and ``"loco"``: make each gene's head monotone in every window peak,
        with a direction learnt per peak (:class:`~grids_sc.model.CisConfig` ``monotone``):
        closing one more peak of a set never undoes what the set did to the gene, also for
        combinations of closed peaks that no cell shows. With ``"loco"`` the whole prediction
        is then monotone in the gene's window peaks (its state does not read them).
    cis_consistency
        ``model="cis"`` and ``"loco"``: weight of the heads' sign-consistency penalty
        (:class:`~grids_sc.model.CisTrainConfig` ``consistency``): while the heads train, a
        window peak's effect in random closings of the training cells is pulled towards the
        direction of its effect in the cells themselves, so that what a head says about
        combinations of closed peaks that no cell shows (where a search of closing peaks
        goes) does not reverse what the data say, while its OR and AND logic stays free.
        ``None``: ``0.3`` for ``"loco"``, ``0`` (none) for ``"cis"``.
    cis_max_epochs
        ``model="cis"`` and ``"loco"``: most epochs of the heads' training (each gene
        stops early on its own validation loss, usually well before).
    max_epochs, batch_size, lr, weight_decay, patience
        Training: most epochs per phase, cells per step, learning rate, AdamW weight decay,
        early-stopping patience.
    train_size, validation_size
        Fractions of cells for training and early stopping; the rest are held out.
    device
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    seed
        Makes the split and the training repeatable.
    distributed
        Data-parallel fit with :mod:`torch.distributed`, one process per device, launched
        by ``torchrun`` (see :mod:`grids_sc.distributed`). Every process calls
        ``fit_surrogate`` on the same data with the same settings; each trains on its share
        of every step's cells under ``DistributedDataParallel`` (gloo on the CPU, nccl with
        ``device="auto"`` or ``"cuda"``: each process takes the GPU of its ``LOCAL_RANK``),
        validation losses are summed over the processes so they stop together, and every
        process ends with the same fitted surrogate. A step sees about ``batch_size`` cells
        in all. ``None``: on when a process group of several processes exists or ``torchrun``
        started several; the process group is started from the ``torchrun`` environment if
        there is none (and ended afterwards).
    progress
        Show progress bars (on the first process only when distributed).
    key_added
        Stored at ``mdata.uns['grids']['surrogates'][key_added]``.
    copy
        Return a fitted copy instead of writing into ``mdata``.

    Returns
    -------
    MuData or None
        ``None``, or the copy when ``copy=True``. The record holds ``config`` (architecture,
        training and data settings), ``weights`` (plain arrays), ``peaks``, ``genes``, ``split``
        (train/validation/test cell names) and ``history`` (per-epoch losses of each phase).
    """
    params = records.call_params(locals(), drop=("mdata", "copy", "progress"))
    records.check_key(key_added)
    if not copy:
        records.check_not_view(mdata)
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    chrom_norm = check_chrom_norm(DEFAULT_CHROM_NORM[model] if chrom_norm is None else chrom_norm)
    if cis_max_epochs < 1:
        raise ValueError(f"cis_max_epochs must be at least 1, got {cis_max_epochs}")
    if cis_monotone and model == "grids":
        raise ValueError(
            "cis_monotone=True makes the per-gene cis heads monotone, and model='grids' has "
            "none; use model='loco' or 'cis', or leave cis_monotone False"
        )
    if cis_consistency is not None and not (np.isfinite(cis_consistency) and cis_consistency >= 0):
        raise ValueError(f"cis_consistency must be a number >= 0, got {cis_consistency!r}")
    if cis_consistency and model == "grids":
        raise ValueError(
            "cis_consistency trains the per-gene cis heads, and model='grids' has none; use "
            "model='loco' or 'cis', or leave cis_consistency None"
        )
    if cis_consistency is None:
        cis_consistency = LOCO_CONSISTENCY if model == "loco" else 0.0
    if not (0 < train_size < 1 and 0 < validation_size < 1 and train_size + validation_size < 1):
        raise ValueError("train_size and validation_size must be in (0, 1) and sum to less than 1")
    a_rna, a_atac = check_paired(mdata, rna, atac)
    if a_rna.n_obs < MIN_CELLS:
        raise ValueError(
            f"too few cells to fit a surrogate: {a_rna.n_obs} (need at least {MIN_CELLS})"
        )
    if a_rna.n_vars == 0 or a_atac.n_vars == 0:
        raise ValueError("the RNA and ATAC modalities must each have at least one feature")
    x = atac_binary(a_atac, layer, atac)
    y, transform = rna_values(a_rna, rna_layer, rna_transform, rna)
    peak_chrom, chroms = peak_chromosomes(a_atac, atac)
    groups, group_names = (None, [])
    if groupby is not None:
        groups, group_names = group_codes(obs_column(mdata, groupby, (rna, atac)))
    use_dist = want_distributed(distributed)
    dev = None if use_dist else resolve_device(device)

    split = split_cells(
        a_rna.n_obs, groups, seed, (train_size, validation_size, 1 - train_size - validation_size)
    )
    arch = SurrogateConfig(
        n_peaks=a_atac.n_vars,
        n_genes=a_rna.n_vars,
        n_chrom=len(chroms),
        n_groups=len(group_names),
        emb_dim=emb_dim,
        chrom_hidden=chrom_hidden,
        n_latent=n_latent,
        hidden=hidden,
        dropout=dropout,
        chrom_norm=chrom_norm,
    )
    train = TrainConfig(
        max_epochs=max_epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        patience=patience,
    )
    train_idx, val_idx = np.flatnonzero(split == 0), np.flatnonzero(split == 1)
    windows = None
    gene_chrom = None
    if model in ("cis", "loco"):  # check coordinates and settings before any fitting
        windows = cis_windows(
            a_rna, a_atac, window=cis_window, max_peaks=cis_peaks, rna=rna, atac=atac, model=model
        )
    if model == "loco":
        gene_chrom = gene_chromosomes(a_rna, chroms)
    parallel, started = (None, False)
    if use_dist:
        parallel, started = setup(device)
        dev = parallel.device
    try:
        module, history, cis_train = _fit(
            arch,
            CisHeadSettings(
                cis_peaks,
                cis_dim,
                cis_hidden,
                cis_max_epochs,
                bool(cis_monotone),
                float(cis_consistency),
            ),
            train,
            data=(peak_chrom, x, y, groups, train_idx, val_idx),
            windows=windows,
            gene_chrom=gene_chrom,
            device=dev,
            seed=seed,
            progress=progress,
            parallel=parallel,
        )
    finally:
        teardown(started)
    record = surrogate_to_record(module)
    obs = a_rna.obs_names.to_numpy().astype(str)
    entry = {
        "model": model,
        "config": {
            "architecture": record["architecture"],
            "training": train.to_dict(),
            **(
                {
                    "cis": {
                        "window": int(cis_window),
                        "max_peaks": None if cis_peaks is None else int(cis_peaks),
                        "training": cis_train.to_dict(),
                    }
                }
                if cis_train is not None
                else {}
            ),
            "data": {
                "rna": rna,
                "atac": atac,
                "layer": layer,
                "rna_layer": rna_layer,
                "rna_transform": transform,
                "groupby": groupby,
                "groups": np.asarray(group_names, dtype=str),
                "chroms": np.asarray(chroms, dtype=str),
                "seed": int(seed),
            },
        },
        "weights": record["weights"],
        "peaks": a_atac.var_names.to_numpy().astype(str),
        "genes": a_rna.var_names.to_numpy().astype(str),
        "split": {"train": obs[split == 0], "validation": obs[split == 1], "test": obs[split == 2]},
        "history": {phase: dict(h) for phase, h in history.items()},
    }
    target = copy_of(mdata) if copy else mdata
    records.write(target, "surrogate", key_added, entry, params)
    log.info("added surrogate %r (model %r) to .uns['grids']['surrogates']", key_added, model)
    return target if copy else None


@dataclass(frozen=True)
class CisHeadSettings:
    """``model="cis"``: how many window peaks each gene's head sees, its sizes and epochs."""

    max_peaks: int | None
    dim: int
    hidden: int
    max_epochs: int
    monotone: bool = False
    consistency: float = 0.0


def _fit(
    arch: SurrogateConfig,
    cis: CisHeadSettings,
    train: TrainConfig,
    *,
    data: tuple,
    windows,
    gene_chrom: np.ndarray | None = None,
    device,
    seed: int,
    progress: bool,
    parallel: DataParallel | None,
):
    """The shared surrogate's phases, then (with cis ``windows``) the screen and the heads.

    ``data`` is ``(peak_chrom, x, y, groups, train_idx, val_idx)``. With ``gene_chrom``
    (``model="loco"``) the state is the LOCO state, trained on expression.
    """
    peak_chrom, x, y, groups, train_idx, val_idx = data
    dev = device
    cis_peaks, cis_dim, cis_hidden, cis_max_epochs = (
        cis.max_peaks,
        cis.dim,
        cis.hidden,
        cis.max_epochs,
    )
    cis_train = None
    if gene_chrom is not None:
        return _fit_loco(arch, cis, train, data=data, windows=windows, gene_chrom=gene_chrom,
                         device=dev, seed=seed, progress=progress, parallel=parallel)  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = base = Surrogate(arch, torch.from_numpy(peak_chrom))
        history = fit_surrogate_module(
            base,
            x,
            y,
            groups,
            train_idx,
            val_idx,
            train,
            device=dev,
            seed=seed,
            progress=progress,
            phases=("atac",) if windows is not None else PHASES,
            parallel=parallel,
        )
        if windows is not None:
            # screen each gene's window given the cell state (the shared latent)
            x_train = x[train_idx]
            pairs = None
            if parallel is None or parallel.main:  # one screen, the same pairs on every rank
                z = shared_latent(base, x_train, dev).cpu().numpy()
                pairs = screen_pairs(*windows, x_train, y[train_idx], cis_peaks, z)
            pg, pp = parallel.broadcast(pairs) if parallel is not None else pairs
            del x_train
            cis_cfg = CisConfig(cis_dim=cis_dim, cis_hidden=cis_hidden, monotone=int(cis.monotone))
            module = CisSurrogate(
                arch, cis_cfg, torch.from_numpy(peak_chrom), torch.from_numpy(pg),
                torch.from_numpy(pp),
            )  # fmt: skip
            module.base.load_state_dict(base.state_dict())
            cis_train = CisTrainConfig(
                batch_size=train.batch_size,
                max_epochs=cis_max_epochs,
                consistency=cis.consistency,
            )
            history["cis"] = fit_cis_heads(
                module, x, y, train_idx, val_idx, cis_train, device=dev, seed=seed,
                progress=progress, parallel=parallel,
            )  # fmt: skip
    return module, history, cis_train


def _fit_loco(arch, cis, train, *, data, windows, gene_chrom, device, seed, progress, parallel):
    """``model="loco"``: the expression-trained LOCO state, then the screen (each gene's
    window peaks most correlated with what the state leaves of the gene) and the heads.
    """
    peak_chrom, x, y, groups, train_idx, val_idx = data
    cis_cfg = CisConfig(cis_dim=cis.dim, cis_hidden=cis.hidden, monotone=int(cis.monotone))
    pc, gc = torch.from_numpy(peak_chrom), torch.from_numpy(gene_chrom)
    none = torch.zeros(0, dtype=torch.long)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = LocoSurrogate(arch, cis_cfg, pc, gc, none, none)
        history = {
            "loco": fit_loco_state(
                state, x, y, train_idx, val_idx, train, device=device, seed=seed,
                progress=progress, parallel=parallel,
            )
        }  # fmt: skip
        pairs = None
        if parallel is None or parallel.main:
            x_train = x[train_idx]
            r = loco_cell_state(state, x_train, state.gene_chrom.device)[1].cpu().numpy()
            pairs = screen_pairs(*windows, x_train, y[train_idx] - r, cis.max_peaks)
            del x_train, r
        pg, pp = parallel.broadcast(pairs) if parallel is not None else pairs
        module = state.with_heads(torch.from_numpy(pg), torch.from_numpy(pp))
        cis_train = CisTrainConfig(
            batch_size=train.batch_size,
            max_epochs=cis.max_epochs,
            keep_margin=LOCO_KEEP_MARGIN,
            keep_rule=LOCO_KEEP_RULE,
            shrink_floor=LOCO_SHRINK_FLOOR,
            consistency=cis.consistency,
        )
        # the validation cells' halves for the cross-fitted keep rule, stratified like the split
        halves = split_cells(
            len(val_idx), None if groups is None else groups[val_idx], seed, (0.5, 0.5, 0.0)
        )
        history["cis"] = fit_cis_heads(
            module, x, y, train_idx, val_idx, cis_train, device=device, seed=seed,
            progress=progress, parallel=parallel, val_halves=halves,
        )  # fmt: skip
    return module, history, cis_train


def gene_chromosomes(a_rna, chroms) -> np.ndarray:
    """Each gene's chromosome code among the peaks' chromosomes ``chroms`` (``-1``: none)."""
    code = {str(c): i for i, c in enumerate(chroms)}
    return np.asarray([code.get(str(c), -1) for c in a_rna.var["chrom"]], dtype=np.int64)


@dataclass
class FittedSurrogate:
    """A surrogate read back from ``.uns`` with what the tools need to use it."""

    module: Surrogate | CisSurrogate
    key: str
    peaks: np.ndarray
    genes: np.ndarray
    rna_transform: str
    groupby: str | None
    split: dict
    entry: Mapping
    record: records.SurrogateRecord

    @property
    def rna(self) -> str:
        """The RNA modality it was fit on."""
        return self.record.rna

    @property
    def atac(self) -> str:
        """The ATAC modality it was fit on."""
        return self.record.atac

    @property
    def layer(self) -> str | None:
        """The ATAC layer it was fit on (``None``: ``.X``)."""
        return self.record.layer

    @property
    def rna_layer(self) -> str | None:
        """The RNA layer it was fit on (``None``: ``.X``)."""
        return self.record.rna_layer


def get_surrogate(
    mdata: MuData,
    key: str = "surrogate",
    *,
    rna: str | None = None,
    atac: str | None = None,
    check_genes: bool = True,
) -> FittedSurrogate:
    """Read the surrogate stored under ``key`` and check it was fit on this data's peaks/genes."""
    rec = records.read_surrogate(mdata, key)
    rna = rna or rec.rna
    atac = atac or rec.atac
    a_rna, a_atac = check_paired(mdata, rna, atac)
    _check_features(rec.peaks, a_atac.var_names.to_numpy().astype(str), "peaks", atac, key)
    if check_genes:
        _check_features(rec.genes, a_rna.var_names.to_numpy().astype(str), "genes", rna, key)
    module = surrogate_from_record(rec.module_record)
    return FittedSurrogate(
        module=module,
        key=key,
        peaks=rec.peaks,
        genes=rec.genes,
        rna_transform=rec.rna_transform,
        groupby=rec.groupby,
        split=rec.split,
        entry=records.read(mdata, "surrogate", key),
        record=rec,
    )


def _check_features(fitted: np.ndarray, current: np.ndarray, what: str, mod: str, key: str) -> None:
    if len(fitted) == len(current) and np.array_equal(fitted, current):
        return
    common = len(np.intersect1d(fitted, current))
    hint = (
        "they are the same names in another order"
        if common == len(fitted) == len(current)
        else f"{common} in common"
    )
    raise ValueError(
        f"surrogate {key!r} was fit on {len(fitted)} {what} but modality {mod!r} has "
        f"{len(current)} ({hint}); refit it on this data or subset the data to the model's {what}"
    )
