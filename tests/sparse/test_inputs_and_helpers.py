"""Small contracts the claim checks lean on: make_inputs, defaults, per-head stacking, field
statistics, error messages.  Each test here was written for a single-line change that
``theorylab verify`` and the other tests let through (mutation testing, docs/mutation.md)."""

import inspect

import numpy as np
import pytest
import torch

from theorylab.sparse import (
    BigBird,
    attention,
    bigbird,
    make_inputs,
    moba_attention,
    routing_attention,
    routing_mask,
    strided,
    window_global,
)
from theorylab.sparse._sparse_attention_torch import pick_kernel
from theorylab.sparse.connectivity import field_stats


def test_make_inputs_scales_the_queries_and_nothing_else():
    one = make_inputs(np.random.default_rng(3), length=7, head_dim=3)
    big = make_inputs(np.random.default_rng(3), length=7, head_dim=3, logit_scale=30.0)
    np.testing.assert_array_equal(big["q"], 30.0 * one["q"])
    np.testing.assert_array_equal(big["k"], one["k"])
    np.testing.assert_array_equal(big["v"], one["v"])


def test_make_inputs_defaults_and_keyword_only_sizes():
    p = make_inputs(np.random.default_rng(0))
    assert {k: v.shape for k, v in p.items()} == {"q": (1, 1, 16, 8), "k": (1, 1, 16, 8), "v": (1, 1, 16, 8)}
    assert make_inputs(np.random.default_rng(0), value_dim=5)["v"].shape == (1, 1, 16, 5)
    with pytest.raises(TypeError):
        make_inputs(np.random.default_rng(0), 2)  # sizes are keyword-only


def test_bigbird_defaults_to_no_random_keys():
    assert BigBird(3, 1).r == 0
    np.testing.assert_array_equal(BigBird(3, 1).mask(20), window_global(3, 1).mask(20))
    assert bigbird(3, 1, 0, 0).nnz(20) == window_global(3, 1).nnz(20)


@pytest.mark.parametrize("n", [0, -1])
def test_lengths_below_one_are_refused(n):
    with pytest.raises(ValueError, match="n must be >= 1"):
        strided(4).nnz(n)
    with pytest.raises(ValueError, match="n must be >= 1"):
        strided(4).mask(n)


def test_per_head_outputs_are_stacked_in_batch_and_head_order():
    """Routing and MoBA build one mask per (batch, head); the torch result must put head h of
    batch b where the per-head numpy calls put it."""
    p = make_inputs(np.random.default_rng(5), batch=2, heads=3, length=12, head_dim=4)
    for fn, kw in ((routing_attention, dict(clusters=3, seed=1)), (moba_attention, dict(block=3, topk=2))):
        ref = fn(p["q"], p["k"], p["v"], backend="ref", **kw)
        out = fn(*(torch.from_numpy(p[c]) for c in "qkv"), backend="torch", **kw).numpy()
        assert ref.shape == out.shape == (2, 3, 12, 4)
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)
        for b in range(2):
            for h in range(3):
                one = fn(*(p[c][b:b + 1, h:h + 1] for c in "qkv"), backend="ref", **kw)
                np.testing.assert_array_equal(ref[b:b + 1, h:h + 1], one)


def test_per_head_attention_checks_every_argument():
    p = make_inputs(np.random.default_rng(0), length=6, head_dim=2)
    for name in "qkv":
        bad = {**p, name: p[name][0]}  # 3-d
        with pytest.raises(ValueError, match=f"{name} must be 4-d"):
            moba_attention(bad["q"], bad["k"], bad["v"], 2, 1)
        with pytest.raises(ValueError, match=f"{name} must be 4-d"):
            routing_attention(bad["q"], bad["k"], bad["v"], 2, seed=0)
    with pytest.raises(TypeError):
        moba_attention(p["q"], p["k"], p["v"], 2, 1, 0.5)  # scale is keyword-only


def test_routing_defaults_are_documented_ones():
    assert inspect.signature(routing_mask).parameters["iters"].default == 5
    p = make_inputs(np.random.default_rng(2), length=20, head_dim=3)
    q, k = p["q"][0, 0], p["k"][0, 0]
    np.testing.assert_array_equal(routing_mask(q, k, 4, 7), routing_mask(q, k, 4, 7, iters=5))


def test_field_stats_by_hand():
    f = np.array([True, False, True, True, False, True])  # query 5 reaches keys 0, 2, 3, 5
    assert field_stats(f) == {"continuous": 1, "span": 6, "size": 4, "holes": 2}
    assert field_stats(f, query=3) == {"continuous": 2, "span": 4, "size": 3, "holes": 1}
    g = np.array([True, True, False])  # the query itself not reached (a pattern without its diagonal)
    assert field_stats(g)["continuous"] == 0


def test_flash_refusal_names_both_widths():
    q = k = torch.zeros(1, 1, 4, 3)
    v = torch.zeros(1, 1, 4, 5)
    with pytest.raises(ValueError, match="value width 5 differs from key width 3"):
        pick_kernel("flash_cpu", q, k, v)
    assert attention(q, k, v, strided(2), backend="torch").shape == (1, 1, 4, 5)
