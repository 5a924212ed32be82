"""The torch backend of the surrogate: modules, sparse batches, training and serialisation.

Nothing here knows about AnnData; :mod:`grids_sc.tl` moves data in and out.
"""

from ._atac import (
    CHROM_NORMS,
    AtacDecoder,
    SparseAtacEncoder,
    atac_reconstruction_loss,
    focal_bce,
    normalise_pooled,
)
from ._batch import AtacBatch, make_batch
from ._cis import CisConfig, CisHeads, CisSurrogate
from ._cis_incremental import CisIncremental
from ._cis_train import CisTrainConfig, fit_cis_heads, shared_latent
from ._incremental import IncrementalModel, IncrementalSurrogate, Objective
from ._incremental_sum import EmbeddingSumIncremental, EmbeddingSumState
from ._loco import LocoHeads, LocoSurrogate
from ._loco_incremental import LocoIncremental
from ._loco_train import fit_loco_state, loco_cell_state
from ._predict import predict_expression
from ._record import surrogate_from_record, surrogate_to_record
from ._surrogate import RnaDecoder, Surrogate, SurrogateConfig
from ._train import PHASES, TrainConfig, fit_surrogate_module

__all__ = [
    "CHROM_NORMS",
    "PHASES",
    "AtacBatch",
    "AtacDecoder",
    "CisConfig",
    "CisHeads",
    "CisIncremental",
    "CisSurrogate",
    "CisTrainConfig",
    "EmbeddingSumIncremental",
    "EmbeddingSumState",
    "IncrementalModel",
    "IncrementalSurrogate",
    "LocoHeads",
    "LocoIncremental",
    "LocoSurrogate",
    "Objective",
    "RnaDecoder",
    "SparseAtacEncoder",
    "Surrogate",
    "SurrogateConfig",
    "TrainConfig",
    "atac_reconstruction_loss",
    "fit_cis_heads",
    "shared_latent",
    "fit_loco_state",
    "fit_surrogate_module",
    "focal_bce",
    "loco_cell_state",
    "make_batch",
    "normalise_pooled",
    "predict_expression",
    "surrogate_from_record",
    "surrogate_to_record",
]
