"""Strided sparse attention on CPU: fold and merge vs torch's dense causal SDPA, in one run.

    python benchmarks/sparse_attention.py              # float32, 1 head, d = 64, n = 16384, l = 128
    python benchmarks/sparse_attention.py --smoke      # tiny sizes: checks that it runs
    python benchmarks/sparse_attention.py --json --repeat 9 --threads 1

Measured, float32, same inputs (batch 1, heads 1, head_dim 64):

* ``fold_merge``: ``theorylab.sparse.attention(q, k, v, strided(l), backend="torch")`` on
  torch tensors -- validation included; the sequence folded into an l × n/l grid, band and
  column parts as dense blocks, merged by log-sum-exp;
* ``sdpa_dense``: ``torch.nn.functional.scaled_dot_product_attention(q, k, v,
  is_causal=True)`` -- the dense causal attention a user would otherwise run (the work
  floor of that baseline is n(n+1)/2 scores);
* ``numba_csr``: ``attention(..., backend="numba")`` on numpy arrays -- one loop over each
  query's allowed keys (compressed rows), compiled before timing, timed after the others
  (its OpenMP threads spin after each call and would slow the torch calls).

``work_ratio`` is n(n+1)/2 (the scores dense causal attention needs) over the scores the
fold-and-merge blocks hold (band: n·(l + chunk), columns: l·Rp², Rp = R − 2 aligned up).
Scaling: wall time of ``fold_merge`` with l = ⌈√n⌉ and of ``sdpa_dense`` over
n ∈ [2^11, 2^15], fitted log-log slopes (predicted 1.5 and 2).

Timings are interleaved (one timed call of each per round, after at least 30 ms of
untimed calls of the same path; ``--repeat`` rounds, medians), so load from other processes falls
on all of them alike; only ratios are results.
Targets: sdpa_dense / fold_merge >= 10 at n = 16384, l = 128; fold_merge slope <= 1.6.
"""

from __future__ import annotations

import math

import numpy as np

from theorylab.benchmarking import bench_parser, emit, interleaved

FULL = dict(length=16384, stride=128, head_dim=64, scaling=(2**11, 2**12, 2**13, 2**14, 2**15))
SMOKE = dict(length=512, stride=16, head_dim=16, scaling=(2**7, 2**8, 2**9))
TARGET_SPEEDUP = 10.0
TARGET_SLOPE = 1.6


def _interleaved(fns: dict, repeat: int) -> dict:
    """Median seconds per function (:func:`theorylab.benchmarking.interleaved`)."""
    return {k: float(np.median(v)) for k, v in interleaved(fns, repeat).items()}


def rows_ref(q, k, v, pattern, rows) -> np.ndarray:
    """float64 reference output of the query ``rows`` only: softmax over each row's keys."""
    q, k, v = (np.asarray(a, dtype=np.float64)[0, 0] for a in (q, k, v))  # (n, ·)
    n, d = q.shape
    out = np.empty((len(rows), v.shape[1]))
    for t, i in enumerate(rows):
        keys = pattern.row(int(i), n)
        s = k[keys] @ q[i] / math.sqrt(d)
        p = np.exp(s - s.max())
        out[t] = p @ v[keys] / p.sum()
    return out


def score_entries(n: int, l: int, chunk: int, align: int) -> int:
    """Scores the fold-and-merge blocks hold: causal head, band chunks, aligned column squares."""
    R = -(-n // l)
    head = min(n, l) ** 2
    band = -(-max(n - l, 0) // chunk) * chunk * (l + chunk)
    rp = -(-(R - 2) // align) * align if R > 2 else 0
    return head + band + l * rp * rp  # dense Rp × Rp per column (the causal half is all that is needed)


def main(argv=None) -> dict:
    import torch

    from theorylab.checks import fit_loglog_slope
    from theorylab.sparse import attention, strided
    from theorylab.sparse._sparse_attention_torch import COLUMN_ALIGN, WINDOW_CHUNK
    from theorylab.tolerances import compare

    p = bench_parser(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads is not None:
        import numba

        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)  # numba's OpenMP layer would reset torch's count
    threads = torch.get_num_threads()
    cfg = SMOKE if args.smoke else FULL
    n, l, d = cfg["length"], cfg["stride"], cfg["head_dim"]
    repeat = max(1, args.repeat)
    print(f"sparse_attention: float32, 1 head, n={n}, l={l}, d={d}, torch threads {torch.get_num_threads()}")

    rng = np.random.default_rng(0)
    x = {c: rng.standard_normal((1, 1, n, d)).astype(np.float32) for c in "qkv"}
    q, k, v = (torch.from_numpy(x[c]) for c in "qkv")
    pattern = strided(l)
    sdpa = torch.nn.functional.scaled_dot_product_attention

    with torch.inference_mode():
        fns = {
            "fold_merge": lambda: attention(q, k, v, pattern, backend="torch"),
            "sdpa_dense": lambda: sdpa(q, k, v, is_causal=True),
        }
        numba_fn = lambda: attention(x["q"], x["k"], x["v"], pattern, backend="numba")  # noqa: E731
        outs = {name: fn() for name, fn in fns.items()}  # warm-up

        # correctness of what is timed: 64 query rows against the float64 reference
        rows = np.unique(np.concatenate([[0, n - 1], rng.integers(0, n, 62)]))
        ref = rows_ref(x["q"], x["k"], x["v"], pattern, rows)
        err = {"fold_merge": compare(outs["fold_merge"][0, 0, rows], ref, dtype=np.float32).rel_error}

        t = _interleaved(fns, repeat)

        # scaling with l = ceil(sqrt(n))
        ns = list(cfg["scaling"])
        t_fold, t_dense = [], []
        for m in ns:
            qs, ks, vs = (torch.randn(1, 1, m, d) for _ in range(3))
            pm = strided(math.isqrt(m - 1) + 1)
            tm = _interleaved({"fold": lambda: attention(qs, ks, vs, pm, backend="torch"),
                               "dense": lambda: sdpa(qs, ks, vs, is_causal=True)}, max(3, repeat // 2))
            t_fold.append(tm["fold"])
            t_dense.append(tm["dense"])

        # numba last: its OpenMP worker threads keep spinning after a call and would slow
        # whatever torch runs next
        err["numba_csr"] = compare(numba_fn()[0, 0, rows], ref, dtype=np.float32).rel_error  # compiles
        t["numba_csr"] = _interleaved({"numba": numba_fn}, repeat)["numba"]

    results = {
        "sizes": {"length": n, "stride": l, "head_dim": d, "heads": 1, "batch": 1},
        "dtype": "float32",
        "repeat": repeat,
        "torch_threads_timed": threads,
        **{f"time_{name}_s": val for name, val in t.items()},
        **{f"rel_error_{name}": val for name, val in err.items()},
        "sdpa_dense_over_fold_merge": t["sdpa_dense"] / t["fold_merge"],
        "numba_csr_over_fold_merge": t["numba_csr"] / t["fold_merge"],
        "work_ratio": (n * (n + 1) / 2) / score_entries(n, l, WINDOW_CHUNK, COLUMN_ALIGN),
        "scaling_n": ns,
        "scaling_time_fold_merge_s": t_fold,
        "scaling_time_sdpa_dense_s": t_dense,
        "slope_fold_merge": fit_loglog_slope(ns, t_fold),
        "slope_sdpa_dense": fit_loglog_slope(ns, t_dense),
        "target_speedup": TARGET_SPEEDUP,
        "target_slope": TARGET_SLOPE,
    }
    results["meets_targets"] = bool(
        results["sdpa_dense_over_fold_merge"] >= TARGET_SPEEDUP and results["slope_fold_merge"] <= TARGET_SLOPE
    )
    return emit("sparse_attention", results, args.json)


if __name__ == "__main__":
    main()
