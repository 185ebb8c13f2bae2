"""A selective SSM layer is a causal, data-dependent attention.

Papers: #93 Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces"
(2023, arXiv:2312.00752); #6 Zimerman, Ali & Wolf, "A Unified Implicit Attention
Formulation for Gated-Linear Recurrent Sequence Models" (2024, arXiv:2405.16504); and
Ali, Zimerman & Wolf, "The Hidden Attention of Mamba Models" (2024, arXiv:2403.01590),
Eq. (9)-(12).

The selective scan (Mamba's own reference discretization: zero-order hold for A,
Euler for B), per batch b and channel c, with state h in R^N, h_{-1} = h0 (default 0):

    h_t = exp(Δ_t A) ⊙ h_{t-1} + (Δ_t x_t) B_t            (t = 0..L-1)
    y_t = <C_t, h_t> + D x_t

Unrolling the recurrence gives the claim: y = M x + D ⊙ x with the lower-triangular,
data-dependent *hidden attention matrix*

    M[t, s] = Σ_n C_t[n] · exp(Σ_{k=s+1..t} Δ_k A[n]) · Δ_s B_s[n]     (s <= t),
    M[t, s] = 0                                                          (s > t).

The recurrence is also an associative scan: each step is the affine map
h -> a ⊙ h + b with (a, b) = (exp(Δ_t A), Δ_t x_t B_t), and affine maps compose by
(a, b) ∘ (a', b') = (a' a, a' b + b')  ("first (a, b), then (a', b')"), which is
associative -- so a parallel prefix scan computes the same h_t.

Assumptions: Δ >= 0 (Mamba: Δ = softplus(...)), A <= 0 (Mamba: A = -exp(A_log)),
so every decay factor exp(Δ A) lies in (0, 1] and no product overflows.

Glossary (code -> paper): x -> x, delta -> Δ, A -> A, B -> B, C -> C, D -> D,
M -> α̃ (the hidden attention matrix), h -> h.

Shapes: x, delta (batch, length, channels); A (channels, state);
B, C (batch, length, state); D (channels,) or None; initial_state
(batch, channels, state) or None; M (batch, channels, length, length).
"""

from __future__ import annotations

import numpy as np

from .. import _validate as V
from ..backends import resolve_backend, to_numpy
from ._contract import finish, torch_args, upcast
from ._prefix_scan import scan_combine  # the associative combine of two steps (re-exported)
from ._segsum import segsum

__all__ = [
    "selective_scan",
    "selective_scan_ref",
    "selective_attention_matrix",
    "selective_attention_matrix_ref",
    "scan_combine",
    "make_inputs",
]

BACKENDS = ("ref", "numba", "torch")


# ---------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------
DECAYS = ("moderate", "extreme")


def make_inputs(rng: np.random.Generator, *, batch=1, length=8, channels=3, state=2, decays="moderate",
                dtype=np.float64) -> dict:
    """One valid random instance.

    ``decays="moderate"``: Δ log-uniform in [1e-2, 0.5], A = -exp(U[log 0.1, log 2]);
    ``decays="extreme"``: Δ log-uniform in [1e-3, 10], A = -exp(U[log 1e-4, log 1e3]), so
    Δ·A spans [-1e4, -1e-7]: per-step decays from exp(-1e4) (0 in any float format) to
    1 - 1e-7 (the state barely forgets), mixed within one sequence and channel.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    if decays not in DECAYS:
        raise ValueError(f"decays must be one of {DECAYS}; got {decays!r}")
    b, L, c, n = (V.check_size(k, v) for k, v in (("batch", batch), ("length", length), ("channels", channels),
                                                   ("state", state)))
    (d_lo, d_hi), (a_lo, a_hi) = ((1e-2, 0.5), (0.1, 2.0)) if decays == "moderate" else ((1e-3, 10.0), (1e-4, 1e3))
    out = {
        "x": rng.standard_normal((b, L, c)),
        "delta": np.exp(rng.uniform(np.log(d_lo), np.log(d_hi), size=(b, L, c))),
        "A": -np.exp(rng.uniform(np.log(a_lo), np.log(a_hi), size=(c, n))),
        "B": rng.standard_normal((b, L, n)),
        "C": rng.standard_normal((b, L, n)),
        "D": rng.standard_normal(c),
    }
    return {k: v.astype(dtype) for k, v in out.items()}


def _validate(x, delta, A, B, C, D=None, initial_state=None, *, need_x=True) -> str:
    named = {"x": x, "delta": delta, "A": A, "B": B, "C": C, "D": D, "initial_state": initial_state}
    if not need_x:
        named.pop("x")
    kind = V.check_arrays(named, allow_none=("D", "initial_state"))
    V.check_ndim("delta", delta, 3, "(batch, length, channels)")
    V.check_ndim("A", A, 2, "(channels, state)")
    V.check_ndim("B", B, 3, "(batch, length, state)")
    b, L, c = (int(s) for s in delta.shape)
    n = int(A.shape[1])
    shapes = {k: v.shape for k, v in named.items() if v is not None}
    if need_x:
        V.check_ndim("x", x, 3, "(batch, length, channels)")
        V.check_shape("delta", delta, tuple(x.shape), shapes)
    V.check_shape("A", A, (c, n), shapes)
    V.check_shape("B", B, (b, L, n), shapes)
    V.check_shape("C", C, (b, L, n), shapes)
    if D is not None:
        V.check_shape("D", D, (c,), shapes)
    if initial_state is not None:
        V.check_shape("initial_state", initial_state, (b, c, n), shapes)
    for k, v in named.items():
        if v is not None:
            V.check_nonempty(k, v, "(every size must be >= 1)")
            V.check_finite(k, v)
    V.check_bound("delta", delta, lo=0.0, why="a step size")
    V.check_bound("A", A, hi=0.0, why="exp(delta*A) must be a decay <= 1")
    return kind


# ---------------------------------------------------------------------------------------
# reference: the recurrence, float64, a loop over time
# ---------------------------------------------------------------------------------------
def selective_scan_ref(x, delta, A, B, C, D=None, initial_state=None):
    """float64 loop over t of the recurrence above.  Returns ``(y, h_last)``."""
    x, delta, A, B, C = (np.asarray(v, dtype=np.float64) for v in (x, delta, A, B, C))
    b, L, c = x.shape
    n = A.shape[1]
    h = np.zeros((b, c, n)) if initial_state is None else np.array(initial_state, dtype=np.float64)
    y = np.empty((b, L, c))
    for t in range(L):
        decay = np.exp(delta[:, t, :, None] * A[None])  # (b, c, n)
        h = decay * h + (delta[:, t] * x[:, t])[:, :, None] * B[:, t, None, :]  # (b, c, n)
        y[:, t] = np.einsum("bcn,bn->bc", h, C[:, t])  # (b, c)
    if D is not None:
        y += np.asarray(D, dtype=np.float64) * x
    return y, h


def selective_attention_matrix_ref(delta, A, B, C):
    """float64 hidden attention matrix (batch, channels, L, L), vectorized with stable segsums.

    A is constant in time, so Σ_{k=s+1..t} Δ_k A[n] = A[n] · S[t, s] with S = segsum(Δ)
    computed once; then one pass per state index n (the sum over n is the only loop):
    M += C_t[n] · exp(A[n] S[t, s]) · Δ_s B_s[n]   on and below the diagonal.
    """
    delta, A, B, C = (np.asarray(v, dtype=np.float64) for v in (delta, A, B, C))
    b, L, c = delta.shape
    M = np.zeros((b, c, L, L))
    dT = np.transpose(delta, (0, 2, 1))  # (b, c, L)
    lower = np.tril(np.ones((L, L), dtype=bool))
    S = np.where(lower, segsum(dT), 0.0)  # (b, c, L, L), 0 above the diagonal
    for n in range(A.shape[1]):
        decay = np.where(lower, np.exp(S * A[None, :, n, None, None]), 0.0)  # (b, c, L, L)
        M += C[:, None, :, None, n] * decay * (dT * B[:, None, :, n])[:, :, None, :]
    return M


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------
def selective_scan(x, delta, A, B, C, D=None, *, initial_state=None, return_final_state=False, backend="auto"):
    """Selective scan ``y`` (batch, length, channels); see the module docstring.

    ``initial_state`` (batch, channels, state) continues a previous segment;
    ``return_final_state=True`` returns ``(y, h_last)`` so a long sequence can be run in
    segments.  Backends: ``"ref"`` (float64 loop), ``"numba"`` (parallel over
    batch x channels), ``"torch"`` (chunked parallel scan; CPU/CUDA; differentiable),
    ``"auto"`` (see :mod:`theorylab.backends`).  numpy in -> numpy out; torch in -> torch
    out on the same device and dtype.
    """
    _validate(x, delta, A, B, C, D, initial_state)
    backend = resolve_backend(
        backend, {"x": x, "delta": delta, "A": A, "B": B, "C": C, "D": D, "initial_state": initial_state}, valid=BACKENDS)
    if backend == "torch":  # half precision computes in float32 (see theorylab.ssm._contract)
        from ._selective_torch import selective_scan_torch

        y, h = selective_scan_torch(*upcast(*torch_args(x, delta, A, B, C, D, initial_state)))
    else:
        dtype = np.float64 if backend == "ref" or V.dtype_name(x) == "float64" else np.float32
        xs = [to_numpy(v, dtype) for v in (x, delta, A, B, C, D, initial_state)]
        if backend == "ref":
            y, h = selective_scan_ref(*xs)
        else:
            from ._selective_numba import selective_scan_numba

            y, h = selective_scan_numba(*xs)
    y, h = finish(y, x, "y"), finish(h, x, "final state")
    return (y, h) if return_final_state else y


def selective_attention_matrix(delta, A, B, C, *, backend="auto"):
    """Hidden attention matrix M (batch, channels, length, length) with y = M x + D x.

    Backends: ``"ref"`` (float64, stable segment sums), ``"numba"`` (loops over (t, s)
    in compiled code), ``"torch"`` (the ref's vectorized form in torch; differentiable).
    """
    _validate(None, delta, A, B, C, need_x=False)
    backend = resolve_backend(backend, {"delta": delta, "A": A, "B": B, "C": C}, valid=BACKENDS)
    if backend == "torch":  # half precision computes in float32
        from ._selective_torch import selective_attention_matrix_torch

        M = selective_attention_matrix_torch(*upcast(*torch_args(delta, A, B, C)))
    elif backend == "ref":
        M = selective_attention_matrix_ref(*(to_numpy(v) for v in (delta, A, B, C)))
    else:
        from ._selective_numba import selective_attention_matrix_numba

        dtype = np.float64 if V.dtype_name(delta) == "float64" else np.float32
        M = selective_attention_matrix_numba(*(to_numpy(v, dtype) for v in (delta, A, B, C)))
    return finish(M, delta, "M")
