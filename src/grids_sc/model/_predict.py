"""Batched prediction with a surrogate on CSR accessibility."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from ._batch import make_batch
from ._surrogate import Surrogate


@torch.no_grad()
def predict_expression(
    module: Surrogate,
    x: sp.csr_matrix,
    *,
    genes: np.ndarray | None = None,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """``F(x)`` for every row of ``x`` (``[n_cells, n_genes]`` or the given gene columns)."""
    module.eval().to(device)
    peak_chrom = module.atac_encoder.peak_chrom.cpu().numpy()
    gidx = (
        None
        if genes is None
        else torch.as_tensor(np.asarray(genes), dtype=torch.long, device=device)
    )
    out = []
    for start in range(0, x.shape[0], batch_size):
        batch = make_batch(x[start : start + batch_size], peak_chrom, module.config.n_chrom).to(
            device
        )
        out.append(module(batch, gidx).cpu().numpy())
    n_out = module.config.n_genes if genes is None else len(genes)
    return np.concatenate(out) if out else np.zeros((0, n_out), dtype=np.float32)
