"""Figure: the S4 kernel three ways (#44) -- powering, DPLR (Cauchy + Woodbury + iFFT), recurrence.

(a) K̄_ℓ = C Ā^ℓ B̄ of a few channels of a random HiPPO-LegS S4 layer, the three methods overlaid;
(b) |K_power - K_rec| and |K_dplr - K_rec| relative to max |K_rec|, vs ℓ (max and min over seeds);
(c) CPU time vs length L at fixed N, with fitted log-log slopes (predicted ~1 for all: power
    O(N² L + N³ log L), recurrence O(N² L), DPLR given C̃ O(N L + L log L));
(d) CPU time vs state size N at fixed L (predicted: recurrence ~2, DPLR given C̃ ~1).

Run: ``python experiments/ssm_s4_kernel.py [--quick]`` or ``theorylab reproduce ssm_s4_kernel``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theorylab.checks import fit_loglog_slope
from theorylab.experiment import Cells, run_experiment
from theorylab.ssm import hippo_dplr, make_s4_inputs, s4_kernel_dplr, s4_kernel_power, s4_kernel_recurrent
from theorylab.ssm.s4_claims import kernel_times

STEM = "ssm_s4_kernel"
METHODS = ("power", "recurrent", "dplr")
PLOT_LEN = 300  # panel (a) shows ℓ < 300: past it the kernels have decayed to ~0


@dataclass(frozen=True)
class Config:
    """S4 kernel: three methods overlaid, their differences, cost vs L and vs N."""

    seeds: tuple = (0, 1, 2)
    state: int = 64
    length: int = 1024
    channels: int = 3
    time_state: int = 32
    time_channels: int = 4
    time_lengths: tuple = (512, 1024, 2048, 4096, 8192)
    n_length: int = 1024
    n_states: tuple = (32, 64, 128, 256, 512)
    repeat: int = 5


FULL = Config()
QUICK = Config(seeds=(0, 1), state=32, length=256, time_state=16, time_lengths=(256, 512, 1024, 2048), n_length=512,
               n_states=(16, 32, 64, 128), repeat=2)


def _kernels(seed, cfg):
    p = make_s4_inputs(np.random.default_rng(seed), length=cfg.length, channels=cfg.channels, state=cfg.state)
    Lam, Pt, Bt, V = hippo_dplr(cfg.state)
    Bd = np.broadcast_to(Bt, p["B"].shape).copy()
    return {
        "power": s4_kernel_power(p["A"], p["B"], p["C"], p["dt"], cfg.length),
        "recurrent": s4_kernel_recurrent(p["A"], p["B"], p["C"], p["dt"], cfg.length),
        "dplr": s4_kernel_dplr(Lam, Pt, Bd, p["C"] @ V, p["dt"], cfg.length),
        "dt": p["dt"],
    }


def cells(cfg: Config) -> list[dict]:
    """One cell per seed (kernels and differences), one per method timed against L, one per
    method timed against N (each times its sizes interleaved, see ``kernel_times``)."""
    return ([{"panel": "kernels", "seed": s} for s in cfg.seeds] + [{"panel": "time_L", "method": m} for m in METHODS]
            + [{"panel": "time_N", "method": m} for m in ("recurrent", "dplr")])


def compute_cell(cfg: Config, cell: dict) -> dict:
    m = cell.get("method")
    if cell["panel"] == "time_L":  # (c) CPU seconds vs L
        return {"times": kernel_times(m, cfg.time_lengths, state=cfg.time_state, channels=cfg.time_channels,
                                      repeat=cfg.repeat)}
    if cell["panel"] == "time_N":  # (d) CPU seconds vs N
        return {"times": [kernel_times(m, (cfg.n_length,), state=n, channels=cfg.time_channels, repeat=cfg.repeat)[0]
                          for n in cfg.n_states]}
    K = _kernels(cell["seed"], cfg)  # (a, b) the kernels of one seed and their differences
    scale = np.abs(K["recurrent"]).max()
    out = {"diffs": {}}
    for k in ("power", "dplr"):
        d = np.abs(K[k] - K["recurrent"]).max(axis=0) / scale  # (L,): max over channels
        out["diffs"][k] = [float(f"{x:.3g}") for x in d]  # 3 digits: enough for a log-scale error plot
    if cell["seed"] == cfg.seeds[0]:
        out["kernels"] = {k: np.vectorize(lambda x: float(f"{x:.6g}"))(K[k][:, :PLOT_LEN]).tolist() for k in METHODS}
        out["dt"] = K["dt"].tolist()
    return out


def assemble(cfg: Config, results: list) -> dict:
    by = {}
    for c, r in zip(cells(cfg), results):
        by.setdefault(c["panel"], []).append((c, r))
    first = by["kernels"][0][1]
    diffs = {k: [r["diffs"][k] for _, r in by["kernels"]] for k in ("power", "dplr")}
    times_L = {c["method"]: r["times"] for c, r in by["time_L"]}
    times_N = {c["method"]: r["times"] for c, r in by["time_N"]}
    half = len(cfg.n_states) // 2 - 1  # fit the upper part: per-call overheads flatten small sizes
    return {
        "kernels": first["kernels"],
        "dt": first["dt"],
        "diffs": diffs,
        "time_lengths": list(cfg.time_lengths),
        "n_states": list(cfg.n_states),
        "max_rel_diff": {k: float(np.max(v)) for k, v in diffs.items()},
        "timings": {  # CPU seconds and the fits to them
            "times_L": times_L,
            "slopes_L": {k: fit_loglog_slope(cfg.time_lengths, t) for k, t in times_L.items()},
            "times_N": times_N,
            "slopes_N": {k: fit_loglog_slope(cfg.n_states[half:], t[half:]) for k, t in times_N.items()},
        },
    }


compute = Cells(cells, compute_cell, assemble)


def plot(data: dict, path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    ax = axes[0, 0]
    styles = {"power": dict(lw=2.5, alpha=0.5), "recurrent": dict(lw=1.2, ls="--"), "dplr": dict(lw=0.8, ls=":")}
    K = {m: np.array(v) for m, v in data["kernels"].items()}
    for c in range(K["power"].shape[0]):
        for m in METHODS:
            ax.plot(K[m][c], color=f"C{c}", label=f"{m}" if c == 0 else None, **styles[m])
    ax.set(xlabel="ℓ", ylabel="K̄_ℓ", title=f"(a) S4 kernel, {K['power'].shape[0]} channels (Δ = "
           + ", ".join(f"{d:.3g}" for d in data["dt"]) + ")")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    for i, m in enumerate(("power", "dplr")):
        d = np.array(data["diffs"][m])  # (seeds, L)
        ell = np.arange(d.shape[1])
        ax.plot(ell, np.maximum(d.max(0), 1e-18), color=f"C{i}", lw=0.8, label=f"|K_{m} - K_rec| (max over seeds)")
        ax.fill_between(ell, np.maximum(d.min(0), 1e-18), np.maximum(d.max(0), 1e-18), color=f"C{i}", alpha=0.2)
    ax.axhline(1e-10, ls=":", c="k", lw=1, label="policy rtol float64")
    ax.set(yscale="log", xlabel="ℓ", ylabel="difference / max |K_rec|", title="(b) the three methods agree (float64)")
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    tm = data["timings"]
    for m, t in tm["times_L"].items():
        ax.plot(data["time_lengths"], t, marker="o", label=f"{m} (slope {tm['slopes_L'][m]:.2f})")
    ax.set(xscale="log", yscale="log", xlabel="length L", ylabel="CPU seconds", title="(c) kernel cost vs L")
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    for m, t in tm["times_N"].items():
        ax.plot(data["n_states"], t, marker="o", label=f"{m} (upper slope {tm['slopes_N'][m]:.2f})")
    ax.set(xscale="log", yscale="log", xlabel="state size N", ylabel="CPU seconds",
           title="(d) kernel cost vs N (recurrence ~N², DPLR ~N)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    return run_experiment(STEM, Config, FULL, QUICK, compute, plot, argv)


if __name__ == "__main__":
    main()
