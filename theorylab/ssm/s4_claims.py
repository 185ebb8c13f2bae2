"""S4 claims (#44): checks, negative controls, sympy proof, registration.

Math and conventions: :mod:`theorylab.ssm.s4`.

* ``ssm.s4-hippo-nplr``: A + P Pᵀ = -1/2 I + skew-symmetric for HiPPO-LegS (random N);
  control P_n = sqrt(n+1); proof: sympy, entry formulas for symbolic n > k and n = k, and
  the whole matrix with exact radicals for N = 6.
* ``ssm.s4-kernel-three-ways``: K̄ by powering = by DPLR (Cauchy + Woodbury + iFFT) = by the
  impulse response of the recurrence; control: the low-rank term of A with the wrong sign
  in the Woodbury correction; proof: sympy, the three algebraic steps of the DPLR path.
* ``ssm.s4-convolution-is-recurrence``: causal FFT convolution with K̄ = the recurrence on
  random inputs; control: FFT of length L (circular convolution, no zero padding).
* ``ssm.s4-kernel-cost``: kernel CPU time vs L has log-log slope 1 for the DPLR path
  (given C̃) and for the recurrence; control: the generating function inverted with an
  explicit L x L DFT matrix (O(L²)), which the same band rejects.

Tolerances: float64, 1e-10.  Measured kernel errors stay below 1e-13 up to N = 256,
L = 4096 (the DPLR basis V is unitary and Re Λ = -1/2 keeps every Cauchy denominator
α - βΛ_n away from 0), so the policy rtol needs no loosening.
"""

from __future__ import annotations

import time

import numpy as np

from ..benchmarking import timeit
from ..checks import identity_verdict, slope_verdict
from ..claims import Claim, Paper, Proof, Verdict, register
from .s4 import (
    _dplr_generating_function,
    hippo_dplr,
    hippo_legs,
    make_s4_inputs,
    s4_c_tilde,
    s4_convolve,
    s4_kernel_dplr,
    s4_kernel_power,
    s4_kernel_recurrent,
    s4_recurrence,
)

PAPER = Paper("Efficiently Modeling Long Sequences with Structured State Spaces", 2021, "2111.00396", index=44)
MODULE, TEST = "theorylab/ssm/s4.py", "tests/ssm/test_s4.py"

_SIZES = {"quick": dict(state=24, length=200, channels=3, batch=2),
          "full": dict(state=64, length=2048, channels=4, batch=3)}


def _draw(rng, size):
    return {k: int(rng.integers(1, v + 1)) for k, v in _SIZES[size].items()}


# ---- HiPPO-LegS: normal plus low-rank ---------------------------------------------------
def nplr_residual(A, P) -> float:
    """max |sym(A + P Pᵀ) + 1/2 I| / max |A|: zero iff A + P Pᵀ = -1/2 I + skew-symmetric."""
    M = A + np.outer(P, P)
    sym = 0.5 * (M + M.T) + 0.5 * np.eye(A.shape[0])
    return float(np.abs(sym).max() / np.abs(A).max())


def _hippo_verdict(rng, size, wrong_p):
    N = int(rng.integers(1, {"quick": 128, "full": 1024}[size] + 1))
    A, P, _ = hippo_legs(N)
    if wrong_p:
        P = np.sqrt(np.arange(N) + 1.0)  # WRONG on purpose: sqrt(n+1) instead of sqrt(n+1/2)
    err = nplr_residual(A, P)
    return Verdict.from_error(err, 1e-10, sizes={"N": N}, detail=f"max|sym(A+PPᵀ)+I/2| / max|A| = {err:.3e}")


def hippo_check(rng, size="quick"):
    return _hippo_verdict(rng, size, False)


def hippo_control(rng, size="quick"):
    return _hippo_verdict(rng, size, True)


def hippo_proof() -> Proof:
    """Exact: entry formulas for symbolic n > k, n = k; the full matrix for N = 6."""
    import sympy as sp

    n, k = sp.symbols("n k", integer=True, nonnegative=True)
    pn, pk = sp.sqrt(n + sp.Rational(1, 2)), sp.sqrt(k + sp.Rational(1, 2))
    below = -sp.sqrt(2 * n + 1) * sp.sqrt(2 * k + 1) + pn * pk  # (A + PPᵀ)[n, k], n > k
    above = pk * pn  # (A + PPᵀ)[k, n]: A is 0 above the diagonal
    diag = -(n + 1) + pn**2
    ok = sp.simplify(sp.radsimp(below + above)) == 0 and sp.simplify(diag + sp.Rational(1, 2)) == 0
    N = 6
    A = sp.Matrix(N, N, lambda i, j: -sp.sqrt(2 * i + 1) * sp.sqrt(2 * j + 1) if i > j else (-(i + 1) if i == j else 0))
    P = sp.Matrix(N, 1, lambda i, j: sp.sqrt(i + sp.Rational(1, 2)))
    M = A + P * P.T
    ok = ok and sp.simplify(M + M.T + sp.eye(N)) == sp.zeros(N, N)
    return Proof(bool(ok), "sympy: (A+PPᵀ)[n,k] + (A+PPᵀ)[k,n] = 0 (n > k), diagonal = -1/2, symbolic n, k; "
                 f"exact {N}x{N} matrix", scope="general n, k (retyped formula)")


# ---- the kernel three ways ----------------------------------------------------------------
def _kernels(p, lowrank_sign=1.0):
    h, n = p["B"].shape
    L = p["u"].shape[1]
    Lam, Pt, Bt, V = hippo_dplr(n)
    Bd = np.broadcast_to(Bt, (h, n)).copy()
    Cd = p["C"] @ V  # C in the DPLR basis
    if lowrank_sign == 1.0:
        Kd = s4_kernel_dplr(Lam, Pt, Bd, Cd, p["dt"], L)
    else:
        Ct = s4_c_tilde(Lam, Pt, Cd, p["dt"], L)
        Kd = np.fft.ifft(_dplr_generating_function(Lam, Pt, Bd, Ct, p["dt"], L, lowrank_sign), axis=-1).real
    Kp = s4_kernel_power(p["A"], p["B"], p["C"], p["dt"], L)
    Kr = s4_kernel_recurrent(p["A"], p["B"], p["C"], p["dt"], L)
    return Kp, Kd, Kr


def _kernel_verdict(rng, size, lowrank_sign):
    sizes = _draw(rng, size)
    p = make_s4_inputs(rng, **sizes)
    Kp, Kd, Kr = _kernels(p, lowrank_sign)
    v1 = identity_verdict(Kp, Kr, dtype=np.float64, sizes=sizes, what="power vs recurrent")
    v2 = identity_verdict(Kd, Kr, dtype=np.float64, sizes=sizes, what="DPLR vs recurrent")
    return max((v1, v2), key=lambda v: v.error)


def kernel_check(rng, size="quick"):
    return _kernel_verdict(rng, size, 1.0)


def kernel_control(rng, size="quick"):
    return _kernel_verdict(rng, size, -1.0)


def kernel_proof_residuals(N: int = 2, L: int = 4, *, lowrank_sign: int = 1) -> list:
    """The three algebraic steps of the DPLR kernel, as symbolic residuals (all 0 when proved).

    (1) (I - Δ/2 A) - (I + Δ/2 A) z = Δ/2 (α I - β A), so (I - Āz)^{-1} B̄ = 2 (αI - βA)^{-1} B;
    (2) Woodbury: (αI - βA) [D^{-1} - β D^{-1} P Pᵀ D^{-1} / (1 + β Pᵀ D^{-1} P)] = I for
        A = diag(Λ) - P Pᵀ, D = diag(α - βΛ) (``lowrank_sign=-1`` flips the correction: nonzero);
    (3) (Σ_{ℓ<L} X^ℓ z^ℓ)(I - X z) = I - X^L z^L for a generic 2 x 2 X (the generating function).
    """
    import sympy as sp

    z, d = sp.symbols("z Delta")
    lam = sp.symbols(f"lambda0:{N}")
    P = sp.Matrix(sp.symbols(f"p0:{N}"))
    A, eye = sp.diag(*lam) - P * P.T, sp.eye(N)
    alpha, beta = 2 / d * (1 - z), 1 + z
    r1 = sp.expand((eye - d / 2 * A) - (eye + d / 2 * A) * z - d / 2 * (alpha * eye - beta * A))
    Dinv = sp.diag(*[1 / (alpha - beta * x) for x in lam])
    sb = lowrank_sign * beta
    W = Dinv - sb * Dinv * P * P.T * Dinv / (1 + sb * (P.T * Dinv * P)[0])
    r2 = ((alpha * eye - beta * A) * W - eye).applyfunc(lambda e: sp.cancel(sp.together(e)))
    X = sp.Matrix(2, 2, sp.symbols("x0:4"))
    S = sp.zeros(2, 2)
    for ell in range(L):
        S += X**ell * z**ell
    r3 = sp.expand(S * (sp.eye(2) - X * z) - (sp.eye(2) - X**L * z**L))
    return [r1, r2, r3]


def kernel_proof() -> Proof:
    import sympy as sp

    ok = all(r == sp.zeros(*r.shape) for r in kernel_proof_residuals())
    return Proof(bool(ok), "sympy: bilinear resolvent rewrite, Woodbury for diag(Λ) - PPᵀ (N=2), "
                 "truncated generating function (L=4), all symbolic", scope="N=2, L=4; retyped formula, no iFFT step")


# ---- convolution mode = recurrent mode ----------------------------------------------------
def _circular_convolve(u, K, D):
    """WRONG on purpose: FFT of length L (circular): terms u_{t-ℓ+L} wrap around."""
    L = u.shape[1]
    y = np.fft.irfft(np.fft.rfft(u, n=L, axis=1) * np.fft.rfft(K.T, n=L, axis=0), n=L, axis=1)
    return y + D * u


def _conv_verdict(rng, size, circular):
    sizes = _draw(rng, size)
    sizes["length"] = max(sizes["length"], 2)  # at L = 1 circular and linear coincide
    p = make_s4_inputs(rng, **sizes)
    K = s4_kernel_recurrent(p["A"], p["B"], p["C"], p["dt"], sizes["length"])
    y_conv = _circular_convolve(p["u"], K, p["D"]) if circular else s4_convolve(p["u"], K, p["D"], backend="ref")
    y_rec = s4_recurrence(p["u"], p["A"], p["B"], p["C"], p["dt"], p["D"], backend="ref")
    return identity_verdict(y_conv, y_rec, dtype=np.float64, sizes=sizes, what="FFT convolution vs recurrence")


def conv_check(rng, size="quick"):
    return _conv_verdict(rng, size, False)


def conv_control(rng, size="quick"):
    return _conv_verdict(rng, size, True)


# ---- cost vs length -----------------------------------------------------------------------
_COST = {"quick": dict(state=16, channels=4, lengths=(1024, 2048, 4096, 8192), rec_lengths=(256, 512, 1024, 2048),
                      naive=(128, 256, 512, 1024), repeat=3),
         "full": dict(state=32, channels=8, lengths=(1024, 2048, 4096, 8192, 16384), rec_lengths=(1024, 2048, 4096, 8192),
                      naive=(256, 512, 1024, 2048), repeat=5)}
COST_BAND = 0.35  # slope band: fixed per-call overheads and the L log L FFT bend a pure 1.0


def min_time(fn, repeat: int, min_seconds: float = 5e-3) -> float:
    """Per-call CPU time of ``fn()`` on the calling thread, minimum over ``repeat`` runs.

    Thread CPU time, not wall time: on a shared machine, other processes' load does not
    count against the call, and neither do idle BLAS worker threads spinning after a
    LAPACK call.  The timed kernels do their work on this thread (einsum loops, FFT).
    """
    return timeit(fn, repeat=repeat, min_seconds=min_seconds, clock=time.thread_time, reduce=min)


def _naive_dft_kernel(Lam, P, B, Ct, dt, L):
    """O(L²): the generating function inverted with an explicit L x L inverse-DFT matrix."""
    Khat = _dplr_generating_function(Lam, P, B, Ct, dt, L)
    idx = np.arange(L)
    W = np.exp(2j * np.pi * np.outer(idx, idx) / L) / L  # (L, L) inverse DFT
    return np.einsum("hk,lk->hl", Khat, W).real  # O(h L²), einsum loop (no threaded BLAS)


def kernel_times(method: str, lengths, *, state: int, channels: int, repeat: int, seed: int = 0) -> list:
    """CPU time of one kernel method at each length (min over ``repeat``)."""
    p = make_s4_inputs(np.random.default_rng(seed), channels=channels, state=state, length=1)
    Lam, Pt, Bt, V = hippo_dplr(state)
    Bd = np.broadcast_to(Bt, (channels, state)).copy()
    Cd = p["C"] @ V
    out = []
    for L in lengths:
        if method in ("dplr", "naive-dft"):
            Ct = s4_c_tilde(Lam, Pt, Cd, p["dt"], L)  # the trained parameter in S4: not timed
            if method == "dplr":
                fn = lambda: s4_kernel_dplr(Lam, Pt, Bd, Cd, p["dt"], L, c_tilde=Ct)  # noqa: E731
            else:
                fn = lambda: _naive_dft_kernel(Lam, Pt, Bd, Ct, p["dt"], L)  # noqa: E731
        elif method == "recurrent":
            fn = lambda: s4_kernel_recurrent(p["A"], p["B"], p["C"], p["dt"], L)  # noqa: E731
        elif method == "power":
            fn = lambda: s4_kernel_power(p["A"], p["B"], p["C"], p["dt"], L)  # noqa: E731
        else:
            raise ValueError(f"unknown method {method!r}")
        out.append(min_time(fn, repeat))
    return out


def _cost_verdict(rng, size, control):
    c = _COST[size]
    kw = dict(state=c["state"], channels=c["channels"], repeat=c["repeat"])
    if control:
        t = kernel_times("naive-dft", c["naive"], **kw)
        return slope_verdict(c["naive"], t, expected=1.0, band=COST_BAND, what="explicit-DFT kernel vs L (O(L²))")
    verdicts = [slope_verdict(c[key], kernel_times(m, c[key], **kw), expected=1.0, band=COST_BAND,
                              what=f"{m} kernel vs L")
                for m, key in (("dplr", "lengths"), ("recurrent", "rec_lengths"))]
    return max(verdicts, key=lambda v: v.error)


def cost_check(rng, size="quick"):
    return _cost_verdict(rng, size, False)


def cost_control(rng, size="quick"):
    return _cost_verdict(rng, size, True)


# ---- registration -------------------------------------------------------------------------
register(Claim(
    id="ssm.s4-hippo-nplr", paper=PAPER, kind="identity",
    statement="HiPPO-LegS (A[n,k] = -sqrt(2n+1)sqrt(2k+1) for n>k, -(n+1) on the diagonal, 0 above) is normal plus "
    "low-rank: A + P Pᵀ = -1/2 I + S with S skew-symmetric and P_n = sqrt(n+1/2).",
    check=hippo_check, negative_control=hippo_control, proof=hippo_proof, experiment="ssm_s4_kernel",
    module=MODULE, test=TEST, samples=3, controls="P_n = sqrt(n+1) instead of sqrt(n+1/2)"))

register(Claim(
    id="ssm.s4-kernel-three-ways", paper=PAPER, kind="identity",
    statement="The bilinear-discretized SSM kernel K_l = C Ab^l Bb (l < L) computed by powering, by the Cauchy kernel "
    "with the Woodbury correction of the DPLR form at the roots of unity followed by an inverse FFT, and by running "
    "the recurrence on an impulse agree (float64).",
    check=kernel_check, negative_control=kernel_control, proof=kernel_proof, experiment="ssm_s4_kernel",
    module=MODULE, test=TEST, samples=3, controls="low-rank term of A with the wrong sign in the Woodbury correction"))

register(Claim(
    id="ssm.s4-convolution-is-recurrence", paper=PAPER, kind="identity",
    statement="Convolution mode y = K * u (FFT of length 2L) equals recurrent mode x_t = Ab x_{t-1} + Bb u_t, "
    "y_t = C x_t + D u_t on random inputs.",
    check=conv_check, negative_control=conv_control, experiment="ssm_s4_kernel",
    module=MODULE, test=TEST, samples=3, controls="FFT of length L: circular instead of causal convolution"))

register(Claim(
    id="ssm.s4-kernel-cost", paper=PAPER, kind="complexity",
    statement="The S4 kernel costs O(L) in the length: the DPLR path (Cauchy sums O(NL) + FFT O(L log L), given C~) "
    "and the recurrence (O(N^2 L)) fit log-log slope 1 +- 0.35 in CPU time.",
    check=cost_check, negative_control=cost_control, experiment="ssm_s4_kernel",
    module=MODULE, test=TEST, samples=1, controls="generating function inverted by an explicit L x L DFT (O(L^2))"))
