"""Figure: prequential coding of the conjugate Bayesian linear-regression learner (#46) and
the regret of Bayesian model averaging (#71).

(a) complexity |μ_n|²/(2τ²) + ½ log det(I + τ²XᵀX/σ²) against n for several d, mean and
    spread over seeds, with the (d/2) log n law (fitted slopes in the legend);
(b) the code length split: −log evidence = Σ prequential losses = training error + complexity
    per example, against n (one d);
(c) BMA average regret regret_T / T against T for several K, with log K / T.

Run: ``python experiments/icl_prequential.py [--quick]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theorylab.experiment import Cells, run_experiment
from theorylab.icl import complexity_split, log_evidence, make_inputs, prequential_log_loss
from theorylab.icl.prequential_claims import NOISE, TAU, average_regret_curve

STEM = "icl_prequential"


@dataclass(frozen=True)
class Config:
    """Complexity ~ (d/2) log n, the prequential split, and BMA average regret ~ 1/T."""

    seeds: tuple = (0, 1, 2, 3, 4)
    dims: tuple = (1, 2, 4, 8)
    n_min: int = 16
    doublings: int = 12
    prompts: int = 32
    split_d: int = 4
    split_n: int = 400
    tasks: tuple = (2, 4, 16)


FULL = Config()
QUICK = Config(seeds=(0, 1), dims=(1, 4), doublings=8, prompts=8, split_n=120, tasks=(2, 8))


def cells(cfg: Config) -> list[dict]:
    """One cell per dimension d (complexity vs n), one for the split, one per number of tasks K."""
    return ([{"panel": "complexity", "d": d} for d in cfg.dims] + [{"panel": "split"}]
            + [{"panel": "regret", "K": K} for K in cfg.tasks])


def compute_cell(cfg: Config, cell: dict) -> dict:
    return {"complexity": _complexity, "split": _split, "regret": _regret}[cell["panel"]](cfg, cell)


def _ns(cfg: Config) -> list:
    return (cfg.n_min * 2 ** np.arange(cfg.doublings + 1)).tolist()


def _complexity(cfg: Config, cell: dict) -> dict:
    ns, d = _ns(cfg), cell["d"]
    rows = []
    for s in cfg.seeds:
        p = make_inputs(np.random.default_rng([s, d]), batch=cfg.prompts, k=ns[-1], d=d, noise=NOISE, tau=TAU)
        rows.append([float(complexity_split(p["X"][:, :n], p["y"][:, :n], NOISE, TAU, backend="ref")[1].mean())
                     for n in ns])
    rows = np.array(rows)
    top = slice(len(ns) // 2, None)  # the fit over the upper half (64x when doublings = 12)
    slope = float(np.polyfit(np.log(ns)[top], rows.mean(0)[top], 1)[0])
    return {"mean": rows.mean(0).tolist(), "min": rows.min(0).tolist(), "max": rows.max(0).tolist(),
            "slope_upper_half": slope, "law": d / 2}


def _split(cfg: Config, cell: dict) -> dict:
    p = make_inputs(np.random.default_rng(cfg.seeds[0]), batch=1, k=cfg.split_n, d=cfg.split_d, noise=NOISE, tau=TAU)
    preq = np.cumsum(prequential_log_loss(p["X"], p["y"], NOISE, TAU, backend="ref")[0])
    split_ns = list(range(1, cfg.split_n + 1, max(1, cfg.split_n // 60)))
    ev, tr, cp = [], [], []
    for n in split_ns:
        X, y = p["X"][:, :n], p["y"][:, :n]
        ev.append(float(-log_evidence(X, y, NOISE, TAU, backend="ref")[0]))
        t, c = complexity_split(X, y, NOISE, TAU, backend="ref")
        tr.append(float(t[0]))
        cp.append(float(c[0]))
    return {"d": cfg.split_d, "n": split_ns, "neg_log_evidence": ev, "prequential": preq[np.array(split_ns) - 1].tolist(),
            "training_error": tr, "complexity": cp,
            "max_abs_gap_prequential_vs_evidence": float(np.max(np.abs(preq[np.array(split_ns) - 1] - ev)))}


def _regret(cfg: Config, cell: dict) -> dict:
    curves = [average_regret_curve(np.random.default_rng([s, cell["K"]]), cell["K"], 3)[1] for s in cfg.seeds]
    return {"mean": np.mean(curves, 0).tolist(), "min": np.min(curves, 0).tolist(), "max": np.max(curves, 0).tolist()}


def assemble(cfg: Config, results: list) -> dict:
    comp, regret, split = {}, {}, None
    for c, r in zip(cells(cfg), results):
        if c["panel"] == "complexity":
            comp[str(c["d"])] = r
        elif c["panel"] == "regret":
            regret[str(c["K"])] = r
        else:
            split = r
    Ts = average_regret_curve(np.random.default_rng(0), 2, 1)[0].tolist()
    return {"ns": _ns(cfg), "complexity": comp, "noise": NOISE, "tau": TAU, "split": split, "T": Ts,
            "average_regret": regret}


compute = Cells(cells, compute_cell, assemble)


def plot(data: dict, path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    ns = np.array(data["ns"])
    for d, c in data["complexity"].items():
        line, = ax[0].plot(ns, c["mean"], "o-", ms=3, label=f"d={d}: slope {c['slope_upper_half']:.2f} (law {c['law']})")
        ax[0].fill_between(ns, c["min"], c["max"], color=line.get_color(), alpha=0.2)
        ax[0].plot(ns, c["mean"][-1] + c["law"] * (np.log(ns) - np.log(ns[-1])), ":", color=line.get_color())
    ax[0].set(xscale="log", xlabel="n (examples)", ylabel="complexity (nats)",
              title="(a) complexity vs n; dotted: (d/2) log n")
    ax[0].legend(fontsize=7)
    s = data["split"]
    n = np.array(s["n"])
    ax[1].plot(n, np.array(s["neg_log_evidence"]) / n, "k-", lw=2, label="−log evidence / n")
    ax[1].plot(n, np.array(s["prequential"]) / n, "y--", label="Σ prequential loss / n")
    ax[1].plot(n, np.array(s["training_error"]) / n, label="training error / n")
    ax[1].plot(n, np.array(s["complexity"]) / n, label="complexity / n")
    ax[1].set(xscale="log", xlabel="n", ylabel="nats per example",
              title=f"(b) code length = training error + complexity (d={s['d']})")
    ax[1].legend(fontsize=7)
    T = np.array(data["T"])
    for K, r in data["average_regret"].items():
        line, = ax[2].plot(T, r["mean"], "o-", ms=3, label=f"K={K}")
        ax[2].fill_between(T, r["min"], r["max"], color=line.get_color(), alpha=0.2)
        ax[2].plot(T, np.log(int(K)) / T, ":", color=line.get_color())
    ax[2].set(xscale="log", yscale="log", xlabel="T", ylabel="regret_T / T",
              title="(c) BMA average regret; dotted: log K / T")
    ax[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def main(argv=None):
    return run_experiment(STEM, Config, FULL, QUICK, compute, plot, argv)


if __name__ == "__main__":
    main()
