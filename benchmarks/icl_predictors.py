"""In-context predictors at every prefix length vs one batched solve of the full prompt, in one run.

    python benchmarks/icl_predictors.py            # 10,000 prompts, d = 20, 40 examples, 1 query, float64
    python benchmarks/icl_predictors.py --smoke    # tiny sizes: checks that it runs
    python benchmarks/icl_predictors.py --json --repeat 9

Measured, float64, same inputs, every prefix length (``prefixes=True``, backend ``numba``):

* ``all``: ridge, Bayes posterior mean, minimum-norm least squares, one GD step, averaging and
  3-NN, each at all 40 prefixes, through the public functions (validation included);
* ``ridge``: :func:`theorylab.icl.ridge_predict` alone (Sherman–Morrison at every prefix);
* ``lstsq``: :func:`theorylab.icl.lstsq_predict` alone (Greville's recursion, with the Gram
  pseudo-inverse formed only once an example falls in the span of the earlier ones);
* ``floor``: one batched ridge solve of the full-length problem only: XᵀX + λI and Xᵀy by
  ``np.matmul``, ``np.linalg.solve``, then X_q w -- what a single prefix costs with numpy;
* ``per_prefix_solves``: the baseline a user would otherwise write for every prefix: one such
  batched solve per prefix (``ridge_closed_form``), timed once (it is slow).

Timings are interleaved (:func:`theorylab.benchmarking.interleaved`); ratios of medians are the
results.  Target: all / floor <= 5.
"""

from __future__ import annotations

import time

import numpy as np

from theorylab.benchmarking import bench_parser, emit, interleaved

FULL = dict(batch=10_000, k=40, d=20, m=1)
SMOKE = dict(batch=50, k=6, d=3, m=1)
TARGET_ALL_OVER_FLOOR = 5.0
LAM = 0.25


def main(argv=None) -> dict:
    from theorylab.icl import (averaging_predict, bayes_predict, gd_predict, knn_predict, lstsq_predict, make_inputs,
                               ridge_predict)
    from theorylab.icl.predictors import ridge_closed_form
    from theorylab.tolerances import compare

    args = bench_parser(__doc__.splitlines()[0]).parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    print(f"icl_predictors: float64 {sizes}, every prefix")
    p = make_inputs(np.random.default_rng(0), **sizes, noise=0.5)
    X, y, Q = p["X"], p["y"], p["Xq"]
    Xt = np.ascontiguousarray(np.swapaxes(X, 1, 2))
    eye = LAM * np.eye(sizes["d"])

    def floor():
        w = np.linalg.solve(np.matmul(Xt, X) + eye, np.matmul(Xt, y[..., None]))  # (B, d, 1)
        return np.matmul(Q, w)

    def everything():
        kw = dict(prefixes=True, backend="numba")
        return (ridge_predict(X, y, Q, LAM, **kw), bayes_predict(X, y, Q, 0.5, 1.0, **kw), lstsq_predict(X, y, Q, **kw),
                gd_predict(X, y, Q, 0.1, **kw), averaging_predict(X, y, Q, **kw), knn_predict(X, y, Q, 3, **kw))

    fns = {
        "all": everything,
        "ridge": lambda: ridge_predict(X, y, Q, LAM, prefixes=True, backend="numba"),
        "lstsq": lambda: lstsq_predict(X, y, Q, prefixes=True, backend="numba"),
        "floor": floor,
    }
    outs = {k: f() for k, f in fns.items()}  # warm-up: compiles numba
    t0 = time.perf_counter()
    outs["per_prefix_solves"] = ridge_closed_form(X, y, Q, LAM)  # slow: timed once, outside the rounds
    t_baseline = time.perf_counter() - t0
    err = max(compare(outs["ridge"], outs["per_prefix_solves"]).rel_error,
              compare(outs["ridge"][:, -1], outs["floor"][..., 0]).rel_error)
    runs = interleaved(fns, max(1, args.repeat))
    t = {k: float(np.median(v)) for k, v in runs.items()}
    t["per_prefix_solves"] = t_baseline
    best = {k: float(np.min(v)) for k, v in runs.items()}
    results = {
        "sizes": sizes, "dtype": "float64", "repeat": args.repeat,
        **{f"time_{k}_s": v for k, v in t.items()},
        "max_rel_error_vs_closed_form": err,
        "all_over_floor": t["all"] / t["floor"],
        "ridge_over_floor": t["ridge"] / t["floor"],
        "lstsq_over_floor": t["lstsq"] / t["floor"],
        "per_prefix_solves_over_ridge": t["per_prefix_solves"] / t["ridge"],
        "best_all_over_floor": best["all"] / best["floor"],
        "target_all_over_floor": TARGET_ALL_OVER_FLOOR,
    }
    results["target_met"] = None if args.smoke else bool(results["all_over_floor"] <= TARGET_ALL_OVER_FLOOR)
    return emit("icl_predictors", results, args.json)


if __name__ == "__main__":
    main()
