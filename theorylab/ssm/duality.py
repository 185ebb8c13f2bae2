"""State space duality (SSD): a scalar-decay SSM is masked, unnormalized linear attention.

Paper: Dao & Gu, "Transformers are SSMs: Generalized Models and Efficient Algorithms
Through Structured State Space Duality" (2024, arXiv:2405.21060), Sections 3-6 and
Listing 1 (the "SSD minimal" chunked algorithm).

Per batch b and head h, with a scalar decay a_t = exp(log_a_t) in (0, 1] per step, a
matrix state H_t in R^{P x N} (head_dim x state) and H_0 = 0:

    H_t = a_t H_{t-1} + x_t B_tᵀ            (t = 1..L)
    y_t = H_t C_t

Unrolling gives the *dual* (attention) form  Y = M X  with the SSD matrix

    M[t, s] = L[t, s] · <C_t, B_s>,     L[t, s] = Π_{k=s+1..t} a_k = exp(Σ_{k=s+1..t} log_a_k)

for s <= t and M[t, s] = 0 above the diagonal, i.e. M = L ∘ (C Bᵀ).  Three facts follow
and are checked as claims (:mod:`theorylab.ssm.duality_claims`):

* **duality / chunking**: the recurrence, the quadratic form M X and the *chunked*
  algorithm agree for every chunk size Q.  Cutting the sequence into chunks of Q steps,
  with c(t) the chunk holding t and H_in(c) the state entering chunk c,

      y_t = Σ_{s in c(t), s <= t} L[t, s] <C_t, B_s> x_s        (1: diagonal blocks)
          + exp(Σ_{k=start(c)..t} log_a_k) · H_in(c) C_t        (4: state -> output)
      S(c) = Σ_{s in c} exp(Σ_{k=s+1..end(c)} log_a_k) x_s B_sᵀ  (2: chunk states)
      H_in(c+1) = exp(Σ_{k in c} log_a_k) H_in(c) + S(c)         (3: inter-chunk recurrence)

  (Q = 1 is the recurrence; Q >= L is the quadratic form);
* **semiseparable rank**: L is 1-semiseparable, so every submatrix M[I, J] with all
  rows strictly below all columns (min I > max J) factors as
  diag(L[I, j*]) C_I B_Jᵀ diag(L[j*, J]) and has rank <= N;
* **linear attention**: with log_a ≡ 0, L is the causal all-ones mask and
  Y = (tril(Q Kᵀ)) V with Q = C, K = B, V = X (causal unnormalized linear attention).

Assumptions: log_a <= 0 (decays in (0, 1]), so every product of decays is <= 1.
Segment sums are formed without ``exp(cumsum)`` ratios (see :mod:`theorylab.ssm._segsum`),
so float32 stays finite at any length and decay strength.

Glossary (code -> paper): X -> X (values, "x"), log_a -> log A (scalar A_t = a_t per
head), B -> B (keys), C -> C (queries), M -> M (the SSD / sequentially semiseparable
matrix), L -> L (1-semiseparable mask), chunk_size -> Q (block length).

Shapes: X (batch, length, heads, head_dim); log_a (batch, length, heads);
B, C (batch, length, heads, state); Y like X; M (batch, heads, length, length).
"""

from __future__ import annotations

import numpy as np

from .. import _validate as V
from ..backends import resolve_backend, to_numpy
from ._contract import finish, torch_args, upcast
from ._segsum import segsum

__all__ = ["ssd", "ssd_matrix", "ssd_ref", "ssd_matrix_ref", "ssd_chunked_ref", "make_inputs", "regime_log_a", "BACKENDS",
           "MATRIX_BACKENDS"]

BACKENDS = ("ref", "numba", "torch")  # of ssd
MATRIX_BACKENDS = ("ref", "torch")  # of ssd_matrix


# ---------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------
def make_inputs(
    rng: np.random.Generator,
    *,
    batch=1,
    length=8,
    heads=2,
    head_dim=3,
    state=2,
    log_a_range=(-1.0, 0.0),
    dtype=np.float64,
) -> dict:
    """One valid random instance: X, B, C standard normal (B, C scaled by state^-1/4),
    log_a uniform in ``log_a_range`` (must lie in (-inf, 0])."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    b, L, h, p, n = (V.check_size(k, v) for k, v in (("batch", batch), ("length", length), ("heads", heads),
                                                      ("head_dim", head_dim), ("state", state)))
    lo, hi = (float(v) for v in log_a_range)
    if not (lo <= hi <= 0.0):
        raise ValueError(f"log_a_range must satisfy lo <= hi <= 0; got {log_a_range}")
    scale = n ** -0.25
    out = {
        "X": rng.standard_normal((b, L, h, p)),
        "log_a": rng.uniform(lo, hi, size=(b, L, h)),
        "B": scale * rng.standard_normal((b, L, h, n)),
        "C": scale * rng.standard_normal((b, L, h, n)),
    }
    return {k: v.astype(dtype) for k, v in out.items()}


def regime_log_a(rng: np.random.Generator, shape, *, lo=-30.0) -> np.ndarray:
    """log_a (batch, length, heads) anywhere in [lo, 0], in stretches of random length (up to
    length/8), each uniform in one regime: no decay (0), weak [-1e-3, 0], moderate [-1, 0]
    or strong [lo, 0].  A strong stretch followed by a decay-free one is where a segment
    sum taken as a difference of cumulative sums loses its digits."""
    b, L, h = shape
    out = np.empty(shape)
    regimes = [(0.0, 0.0), (-1e-3, 0.0), (-1.0, 0.0), (float(lo), 0.0)]
    for bi in range(b):
        for hi in range(h):
            t = 0
            while t < L:
                T = int(rng.integers(1, max(2, L // 8)))
                r0, r1 = regimes[int(rng.integers(len(regimes)))]
                out[bi, t:t + T, hi] = rng.uniform(r0, r1, size=min(T, L - t))
                t += T
    return out


def _validate(X, log_a, B, C, *, need_x=True, scan=("X", "log_a", "B", "C")) -> str:
    """Types, shapes, domain; a NaN/inf scan of the arguments named in ``scan``."""
    named = {"X": X, "log_a": log_a, "B": B, "C": C}
    if not need_x:
        named.pop("X")
    kind = V.check_arrays(named)
    V.check_ndim("log_a", log_a, 3, "(batch, length, heads)")
    V.check_ndim("B", B, 4, "(batch, length, heads, state)")
    b, L, h = (int(s) for s in log_a.shape)
    n = int(B.shape[3])
    shapes = {k: v.shape for k, v in named.items()}
    if need_x:
        V.check_ndim("X", X, 4, "(batch, length, heads, head_dim)")
        V.check_shape("X", X, (b, L, h, int(X.shape[3])), shapes)
    V.check_shape("B", B, (b, L, h, n), shapes)
    V.check_shape("C", C, (b, L, h, n), shapes)
    for k, v in named.items():
        V.check_nonempty(k, v, "(every size must be >= 1)")
        if k in scan:
            V.check_finite(k, v)
    V.check_bound("log_a", log_a, hi=0.0, why="exp(log_a) must be a decay <= 1")
    return kind


def _check_chunk_size(chunk_size) -> int:
    return V.check_size("chunk_size", chunk_size)


# ---------------------------------------------------------------------------------------
# reference forms, numpy float64
# ---------------------------------------------------------------------------------------
def ssd_ref(X, log_a, B, C):
    """The recurrence, float64, a loop over time: H_t = a_t H_{t-1} + x_t B_tᵀ, y_t = H_t C_t."""
    X, log_a, B, C = (np.asarray(v, dtype=np.float64) for v in (X, log_a, B, C))
    b, L, h, p = X.shape
    n = B.shape[3]
    H = np.zeros((b, h, p, n))
    Y = np.empty((b, L, h, p))
    for t in range(L):
        H = np.exp(log_a[:, t])[:, :, None, None] * H + X[:, t, :, :, None] * B[:, t, :, None, :]  # (b, h, p, n)
        Y[:, t] = np.einsum("bhpn,bhn->bhp", H, C[:, t])  # (b, h, p)
    return Y


def ssd_matrix_ref(log_a, B, C):
    """M = L ∘ (C Bᵀ), float64, with L = exp(segsum(log_a)) from stable segment sums."""
    log_a, B, C = (np.asarray(v, dtype=np.float64) for v in (log_a, B, C))
    Lmask = np.exp(segsum(np.transpose(log_a, (0, 2, 1))))  # (b, h, L, L), 0 above the diagonal
    CB = np.einsum("bthn,bshn->bhts", C, B)  # (b, h, L, L)
    return Lmask * CB


def ssd_chunked_ref(X, log_a, B, C, chunk_size=64):
    """The chunked algorithm (blocks 1-4 of the module docstring), numpy float64.

    A plain transcription kept next to the recurrence: the fast paths implement the same
    four blocks.  The last chunk may be shorter than ``chunk_size``.
    """
    Q = _check_chunk_size(chunk_size)
    X, log_a, B, C = (np.asarray(v, dtype=np.float64) for v in (X, log_a, B, C))
    b, L, h, p = X.shape
    n = B.shape[3]
    Y = np.empty((b, L, h, p))
    H = np.zeros((b, h, p, n))  # H_in of the current chunk
    for start in range(0, L, Q):
        sl = slice(start, min(start + Q, L))
        a = np.transpose(log_a[:, sl], (0, 2, 1))  # (b, h, T)
        seg = segsum(a)  # (b, h, T, T): Σ_{k=s+1..t} log_a_k, -inf above the diagonal
        # 1: diagonal block  y_t += Σ_{s<=t} L[t,s] <C_t, B_s> x_s
        G = np.exp(seg) * np.einsum("bthn,bshn->bhts", C[:, sl], B[:, sl])  # (b, h, T, T)
        Y[:, sl] = np.einsum("bhts,bshp->bthp", G, X[:, sl])
        # 4: state -> output  y_t += exp(Σ_{k=start..t} log_a_k) H_in C_t
        from_start = np.exp(np.cumsum(a, axis=-1))  # (b, h, T)
        Y[:, sl] += np.einsum("bht,bhpn,bthn->bthp", from_start, H, C[:, sl])
        # 2: chunk state  S = Σ_s exp(Σ_{k=s+1..end} log_a_k) x_s B_sᵀ   (last row of seg)
        to_end = np.exp(seg[:, :, -1, :])  # (b, h, T)
        S = np.einsum("bhs,bshp,bshn->bhpn", to_end, X[:, sl], B[:, sl])  # (b, h, p, n)
        # 3: inter-chunk recurrence  H_in(c+1) = exp(Σ_{k in c} log_a_k) H_in(c) + S(c)
        H = from_start[:, :, -1, None, None] * H + S
    return Y


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------
def ssd(X, log_a, B, C, *, chunk_size=64, backend="auto"):
    """SSD layer output Y (batch, length, heads, head_dim); see the module docstring.

    Backends: ``"ref"`` (float64 loop over time), ``"numba"`` (compiled loops, parallel
    over batch x heads x chunks: the recurrence inside each chunk, chunk states carried
    between chunks; ``chunk_size >= length`` is the plain recurrence, the fastest CPU form),
    ``"torch"`` (the chunked algorithm as batched matrix products; CPU/CUDA;
    differentiable), ``"auto"`` (see :mod:`theorylab.backends`).  ``chunk_size`` is any
    int >= 1 (the length need not be a multiple); it changes the operation order, not the
    result.  numpy in -> numpy out; torch in -> torch out on the same device and dtype.

    A NaN or inf in any input raises ValueError naming it.  The numba backend tests X, B
    and C *after* computing, and only when its output checksum is not finite (which any
    NaN or inf in them makes it): scanning 3 large inputs first would cost as much as the
    computation.
    """
    backend = resolve_backend(backend, {"X": X, "log_a": log_a, "B": B, "C": C}, valid=BACKENDS)
    late = ("X", "B", "C") if backend == "numba" else ()
    _validate(X, log_a, B, C, scan=tuple(k for k in ("X", "log_a", "B", "C") if k not in late))
    Q = _check_chunk_size(chunk_size)
    if backend == "torch":  # half precision computes in float32 (see theorylab.ssm._contract)
        from ._duality_torch import ssd_chunked_torch

        Y = ssd_chunked_torch(*upcast(*torch_args(X, log_a, B, C)), chunk_size=Q)
    elif backend == "ref":
        Y = ssd_ref(*(to_numpy(v) for v in (X, log_a, B, C)))
    else:
        from ._duality_numba import ssd_numba

        dtype = np.float64 if V.dtype_name(X) == "float64" else np.float32
        Y, finite = ssd_numba(*(to_numpy(v, dtype) for v in (X, log_a, B, C)), chunk_size=Q)
        if not finite:
            for k, v in zip(late, (X, B, C)):
                V.check_finite(k, v)
    return finish(Y, X, "Y")


def ssd_matrix(log_a, B, C, *, backend="auto"):
    """SSD matrix M (batch, heads, length, length) with Y = M X (per head).

    Backends: ``"ref"`` (:func:`ssd_matrix_ref`, numpy float64, returned in the input
    dtype), ``"torch"`` (the same stable-segsum form in torch; CPU/CUDA; differentiable),
    ``"auto"`` (torch tensors -> torch, numpy -> ref).  numpy in -> numpy out; torch in ->
    torch out on the same device and dtype.
    """
    _validate(None, log_a, B, C, need_x=False)
    backend = resolve_backend(backend, {"log_a": log_a, "B": B, "C": C}, valid=MATRIX_BACKENDS)
    if backend == "torch":
        import torch

        from ._segsum import segsum_torch

        la, Bt, Ct = upcast(*torch_args(log_a, B, C))  # half precision computes in float32
        Lmask = torch.exp(segsum_torch(la.transpose(1, 2)))  # (b, h, L, L), 0 above the diagonal
        M = Lmask * torch.einsum("bthn,bshn->bhts", Ct, Bt)
    else:
        M = ssd_matrix_ref(*(to_numpy(v) for v in (log_a, B, C)))
    return finish(M, log_a, "M")
