"""Figure: a sparse pattern's nominal density is not its block density (#10).

A block-sparse kernel (FlexAttention, block-sparse Triton kernels) computes every
(block × block) tile that holds at least one allowed entry, so its work relative to dense
causal attention is the *block density*, not the nominal density nnz / (n(n+1)/2).  The
strided pattern's stride columns touch every key block: its block density is ~1 even
though its nominal density is O(1/√n).  The fold-and-merge layout (attend along rows and
along columns of the l × n/l grid) turns the same pattern into dense blocks, and its
measured speedup follows the nominal density.

(a) at n = ``length``, block ``block``: nominal and block density of strided, fixed,
    sliding window, BigBird and PowerAttention, with the measured speedup of theorylab's
    fold and merge over torch's dense causal SDPA for strided and fixed (float32 CPU, one
    head, d = 64, ``threads`` torch threads; interleaved timing, median);
(b) nominal and block density of strided(l = √n) against n.

Run: ``python experiments/sparse_block_density.py [--quick]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theorylab import sparse
from theorylab.benchmarking import timeit
from theorylab.experiment import Cells, run_experiment

STEM = "sparse_block_density"


@dataclass(frozen=True)
class Config:
    """Nominal vs block density of sparse patterns, and measured speedup."""

    seeds: tuple = (0,)
    length: int = 16384
    block: int = 128
    stride: int = 128
    fixed_c: int = 8
    window: int = 256
    head_dim: int = 64
    repeat: int = 5
    sweep: tuple = (1024, 2048, 4096, 8192, 16384, 32768)
    threads: int = 1  # torch threads for the timed speedup; 0 keeps torch's default


FULL = Config()
QUICK = Config(length=4096, stride=64, window=128, repeat=3, sweep=(1024, 2048, 4096, 8192))


def _speedup(pattern, n: int, d: int, repeat: int, seed: int, threads: int) -> float:
    import torch

    saved = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _timed_ratio(pattern, n, d, repeat, seed, torch)
    finally:
        torch.set_num_threads(saved)


def _timed_ratio(pattern, n: int, d: int, repeat: int, seed: int, torch) -> float:
    rng = np.random.default_rng(seed)
    q, k, v = (torch.from_numpy(rng.standard_normal((1, 1, n, d)).astype(np.float32)) for _ in range(3))
    fns = {"dense": lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True),
           "sparse": lambda: sparse.attention(q, k, v, pattern, backend="torch")}
    times = {key: [] for key in fns}
    with torch.inference_mode():
        for fn in fns.values():
            fn()
        for _ in range(repeat):
            for key, fn in fns.items():
                times[key].append(timeit(fn, repeat=1, warmup=0))
    return float(np.median(times["dense"]) / np.median(times["sparse"]))


def _patterns(cfg: Config) -> dict:
    return {
        f"strided l={cfg.stride}": sparse.strided(cfg.stride),
        f"fixed l={cfg.stride}, c={cfg.fixed_c}": sparse.fixed(cfg.stride, cfg.fixed_c),
        f"window w={cfg.window}": sparse.sliding_window(cfg.window),
        f"bigbird w={cfg.window}, g=2, r=3": sparse.bigbird(cfg.window, 2, 3, cfg.seeds[0]),
        "power attention": sparse.power_attention(),
    }


TIMED = 2  # the first two patterns (strided, fixed) get a measured speedup


def cells(cfg: Config) -> list[dict]:
    """The densities (exact counts) in one cell; one timed speedup per pattern."""
    return [{"panel": "density"}] + [{"panel": "speedup", "pattern": name} for name in list(_patterns(cfg))[:TIMED]]


def compute_cell(cfg: Config, cell: dict) -> dict:
    n, b, seed = cfg.length, cfg.block, cfg.seeds[0]
    pats = _patterns(cfg)
    if cell["panel"] == "speedup":
        return {"speedup": _speedup(pats[cell["pattern"]], n, cfg.head_dim, cfg.repeat, seed, cfg.threads)}
    sweep = {"nominal": [], "block": []}
    for m in cfg.sweep:
        p = sparse.strided(math.isqrt(m - 1) + 1)
        sweep["nominal"].append(p.density(m))
        sweep["block"].append(p.block_density(m, b))
    return {"nominal": {name: p.density(n) for name, p in pats.items()},
            "block_density": {name: p.block_density(n, b) for name, p in pats.items()}, "sweep": sweep}


def assemble(cfg: Config, results: list) -> dict:
    dens = results[0]
    speedup = {c["pattern"]: r["speedup"] for c, r in zip(cells(cfg)[1:], results[1:])}
    return {"length": cfg.length, "block": cfg.block, "nominal": dens["nominal"], "block_density": dens["block_density"],
            "sweep_n": list(cfg.sweep), "sweep": dens["sweep"],
            "timings": {"speedup": speedup}}  # measured dense / sparse time ratios


compute = Cells(cells, compute_cell, assemble)


def plot(data: dict, path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.2), gridspec_kw={"width_ratios": [1.4, 1]})
    ax = axes[0]
    names = list(data["nominal"])
    x = np.arange(len(names))
    ax.bar(x - 0.2, [data["nominal"][k] for k in names], 0.4, label="nominal density nnz / (n(n+1)/2)")
    ax.bar(x + 0.2, [data["block_density"][k] for k in names], 0.4, label=f"block density ({data['block']}x{data['block']} tiles)")
    speedup = data["timings"]["speedup"]
    for i, k in enumerate(names):
        if k in speedup:
            ax.annotate(f"fold and merge:\n{speedup[k]:.1f}x vs dense", (i, data["block_density"][k]),
                        textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7)
    ax.set_xticks(x, names, rotation=15, fontsize=7)
    ax.set(yscale="log", ylim=(1e-3, 3), ylabel="fraction of dense causal work",
           title=f"(a) n = {data['length']}: what a block-sparse kernel computes")
    ax.legend(fontsize=7, loc="lower left")
    ax = axes[1]
    ax.plot(data["sweep_n"], data["sweep"]["nominal"], marker="o", label="nominal density")
    ax.plot(data["sweep_n"], data["sweep"]["block"], marker="s", label=f"block density (block {data['block']})")
    ax.set(xscale="log", yscale="log", xlabel="sequence length n", ylabel="density",
           title="(b) strided, l = ceil(sqrt n)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    return run_experiment(STEM, Config, FULL, QUICK, compute, plot, argv)


if __name__ == "__main__":
    main()
