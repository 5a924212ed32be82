"""The torch backend: sparse encoder equals the dense definition; gradients; training."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from grids_sc.model import (
    CHROM_NORMS,
    SparseAtacEncoder,
    Surrogate,
    SurrogateConfig,
    TrainConfig,
    atac_reconstruction_loss,
    fit_surrogate_module,
    make_batch,
    normalise_pooled,
    surrogate_from_record,
    surrogate_to_record,
)


def _random(n_cells=20, n_peaks=50, n_chrom=3, seed=0, values=False):
    rng = np.random.default_rng(seed)
    x = sp.random(n_cells, n_peaks, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    if not values:
        x.data[:] = 1.0
    chrom = np.sort(rng.integers(0, n_chrom, n_peaks))
    perm = rng.permutation(n_peaks)  # peaks need not be sorted by chromosome
    return sp.csr_matrix(x[:, perm]), chrom[perm].astype(np.int64)


def _dense_pool(enc, x_dense, chrom):
    """Definition: h_k = sum_{j in k} E_{x_j, j} with E0 summing to the offset."""
    out = enc.offset.unsqueeze(0).repeat(x_dense.shape[0], 1, 1)
    emb = x_dense.unsqueeze(-1) * enc.delta  # [cells, peaks, emb]
    return out.index_add(1, torch.from_numpy(chrom), emb)


def test_sparse_pool_matches_dense_definition():
    x, chrom = _random()
    enc = SparseAtacEncoder(torch.from_numpy(chrom), 3, emb_dim=8, chrom_hidden=4, n_latent=5)
    batch = make_batch(x, chrom, 3)
    h = enc.pool(batch)
    assert h.shape == (20, 3, 8)
    ref = _dense_pool(enc, torch.from_numpy(x.toarray()), chrom)
    torch.testing.assert_close(h, ref, atol=1e-5, rtol=1e-5)
    assert torch.equal(batch.dense(50), torch.from_numpy(x.toarray()))


def test_sparse_backward_matches_dense_for_embeddings_and_values():
    x, chrom = _random(values=True)
    enc = SparseAtacEncoder(
        torch.from_numpy(chrom), 3, emb_dim=8, chrom_hidden=4, n_latent=5
    ).eval()
    batch = make_batch(x, chrom, 3)
    batch.weights.requires_grad_(True)
    target = torch.randn(20, 5)
    ((enc(batch) - target) ** 2).sum().backward()
    g_delta, g_w = enc.delta.grad.clone(), batch.weights.grad.clone()
    enc.zero_grad()
    xd = torch.from_numpy(x.toarray()).requires_grad_(True)
    ((enc.head(_dense_pool(enc, xd, chrom)) - target) ** 2).sum().backward()
    torch.testing.assert_close(g_delta, enc.delta.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(g_w, xd.grad[batch.rows, batch.indices], atol=1e-4, rtol=1e-4)


def test_empty_cells_and_gene_subset():
    x, chrom = _random()
    x = sp.vstack([x, sp.csr_matrix((2, 50), dtype=np.float32)]).tocsr()  # two cells, no peaks
    cfg = SurrogateConfig(n_peaks=50, n_genes=4, n_chrom=3)
    mod = Surrogate(cfg, torch.from_numpy(chrom)).eval()
    batch = make_batch(x, chrom, 3)
    y = mod(batch)
    assert y.shape == (22, 4) and (y >= 0).all()
    torch.testing.assert_close(mod(batch, torch.tensor([2, 0])), y[:, [2, 0]])
    # empty cells pool to the per-chromosome constant
    torch.testing.assert_close(mod.pool(batch)[-1], mod.atac_encoder.offset)


def test_reconstruction_loss_estimate_is_unbiased():
    x, chrom = _random(n_cells=40, n_peaks=400)
    cfg = SurrogateConfig(n_peaks=400, n_genes=2, n_chrom=3)
    mod = Surrogate(cfg, torch.from_numpy(chrom))
    batch = make_batch(x, chrom, 3)
    z = mod.atac_encoder(batch).detach()
    full = float(atac_reconstruction_loss(mod.atac_decoder, z, batch, max_columns=400))
    gen = torch.Generator().manual_seed(0)
    est = [
        float(atac_reconstruction_loss(mod.atac_decoder, z, batch, 2.0, 50, gen))
        for _ in range(300)
    ]
    assert abs(np.mean(est) - full) < 0.03 * full


def test_training_reduces_losses_deterministic_and_roundtrip():
    rng = np.random.default_rng(1)
    x, chrom = _random(n_cells=300, n_peaks=60, seed=1)
    w = rng.normal(size=(60, 3)).astype(np.float32)
    y = np.log1p(np.exp(x @ w * 0.5)).astype(np.float32)
    cfg = SurrogateConfig(n_peaks=60, n_genes=3, n_chrom=3, n_groups=2, emb_dim=8, hidden=32)
    groups = rng.integers(0, 2, 300)
    tr, va = np.arange(240), np.arange(240, 300)
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        mod = Surrogate(cfg, torch.from_numpy(chrom))
        hist = fit_surrogate_module(
            mod,
            x,
            y,
            groups,
            tr,
            va,
            TrainConfig(max_epochs=8, batch_size=64),
            seed=5,
            progress=False,
        )
        weights.append(surrogate_to_record(mod)["weights"])
    for phase in ("atac", "rna", "translate"):
        assert hist[phase]["val"].min() < hist[phase]["val"][0]
    for k in weights[0]:
        np.testing.assert_array_equal(weights[0][k], weights[1][k])
    back = surrogate_from_record(surrogate_to_record(mod))
    batch = make_batch(x, chrom, 3)
    with torch.no_grad():
        torch.testing.assert_close(back(batch), mod.eval()(batch))


def test_chrom_norm_keeps_or_drops_the_scale_and_old_records_load_as_layer():
    h = torch.randn(4, 3, 8)
    centred = normalise_pooled(h, "center")
    torch.testing.assert_close(centred.mean(-1), torch.zeros(4, 3), atol=1e-6, rtol=0)
    # centring keeps the scale of a chromosome's sum (how many peaks are open) ...
    torch.testing.assert_close(normalise_pooled(3 * h, "center"), 3 * centred)
    # ... layer normalisation divides it out
    torch.testing.assert_close(
        normalise_pooled(3 * h, "layer"), normalise_pooled(h, "layer"), atol=1e-3, rtol=0
    )
    with pytest.raises(ValueError, match="chrom_norm"):
        normalise_pooled(h, "batch")

    x, chrom = _random()
    batch = make_batch(x, chrom, 3)
    outs = {}
    for norm in CHROM_NORMS:
        cfg = SurrogateConfig(n_peaks=50, n_genes=2, n_chrom=3, emb_dim=8, chrom_norm=norm)
        torch.manual_seed(0)
        mod = Surrogate(cfg, torch.from_numpy(chrom)).eval()
        with torch.no_grad():
            outs[norm] = mod(batch)
        rec = surrogate_to_record(mod)
        assert rec["architecture"]["chrom_norm"] == norm
        assert surrogate_from_record(rec).atac_encoder.norm == norm
    assert not torch.allclose(outs["center"], outs["layer"])
    # a record written before the option existed was fit with layer normalisation
    del rec["architecture"]["chrom_norm"]
    back = surrogate_from_record(rec)
    assert back.atac_encoder.norm == "layer"
    with torch.no_grad():
        torch.testing.assert_close(back(batch), outs["layer"])
