"""Rank vs heads (:mod:`theorylab.lowrank.heads`): target, heads, batched least squares; its claim."""

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from theorylab.claims import get, run_claim
from theorylab.lowrank.heads import (
    attention_heads,
    attention_heads_ref,
    fit_output_weights,
    full_rank_head,
    lstsq_batched,
    make_inputs,
    multihead_lowrank,
    nearest_point_target,
)
from theorylab.testing import corrupt, seeds
from theorylab.tolerances import assert_close

BACKENDS = ["ref", "numba", "torch"]
dims = st.sampled_from([1, 2, 3, 5, 7])
pytestmark = pytest.mark.usefixtures("one_thread")


def _heads(rng, shape):
    Q = rng.standard_normal(shape)
    return Q, rng.standard_normal(shape)


@pytest.mark.parametrize("backend", BACKENDS)
@given(T=st.integers(1, 5), N=st.integers(1, 7), d=dims, H=st.integers(1, 4), r=st.integers(1, 3),
       scale=st.sampled_from([1.0, 30.0]), seed=seeds)
@example(T=1, N=1, d=1, H=1, r=1, scale=1.0, seed=0)
def test_heads_match_a_loop_over_heads_and_samples(backend, T, N, d, H, r, scale, seed):
    rng = np.random.default_rng(seed)
    p = make_inputs(rng, samples=T, N=N, d=d)
    Q, K = _heads(rng, (H, r, d))
    Q = Q * scale
    out = attention_heads(p["X"], p["y"], Q, K, backend=backend)
    ref = np.empty((T, H, d))
    for t in range(T):
        for h in range(H):
            s = (K[h] @ p["X"][t].T).T @ (Q[h] @ p["y"][t])  # (N,) logits
            w = np.exp(s - s.max())
            ref[t, h] = (w / w.sum()) @ p["X"][t]
    assert_close(out, ref, dtype=np.float64)


@given(sweep=st.sampled_from([(), (1,), (3,), (2, 3)]), shared=st.booleans(), T=st.integers(1, 4),
       N=st.integers(1, 6), d=dims, H=st.integers(1, 3), r=st.integers(1, 3),
       scale=st.sampled_from([1e-3, 1.0, 40.0]), seed=seeds)
@example(sweep=(2, 3), shared=False, T=1, N=1, d=1, H=1, r=1, scale=40.0, seed=0)
def test_numba_heads_equal_the_reference_on_sweeps(sweep, shared, T, N, d, H, r, scale, seed):
    """Sweep heads (sweep..., H, r, d) or shared heads (H, r, d) broadcast like the reference;
    large logits (scale 40: shifted exponentials underflow to 0 except the maximum) included."""
    rng = np.random.default_rng(seed)
    p = make_inputs(rng, samples=T, N=N, d=d, batch=sweep)
    Q, K = _heads(rng, ((H, r, d) if shared else sweep + (H, r, d)))
    Q = Q * scale
    out = attention_heads(p["X"], p["y"], Q, K, backend="numba")
    ref = attention_heads_ref(p["X"], p["y"], Q, K)
    assert out.shape == ref.shape == sweep + (T, H, d)
    assert_close(out, ref, dtype=np.float64)
    O = rng.standard_normal(out.shape[:-3] + (H, d, d)) if not shared else rng.standard_normal((H, d, d))
    assert_close(multihead_lowrank(p["X"], p["y"], Q, K, O, backend="numba"),
                 multihead_lowrank(p["X"], p["y"], Q, K, O, backend="ref"), dtype=np.float64)


@given(shape=st.sampled_from([(1,), (5,), (2, 3)]), N=st.integers(1, 6), d=dims, ties=st.booleans(), seed=seeds)
@example(shape=(1,), N=1, d=1, ties=False, seed=0)
def test_numba_nearest_point_equals_the_public_target(shape, N, d, ties, seed):
    """The fit's compiled target (first maximum, as argmax) equals nearest_point_target, ties included."""
    from theorylab.lowrank._heads_numba import nearest_point_numba

    rng = np.random.default_rng(seed)
    p = make_inputs(rng, samples=shape[-1], N=N, d=d, batch=shape[:-1])
    X = p["X"]
    if ties:  # every point duplicated: two exact maxima, the first one wins on both sides
        X = np.concatenate([X, X], axis=-2)
    np.testing.assert_array_equal(nearest_point_numba(X, p["y"]), nearest_point_target(X, p["y"]))


def test_nearest_point_exact_tie_between_distinct_points_takes_the_first():
    """⟨x_1, y⟩ = ⟨x_2, y⟩ = 0.6 exactly for distinct points: both paths return x_1 (argmax's first maximum)."""
    from theorylab.lowrank._heads_numba import nearest_point_numba

    X = np.array([[[-1.0, 0.0], [0.6, 0.8], [0.6, -0.8]]])
    y = np.array([[1.0, 0.0]])
    np.testing.assert_array_equal(nearest_point_target(X, y), [[0.6, 0.8]])
    np.testing.assert_array_equal(nearest_point_numba(X, y), [[0.6, 0.8]])


def test_nearest_point_by_hand():
    X = np.array([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])
    y = np.array([[0.1, 0.9]])
    np.testing.assert_array_equal(nearest_point_target(X, y), [[0.0, 1.0]])
    np.testing.assert_array_equal(nearest_point_target(torch.tensor(X), torch.tensor(y)).numpy(), [[0.0, 1.0]])


@pytest.mark.parametrize("backend", BACKENDS)
@given(S=st.integers(1, 3), T=st.integers(8, 20), d=st.sampled_from([2, 3]), H=st.integers(1, 3), seed=seeds)
def test_batched_lstsq_equals_per_item_lstsq(backend, S, T, d, H, seed):
    rng = np.random.default_rng(seed)
    p = make_inputs(rng, samples=T, N=4, d=d, batch=(S,))
    Q, K = _heads(rng, (S, H, 1, d))
    O = fit_output_weights(p["X"], p["y"], Q, K, backend=backend)  # (S, H, d, d)
    assert O.shape == (S, H, d, d)
    f = nearest_point_target(p["X"], p["y"])
    for s in range(S):
        Phi = attention_heads_ref(p["X"][s], p["y"][s], Q[s], K[s]).reshape(T, H * d)
        W = np.linalg.lstsq(Phi, f[s], rcond=None)[0]  # (H d, d)
        pred = multihead_lowrank(p["X"][s], p["y"][s], Q[s], K[s], O[s], backend=backend)
        assert_close(pred, Phi @ W, rtol=1e-8)  # least-squares fits agree (cond(Phi) ~ 1e2: 1e-8 is loose)


def test_full_rank_head_error_falls_with_beta(rng):
    p = make_inputs(rng, samples=200, N=8, d=3)
    f = nearest_point_target(p["X"], p["y"])
    errs = []
    for beta in (1.0, 8.0, 64.0, 512.0):
        h = full_rank_head(3, beta)
        out = multihead_lowrank(p["X"], p["y"], h["Q"], h["K"], np.eye(3)[None], backend="torch")
        errs.append(np.mean(np.sum((out - f) ** 2, -1)))
    assert all(a > b for a, b in zip(errs, errs[1:])) and errs[-1] < 0.01


def test_torch_gradients_match_central_differences(rng):
    p = make_inputs(rng, samples=2, N=3, d=3)
    Q, K = _heads(rng, (2, 2, 3))
    Qt = torch.tensor(Q, requires_grad=True)
    attention_heads(torch.tensor(p["X"]), torch.tensor(p["y"]), Qt, torch.tensor(K)).sum().backward()
    num = np.zeros_like(Q)
    for i in np.ndindex(Q.shape):
        f = []
        for s in (1, -1):
            q = Q.copy()
            q[i] += s * 1e-6
            f.append(attention_heads(p["X"], p["y"], q, K).sum())
        num[i] = (f[0] - f[1]) / 2e-6
    assert_close(Qt.grad.numpy(), num, rtol=1e-6)  # central differences: ~h² + eps/h


def test_claim_holds_and_control_rejected():
    rep = run_claim(get("lowrank.full-rank-head-nearest-point"), samples=1, seed=11)
    assert rep.holds and rep.control_status == "rejected", rep.detail + rep.control_detail


@given(key=st.sampled_from(["X", "y", "Q", "K"]),
       how=st.sampled_from(["drop_dim", "wrong_size", "int_dtype", "nan", "inf", "list", "empty"]),
       backend=st.sampled_from(["auto", "ref", "numba", "torch"]))
def test_bad_input_names_the_argument(key, how, backend):
    p = make_inputs(np.random.default_rng(0), samples=3, N=4, d=2)
    p["Q"], p["K"] = np.ones((2, 1, 2)), np.ones((2, 1, 2))
    p[key] = corrupt(p[key], how, axis=-1)
    with pytest.raises((ValueError, TypeError)) as err:
        attention_heads(p["X"], p["y"], p["Q"], p["K"], backend=backend)
    assert key in str(err.value), str(err.value)


# ---- batched least squares: normal equations with a conditioning check, SVD fallback ----------------------
@pytest.mark.parametrize("container", ["numpy", "torch"])
@settings(max_examples=50)  # two methods per example; the @examples pin the awkward cases
@given(S=st.integers(1, 4), T=st.integers(1, 23), P=st.sampled_from([1, 2, 3, 5, 7]), k=st.integers(1, 3),
       deficient=st.sampled_from(["none", "duplicate", "zero", "scaled"]), seed=seeds)
@example(S=1, T=1, P=1, k=1, deficient="none", seed=0)
@example(S=2, T=3, P=7, k=2, deficient="none", seed=1)  # fewer samples than features
@example(S=3, T=20, P=5, k=3, deficient="duplicate", seed=2)
def test_lstsq_batched_equals_per_item_minimum_norm_lstsq(container, S, T, P, k, deficient, seed):
    rng = np.random.default_rng(seed)
    Phi, f = rng.standard_normal((S, T, P)), rng.standard_normal((S, T, k))
    if deficient == "duplicate" and P > 1:
        Phi[0, :, -1] = Phi[0, :, 0]  # exactly rank-deficient item
    if deficient == "zero":
        Phi[-1, :, 0] = 0.0
    if deficient == "scaled" and P > 1:
        Phi[0, :, 1] *= 1e-5  # cond(ΦᵀΦ) ~ 1e10 > 1e6: must take the SVD path
    ref = np.stack([np.linalg.lstsq(Phi[s], f[s], rcond=1e-10)[0] for s in range(S)])
    for method in ("auto", "svd"):
        if container == "torch":
            out = lstsq_batched(torch.tensor(Phi), torch.tensor(f), method=method).numpy()
        else:
            out = lstsq_batched(Phi, f, method=method)
        # normwise on the fitted values and on the minimum-norm weights (cond(Φ) <= ~1e5 here)
        assert_close(np.einsum("stp,spk->stk", Phi, out), np.einsum("stp,spk->stk", Phi, ref), rtol=1e-8)
        assert_close(out, ref, rtol=1e-6 if deficient == "scaled" else 1e-8)


def test_lstsq_batched_gradient_flows_through_torch():
    rng = np.random.default_rng(0)
    Phi = torch.tensor(rng.standard_normal((2, 12, 3)), requires_grad=True)
    f = torch.tensor(rng.standard_normal((2, 12, 1)))
    lstsq_batched(Phi, f).sum().backward()
    num = np.zeros((2, 12, 3))
    base = Phi.detach().numpy()
    for i in [(0, 0, 0), (1, 5, 2), (0, 11, 1)]:
        vals = []
        for s in (1, -1):
            q = base.copy()
            q[i] += s * 1e-6
            vals.append(lstsq_batched(q, f.numpy()).sum())
        num[i] = (vals[0] - vals[1]) / 2e-6
        assert abs(Phi.grad.numpy()[i] - num[i]) <= 1e-6 * max(1.0, abs(num[i]))


def test_lstsq_batched_rejects_an_unknown_method():
    with pytest.raises(ValueError, match="method"):
        lstsq_batched(np.ones((3, 2)), np.ones((3, 1)), method="qr")


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_output_weights_methods_agree(backend, rng):
    p = make_inputs(rng, samples=40, N=4, d=3, batch=(3,))
    Q, K = _heads(rng, (3, 4, 1, 3))
    a = fit_output_weights(p["X"], p["y"], Q, K, backend=backend)
    b = fit_output_weights(p["X"], p["y"], Q, K, method="svd", backend=backend)
    assert_close(a, b, rtol=1e-8)


@pytest.mark.slow  # statistical: ~10-25 s; the scaling functions it uses are tested in test_heads_scaling.py
def test_rank_one_heads_claim_holds_and_control_rejected():
    rep = run_claim(get("lowrank.rank-one-heads-exponential-in-d"), samples=1, seed=4)
    assert rep.holds and rep.control_status == "rejected", rep.detail + rep.control_detail
    assert rep.statistics["rate/rate"]["interval"][0] >= 0.1
