"""The LOCO surrogate's cell state on A549 under training variants (issue #21): the state alone.

    python benchmarks/bench_loco_state.py [--pretrain 30] [--chrom-drop 1.0]
        [--freeze none|emb] [--atac-aux 0.1] [--rna-ae 60] [--align 0.3] [--dec-frozen]
        [--patience 6] [--seed 0]

Fits only the state of ``fit_surrogate(model="loco")`` (encoder and decoder, no heads) on the
sci-CAR A549 data (``bench_fidelity.py``'s loading, the split of ``fit_surrogate(seed=...,
groupby="dex_time")``) and prints, per epoch of the expression phase, the validation loss
and the median held-out per-gene Pearson r of the state's prediction alone (the gene read
from the latent without its chromosome), then the r at the epoch early stopping keeps. A
state fit takes well under a minute, against about half an hour for the whole LOCO fit on
A549, most of it the 1,185 genes' heads. Variants (all off by default: the state as first
merged, trained on expression alone):

- ``--pretrain N``: first fit the encoder as an ATAC autoencoder (focal BCE, the cis model's
  first phase) for at most ``N`` epochs, with chromosome dropout: with probability
  ``--chrom-drop`` each cell's latent loses one random chromosome's contribution, so the
  leave-one-chromosome-out latent is in distribution. ``--freeze emb`` then keeps the peak
  embeddings fixed in the expression phase; ``--atac-aux W`` keeps the reconstruction loss
  (weight ``W``) during it.
- ``--rna-ae N``: first fit an RNA autoencoder through the state's decoder (what
  ``fit_loco_state`` now does); ``--align W`` adds ``W`` times the alignment of every
  leave-one-chromosome-out latent with the RNA latent to the expression loss (the package's
  default: ``--rna-ae 60 --align 0.3``); ``--dec-frozen`` keeps the decoder fixed.

Early stopping watches the validation expression loss (patience ``--patience``).
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from bench_fidelity import load

from grids_sc._inputs import group_codes, peak_chromosomes, rna_values, split_cells
from grids_sc.model import CisConfig, LocoSurrogate, SurrogateConfig
from grids_sc.model._atac import AtacDecoder, atac_reconstruction_loss
from grids_sc.model._batch import make_batch
from grids_sc.model._surrogate import _mlp
from grids_sc.model._train import make_adamw
from grids_sc.tl._ridge import pearson_per_column
from grids_sc.tl._surrogate import gene_chromosomes


class Study:
    """The data, the split and a fresh LOCO state, and the training pieces of the variants."""

    def __init__(self, args) -> None:
        from grids_sc._inputs import atac_binary

        m, groupby = load("a549")
        self.args = args
        self.x = sp.csr_matrix(atac_binary(m["atac"], None, "atac"), dtype=np.float32)
        y, _ = rna_values(m["rna"], None, "auto", "rna")
        self.y = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
        self.pc, chroms = peak_chromosomes(m["atac"], "atac")
        gc = gene_chromosomes(m["rna"], chroms)
        groups, _ = group_codes(m.obs[groupby])
        split = split_cells(m.n_obs, groups, args.seed, (0.7, 0.1, 0.2))
        self.tr, self.va, self.te = (np.flatnonzero(split == i) for i in range(3))
        self.arch = SurrogateConfig(n_peaks=self.x.shape[1], n_genes=y.shape[1],
                                    n_chrom=len(chroms), chrom_norm="center")  # fmt: skip
        none = torch.zeros(0, dtype=torch.long)
        torch.manual_seed(args.seed)
        self.mod = LocoSurrogate(self.arch, CisConfig(), torch.from_numpy(self.pc),
                                 torch.from_numpy(gc), none, none)  # fmt: skip
        self.enc = self.mod.atac_encoder
        self.rng = np.random.default_rng(args.seed)
        self.gen = torch.Generator().manual_seed(args.seed)
        self.atac_dec = self.rna_enc = self.z_rna = None

    def batch(self, idx):
        return make_batch(self.x[idx], self.pc, self.arch.n_chrom)

    def dropped_latent(self, hid: torch.Tensor) -> torch.Tensor:
        """The full latent minus one random chromosome's contribution (per cell, with
        probability ``--chrom-drop``).
        """
        k_all, n = self.arch.n_chrom, hid.shape[0]
        w = self.enc.out.weight.view(-1, k_all, hid.shape[-1])
        c = torch.einsum("nkc,lkc->nkl", hid, w)
        k = torch.randint(0, k_all, (n,), generator=self.gen)
        drop = (torch.rand(n, generator=self.gen) < self.args.chrom_drop).float()[:, None]
        return c.sum(1) + self.enc.out.bias - drop * c[torch.arange(n), k]

    def recon(self, b) -> torch.Tensor:
        z = self.dropped_latent(self.enc.chrom_layer(self.enc.pool(b)))
        return atac_reconstruction_loss(self.atac_dec, z, b, 2.0, 8192, self.gen)

    def run(self, name, params, loss_fn, val_fn, report=None) -> int:
        """Train ``params`` on ``loss_fn(idx)`` with early stopping on ``val_fn()``; keep the
        best epoch's weights; return it.
        """
        opt = make_adamw(params, 2e-3, 1e-4)
        best, best_state, wait, best_ep = np.inf, None, 0, -1
        for ep in range(60):
            self.mod.train()
            order = self.rng.permutation(self.tr)
            for s in range(0, len(self.tr), 256):
                loss = loss_fn(np.sort(order[s : s + 256]))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            self.mod.eval()
            with torch.no_grad():
                v = val_fn()
            print(f"  {name} epoch {ep}: validation {v:.5f}" + (report() if report else ""))
            if v < best - 1e-5 * abs(best) or best_state is None:
                best, wait, best_ep, best_state = v, 0, ep, copy.deepcopy(self.mod.state_dict())
            else:
                wait += 1
                if wait >= self.args.patience:
                    break
        self.mod.load_state_dict(best_state)
        self.mod.eval()
        return best_ep

    @torch.no_grad()
    def predict(self, idx) -> np.ndarray:
        self.mod.eval()
        out = []
        for s in range(0, len(idx), 512):
            b = self.batch(idx[s : s + 512])
            zc = self.mod.chrom_latents(self.enc.chrom_layer(self.enc.pool(b)))
            out.append(self.mod.state_from_chrom(zc))
        return torch.cat(out).numpy()

    def test_r(self) -> float:
        return float(np.nanmedian(pearson_per_column(self.predict(self.te), self.y[self.te])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pretrain", type=int, default=0, help="ATAC autoencoder epochs (0: none)")
    ap.add_argument("--chrom-drop", type=float, default=1.0)
    ap.add_argument("--freeze", default="none", choices=["none", "emb"])
    ap.add_argument("--atac-aux", type=float, default=0.0)
    ap.add_argument("--rna-ae", type=int, default=0, help="RNA autoencoder epochs (0: none)")
    ap.add_argument("--align", type=float, default=0.0)
    ap.add_argument("--dec-frozen", action="store_true")
    ap.add_argument("--patience", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0, help="fit seed (also draws the split)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    st = Study(args)
    mod, enc, y = st.mod, st.enc, st.y
    if args.pretrain or args.atac_aux:
        st.atac_dec = AtacDecoder(st.arch.n_latent, st.arch.n_peaks, st.arch.hidden)
        mod.add_module("atac_dec", st.atac_dec)
    if args.pretrain:
        ae = list(enc.parameters()) + list(st.atac_dec.parameters())
        st.run("ATAC autoencoder", ae, lambda idx: st.recon(st.batch(idx)),
               lambda: float(st.recon(st.batch(st.va))))  # fmt: skip
    if args.rna_ae:
        a = st.arch
        st.rna_enc = _mlp(a.n_genes, a.hidden, a.n_latent, a.dropout)
        mod.add_module("rna_enc", st.rna_enc)

        def rna(idx):
            return F.mse_loss(mod.out(mod.decoder(st.rna_enc(y[idx]))), y[idx])

        dec = list(mod.decoder.parameters()) + list(mod.out.parameters())
        st.run("RNA autoencoder", list(st.rna_enc.parameters()) + dec, rna,
               lambda: float(rna(st.va)))  # fmt: skip
        with torch.no_grad():
            st.z_rna = st.rna_enc(y)

    def expr(idx):
        b = st.batch(idx)
        hid = enc.chrom_layer(enc.pool(b))
        zc = mod.chrom_latents(hid)
        loss = F.mse_loss(mod.state_from_chrom(zc), y[idx])
        if args.atac_aux:
            z = st.dropped_latent(hid)
            loss = loss + args.atac_aux * atac_reconstruction_loss(
                st.atac_dec, z, b, 2.0, 8192, st.gen
            )
        if args.align:
            loss = loss + args.align * F.mse_loss(zc, st.z_rna[idx][:, None].expand_as(zc))
        return loss

    frozen = ("delta", "offset") if args.freeze == "emb" else ()
    params = [p for n, p in enc.named_parameters() if n not in frozen]
    if not args.dec_frozen:
        params += list(mod.decoder.parameters()) + list(mod.out.parameters())
    if args.atac_aux:
        params += list(st.atac_dec.parameters())

    def val() -> float:
        return float(((st.predict(st.va) - y[st.va].numpy()) ** 2).mean())

    best = st.run("state", params, expr, val, lambda: f", held-out median r {st.test_r():.4f}")
    print(
        f"{vars(args)}: best epoch {best}, held-out median r of the state alone "
        f"{st.test_r():.4f} ({time.perf_counter() - t0:.0f} s)"
    )


if __name__ == "__main__":
    main()
