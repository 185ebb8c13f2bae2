"""Connectivity claims: two-hop coverage, BigBird diameter, PowerAttention receptive field."""

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from theorylab import sparse
from theorylab.claims import get
from theorylab.sparse import connectivity as C


@given(n=st.integers(1, 120), l=st.integers(1, 15), data=st.data())
@example(n=1, l=1, data=None)
@example(n=31, l=15, data=None)
def test_strided_and_fixed_cover_all_pairs_in_two_hops(n, l, data):
    c = 1 if data is None else data.draw(st.integers(1, l))
    assert C.uncovered_pairs(sparse.strided(l), n) == 0
    assert C.uncovered_pairs(sparse.fixed(l, c), n) == 0


@given(l=st.integers(2, 10), extra=st.integers(0, 30))
def test_one_hop_is_not_enough(l, extra):
    n = 2 * l + 2 + extra
    assert C.uncovered_pairs(sparse.strided(l), n, hops=1) > 0
    assert C.uncovered_pairs(sparse.fixed(l, 1), n, hops=1) > 0


def test_reach_matches_path_enumeration():
    """(A²)[i, j] > 0 iff some k has A[i, k] and A[k, j] -- by hand on a small mask."""
    a = sparse.dilated_window(3, 2).mask(9)
    r = C.reach_within(a, 2)
    for i in range(9):
        for j in range(9):
            assert r[i, j] == any(a[i, k] and a[k, j] for k in range(9))


@given(n=st.integers(2, 150), w=st.integers(1, 6), g=st.integers(1, 3), r=st.integers(0, 3), seed=st.integers(0, 2**31))
def test_bigbird_diameter_at_most_two(n, w, g, r, seed):
    assert C.pairs_beyond_two_hops(sparse.bigbird(w, g, r, seed), n) == 0


@given(d=st.integers(1, 8), w=st.integers(1, 9), extra=st.integers(0, 300))
@example(d=1, w=1, extra=0)
def test_receptive_fields(d, w, extra):
    n = 2 ** (d + 1) + extra
    fp = C.field_stats(C.receptive_field(sparse.power_attention(), n, d))
    assert fp["continuous"] >= 2**d
    fw = C.field_stats(C.receptive_field(sparse.sliding_window(w), n, d))
    assert fw["continuous"] == min(n, 1 + d * (w - 1)) and fw["holes"] == 0
    if d >= 1 and n > 2:
        fd = C.field_stats(C.receptive_field(sparse.dilated_window(int(math.log2(n)) + 1, 2), n, d))
        assert fd["continuous"] == 1 and fd["holes"] > 0


def test_field_stats_by_hand():
    f = np.array([1, 0, 1, 0, 1, 1, 1], dtype=bool)
    assert C.field_stats(f) == {"continuous": 3, "span": 7, "size": 5, "holes": 2}
    assert C.field_stats(np.ones(4, bool)) == {"continuous": 4, "span": 4, "size": 4, "holes": 0}


@pytest.mark.parametrize("claim_id", ["sparse.two-hop-coverage", "sparse.bigbird-diameter", "sparse.power-receptive-field"])
@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=6)
def test_connectivity_claims_hold_and_controls_fail(claim_id, seed):
    claim = get(claim_id)
    ok = claim.check(np.random.default_rng(seed), "quick")
    bad = claim.negative_control(np.random.default_rng(seed), "quick")
    assert ok.holds, ok.detail
    assert not bad.holds, bad.detail
