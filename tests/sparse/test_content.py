"""Content-based selection: MoBA's gate and Routing's nearest centroid, by hand and against
the brute-force references; attention over the selection on every backend; cost counter;
claims and their near-miss controls; bad input."""

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from theorylab import sparse
from theorylab.backends import numba_available
from theorylab.claims import get
from theorylab.sparse import content_claims as CC
from theorylab.tolerances import assert_close

pytestmark = pytest.mark.usefixtures("one_thread")

BACKENDS = [
    "ref",
    pytest.param("numba", marks=pytest.mark.skipif(not numba_available(), reason="numba is not installed")),
    "torch",
]


def _qkv(seed, n, d, heads=1, logit_scale=1.0):
    x = sparse.make_inputs(np.random.default_rng(seed), heads=heads, length=n, head_dim=d, value_dim=2, logit_scale=logit_scale)
    return x, x["q"][0, 0], x["k"][0, 0]


# ---------------------------------------------------------------------------------------
# MoBA
# ---------------------------------------------------------------------------------------
def test_moba_gate_by_hand():
    """d = 1, block 2, keys 0,0 | 4,4 | -2,-2 | 1,1 (block means 0, 4, -2, 1).  A query with
    q > 0 in block 3 ranks the earlier blocks 1 (4) > 0 (0) > 2 (-2); with q < 0 the order flips."""
    k = np.array([0, 0, 4, 4, -2, -2, 1, 1], dtype=float)[:, None]
    q = np.array([1, 1, 1, 1, 1, 1, 1, -1], dtype=float)[:, None]
    assert np.allclose(sparse.moba_scores(q, k, 2)[6], [0, 4, -2, 1])
    gate = sparse.moba_select(q, k, 2, 1)
    assert np.flatnonzero(gate[6]).tolist() == [1, 3]  # best earlier block (1) + own block (3)
    assert np.flatnonzero(gate[7]).tolist() == [2, 3]  # q = -1: block 2 scores +2, the best
    assert np.flatnonzero(gate[4]).tolist() == [1, 2]  # block 2's queries choose among 0, 1
    assert np.flatnonzero(gate[1]).tolist() == [0]  # block 0: only its own block
    two = sparse.moba_select(q, k, 2, 2)
    assert np.flatnonzero(two[6]).tolist() == [0, 1, 3] and np.flatnonzero(two[7]).tolist() == [0, 2, 3]
    m = sparse.moba_mask(q, k, 2, 1)
    assert np.flatnonzero(m[6]).tolist() == [2, 3, 6] and np.flatnonzero(m[7]).tolist() == [4, 5, 6, 7]


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), d=st.sampled_from([1, 2, 3, 5]), block=st.integers(1, 9),
       topk=st.integers(0, 4))
@example(seed=0, n=1, d=1, block=1, topk=0)
@example(seed=1, n=37, d=3, block=4, topk=2)
@settings(max_examples=30)
def test_moba_selection_matches_brute_force(seed, n, d, block, topk):
    x, q, k = _qkv(seed, n, d)
    chosen, ref = CC.moba_brute(q, k, x["v"][0, 0], block, topk)
    gate = sparse.moba_select(q, k, block, topk)
    assert [np.flatnonzero(g).tolist() for g in gate] == chosen
    for i in range(n):  # own block always; exactly min(topk, earlier blocks) earlier ones
        assert gate[i, i // block] and gate[i].sum() == 1 + min(topk, i // block)
    assert_close(sparse.moba_attention(x["q"], x["k"], x["v"], block, topk, backend="ref")[0, 0], ref, dtype=np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(8, 48), block=st.integers(2, 6), topk=st.integers(1, 3),
       logit_scale=st.sampled_from([1.0, 30.0, 300.0]))
@example(seed=3, n=40, block=4, topk=2, logit_scale=300.0)
@settings(max_examples=12)
def test_moba_attention_backends_match_brute_force(backend, seed, n, block, topk, logit_scale):
    """logit_scale 300: logits beyond 709 (float64 exp overflow), so a missing max shift fails."""
    x, _, _ = _qkv(seed, n, 3, heads=2, logit_scale=logit_scale)
    out = sparse.moba_attention(x["q"], x["k"], x["v"], block, topk, backend=backend)
    for h in range(2):
        ref = CC.moba_brute(x["q"][0, h], x["k"][0, h], x["v"][0, h], block, topk)[1]
        assert_close(out[0, h], ref, dtype=np.float64, name=f"{backend} head {h}")


def test_moba_near_misses_select_other_blocks():
    x, q, k = _qkv(7, 40, 3)
    right = sparse.moba_mask(q, k, 4, 2)
    for how in ("lowest", "unforced"):
        assert not np.array_equal(CC._moba_wrong_masks(q, k, 4, 2, how), right), how


# ---------------------------------------------------------------------------------------
# Routing
# ---------------------------------------------------------------------------------------
def test_routing_assign_by_hand():
    """Centroids e1, e2: (0.9, 0.1) and (5, 1) are nearest e1, (0.2, 0.7) and (-1, 3) nearest e2."""
    mu = np.eye(2)
    x = np.array([[0.9, 0.1], [0.2, 0.7], [5.0, 1.0], [-1.0, 3.0]])
    assert sparse.routing_assign(x, mu).tolist() == [0, 1, 0, 1]


def test_routing_mask_by_hand():
    """Queries and keys on two axes: q = k = e1, e2, e1, e2, e1 -> two clusters by parity of i."""
    e = np.eye(2)
    qk = e[[0, 1, 0, 1, 0]] + 0.01 * np.arange(5)[:, None]
    cq, ck = sparse.routing_clusters(qk, qk, 2, seed=0, iters=3)
    assert cq.tolist() == ck.tolist() and cq[0] == cq[2] == cq[4] != cq[1] == cq[3]
    m = sparse.routing_mask(qk, qk, 2, seed=0, iters=3)
    assert np.flatnonzero(m[4]).tolist() == [0, 2, 4] and np.flatnonzero(m[3]).tolist() == [1, 3]
    assert sparse.routing_row_counts(qk, qk, 2, seed=0, iters=3).tolist() == [1, 1, 2, 2, 3]


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), d=st.sampled_from([1, 2, 3, 5]), clusters=st.integers(1, 6),
       iters=st.integers(0, 4))
@example(seed=0, n=1, d=1, clusters=1, iters=0)
@settings(max_examples=30)
def test_routing_selection_matches_brute_force(seed, n, d, clusters, iters):
    x, q, k = _qkv(seed, n, d)
    mu, cq, ck, ref = CC.routing_brute(q, k, x["v"][0, 0], clusters, seed, iters)
    assert_close(sparse.routing_centroids(q, k, clusters, seed, iters), mu, dtype=np.float64)
    lq, lk = sparse.routing_clusters(q, k, clusters, seed, iters)
    assert lq.tolist() == cq and lk.tolist() == ck
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    assert np.all(np.sum(unit(q) * mu[lq], axis=1) >= (unit(q) @ mu.T).max(axis=1) - 1e-12)  # nearest centroid
    m = sparse.routing_mask(q, k, clusters, seed, iters)
    truth = np.array([[j <= i and (ck[j] == cq[i] or j == i) for j in range(n)] for i in range(n)]).reshape(n, n)
    assert np.array_equal(m, truth)
    assert sparse.routing_row_counts(q, k, clusters, seed, iters).tolist() == truth.sum(axis=1).tolist()
    assert_close(sparse.routing_attention(x["q"], x["k"], x["v"], clusters, seed=seed, iters=iters, backend="ref")[0, 0],
                 ref, dtype=np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(8, 48), clusters=st.integers(2, 5),
       logit_scale=st.sampled_from([1.0, 30.0, 300.0]))
@example(seed=4, n=40, clusters=3, logit_scale=300.0)
@settings(max_examples=12)
def test_routing_attention_backends_match_brute_force(backend, seed, n, clusters, logit_scale):
    x, _, _ = _qkv(seed, n, 3, heads=2, logit_scale=logit_scale)
    out = sparse.routing_attention(x["q"], x["k"], x["v"], clusters, seed=seed, backend=backend)
    for h in range(2):
        ref = CC.routing_brute(x["q"][0, h], x["k"][0, h], x["v"][0, h], clusters, seed, 5)[3]
        assert_close(out[0, h], ref, dtype=np.float64, name=f"{backend} head {h}")


def test_routing_cost_control_clusters():
    assert CC.routing_clusters_for(2**14) == 128 and CC.routing_clusters_for(2**14, wrong=True) == 10


# ---------------------------------------------------------------------------------------
# claims, bad input
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("claim_id", ["sparse.moba-top-k-gate", "sparse.routing-nearest-centroid", "sparse.routing-cost-exponent"])
@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=3)
def test_content_claims_hold_and_controls_fail(claim_id, seed):
    claim = get(claim_id)
    ok = claim.check(np.random.default_rng(seed), "quick")
    bad = claim.negative_control(np.random.default_rng(seed), "quick")
    assert ok.holds, ok.detail
    factor = 1e3 if claim.kind == "identity" else 1.0  # identities: far beyond 1e-10; exponents: outside the band
    assert not bad.holds and math.isfinite(bad.error) and bad.error > factor * bad.tolerance, bad.detail


def test_explicit_pattern_and_selection_reject_bad_input():
    with pytest.raises(ValueError, match="mask"):
        sparse.ExplicitPattern(np.ones((3, 3), bool))  # not causal
    with pytest.raises(ValueError, match="mask"):
        sparse.ExplicitPattern(np.zeros((3, 3), bool))  # no diagonal
    with pytest.raises(ValueError, match="mask"):
        sparse.ExplicitPattern(np.eye(3))  # not bool
    with pytest.raises(ValueError, match=r"\bn\b"):
        sparse.ExplicitPattern(np.eye(3, dtype=bool)).mask(4)
    q = np.zeros((4, 2))
    with pytest.raises(ValueError, match="block"):
        sparse.moba_mask(q, q, 0, 1)
    with pytest.raises(ValueError, match="topk"):
        sparse.moba_select(q, q, 2, -1)
    with pytest.raises(ValueError, match="clusters"):
        sparse.routing_mask(q, q, 0, 1)
    with pytest.raises(ValueError, match="seed"):
        sparse.routing_mask(q, q, 2, -1)
    with pytest.raises(ValueError, match=r"\bk\b"):
        sparse.routing_mask(q, np.zeros((5, 2)), 2, 0)
    with pytest.raises(ValueError, match=r"\bq\b"):
        sparse.moba_mask(np.full((4, 2), np.nan), q, 2, 1)
    with pytest.raises(ValueError, match=r"\bq\b"):
        sparse.moba_mask(np.zeros(4), q, 2, 1)
