"""LoRA in the NTK regime: the linearized fine-tuning problem, its rank threshold, LoRA training.

Paper: #110 Jang, Lee & Ryu, "LoRA Training in the NTK Regime has No Spurious Local Minima"
(2024, arXiv:2402.11867).

**The linearized problem.**  A network f(x; W) with K outputs is fine-tuned on N samples in
the weight W (d_out x d_in).  Near the pre-trained W0 (the NTK regime)

    f_k(x_i; W0 + ΔW) ≈ f_k(x_i; W0) + ⟨G_{ik}, ΔW⟩,      G_{ik} = ∂f_k(x_i; W)/∂W |_{W0},

so fitting targets means KN linear equations ⟨G_j, ΔW⟩ = y_j, j = (i, k).  Here f(x; W) =
V tanh(W x) with V (K x d_out) frozen, so G_{ik} = (V_k ⊙ tanh'(W0 x_i)) x_iᵀ
(:func:`ntk_jacobians`), and y_j are the residual targets (:func:`make_inputs`).

**LoRA.**  ΔW = B A with A (r x d_in), B (d_out x r) (the α/r scale of LoRA only rescales B
and is left out); the training loss is L(A, B) = Σ_j (⟨G_j, BA⟩ − y_j)² / Σ_j y_j²
(:func:`ntk_residuals`).  The paper: full fine-tuning has a solution of rank r with
r(r+1)/2 <= KN, and when r(r+1)/2 > KN, LoRA training (with weight decay, for generic data)
has no spurious local minima, so a local method reaches the global minimum, ≈ 0 loss here.
This is a *sufficient* condition (:func:`lora_rank_threshold`: the smallest such r); below it
the paper asserts nothing.  A dimension count says where fitting becomes possible at all:
rank-r matrices form a manifold of dimension r(d_in + d_out − r), so for generic G and y no
rank-r solution exists when r(d_in + d_out − r) < KN (:func:`dimension_count_rank`).

**Training** (:func:`fit_lora_ntk`): from A ~ N(0, 1/d_in), B = 0 (LoRA's initialisation),
Levenberg–Marquardt steps on the residuals (a damped Gauss–Newton step, batched over
seeds; step accepted only when the loss falls, damping adapted), weight decay 0.

Glossary (code -> paper): K -> K (outputs); N -> N (samples); G -> the NTK features ∇f;
A, B -> LoRA's A, B; r -> rank.
Shapes: X (N, d_in); W0 (d_out, d_in); V (K, d_out); G (K N, d_out, d_in); y (K N,);
A (seeds..., r, d_in); B (seeds..., d_out, r); residuals (seeds..., K N).
"""

from __future__ import annotations

import math

import numpy as np

from .. import _validate as V_
from ..backends import like_input, resolve_backend, to_numpy, to_torch
from ._common import BACKENDS, check_inputs, mismatch

__all__ = ["make_inputs", "ntk_jacobians", "ntk_jacobians_ref", "ntk_residuals", "lora_rank_threshold",
           "dimension_count_rank", "fit_lora_ntk", "success_lower_bound"]


def make_inputs(rng: np.random.Generator, *, K=2, N=12, d_in=12, d_out=10, dtype=np.float64) -> dict:
    """X (N, d_in) N(0, 1); W0 (d_out, d_in), V (K, d_out) N(0, 1/fan_in); targets y (K N,) N(0, 1)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    K, N, d_in, d_out = (V_.check_size(k, v) for k, v in (("K", K), ("N", N), ("d_in", d_in), ("d_out", d_out)))
    out = {"X": rng.standard_normal((N, d_in)), "W0": rng.standard_normal((d_out, d_in)) / np.sqrt(d_in),
           "V": rng.standard_normal((K, d_out)) / np.sqrt(d_out), "y": rng.standard_normal(K * N)}
    return {k: v.astype(dtype) for k, v in out.items()}


def lora_rank_threshold(K, N) -> int:
    """The smallest r with r(r+1)/2 > K N (the paper's sufficient condition)."""
    KN = V_.check_size("K", K) * V_.check_size("N", N)
    return int(math.floor((math.sqrt(8 * KN + 1) - 1) / 2)) + 1


def dimension_count_rank(K, N, d_in, d_out) -> int:
    """The smallest r with r(d_in + d_out − r) >= K N (rank-r solutions exist generically from here)."""
    KN = V_.check_size("K", K) * V_.check_size("N", N)
    d_in, d_out = V_.check_size("d_in", d_in), V_.check_size("d_out", d_out)
    for r in range(1, min(d_in, d_out) + 1):
        if r * (d_in + d_out - r) >= KN:
            return r
    return min(d_in, d_out) + 1  # no rank fits: more equations than entries of ΔW


def ntk_jacobians_ref(X, W0, V) -> np.ndarray:
    """float64 G (K N, d_out, d_in): G_{(i,k)} = (V_k ⊙ tanh'(W0 x_i)) x_iᵀ, rows ordered (i, k)."""
    X, W0, V = (np.asarray(a, np.float64) for a in (X, W0, V))
    s = 1.0 - np.tanh(X @ W0.T) ** 2  # (N, d_out): tanh' at the pre-activations
    U = V[None, :, :] * s[:, None, :]  # (N, K, d_out)
    return np.einsum("nko,ni->nkoi", U, X).reshape(-1, W0.shape[0], W0.shape[1])


def ntk_jacobians(X, W0, V, *, backend="auto"):
    """∂f_k(x_i)/∂W at W0 for f(x; W) = V tanh(W x): (K N, d_out, d_in).  ``"ref"``, ``"torch"``, ``"auto"``."""
    named = {"X": X, "W0": W0, "V": V}
    kind = check_inputs(named, {"X": (2, "(N, d_in)"), "W0": (2, "(d_out, d_in)"), "V": (2, "(K, d_out)")})
    for name in named:
        V_.check_ndim(name, named[name], 2, "a matrix")
    if W0.shape[1] != X.shape[1]:
        raise mismatch("W0", W0, f"(d_out, {X.shape[1]}): d_in from X", named)
    if V.shape[1] != W0.shape[0]:
        raise mismatch("V", V, f"(K, {W0.shape[0]}): d_out from W0", named)
    backend = resolve_backend(backend, (X, W0, V), valid=BACKENDS)
    if backend == "torch":
        from ._lora_ntk_torch import ntk_jacobians_torch

        return like_input(ntk_jacobians_torch(*(to_torch(a) for a in (X, W0, V))), X)
    out = ntk_jacobians_ref(*(to_numpy(a) for a in (X, W0, V)))
    return like_input(out, X) if kind == "torch" else out.astype(X.dtype, copy=False)


def ntk_residuals(G, y, A, B, *, backend="auto"):
    """r_j = ⟨G_j, B A⟩ − y_j (seeds..., K N) for A (seeds..., r, d_in), B (seeds..., d_out, r).

    ``"ref"`` (float64 numpy), ``"torch"`` (differentiable in A and B), ``"auto"``."""
    named = {"G": G, "y": y, "A": A, "B": B}
    kind = check_inputs(named, {"G": (3, "(K N, d_out, d_in)"), "y": (1, "(K N,)"), "A": (2, "(..., r, d_in)"),
                                "B": (2, "(..., d_out, r)")})
    V_.check_ndim("G", G, 3, "(K N, d_out, d_in)")
    V_.check_ndim("y", y, 1, "(K N,)")
    J, d_out, d_in = G.shape
    if y.shape[0] != J:
        raise mismatch("y", y, f"({J},): one target per Jacobian", named)
    if A.shape[-1] != d_in:
        raise mismatch("A", A, f"(..., r, {d_in}): d_in from G", named)
    if tuple(B.shape[-2:]) != (d_out, A.shape[-2]) or tuple(B.shape[:-2]) != tuple(A.shape[:-2]):
        raise mismatch("B", B, f"{tuple(A.shape[:-2]) + (d_out, A.shape[-2])} (d_out from G, r from A)", named)
    backend = resolve_backend(backend, (G, y, A, B), valid=BACKENDS)
    if backend == "torch":
        import torch

        Gt, yt, At, Bt = (to_torch(a) for a in (G, y, A, B))
        return like_input(torch.einsum("jmn,...mn->...j", Gt, Bt @ At) - yt, A)
    G_, y_, A_, B_ = (to_numpy(a, np.float64) for a in (G, y, A, B))
    out = np.einsum("jmn,...mn->...j", G_, B_ @ A_) - y_
    return like_input(out, A) if kind == "torch" else out.astype(A.dtype, copy=False)


def fit_lora_ntk(G, y, rank, rng: np.random.Generator, *, seeds=16, iters=100) -> dict:
    """LoRA of rank r trained on the linearized problem from ``seeds`` initialisations (float64 numpy).

    Returns ``{"loss": (seeds,) relative losses Σ r_j² / Σ y_j², "A": (seeds, r, d_in), "B": (seeds, d_out, r)}``.
    Levenberg–Marquardt on all seeds at once: δ = −Jᵀ(JJᵀ + μI)⁻¹ r with J = ∂r/∂(B, A) (K N x r(d_in + d_out)),
    kept only where the loss falls (μ /= 3), else μ *= 4."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    G, y = np.asarray(G, np.float64), np.asarray(y, np.float64)
    J, m, n = G.shape
    r = V_.check_size("rank", rank)
    S, iters = V_.check_size("seeds", seeds), V_.check_size("iters", iters)
    A = rng.standard_normal((S, r, n)) / np.sqrt(n)
    B = np.zeros((S, m, r))
    mu = np.full(S, 1e-2)
    res = ntk_residuals(G, y, A, B, backend="ref")  # (S, J)
    loss = (res**2).sum(-1)
    eye = np.eye(J)
    for _ in range(iters):
        JB = np.einsum("jmn,srn->sjmr", G, A).reshape(S, J, m * r)  # ∂r_j/∂B = G_j Aᵀ
        JA = np.einsum("smr,jmn->sjrn", B, G).reshape(S, J, r * n)  # ∂r_j/∂A = Bᵀ G_j
        Jm = np.concatenate([JB, JA], axis=-1)  # (S, J, r (m + n))
        z = np.linalg.solve(Jm @ np.swapaxes(Jm, -1, -2) + mu[:, None, None] * eye, res[..., None])[..., 0]
        step = -np.einsum("sjp,sj->sp", Jm, z)
        B1, A1 = B + step[:, : m * r].reshape(S, m, r), A + step[:, m * r:].reshape(S, r, n)
        res1 = ntk_residuals(G, y, A1, B1, backend="ref")
        loss1 = (res1**2).sum(-1)
        ok = loss1 < loss
        A, B = np.where(ok[:, None, None], A1, A), np.where(ok[:, None, None], B1, B)
        res, loss = np.where(ok[:, None], res1, res), np.where(ok, loss1, loss)
        mu = np.clip(np.where(ok, mu / 3, mu * 4), 1e-12, 1e12)
        if np.all(loss <= 1e-24 * (y**2).sum()):  # every seed at rounding level: further steps change nothing
            break
    return {"loss": loss / (y**2).sum(), "A": A, "B": B}


def success_lower_bound(successes, trials, level=0.99) -> float:
    """One-sided Clopper–Pearson lower bound on a success probability: the p with P(X >= k | p) = 1 − level.

    ``successes = trials`` gives (1 − level)^(1/trials); 0 successes give 0 (bisection on the binomial tail)."""
    k, n = int(successes), V_.check_size("trials", trials)
    if not 0 <= k <= n:
        raise ValueError(f"successes must be in [0, trials = {n}]; got {k}")
    if k == 0:
        return 0.0
    alpha = 1.0 - float(level)

    def tail(p):  # P(X >= k), increasing in p
        return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))

    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if tail(mid) < alpha else (lo, mid)
    return lo
