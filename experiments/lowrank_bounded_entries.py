"""Figure: the bounded-entries phase change of softmax attention (#98, #36, #65).

(a) ε-rank (||M − M_r||_F <= ε||M||_F, ε = 1e-2) of M = exp(QKᵀ) against n for rows of norm B
    (logits bounded by B²), d = 3; lines are means over seeds, bands their min-max; fitted
    log-log slopes in the legend; a dot marks n = e^{B²}, where B = √log n (the threshold's
    scaling): for n >> e^{B²} the curve is flat, for n << e^{B²} it grows like n.
(b) the Taylor truncation error max |exp(s) − φ_g(q)·φ_g(k)| against the logit bound B² for
    several degrees g (lines), with the Lagrange bound e^{B²} B^{2(g+1)}/(g+1)! (dotted).

Every ε-rank of one size comes from one batched SVD (all seeds and all B at once).

Run: ``python experiments/lowrank_bounded_entries.py [--quick]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theorylab.checks import fit_loglog_slope
from theorylab.experiment import Cells, run_experiment
from theorylab.lowrank import eps_rank, polynomial_features
from theorylab.lowrank.bounded_entries import make_inputs

STEM = "lowrank_bounded_entries"


@dataclass(frozen=True)
class Config:
    """ε-rank of exp(QKᵀ) against n for several entry scales B; truncation error against B."""

    seeds: tuple = (0, 1, 2)
    scales: tuple = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
    log2_min: int = 3
    log2_max: int = 10
    d: int = 3
    eps: float = 1e-2
    degrees: tuple = (1, 2, 4, 8)
    points: int = 64


FULL = Config()
QUICK = Config(seeds=(0, 1), scales=(0.5, 1.5, 4.0), log2_max=7, degrees=(1, 4), points=16)
BETAS = np.logspace(-2, 1, 13).tolist()


def cells(cfg: Config) -> list[dict]:
    """One cell per n (one batched SVD of every scale and seed), one for the truncation panel."""
    return [{"panel": "rank", "n": 2**k} for k in range(cfg.log2_min, cfg.log2_max + 1)] + [{"panel": "truncation"}]


def compute_cell(cfg: Config, cell: dict) -> dict:
    if cell["panel"] == "rank":
        n, Ms = cell["n"], []
        for B in cfg.scales:
            for s in cfg.seeds:
                p = make_inputs(np.random.default_rng([s, n, int(100 * B)]), n=n, d=cfg.d, B=B)
                Ms.append(np.exp(p["Q"] @ p["K"].T))
        r = eps_rank(np.stack(Ms), cfg.eps, backend="ref").reshape(len(cfg.scales), len(cfg.seeds))  # one batched SVD
        return {"ranks": r.tolist()}  # (scales, seeds)
    trunc = {str(g): [] for g in cfg.degrees}
    bound = {str(g): [] for g in cfg.degrees}
    for beta in BETAS:
        p = make_inputs(np.random.default_rng([7, int(1000 * beta)]), n=cfg.points, d=cfg.d, B=math.sqrt(beta))
        S = p["Q"] @ p["K"].T
        for g in cfg.degrees:
            UV = polynomial_features(p["Q"], g) @ polynomial_features(p["K"], g).T
            trunc[str(g)].append(float(np.max(np.abs(np.exp(S) - UV))))
            bound[str(g)].append(math.exp(beta) * beta ** (g + 1) / math.factorial(g + 1))
    return {"truncation": trunc, "bound": bound}


def assemble(cfg: Config, results: list) -> dict:
    ns = [2**k for k in range(cfg.log2_min, cfg.log2_max + 1)]
    ranks = {str(B): [r["ranks"][i] for r in results[:-1]] for i, B in enumerate(cfg.scales)}
    slopes = {B: fit_loglog_slope(ns, np.mean(v, axis=1)) for B, v in ranks.items()}
    return {"n": ns, "ranks": ranks, "slopes": slopes, "thresholds": {str(B): math.exp(B * B) for B in cfg.scales},
            "beta": BETAS, "truncation": results[-1]["truncation"], "bound": results[-1]["bound"], "d": cfg.d,
            "eps": cfg.eps}


compute = Cells(cells, compute_cell, assemble)


def plot(data: dict, path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.0))
    ax = axes[0]
    ns = np.array(data["n"])
    for i, (B, rs) in enumerate(data["ranks"].items()):
        rs = np.array(rs, dtype=float)
        ax.plot(ns, rs.mean(1), marker="o", ms=3, color=f"C{i}", label=f"B = {B}: slope {data['slopes'][B]:.2f}")
        ax.fill_between(ns, rs.min(1), rs.max(1), color=f"C{i}", alpha=0.2)
        nstar = data["thresholds"][B]
        if ns[0] <= nstar <= ns[-1]:
            ax.plot([nstar], [np.interp(nstar, ns, rs.mean(1))], marker="*", ms=12, color=f"C{i}", ls="none")
    ax.plot(ns, ns, ls=":", color="gray", lw=1, label="rank = n")
    ax.set(xscale="log", yscale="log", xlabel="n", ylabel=f"ε-rank of exp(QKᵀ) (ε = {data['eps']})",
           title=f"(a) ε-rank vs n, d = {data['d']}; ★ at n = e^(B²) (B = √log n)")
    ax.legend(fontsize=7)
    ax = axes[1]
    for i, (g, err) in enumerate(data["truncation"].items()):
        ax.plot(data["beta"], err, marker="o", ms=3, color=f"C{i}", label=f"g = {g}: measured")
        ax.plot(data["beta"], data["bound"][g], ls=":", color=f"C{i}", label=f"g = {g}: Lagrange bound")
    ax.set(xscale="log", yscale="log", xlabel="logit bound B²", ylabel="max |exp(s) − φ_g(q)·φ_g(k)|",
           title="(b) Taylor truncation error vs entry scale")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    return run_experiment(STEM, Config, FULL, QUICK, compute, plot, argv)


if __name__ == "__main__":
    main()
