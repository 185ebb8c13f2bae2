"""A vectorizable exponential for numba kernels (shared by the SSM theme's kernels).

numba here has no vector math library: ``math.exp`` in a loop is a scalar call that blocks
vectorization.  ``vexp`` is an exponential made only of multiplies, fused multiply-adds,
an integer shift and bit reinterpretations (no call, no branch), so LLVM vectorizes the
loops that call it (the selective scan's inner loop, :mod:`theorylab.ssm._selective_numba`).
Imported lazily (compiles on first call, cached on disk).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from .._numba_cache import ensure_cache_dir

ensure_cache_dir(__file__)  # before the decorators: a read-only install still caches
from numba.extending import overload

__all__ = ["vexp", "vexp_array"]

# ---------------------------------------------------------------------------------------
# a vectorizable exp
# ---------------------------------------------------------------------------------------
# exp(x) = 2^k · exp(r),  k = round(x / ln 2),  r = x - k ln 2,  |r| <= ln(2)/2 ≈ 0.3466.
#
# Rounding and 2^k without a round instruction or an int conversion ("shifter" trick):
# with S = 1.5 · 2^m + bias (m = 23, bias = 127 for float32; m = 52, bias = 1023 for
# float64), t = x · log2(e) + S lies in [2^m, 2^(m+1)), where the float spacing is 1, so
# t = S + k exactly with k = round(x · log2 e), and the low mantissa bits of t hold
# k + bias + 2^(m-1).  Shifting the bits of t left by m drops 2^(m-1) and the exponent
# field off the top and leaves (k + bias) · 2^m: the bits of the float 2^k.  k itself is
# t - S (exact).  Needs 1 <= k + bias, i.e. x >= ln(smallest normal), see "Range".
#
# Cody-Waite: ln 2 = LN2_HI + LN2_LO where LN2_HI has few significant bits, so k·LN2_HI is
# exact for every k that occurs and x - k·LN2_HI is exact (x and k·LN2_HI are close);
# only the tiny k·LN2_LO term is rounded.
#   float32: LN2_HI = 355/512 = 0.693359375 (9 significant bits; k·LN2_HI exact for |k| < 2^15),
#            LN2_LO = ln 2 - 355/512 = -2.12194440054690583e-4.
#   float64: LN2_HI = ln 2 rounded to 21 significant bits (the low 32 mantissa bits of the
#            float64 ln 2 cleared: 0x3FE62E42FEE00000), LN2_LO = ln 2 - LN2_HI.
#
# exp(r) by a polynomial p(r) with p(0) = 1, evaluated by Horner:
#   float32: degree 6, coefficients fitted to minimize max |p(r) e^-r - 1| on |r| <= ln(2)/2
#            (Lawson-reweighted least squares on 4000 Chebyshev nodes, float64, then
#            rounded to float32): truncation error 2.0e-9, far below eps32/2 = 6.0e-8;
#   float64: degree 13 Taylor polynomial Σ r^j / j!: truncation error
#            <= 0.3466^14 / 14! · e^0.3466 ≈ 6e-18, below eps64/2 = 1.1e-16.
# The result is within a few ulp of exp(x) (Horner's roundings dominate).
#
# Range: the arguments of the scan are Δ·A <= 0.  Below ln(smallest normal) (float32:
# -87.3365, float64: -708.396) the result is flushed to 0 (the true value is < 1.2e-38,
# resp. 2.3e-308, and would be subnormal) by a final select on x >= ln(smallest normal).
# The lanes it discards may hold garbage (x = -inf gives r = NaN; for k + bias <= 0 the
# shifted bits have a zero mantissa, so the scale is ±0, ±2^e or ±inf, never a subnormal
# that would take a slow path), so no clamp is needed.
# For x >= 0 the same formula holds up to ln(largest float); the scan never needs it.

# fused multiply-adds allowed (they only remove roundings); no reassociation, which
# would undo the shifter trick and the Cody-Waite split.
_CONTRACT = {"contract"}

_F32_LOG2E = np.float32(1.4426950408889634)
_F32_SHIFTER = np.float32(1.5 * 2**23 + 127)
_F32_LN2_HI = np.float32(0.693359375)
_F32_LN2_LO = np.float32(-2.12194440054690583e-4)
_F32_MIN_ARG = np.float32(-87.33654)  # ln(2^-126), rounded up so 2^k stays normal
_F32_ZERO = np.float32(0.0)
_F32_C6 = np.float32(0.0013843653429649017)
_F32_C5 = np.float32(0.008374155331994992)
_F32_C4 = np.float32(0.04166800203838262)
_F32_C3 = np.float32(0.16666431262304787)
_F32_C2 = np.float32(0.4999999420902709)
_F32_C1 = np.float32(1.0000000321651517)
_F32_C0 = np.float32(1.0)

_F64_LOG2E = 1.4426950408889634
_F64_SHIFTER = 1.5 * 2.0**52 + 1023.0
_F64_LN2_HI = 6.93147180369123816490e-01  # 0x3FE62E42FEE00000
_F64_LN2_LO = 1.90821492927058770002e-10  # ln 2 - LN2_HI
_F64_MIN_ARG = -708.3964185322641  # ln(2^-1022)
# 1/j! for j = 13 .. 0
_F64_C13, _F64_C12, _F64_C11, _F64_C10, _F64_C9, _F64_C8, _F64_C7 = (1.0 / math.factorial(j) for j in range(13, 6, -1))
_F64_C6, _F64_C5, _F64_C4, _F64_C3, _F64_C2, _F64_C1, _F64_C0 = (1.0 / math.factorial(j) for j in range(6, -1, -1))


def _exp_f32(x):
    """float32 exp(x) for x <= 0 (see the block comment above); 0 below -87.3365."""
    t = x * _F32_LOG2E + _F32_SHIFTER  # S + k, k = round(x / ln 2)
    k = t - _F32_SHIFTER
    r = (x - k * _F32_LN2_HI) - k * _F32_LN2_LO  # |r| <= ln(2)/2
    p = _F32_C6
    p = p * r + _F32_C5
    p = p * r + _F32_C4
    p = p * r + _F32_C3
    p = p * r + _F32_C2
    p = p * r + _F32_C1
    p = p * r + _F32_C0
    scale = np.int32(np.float32(t).view(np.int32) << 23).view(np.float32)  # 2^k
    return p * scale if x >= _F32_MIN_ARG else _F32_ZERO


def _exp_f64(x):
    """float64 exp(x) for x <= 0 (see the block comment above); 0 below -708.396."""
    t = x * _F64_LOG2E + _F64_SHIFTER
    k = t - _F64_SHIFTER
    r = (x - k * _F64_LN2_HI) - k * _F64_LN2_LO
    p = _F64_C13
    p = p * r + _F64_C12
    p = p * r + _F64_C11
    p = p * r + _F64_C10
    p = p * r + _F64_C9
    p = p * r + _F64_C8
    p = p * r + _F64_C7
    p = p * r + _F64_C6
    p = p * r + _F64_C5
    p = p * r + _F64_C4
    p = p * r + _F64_C3
    p = p * r + _F64_C2
    p = p * r + _F64_C1
    p = p * r + _F64_C0
    scale = np.int64(np.float64(t).view(np.int64) << 52).view(np.float64)  # 2^k
    return p * scale if x >= _F64_MIN_ARG else 0.0


def vexp(x):
    """exp of a float32 or float64 scalar, in its own dtype, made of vectorizable operations.

    Callable from numba code (dispatches on the argument's type); from Python it is
    ``np.exp``.  Accurate to a few ulp for ln(smallest normal) <= x <= 0; returns 0 below.
    """
    return np.exp(x)


@overload(vexp, jit_options={"cache": True, "fastmath": _CONTRACT})
def _vexp_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return _exp_f32
    if isinstance(x, types.Float) and x.bitwidth == 64:
        return _exp_f64
    return None


@njit(cache=True, fastmath=_CONTRACT)
def _vexp_array_kernel(x, out):  # pragma: no cover - compiled
    for i in range(x.size):
        out[i] = vexp(x[i])


def vexp_array(x):
    """Elementwise :func:`vexp` of a float32 or float64 numpy array (for tests and benchmarks)."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"x must be float32 or float64; got dtype {x.dtype}")
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    _vexp_array_kernel(flat, out)
    return out.reshape(x.shape)
