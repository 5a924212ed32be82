"""Convert a fitted surrogate to and from plain arrays and dicts (for ``.uns``), never pickles."""

from __future__ import annotations

import numpy as np
import torch

from ._cis import CisConfig, CisSurrogate
from ._ensemble import SurrogateEnsemble
from ._loco import LocoSurrogate
from ._surrogate import Surrogate, SurrogateConfig

MEMBER = "members__{}__"  # prefix of member i's weights in an ensemble's record


def surrogate_to_record(
    module: Surrogate | CisSurrogate | LocoSurrogate | SurrogateEnsemble,
) -> dict:
    """Weights as ``{name: ndarray}`` and the architecture as a plain dict.

    The architecture of a :class:`~grids_sc.model.CisSurrogate` also holds its head sizes
    under ``"cis"``, that of a :class:`~grids_sc.model.LocoSurrogate` under ``"loco"``. A
    :class:`~grids_sc.model.SurrogateEnsemble` stores its members' architecture (they share
    it) with ``"members"``: their number, and member ``i``'s weights under names that start
    with ``members__{i}__``.
    """
    if isinstance(module, SurrogateEnsemble):
        recs = [surrogate_to_record(m) for m in module.members]
        weights = {
            MEMBER.format(i) + k: v for i, rec in enumerate(recs) for k, v in rec["weights"].items()
        }
        return {
            "architecture": {**recs[0]["architecture"], "members": len(recs)},
            "weights": weights,
        }
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


def surrogate_from_record(
    record: dict,
) -> Surrogate | CisSurrogate | LocoSurrogate | SurrogateEnsemble:
    """Rebuild a surrogate in eval mode on the CPU from :func:`surrogate_to_record` output."""
    arch = dict(record["architecture"])
    if "members" in arch:
        n = int(np.asarray(arch.pop("members")))
        members = []
        for i in range(n):
            prefix = MEMBER.format(i)
            w = {k[len(prefix) :]: v for k, v in record["weights"].items() if k.startswith(prefix)}
            members.append(surrogate_from_record({"architecture": arch, "weights": w}))
        return SurrogateEnsemble(members).eval()
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
