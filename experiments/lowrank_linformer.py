"""Figure: Linformer's error depends on k, not on n (#59), and the spectrum of attention.

(a) relative error ||out − P V||_F / ||P V||_F of Linformer with E = F = S, a sampling sketch
    to k rows, against n for several k (i.i.d. tokens, :func:`theorylab.lowrank.linformer.make_inputs`);
    lines are means over seeds, bands min-max; dashed: the control, a sketch scaled for sums
    (E = √(n/k) S), whose error grows with n.
(b) energy of softmax attention matrices P = softmax(QKᵀ/√d) (n = 512) in their top-k singular
    values, for several logit scales (one batched SVD per scale).

Run: ``python experiments/lowrank_linformer.py [--quick]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theorylab.experiment import Cells, run_experiment
from theorylab.lowrank import topk_energy
from theorylab.lowrank.linformer import make_inputs
from theorylab.lowrank.linformer_claims import sketch_errors

STEM = "lowrank_linformer"


@dataclass(frozen=True)
class Config:
    """Linformer error against n for several k; top-k energy of attention matrices."""

    seeds: tuple = (0, 1, 2, 3, 4, 5, 6, 7)
    ks: tuple = (8, 32, 128)
    log2_min: int = 7
    log2_max: int = 12
    control_k: int = 32
    energy_n: int = 512
    scales: tuple = (0.5, 1.0, 2.0, 4.0)


FULL = Config()
QUICK = Config(seeds=(0, 1), ks=(8, 32), log2_max=9, energy_n=64, scales=(1.0, 4.0))
ENERGY_K = list(range(1, 65))


def cells(cfg: Config) -> list[dict]:
    """One cell per (k, seed) sketch run, one per seed of the control, one per logit scale."""
    return ([{"panel": "sketch", "k": k, "seed": s} for k in cfg.ks for s in cfg.seeds]
            + [{"panel": "control", "seed": s} for s in cfg.seeds] + [{"panel": "energy", "scale": sc} for sc in cfg.scales])


def compute_cell(cfg: Config, cell: dict) -> dict:
    ns = [2**k for k in range(cfg.log2_min, cfg.log2_max + 1)]
    s = cell.get("seed")
    if cell["panel"] == "sketch":
        return {"errors": [r[0] for r in sketch_errors(np.random.default_rng([s, cell["k"]]), ns, cell["k"])]}
    if cell["panel"] == "control":
        return {"errors": [r[0] for r in sketch_errors(np.random.default_rng([s, 999]), ns, cfg.control_k, sum_scaled=True)]}
    Ps = []
    for s in cfg.seeds:
        p = make_inputs(np.random.default_rng([s, 5]), n=cfg.energy_n, m=cfg.energy_n, d=8, dv=8)
        S = cell["scale"] * p["Q"] @ p["K"].T / np.sqrt(8)
        e = np.exp(S - S.max(-1, keepdims=True))
        Ps.append(e / e.sum(-1, keepdims=True))
    P = np.stack(Ps)
    return {"energy": [np.asarray(topk_energy(P, k)).tolist() for k in ENERGY_K]}


def assemble(cfg: Config, results: list) -> dict:
    by = {}
    for c, r in zip(cells(cfg), results):
        by.setdefault(c["panel"], []).append((c, r))
    return {"n": [2**k for k in range(cfg.log2_min, cfg.log2_max + 1)],
            "errors": {str(k): [r["errors"] for c, r in by["sketch"] if c["k"] == k] for k in cfg.ks},
            "control": [r["errors"] for _, r in by["control"]], "control_k": cfg.control_k, "energy_k": ENERGY_K,
            "energy": {str(c["scale"]): r["energy"] for c, r in by["energy"]}, "energy_n": cfg.energy_n}


compute = Cells(cells, compute_cell, assemble)


def plot(data: dict, path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.0))
    ax = axes[0]
    ns = np.array(data["n"])
    for i, (k, e) in enumerate(data["errors"].items()):
        e = np.array(e)
        ax.plot(ns, e.mean(0), marker="o", ms=3, color=f"C{i}", label=f"sampling sketch, k = {k}")
        ax.fill_between(ns, e.min(0), e.max(0), color=f"C{i}", alpha=0.2)
    c = np.array(data["control"])
    ax.plot(ns, c.mean(0), ls="--", color="k", label=f"control: E = √(n/k) S, k = {data['control_k']}")
    ax.set(xscale="log", yscale="log", xlabel="n", ylabel="relative error vs softmax attention",
           title="(a) Linformer error depends on k, not n")
    ax.legend(fontsize=7)
    ax = axes[1]
    for i, (scale, en) in enumerate(data["energy"].items()):
        en = np.array(en)
        ax.plot(data["energy_k"], en.mean(1), color=f"C{i}", label=f"logit scale {scale}")
        ax.fill_between(data["energy_k"], en.min(1), en.max(1), color=f"C{i}", alpha=0.2)
    ax.set(xscale="log", xlabel="k", ylabel="energy in top-k singular values",
           title=f"(b) spectrum of softmax(QKᵀ/√d), n = {data['energy_n']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    return run_experiment(STEM, Config, FULL, QUICK, compute, plot, argv)


if __name__ == "__main__":
    main()
