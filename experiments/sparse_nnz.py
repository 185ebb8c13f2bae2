"""Figure: how many attention entries each sparse pattern keeps (#10, #53, #24).

(a) exact nnz(n) against n ∈ [2^10, 2^20] for full causal, strided and fixed with
    l = ⌈√n⌉, a sliding window, BigBird and PowerAttention, with fitted log-log slopes
    (predicted 2, 1.5, 1.5, 1, 1, ≈1 + 1/ln n);
(b) nnz / n^1.5 at l = √n approaching the sympy leading orders 3/2 (strided) and (1 + c)/2
    (fixed).

The counts are exact closed forms (no sampling), so there is no spread across seeds; the
seed fixes BigBird's random keys (which do not change the count) and the drawn parameters.

Run: ``python experiments/sparse_nnz.py [--quick]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theorylab import sparse
from theorylab.checks import fit_loglog_slope
from theorylab.experiment import run_experiment

STEM = "sparse_nnz"


@dataclass(frozen=True)
class Config:
    """Exact nnz of sparse patterns vs n, fitted slopes, leading orders."""

    seeds: tuple = (0,)
    log2_min: int = 10
    log2_max: int = 20
    points: int = 41
    window: int = 256
    n_global: int = 2
    random_keys: int = 3
    fixed_c: int = 4


FULL = Config()
QUICK = Config(points=11)


def _families(cfg: Config, seed: int) -> dict:
    w, g, r, c = cfg.window, cfg.n_global, cfg.random_keys, cfg.fixed_c
    return {
        "full causal": lambda n: sparse.full_causal(),
        "strided l=ceil(sqrt n)": lambda n: sparse.strided(math.isqrt(n - 1) + 1),
        f"fixed l=ceil(sqrt n), c={c}": lambda n: sparse.fixed(math.isqrt(n - 1) + 1, min(c, math.isqrt(n - 1) + 1)),
        f"window w={w}": lambda n: sparse.sliding_window(w),
        f"bigbird w={w}, g={g}, r={r}": lambda n: sparse.bigbird(w, g, r, seed),
        "power attention": lambda n: sparse.power_attention(),
    }


def compute(cfg: Config) -> dict:
    ns = np.unique(np.round(np.logspace(cfg.log2_min, cfg.log2_max, cfg.points, base=2)).astype(np.int64)).tolist()
    counts = {name: [make(n).nnz(n) for n in ns] for name, make in _families(cfg, cfg.seeds[0]).items()}
    slopes = {name: fit_loglog_slope(ns, ys) for name, ys in counts.items()}
    ls = [2**k for k in range(4, 11)]
    lead = {
        "strided": [sparse.strided(l).nnz(l * l) / (l * l) ** 1.5 for l in ls],
        f"fixed c={cfg.fixed_c}": [sparse.fixed(l, cfg.fixed_c).nnz(l * l) / (l * l) ** 1.5 for l in ls],
    }
    return {"n": ns, "nnz": counts, "slopes": slopes, "lead_l": ls, "lead": lead,
            "lead_limits": {"strided": 1.5, f"fixed c={cfg.fixed_c}": (1 + cfg.fixed_c) / 2}}


def plot(data: dict, path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.0))
    ax = axes[0]
    for name, ys in data["nnz"].items():
        ax.plot(data["n"], ys, label=f"{name}: slope {data['slopes'][name]:.3f}")
    ax.set(xscale="log", yscale="log", xlabel="sequence length n", ylabel="nnz (exact)",
           title="(a) attention entries kept, fitted log-log slopes")
    ax.legend(fontsize=7)
    ax = axes[1]
    for i, (name, ys) in enumerate(data["lead"].items()):
        ax.plot(data["lead_l"], ys, marker="o", color=f"C{i}", label=f"{name}: nnz / n^1.5 at n = l^2")
        ax.axhline(data["lead_limits"][name], ls=":", color=f"C{i}", lw=1, label=f"sympy limit {data['lead_limits'][name]}")
    ax.set(xscale="log", xlabel="stride l (n = l^2)", ylabel="nnz / n^1.5", title="(b) leading order of the closed forms")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    return run_experiment(STEM, Config, FULL, QUICK, compute, plot, argv)


if __name__ == "__main__":
    main()
