"""Figure: AR(p) forecasting in context (#22) -- least squares vs a trained linear self-attention layer.

(a) one-step MSE against the context length n: in-context least squares, the trained LSA layer
    (coefficients drawn per prompt) and the noise floor σ², mean and spread over seeds; the
    dotted line is σ²(1 + p/n);
(b) chain-of-thought rollout of the LSA layer's learned recursion (one process per seed):
    ‖(x̂_h, ..., x̂_{h−p+1})‖ against h on a log scale, with ρ(â)^h from the spectral radius of
    the recursion's companion matrix; fitted rates in the legend.

Run: ``python experiments/icl_autoregressive.py [--quick]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from theorylab.experiment import run_experiment
from theorylab.icl.autoregressive import (draw_coefficients, excess_sq, ls_forecast, lsa_coefficients, lsa_forecast,
                                          make_inputs, spectral_radius, train_lsa, cot_rollout)
from theorylab.icl.autoregressive_claims import FIT_FROM, HORIZON, rollout_rate

STEM = "icl_autoregressive"


@dataclass(frozen=True)
class Config:
    """MSE against context length (LS, LSA, noise floor) and the CoT rollout's geometric collapse."""

    seeds: tuple = (0, 1, 2, 3, 4)
    p: int = 2
    T: int = 128
    train_steps: int = 600
    batch: int = 64
    lr: float = 0.05
    n_min: int = 16
    prompts: int = 2000
    rollout_prompts: int = 64


FULL = Config()
QUICK = Config(seeds=(0, 1), T=96, train_steps=150, prompts=400, rollout_prompts=16)


def compute(cfg: Config) -> dict:
    k = cfg.T - cfg.p - 1
    ns = np.arange(1, k + 1)
    curves = {"ls": [], "lsa": []}
    roll, train_s = [], []
    kw = dict(T=cfg.T, steps=cfg.train_steps, batch=cfg.batch, lr=cfg.lr, n_min=cfg.n_min)
    for s in cfg.seeds:
        t0 = time.perf_counter()
        W = train_lsa(np.random.default_rng([s, 0]), cfg.p, **kw)  # coefficients drawn per prompt
        train_s.append(time.perf_counter() - t0)
        d = make_inputs(np.random.default_rng([s, 1]), batch=cfg.prompts, T=cfg.T, p=cfg.p)
        x, a = d["series"], d["coeffs"]
        curves["ls"].append(1.0 + excess_sq(ls_forecast(x, cfg.p, backend="ref"), x, a, cfg.p).mean(0))
        curves["lsa"].append(1.0 + excess_sq(lsa_forecast(x, cfg.p, W["WQ"], W["WK"], W["WV"], backend="ref"), x, a,
                                             cfg.p).mean(0))
        a1 = draw_coefficients(np.random.default_rng([s, 2]), cfg.p)  # one process: the rollout of its learned recursion
        W1 = train_lsa(np.random.default_rng([s, 3]), cfg.p, coeffs=a1, **kw)
        x1 = make_inputs(np.random.default_rng([s, 4]), batch=cfg.rollout_prompts, T=cfg.T, p=cfg.p, coeffs=a1)["series"]
        co = lsa_coefficients(x1, cfg.p, W1["WQ"], W1["WK"], W1["WV"], backend="ref")
        r = cot_rollout(x1, co, HORIZON, backend="ref")
        win = np.stack([r[:, cfg.p - 1 - l:HORIZON - l] for l in range(cfg.p)], -1)
        rho = spectral_radius(co)
        roll.append({"norm_mean": np.linalg.norm(win, axis=-1).mean(0).tolist(), "rho_mean": float(rho.mean()),
                     "rho_true": float(spectral_radius(a1)), "rate_mean": float(rollout_rate(r, cfg.p).mean()),
                     "max_rel_rate_error": float(np.abs(rollout_rate(r, cfg.p) / rho - 1).max())})
    out = {"n": ns.tolist(), "p": cfg.p, "noise_floor": 1.0, "fit_from": FIT_FROM,
           "h": list(range(cfg.p, HORIZON + 1)), "rollout": roll}
    for name, c in curves.items():
        c = np.array(c)
        out[name] = {"mean": c.mean(0).tolist(), "min": c.min(0).tolist(), "max": c.max(0).tolist()}
    top = ns >= 8 * cfg.p
    out["ls_minus_lsa_mean_over_n_ge_8p"] = float((np.array(curves["ls"]) - np.array(curves["lsa"]))[:, top].mean())
    out["timings"] = {"train_seconds": train_s}
    return out


def plot(data: dict, path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    n = np.array(data["n"])
    for name, label in (("ls", "in-context least squares"), ("lsa", "trained LSA layer")):
        c = data[name]
        line, = ax[0].plot(n, c["mean"], label=label)
        ax[0].fill_between(n, c["min"], c["max"], color=line.get_color(), alpha=0.2)
    ax[0].axhline(data["noise_floor"], color="k", lw=1, label="noise floor σ²")
    ax[0].plot(n, data["noise_floor"] * (1 + data["p"] / n), "k:", label="σ²(1 + p/n)")
    ax[0].set(xscale="log", yscale="log", xlabel="context length n", ylabel="one-step MSE", ylim=(0.8, 20),
              title=f"(a) AR({data['p']}) forecasts in context (random coefficients)")
    ax[0].legend(fontsize=7)
    h = np.array(data["h"])
    for i, r in enumerate(data["rollout"]):
        line, = ax[1].plot(h, r["norm_mean"], label=f"seed {i}: rate {r['rate_mean']:.3f}, ρ(â) {r['rho_mean']:.3f} "
                           f"(true ρ {r['rho_true']:.3f})")
        ax[1].plot(h, r["norm_mean"][0] * r["rho_mean"] ** (h - h[0]), ":", color=line.get_color())
    ax[1].axvline(data["fit_from"], color="gray", lw=0.8)
    ax[1].set(yscale="log", xlabel="rollout step h", ylabel="‖state‖ (mean over prompts)",
              title="(b) CoT rollout of the learned recursion; dotted: ρ(â)^h")
    ax[1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def main(argv=None):
    return run_experiment(STEM, Config, FULL, QUICK, compute, plot, argv)


if __name__ == "__main__":
    main()
