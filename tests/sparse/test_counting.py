"""Complexity claims: fitted nnz exponents, closed forms (sympy) and their negative controls."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from theorylab import sparse
from theorylab.claims import get, run_claim
from theorylab.sparse import counting as C

FAMILIES = sorted(C.EXPONENTS)


@pytest.mark.parametrize("family", FAMILIES)
@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=10)
def test_exponent_claim_holds_and_control_fails(family, seed):
    claim = get(f"sparse.nnz-exponent-{family}")
    ok = claim.check(np.random.default_rng(seed), "quick")
    bad = claim.negative_control(np.random.default_rng(seed), "quick")
    assert ok.holds, ok.detail
    assert not bad.holds, bad.detail
    assert ok.tolerance == C.BAND


@given(n=st.integers(1, 400), l=st.integers(1, 30), data=st.data())
@example(n=1, l=1, data=None)
@example(n=29, l=30, data=None)
@example(n=30, l=30, data=None)
@example(n=31, l=30, data=None)
def test_closed_forms_equal_mask_counts(n, l, data):
    c = 1 if data is None else data.draw(st.integers(1, l))
    q, r = divmod(n, l)
    strided_cf = n * (n + 1) // 2 if q == 0 else C.closed_form_strided(q, l, r)
    assert strided_cf == sparse.strided(l).mask(n).sum() == sparse.strided(l).nnz(n)
    assert C.closed_form_fixed(q, l, r, c) == sparse.fixed(l, c).mask(n).sum() == sparse.fixed(l, c).nnz(n)


def test_sympy_proofs_hold():
    for proof in (C.proof_strided(), C.proof_fixed()):
        assert proof.proved, proof.detail
    assert "3/2" in C.proof_strided().detail


def test_closed_form_claim_report():
    report = run_claim(get("sparse.nnz-closed-form"), samples=3, seed=11)
    assert report.ok, report.detail
    assert report.max_error == 0.0 and report.control_min_error > 0


def test_leading_order_numerically():
    """nnz / n^1.5 at n = l² approaches 3/2 (strided) and (1 + c)/2 (fixed)."""
    l = 2000
    n = l * l
    assert abs(sparse.strided(l).nnz(n) / n**1.5 - 1.5) < 1e-3
    assert abs(sparse.fixed(l, 3).nnz(n) / n**1.5 - 2.0) < 1e-3


def test_nnz_curve_rejects_unknown_family():
    with pytest.raises(ValueError, match="family"):
        C.nnz_curve("triangle", [1024])
