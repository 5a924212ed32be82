"""Sparse ATAC batches in the form the embedding-sum encoder consumes.

A batch of cells is stored as one flat list of open peaks, ordered by (cell, chromosome), with
one bag per (cell, chromosome) pair: exactly what :class:`torch.nn.EmbeddingBag` needs to sum
peak embeddings per chromosome in O(nnz) without ever forming a dense
``[cells, peaks, emb]`` tensor.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch


@dataclass
class AtacBatch:
    """Open peaks of a batch of cells, grouped in per-(cell, chromosome) bags.

    Attributes
    ----------
    indices
        Peak indices, ``int64`` of shape ``(nnz,)``, sorted by (cell, chromosome).
    offsets
        Start of each bag in ``indices``, ``int64`` of shape ``(n_cells * n_chrom,)``.
    weights
        Value of each entry (1.0 for binary data), ``float32`` of shape ``(nnz,)``.
    rows
        The cell (row within the batch) of each entry, ``int64`` of shape ``(nnz,)``.
    by_peak
        The transposed structure as a sparse CSR tensor ``[n_peaks, n_cells * n_chrom]``
        (peak -> bag), used for the backward pass of the per-chromosome sum.
    n_cells, n_chrom
        Batch size and number of chromosomes.
    """

    indices: torch.Tensor
    offsets: torch.Tensor
    weights: torch.Tensor
    rows: torch.Tensor
    by_peak: torch.Tensor
    n_cells: int
    n_chrom: int

    def to(self, device: torch.device | str) -> AtacBatch:
        """Move the batch to ``device``."""
        return AtacBatch(
            self.indices.to(device),
            self.offsets.to(device),
            self.weights.to(device),
            self.rows.to(device),
            self.by_peak.to(device),
            self.n_cells,
            self.n_chrom,
        )

    def dense(self, n_peaks: int) -> torch.Tensor:
        """The batch as a dense ``[n_cells, n_peaks]`` matrix (for small data and tests only)."""
        out = torch.zeros(
            self.n_cells, n_peaks, dtype=self.weights.dtype, device=self.weights.device
        )
        out[self.rows, self.indices] = self.weights
        return out


def make_batch(x: sp.csr_matrix, peak_chrom: np.ndarray, n_chrom: int) -> AtacBatch:
    """Build an :class:`AtacBatch` from CSR rows.

    Parameters
    ----------
    x
        ``[n_cells, n_peaks]`` CSR matrix of accessibility (binary, or values in [0, 1]).
    peak_chrom
        Chromosome code (``0 .. n_chrom - 1``) of every peak.
    n_chrom
        Number of chromosomes.
    """
    x = sp.csr_matrix(x)
    n_cells, n_peaks = x.shape
    counts = np.diff(x.indptr)
    rows = np.repeat(np.arange(n_cells, dtype=np.int64), counts)
    indices = x.indices.astype(np.int64, copy=False)
    weights = np.asarray(x.data, dtype=np.float32)
    key = rows * n_chrom + peak_chrom[indices]
    if key.size > 1 and np.any(key[1:] < key[:-1]):
        order = np.argsort(key, kind="stable")
        key, rows, indices, weights = key[order], rows[order], indices[order], weights[order]
    offsets = np.searchsorted(key, np.arange(n_cells * n_chrom, dtype=np.int64), side="left")
    by_peak = by_peak_rows(x.tocsc(), peak_chrom, n_chrom)
    return AtacBatch(
        torch.from_numpy(np.ascontiguousarray(indices)),
        torch.from_numpy(offsets.astype(np.int64)),
        torch.from_numpy(np.ascontiguousarray(weights)),
        torch.from_numpy(np.ascontiguousarray(rows)),
        by_peak,
        n_cells,
        n_chrom,
    )


def csr_tensor(indptr, indices, data, size: tuple[int, int]) -> torch.Tensor:
    """A sparse CSR tensor (int64 structure, float32 values) from CSR arrays."""
    with warnings.catch_warnings():  # torch flags sparse CSR as beta; the products are tested
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(np.asarray(indptr, dtype=np.int64)),
            torch.from_numpy(np.asarray(indices, dtype=np.int64)),
            torch.from_numpy(np.asarray(data, dtype=np.float32)),
            size=size,
        )


def by_peak_rows(xc: sp.csc_matrix, col_chrom: np.ndarray, n_chrom: int) -> torch.Tensor:
    """``by_peak`` of :class:`AtacBatch` for the columns of ``xc`` ``[n_cells, P]`` (CSC; all
    peaks or a subset), each on chromosome ``col_chrom``: ``[P, n_cells * n_chrom]`` CSR.
    """
    col = np.repeat(np.arange(xc.shape[1], dtype=np.int64), np.diff(xc.indptr))
    bag = xc.indices.astype(np.int64) * n_chrom + np.asarray(col_chrom)[col]
    return csr_tensor(xc.indptr, bag, xc.data, (xc.shape[1], xc.shape[0] * n_chrom))


def expand_ranges(start: torch.Tensor, count: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The indices ``start[i], ..., start[i] + count[i] - 1`` of every range ``i``, in order,
    and the range each comes from: ``(owner, index)``, both of length ``count.sum()``.
    """
    owner = torch.repeat_interleave(torch.arange(len(count), device=count.device), count)
    offset = torch.cumsum(count, 0) - count  # each range's first position in the output
    index = start[owner] + torch.arange(len(owner), device=count.device) - offset[owner]
    return owner, index
