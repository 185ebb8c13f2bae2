"""S4: the HiPPO-LegS matrix is normal plus low-rank, and the SSM kernel three ways.

Paper: #44 Gu, Goel & Ré, "Efficiently Modeling Long Sequences with Structured State
Spaces" (2021, arXiv:2111.00396), Sections 2-3, Theorem 1 and Lemmas C.2-C.3.

Continuous SSM per channel h (state size N):  x'(t) = A x(t) + B u(t),  y(t) = C x(t) + D u(t).

**HiPPO-LegS** (the convention used here, 0-based n, k < N):

    A[n, k] = -sqrt(2n+1) sqrt(2k+1)   (n > k),    A[n, n] = -(n+1),    A[n, k] = 0   (n < k)
    B[n]    =  sqrt(2n+1),                          P[n]    =  sqrt(n + 1/2)

Claim (normal plus low-rank, NPLR): A + P Pᵀ = -1/2 I + S with S skew-symmetric.  Entry by
entry: for n > k, -sqrt(2n+1)sqrt(2k+1) + sqrt(n+1/2)sqrt(k+1/2) = -1/2 sqrt(2n+1)sqrt(2k+1),
for n < k it is +1/2 sqrt(2n+1)sqrt(2k+1), and on the diagonal -(n+1) + (n+1/2) = -1/2.
Since -1/2 I + S is normal, it is unitarily diagonalizable: A + P Pᵀ = V diag(Λ) V*, Re Λ = -1/2,
so in the basis V the matrix is *diagonal plus low-rank* (DPLR): V* A V = diag(Λ) - P̃ P̃*,
P̃ = V* P.

**Bilinear discretization** with step Δ > 0 (S4, Eq. 3):

    Ā = (I - Δ/2 A)^{-1} (I + Δ/2 A),      B̄ = (I - Δ/2 A)^{-1} Δ B,      C̄ = C.

Recurrence x_ℓ = Ā x_{ℓ-1} + B̄ u_ℓ, y_ℓ = C x_ℓ (+ D u_ℓ), x_{-1} = 0, which unrolls into the
causal convolution y = K̄ * u with the **SSM kernel** K̄_ℓ = C Ā^ℓ B̄ (ℓ = 0..L-1).  Computed:

* ``s4_kernel_power``: Krylov powers by doubling, [B̄, ĀB̄] -> [.., Ā²(B̄, ĀB̄)] -> ...:
  O(N² L + N³ log L);
* ``s4_kernel_recurrent``: the recurrence run on the impulse u = δ_0 (y_ℓ = K̄_ℓ): O(N² L);
* ``s4_kernel_dplr``: the generating function K̂(z) = Σ_{ℓ<L} K̄_ℓ z^ℓ at the L-th roots of
  unity z_k = exp(-2πik/L), then K̄ = iFFT(K̂) (Lemma C.2-C.3).  With z^L = 1,

      K̂(z) = C̃ (I - Ā z)^{-1} B̄,        C̃ = C (I - Ā^L)   (Ā^L once, by squaring)

  and substituting the bilinear Ā, B̄ (multiplying the paper's 2/(1+z) (g(z) - A)^{-1},
  g = 2/Δ (1-z)/(1+z), through by 1+z so that z = -1 needs no special case):

      (I - Ā z)^{-1} B̄ = 2 (α I - β A)^{-1} B,     α = 2/Δ (1 - z),  β = 1 + z.

  In the DPLR basis α I - β A = D + β P̃ P̃*, D = diag(α - β Λ), and by Woodbury

      K̂(z) = 2 [ k(C̃, B̃) - β k(C̃, P̃) k(P̃*, B̃) / (1 + β k(P̃*, P̃)) ],
      k(x, y)(z) = Σ_n x_n y_n / (α(z) - β(z) Λ_n)        (a Cauchy kernel),

  O(N L) for the Cauchy sums + O(L log L) for the FFT (given C̃).

Glossary (code -> paper): A, B, C, D -> A, B, C, D; P -> P (low-rank factor, here Q = P);
Lam -> Λ; V -> V; dt -> Δ; Ab, Bb -> Ā, B̄; Ct -> C̃; K -> K̄; L -> L.

Shapes: A (N, N); P (N,); B, C (channels, N); dt (channels,); Ab (channels, N, N);
Bb (channels, N); K (channels, L); u, y (batch, length, channels); D (channels,);
recurrent state (batch, channels, N).  The DPLR path takes Lam, P (N,) and B, C
(channels, N) complex, in the basis V.

Backends (every public function but the HiPPO constructors): ``"ref"`` (numpy float64),
``"torch"`` (:mod:`theorylab.ssm._s4_torch`: CPU/CUDA, differentiable, half precision in
float32), ``"auto"`` (any tensor -> torch).  numpy in -> numpy out of the input's dtype;
torch in -> torch out on the input's device and dtype.  Argument checks live in
:mod:`theorylab.ssm._s4_validate`.
"""

from __future__ import annotations

import numpy as np

from .. import _validate as V_
from ..backends import is_tensor, resolve_backend, to_numpy
from ._contract import finish, torch_args, upcast
from ._s4_validate import _NO_C, _check_dplr, _check_ssm, _check_u

__all__ = [
    "hippo_legs",
    "hippo_dplr",
    "discretize_bilinear",
    "s4_kernel_power",
    "s4_kernel_recurrent",
    "s4_kernel_dplr",
    "s4_c_tilde",
    "s4_recurrence",
    "s4_convolve",
    "make_s4_inputs",
]

BACKENDS = ("ref", "torch")


_check_size = V_.check_size


_like = finish  # result in the template's container and dtype (a half overflow is an error)


# ---------------------------------------------------------------------------------------
# HiPPO-LegS and its DPLR form
# ---------------------------------------------------------------------------------------
def hippo_legs(N: int):
    """HiPPO-LegS ``(A, P, B)`` in float64 (convention in the module docstring).

    A[n, k] = -sqrt(2n+1) sqrt(2k+1) (n > k), -(n+1) (n = k), 0 (n < k);
    P[n] = sqrt(n + 1/2); B[n] = sqrt(2n+1).
    """
    N = _check_size("N", N)
    r = np.sqrt(2.0 * np.arange(N) + 1.0)  # (N,)
    A = -np.tril(np.outer(r, r), -1) - np.diag(np.arange(N) + 1.0)  # (N, N)
    P = np.sqrt(np.arange(N) + 0.5)  # (N,)
    return A, P, r.copy()


def hippo_dplr(N: int):
    """DPLR form of HiPPO-LegS: ``(Lam, P_t, B_t, V)`` with V* A V = diag(Lam) - P_t P_t*.

    A + P Pᵀ = -1/2 I + S (S skew-symmetric) and -iS is Hermitian, so eigh(-iS) = (w, V)
    gives S = V diag(i w) V* with V unitary; Λ = -1/2 + i w, P_t = V* P, B_t = V* B.
    """
    A, P, B = hippo_legs(N)
    S = A + np.outer(P, P) + 0.5 * np.eye(N)  # (N, N), skew-symmetric
    S = 0.5 * (S - S.T)  # exact skew part (removes rounding in the symmetric part)
    w, V = np.linalg.eigh(-1j * S)  # -iS Hermitian: real w, unitary V
    Lam = -0.5 + 1j * w  # (N,)
    return Lam, V.conj().T @ P, V.conj().T @ B, V


# ---------------------------------------------------------------------------------------
# discretization and the three kernels
# ---------------------------------------------------------------------------------------
def _discretize_ref(A, B, dt):
    """Ā, B̄ in numpy float64 (the reference of every backend)."""
    A, B, dt = (np.asarray(v, dtype=np.float64) for v in (A, B, dt))
    n = A.shape[0]
    eye = np.eye(n)
    left = eye - 0.5 * dt[:, None, None] * A  # (h, n, n): I - Δ/2 A
    right = eye + 0.5 * dt[:, None, None] * A  # (h, n, n): I + Δ/2 A
    Ab = np.linalg.solve(left, right)  # (h, n, n)
    Bb = np.linalg.solve(left, (dt[:, None] * B)[..., None])[..., 0]  # (h, n)
    return Ab, Bb


def discretize_bilinear(A, B, dt, *, backend="auto"):
    """Ā = (I - Δ/2 A)^{-1}(I + Δ/2 A), B̄ = (I - Δ/2 A)^{-1} Δ B, per channel.

    A (N, N), B (channels, N), dt (channels,) -> Ā (channels, N, N), B̄ (channels, N).
    Backends: ``"ref"`` (numpy float64), ``"torch"`` (``torch.linalg.solve`` in the input
    dtype, half precision in float32; differentiable), ``"auto"`` (tensors -> torch).
    numpy in -> numpy out of the input dtype; torch in -> torch out (device, dtype).
    """
    _check_ssm(A, B, _NO_C, dt)
    backend = resolve_backend(backend, {"A": A, "B": B, "dt": dt}, valid=BACKENDS)
    if backend == "torch":
        from ._s4_torch import discretize_bilinear_torch

        Ab, Bb = discretize_bilinear_torch(*upcast(*torch_args(A, B, dt)))
    else:
        Ab, Bb = _discretize_ref(*(to_numpy(v) for v in (A, B, dt)))
    return _like(Ab, A), _like(Bb, A)


def _kernel(ref_fn, torch_name, A, B, C, dt, L, backend):
    _check_ssm(A, B, C, dt)
    L = _check_size("L", L)
    backend = resolve_backend(backend, {"A": A, "B": B, "C": C, "dt": dt}, valid=BACKENDS)
    if backend == "torch":
        from . import _s4_torch

        K = getattr(_s4_torch, torch_name)(*upcast(*torch_args(A, B, C, dt)), L)
    else:
        K = ref_fn(*(to_numpy(v, np.float64) for v in (A, B, C, dt)), L)
    return _like(K, A)


def _kernel_power_ref(A, B, C, dt, L):
    Ab, Bb = _discretize_ref(A, B, dt)
    Kry = Bb[..., None]  # (h, n, 1): columns Ā^ℓ B̄ for ℓ < width
    Pw = Ab  # Ā^width
    while Kry.shape[-1] < L:  # einsum loops, not BLAS: the work stays on the calling thread
        Kry = np.concatenate([Kry, np.einsum("hnk,hkw->hnw", Pw, Kry)], axis=-1)  # (h, n, 2 width)
        Pw = np.einsum("hnk,hkm->hnm", Pw, Pw)
    return np.einsum("hn,hnl->hl", C, Kry[..., :L])  # (h, L)


def _kernel_recurrent_ref(A, B, C, dt, L):
    Ab, Bb = _discretize_ref(A, B, dt)
    K = np.empty((Bb.shape[0], L))
    x = np.zeros_like(Bb)  # (h, n)
    for ell in range(L):
        x = np.einsum("hnk,hk->hn", Ab, x) + (Bb if ell == 0 else 0.0)  # impulse at ℓ = 0
        K[:, ell] = np.einsum("hn,hn->h", C, x)
    return K


def s4_kernel_power(A, B, C, dt, L: int, *, backend="auto"):
    """K̄_ℓ = C Ā^ℓ B̄ by Krylov doubling: [B̄] -> [B̄, ĀB̄] -> [.., Ā²·(B̄, ĀB̄)] -> ...

    Returns K (channels, L).  Must match :func:`s4_kernel_recurrent`.  Backends: ``"ref"``
    (numpy float64), ``"torch"`` (input dtype, half in float32; differentiable), ``"auto"``.
    numpy in -> numpy out of the input dtype; torch in -> torch out (device, dtype).
    """
    return _kernel(_kernel_power_ref, "kernel_power_torch", A, B, C, dt, L, backend)


def s4_kernel_recurrent(A, B, C, dt, L: int, *, backend="auto"):
    """K̄ as the response of x_ℓ = Ā x_{ℓ-1} + B̄ u_ℓ, y_ℓ = C x_ℓ to u = δ_0 (a loop over ℓ).

    Backends and containers as :func:`s4_kernel_power`.
    """
    return _kernel(_kernel_recurrent_ref, "kernel_recurrent_torch", A, B, C, dt, L, backend)


def s4_c_tilde(Lam, P, C, dt, L: int):
    """C̃ = C (I - Ā^L) in the DPLR basis, Ā^L by log2(L) squarings of the dense Ā: O(N³ log L)."""
    Lam, P, C = (np.asarray(x, np.complex128) for x in (Lam, P, C))
    dt = np.asarray(dt, np.float64)
    n = Lam.shape[0]
    A = np.diag(Lam) - np.outer(P, P.conj())  # (n, n): diag(Λ) - P P*
    eye = np.eye(n)
    Ab = np.linalg.solve(eye - 0.5 * dt[:, None, None] * A, eye + 0.5 * dt[:, None, None] * A)  # (h, n, n)
    AL, Pw, e = np.broadcast_to(eye, Ab.shape).astype(np.complex128), Ab, int(L)
    while e:  # binary powering: Ā^L
        if e & 1:
            AL = AL @ Pw
        Pw, e = Pw @ Pw, e >> 1
    return C - np.einsum("hn,hnk->hk", C, AL)  # (h, n)


def _dplr_generating_function(Lam, P, B, Ct, dt, L: int, lowrank_sign: float = 1.0):
    """K̂(z_k) at the L-th roots of unity via Cauchy sums + Woodbury; (channels, L) complex.

    ``lowrank_sign = +1`` is A = diag(Λ) - P P*; -1 flips the low-rank term (wrong on purpose).
    """
    z = np.exp(-2j * np.pi * np.arange(L) / L)  # (L,) roots of unity, FFT convention
    alpha = (2.0 / dt[:, None]) * (1.0 - z)  # (h, L)
    beta = np.broadcast_to(1.0 + z, alpha.shape)  # (h, L)
    # Cauchy kernel: 1 / (α - β Λ_n) for every (channel, root, n)
    r = 1.0 / (alpha[..., None] - beta[..., None] * Lam)  # (h, L, n)
    # the four Cauchy sums k(x, y) = Σ_n r_n x_n y_n at once, numerators [C̃ B̃, C̃ P̃, P̃* B̃, P̃* P̃]
    # (einsum's own loop: O(h L n), no threaded BLAS whose start-up would swamp the count)
    num = np.stack([Ct * B, Ct * P, P.conj() * B, np.broadcast_to(P.conj() * P, B.shape)], axis=-1)  # (h, n, 4)
    k_cb, k_cp, k_pb, k_pp = np.moveaxis(np.einsum("hln,hnk->hlk", r, num), -1, 0)  # 4 x (h, L)
    s = lowrank_sign * beta
    return 2.0 * (k_cb - s * k_cp * k_pb / (1.0 + s * k_pp))  # (h, L)


def s4_kernel_dplr(Lam, P, B, C, dt, L: int, *, c_tilde=None, backend="auto"):
    """K̄ from the generating function at roots of unity + inverse FFT (DPLR, Woodbury).

    ``Lam``, ``P`` (N,) and ``B``, ``C`` (channels, N) are in the DPLR basis (see
    :func:`hippo_dplr`; C in that basis is C V).  ``c_tilde`` (channels, N) skips the
    O(N³ log L) computation of C̃ = C (I - Ā^L), as when C̃ is the trained parameter.
    Returns the real part of the iFFT (the imaginary part is rounding, ~eps max|K̂|), of
    ``dt``'s real dtype and container (``dt`` is the one real input; numpy in -> numpy out,
    torch in -> torch out on its device).  Backends: ``"ref"`` (numpy complex128),
    ``"torch"`` (complex64 for float32/half ``dt``, complex128 for float64; differentiable),
    ``"auto"``.  Must match :func:`s4_kernel_power` and :func:`s4_kernel_recurrent`.
    """
    _check_dplr(Lam, P, B, C, dt, c_tilde)
    L = _check_size("L", L)
    backend = resolve_backend(
        backend, {"Lam": Lam, "P": P, "B": B, "C": C, "dt": dt, "c_tilde": c_tilde}, valid=BACKENDS)
    if backend == "torch":
        import torch

        from ._s4_torch import kernel_dplr_torch

        dtt = upcast(*torch_args(dt))[0]
        ctype = torch.complex128 if dtt.dtype == torch.float64 else torch.complex64
        Lt, Pt, Bt, Ct, Tt = (None if v is None else v.to(ctype)
                              for v in upcast(*torch_args(Lam, P, B, C, c_tilde, device=dtt.device)))
        K = kernel_dplr_torch(Lt, Pt, Bt, Ct, dtt, L, c_tilde=Tt)
    else:
        def c128(v):
            return None if v is None else np.asarray(to_numpy(v), np.complex128)

        dtn = to_numpy(dt, np.float64)
        Ct = s4_c_tilde(c128(Lam), c128(P), c128(C), dtn, L) if c_tilde is None else c128(c_tilde)
        Khat = _dplr_generating_function(c128(Lam), c128(P), c128(B), Ct, dtn, L)
        K = np.fft.ifft(Khat, axis=-1).real  # (h, L)
    return _like(K, dt)


# ---------------------------------------------------------------------------------------
# the layer: recurrent mode and convolution mode
# ---------------------------------------------------------------------------------------
def s4_recurrence(u, A, B, C, dt, D=None, *, initial_state=None, return_final_state=False, backend="auto"):
    """Recurrent mode: x_t = Ā x_{t-1} + B̄ u_t, y_t = C x_t + D u_t (bilinear Ā, B̄).

    u (batch, length, channels) -> y (batch, length, channels); state (batch, channels, N).
    A, B, C, dt (one dtype among them, e.g. :func:`hippo_legs`' float64) may differ in dtype
    from u, and may be numpy when u is a tensor (not the reverse); D and initial_state are
    converted too.  Backends: ``"ref"`` (float64 loop),
    ``"torch"`` (the same loop in torch in u's dtype, half in float32; Ā, B̄ formed in
    float64 and cast; differentiable in every argument), ``"auto"`` (any tensor -> torch).
    Output in u's container, dtype and device.
    """
    kind = _check_u(u)
    for name, v in (("A", A), ("B", B), ("C", C), ("dt", dt), ("D", D), ("initial_state", initial_state)):
        if v is not None:
            if V_.check_arrays({name: v}) == "torch" and kind == "numpy":  # float dtype, not on 'meta'
                raise TypeError(f"{name} is a torch.Tensor but u is a numpy array (the output follows u); "
                                "pass u as a tensor too")
            if is_tensor(v) and v.device != u.device:
                raise ValueError(f"{name} must be on u's device {u.device}; got {v.device}")
    _check_ssm(*(to_numpy(v) for v in (A, B, C, dt)))
    h, n = int(B.shape[0]), int(B.shape[1])
    _check_u(u, h)
    for name, v, shape in (("D", D, (h,)), ("initial_state", initial_state, (int(u.shape[0]), h, n))):
        if v is not None:
            V_.check_shape(name, v, shape, {"u": u.shape, "B": B.shape, name: v.shape})
            V_.check_finite(name, v)
    backend = resolve_backend(
        backend, {"u": u, "A": A, "B": B, "C": C, "dt": dt, "D": D, "initial_state": initial_state}, valid=BACKENDS)
    if backend == "torch":
        import torch

        from ._s4_torch import discretize_bilinear_torch, recurrence_torch

        ut = upcast(*torch_args(u))[0]
        At, Bt, Ct, dtt, Dt, x = torch_args(A, B, C, dt, D, initial_state, device=ut.device)
        Ab, Bb = discretize_bilinear_torch(*(v.to(torch.float64) for v in (At, Bt, dtt)))
        Ab, Bb, Ct, Dt, x = (None if v is None else v.to(ut.dtype) for v in (Ab, Bb, Ct, Dt, x))
        x = ut.new_zeros(ut.shape[0], h, n) if x is None else x
        y, x = recurrence_torch(ut, Ab, Bb, Ct, Dt, x)
    else:
        Ab, Bb = _discretize_ref(to_numpy(A), to_numpy(B), to_numpy(dt))
        uu = to_numpy(u, np.float64)
        Cn = to_numpy(C, np.float64)
        x = np.zeros((uu.shape[0], h, n)) if initial_state is None else to_numpy(initial_state, np.float64)
        y = np.empty(uu.shape)
        for t in range(uu.shape[1]):
            x = np.einsum("hnk,bhk->bhn", Ab, x) + Bb * uu[:, t, :, None]  # (b, h, n)
            y[:, t] = np.einsum("hn,bhn->bh", Cn, x)
        if D is not None:
            y = y + to_numpy(D, np.float64) * uu
    y, x = _like(y, u), _like(x, u)
    return (y, x) if return_final_state else y


def s4_convolve(u, K, D=None, *, backend="auto"):
    """Convolution mode: y_t = Σ_{ℓ=0..t} K̄_ℓ u_{t-ℓ} + D u_t, by FFT of length 2L.

    Zero-padding to 2L makes the FFT's circular convolution equal the causal (linear) one:
    the wrapped terms u_{t-ℓ+2L} have t - ℓ + 2L >= L, where the padded u is 0.
    u (batch, length, channels), K (channels, length) -> y (batch, length, channels); u, K
    and D share one container and dtype (the s4_kernel_* functions return K in their
    inputs' dtype).  Backends: ``"ref"`` (numpy float64 FFT), ``"torch"`` (torch.fft in the
    input dtype, half in float32; differentiable), ``"auto"``.
    """
    kind = _check_u(u)
    if V_.check_arrays({"u": u, "K": K, "D": D}, allow_none=("D",)) != kind:
        raise TypeError("u and K must be the same container kind")
    V_.check_ndim("K", K, 2, "(channels, length)")
    b, L, h = (int(s) for s in u.shape)
    shapes = {"u": u.shape, "K": K.shape}
    V_.check_shape("K", K, (h, L), shapes)
    V_.check_finite("K", K)
    if D is not None:
        V_.check_shape("D", D, (h,), {**shapes, "D": D.shape})
        V_.check_finite("D", D)
    backend = resolve_backend(backend, {"u": u, "K": K, "D": D}, valid=BACKENDS)
    if backend == "torch":
        from ._s4_torch import convolve_torch

        y = convolve_torch(*upcast(*torch_args(u, K, D)))
    else:
        uu, KK = to_numpy(u, np.float64), to_numpy(K, np.float64)
        Uf = np.fft.rfft(uu, n=2 * L, axis=1)  # (b, L+1, h)
        Kf = np.fft.rfft(KK.T, n=2 * L, axis=0)  # (L+1, h)
        y = np.fft.irfft(Uf * Kf, n=2 * L, axis=1)[:, :L]  # (b, L, h)
        if D is not None:
            y = y + to_numpy(D, np.float64) * uu
    return _like(y, u)


# ---------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------
def make_s4_inputs(rng: np.random.Generator, *, batch=1, length=16, channels=2, state=8, dtype=np.float64) -> dict:
    """A valid random S4 layer: HiPPO-LegS A, P, B (B shared by channels), C ~ N(0, 1/N),
    Δ log-uniform in [1e-3, 1e-1] (S4's initialization range), D ~ N(0, 1), u ~ N(0, 1)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    named = (("batch", batch), ("length", length), ("channels", channels), ("state", state))
    b, L, h, n = (_check_size(k, v) for k, v in named)  # integers >= 1 (2.7 is refused, not truncated)
    A, P, B = hippo_legs(n)
    out = {
        "A": A,
        "P": P,
        "B": np.broadcast_to(B, (h, n)).copy(),
        "C": rng.standard_normal((h, n)) / np.sqrt(n),
        "dt": np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), size=h)),
        "D": rng.standard_normal(h),
        "u": rng.standard_normal((b, L, h)),
    }
    return {k: v.astype(dtype) for k, v in out.items()}
