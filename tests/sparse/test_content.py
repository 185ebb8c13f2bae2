"""Routing (one cluster) and MoBA (all blocks) equal full causal attention; masks; bad input."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from theorylab import sparse
from theorylab.claims import get
from theorylab.tolerances import assert_close


def _qk(seed, n, d):
    x = sparse.make_inputs(np.random.default_rng(seed), length=n, head_dim=d)
    return x, x["q"][0, 0], x["k"][0, 0]


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60), d=st.sampled_from([1, 2, 3, 5]), block=st.integers(1, 9))
@example(seed=0, n=1, d=1, block=1)
def test_all_blocks_and_one_cluster_are_full_causal(seed, n, d, block):
    x, q, k = _qk(seed, n, d)
    full = np.tril(np.ones((n, n), bool))
    assert np.array_equal(sparse.moba_mask(q, k, block, -(-n // block)), full)
    assert np.array_equal(sparse.routing_mask(q, k, 1, seed), full)
    out = sparse.attention(x["q"], x["k"], x["v"], sparse.ExplicitPattern(sparse.moba_mask(q, k, block, n)), backend="torch")
    assert_close(out, sparse.attention_ref(x["q"], x["k"], x["v"], sparse.full_causal()), dtype=np.float64)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 60), block=st.integers(1, 9), topk=st.integers(0, 3))
def test_moba_mask_structure(seed, n, block, topk):
    _, q, k = _qk(seed, n, 3)
    m = sparse.moba_mask(q, k, block, topk)
    assert not np.triu(m, 1).any() and m.diagonal().all()
    for i in range(n):
        past_blocks = {j // block for j in np.flatnonzero(m[i]) if j // block < i // block}
        assert len(past_blocks) == min(topk, i // block)
        for b in past_blocks:  # a chosen block is taken whole
            assert m[i, b * block : (b + 1) * block].all()


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 60), clusters=st.integers(1, 5))
def test_routing_mask_is_causal_with_diagonal(seed, n, clusters):
    _, q, k = _qk(seed, n, 3)
    m = sparse.routing_mask(q, k, clusters, seed)
    assert not np.triu(m, 1).any() and m.diagonal().all()
    assert sparse.ExplicitPattern(m).nnz(n) == int(m.sum())


def test_explicit_pattern_rejects_bad_masks():
    with pytest.raises(ValueError, match="mask"):
        sparse.ExplicitPattern(np.ones((3, 3), bool))  # not causal
    with pytest.raises(ValueError, match="mask"):
        sparse.ExplicitPattern(np.zeros((3, 3), bool))  # no diagonal
    with pytest.raises(ValueError, match="mask"):
        sparse.ExplicitPattern(np.eye(3))  # not bool
    with pytest.raises(ValueError, match=r"\bn\b"):
        sparse.ExplicitPattern(np.eye(3, dtype=bool)).mask(4)
    with pytest.raises(ValueError, match="block"):
        sparse.moba_mask(np.zeros((4, 2)), np.zeros((4, 2)), 0, 1)
    with pytest.raises(ValueError, match="clusters"):
        sparse.routing_mask(np.zeros((4, 2)), np.zeros((4, 2)), 0, 1)


@pytest.mark.parametrize("claim_id", ["sparse.routing-one-cluster-is-full", "sparse.moba-all-blocks-is-full"])
@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=8)
def test_content_claims_hold_and_controls_fail(claim_id, seed):
    claim = get(claim_id)
    ok = claim.check(np.random.default_rng(seed), "quick")
    bad = claim.negative_control(np.random.default_rng(seed), "quick")
    assert ok.holds, ok.detail
    assert not bad.holds, bad.detail
