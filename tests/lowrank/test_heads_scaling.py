"""Rank against heads, measured (:mod:`theorylab.lowrank.heads_scaling`): held-out curves, H*(ε), the rate."""

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from theorylab.lowrank.heads import attention_heads_ref, full_rank_head, make_inputs, nearest_point_target
from theorylab.lowrank.heads_claims import heads_needed_per_d
from theorylab.lowrank.heads_scaling import (
    exponential_rate,
    heads_needed,
    held_out_errors,
    random_heads,
    trained_heads_error,
)
from theorylab.testing import seeds
from theorylab.tolerances import assert_close

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("backend", ["ref", "numba", "torch"])
@settings(max_examples=30)  # each example: a least-squares fit per prefix
@given(T=st.integers(12, 30), N=st.integers(1, 5), d=st.sampled_from([1, 2, 3, 5]), H=st.integers(1, 4),
       r=st.integers(1, 2), seed=seeds)
@example(T=12, N=1, d=1, H=1, r=1, seed=0)
def test_held_out_errors_equal_a_loop_of_lstsq(backend, T, N, d, H, r, seed):
    rng = np.random.default_rng(seed)
    p = make_inputs(rng, samples=T, N=N, d=d)
    h = random_heads(rng, H, d, rank=r, beta=3.0)
    train = T - 5
    Hs = list(range(1, H + 1))
    out = held_out_errors(p["X"], p["y"], h["Q"], h["K"], Hs, train=train, backend=backend)
    heads = attention_heads_ref(p["X"], p["y"], h["Q"], h["K"])  # (T, H, d)
    f = nearest_point_target(p["X"], p["y"])
    ref = []
    for k in Hs:
        Phi = heads[:, :k].reshape(T, k * d)
        W = np.linalg.lstsq(Phi[:train], f[:train], rcond=1e-10)[0]
        ref.append(np.mean(np.sum((Phi[train:] @ W - f[train:]) ** 2, -1)))
    # errors are O(1) (predicting 0 gives 1); an exact fit (N = 1: the target is x_1) gives 0 on both sides
    np.testing.assert_allclose(out, np.array(ref), rtol=1e-7, atol=1e-12)


def test_held_out_errors_take_tensors_and_sweeps():
    rng = np.random.default_rng(1)
    p = make_inputs(rng, samples=30, N=3, d=2, batch=(2,))
    h = random_heads(rng, 3, 2, batch=(2,))
    a = held_out_errors(p["X"], p["y"], h["Q"], h["K"], (1, 3), train=20)
    b = held_out_errors(*(torch.tensor(v) for v in (p["X"], p["y"], h["Q"], h["K"])), (1, 3), train=20)
    assert a.shape == (2, 2) and isinstance(b, torch.Tensor)
    assert_close(b.numpy(), a, rtol=1e-8)
    for s in range(2):  # each item of the sweep as if alone
        assert_close(held_out_errors(p["X"][s], p["y"][s], h["Q"][s], h["K"][s], (1, 3), train=20), a[s], rtol=1e-8)


def test_held_out_errors_compiled_prefixes_match_the_loop_in_any_order():
    """The compiled path factors once per item for every H: a grid out of order and repeated,
    and a repeated head (every prefix from H = 3 on is rank-deficient: those go to the SVD),
    give the per-H loop's errors on every item of the sweep."""
    rng = np.random.default_rng(4)
    p = make_inputs(rng, samples=40, N=3, d=2, batch=(3,))
    h = random_heads(rng, 4, 2, batch=(3,))
    h["Q"][1, 2], h["K"][1, 2] = h["Q"][1, 0], h["K"][1, 0]  # item 1: head 2 repeats head 0
    Hs = (4, 1, 3, 1, 2)
    numba_ = held_out_errors(p["X"], p["y"], h["Q"], h["K"], Hs, train=30, backend="numba")
    ref = held_out_errors(p["X"], p["y"], h["Q"], h["K"], Hs, train=30, backend="ref")
    assert numba_.shape == (3, 5)
    assert_close(numba_, ref, rtol=1e-8)
    assert numba_[0, 1] == numba_[0, 3]  # the repeated H, read off once


def test_random_heads_rows_have_radius_sqrt_beta_over_rank(rng):
    h = random_heads(rng, 5, 4, rank=2, beta=6.0, batch=(3,))
    assert h["Q"].shape == (3, 5, 2, 4)
    np.testing.assert_allclose(np.linalg.norm(h["K"], axis=-1), np.sqrt(3.0), rtol=1e-12)


def test_heads_needed_by_hand():
    Hs = [1, 2, 4, 8]
    errs = np.array([[0.9, 0.7, 0.3, 0.1],  # crosses 0.5 between 2 and 4, halfway in error: H* = 2·√2
                     [0.4, 0.3, 0.2, 0.1],  # already at H = 1
                     [0.9, 0.8, 0.7, 0.6]])  # never
    out = heads_needed(Hs, errs, 0.5)
    assert out[0] == pytest.approx(2 * np.sqrt(2)) and out[1] == 1.0 and np.isinf(out[2])
    assert heads_needed(Hs, errs[0], 0.7) == 2.0  # exactly at a grid point
    with pytest.raises(ValueError, match="Hs"):
        heads_needed([1, 1, 2, 3], errs, 0.5)


def test_exponential_rate_by_hand():
    ds = [2, 3, 4, 5]
    H = np.exp(0.7 * np.array(ds) + 0.2)
    assert exponential_rate(ds, H) == pytest.approx(0.7)
    assert exponential_rate(ds, np.ones(4)) == 0.0
    assert exponential_rate(ds, np.stack([H, 2 * H])) == pytest.approx([0.7, 0.7])
    with pytest.raises(ValueError, match="ds"):
        exponential_rate([2], [1.0])


def test_full_rank_heads_need_one_head_and_rank_one_heads_more():
    """The claim's two pipelines at small sizes: full-rank heads H* = 1, rank-1 heads H* > 1 growing with d."""
    Hs = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
    full, _ = heads_needed_per_d(np.random.default_rng(0), (2, 4), Hs, full_rank=True)
    np.testing.assert_array_equal(full, [1.0, 1.0])
    rank1, curves = heads_needed_per_d(np.random.default_rng(0), (2, 4), Hs)
    assert 1.0 < rank1[0] < rank1[1] < 32
    assert curves[2][0] > curves[2][-1]  # more heads, less held-out error


def test_trained_heads_are_deterministic_and_learn():
    p = make_inputs(np.random.default_rng(3), samples=260, N=3, d=2)
    a = trained_heads_error(p["X"], p["y"], 2, train=200, steps=60, seed=5)
    b = trained_heads_error(p["X"], p["y"], 2, train=200, steps=60, seed=5)
    untrained = trained_heads_error(p["X"], p["y"], 2, train=200, steps=1, seed=5)
    assert a == b and a < 0.8 * untrained


def test_full_rank_head_reaches_eps_through_held_out_errors():
    p = make_inputs(np.random.default_rng(2), samples=300, N=4, d=5)
    h = full_rank_head(5, 64.0)
    e = held_out_errors(p["X"], p["y"], h["Q"], h["K"], (1,), train=200)
    assert e[0] < 0.05


@pytest.mark.parametrize("bad", ["Hs", "train", "beta"])
def test_bad_options_name_the_argument(bad):
    p = make_inputs(np.random.default_rng(0), samples=10, N=3, d=2)
    h = random_heads(np.random.default_rng(0), 2, 2)
    with pytest.raises((ValueError, TypeError), match=bad):
        if bad == "Hs":
            held_out_errors(p["X"], p["y"], h["Q"], h["K"], (1, 3), train=5)
        elif bad == "train":
            held_out_errors(p["X"], p["y"], h["Q"], h["K"], (1,), train=10)
        else:
            random_heads(np.random.default_rng(0), 2, 2, beta=-1.0)
