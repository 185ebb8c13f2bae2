"""Figure: a selective SSM layer is causal, data-dependent attention (#93, #6).

(a) hidden attention matrices M[c] of a few channels of one random selective SSM;
(b) normwise relative error of M x + D x against the float64 scan, vs length, in float64
    and float32 (float32 inputs rounded first; the reference sees the same values);
(c) wall time vs length of the numba scan, the torch chunked scan and the materialized
    attention form, with fitted log-log slopes (predicted ~1, ~1, ~2).

Run: ``python experiments/ssm_hidden_attention.py [--quick]`` or
``theorylab reproduce ssm_hidden_attention``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theorylab.benchmarking import timeit
from theorylab.checks import fit_loglog_slope
from theorylab.experiment import Cells, run_experiment
from theorylab.ssm import make_inputs, selective_attention_matrix, selective_scan, selective_scan_ref
from theorylab.tolerances import compare

STEM = "ssm_hidden_attention"


@dataclass(frozen=True)
class Config:
    """Hidden attention of a selective SSM: heatmaps, error vs length, time vs length."""

    seeds: tuple = (0, 1, 2)
    heat_length: int = 48
    heat_channels: int = 4
    error_lengths: tuple = (16, 64, 256, 1024)
    error_channels: int = 8
    state: int = 16
    time_lengths: tuple = (256, 512, 1024, 2048, 4096)
    time_matrix_max: int = 2048  # the O(L^2) form is timed up to this length
    time_channels: int = 32
    repeat: int = 3


FULL = Config()
QUICK = Config(seeds=(0, 1), error_lengths=(16, 64, 256), state=8, time_lengths=(128, 256, 512), time_matrix_max=512,
               time_channels=8, repeat=2)


TIME_FORMS = ("numba scan", "torch chunked scan", "materialized M x")


def _attn_output(M, x, D):
    return np.einsum("bcts,bsc->btc", M, x) + D * x  # (b, L, c)


def cells(cfg: Config) -> list[dict]:
    """The heatmaps, one cell per error length, one per timed length."""
    return ([{"panel": "heatmap"}] + [{"panel": "error", "L": L} for L in cfg.error_lengths]
            + [{"panel": "time", "L": L} for L in cfg.time_lengths])


def compute_cell(cfg: Config, cell: dict) -> dict:
    if cell["panel"] == "heatmap":  # (a) one random instance
        p = make_inputs(np.random.default_rng(cfg.seeds[0]), length=cfg.heat_length, channels=cfg.heat_channels,
                        state=cfg.state)
        return {"M": selective_attention_matrix(p["delta"], p["A"], p["B"], p["C"], backend="ref")[0]}  # (c, L, L)
    if cell["panel"] == "error":  # (b) error of the attention form vs the scan at length L, per seed
        per = {"float64": [], "float32": []}
        for seed in cfg.seeds:
            q = make_inputs(np.random.default_rng(seed), length=cell["L"], channels=cfg.error_channels, state=cfg.state)
            for name, dt in (("float64", np.float64), ("float32", np.float32)):
                r = {k: v.astype(dt).astype(np.float64) for k, v in q.items()}  # rounded, then upcast
                y_ref, _ = selective_scan_ref(r["x"], r["delta"], r["A"], r["B"], r["C"], r["D"])
                d = {k: v.astype(dt) for k, v in q.items()}
                Md = selective_attention_matrix(d["delta"], d["A"], d["B"], d["C"], backend="torch")
                y = _attn_output(Md, d["x"], d["D"]).astype(dt)
                per[name].append(compare(y, y_ref, dtype=dt).rel_error)
        return per
    import torch  # (c) seconds per call of each form at length L

    L = cell["L"]
    q = make_inputs(np.random.default_rng(0), length=L, channels=cfg.time_channels, state=cfg.state, dtype=np.float32)
    tq = {k: torch.from_numpy(v) for k, v in q.items()}
    args = [q[k] for k in ("x", "delta", "A", "B", "C", "D")]
    targs = [tq[k] for k in ("x", "delta", "A", "B", "C", "D")]
    out = {"numba scan": timeit(lambda: selective_scan(*args, backend="numba"), repeat=cfg.repeat),
           "torch chunked scan": timeit(lambda: selective_scan(*targs, backend="torch"), repeat=cfg.repeat)}
    if L <= cfg.time_matrix_max:
        f = lambda: _attn_output(selective_attention_matrix(*args[1:5], backend="torch"), q["x"], q["D"])  # noqa: E731
        out["materialized M x"] = timeit(f, repeat=cfg.repeat)
    return out


def assemble(cfg: Config, results: list) -> dict:
    cs = cells(cfg)
    errs = [r for c, r in zip(cs, results) if c["panel"] == "error"]
    timed = [r for c, r in zip(cs, results) if c["panel"] == "time"]
    times = {k: [r[k] for r in timed if k in r] for k in TIME_FORMS}
    slopes = {}
    for k, v in times.items():
        ns = cfg.time_lengths[: len(v)]
        slopes[k] = fit_loglog_slope(ns[len(ns) // 2 - 1:], v[len(ns) // 2 - 1:])  # upper half: past fixed overheads
    return {
        "heatmaps": results[0]["M"],
        "error_lengths": list(cfg.error_lengths),
        "errors": {name: [r[name] for r in errs] for name in ("float64", "float32")},
        "time_lengths": list(cfg.time_lengths),
        "timings": {"times": times, "slopes": slopes},  # wall-clock seconds and the fits to them
    }


compute = Cells(cells, compute_cell, assemble)


def plot(data: dict, path) -> None:
    import matplotlib.pyplot as plt

    M = np.array(data["heatmaps"])
    nc = M.shape[0]
    fig = plt.figure(figsize=(3.0 * nc, 6.2))
    gs = fig.add_gridspec(2, max(nc, 2))
    for c in range(nc):
        ax = fig.add_subplot(gs[0, c])
        lim = np.abs(M[c]).max()
        ax.imshow(M[c], cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"(a) hidden attention M, channel {c}")
        ax.set_xlabel("s (key)")
        ax.set_ylabel("t (query)")
        ax.grid(False)
    half = max(nc, 2) // 2
    ax = fig.add_subplot(gs[1, :half])
    Ls = data["error_lengths"]
    for name, marker in (("float64", "o"), ("float32", "s")):
        e = np.array(data["errors"][name])  # (lengths, seeds)
        ax.plot(Ls, e.max(1), marker=marker, label=f"{name} (max over seeds)")
        ax.fill_between(Ls, e.min(1), e.max(1), alpha=0.25)
    ax.axhline(1e-10, ls=":", c="C0", lw=1, label="policy rtol float64")
    ax.axhline(1e-4, ls=":", c="C1", lw=1, label="policy rtol float32")
    ax.set(xscale="log", yscale="log", xlabel="length L", ylabel="relative error of M x + D x vs scan",
           title="(b) attention form = scan")
    ax.legend(fontsize=7)
    ax = fig.add_subplot(gs[1, half:])
    tm = data["timings"]
    for k, v in tm["times"].items():
        ns = data["time_lengths"][: len(v)]
        ax.plot(ns, v, marker="o", label=f"{k} (slope {tm['slopes'][k]:.2f})")
    ax.set(xscale="log", yscale="log", xlabel="length L", ylabel="seconds", title="(c) cost vs length (float32, CPU)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    return run_experiment(STEM, Config, FULL, QUICK, compute, plot, argv)


if __name__ == "__main__":
    main()
