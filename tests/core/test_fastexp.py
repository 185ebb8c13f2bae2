"""theorylab._fastexp: the vectorizable float64 exp against a long-double reference, its edges.

The sides are named ``out`` (a numba loop over :func:`theorylab._fastexp.exp`) and ``ref``
(``np.exp`` in long double where that is wider than float64, else float64 ``np.exp``).
Errors are in units of the last place of the float64 result: ``|out − ref| / spacing(ref)``.
Measured: <= 0.88 ulp with fused multiply-adds (x86-64 with FMA), <= 1.15 ulp without, over
[−745, 709.78] (subnormal results included, in units of the smallest subnormal); the tests
allow 2.
"""

import warnings
from decimal import Decimal, getcontext
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

pytest.importorskip("numba", reason="numba backend not installed")

from numba import njit  # noqa: E402

from theorylab import _fastexp as F  # noqa: E402

MAX_ULP = 2.0
WIDE = np.finfo(np.longdouble).nmant >= 60  # x86 80-bit long double: a reference to ~1e-19


@njit
def _exp_loop(x, out):
    for i in range(x.size):
        out[i] = F.exp(x[i])


@njit
def _pow2_loop(k, out):
    for i in range(k.size):
        out[i] = F.pow2(k[i])


@njit
def _muladd(a, b, c):
    return F.muladd(a, b, c)


def fast_exp(x) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float64).ravel()
    out = np.empty_like(x)
    _exp_loop(x, out)
    return out


def ulp_error(x) -> np.ndarray:
    """|out − ref| in ulps of the float64 reference (the smallest subnormal where ref rounds to 0)."""
    x = np.asarray(x, np.float64).ravel()
    out = fast_exp(x)
    with np.errstate(over="ignore", under="ignore"):
        ref = np.exp(x.astype(np.longdouble)) if WIDE else np.exp(x).astype(np.longdouble)
        unit = np.spacing(np.abs(ref.astype(np.float64)))
    unit = np.where(unit == 0, np.nextafter(0.0, 1.0), unit)
    both_inf = np.isinf(out) & np.isinf(ref.astype(np.float64))
    err = np.abs(out.astype(np.longdouble) - ref) / unit.astype(np.longdouble)
    return np.where(both_inf, 0.0, err).astype(np.float64)


def bound() -> float:
    return MAX_ULP if WIDE else MAX_ULP + 0.5  # float64 np.exp is itself up to ~0.5 ulp off


AWKWARD = [0.0, -0.0, -5e-324, -1e-300, -1e-17, -2.0**-53, -0.34657359027997264, 0.34657359027997264,
           -1.0, -20.0, -708.0, -708.3964185322641, -708.4, -744.44, -745.0, -745.1332191019411, -745.2,
           709.0, 709.782712893384]


@given(x=st.floats(min_value=-1e6, max_value=709.78, allow_nan=False))
@example(x=0.0)
@example(x=-5e-324)
@example(x=-1e-300)
@example(x=-745.0)
@example(x=-745.2)
@example(x=-1e6)
@example(x=-708.0)
def test_exp_within_two_ulp(x):
    assert ulp_error([x])[0] <= bound(), (x, fast_exp([x])[0], np.exp(x))


@pytest.mark.parametrize("lo, hi", [(-0.35, 0.35), (-40.0, 0.0), (-708.4, -40.0), (-745.2, -708.4), (0.0, 709.78)])
def test_exp_within_two_ulp_on_dense_grids(lo, hi):
    """100k points per range, the ranges of the heads' shifted logits (x <= 0) first."""
    x = np.concatenate([np.linspace(lo, hi, 100_003), AWKWARD])
    x = x[(x >= lo) & (x <= hi)]
    err = ulp_error(x)
    assert err.max() <= bound(), (x[err.argmax()], err.max())


def test_exp_edges_are_exact():
    x = np.array([0.0, -0.0, -5e-324, -746.0, -1e6, -1e308, -np.inf, 710.0, 1e6, np.inf, np.nan])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no floating-point warning from the compiled side
        out = fast_exp(x)
    np.testing.assert_array_equal(out[:3], [1.0, 1.0, 1.0])  # exp(0) = 1 exactly, exp(-tiny) rounds to 1
    np.testing.assert_array_equal(out[3:7], 0.0)  # below exp's underflow: 0, never NaN
    assert np.all(np.isposinf(out[7:10]))
    assert np.isnan(out[10])
    assert fast_exp([-2.0**-53])[0] in (1.0, np.nextafter(1.0, 0.0))


def test_exp_is_monotone_near_the_reduction_boundaries():
    """Across the points where k = round(x / ln 2) changes, no step goes down."""
    k = np.arange(-1070, 1020, 7)
    x = np.concatenate([np.linspace(c - 1e-9, c + 1e-9, 41) for c in (k + 0.5) * np.log(2.0)])
    x = x[(x > -745.0) & (x < 709.7)]
    assert np.all(np.diff(fast_exp(x)) >= 0)


def test_pow2_is_exact_over_the_normal_exponents():
    k = np.arange(-1022, 1024, dtype=np.float64)
    out = np.empty_like(k)
    _pow2_loop(k, out)
    np.testing.assert_array_equal(out, np.ldexp(1.0, k.astype(np.int64)))


def test_ln2_split_is_exact_for_every_reduction_step():
    """k·LN2_HI has no rounding for |k| <= 1100 and LN2_HI + LN2_LO = ln 2 to ~1e-27."""
    hi = Fraction(F.LN2_HI)
    for k in (1, 3, 537, 1023, 1076, 1100, -1100):
        assert Fraction(F.LN2_HI * k) == hi * k
    getcontext().prec = 50
    assert abs(Decimal(F.LN2_HI) + Decimal(F.LN2_LO) - Decimal(2).ln()) < Decimal("1e-26")


@given(a=st.floats(-1e3, 1e3), b=st.floats(-1e3, 1e3), c=st.floats(-1e6, 1e6))
@example(a=1.0 + 2.0**-30, b=1.0 - 2.0**-30, c=-1.0)
def test_muladd_rounds_once_or_twice(a, b, c):
    """a b + c with one rounding (fused) or two (product, then sum): within 1 ulp of the exact value
    plus 0.5 ulp of the product."""
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    out = _muladd(a, b, c)
    slack = np.spacing(abs(float(exact))) + 0.5 * np.spacing(abs(a * b))
    assert abs(Fraction(out) - exact) <= Fraction(slack)
