"""Convert a fitted surrogate to and from plain arrays and dicts (for ``.uns``), never pickles."""

from __future__ import annotations

import numpy as np
import torch

from ._surrogate import Surrogate, SurrogateConfig


def surrogate_to_record(module: Surrogate) -> dict:
    """Weights as ``{name: ndarray}`` and the architecture as a plain dict."""
    weights = {
        name.replace(".", "__"): t.detach().cpu().numpy().copy()
        for name, t in module.state_dict().items()
    }
    return {"architecture": module.config.to_dict(), "weights": weights}


def surrogate_from_record(record: dict) -> Surrogate:
    """Rebuild a :class:`Surrogate` in eval mode on the CPU from :func:`surrogate_to_record`."""
    config = SurrogateConfig.from_dict(dict(record["architecture"]))
    weights = {
        k.replace("__", "."): torch.as_tensor(np.asarray(v)) for k, v in record["weights"].items()
    }
    module = Surrogate(config, weights["atac_encoder.peak_chrom"])
    module.load_state_dict(weights)
    module.eval()
    return module
