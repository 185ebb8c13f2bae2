"""Figure: state space duality -- a scalar-decay SSM is a semiseparable, masked linear attention.

(a) the SSD matrix M = L ∘ (C Bᵀ) of one head (heatmap);
(b) semiseparable rank: the largest rank of a block M[k:, :k] strictly below the diagonal
    against the state size N (SSD: = N), and for the same C Bᵀ under a random
    lower-triangular mask (not semiseparable: full rank);
(c) chunked algorithm vs recurrence, normwise error against chunk size (float64 forms and
    float32 backends, float32 inputs rounded first);
(d) float32 at long lengths with log_a anywhere in [-30, 0]: stable segment sums (the
    torch and numba backends) vs decays from one float32 cumulative sum (differences
    cs_t - cs_s lose digits; ratios exp(cs_t)/exp(cs_s) give NaN, drawn at the top);
(e) CPU time (one thread) against length of the recurrent (numba, one chunk), chunked
    (torch, chunk 64) and quadratic (M X) forms, with fitted log-log slopes (predicted ~1,
    ~1, ~2).

Run: ``python experiments/ssm_ssd.py [--quick]`` or ``theorylab reproduce ssm_ssd``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from theorylab.benchmarking import timeit
from theorylab.checks import crossover_length, fit_loglog_slope
from theorylab.experiment import Cells, run_experiment
from theorylab.ssm import ssd, ssd_matrix
from theorylab.ssm.duality import make_inputs, ssd_chunked_ref, ssd_ref
from theorylab.ssm.duality_claims import long_inputs, naive_cumsum_ssd
from theorylab.tolerances import compare

STEM = "ssm_ssd"


@dataclass(frozen=True)
class Config:
    """State space duality: SSD matrix, semiseparable rank, chunked = recurrence, float32 stability, costs."""

    seeds: tuple = (0, 1, 2)
    heat_length: int = 48
    heat_state: int = 4
    rank_length: int = 40
    rank_states: tuple = (1, 2, 3, 4, 6, 8, 12)
    chunk_length: int = 256
    chunk_sizes: tuple = (1, 2, 3, 7, 16, 64, 100, 256)
    long_lengths: tuple = (1024, 4096, 16384, 65536)
    time_lengths: tuple = (256, 512, 1024, 2048, 4096, 8192, 16384)
    time_quadratic_max: int = 4096  # the O(L^2) form is timed up to this length
    time_heads: int = 2
    time_dim: int = 32  # head_dim = state
    repeat: int = 5


FULL = Config()
QUICK = Config(seeds=(0, 1), rank_states=(1, 2, 4, 6), chunk_length=96, chunk_sizes=(1, 3, 7, 32, 96),
               long_lengths=(1024, 4096, 8192), time_lengths=(128, 256, 512, 1024), time_quadratic_max=1024,
               time_dim=16, repeat=2)


CHUNK_FORMS = ("ssd_chunked_ref float64", "torch float64", "numba float64", "torch float32", "numba float32")
LONG_FORMS = ("torch (stable segsum)", "numba (stable)", "cumsum difference", "exp(cumsum) ratio")
TIME_FORMS = ("recurrent (numba, one chunk)", "chunked (torch, Q=64)", "quadratic (M X, torch)")


def _max_block_rank(M: np.ndarray) -> int:
    """max over k of the numerical rank of M[k:, :k] (singular values > 1e-9 · σ_max)."""
    best = 0
    for k in range(1, M.shape[0]):
        s = np.linalg.svd(M[k:, :k], compute_uv=False)
        best = max(best, int(np.sum(s > 1e-9 * s[0])) if s[0] > 0 else 0)
    return best


def _cpu_time(fn, repeat: int) -> float:
    """Least CPU seconds per call over ``repeat`` runs of at least 20 ms each (after a warm-up):
    CPU time measures the work of a form and is far less disturbed by other processes."""
    return timeit(fn, repeat=repeat, min_seconds=0.02, clock=time.process_time, reduce=min)


def cells(cfg: Config) -> list[dict]:
    """One cell per point of every panel: the heatmap, each state size, chunk size, long length
    and timed length."""
    return ([{"panel": "heatmap"}] + [{"panel": "rank", "N": n} for n in cfg.rank_states]
            + [{"panel": "chunk", "Q": Q} for Q in cfg.chunk_sizes] + [{"panel": "long", "L": L} for L in cfg.long_lengths]
            + [{"panel": "time", "L": L} for L in cfg.time_lengths])


def compute_cell(cfg: Config, cell: dict) -> dict:
    return {"heatmap": _heatmap, "rank": _rank, "chunk": _chunk, "long": _long, "time": _time}[cell["panel"]](cfg, cell)


def _heatmap(cfg: Config, cell: dict) -> dict:
    """(a) the SSD matrix of one head."""
    p = make_inputs(np.random.default_rng(cfg.seeds[0]), length=cfg.heat_length, heads=1, state=cfg.heat_state,
                    log_a_range=(-0.4, 0.0))
    return {"heatmap": ssd_matrix(p["log_a"], p["B"], p["C"])[0, 0]}


def _rank(cfg: Config, cell: dict) -> dict:
    """(b) semiseparable rank at state size N, per seed: the SSD mask and a random lower mask."""
    r_ssd, r_rand = [], []
    for seed in cfg.seeds:
        rng = np.random.default_rng(seed)
        q = make_inputs(rng, length=cfg.rank_length, heads=1, head_dim=1, state=cell["N"], log_a_range=(-0.3, 0.0))
        M = ssd_matrix(q["log_a"], q["B"], q["C"])[0, 0]
        CB = q["C"][0, :, 0] @ q["B"][0, :, 0].T
        r_ssd.append(_max_block_rank(M))
        r_rand.append(_max_block_rank(np.tril(rng.uniform(0.5, 1.0, M.shape)) * CB))
    return {"SSD mask": r_ssd, "random lower mask": r_rand}


def _chunk(cfg: Config, cell: dict) -> dict:
    """(c) chunked vs recurrence at chunk size Q, per seed."""
    Q = cell["Q"]
    row = {k: [] for k in CHUNK_FORMS}
    for seed in cfg.seeds:
        q = make_inputs(np.random.default_rng(seed), length=cfg.chunk_length, heads=2, head_dim=5, state=7)
        ref = ssd_ref(**q)
        row["ssd_chunked_ref float64"].append(compare(ssd_chunked_ref(**q, chunk_size=Q), ref).rel_error)
        q32 = {k: v.astype(np.float32) for k, v in q.items()}
        ref32 = ssd_ref(*(q32[k].astype(np.float64) for k in ("X", "log_a", "B", "C")))
        for b in ("torch", "numba"):
            row[f"{b} float64"].append(compare(ssd(**q, chunk_size=Q, backend=b), ref).rel_error)
            row[f"{b} float32"].append(compare(ssd(**q32, chunk_size=Q, backend=b), ref32).rel_error)
    return row


def _long(cfg: Config, cell: dict) -> dict:
    """(d) float32 at length L, log_a anywhere in [-30, 0], per seed."""
    row = {k: [] for k in LONG_FORMS}
    for seed in cfg.seeds:
        q = long_inputs(np.random.default_rng(seed), "quick", length=cell["L"])  # stretches of decay regimes, float32
        ref = ssd_ref(*(q[k].astype(np.float64) for k in ("X", "log_a", "B", "C")))
        outs = {"torch (stable segsum)": ssd(**q, backend="torch"), "numba (stable)": ssd(**q, backend="numba"),
                "cumsum difference": naive_cumsum_ssd(**q, mode="difference")}
        with np.errstate(all="ignore"):
            outs["exp(cumsum) ratio"] = naive_cumsum_ssd(**q, mode="ratio")
        for k, v in outs.items():
            e = compare(v, ref, rtol=1.0).rel_error
            row[k].append(e if np.isfinite(e) else None)  # None: the output is not finite
    return row


def _time(cfg: Config, cell: dict) -> dict:
    """(e) CPU seconds (one thread) of each form at length L."""
    import numba
    import torch

    L = cell["L"]
    threads = (torch.get_num_threads(), numba.get_num_threads())
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    out = {}
    try:
        q = make_inputs(np.random.default_rng(0), length=L, heads=cfg.time_heads, head_dim=cfg.time_dim,
                        state=cfg.time_dim, dtype=np.float32)
        qt = {k: torch.from_numpy(v) for k, v in q.items()}
        with torch.inference_mode():
            out[TIME_FORMS[0]] = _cpu_time(lambda: ssd(**q, chunk_size=L, backend="numba"), cfg.repeat)
            out[TIME_FORMS[1]] = _cpu_time(lambda: ssd(**qt, chunk_size=64, backend="torch"), cfg.repeat)
            if L <= cfg.time_quadratic_max:
                out[TIME_FORMS[2]] = _cpu_time(
                    lambda: torch.einsum("bhts,bshp->bthp", ssd_matrix(qt["log_a"], qt["B"], qt["C"]), qt["X"]),
                    cfg.repeat)
    finally:
        torch.set_num_threads(threads[0])
        numba.set_num_threads(threads[1])
    return out


def assemble(cfg: Config, results: list) -> dict:
    by = {}
    for c, r in zip(cells(cfg), results):
        by.setdefault(c["panel"], []).append(r)
    out: dict = {"heatmap": by["heatmap"][0]["heatmap"]}
    out["rank_states"], out["rank_length"] = list(cfg.rank_states), cfg.rank_length
    out["ranks"] = {k: [r[k] for r in by["rank"]] for k in ("SSD mask", "random lower mask")}
    out["chunk_sizes"], out["chunk_length"] = list(cfg.chunk_sizes), cfg.chunk_length
    out["chunk_errors"] = {k: [r[k] for r in by["chunk"]] for k in CHUNK_FORMS}
    out["long_lengths"] = list(cfg.long_lengths)
    out["long_errors"] = {k: [r[k] for r in by["long"]] for k in LONG_FORMS}
    out["time_lengths"] = list(cfg.time_lengths)
    out["sizes"] = {"time_heads": cfg.time_heads, "time_head_dim": cfg.time_dim, "time_state": cfg.time_dim}
    times = {k: [r[k] for r in by["time"] if k in r] for k in TIME_FORMS}
    # slopes over the four largest lengths of each form (at small L fixed overheads dominate)
    slopes = {k: fit_loglog_slope(cfg.time_lengths[: len(v)][-4:], v[-4:]) for k, v in times.items()}
    # crossover lengths: where the quadratic form stops being the cheaper one
    crossovers = {
        f"{a} = {b}": dict(zip(("length", "how"), crossover_length(cfg.time_lengths, times[a], times[b])))
        for i, a in enumerate(TIME_FORMS) for b in TIME_FORMS[i + 1:]
    }
    out["timings"] = {"times": times, "slopes": slopes, "crossovers": crossovers}  # CPU seconds and fits to them
    return out


compute = Cells(cells, compute_cell, assemble)


def plot(data: dict, path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.6))
    ax = axes[0, 0]
    M = np.array(data["heatmap"])
    lim = np.abs(M).max()
    ax.imshow(M, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set(title="(a) SSD matrix M = L ∘ (C Bᵀ), one head", xlabel="s (key)", ylabel="t (query)")
    ax.grid(False)

    ax = axes[0, 1]
    ns = data["rank_states"]
    for k, marker in (("SSD mask", "o"), ("random lower mask", "s")):
        r = np.array(data["ranks"][k])  # (states, seeds)
        ax.plot(ns, r.max(1), marker=marker, label=f"{k} (max over seeds)")
        ax.fill_between(ns, r.min(1), r.max(1), alpha=0.25)
    ax.plot(ns, ns, ls=":", c="k", lw=1, label="rank = N")
    ax.axhline(data["rank_length"] // 2, ls="--", c="C1", lw=1, label="full rank: L/2")
    ax.set(xlabel="state size N", ylabel="max rank of M[k:, :k]", title="(b) semiseparable rank")
    ax.legend(fontsize=7)

    ax = axes[0, 2]
    Qs = data["chunk_sizes"]
    for i, (k, e) in enumerate(data["chunk_errors"].items()):
        e = np.maximum(np.array(e), 1e-18)  # (chunks, seeds); exact zeros drawn at 1e-18
        ax.plot(Qs, e.max(1), marker="o", ms=3, label=k, c=f"C{i}")
        ax.fill_between(Qs, e.min(1), e.max(1), alpha=0.2, color=f"C{i}")
    ax.axhline(1e-10, ls=":", c="k", lw=1, label="rtol float64")
    ax.axhline(1e-4, ls="--", c="k", lw=1, label="rtol float32")
    ax.set(xscale="log", yscale="log", xlabel="chunk size Q", ylabel="relative error vs recurrence",
           title=f"(c) chunked = recurrence (L = {data['chunk_length']})")
    ax.legend(fontsize=6)

    ax = axes[1, 0]
    Ls = data["long_lengths"]
    top = 1.0
    for i, (k, e) in enumerate(data["long_errors"].items()):
        e = np.array([[np.nan if v is None else v for v in row] for row in e], dtype=float)  # (lengths, seeds)
        worst = np.where(np.isnan(e).any(1), np.nan, np.nanmax(np.where(np.isnan(e), -np.inf, e), 1))
        ax.plot(Ls, worst, marker="o", label=k, c=f"C{i}")
        bad = np.isnan(e).any(1)
        if bad.any():
            ax.scatter(np.array(Ls)[bad], np.full(bad.sum(), top), marker="x", s=60, c=f"C{i}",
                       label=f"{k}: NaN/inf output", zorder=5)
    Lg = np.geomspace(min(Ls), max(Ls), 50)
    ax.plot(Lg, np.sqrt(Lg) * np.finfo(np.float32).eps, ls="--", c="k", lw=1, label="claim: sqrt(L) eps32")
    ax.set(xscale="log", yscale="log", xlabel="length L", ylabel="float32 relative error vs float64 (max over seeds)",
           title="(d) float32, log_a anywhere in [-30, 0]")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(0.0, 0.93))

    ax = axes[1, 1]
    tm = data["timings"]
    for k, v in tm["times"].items():
        ns = data["time_lengths"][: len(v)]
        ax.plot(ns, v, marker="o", label=f"{k}: slope {tm['slopes'][k]:.2f} (4 largest L)")
    ax.set(xscale="log", yscale="log", xlabel="length L", ylabel="CPU seconds per call (one thread)",
           title=f"(e) cost vs length (heads {data['sizes']['time_heads']}, P = N = {data['sizes']['time_state']})")
    ax.legend(fontsize=7, loc="upper left")

    axes[1, 2].axis("off")
    short = lambda name: name.split(" (")[0]  # noqa: E731
    cross = [f"  {short(a)} = {short(b)}: " + (f"L ≈ {c['length']:.0f} ({c['how']})" if c["length"] is not None else "none")
             for (a, b), c in ((k.split(" = "), c) for k, c in data["timings"]["crossovers"].items())]
    axes[1, 2].text(0.0, 0.95, "SSD: H_t = a_t H_{t-1} + x_t B_tᵀ,  y_t = H_t C_t\n"
                    "  = (L ∘ C Bᵀ) X,  L[t,s] = Π_{k=s+1..t} a_k\n"
                    "  = chunked: diagonal blocks + chunk states\n"
                    "    + inter-chunk recurrence + state → output\n\n"
                    "a ≡ 1: causal linear attention (Q=C, K=B, V=X)\n"
                    "Dao & Gu 2024, arXiv:2405.21060\n\n"
                    "crossover lengths (panel e):\n" + "\n".join(cross),
                    va="top", family="monospace", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def main(argv=None):
    return run_experiment(STEM, Config, FULL, QUICK, compute, plot, argv)


if __name__ == "__main__":
    main()
