"""Peak memory and seconds per epoch of ``grids.tl.fit_surrogate`` at genome scale.

Simulates ``--cells`` x ``--peaks`` x ``--genes`` paired data
(:func:`grids_sc.datasets.synthetic_multiome`), fits the surrogate on ``--threads`` torch
threads and prints:

- resident memory after building the data (peak and current), so the fit's share shows;
- the peak resident memory during the fit alone (Linux ``VmHWM``, reset before the fit by
  writing ``5`` to ``/proc/self/clear_refs``) and of the whole process (``ru_maxrss``);
- seconds per epoch of each training phase (training steps plus the validation pass).

Memory does not grow with epochs (every phase streams 256-cell batches), so a small
``--max-epochs`` is enough. ``--pieces`` also measures the peak of each piece of the fit
separately (input conversion, one batch, one training step per phase, a validation pass,
the best-weights copy); ``--fidelity`` also measures ``grids.tl.surrogate_fidelity`` (ridge).

    python benchmarks/bench_fit_memory.py [--cells 10000 --peaks 100000 --genes 2000]
        [--max-epochs 2] [--threads 2] [--model cis|loco|grids] [--defaults] [--pieces]
        [--fidelity] [--fit cis_consistency=0 ...]

``--defaults`` fits with the package's default epochs (each phase stops early) instead of
``--max-epochs``: the whole fit time, not only seconds per epoch.
"""

from __future__ import annotations

import argparse
import copy
import gc
import time

import numpy as np
import torch
from _common import fit_options, peak_rss_gb

import grids_sc as grids
import grids_sc.tl._surrogate as fit_module
from grids_sc.model import _train

BAR_GB = 4.0


def _status_gb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / 1e9
    return float("nan")


def rss_gb() -> float:
    """Current resident memory in GB."""
    return _status_gb("VmRSS")


def reset_peak() -> bool:
    """Reset the kernel's resident high-water mark (``VmHWM``) to the current RSS."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def hwm_gb() -> float:
    """Peak resident memory since the last :func:`reset_peak` in GB."""
    return _status_gb("VmHWM")


def measure(fn) -> tuple[object, float, float]:
    """``fn()``, its peak resident memory above the memory before it (GB), and seconds."""
    reset_peak()
    before = rss_gb()
    t = time.perf_counter()
    out = fn()
    return out, hwm_gb() - before, time.perf_counter() - t


class PhaseTimer:
    """Wraps the trainer's phase loop and validation pass to time them (no change to src)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, int, float, float]] = []
        self._val = 0.0
        self._run, self._eval = _train._run_phase, _train._evaluate
        self._whole = {k: getattr(fit_module, k) for k in ("fit_loco_state", "fit_cis_heads")}

    def __enter__(self) -> PhaseTimer:
        def run_phase(module, data, phase, *a, **kw):
            self._val = 0.0
            t = time.perf_counter()
            hist = self._run(module, data, phase, *a, **kw)
            self.rows.append((phase, len(hist["train"]), time.perf_counter() - t, self._val))
            return hist

        def evaluate(*a, **kw):
            t = time.perf_counter()
            out = self._eval(*a, **kw)
            self._val += time.perf_counter() - t
            return out

        def whole(name, fn):  # the LOCO state and the cis heads: the phase as a whole
            def timed(*a, **kw):
                t = time.perf_counter()
                hist = fn(*a, **kw)
                phase = "loco" if name == "fit_loco_state" else "cis heads"
                self.rows.append((phase, len(hist["train"]), time.perf_counter() - t, 0.0))
                return hist

            return timed

        _train._run_phase, _train._evaluate = run_phase, evaluate
        for k, fn in self._whole.items():
            setattr(fit_module, k, whole(k, fn))
        return self

    def __exit__(self, *exc) -> None:
        _train._run_phase, _train._evaluate = self._run, self._eval
        for k, fn in self._whole.items():
            setattr(fit_module, k, fn)


def pieces(m, args) -> None:
    """Peak memory of each piece of a fit, measured one at a time."""
    from grids_sc._inputs import atac_binary, peak_chromosomes, rna_values
    from grids_sc.model import Surrogate, SurrogateConfig, TrainConfig

    x, gb, _ = measure(lambda: atac_binary(m["atac"], None, "atac"))
    print(f"  atac_binary (CSR float32 copy of ATAC, {x.nnz:,} nnz)     {gb:6.2f} GB")
    (y, _), gb, _ = measure(lambda: rna_values(m["rna"], None, "auto", "rna"))
    print(f"  rna_values (dense float32 expression {y.shape})   {gb:6.2f} GB")
    chrom, names = peak_chromosomes(m["atac"], "atac")
    cfg = SurrogateConfig(n_peaks=x.shape[1], n_genes=y.shape[1], n_chrom=len(names))
    module, gb, _ = measure(lambda: Surrogate(cfg, torch.from_numpy(chrom)))
    n_par = sum(p.numel() for p in module.parameters())
    print(f"  Surrogate module ({n_par:,} parameters)                {gb:6.2f} GB")
    idx = np.arange(args.batch_size)
    data = _train._Data(x, y, None, chrom, len(names))
    (batch, yb, g), gb, sec = measure(lambda: data.batch(idx, torch.device("cpu")))
    print(f"  one batch of {args.batch_size} cells (make_batch, {batch.indices.numel():,} nnz)"
          f"       {gb:6.2f} GB  {sec * 1e3:6.0f} ms")  # fmt: skip
    tcfg = TrainConfig()
    gen = torch.Generator().manual_seed(0)
    for phase in _train.PHASES:
        opt = _train.make_adamw(_train._phase_params(module, phase), 1e-3)

        def step(phase=phase, opt=opt):
            out = _train._losses(module.train(), phase, batch, yb, g, tcfg, gen)
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()

        step()
        _, gb, sec = measure(step)
        print(f"  one training step, phase {phase:<10}                    {gb:6.2f} GB"
              f"  {sec * 1e3:6.0f} ms")  # fmt: skip
    val = np.arange(min(len(idx) * 4, x.shape[0]))
    _, gb, sec = measure(
        lambda: _train._evaluate(module, data, "atac", val, tcfg, torch.device("cpu"), gen, "loss")
    )
    print(f"  validation pass over {len(val)} cells                    {gb:6.2f} GB"
          f"  {sec * 1e3:6.0f} ms")  # fmt: skip
    _, gb, _ = measure(lambda: copy.deepcopy(module.state_dict()))
    print(f"  best-weights copy (deepcopy of state_dict)              {gb:6.2f} GB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--peaks", type=int, default=100_000)
    ap.add_argument("--genes", type=int, default=2_000)
    ap.add_argument("--max-epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="cis", help="fit_surrogate(model=): cis, loco or grids")
    ap.add_argument("--defaults", action="store_true", help="fit with the package's default epochs")
    ap.add_argument("--pieces", action="store_true", help="also measure pieces separately")
    ap.add_argument("--fidelity", action="store_true", help="also run surrogate_fidelity")
    ap.add_argument("--fit", nargs="*", default=[], help="more fit_surrogate k=v")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"model {args.model}, {args.cells} cells x {args.peaks} peaks x {args.genes} genes, "
        f"threads "
        f"{torch.get_num_threads()}, max_epochs {args.max_epochs} per phase (memory does not "
        f"grow with epochs), batch {args.batch_size}"
    )
    print(f"after import                 RSS {rss_gb():5.2f} GB, peak {peak_rss_gb():5.2f} GB")
    t = time.perf_counter()
    m = grids.datasets.synthetic_multiome(
        n_cells=args.cells, n_peaks=args.peaks, n_genes=args.genes, seed=args.seed
    )
    t_sim = time.perf_counter() - t
    gc.collect()
    data_rss, data_peak = rss_gb(), peak_rss_gb()
    nnz = m["atac"].X.nnz
    print(
        f"after simulating ({t_sim:.0f} s)      RSS {data_rss:5.2f} GB, peak {data_peak:5.2f} GB "
        f"(ATAC nnz {nnz:,}, density {nnz / (args.cells * args.peaks):.3f})"
    )
    if not reset_peak():
        print("(cannot reset VmHWM here: the fit's peak below is the process peak)")
    t = time.perf_counter()
    with PhaseTimer() as timer:
        grids.tl.fit_surrogate(
            m,
            model=args.model,
            **(
                {}
                if args.defaults
                else {
                    "max_epochs": args.max_epochs,
                    **({"cis_max_epochs": args.max_epochs} if args.model != "grids" else {}),
                }
            ),
            batch_size=args.batch_size,
            progress=False,
            device="cpu",
            **fit_options(args.fit),
        )
    t_fit = time.perf_counter() - t
    fit_peak = hwm_gb()
    print(
        f"fit_surrogate ({t_fit:.0f} s)         RSS {rss_gb():5.2f} GB, peak during fit "
        f"{fit_peak:5.2f} GB (+{fit_peak - data_rss:.2f} GB over the data), process peak "
        f"{peak_rss_gb():5.2f} GB"
    )
    n_train = len(m.uns["grids"]["surrogates"]["surrogate"]["split"]["train"])
    n_val = len(m.uns["grids"]["surrogates"]["surrogate"]["split"]["validation"])
    print(f"  {'phase':<10} {'epochs':>6} {'s/epoch':>8} {'of which val':>13}")
    for phase, epochs, sec, val in timer.rows:
        print(f"  {phase:<10} {epochs:>6} {sec / epochs:>8.1f} {val / epochs:>12.1f}s")
    print(f"  ({n_train} training cells, {n_val} validation cells per epoch)")
    verdict = "under" if fit_peak < BAR_GB else "OVER"
    print(f"peak during fit {fit_peak:.2f} GB: {verdict} the {BAR_GB:.0f} GB bar")
    if args.pieces:
        print("peak memory of each piece (above the memory before it):")
        pieces(m, args)
    if args.fidelity:
        before = rss_gb()
        _, gb, sec = measure(lambda: grids.tl.surrogate_fidelity(m, device="cpu"))
        print(
            f"surrogate_fidelity (ridge on {n_train} cells): {sec:.0f} s, peak "
            f"{before + gb:.2f} GB (+{gb:.2f} GB over {before:.2f} GB)"
        )


if __name__ == "__main__":
    main()
