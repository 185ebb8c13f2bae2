"""Figure: whole gated-linear-recurrent layers as implicit attention (#6).

Top row: Ĥ(x) of one inner channel for a Mamba block, a Griffin (RG-LRU) block and RWKV-4
time mixing on the same random input.  Bottom row: Mamba with the conv ablated and with the
gate ablated, and the reconstruction error |forward(x) - Σ_c W_out[c] Ĥ_c v_c| (normwise,
float64) of every layer and ablation over seeds.

Run: ``python experiments/ssm_implicit_attention.py [--quick]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theorylab.experiment import Cells, run_experiment
from theorylab.ssm.implicit_attention import LAYERS, apply_implicit_attention, forward, implicit_attention, init_params
from theorylab.tolerances import compare

STEM = "ssm_implicit_attention"


@dataclass(frozen=True)
class Config:
    """Implicit attention matrices of Mamba, Griffin and RWKV layers."""

    seeds: tuple = tuple(range(8))
    length: int = 48
    d_model: int = 8
    d_inner: int = 16
    state: int = 8
    channel: int = 0


FULL = Config()
QUICK = Config(seeds=(0, 1, 2), length=24)

VARIANTS = [(layer, True, True) for layer in LAYERS] + [("mamba", False, True), ("mamba", True, False)]


def _name(layer, conv, gate):
    return layer + ("" if conv or layer == "rwkv" else " (no conv)") + ("" if gate else " (no gate)")


def cells(cfg: Config) -> list[dict]:
    """One cell per layer variant (all seeds)."""
    return [{"layer": layer, "conv": conv, "gate": gate} for layer, conv, gate in VARIANTS]


def compute_cell(cfg: Config, cell: dict) -> dict:
    layer, conv, gate = cell["layer"], cell["conv"], cell["gate"]
    errs, heat = [], None
    for seed in cfg.seeds:
        rng = np.random.default_rng(seed)
        p = init_params(layer, rng, d_model=cfg.d_model, d_inner=cfg.d_inner, state=cfg.state)
        x = rng.standard_normal((1, cfg.length, cfg.d_model))
        H, v = implicit_attention(layer, x, p, conv=conv, gate=gate)
        errs.append(compare(apply_implicit_attention(H, v, p), forward(layer, x, p, conv=conv, gate=gate),
                            dtype=np.float64).rel_error)
        if seed == cfg.seeds[0]:
            heat = H[0, cfg.channel].tolist()
    return {"heatmap": heat, "errors": errs}


def assemble(cfg: Config, results: list) -> dict:
    names = [_name(c["layer"], c["conv"], c["gate"]) for c in cells(cfg)]
    return {"heatmaps": {n: r["heatmap"] for n, r in zip(names, results)},
            "errors": {n: r["errors"] for n, r in zip(names, results)}, "length": cfg.length}


compute = Cells(cells, compute_cell, assemble)


def plot(data: dict, path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(11, 7))
    names = list(data["heatmaps"])
    for ax, name in zip(axes.flat[:5], names):
        H = np.array(data["heatmaps"][name])
        lim = np.abs(H).max() or 1.0
        ax.imshow(H, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"Ĥ(x), {name}")
        ax.set_xlabel("s (key)")
        ax.set_ylabel("t (query)")
        ax.grid(False)
    ax = axes.flat[5]
    errs = [np.array(data["errors"][n]) for n in names]
    ax.boxplot(errs, vert=False, tick_labels=names)
    ax.axvline(1e-10, ls=":", c="k", lw=1, label="policy rtol (float64)")
    ax.set(xscale="log", xlabel="relative error of Ĥ(x) v vs forward(x)", title="reconstruction over seeds")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    return run_experiment(STEM, Config, FULL, QUICK, compute, plot, argv)


if __name__ == "__main__":
    main()
