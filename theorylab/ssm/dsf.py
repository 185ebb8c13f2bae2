"""The Dynamical Systems Framework (DSF): one recurrence for attention, SSMs and RNNs.

Paper: #49 Sieber, Alonso, Didier, Zeilinger & Orvieto, "Understanding the differences in
Foundation Models: Attention, State Space Models, and Recurrent Neural Networks" (2024,
arXiv:2405.15731), Sec. 2-3.

The DSF writes a causal sequence map u (L, d_in) -> y (L, d_out) as

    h_t = Λ_t h_{t-1} + B_t u_t,        y_t = C_t h_t            (h_{-1} = 0, h in R^N)

and, unrolled, as y = Φ u with the block lower-triangular *DSF matrix*

    Φ[t, s] = C_t Λ_t Λ_{t-1} ... Λ_{s+1} B_s     (s <= t; a d_out x d_in block),  0 (s > t).

Two models whose DSF matrices coincide compute the same outputs.  Mappings into the DSF:

* causal linear attention (one head, unnormalized): u = v, the state is vec(S) with
  S_t = S_{t-1} + k_t v_tᵀ (N = d_k d_v); Λ_t = I, B_t = k_t ⊗ I_{d_v}, C_t = q_tᵀ ⊗ I_{d_v},
  so Φ[t, s] = (q_t · k_s) I_{d_v};
* the selective SSM (S6, see :mod:`theorylab.ssm.selective`): u = x (d_in = channels), the
  state stacks each channel's N states; Λ_t = diag(exp(Δ_t[c] A[c, n])) (diagonal, input
  dependent), B_t puts Δ_t[c] B_t into channel c's block, C_t reads C_t from it, so
  Φ[t, s] = diag_c(M[c, t, s]) with M the hidden attention matrix.

Hence S6 with A ≡ 0 and a channel-independent step Δ_t[c] = δ_t has Φ equal to that of
linear attention with q_t = C_t, k_s = δ_s B_s, v = x: the two outputs coincide.  With
A ≠ 0 the matrices differ by the decay and so do the outputs (the negative control).

The claim ``ssm.dsf-equal-matrices-equal-outputs``: :mod:`theorylab.ssm.dsf_claims`.

Shapes (batch first): Lambda (b, L, N) diagonal or (b, L, N, N) full; B (b, L, N, d_in);
C (b, L, d_out, N); u (b, L, d_in); Φ (b, L, L, d_out, d_in).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "dsf_recurrence",
    "dsf_matrix",
    "dsf_apply",
    "linear_attention_to_dsf",
    "selective_ssm_to_dsf",
    "linear_attention_ref",
]


def _transition(Lam_t, h):
    return Lam_t * h if Lam_t.ndim == 2 else np.einsum("bij,bj->bi", Lam_t, h)  # diagonal or full


def _check(Lam, B, C, u=None):
    for name, a in (("Lambda", Lam), ("B", B), ("C", C), ("u", u)):
        if a is None:
            continue
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray; got {type(a).__name__}")
        if a.size == 0 or not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be non-empty and finite; got shape {a.shape}")
    b, L, N, d_in = B.shape
    if Lam.shape not in ((b, L, N), (b, L, N, N)):
        raise ValueError(f"Lambda must have shape {(b, L, N)} or {(b, L, N, N)}; got {Lam.shape} (B {B.shape})")
    if C.ndim != 4 or C.shape[:2] != (b, L) or C.shape[3] != N:
        raise ValueError(f"C must have shape {(b, L, 'd_out', N)}; got {C.shape} (B {B.shape})")
    if u is not None and u.shape != (b, L, d_in):
        raise ValueError(f"u must have shape {(b, L, d_in)}; got {u.shape} (B {B.shape})")


def dsf_recurrence(Lam, B, C, u):
    """y (b, L, d_out) by running h_t = Λ_t h_{t-1} + B_t u_t, y_t = C_t h_t (float64 loop)."""
    _check(Lam, B, C, u)
    b, L, N, _ = B.shape
    h = np.zeros((b, N))
    y = np.empty((b, L, C.shape[2]))
    for t in range(L):
        h = _transition(Lam[:, t], h) + np.einsum("bnd,bd->bn", B[:, t], u[:, t])
        y[:, t] = np.einsum("bon,bn->bo", C[:, t], h)
    return y


def dsf_matrix(Lam, B, C):
    """Φ (b, L, L, d_out, d_in): Φ[t, s] = C_t Λ_t ... Λ_{s+1} B_s for s <= t, else 0.

    Column by column: G = B_s, then G <- Λ_t G for t = s+1, s+2, ... (no matrix powers).
    """
    _check(Lam, B, C)
    b, L, N, d_in = B.shape
    Phi = np.zeros((b, L, L, C.shape[2], d_in))
    for s in range(L):
        G = B[:, s]  # (b, N, d_in): the state a unit input at s leaves behind
        for t in range(s, L):
            if t > s:
                G = Lam[:, t][..., None] * G if Lam.ndim == 3 else np.einsum("bij,bjd->bid", Lam[:, t], G)
            Phi[:, t, s] = np.einsum("bon,bnd->bod", C[:, t], G)
    return Phi


def dsf_apply(Phi, u):
    """y = Φ u: y_t = Σ_{s <= t} Φ[t, s] u_s."""
    return np.einsum("btsod,bsd->bto", Phi, u)


def linear_attention_ref(q, k, v):
    """Causal unnormalized linear attention y_t = Σ_{s<=t} (q_t · k_s) v_s; (b, L, d) each."""
    scores = np.tril(np.einsum("btd,bsd->bts", q, k))  # (b, L, L)
    return scores @ v


def linear_attention_to_dsf(q, k, v):
    """(Λ, B, C, u) of linear attention: Λ = I (diagonal ones), B_t = k_t ⊗ I, C_t = q_tᵀ ⊗ I, u = v."""
    b, L, dk = q.shape
    dv = v.shape[2]
    eye = np.eye(dv)
    B = np.einsum("btk,vw->btkvw", k, eye).reshape(b, L, dk * dv, dv)  # state index (key i, value j)
    C = np.einsum("btk,vw->btvkw", q, eye).reshape(b, L, dv, dk * dv)
    return np.ones((b, L, dk * dv)), B, C, v


def selective_ssm_to_dsf(x, delta, A, B, C):
    """(Λ, B, C, u) of the selective SSM (S6, without D): block-diagonal over channels."""
    b, L, c = x.shape
    n = A.shape[1]
    Lam = np.exp(delta[..., None] * A).reshape(b, L, c * n)  # (b, L, c*n): state index (channel, n)
    Bd = np.zeros((b, L, c, n, c))
    Cd = np.zeros((b, L, c, c, n))
    for ch in range(c):
        Bd[:, :, ch, :, ch] = delta[:, :, ch, None] * B  # Δ_t[c] B_t into channel c's block
        Cd[:, :, ch, ch, :] = C
    return Lam, Bd.reshape(b, L, c * n, c), Cd.reshape(b, L, c, c * n), x
