"""SSD on CPU: theorylab's backends vs the paper's Listing-1 chunked algorithm and a per-timestep loop, in one run.

    python benchmarks/ssm_ssd.py            # float32, (batch 1, length 4096, heads 16, head_dim 64, state 64)
    python benchmarks/ssm_ssd.py --smoke    # tiny sizes: checks that it runs
    python benchmarks/ssm_ssd.py --json --repeat 9

Measured, float32, same inputs, each through its public entry point:

* ``numba_recurrent``: ``ssd(..., backend="numba", chunk_size=length)`` -- one chunk, i.e.
  the recurrence in compiled loops, parallel over batch x heads (theorylab's fastest CPU
  form: 3·L·N·P flops with the state in L1 cache);
* ``numba_chunked``: the same backend at ``chunk_size=64`` (recurrent diagonal blocks,
  chunk states carried between chunks);
* ``torch_chunked``: ``ssd(..., backend="torch", chunk_size=64)`` on torch tensors (the
  chunked algorithm as batched GEMMs; the differentiable CPU/CUDA path);
* ``listing1``: the baseline a user would otherwise run -- the paper's Listing 1 ("SSD
  minimal") in plain torch einsums, chunk 64: segsum, then four blocks (diagonal blocks,
  chunk states, inter-chunk recurrence as a (chunks x chunks) segsum matrix, state ->
  output), written out below from the paper's description;
* ``torch_loop``: a per-timestep torch loop H = a_t H + x_t B_tᵀ, y_t = H C_t;
* ``gemm_floor``: one float32 GEMM of the same FLOP count as the chunked algorithm at
  chunk 64 (2·L·Q·(N+P) + 4·L·N·P per head); its rate is the machine's large-GEMM rate,
  reported as ``gemm_gflops`` with each path's rate at that FLOP count.

Timings are interleaved (one timed call of each per round, after at least 30 ms of
untimed calls of the same path, so that the previous path's spinning thread pool no longer
takes the cores from this one; ``--repeat`` rounds, medians; the ratios of the least times are
printed as well), so load from other processes falls on all of them alike; only ratios
are results.
Targets: listing1 / fastest >= 2, torch_loop / fastest >= 25.
"""

from __future__ import annotations

import numpy as np

from theorylab.benchmarking import bench_parser, emit, interleaved

FULL = dict(batch=1, length=4096, heads=16, head_dim=64, state=64)
SMOKE = dict(batch=1, length=256, heads=2, head_dim=8, state=8)
CHUNK = 64
TARGET_LISTING1 = 2.0
TARGET_LOOP = 25.0


def _segsum(x):
    """Listing 1's stable segsum: (..., T) -> (..., T, T), Σ_{k=s+1..t} x_k below the diagonal, -inf above."""
    import torch

    T = x.size(-1)
    x = x[..., None].expand(*x.shape, T)  # (..., T, T): [k, s] = x_k
    x = x.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device), -1), 0)
    x = torch.cumsum(x, dim=-2)
    return x.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device), 0), -torch.inf)


def listing1_ssd(X, A, B, C, chunk):
    """The paper's Listing 1 in einsums.  X (b, L, h, p), A = log_a (b, L, h), B, C (b, L, h, n); L % chunk == 0."""
    import torch
    import torch.nn.functional as F

    b, L, h, p = X.shape
    c = L // chunk
    X, B, C = (t.reshape(b, c, chunk, h, t.shape[-1]) for t in (X, B, C))  # (b, c, l, h, ·)
    A = A.reshape(b, c, chunk, h).permute(0, 3, 1, 2)  # (b, h, c, l)
    A_cumsum = torch.cumsum(A, dim=-1)
    # 1. diagonal blocks: the quadratic (attention) form inside each chunk
    Lmask = torch.exp(_segsum(A))  # (b, h, c, l, l)
    Y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", C, B, Lmask, X)
    # 2. the state at the end of each chunk
    decay_states = torch.exp(A_cumsum[..., -1:] - A_cumsum)  # (b, h, c, l)
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", B, decay_states, X)  # (b, c, h, p, n)
    # 3. inter-chunk recurrence, as a (c+1) x (c+1) semiseparable matrix over chunk states
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)  # (b, c+1, h, p, n)
    decay_chunk = torch.exp(_segsum(F.pad(A_cumsum[..., -1], (1, 0))))  # (b, h, c+1, c+1)
    states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)[:, :-1]  # state entering each chunk
    # 4. state -> output
    Y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", C, states, torch.exp(A_cumsum))
    return (Y_diag + Y_off).reshape(b, L, h, p)


def torch_loop_ssd(X, log_a, B, C):
    """Per-timestep loop: H_t = a_t H_{t-1} + x_t B_tᵀ (b, h, p, n), y_t = H_t C_t."""
    import torch

    a = torch.exp(log_a)  # (b, L, h)
    H = X.new_zeros(X.shape[0], X.shape[2], X.shape[3], B.shape[3])
    ys = []
    for t in range(X.shape[1]):
        H = a[:, t, :, None, None] * H + torch.einsum("bhp,bhn->bhpn", X[:, t], B[:, t])
        ys.append(torch.einsum("bhpn,bhn->bhp", H, C[:, t]))
    return torch.stack(ys, dim=1)  # (b, L, h, p)


def _interleaved(fns: dict, repeat: int) -> tuple[dict, dict]:
    """Median and least seconds per function (:func:`theorylab.benchmarking.interleaved`)."""
    times = interleaved(fns, repeat)
    return {k: float(np.median(v)) for k, v in times.items()}, {k: float(np.min(v)) for k, v in times.items()}


def main(argv=None) -> dict:
    import numba
    import torch

    from theorylab.ssm import ssd
    from theorylab.ssm.duality import make_inputs, ssd_ref
    from theorylab.tolerances import compare

    p = bench_parser(__doc__.splitlines()[0])
    args = p.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    b, L, h, P, N = (sizes[k] for k in ("batch", "length", "heads", "head_dim", "state"))
    print(f"ssm_ssd: float32 {sizes}, chunk {CHUNK}, numba threads {numba.get_num_threads()}, "
          f"torch threads {torch.get_num_threads()}")

    p32 = make_inputs(np.random.default_rng(0), **sizes, dtype=np.float32)
    names = ("X", "log_a", "B", "C")
    np_args = [p32[k] for k in names]
    t_args = [torch.from_numpy(v) for v in np_args]
    flops = b * h * (2 * L * CHUNK * (N + P) + 4 * L * N * P)  # the chunked algorithm at chunk 64
    m = int(round((flops / 2) ** (1 / 3)))  # an m x m x m GEMM has the same 2 m^3 flops
    ga, gb = torch.randn(m, m), torch.randn(m, m)
    gout = torch.empty(m, m)

    fns = {
        "numba_recurrent": lambda: ssd(*np_args, chunk_size=L, backend="numba"),
        "numba_chunked": lambda: ssd(*np_args, chunk_size=CHUNK, backend="numba"),
        "torch_chunked": lambda: ssd(*t_args, chunk_size=CHUNK, backend="torch"),
        "listing1": lambda: listing1_ssd(*t_args, CHUNK),
        "torch_loop": lambda: torch_loop_ssd(*t_args),
        "gemm_floor": lambda: torch.matmul(ga, gb, out=gout),
    }
    with torch.inference_mode():
        outs = {k: fn() for k, fn in fns.items() if k != "gemm_floor"}  # warm-up: compiles numba
        fns["gemm_floor"]()
        # correctness of what is timed, against the float64 recurrence on the same float32 values
        ref = ssd_ref(*[v.astype(np.float64) for v in np_args])
        err = {k: compare(v, ref, dtype=np.float32).rel_error for k, v in outs.items()}
        t, t_min = _interleaved(fns, max(1, args.repeat))

    fastest = min(("numba_recurrent", "numba_chunked", "torch_chunked"), key=t.get)
    results = {
        "sizes": sizes,
        "dtype": "float32",
        "chunk": CHUNK,
        "repeat": args.repeat,
        **{f"time_{k}_s": v for k, v in t.items()},
        **{f"rel_error_{k}": v for k, v in err.items()},
        "fastest": fastest,
        "listing1_over_fastest": t["listing1"] / t[fastest],
        "torch_loop_over_fastest": t["torch_loop"] / t[fastest],
        "listing1_over_torch_chunked": t["listing1"] / t["torch_chunked"],
        # the same ratios from each path's least-disturbed round (informative under load)
        "listing1_over_fastest_least": t_min["listing1"] / t_min[fastest],
        "torch_loop_over_fastest_least": t_min["torch_loop"] / t_min[fastest],
        "gemm_gflops": 2 * m**3 / t["gemm_floor"] / 1e9,
        **{f"gflops_equiv_{k}": flops / t[k] / 1e9 for k in ("numba_recurrent", "numba_chunked", "torch_chunked", "listing1")},
        "fastest_over_gemm_floor": t[fastest] / t["gemm_floor"],
        "target_listing1_over_fastest": TARGET_LISTING1,
        "target_torch_loop_over_fastest": TARGET_LOOP,
    }
    results["target_met"] = bool(results["listing1_over_fastest"] >= TARGET_LISTING1
                                 and results["torch_loop_over_fastest"] >= TARGET_LOOP)
    return emit("ssm_ssd", results, args.json)


if __name__ == "__main__":
    main()
