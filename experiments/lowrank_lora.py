"""Figure: LoRA in the NTK regime (#110): success rate against rank, the r(r+1)/2 > KN bound marked.

(a) fraction of seeds whose LoRA training (:func:`theorylab.lowrank.fit_lora_ntk`) reaches
    relative training loss <= 1e-10 on the NTK-linearized problem, against the rank r, one
    line per problem size (K outputs, N samples, d_in x d_out weight); solid vertical: the
    paper's sufficient rank (smallest r with r(r+1)/2 > KN); dotted: the dimension count
    (smallest r with r(d_in + d_out − r) >= KN, below which no rank-r solution exists).
(b) the final relative training loss per seed (log scale), the same ranks.

Above the bound every seed succeeds (the claim ``lowrank.lora-above-threshold-fits``); below it
the transition is only recorded: measured at the dimension count, far below the bound.

Run: ``python experiments/lowrank_lora.py [--quick]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theorylab.cells import Cells
from theorylab.experiment import run_experiment
from theorylab.lowrank import dimension_count_rank, lora_rank_threshold
from theorylab.lowrank.lora_ntk_claims import SIZES, SUCCESS, success_rates

STEM = "lowrank_lora"


@dataclass(frozen=True)
class Config:
    """Success rate of LoRA training against rank on NTK-linearized problems."""

    seed: int = 0
    seeds: int = 48
    sizes: tuple = tuple("x".join(map(str, s)) for s in SIZES)  # "KxNxd_inxd_out"


FULL = Config()
QUICK = Config(seeds=16)


def _size(text: str) -> tuple:
    return tuple(int(x) for x in text.split("x"))


def cells(cfg: Config) -> list[dict]:
    return [{"size": s, "r": r} for s in cfg.sizes for r in range(1, min(_size(s)[2:]) + 1)]


def compute_cell(cfg: Config, cell: dict) -> dict:
    K, N, d_in, d_out = _size(cell["size"])
    rng = np.random.default_rng([cfg.seed, K, N, d_in, d_out, cell["r"]])
    _, _, runs = success_rates(rng, K, N, d_in, d_out, [cell["r"]], seeds=cfg.seeds)
    loss = runs[cell["r"]][0]
    return {"loss": loss.tolist(), "rate": float(np.mean(loss <= SUCCESS))}


def assemble(cfg: Config, results: list) -> dict:
    out = {}
    for c, r in zip(cells(cfg), results):
        K, N, d_in, d_out = _size(c["size"])
        e = out.setdefault(c["size"], {"K": K, "N": N, "d_in": d_in, "d_out": d_out, "KN": K * N,
                                       "threshold_rank": lora_rank_threshold(K, N),
                                       "dimension_count_rank": dimension_count_rank(K, N, d_in, d_out),
                                       "ranks": [], "rates": [], "losses": []})
        e["ranks"].append(c["r"])
        e["rates"].append(r["rate"])
        e["losses"].append(r["loss"])
    for e in out.values():
        above = [rate for r, rate in zip(e["ranks"], e["rates"]) if r >= e["threshold_rank"]]
        first = [r for r, rate in zip(e["ranks"], e["rates"]) if rate == 1.0]
        e["min_rate_above_bound"] = min(above)
        e["first_rank_all_seeds"] = first[0] if first else None
    return {"success": SUCCESS, "seeds": cfg.seeds, "sizes": out}


compute = Cells(cells, compute_cell, assemble)


def plot(data: dict, path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.2))
    for i, (name, e) in enumerate(data["sizes"].items()):
        label = f"K={e['K']}, N={e['N']} (KN={e['KN']}), {e['d_in']}→{e['d_out']}"
        axes[0].plot(e["ranks"], e["rates"], "o-", color=f"C{i}", label=label)
        for ax in axes:
            ax.axvline(e["threshold_rank"] - 0.5 + 0.04 * i, color=f"C{i}", lw=1.5, alpha=0.7)
            ax.axvline(e["dimension_count_rank"] - 0.5 - 0.04 * i, color=f"C{i}", ls=":", lw=1.2)
        loss = np.maximum(np.array(e["losses"]), 1e-35)  # (ranks, seeds); exact zeros drawn at 1e-35
        for j, r in enumerate(e["ranks"]):
            axes[1].plot(np.full(loss.shape[1], r + 0.12 * (i - 1)), loss[j], ".", color=f"C{i}", alpha=0.5, ms=3)
    axes[0].plot([], [], "k-", label="bound: smallest r with r(r+1)/2 > KN")
    axes[0].plot([], [], "k:", label="dimension count r(d_in + d_out − r) >= KN")
    axes[0].set(xlabel="LoRA rank r", ylabel=f"success rate (loss <= {data['success']:g}), {data['seeds']} seeds",
                title="(a) LoRA on the NTK-linearized problem", ylim=(-0.05, 1.05))
    axes[0].legend(fontsize=7)
    axes[1].axhline(data["success"], color="grey", lw=1)
    axes[1].set(yscale="log", xlabel="LoRA rank r", ylabel="final relative training loss",
                title="(b) training loss per seed")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    return run_experiment(STEM, Config, FULL, QUICK, compute, plot, argv)


if __name__ == "__main__":
    main()
