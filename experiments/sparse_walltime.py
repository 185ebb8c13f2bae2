"""Figure: wall time of strided sparse attention vs dense causal attention (#10).

CPU, float32, batch 1, one head, head_dim 64; strided pattern with l = ⌈√n⌉.  Timed:
torch's dense causal ``scaled_dot_product_attention``; theorylab's fold and merge
(``attention(..., backend="torch")``); theorylab's compressed-row numba kernel
(``backend="numba"``).  One call of each per round, interleaved; median over rounds; the
band shows min-max over the input seeds.  Fitted log-log slopes over the upper half of
the sizes (past fixed overheads): predicted 2 (dense) and 1.5 (sparse).  Every method
runs on ``threads`` threads (default 1: on a shared 2-core machine, one thread per method
keeps the timings stable; ratios are what the figure is about).

Run: ``python experiments/sparse_walltime.py [--quick]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theorylab import sparse
from theorylab.benchmarking import timeit
from theorylab.checks import fit_loglog_slope
from theorylab.experiment import Cells, run_experiment

STEM = "sparse_walltime"


@dataclass(frozen=True)
class Config:
    """Wall time vs n: dense causal SDPA, fold and merge, numba compressed rows."""

    seeds: tuple = (0, 1, 2)
    lengths: tuple = (1024, 2048, 4096, 8192, 16384, 32768)
    head_dim: int = 64
    repeat: int = 3
    threads: int = 1  # torch and numba threads; 0 keeps their default


FULL = Config()
QUICK = Config(seeds=(0, 1), lengths=(512, 1024, 2048, 4096), repeat=2)
METHODS = ("dense causal SDPA", "fold and merge (torch)", "compressed rows (numba)")


def _median_interleaved(fns: dict, repeat: int) -> dict:
    times = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            times[k].append(timeit(fn, repeat=1, warmup=0))
    return {k: float(np.median(v)) for k, v in times.items()}


def cells(cfg: Config) -> list[dict]:
    """One cell per length n (every seed and method at that n)."""
    return [{"n": n} for n in cfg.lengths]


def compute_cell(cfg: Config, cell: dict) -> dict:
    import torch

    import numba

    saved = torch.get_num_threads(), numba.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
        numba.set_num_threads(cfg.threads)
    try:
        return {"times": _measure(cfg, cell["n"], torch), "torch_threads": torch.get_num_threads()}
    finally:
        torch.set_num_threads(saved[0])
        numba.set_num_threads(saved[1])


def _measure(cfg: Config, n: int, torch) -> dict:
    """Seconds per call of each method at length n, per seed."""
    sdpa = torch.nn.functional.scaled_dot_product_attention
    pattern = sparse.strided(math.isqrt(n - 1) + 1)
    per = {m: [] for m in METHODS}
    with torch.inference_mode():
        for seed in cfg.seeds:
            rng = np.random.default_rng(seed)
            x = {c: rng.standard_normal((1, 1, n, cfg.head_dim)).astype(np.float32) for c in "qkv"}
            q, k, v = (torch.from_numpy(x[c]) for c in "qkv")
            fns = {METHODS[0]: lambda: sdpa(q, k, v, is_causal=True),
                   METHODS[1]: lambda: sparse.attention(q, k, v, pattern, backend="torch")}
            for fn in fns.values():
                fn()  # warm-up
            t = _median_interleaved(fns, cfg.repeat)
            numba_fn = lambda: sparse.attention(x["q"], x["k"], x["v"], pattern, backend="numba")  # noqa: E731
            numba_fn()  # compile / warm-up; timed apart (its spinning threads slow torch)
            t[METHODS[2]] = timeit(numba_fn, repeat=cfg.repeat, warmup=0)
            for m in METHODS:
                per[m].append(t[m])
    return per


def assemble(cfg: Config, results: list) -> dict:
    times = {m: [r["times"][m] for r in results] for m in METHODS}  # per method: (lengths, seeds)
    half = len(cfg.lengths) // 2
    slopes = {m: fit_loglog_slope(cfg.lengths[half - 1 :], np.median(np.array(v), axis=1)[half - 1 :]) for m, v in times.items()}
    return {"lengths": list(cfg.lengths), "head_dim": cfg.head_dim,
            "timings": {"times": times, "slopes": slopes, "torch_threads": results[0]["torch_threads"]}}


compute = Cells(cells, compute_cell, assemble)


def plot(data: dict, path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.0))
    ns = np.array(data["lengths"])
    ax = axes[0]
    tm = data["timings"]
    for i, (m, v) in enumerate(tm["times"].items()):
        v = np.array(v)  # (lengths, seeds)
        ax.plot(ns, np.median(v, 1), marker="o", color=f"C{i}", label=f"{m}: slope {tm['slopes'][m]:.2f}")
        ax.fill_between(ns, v.min(1), v.max(1), color=f"C{i}", alpha=0.25)
    ax.set(xscale="log", yscale="log", xlabel="sequence length n", ylabel="seconds (median; band: seeds)",
           title=f"(a) wall time, strided l = ceil(sqrt n), d = {data['head_dim']}, float32 CPU")
    ax.legend(fontsize=7)
    ax = axes[1]
    dense = np.median(np.array(tm["times"]["dense causal SDPA"]), 1)
    for i, m in enumerate(list(tm["times"])[1:], start=1):
        ax.plot(ns, dense / np.median(np.array(tm["times"][m]), 1), marker="o", color=f"C{i}", label=m)
    ax.axhline(1, c="k", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="sequence length n", ylabel="speedup over dense causal SDPA",
           title="(b) measured speedup (same run)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    return run_experiment(STEM, Config, FULL, QUICK, compute, plot, argv)


if __name__ == "__main__":
    main()
