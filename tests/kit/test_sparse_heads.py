"""Per-head fixed sparse attention: the patterns equal brute-force enumeration of their
definition, num_verts = 1 is theorylab's fixed(l, c), and the reference equals dense masked
softmax head by head."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from theorylab.sparse import attention, fixed
from theorylab.sparse.per_head import fixed_per_head, fixed_vert
from theorylab.testing import assert_equivalent, fixed_sparse_attention_ref, sparse_heads_inputs
from theorylab.tolerances import assert_close

pytestmark = pytest.mark.usefixtures("one_thread")


def brute_mask(n, l, c, vert):
    """Allowed (i, j) from the definition, one pair at a time."""
    m = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(i + 1):
            same_block = j // l == i // l
            summary = l - (vert + 1) * c <= j % l < l - vert * c
            m[i, j] = same_block or summary
    return m


@settings(max_examples=40)
@given(n=st.integers(1, 30), l=st.integers(1, 7), data=st.data())
def test_pattern_rows_masks_and_counts_equal_enumeration(n, l, data):
    c = data.draw(st.integers(1, l))
    vert = data.draw(st.integers(0, l // c - 1))
    pat = fixed_vert(l, c, vert)
    want = brute_mask(n, l, c, vert)
    assert np.array_equal(pat.mask(n), want)
    assert pat.nnz(n) == int(want.sum())
    assert np.array_equal(pat.row_counts(n), want.sum(axis=1))
    for i in (0, n // 2, n - 1):
        assert np.array_equal(pat.row(i, n), np.flatnonzero(want[i]))
    if vert == 0:
        assert np.array_equal(pat.mask(n), fixed(l, c).mask(n))


def test_heads_cycle_through_the_sub_blocks():
    pats = fixed_per_head(8, 2, 3, 7)
    assert [p.vert for p in pats] == [0, 1, 2, 0, 1, 2, 0]
    masks = [p.mask(24) for p in pats[:3]]
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])


def dense(q, k, v, masks, scale):
    """Softmax over each head's mask, float64, written out."""
    s = np.einsum("bhid,bhjd->bhij", q, k) * scale
    s = np.where(np.stack(masks)[None], s, -np.inf)
    w = np.exp(s - s.max(-1, keepdims=True))
    return np.einsum("bhij,bhjd->bhid", w / w.sum(-1, keepdims=True), v)


@settings(max_examples=40)
@given(p=sparse_heads_inputs("float64", max_length=20))
def test_reference_equals_dense_masked_softmax_per_head(p):
    out = fixed_sparse_attention_ref(**p)
    q, k, v = (p[x].numpy() for x in "qkv")
    n, h = q.shape[2], q.shape[1]
    masks = [brute_mask(n, p["l"], p["c"], i % p["num_verts"]) for i in range(h)]
    assert_close(out, dense(q, k, v, masks, p.get("scale", q.shape[3] ** -0.5)), dtype="float64")


def test_one_sub_block_is_theorylab_fixed_pattern():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 19, 4, generator=g, dtype=torch.float64) for _ in range(3))
    out = fixed_sparse_attention_ref(q, k, v, l=5, c=2, num_verts=1)
    assert_close(out, attention(q.numpy(), k.numpy(), v.numpy(), fixed(5, 2), backend="ref"), dtype="float64")


def test_a_kernel_that_ignores_the_per_head_sub_blocks_is_caught():
    """A plausible bug: every head uses the last c columns (num_verts ignored)."""
    def last_block_only(q, k, v, l, c, num_verts=1, scale=None):
        return fixed_sparse_attention_ref(q, k, v, l, c, 1, scale)

    inputs = sparse_heads_inputs("float32", max_length=16)
    with pytest.raises(AssertionError, match="forward output") as e:
        assert_equivalent(last_block_only, fixed_sparse_attention_ref, inputs, dtype="float32", max_examples=60)
    assert "num_verts: 2" in str(e.value)  # the minimal example uses two sub-blocks


@pytest.mark.parametrize("args, match", [
    ((4, 2, 3, 2), r"num_verts \* c = 3 \* 2 must be <= l = 4"),
    ((4, 5, 1, 2), "c must be <= 4"),
    ((4, 1, 0, 2), "num_verts must be >= 1"),
    ((4, 1, 1, 0), "heads must be >= 1"),
])
def test_bad_pattern_arguments_name_the_argument(args, match):
    with pytest.raises(ValueError, match=match):
        fixed_per_head(*args)
    with pytest.raises(ValueError, match="does not fit"):
        fixed_vert(4, 2, 2)
