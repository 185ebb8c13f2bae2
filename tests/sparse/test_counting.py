"""Counting claims: the library's counters against enumeration, their near misses, the
general sympy proofs, fitted nnz exponents, their derived band and near-miss controls."""

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from theorylab import sparse
from theorylab.checks import fit_loglog_slope
from theorylab.claims import get, run_claim
from theorylab.sparse import patterns_claims as C
from theorylab.sparse import patterns_exponent_claims as E

FAMILIES = sorted(E.EXPONENTS)


@pytest.mark.parametrize("family", FAMILIES)
@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=6)
def test_exponent_claim_holds_and_control_fails(family, seed):
    claim = get(f"sparse.nnz-exponent-{family}")
    ok = claim.check(np.random.default_rng(seed), "quick")
    bad = claim.negative_control(np.random.default_rng(seed), "quick")
    assert ok.holds, ok.detail
    assert not bad.holds and math.isfinite(bad.error), bad.detail
    assert ok.tolerance == E.BAND
    assert bad.error < 8 * E.BAND, f"the control should be a near miss: {bad.detail}"


def test_band_rejects_a_visible_quadratic_term():
    """A cost n^1.5 + a n² whose quadratic term reaches 25 % of the law at n = 2^20 leaves the band."""
    ns = np.unique(np.round(np.exp(np.linspace(np.log(E.N_RANGE[0]), np.log(E.N_RANGE[1]), 8))))
    law = ns**1.5
    quad = 0.25 * ns**2 / math.sqrt(E.N_RANGE[1])
    assert abs(fit_loglog_slope(ns, law) - 1.5) < 1e-9
    assert fit_loglog_slope(ns, law + quad) - 1.5 > E.BAND


@given(n=st.integers(1, 400), l=st.integers(1, 30), data=st.data())
@example(n=1, l=1, data=None)
@example(n=29, l=30, data=None)
@example(n=30, l=30, data=None)
@example(n=31, l=30, data=None)
@settings(max_examples=40)
def test_library_closed_forms_equal_enumeration(n, l, data):
    c = 1 if data is None else data.draw(st.integers(1, l))
    rows_s = C.enumerate_rows(sparse.strided(l), n)
    rows_f = C.enumerate_rows(sparse.fixed(l, c), n)
    assert sparse.strided(l).nnz(n) == sum(map(len, rows_s))
    assert sparse.fixed(l, c).nnz(n) == sum(map(len, rows_f))
    assert sparse.strided(l).row_counts(n).tolist() == [len(r) for r in rows_s]
    assert sparse.fixed(l, c).row_counts(n).tolist() == [len(r) for r in rows_f]


def test_closed_forms_by_hand():
    """strided(3), n = 7: rows 1, 2, 3, 4, 4, 4, 5 keys -> 23; fixed(3, 1), n = 7: 1, 2, 3, 2, 3, 4, 3 -> 18."""
    assert sparse.strided(3).row_counts(7).tolist() == [1, 2, 3, 4, 4, 4, 5]
    assert sparse.strided(3).nnz(7) == 23 == sparse.patterns_counts.strided_count(2, 3, 1)
    assert sparse.fixed(3, 1).row_counts(7).tolist() == [1, 2, 3, 2, 3, 4, 3]
    assert sparse.fixed(3, 1).nnz(7) == 18 == sparse.patterns_counts.fixed_count(2, 3, 1, 1)


@pytest.mark.parametrize("pattern", [sparse.strided(5), sparse.fixed(5, 2), sparse.sliding_window(4), sparse.dilated_window(3, 3),
                                     sparse.power_attention(), sparse.window_global(4, 2), sparse.bigbird(3, 1, 2, 7), sparse.full_causal()])
def test_counter_verdict_and_each_near_miss(pattern):
    """The library's counters match enumeration; each family's near-miss counter does not, by a finite count."""
    assert C.counter_verdict(pattern, 50).holds
    what, nnz, rc = C._near_miss(pattern)
    bad = C.counter_verdict(pattern, 50, nnz=nnz, row_counts=rc)
    assert not bad.holds and 0 < bad.error < math.inf, what


def test_near_miss_counts_by_hand():
    """strided(3) at n = 7 with δ = l counted twice: rows 3.. gain one key each -> 23 + 4."""
    _, nnz, _ = C._near_miss(sparse.strided(3))
    assert nnz(7) == 27
    _, nnz, _ = C._near_miss(sparse.sliding_window(2))  # window of 3 instead of 2: 1 + 2 + 3·3
    assert nnz(5) == 12 and sparse.sliding_window(2).nnz(5) == 9


def test_sympy_proofs_hold_with_general_scope():
    for proof in (C.proof_strided(n_max=24, l_max=5), C.proof_fixed(n_max=24, l_max=5)):
        assert proof.proved, proof.detail
        assert "general" in proof.scope and "library closed form" in proof.scope
    assert "3/2" in C.proof_strided(n_max=12, l_max=3).detail


def test_closed_form_claim_report():
    report = run_claim(get("sparse.nnz-closed-form"), samples=2, seed=11)
    assert report.ok, report.detail
    assert report.max_error == 0.0 and report.control_status == "rejected"
    assert math.isfinite(report.control_min_error) and report.control_min_error > 0
    assert {"strided", "fixed", "full_causal"} <= set(report.backends)


def test_leading_order_numerically():
    """nnz / n^1.5 at n = l² approaches 3/2 (strided) and (1 + c)/2 (fixed)."""
    l = 2000
    n = l * l
    assert abs(sparse.strided(l).nnz(n) / n**1.5 - 1.5) < 1e-3
    assert abs(sparse.fixed(l, 3).nnz(n) / n**1.5 - 2.0) < 1e-3


def test_nnz_curve_rejects_unknown_family():
    with pytest.raises(ValueError, match="family"):
        E.nnz_curve("triangle", [1024])
