"""Second-order Higher-order Linear Attention: streaming statistics = materialized form.

Paper: #14 Zhang, Qin & Gu, "Higher-order Linear Attention" (2025, arXiv:2510.27258),
the second-order causal (masked) case and its chunk-parallel scan.

Per batch and head, the materialized second-order causal form is

    Y = (L ∘ Q Kᵀ)(L ∘ K Qᵀ) V,     L[t, s] = 1 if s <= t else 0,

so  y_t = Σ_{s<=t} Σ_{u<=s} (q_t·k_s)(k_s·q_u) v_u = q_tᵀ Σ_{s<=t} k_s k_sᵀ C_s,
with C_s = Σ_{u<=s} q_u v_uᵀ.

**Streaming statistics** (derived here).  With the prefix sums
S^K_t = Σ_{s<=t} k_s k_sᵀ and C^{QV}_t = Σ_{u<=t} q_u v_uᵀ, the product
S^K_t C^{QV}_t = Σ_{s<=t} Σ_{u<=t} k_s k_sᵀ q_u v_uᵀ also holds the pairs u > s, which the
mask removes.  Their sum is G_t = Σ_{u<=t} (Σ_{s<u} k_s k_sᵀ) q_u v_uᵀ = Σ_{u<=t} S^K_{u-1} q_u v_uᵀ,
so the constant-size state (S^K, C^{QV}, G) in R^{dk x dk} x R^{dk x dv} x R^{dk x dv} obeys

    S^K_t = S^K_{t-1} + k_t k_tᵀ,    C^{QV}_t = C^{QV}_{t-1} + q_t v_tᵀ,
    G_t   = G_{t-1} + S^K_{t-1} q_t v_tᵀ,              y_t = q_tᵀ (S^K_t C^{QV}_t - G_t).

**Chunk-parallel scan.**  A segment's summary (S, C, G) composes with the next one's by

    (S, C, G) ∘ (S', C', G') = (S + S', C + C', G + G' + S C'),

(associative: both bracketings give G + G' + G'' + S C' + (S + S') C'').  Chunk c of T steps
has summary dS = K_cᵀ K_c, dC = Q_cᵀ V_c, dG = K_cᵀ (U ∘ K_c Q_cᵀ) V_c with U[s, u] = 1 for
u > s (strictly upper); the states entering every chunk are exclusive prefix sums,

    S_in(c) = Σ_{c'<c} dS,    C_in(c) = Σ_{c'<c} dC,    G_in(c) = Σ_{c'<c} (dG + S_in(c') dC),

and inside chunk c (S_in C_in cross terms cancel against G):

    Y_c = Q_c (S_in C_in - G_in) + (L ∘ Q_c K_cᵀ) K_c C_in + (L ∘ Q_c K_cᵀ)(L ∘ K_c Q_cᵀ) V_c.

Glossary (code -> paper): q, k, v -> Q, K, V; S -> S^K; C -> C^{QV}; G -> G (the masked
correction); chunk_size -> the chunk width.

Shapes: q, k (batch, length, heads, dk); v, y (batch, length, heads, dv); state: a tuple
(S (batch, heads, dk, dk), C (batch, heads, dk, dv), G (batch, heads, dk, dv)).
"""

from __future__ import annotations

import numpy as np

from .. import _validate as V
from ..backends import resolve_backend, to_numpy
from ._contract import finish, torch_args, upcast
from .linear_forms import check_qkv, check_state

__all__ = ["hla2", "hla2_recurrent", "hla2_step", "hla2_materialized", "hla2_chunked_torch"]

BACKENDS = ("ref", "numba", "torch")


def hla2_recurrent(q, k, v, initial_state=None, *, masked=True):
    """float64 serial recurrence of (S^K, C^{QV}, G).  Returns (y, (S, C, G)).

    ``masked=False`` drops G, i.e. y_t = q_tᵀ S^K_t C^{QV}_t (the unmasked product; wrong
    for the causal form on purpose).
    """
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    b, L, h, dk = q.shape
    dv = v.shape[3]
    if initial_state is None:
        S, C, G = np.zeros((b, h, dk, dk)), np.zeros((b, h, dk, dv)), np.zeros((b, h, dk, dv))
    else:
        S, C, G = (np.array(x, dtype=np.float64) for x in initial_state)
    y = np.empty((b, L, h, dv))
    for t in range(L):
        (S, C, G), y[:, t] = hla2_step((S, C, G), q[:, t], k[:, t], v[:, t], masked=masked)
    return y, (S, C, G)


def _mm(X, Y):
    """X @ Y over the last two axes by broadcasting and a sum (works on object arrays)."""
    return (X[..., :, :, None] * Y[..., None, :, :]).sum(axis=-2)


def hla2_step(state, q_t, k_t, v_t, *, masked=True):
    """One step of the streaming statistics; returns ((S_t, C_t, G_t), y_t).

    G_t = G_{t-1} + S_{t-1} q_t v_tᵀ,  S_t = S_{t-1} + k_t k_tᵀ,  C_t = C_{t-1} + q_t v_tᵀ,
    y_t = q_tᵀ (S_t C_t - G_t).  S (..., dk, dk), C and G (..., dk, dv); q_t, k_t (..., dk);
    v_t (..., dv).  Plain broadcasting and sums, so it also runs on object arrays of sympy
    symbols (the claim's induction-step proof runs this very function).
    """
    S, C, G = state
    qv = q_t[..., :, None] * v_t[..., None, :]  # (..., dk, dv): q_t v_tᵀ
    G = G + _mm(S, qv)  # S^K_{t-1} q_t v_tᵀ
    S = S + k_t[..., :, None] * k_t[..., None, :]  # (..., dk, dk)
    C = C + qv
    H = _mm(S, C) - G if masked else _mm(S, C)  # (..., dk, dv)
    return (S, C, G), (q_t[..., :, None] * H).sum(axis=-2)


def hla2_materialized(q, k, v):
    """float64 Y = (L ∘ Q Kᵀ)(L ∘ K Qᵀ) V with both L x L matrices formed."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    L = q.shape[1]
    tril = np.tril(np.ones((L, L)))
    QK = np.einsum("bthk,bshk->bhts", q, k) * tril  # (b, h, L, L): (L ∘ Q Kᵀ)
    KQ = np.einsum("bthk,bshk->bhts", k, q) * tril  # (b, h, L, L): (L ∘ K Qᵀ)
    return np.einsum("bhts,bhsu,buhv->bthv", QK, KQ, v)  # (b, L, h, dv)


def hla2_chunked_torch(q, k, v, S0, C0, G0, chunk_size: int = 64):
    """Chunk-parallel scan (module docstring) in torch; every chunk at once.  Returns (y, (S, C, G))."""
    import torch

    b, L, h, dk = q.shape
    T = min(int(chunk_size), L)  # a chunk longer than the sequence would only add padding
    nc = -(-L // T)
    pad = nc * T - L
    if pad:  # zero q, k, v rows add nothing to any statistic; their outputs are dropped
        q, k, v = (torch.nn.functional.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v))
    Qc, Kc, Vc = (x.reshape(b, nc, T, h, x.shape[-1]).permute(0, 1, 3, 2, 4) for x in (q, k, v))  # (b, nc, h, T, d)
    ones = torch.ones(T, T, dtype=torch.bool, device=q.device)
    lower, strict_upper = ones.tril(), ones.triu(1)
    QK = (Qc @ Kc.transpose(-1, -2)).masked_fill(~lower, 0.0)  # (b, nc, h, T, T): L ∘ Q_c K_cᵀ
    KQ = Kc @ Qc.transpose(-1, -2)  # (b, nc, h, T, T): K_c Q_cᵀ
    # chunk summaries
    dS = Kc.transpose(-1, -2) @ Kc  # (b, nc, h, dk, dk)
    dC = Qc.transpose(-1, -2) @ Vc  # (b, nc, h, dk, dv)
    dG = Kc.transpose(-1, -2) @ (KQ.masked_fill(~strict_upper, 0.0) @ Vc)  # (b, nc, h, dk, dv)
    # exclusive scans over chunks (with the carried state in front)
    # (exclusive sums formed forward, never as cumsum - d, which loses a small prefix's digits)
    S_in = torch.cumsum(torch.cat([S0[:, None], dS[:, :-1]], 1), 1)  # (b, nc, h, dk, dk)
    C_in = torch.cumsum(torch.cat([C0[:, None], dC[:, :-1]], 1), 1)  # (b, nc, h, dk, dv)
    inc = dG + S_in @ dC
    G_in = torch.cumsum(torch.cat([G0[:, None], inc[:, :-1]], 1), 1)  # (b, nc, h, dk, dv)
    # outputs of every chunk
    Y = Qc @ (S_in @ C_in - G_in) + QK @ (Kc @ C_in) + QK @ (KQ.masked_fill(~lower, 0.0) @ Vc)  # (b, nc, h, T, dv)
    y = Y.permute(0, 1, 3, 2, 4).reshape(b, nc * T, h, -1)[:, :L]  # (b, L, h, dv)
    return y, (S_in[:, -1] + dS[:, -1], C_in[:, -1] + dC[:, -1], G_in[:, -1] + inc[:, -1])


def hla2(q, k, v, *, initial_state=None, return_final_state=False, chunk_size=64, backend="auto"):
    """Second-order causal HLA y (batch, length, heads, dv); see the module docstring.

    ``initial_state`` = (S, C, G) from a previous segment.  Backends: ``"ref"`` (float64
    serial recurrence), ``"numba"`` (the serial recurrence compiled, input precision),
    ``"torch"`` (chunk-parallel scan; CPU/CUDA; differentiable), ``"auto"``.
    """
    check_qkv(q, k, v)
    b, L, h, dk = (int(s) for s in q.shape)
    dv = int(v.shape[3])
    if initial_state is not None:
        if not isinstance(initial_state, (tuple, list)) or len(initial_state) != 3:
            raise TypeError(f"initial_state must be a tuple (S, C, G); got {type(initial_state).__name__}")
        shapes = {"q": q.shape, "v": v.shape}
        for name, x, shp in zip(("S", "C", "G"), initial_state, ((b, h, dk, dk), (b, h, dk, dv), (b, h, dk, dv))):
            check_state(f"initial_state {name}", x, shp, q, shapes)
    chunk_size = V.check_size("chunk_size", chunk_size)
    states = () if initial_state is None else tuple(initial_state)
    arrays = {"q": q, "k": k, "v": v, **dict(zip(("initial_state S", "initial_state C", "initial_state G"), states))}
    backend = resolve_backend(backend, arrays, valid=BACKENDS)
    if backend == "torch":  # half precision computes in float32 (see theorylab.ssm._contract)
        qt, kt, vt, *st = upcast(*torch_args(q, k, v, *states))
        if initial_state is None:
            st = (qt.new_zeros(b, h, dk, dk), qt.new_zeros(b, h, dk, dv), qt.new_zeros(b, h, dk, dv))
        y, state = hla2_chunked_torch(qt, kt, vt, *st, chunk_size=chunk_size)
    elif backend == "numba":
        from ._hla_numba import hla_recurrent

        dt = np.float64 if V.dtype_name(q) == "float64" else np.float32
        qn, kn, vn = (np.ascontiguousarray(to_numpy(x, dt)) for x in (q, k, v))
        if initial_state is None:
            st = (np.zeros((b, h, dk, dk), dt), np.zeros((b, h, dk, dv), dt), np.zeros((b, h, dk, dv), dt))
        else:
            st = tuple(np.array(to_numpy(x, dt)) for x in initial_state)
        y, *state = hla_recurrent(qn, kn, vn, *st)
    else:
        st = None if initial_state is None else tuple(to_numpy(x) for x in initial_state)
        y, state = hla2_recurrent(to_numpy(q), to_numpy(k), to_numpy(v), st)
    y, state = finish(y, q, "y"), tuple(finish(x, q, "final state") for x in state)
    return (y, state) if return_final_state else y
