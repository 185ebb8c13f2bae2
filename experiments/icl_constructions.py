"""Figure: the exact constructions of #34 and the predictors they are measured against.

(a) normwise relative error, float64, of L linear self-attention layers with GD weights
    against L GD steps (L = 1..8), and of the Sherman–Morrison recursion against one ridge
    solve per prefix -- at rounding level, against the 1e-10 tolerance;
(b) test MSE of each predictor against the number of in-context examples k (d = 8, noise
    σ, prior τ = 1): ridge λ = σ²/τ² (= the Bayes posterior mean, optimal), minimum-norm least
    squares (its peak at k = d), one GD step, averaging, 3-nearest neighbours; spread over seeds.

Run: ``python experiments/icl_constructions.py [--quick]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theorylab.experiment import Cells, run_experiment
from theorylab.icl import (averaging_predict, bayes_predict, gd_predict, knn_predict, lsa_predict, lstsq_predict,
                           make_inputs, ridge_predict)
from theorylab.icl.predictors import ridge_closed_form
from theorylab.tolerances import compare

STEM = "icl_constructions"


@dataclass(frozen=True)
class Config:
    """Exact constructions (errors) and predictor MSE vs number of examples."""

    seeds: tuple = (0, 1, 2, 3, 4)
    d: int = 8
    k: int = 24
    prompts: int = 2000
    noise: float = 0.5
    layers: int = 8


FULL = Config()
QUICK = Config(seeds=(0, 1), prompts=200, layers=4)


def _predictors(cfg: Config) -> dict:
    lam = cfg.noise**2
    return {
        f"ridge λ=σ²/τ²={lam:g}": lambda X, y, Q: ridge_predict(X, y, Q, lam, prefixes=True),
        "Bayes posterior mean": lambda X, y, Q: bayes_predict(X, y, Q, cfg.noise, 1.0, prefixes=True),
        "least squares (min norm)": lambda X, y, Q: lstsq_predict(X, y, Q, prefixes=True),
        "GD, 1 step, lr=0.5": lambda X, y, Q: gd_predict(X, y, Q, 0.5, prefixes=True),
        "averaging": lambda X, y, Q: averaging_predict(X, y, Q, prefixes=True),
        "3-NN": lambda X, y, Q: knn_predict(X, y, Q, 3, prefixes=True),
    }


def cells(cfg: Config) -> list[dict]:
    """One cell per seed: its prompts, the construction errors and every predictor's MSE."""
    return [{"seed": s} for s in cfg.seeds]


def compute_cell(cfg: Config, cell: dict) -> dict:
    lam = cfg.noise**2
    rng = np.random.default_rng(cell["seed"])
    p = make_inputs(rng, batch=cfg.prompts, k=cfg.k, d=cfg.d, m=1, noise=cfg.noise)
    X, y, Q, yq = p["X"], p["y"], p["Xq"], p["yq"]
    lr = 0.5 / (1 + cfg.d / cfg.k) / 2
    lsa = [compare(lsa_predict(X[:64], y[:64], Q[:64], lr, L, backend="ref"),
                   gd_predict(X[:64], y[:64], Q[:64], lr, L, backend="ref")).rel_error for L in range(1, cfg.layers + 1)]
    ref = ridge_closed_form(X[:64], y[:64], Q[:64], lam)
    out = ridge_predict(X[:64], y[:64], Q[:64], lam, prefixes=True, backend="ref")
    sm = [compare(out[:, j], ref[:, j]).rel_error for j in range(cfg.k)]
    mse = {name: ((f(X, y, Q)[..., 0] - yq) ** 2).mean(0).tolist() for name, f in _predictors(cfg).items()}  # (k,)
    return {"lsa": lsa, "sm": sm, "mse": mse}


def assemble(cfg: Config, results: list) -> dict:
    mse = {name: [r["mse"][name] for r in results] for name in results[0]["mse"]}
    return {
        "d": cfg.d, "noise": cfg.noise, "k": list(range(1, cfg.k + 1)), "layers": list(range(1, cfg.layers + 1)),
        "lsa_vs_gd_rel_error": {"max": np.max([r["lsa"] for r in results], 0).tolist()},
        "sherman_morrison_vs_closed_form_rel_error": {"max": np.max([r["sm"] for r in results], 0).tolist()},
        "mse": {n: {"mean": np.mean(v, 0).tolist(), "min": np.min(v, 0).tolist(), "max": np.max(v, 0).tolist()}
                for n, v in mse.items()},
        "tolerance": 1e-10,
    }


compute = Cells(cells, compute_cell, assemble)


def plot(data: dict, path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
    ax[0].semilogy(data["layers"], np.maximum(data["lsa_vs_gd_rel_error"]["max"], 1e-18), "o-",
                   label="L LSA layers vs L GD steps (x = L)")
    ax[0].semilogy(data["k"], np.maximum(data["sherman_morrison_vs_closed_form_rel_error"]["max"], 1e-18), "s-",
                   label="Sherman–Morrison vs solve at prefix (x = k)")
    ax[0].axhline(data["tolerance"], color="r", ls="--", label="tolerance 1e-10")
    ax[0].set(xlabel="layers L / prefix length k", ylabel="max relative error (float64)",
              title="(a) exact constructions")
    ax[0].legend(fontsize=7)
    k = np.array(data["k"])
    for name, r in data["mse"].items():
        line, = ax[1].plot(k, r["mean"], label=name)
        ax[1].fill_between(k, r["min"], r["max"], color=line.get_color(), alpha=0.2)
    ax[1].axvline(data["d"], color="gray", ls=":")
    ax[1].set(yscale="log", xlabel="in-context examples k", ylabel="test MSE",
              title=f"(b) predictors, d={data['d']}, σ={data['noise']}")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def main(argv=None):
    return run_experiment(STEM, Config, FULL, QUICK, compute, plot, argv)


if __name__ == "__main__":
    main()
