"""Figure: trained in-context learners against the in-context predictors (#34).

(a) SPD between a trained transformer and each predictor (ridge with λ = σ²/τ², least squares,
    one-step GD with the best step size, averaging, kNN) against the number of in-context
    examples, mean and spread over seeds; (b) the same for ILWD (implicit weights fitted on
    probe queries); (c) the one-layer linear self-attention model: SPD to each predictor;
(d) the ridge λ* closest to a transformer trained at each noise level σ, against σ²/τ²
    (the Bayes value λ = σ²/τ² dotted), mean and spread over seeds.

Full mode (the committed figure: d = 8, k = 16, 3-layer transformers of width 32 trained 2000
steps, one-layer LSA 1000 steps, 4 seeds, σ ∈ {0.25, 0.5, 1, 2}): 24 cells, 2299 s with
``--jobs 2`` on 2 cores (about 150-380 s per transformer).  There the transformer is closest to
ridge at every prefix, least squares peaks at n = d (the interpolation threshold), and the LSA
layer sits on one-step GD.  λ* floors near 0.7-1 at σ <= 0.5 (the trained model shrinks more
than Bayes where Bayes shrinks little), so its slope over σ²/τ² ∈ [1/16, 4] is about 0.5;
between σ = 0.5 and 4, the range of the claim ``icl.best-ridge-lambda-tracks-noise``, the
quick models' λ* rises with slope about 1.3.

Run: ``python experiments/icl_trained.py [--quick] [--jobs 2]``.  Training times go under ``timings``;
everything else is bit-identical across runs with the same seeds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from theorylab.experiment import Cells, run_experiment
from theorylab.icl import make_inputs
from theorylab.icl.learners import best_gd_lr, best_ridge_lambda, ilwd, learner_predict, predictor_predictions, spd, train_learner

STEM = "icl_trained"


@dataclass(frozen=True)
class Config:
    """SPD / ILWD of trained learners against each predictor; best ridge λ against noise."""

    seeds: tuple = (0, 1, 2, 3)
    d: int = 8
    k: int = 16
    width: int = 32
    layers: int = 3
    heads: int = 4
    steps: int = 2000
    batch: int = 128
    lsa_steps: int = 1000
    noise: float = 0.5
    noises: tuple = (0.25, 0.5, 1.0, 2.0)
    tau: float = 1.0
    prompts: int = 512


FULL = Config()
QUICK = Config(seeds=(0, 1), d=4, k=8, width=16, layers=2, heads=2, steps=300, batch=64, lsa_steps=300,
               noises=(0.5, 1.0, 2.0, 4.0), prompts=256)
LAMS = np.geomspace(1e-2, 1e3, 31)
LRS = np.geomspace(0.02, 2.0, 21)


def _measure(f, p, lam):
    X, y, Xq = p["X"], p["y"], p["Xq"]
    P = predictor_predictions(X, y, Xq, lam=lam, lr=1.0, backend="ref")
    eta, _ = best_gd_lr(f, X, y, Xq, LRS, backend="ref")
    P["gd"] = predictor_predictions(X, y, Xq, lam=lam, lr=eta, backend="ref")["gd"]
    return ({n: spd(f, v).tolist() for n, v in P.items()}, {n: ilwd(Xq, f, v).tolist() for n, v in P.items()}, eta)


def cells(cfg: Config) -> list[dict]:
    """One cell per (seed, learner) for the SPD / ILWD panels, one per (seed, noise) for λ*."""
    return ([{"panel": "fit", "seed": s, "kind": kind} for s in cfg.seeds for kind in ("transformer", "lsa")]
            + [{"panel": "lambda", "seed": s, "noise": noise} for s in cfg.seeds for noise in cfg.noises])


def _train(cfg: Config, kind: str, noise: float, seed: int):
    common = dict(d=cfg.d, k=cfg.k, tau=cfg.tau, batch=cfg.batch, noise=noise, seed=seed)
    if kind == "lsa":
        return train_learner("lsa", **common, layers=1, steps=cfg.lsa_steps)
    return train_learner("transformer", **common, layers=cfg.layers, width=cfg.width, heads=cfg.heads, steps=cfg.steps)


def compute_cell(cfg: Config, cell: dict) -> dict:
    """Train one learner (seeded) and measure it on fresh prompts of the same seed: SPD / ILWD
    against every predictor ("fit"), or the closest ridge λ* ("lambda")."""
    s, fit = cell["seed"], cell["panel"] == "fit"
    kind, noise, stream = (cell["kind"], cfg.noise, 1) if fit else ("transformer", cell["noise"], 2)
    t0 = time.perf_counter()
    model = _train(cfg, kind, noise, s)
    seconds = time.perf_counter() - t0
    p = make_inputs(np.random.default_rng([s, stream]), batch=cfg.prompts, k=cfg.k, d=cfg.d, m=2 * cfg.d,
                    noise=noise, tau=cfg.tau)
    f = learner_predict(model, p["X"], p["y"], p["Xq"], prefixes=True, backend="torch")
    if not fit:
        return {"lambda_star": float(best_ridge_lambda(f, p["X"], p["y"], p["Xq"], LAMS, backend="ref")[0]),
                "train_seconds": seconds}
    sp, il, eta = _measure(f, p, cfg.noise**2 / cfg.tau**2)
    return {"spd": sp, "ilwd": il, "eta": eta, "final_loss": float(np.mean(model.losses[-20:])), "train_seconds": seconds}


def assemble(cfg: Config, results: list) -> dict:
    curves = {"transformer": [], "lsa": []}
    timings = {"transformer": [], "lsa": [], "noise_models": []}
    lam = {}
    for c, r in zip(cells(cfg), results):
        if c["panel"] == "fit":
            curves[c["kind"]].append(r)
            timings[c["kind"]].append(r["train_seconds"])
        else:
            lam[(c["seed"], c["noise"])] = r["lambda_star"]
            timings["noise_models"].append(r["train_seconds"])
    lam_star = np.array([[lam[(s, n)] for n in cfg.noises] for s in cfg.seeds])  # (seeds, noises)
    ratio = np.array(cfg.noises) ** 2 / cfg.tau**2
    slopes = [float(np.polyfit(np.log(ratio), np.log(r), 1)[0]) for r in lam_star]

    def agg(kind, what):
        names = curves[kind][0][what].keys()
        return {n: {"mean": np.mean([c[what][n] for c in curves[kind]], 0).tolist(),
                    "min": np.min([c[what][n] for c in curves[kind]], 0).tolist(),
                    "max": np.max([c[what][n] for c in curves[kind]], 0).tolist()} for n in names}

    def learner(kind):
        return {"spd": agg(kind, "spd"), "ilwd": agg(kind, "ilwd"), "gd_lr": [c["eta"] for c in curves[kind]],
                "final_loss": [c["final_loss"] for c in curves[kind]]}

    return {"n": list(range(1, cfg.k + 1)), "noise": cfg.noise, "tau": cfg.tau,
            "transformer": learner("transformer"), "lsa": learner("lsa"),
            "best_lambda": {"noise": list(cfg.noises), "bayes": ratio.tolist(), "per_seed": lam_star.tolist(),
                            "loglog_slope_per_seed": slopes, "lambda_grid": LAMS.tolist()},
            "timings": {"train_seconds": timings, "total_train_seconds": float(sum(map(sum, timings.values())))}}


compute = Cells(cells, compute_cell, assemble)


def plot(data: dict, path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 4, figsize=(17, 3.8))
    n = np.array(data["n"])
    panels = (("transformer", "spd", "(a) transformer"), ("transformer", "ilwd", "(b) transformer"), ("lsa", "spd", "(c) 1-layer LSA"))
    for a, (kind, what, title) in zip(ax[:3], panels):
        for name, c in data[kind][what].items():
            label = name + (f" (η*≈{np.median(data[kind]['gd_lr']):.2g})" if name == "gd" else "")
            line, = a.plot(n, c["mean"], "o-", ms=3, label=label)
            a.fill_between(n, c["min"], c["max"], color=line.get_color(), alpha=0.2)
        a.set(yscale="log", xlabel="number of in-context examples", ylabel=what.upper(),
              title=f"{title}: {what.upper()} to each predictor")
        a.legend(fontsize=7)
    b = data["best_lambda"]
    lam = np.array(b["per_seed"])
    r = np.array(b["bayes"])
    ax[3].plot(r, np.exp(np.log(lam).mean(0)), "o-", label="best ridge λ* (geometric mean over seeds)")
    ax[3].fill_between(r, lam.min(0), lam.max(0), alpha=0.2)
    ax[3].plot(r, r, "k:", label="λ = σ²/τ² (Bayes)")
    ax[3].set(xscale="log", yscale="log", xlabel="σ²/τ²", ylabel="λ*",
              title=f"(d) best λ vs noise; slopes {np.round(b['loglog_slope_per_seed'], 2).tolist()}")
    ax[3].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def main(argv=None):
    return run_experiment(STEM, Config, FULL, QUICK, compute, plot, argv)


if __name__ == "__main__":
    main()
