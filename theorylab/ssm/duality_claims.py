"""Claims of state space duality: checks, negative controls, sympy proof.

Statements (math and paper in :mod:`theorylab.ssm.duality`):

* ``ssm.ssd-duality`` -- recurrence = chunked algorithm (every chunk size) = M X.
  Check: float64, the recurrence :func:`ssd_ref` vs :func:`ssd_chunked_ref`, the ``"auto"``
  and ``"torch"`` backends at a drawn chunk size, and ``ssd_matrix @ X``.  Control: the
  chunked algorithm with the chunk state carried *without its decay*
  (H_in(c+1) = H_in(c) + S(c)).  Proof: sympy, symbolic decays, L = 4, N = 2.
* ``ssm.ssd-semiseparable-rank`` -- every submatrix of M strictly below the diagonal has
  rank <= N.  Any such submatrix (rows I, columns J, min I > max J) lies inside the
  maximal block M[k:, :k] with k = max J + 1, so checking the L - 1 maximal blocks covers
  all of them.  Control: the mask L replaced by a random lower-triangular matrix.
* ``ssm.ssd-linear-attention`` -- with log_a ≡ 0, SSD = causal unnormalized linear
  attention tril(Q Kᵀ) V with Q = C, K = B, V = X.  Control: queries and keys swapped.
* ``ssm.ssd-float32-long`` -- float32 (numba and torch backends) stays finite and within
  1e-3 normwise of the float64 recurrence at length 65,536 (quick: 8,192) with log_a
  anywhere in [-30, 0].  Control: the same chunked algorithm with decays taken as ratios
  exp(cs[t]) / exp(cs[s]) of one float32 cumulative sum over the whole sequence.
"""

from __future__ import annotations

import numpy as np

from ..checks import identity_verdict
from ..claims import Claim, Paper, Proof, Verdict, register
from ..backends import resolve_backend
from .duality import BACKENDS, make_inputs, ssd, ssd_chunked_ref, ssd_matrix, ssd_ref

PAPER = Paper(
    "Transformers are SSMs: Generalized Models and Efficient Algorithms Through Structured State Space Duality",
    2024,
    "2405.21060",
    index=None,
)
_MODULE = "theorylab/ssm/duality.py"
_TEST = "tests/ssm/test_ssd.py"

_TOP = {"quick": dict(batch=2, length=40, heads=3, head_dim=5, state=4), "full": dict(batch=2, length=200, heads=4, head_dim=7, state=6)}


def _draw_sizes(rng: np.random.Generator, size: str, *, min_length=1) -> dict:
    top = _TOP[size]
    out = {k: int(rng.integers(1, v + 1)) for k, v in top.items()}
    out["length"] = int(rng.integers(min_length, max(top["length"], min_length) + 1))
    return out


def _draw_chunk(rng: np.random.Generator, length: int) -> int:
    return int(rng.choice([1, 2, 3, 7, 64, length, int(rng.integers(1, length + 1))]))


# ---------------------------------------------------------------------------------------
# ssm.ssd-duality
# ---------------------------------------------------------------------------------------
def _chunked_without_state_decay(X, log_a, B, C, chunk_size):
    """WRONG on purpose: block 3 carries H_in(c+1) = H_in(c) + S(c) (the chunk decay dropped)."""
    b, L, h, p = X.shape
    Y = np.empty((b, L, h, p))
    H = np.zeros((b, h, p, B.shape[3]))
    for start in range(0, L, chunk_size):
        sl = slice(start, min(start + chunk_size, L))
        # the chunk alone (H_in = 0), then the carried state through the right decays
        Y[:, sl] = ssd_chunked_ref(X[:, sl], log_a[:, sl], B[:, sl], C[:, sl], chunk_size)
        from_start = np.exp(np.cumsum(log_a[:, sl], axis=1))  # (b, T, h)
        Y[:, sl] += np.einsum("bth,bhpn,bthn->bthp", from_start, H, C[:, sl])
        seg_end = np.cumsum(log_a[:, sl][:, ::-1], axis=1)[:, ::-1] - log_a[:, sl]  # Σ_{k=s+1..end}
        S = np.einsum("bsh,bshp,bshn->bhpn", np.exp(seg_end), X[:, sl], B[:, sl])
        H = H + S  # the wrong step: no exp(Σ_{k in chunk} log_a_k) on H
    return Y


def _duality_verdict(rng, size, chunked_fn) -> Verdict:
    sizes = _draw_sizes(rng, size, min_length=3)
    Q = _draw_chunk(rng, sizes["length"])
    if chunked_fn is not ssd_chunked_ref:  # the control differs from the third chunk on
        Q = min(Q, sizes["length"] // 3)
    p = make_inputs(rng, **sizes)
    y_rec = ssd_ref(**p)  # (b, L, h, p)
    M = ssd_matrix(p["log_a"], p["B"], p["C"])  # (b, h, L, L)
    forms = {
        "chunked": chunked_fn(p["X"], p["log_a"], p["B"], p["C"], Q),
        "M X": np.einsum("bhts,bshp->bthp", M, p["X"]),
    }
    auto = resolve_backend("auto", (), valid=BACKENDS)
    for backend in sorted({auto, "torch"}):
        forms[f"ssd[{backend}]"] = ssd(p["X"], p["log_a"], p["B"], p["C"], chunk_size=Q, backend=backend)
    verdicts = {k: identity_verdict(v, y_rec, dtype=np.float64, backend=auto, sizes={**sizes, "chunk_size": Q}, what=f"{k} vs recurrence")
                for k, v in forms.items()}
    worst = max(verdicts.values(), key=lambda v: v.error)
    return Verdict.from_error(worst.error, worst.tolerance, backend=f"ref, {auto}, torch", sizes=worst.sizes,
                              detail=f"chunk_size={Q}; worst: {worst.detail}")


def duality_check(rng: np.random.Generator, size: str = "quick") -> Verdict:
    return _duality_verdict(rng, size, ssd_chunked_ref)


def duality_control(rng: np.random.Generator, size: str = "quick") -> Verdict:
    return _duality_verdict(rng, size, _chunked_without_state_decay)


def duality_proof(length: int = 4, state: int = 2, chunk_size: int = 2) -> Proof:
    """Exact: unrolled recurrence == M x == chunked form, decays a_k and all entries symbolic."""
    import sympy as sp

    L, N, Q = length, state, chunk_size
    a = sp.symbols(f"a0:{L}", positive=True)
    x = sp.symbols(f"x0:{L}", real=True)
    B = [sp.symbols(f"B{t}_0:{N}", real=True) for t in range(L)]
    C = [sp.symbols(f"C{t}_0:{N}", real=True) for t in range(L)]

    def decay(s, t):  # Π_{k=s+1..t} a_k
        return sp.Mul(*[a[k] for k in range(s + 1, t + 1)])

    def dot(u, v):
        return sum(ui * vi for ui, vi in zip(u, v))

    # recurrence (head_dim 1: H_t is a row of N entries)
    H = [sp.Integer(0)] * N
    y_rec = []
    for t in range(L):
        H = [a[t] * H[n] + x[t] * B[t][n] for n in range(N)]
        y_rec.append(dot(H, C[t]))
    # matrix form
    y_mat = [sum(decay(s, t) * dot(C[t], B[s]) * x[s] for s in range(t + 1)) for t in range(L)]
    # chunked form, blocks 1-4
    y_chk, H_in = [], [sp.Integer(0)] * N
    for start in range(0, L, Q):
        end = min(start + Q, L) - 1
        for t in range(start, end + 1):
            diag = sum(decay(s, t) * dot(C[t], B[s]) * x[s] for s in range(start, t + 1))
            y_chk.append(diag + decay(start - 1, t) * dot(H_in, C[t]))
        S = [sum(decay(s, end) * x[s] * B[s][n] for s in range(start, end + 1)) for n in range(N)]
        H_in = [decay(start - 1, end) * H_in[n] + S[n] for n in range(N)]
    ok = all(sp.expand(r - m) == 0 and sp.expand(r - c) == 0 for r, m, c in zip(y_rec, y_mat, y_chk))
    return Proof(bool(ok), f"sympy: recurrence = M x = chunked (Q={Q}) for L={L}, N={N}, decays and entries symbolic",
                 scope=f"L={L}, N={N}, Q={Q}; retyped formula")


# ---------------------------------------------------------------------------------------
# ssm.ssd-semiseparable-rank
# ---------------------------------------------------------------------------------------
def _numerical_rank(A: np.ndarray) -> int:
    """Number of singular values above 1e-9 · σ_max (float64 entries carry ~1e-16 relative noise)."""
    s = np.linalg.svd(A, compute_uv=False)
    return int(np.sum(s > 1e-9 * s[0])) if s.size and s[0] > 0 else 0


def _rank_verdict(rng, size, random_mask: bool) -> Verdict:
    top = _TOP[size]
    n = int(rng.integers(1, top["state"] + 1))
    L = int(rng.integers(2 * n + 2, 2 * n + 2 + top["length"]))  # blocks larger than n exist
    sizes = dict(batch=1, length=L, heads=int(rng.integers(1, top["heads"] + 1)), head_dim=1, state=n)
    p = make_inputs(rng, log_a_range=(-0.3, 0.0), **sizes)
    M = ssd_matrix(p["log_a"], p["B"], p["C"])  # (1, h, L, L)
    if random_mask:  # WRONG on purpose: a random lower-triangular mask is not 1-semiseparable
        CB = np.einsum("bthn,bshn->bhts", p["C"], p["B"])
        M = np.tril(rng.uniform(0.5, 1.0, size=M.shape)) * CB
    excess = max(_numerical_rank(M[0, hd, k:, :k]) - n for hd in range(M.shape[1]) for k in range(1, L))
    ranks = [_numerical_rank(M[0, 0, k:, :k]) for k in range(1, L)]
    return Verdict.from_error(max(excess, 0), 0.0, backend="ref", sizes=sizes,
                              detail=f"max rank of M[k:, :k] over k = {max(ranks)} (head 0), state N = {n}")


def rank_check(rng: np.random.Generator, size: str = "quick") -> Verdict:
    return _rank_verdict(rng, size, random_mask=False)


def rank_control(rng: np.random.Generator, size: str = "quick") -> Verdict:
    return _rank_verdict(rng, size, random_mask=True)


# ---------------------------------------------------------------------------------------
# ssm.ssd-linear-attention
# ---------------------------------------------------------------------------------------
def _linear_attention(Q, K, V):
    """Causal unnormalized linear attention, per head: y_t = Σ_{s<=t} <q_t, k_s> v_s."""
    L = Q.shape[1]
    scores = np.einsum("bthn,bshn->bhts", Q, K) * np.tril(np.ones((L, L)))  # (b, h, L, L)
    return np.einsum("bhts,bshp->bthp", scores, V)


def _linear_attention_verdict(rng, size, swap: bool) -> Verdict:
    sizes = _draw_sizes(rng, size, min_length=2)
    Q = _draw_chunk(rng, sizes["length"])
    p = make_inputs(rng, **sizes)
    zero = np.zeros_like(p["log_a"])
    auto = resolve_backend("auto", (), valid=BACKENDS)
    y = ssd(p["X"], zero, p["B"], p["C"], chunk_size=Q, backend=auto)
    q, k = (p["B"], p["C"]) if swap else (p["C"], p["B"])  # swap: WRONG on purpose
    ref = _linear_attention(q, k, p["X"])
    return identity_verdict(y, ref, dtype=np.float64, backend=auto, sizes={**sizes, "chunk_size": Q},
                            what="ssd(log_a=0) vs tril(QKᵀ)V")


def linear_attention_check(rng: np.random.Generator, size: str = "quick") -> Verdict:
    return _linear_attention_verdict(rng, size, swap=False)


def linear_attention_control(rng: np.random.Generator, size: str = "quick") -> Verdict:
    return _linear_attention_verdict(rng, size, swap=True)


# ---------------------------------------------------------------------------------------
# ssm.ssd-float32-long
# ---------------------------------------------------------------------------------------
STABILITY_RTOL = 1e-3
_LONG = {"quick": dict(batch=1, length=8192, heads=2, head_dim=4, state=4),
         "full": dict(batch=1, length=65536, heads=2, head_dim=4, state=4)}


def regime_log_a(rng: np.random.Generator, shape, *, lo=-30.0) -> np.ndarray:
    """log_a anywhere in [lo, 0]: stretches of random length, each uniform in one regime:
    no decay (0), weak [-1e-3, 0], moderate [-1, 0] or strong [lo, 0]."""
    b, L, h = shape
    out = np.empty(shape)
    regimes = [(0.0, 0.0), (-1e-3, 0.0), (-1.0, 0.0), (lo, 0.0)]
    for bi in range(b):
        for hi in range(h):
            t = 0
            while t < L:
                T = int(rng.integers(1, max(2, L // 8)))
                r0, r1 = regimes[int(rng.integers(len(regimes)))]
                out[bi, t:t + T, hi] = rng.uniform(r0, r1, size=min(T, L - t))
                t += T
    return out


def long_inputs(rng: np.random.Generator, size: str, *, length: int | None = None) -> dict:
    """A float32 long-sequence instance (the float64 reference uses these same values)."""
    sizes = dict(_LONG[size], **({} if length is None else {"length": int(length)}))
    p = make_inputs(rng, **sizes, dtype=np.float32)
    p["log_a"] = regime_log_a(rng, p["log_a"].shape).astype(np.float32)
    return p


def naive_cumsum_ssd(X, log_a, B, C, chunk_size=64, *, mode="ratio"):
    """WRONG on purpose: the chunked algorithm with every decay built from one float32
    cumulative sum over the whole sequence, cs[t] = Σ_{k<=t} log_a_k:

    * ``mode="ratio"``:      exp(Σ_{k=s+1..t} log_a_k) = exp(cs[t]) / exp(cs[s]) -- once
      cs < -88 the numerator underflows to 0 and the denominator to 0 (0/0 = NaN);
    * ``mode="difference"``: exp(cs[t] - cs[s]) -- finite, but the difference of two large
      float32 numbers keeps only the digits left after cancellation.

    torch, float32; returns numpy."""
    import torch

    if mode not in ("ratio", "difference"):
        raise ValueError(f"mode must be 'ratio' or 'difference'; got {mode!r}")
    X, log_a, B, C = (torch.as_tensor(v, dtype=torch.float32) for v in (X, log_a, B, C))
    b, L, h, p = X.shape
    cs = torch.cumsum(log_a, dim=1)  # (b, L, h): the one global cumulative sum
    csp = torch.cat([torch.zeros_like(cs[:, :1]), cs], dim=1)  # csp[t + 1] = cs[t], csp[0] = 0

    def decay(hi, lo):  # "exp(hi - lo)" the naive way
        return torch.exp(hi) / torch.exp(lo) if mode == "ratio" else torch.exp(hi - lo)

    Y = torch.empty_like(X)
    H = X.new_zeros(b, h, p, B.shape[3])
    for start in range(0, L, chunk_size):
        end = min(start + chunk_size, L)
        c = cs[:, start:end]  # (b, T, h)
        mask = torch.ones(end - start, end - start, dtype=torch.bool).tril()[None, :, :, None]
        Lm = torch.where(mask, decay(c[:, :, None, :], c[:, None, :, :]), 0.0)  # (b, T, T, h)
        CB = torch.einsum("bthn,bshn->btsh", C[:, start:end], B[:, start:end])
        Y[:, start:end] = torch.einsum("btsh,bshp->bthp", Lm * CB, X[:, start:end])
        from_start = decay(c, csp[:, start, None])  # (b, T, h)
        Y[:, start:end] += torch.einsum("bth,bhpn,bthn->bthp", from_start, H, C[:, start:end])
        to_end = decay(cs[:, end - 1, None], c)  # (b, T, h)
        S = torch.einsum("bsh,bshp,bshn->bhpn", to_end, X[:, start:end], B[:, start:end])
        H = decay(cs[:, end - 1], csp[:, start])[:, :, None, None] * H + S
    return Y.numpy()


def _long_verdict(rng, size, naive: bool) -> Verdict:
    p = long_inputs(rng, size)
    ref = ssd_ref(*(p[k].astype(np.float64) for k in ("X", "log_a", "B", "C")))
    outs = {"naive cumsum": naive_cumsum_ssd(**p)} if naive else {
        b: ssd(**p, backend=b) for b in sorted({resolve_backend("auto", (), valid=BACKENDS), "torch"})}
    verdicts = []
    for name, out in outs.items():
        finite = bool(np.isfinite(out).all())
        v = identity_verdict(out, ref, rtol=STABILITY_RTOL, backend=name, sizes=_LONG[size],
                             what=f"float32 {name} vs float64 recurrence ({'finite' if finite else 'NOT finite'})")
        verdicts.append(v)
    worst = max(verdicts, key=lambda v: (not v.holds, v.error))
    return Verdict.from_error(worst.error, worst.tolerance, backend=", ".join(outs), sizes=worst.sizes, detail=worst.detail)


def long_check(rng: np.random.Generator, size: str = "quick") -> Verdict:
    return _long_verdict(rng, size, naive=False)


def long_control(rng: np.random.Generator, size: str = "quick") -> Verdict:
    return _long_verdict(rng, size, naive=True)


# ---------------------------------------------------------------------------------------
# registration
# ---------------------------------------------------------------------------------------
CLAIMS = [
    register(Claim(
        id="ssm.ssd-duality",
        paper=PAPER,
        statement="With a scalar decay a_t = exp(log_a_t) per head, the recurrence H_t = a_t H_{t-1} + x_t B_tᵀ, "
        "y_t = H_t C_t equals Y = M X with M[t,s] = prod_{k=s+1..t} a_k <C_t, B_s> (s <= t), and equals the chunked "
        "algorithm (intra-chunk quadratic + inter-chunk state recurrence) for every chunk size.",
        kind="identity", check=duality_check, negative_control=duality_control, proof=duality_proof,
        experiment="ssm_ssd", module=_MODULE, test=_TEST,
        controls="chunk state carried without its decay: H_in(c+1) = H_in(c) + S(c)",
    )),
    register(Claim(
        id="ssm.ssd-semiseparable-rank",
        paper=PAPER,
        statement="The SSD matrix M = L ∘ (C Bᵀ) with the 1-semiseparable mask L[t,s] = prod_{k=s+1..t} a_k is "
        "N-semiseparable: every submatrix strictly below the diagonal has rank <= N (state size).",
        kind="complexity", check=rank_check, negative_control=rank_control,
        experiment="ssm_ssd", module=_MODULE, test=_TEST, samples=3,
        controls="mask L replaced by a random lower-triangular matrix (not semiseparable)",
    )),
    register(Claim(
        id="ssm.ssd-linear-attention",
        paper=PAPER,
        statement="With log_a ≡ 0 (a ≡ 1), SSD is causal unnormalized linear attention: "
        "Y = tril(Q Kᵀ) V with Q = C, K = B, V = X.",
        kind="identity", check=linear_attention_check, negative_control=linear_attention_control,
        experiment="ssm_ssd", module=_MODULE, test=_TEST,
        controls="queries and keys swapped (Q = B, K = C)",
    )),
    register(Claim(
        id="ssm.ssd-float32-long",
        paper=PAPER,
        statement="Computed with stable segment sums, float32 SSD stays finite and within 1e-3 (normwise) of the "
        "float64 recurrence at length 65,536 with log_a anywhere in [-30, 0].",
        kind="identity", check=long_check, negative_control=long_control,
        experiment="ssm_ssd", module=_MODULE, test="tests/ssm/test_ssd_stability.py", samples=1,
        controls="decays as ratios exp(cs_t)/exp(cs_s) of one float32 cumulative sum over the whole sequence",
    )),
]
