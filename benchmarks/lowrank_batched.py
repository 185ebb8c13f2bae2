"""Batched low-rank sweeps on CPU: one batched SVD / lstsq per sweep vs the per-item Python loop, in one run.

    python benchmarks/lowrank_batched.py            # 1024 items per sweep
    python benchmarks/lowrank_batched.py --smoke    # tiny sizes: checks that it runs
    python benchmarks/lowrank_batched.py --json --repeat 9

Measured, float64, same inputs:

* ``batched_eps_rank``: ``theorylab.lowrank.eps_rank(M, eps, backend="numba")`` on a stack M of
  exp(QKᵀ) matrices (items, n, n): groups of 64 items on numba's threads, within a group the
  Gram matrices tridiagonalized together and their eigenvalues by root-free implicit QL, all
  items sweeping in one vectorized loop (item index innermost); items within rounding of the
  threshold re-decided by SVD;
  ``batched_eps_rank_1thread``: the same on one numba thread;
* ``batched_svd``: ``eps_rank(M, eps, backend="ref")``: one batched numpy SVD (for reference);
* ``floor_gram``: the stack's Gram matrices M Mᵀ by one batched numpy matmul: the first O(k³)
  step of any eigenvalue route, a floor for the whole ε-rank (printed as a ratio to it);
* ``loop_svd``: the per-item loop a user would write: for each matrix, ``np.linalg.svd``,
  the tail sums and the threshold ε||M||_F;
* ``batched_lstsq``: ``theorylab.lowrank.fit_output_weights(..., backend="numba")`` for a sweep
  of items (each: T samples, H rank-1 heads): logits, a vectorizable exp
  (:mod:`theorylab._fastexp`), the weighted combine and the nearest-point targets in one
  compiled pass, then the normal equations of every item in one compiled call (Cholesky, exact
  1-norm condition check per item, SVD fallback above 1e6);
* ``batched_lstsq_refheads``: the same with the heads by the numpy einsum reference
  (``backend="ref"``); ``batched_lstsq_svd``: numba heads and ``method="svd"`` (one batched SVD);
* ``loop_lstsq``: for each item, its heads (``attention_heads_ref``) and ``np.linalg.lstsq``;
* ``loop_lstsq_numbaheads``: the same loop with each item's heads from the compiled kernel
  (``attention_heads(..., backend="numba")``): how much of the ratio is the heads' formulation;
* ``batched_held_out``: ``held_out_errors(..., backend="numba")``, the held-out error of every
  prefix H = 1..heads of every item: compiled heads, then one compiled call whose one Cholesky
  factorization per item serves every prefix (the leading blocks nest); ``loop_held_out``: per
  item and per H, the heads and ``np.linalg.lstsq``;
* ``batched_solve`` / ``batched_solve_numba`` / ``loop_solve``: the least-squares solve alone on
  the same precomputed head features Φ (items, T, H d): the public numpy
  ``theorylab.lowrank.lstsq_batched``, the compiled per-item normal equations that the numba fit
  uses, and one ``np.linalg.lstsq`` per item (the heads are the rest of the fit's time).

Timings are interleaved (``theorylab.benchmarking.interleaved``); ratios of medians are the
results.  Target: loop / batched >= 10 for both (ε-rank: ``loop_svd / batched_eps_rank``;
output weights: ``loop_lstsq / batched_lstsq``).  The batched ε-rank uses every core numba
has (the per-item loop is one LAPACK call at a time); the one-thread ratio is printed beside it.  The numba kernels are compiled (and cached)
before timing.
"""

from __future__ import annotations

import numpy as np

from theorylab.benchmarking import bench_parser, emit, interleaved

FULL = dict(items=1024, n=24, samples=48, N=4, d=3, heads=4)
SMOKE = dict(items=8, n=6, samples=16, N=3, d=2, heads=2)
TARGET = 10.0
EPS = 1e-2


def loop_eps_rank(Ms, eps):
    out = []
    for M in Ms:
        s2 = np.linalg.svd(M, compute_uv=False) ** 2
        tail = np.cumsum(s2[::-1])[::-1]
        out.append(int(np.sum(tail > (eps * np.linalg.norm(M)) ** 2)))
    return out


def loop_lstsq(X, y, Q, K, f):
    from theorylab.lowrank.heads import attention_heads_ref

    out = []
    for s in range(X.shape[0]):
        Phi = attention_heads_ref(X[s], y[s], Q[s], K[s]).reshape(X.shape[1], -1)  # (T, H d)
        out.append(np.linalg.lstsq(Phi, f[s], rcond=None)[0])
    return out


def loop_lstsq_numbaheads(X, y, Q, K, f):
    from theorylab.lowrank.heads import attention_heads

    return [np.linalg.lstsq(attention_heads(X[s], y[s], Q[s], K[s], backend="numba").reshape(X.shape[1], -1),
                            f[s], rcond=None)[0] for s in range(X.shape[0])]


def loop_held_out(X, y, Q, K, f, Hs, train):
    """Per item and per H: the heads, np.linalg.lstsq on the training rows, the held-out error."""
    from theorylab.lowrank.heads import attention_heads_ref

    out = np.empty((X.shape[0], len(Hs)))
    for s in range(X.shape[0]):
        heads = attention_heads_ref(X[s], y[s], Q[s], K[s])  # (T, H, d)
        for j, H in enumerate(Hs):
            Phi = heads[:, :H].reshape(len(heads), -1)
            W = np.linalg.lstsq(Phi[:train], f[s, :train], rcond=None)[0]
            out[s, j] = np.mean(np.sum((Phi[train:] @ W - f[s, train:]) ** 2, -1))
    return out


def _one_thread(numba, fn):
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return fn()
    finally:
        numba.set_num_threads(before)


def main(argv=None) -> dict:
    from theorylab.lowrank import eps_rank, fit_output_weights, held_out_errors, multihead_lowrank, nearest_point_target
    from theorylab.lowrank.bounded_entries import make_inputs as be_inputs
    from theorylab.lowrank.heads import make_inputs as head_inputs

    p = bench_parser(__doc__.splitlines()[0])
    args = p.parse_args(argv)
    sz = SMOKE if args.smoke else FULL
    print(f"lowrank_batched: float64 {sz}")
    rng = np.random.default_rng(0)
    qk = be_inputs(rng, n=sz["n"], d=3, B=1.5, batch=(sz["items"],))
    Ms = np.exp(qk["Q"] @ np.swapaxes(qk["K"], -1, -2))  # (items, n, n)
    hp = head_inputs(rng, samples=sz["samples"], N=sz["N"], d=sz["d"], batch=(sz["items"],))
    Q = rng.standard_normal((sz["items"], sz["heads"], 1, sz["d"]))
    K = rng.standard_normal((sz["items"], sz["heads"], 1, sz["d"]))
    f = nearest_point_target(hp["X"], hp["y"])

    import numba

    from theorylab.lowrank import lstsq_batched
    from theorylab.lowrank.heads import _lstsq_normal_numba
    from theorylab.lowrank.heads import attention_heads_ref as _heads

    Phi = _heads(hp["X"], hp["y"], Q, K).reshape(sz["items"], sz["samples"], -1)  # (items, T, H d)
    Hs, train = list(range(1, sz["heads"] + 1)), sz["samples"] * 3 // 4  # held-out errors of every prefix
    fns = {
        "batched_eps_rank": lambda: eps_rank(Ms, EPS, backend="numba"),
        "batched_eps_rank_1thread": lambda: _one_thread(numba, lambda: eps_rank(Ms, EPS, backend="numba")),
        "batched_svd": lambda: eps_rank(Ms, EPS, backend="ref"),
        "floor_gram": lambda: Ms @ np.swapaxes(Ms, -1, -2),
        "loop_svd": lambda: loop_eps_rank(Ms, EPS),
        "batched_lstsq": lambda: fit_output_weights(hp["X"], hp["y"], Q, K, backend="numba"),
        "batched_lstsq_refheads": lambda: fit_output_weights(hp["X"], hp["y"], Q, K, backend="ref"),
        "batched_lstsq_svd": lambda: fit_output_weights(hp["X"], hp["y"], Q, K, method="svd", backend="numba"),
        "loop_lstsq": lambda: loop_lstsq(hp["X"], hp["y"], Q, K, f),
        "loop_lstsq_numbaheads": lambda: loop_lstsq_numbaheads(hp["X"], hp["y"], Q, K, f),
        "batched_solve": lambda: lstsq_batched(Phi, f),
        "batched_solve_numba": lambda: _lstsq_normal_numba(Phi, f, 1e-10),
        "loop_solve": lambda: [np.linalg.lstsq(P, g, rcond=None)[0] for P, g in zip(Phi, f)],
        "batched_held_out": lambda: held_out_errors(hp["X"], hp["y"], Q, K, Hs, train=train, backend="numba"),
        "loop_held_out": lambda: loop_held_out(hp["X"], hp["y"], Q, K, f, Hs, train),
    }
    # correctness of what is timed
    loop_ranks = np.asarray(fns["loop_svd"]())
    mismatch = int(max(np.max(np.abs(np.asarray(fns[k]()) - loop_ranks))
                       for k in ("batched_svd", "batched_eps_rank", "batched_eps_rank_1thread")))
    O = fns["batched_lstsq"]()
    pred = multihead_lowrank(hp["X"], hp["y"], Q, K, O, backend="ref")
    from theorylab.lowrank.heads import attention_heads_ref

    loop_pred = np.stack([attention_heads_ref(hp["X"][s], hp["y"][s], Q[s], K[s]).reshape(sz["samples"], -1) @ W
                          for s, W in enumerate(fns["loop_lstsq"]())])
    lstsq_err = float(np.max(np.abs(pred - loop_pred)) / np.max(np.abs(loop_pred)))
    lstsq_err = max(lstsq_err, float(np.max(np.abs(np.swapaxes(O, -1, -2).reshape(len(O), -1, sz["d"])
                                                    - np.stack(fns["loop_lstsq_numbaheads"]())))
                                     / np.max(np.abs(O))))

    runs = interleaved(fns, max(1, args.repeat))
    t = {k: float(np.median(v)) for k, v in runs.items()}
    results = {
        "sizes": sz,
        "repeat": args.repeat,
        **{f"time_{k}_s": v for k, v in t.items()},
        "max_rank_mismatch": mismatch,
        "lstsq_rel_error": lstsq_err,
        "loop_over_batched_eps_rank": t["loop_svd"] / t["batched_eps_rank"],
        "loop_over_batched_eps_rank_1thread": t["loop_svd"] / t["batched_eps_rank_1thread"],
        "numba_threads": numba.get_num_threads(),
        "loop_over_batched_svd": t["loop_svd"] / t["batched_svd"],
        "batched_eps_rank_over_floor_gram": t["batched_eps_rank"] / t["floor_gram"],
        "loop_over_batched_lstsq_svd": t["loop_lstsq"] / t["batched_lstsq_svd"],
        "loop_over_batched_lstsq": t["loop_lstsq"] / t["batched_lstsq"],
        "loop_over_batched_lstsq_refheads": t["loop_lstsq"] / t["batched_lstsq_refheads"],
        "loop_numbaheads_over_batched_lstsq": t["loop_lstsq_numbaheads"] / t["batched_lstsq"],
        "loop_over_batched_solve": t["loop_solve"] / t["batched_solve"],
        "loop_over_batched_solve_numba": t["loop_solve"] / t["batched_solve_numba"],
        "solve_rel_error": max(float(np.max(np.abs(np.stack(fns["loop_solve"]()) - fns[k]()))
                                     / np.max(np.abs(np.stack(fns["loop_solve"]()))))
                               for k in ("batched_solve", "batched_solve_numba")),
        "loop_over_batched_held_out": t["loop_held_out"] / t["batched_held_out"],
        "held_out_rel_error": float(np.max(np.abs(fns["batched_held_out"]() - fns["loop_held_out"]()))
                                    / np.max(np.abs(fns["loop_held_out"]()))),
        "target_loop_over_batched": TARGET,
    }
    met = bool(min(results["loop_over_batched_eps_rank"], results["loop_over_batched_lstsq"]) >= TARGET)
    results["target_met"] = None if args.smoke else met
    return emit("lowrank_batched", results, args.json)


if __name__ == "__main__":
    main()
