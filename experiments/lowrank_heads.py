"""Figure: rank against heads (#12): rank-1 heads need exponentially many heads in d, one full-rank head does not.

(a) held-out error against H (log axis) of random rank-1 heads (solid) and random rank-d heads
    (dashed) with least-squares output weights fitted on training samples
    (:func:`theorylab.lowrank.held_out_errors`), one colour per d, means over seeds; dotted
    horizontal: one full-rank head Q = K = √β I with O = I; crosses: small trained rank-1 heads
    (Q, K, O by full-batch Adam, :func:`theorylab.lowrank.trained_heads_error`); grey: ε.
(b) H*(ε) (:func:`theorylab.lowrank.heads_needed`) against d on a log axis: per seed (dots),
    geometric mean, the fitted exponential rate κ (log H* = c + κ d) with its 99% interval
    over seeds, and the full-rank head (H* = 1).

Random rank-d heads (dashed in (a), orange in (b)) need about as many heads as random rank-1
heads: the benefit of rank is the construction Q = K = √β I, which random heads do not hit;
the claim ``lowrank.rank-one-heads-exponential-in-d`` is about rank-1 heads and the one
full-rank head.

Run: ``python experiments/lowrank_heads.py [--quick]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theorylab.cells import Cells
from theorylab.checks import mean_interval
from theorylab.experiment import run_experiment
from theorylab.lowrank import exponential_rate, heads_needed, held_out_errors, random_heads, trained_heads_error
from theorylab.lowrank.heads import full_rank_head, make_inputs, multihead_lowrank, nearest_point_target
from theorylab.lowrank.heads_claims import SCALING, scaling_sizes

STEM = "lowrank_heads"


@dataclass(frozen=True)
class Config:
    """Held-out error against H for rank-1 and rank-d heads; H*(ε) against d."""

    seeds: tuple = (0, 1, 2, 3)
    ds: tuple = (2, 3, 4, 5, 6, 7, 8)
    Hs: tuple = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
    eps: float = SCALING["eps"]
    beta: float = SCALING["beta"]
    full_beta: float = SCALING["full_beta"]
    N: int = SCALING["N"]
    test: int = SCALING["test"]
    min_train: int = 1500  # training samples: max(min_train, 8 x the largest prefix's features)
    trained_ds: tuple = (2, 4, 6)
    trained_Hs: tuple = (1, 4, 16)
    trained_train: int = 1000
    trained_steps: int = 300


FULL = Config()
QUICK = Config(seeds=(0, 1, 2), ds=(2, 3, 4, 5), Hs=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32), trained_ds=(2, 4),
               trained_Hs=(1, 4), trained_train=400, trained_steps=100)


def cells(cfg: Config) -> list[dict]:
    return ([{"panel": "curve", "seed": s, "d": d, "rank": r} for s in cfg.seeds for d in cfg.ds for r in ("1", "d")]
            + [{"panel": "full", "seed": s, "d": d} for s in cfg.seeds for d in cfg.ds]
            + [{"panel": "trained", "d": d, "H": H} for d in cfg.trained_ds for H in cfg.trained_Hs])


def compute_cell(cfg: Config, cell: dict) -> dict:
    d = cell["d"]
    if cell["panel"] == "trained":  # one seed: the comparison curve
        rng = np.random.default_rng([7, d, cell["H"]])
        p = make_inputs(rng, samples=cfg.trained_train + cfg.test, N=cfg.N, d=d)
        e = trained_heads_error(p["X"], p["y"], cell["H"], train=cfg.trained_train, steps=cfg.trained_steps,
                                seed=int(rng.integers(2**31)), beta=cfg.beta)
        return {"error": e}
    train, grid = scaling_sizes(d, cfg.Hs, cfg.min_train)
    rng = np.random.default_rng([cell["seed"], d])  # the same samples for every kind of head
    p = make_inputs(rng, samples=train + cfg.test, N=cfg.N, d=d)
    if cell["panel"] == "full":  # one full-rank head, O = I, on the held-out samples
        h = full_rank_head(d, cfg.full_beta)
        out = multihead_lowrank(p["X"][train:], p["y"][train:], h["Q"], h["K"], np.eye(d)[None], backend="ref")
        return {"error": float(np.mean(np.sum((out - nearest_point_target(p["X"][train:], p["y"][train:])) ** 2, -1)))}
    rank = 1 if cell["rank"] == "1" else d
    h = random_heads(np.random.default_rng([cell["seed"], d, rank, 1]), grid[-1], d, rank=rank, beta=cfg.beta)
    e = held_out_errors(p["X"], p["y"], h["Q"], h["K"], grid, train=train, backend="ref")
    return {"Hs": list(grid), "errors": np.asarray(e).tolist()}


def assemble(cfg: Config, results: list) -> dict:
    cs = cells(cfg)
    curves = {"1": {}, "d": {}}
    Hstar = {"1": {}, "d": {}}
    full = {}
    trained = {}
    for c, r in zip(cs, results):
        if c["panel"] == "curve":
            curves[c["rank"]].setdefault(str(c["d"]), {"Hs": r["Hs"], "errors": []})["errors"].append(r["errors"])
            Hstar[c["rank"]].setdefault(str(c["d"]), []).append(float(heads_needed(r["Hs"], r["errors"], cfg.eps)))
        elif c["panel"] == "full":
            full.setdefault(str(c["d"]), []).append(r["error"])
        else:
            trained.setdefault(str(c["d"]), {})[str(c["H"])] = r["error"]
    fits = {}
    for rank in ("1", "d"):
        H = np.array([[Hstar[rank][str(d)][i] for d in cfg.ds] for i in range(len(cfg.seeds))])  # (seeds, ds)
        if np.all(np.isfinite(H)) and len(cfg.seeds) >= 2:
            rates = exponential_rate(cfg.ds, H)
            m, lo, hi = mean_interval(rates)
            c0 = float(np.mean(np.log(H)) - m * np.mean(cfg.ds))
            fits[rank] = {"rates": rates.tolist(), "rate": m, "interval": [lo, hi], "intercept": c0}
        else:
            fits[rank] = {"rates": None, "rate": None, "interval": None, "intercept": None,
                          "note": "some H* beyond the grid (inf)"}
    full_Hstar = {d: 1 if max(v) <= cfg.eps else None for d, v in full.items()}
    return {"ds": list(cfg.ds), "eps": cfg.eps, "curves": curves, "Hstar": Hstar, "fits": fits,
            "full_rank_error": full, "full_rank_Hstar": full_Hstar, "trained": trained}


compute = Cells(cells, compute_cell, assemble)


def plot(data: dict, path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.2))
    ax = axes[0]
    for i, d in enumerate(str(x) for x in data["ds"]):
        for rank, ls in (("1", "-"), ("d", "--")):
            c = data["curves"][rank][d]
            ax.plot(c["Hs"], np.mean(c["errors"], axis=0), ls=ls, color=f"C{i}", marker="o" if rank == "1" else None,
                    ms=2.5, label=f"d = {d}" if rank == "1" else None)
        ax.axhline(np.mean(data["full_rank_error"][d]), color=f"C{i}", ls=":", lw=0.8)
        if d in data["trained"]:
            t = data["trained"][d]
            ax.plot([int(h) for h in t], list(t.values()), "x", color=f"C{i}", ms=7, mew=1.5)
    ax.axhline(data["eps"], color="grey", lw=1.5, alpha=0.6)
    ax.plot([], [], "k-", label="random rank 1, least squares")
    ax.plot([], [], "k--", label="random rank d, least squares")
    ax.plot([], [], "k:", label="one full-rank head (Q = K = √β I)")
    ax.plot([], [], "kx", label="trained rank 1 (Adam)")
    ax.set(xscale="log", xlabel="heads H", ylabel="held-out error E||F − f||²",
           title="(a) nearest-point target: error against heads")
    ax.legend(fontsize=6.5, ncol=2)
    ax = axes[1]
    ds = np.array(data["ds"])
    for rank, color, name in (("1", "C0", "rank 1"), ("d", "C1", "rank d")):
        H = np.array([data["Hstar"][rank][str(d)] for d in ds], dtype=float)  # (ds, seeds)
        for j in range(H.shape[1]):
            ax.plot(ds, H[:, j], ".", color=color, alpha=0.4)
        ax.plot(ds, np.exp(np.log(H).mean(1)), "o", color=color, label=f"{name}: H*(ε) geometric mean")
        f = data["fits"][rank]
        if f["rate"] is not None:
            ax.plot(ds, np.exp(f["intercept"] + f["rate"] * ds), "-", color=color,
                    label=f"{name}: κ = {f['rate']:.2f} [{f['interval'][0]:.2f}, {f['interval'][1]:.2f}] (99%)")
    ax.plot(ds, np.ones_like(ds), "k:", label="one full-rank head: H* = 1")
    ax.set(yscale="log", xlabel="d", ylabel=f"H*(ε = {data['eps']})", title="(b) heads needed: log H* = c + κ d")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    return run_experiment(STEM, Config, FULL, QUICK, compute, plot, argv)


if __name__ == "__main__":
    main()
