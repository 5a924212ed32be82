"""Convert a fitted surrogate to and from plain arrays and dicts (for ``.uns``), never pickles."""

from __future__ import annotations

import numpy as np
import torch

from ._cis import CisConfig, CisSurrogate
from ._loco import LocoSurrogate
from ._surrogate import Surrogate, SurrogateConfig


def surrogate_to_record(module: Surrogate | CisSurrogate | LocoSurrogate) -> dict:
    """Weights as ``{name: ndarray}`` and the architecture as a plain dict.

    The architecture of a :class:`~grids_sc.model.CisSurrogate` also holds its head sizes
    under ``"cis"``, that of a :class:`~grids_sc.model.LocoSurrogate` under ``"loco"``.
    """
    weights = {
        name.replace(".", "__"): t.detach().cpu().numpy().copy()
        for name, t in module.state_dict().items()
    }
    arch = module.config.to_dict()
    if isinstance(module, CisSurrogate):
        arch["cis"] = module.cis_config.to_dict()
    elif isinstance(module, LocoSurrogate):
        arch["loco"] = module.cis_config.to_dict()
    return {"architecture": arch, "weights": weights}


def surrogate_from_record(record: dict) -> Surrogate | CisSurrogate | LocoSurrogate:
    """Rebuild a surrogate in eval mode on the CPU from :func:`surrogate_to_record` output."""
    arch = dict(record["architecture"])
    config = SurrogateConfig.from_dict(arch)
    weights = {
        k.replace("__", "."): torch.as_tensor(np.asarray(v)) for k, v in record["weights"].items()
    }
    if "loco" in arch:
        module = LocoSurrogate(
            config,
            CisConfig.from_dict(dict(arch["loco"])),
            weights["atac_encoder.peak_chrom"],
            weights["gene_chrom"],
            weights["cis.pair_gene"],
            weights["cis.pair_peak"],
        )
    elif "cis" in arch:
        module = CisSurrogate(
            config,
            CisConfig.from_dict(dict(arch["cis"])),
            weights["base.atac_encoder.peak_chrom"],
            weights["cis.pair_gene"],
            weights["cis.pair_peak"],
        )
    else:
        module = Surrogate(config, weights["atac_encoder.peak_chrom"])
    module.load_state_dict(weights)
    module.eval()
    return module
