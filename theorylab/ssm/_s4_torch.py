"""Torch forms of S4's discretization, kernels and layer (CPU and CUDA, differentiable).

Each function is the same math as its numpy reference in :mod:`theorylab.ssm.s4`, line for
line, written with torch operations so that autograd reaches every parameter:

* :func:`discretize_bilinear_torch` must match :func:`~theorylab.ssm.s4.discretize_bilinear` (ref);
* :func:`kernel_power_torch`, :func:`kernel_recurrent_torch` must match
  :func:`~theorylab.ssm.s4.s4_kernel_recurrent` (ref);
* :func:`kernel_dplr_torch` (generating function at the roots of unity + inverse FFT, C̃ by
  ``torch.linalg.matrix_power``) must match :func:`~theorylab.ssm.s4.s4_kernel_dplr` (ref);
* :func:`recurrence_torch`, :func:`convolve_torch` must match the ref backends of
  :func:`~theorylab.ssm.s4.s4_recurrence` and :func:`~theorylab.ssm.s4.s4_convolve`.

Inputs arrive as tensors of one real dtype (float32 or float64; half precision is cast to
float32 by the caller) or, for the DPLR path, complex tensors of the matching precision.
"""

from __future__ import annotations

import math

import torch


def discretize_bilinear_torch(A, B, dt):
    """Ā = (I - Δ/2 A)^{-1}(I + Δ/2 A), B̄ = (I - Δ/2 A)^{-1} Δ B per channel: (h, n, n), (h, n)."""
    n = A.shape[0]
    eye = torch.eye(n, dtype=A.dtype, device=A.device)
    half = 0.5 * dt[:, None, None]  # (h, 1, 1)
    left = eye - half * A  # (h, n, n): I - Δ/2 A
    right = eye + half * A  # (h, n, n): I + Δ/2 A
    Ab = torch.linalg.solve(left, right)  # (h, n, n)
    Bb = torch.linalg.solve(left, (dt[:, None] * B)[..., None])[..., 0]  # (h, n)
    return Ab, Bb


def kernel_power_torch(A, B, C, dt, L: int):
    """K̄_ℓ = C Ā^ℓ B̄ by Krylov doubling (see ``s4_kernel_power``): (h, L)."""
    Ab, Bb = discretize_bilinear_torch(A, B, dt)
    Kry, Pw = Bb[..., None], Ab  # (h, n, width), Ā^width
    while Kry.shape[-1] < L:
        Kry = torch.cat([Kry, Pw @ Kry], dim=-1)  # (h, n, 2 width)
        Pw = Pw @ Pw
    return torch.einsum("hn,hnl->hl", C, Kry[..., :L])  # (h, L)


def kernel_recurrent_torch(A, B, C, dt, L: int):
    """K̄ as the impulse response of x_ℓ = Ā x_{ℓ-1} + B̄ u_ℓ, y_ℓ = C x_ℓ: (h, L)."""
    Ab, Bb = discretize_bilinear_torch(A, B, dt)
    x, ks = Bb, []  # x_0 = B̄ (impulse at ℓ = 0)
    for ell in range(L):
        if ell:
            x = torch.einsum("hnk,hk->hn", Ab, x)  # (h, n)
        ks.append((C * x).sum(-1))  # (h,)
    return torch.stack(ks, dim=-1)


def c_tilde_torch(Lam, P, C, dt, L: int):
    """C̃ = C (I - Ā^L) in the DPLR basis (complex), Ā^L by repeated squaring."""
    n = Lam.shape[0]
    A = torch.diag(Lam) - P[:, None] * P.conj()[None, :]  # (n, n): diag(Λ) - P P*
    eye = torch.eye(n, dtype=Lam.dtype, device=Lam.device)
    half = (0.5 * dt).to(Lam.dtype)[:, None, None]  # (h, 1, 1)
    Ab = torch.linalg.solve(eye - half * A, eye + half * A)  # (h, n, n)
    AL = torch.linalg.matrix_power(Ab, int(L))  # (h, n, n)
    return C - torch.einsum("hn,hnk->hk", C, AL)  # (h, n)


def kernel_dplr_torch(Lam, P, B, C, dt, L: int, c_tilde=None):
    """K̄ = Re iFFT(K̂) with K̂ at the L-th roots of unity by Cauchy sums + Woodbury: (h, L) real."""
    Ct = c_tilde_torch(Lam, P, C, dt, L) if c_tilde is None else c_tilde
    ang = torch.arange(L, dtype=dt.dtype, device=dt.device) * (-2.0 * math.pi / L)
    z = torch.polar(torch.ones_like(ang), ang).to(Lam.dtype)  # (L,) roots of unity, FFT convention
    alpha = (2.0 / dt[:, None]).to(Lam.dtype) * (1.0 - z)  # (h, L)
    beta = (1.0 + z).expand_as(alpha)  # (h, L)
    r = 1.0 / (alpha[..., None] - beta[..., None] * Lam)  # (h, L, n): the Cauchy kernel
    num = torch.stack([Ct * B, Ct * P, P.conj() * B, (P.conj() * P).expand_as(B)], dim=-1)  # (h, n, 4)
    k_cb, k_cp, k_pb, k_pp = torch.einsum("hln,hnk->hlk", r, num).unbind(-1)  # 4 x (h, L)
    Khat = 2.0 * (k_cb - beta * k_cp * k_pb / (1.0 + beta * k_pp))  # (h, L)
    return torch.fft.ifft(Khat, dim=-1).real


def recurrence_torch(u, Ab, Bb, C, D, x):
    """x_t = Ā x_{t-1} + B̄ u_t, y_t = C x_t (+ D u_t): u (b, L, h) -> (y (b, L, h), x (b, h, n))."""
    ys = []
    for t in range(u.shape[1]):
        x = torch.einsum("hnk,bhk->bhn", Ab, x) + Bb * u[:, t, :, None]  # (b, h, n)
        ys.append(torch.einsum("hn,bhn->bh", C, x))
    y = torch.stack(ys, dim=1)  # (b, L, h)
    return (y if D is None else y + D * u), x


def convolve_torch(u, K, D):
    """y = K̄ * u (causal) by FFT of length 2L (+ D u): u (b, L, h), K (h, L) -> (b, L, h)."""
    L = u.shape[1]
    Uf = torch.fft.rfft(u, n=2 * L, dim=1)  # (b, L+1, h)
    Kf = torch.fft.rfft(K.transpose(0, 1), n=2 * L, dim=0)  # (L+1, h)
    y = torch.fft.irfft(Uf * Kf, n=2 * L, dim=1)[:, :L]  # (b, L, h)
    return y if D is None else y + D * u
