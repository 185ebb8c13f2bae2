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


def _compiled_target(X, y):
    """The nearest-point targets of the fit's one compiled pass (``heads_numba(..., nearest=True)``)."""
    from theorylab.lowrank._heads_numba import heads_numba

    one_head = np.ones((1, 1, X.shape[-1]))  # (H, r, d): shared by every sample
    return heads_numba(X, y, one_head, one_head, nearest=True)[1]


@given(shape=st.sampled_from([(1,), (5,), (2, 3)]), N=st.integers(1, 6), d=dims, ties=st.booleans(), seed=seeds)
@example(shape=(1,), N=1, d=1, ties=False, seed=0)
def test_numba_nearest_point_equals_the_public_target(shape, N, d, ties, seed):
    """The fit's compiled target (first maximum, as argmax) equals nearest_point_target, ties included."""
    rng = np.random.default_rng(seed)
    p = make_inputs(rng, samples=shape[-1], N=N, d=d, batch=shape[:-1])
    X = p["X"]
    if ties:  # every point duplicated: two exact maxima, the first one wins on both sides
        X = np.concatenate([X, X], axis=-2)
    np.testing.assert_array_equal(_compiled_target(X, p["y"]), nearest_point_target(X, p["y"]))


def test_nearest_point_exact_tie_between_distinct_points_takes_the_first():
    """⟨x_1, y⟩ = ⟨x_2, y⟩ = 0.6 exactly for distinct points: both paths return x_1 (argmax's first maximum)."""
    X = np.array([[[-1.0, 0.0], [0.6, 0.8], [0.6, -0.8]]])
    y = np.array([[1.0, 0.0]])
    np.testing.assert_array_equal(nearest_point_target(X, y), [[0.6, 0.8]])
    np.testing.assert_array_equal(_compiled_target(X, y), [[0.6, 0.8]])


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
def _features(S, T, P, k, deficient, seed):
    """Φ (S, T, P), f (S, T, k) and per-item np.linalg.lstsq (minimum norm); ``deficient`` plants an
    exactly rank-deficient item ("duplicate"), a zero column ("zero"), cond(ΦᵀΦ) ~ 1e10 > 1e6
    ("scaled": the SVD path) or ~1e2-1e4 ("mild": typically the Cholesky path)."""
    rng = np.random.default_rng(seed)
    Phi, f = rng.standard_normal((S, T, P)), rng.standard_normal((S, T, k))
    if deficient == "duplicate" and P > 1:
        Phi[0, :, -1] = Phi[0, :, 0]
    if deficient == "zero":
        Phi[-1, :, 0] = 0.0
    if deficient == "scaled" and P > 1:
        Phi[0, :, 1] *= 1e-5
    if deficient == "mild" and P > 1:
        Phi[0, :, 1] *= 1e-1
    return Phi, f, np.stack([np.linalg.lstsq(Phi[s], f[s], rcond=1e-10)[0] for s in range(S)])


@pytest.mark.parametrize("container", ["numpy", "torch"])
@settings(max_examples=50)  # two methods per example; the @examples pin the awkward cases
@given(S=st.integers(1, 4), T=st.integers(1, 23), P=st.sampled_from([1, 2, 3, 5, 7]), k=st.integers(1, 3),
       deficient=st.sampled_from(["none", "duplicate", "zero", "scaled"]), seed=seeds)
@example(S=1, T=1, P=1, k=1, deficient="none", seed=0)
@example(S=2, T=3, P=7, k=2, deficient="none", seed=1)  # fewer samples than features
@example(S=3, T=20, P=5, k=3, deficient="duplicate", seed=2)
def test_lstsq_batched_equals_per_item_minimum_norm_lstsq(container, S, T, P, k, deficient, seed):
    Phi, f, ref = _features(S, T, P, k, deficient, seed)
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


# ---- the fit's compiled path: heads and targets in one pass, normal equations per item ----------------------
@given(sweep=st.sampled_from([(), (1,), (4,), (2, 3)]), shared=st.booleans(), T=st.integers(1, 6),
       N=st.integers(1, 6), d=dims, H=st.integers(1, 3), r=st.integers(1, 3),
       scale=st.sampled_from([1e-3, 1.0, 40.0, 1e3]), ties=st.booleans(), seed=seeds)
@example(sweep=(), shared=True, T=1, N=1, d=1, H=1, r=1, scale=1.0, ties=False, seed=0)
@example(sweep=(1,), shared=False, T=1, N=1, d=1, H=1, r=1, scale=1e3, ties=True, seed=1)
@example(sweep=(2, 3), shared=False, T=5, N=2, d=7, H=3, r=3, scale=1e3, ties=False, seed=2)
def test_one_pass_heads_and_targets_equal_the_references(sweep, shared, T, N, d, H, r, scale, ties, seed):
    """heads_numba(..., nearest=True): heads as attention_heads_ref, targets exactly nearest_point_target
    (ties: every point twice, the first maximum on both sides); scale 1e3 puts shifted logits below
    −746, where the compiled exp returns 0 like numpy's."""
    from theorylab.lowrank._heads_numba import heads_numba

    rng = np.random.default_rng(seed)
    p = make_inputs(rng, samples=T, N=N, d=d, batch=sweep)
    X = np.concatenate([p["X"], p["X"]], axis=-2) if ties else p["X"]
    Q, K = _heads(rng, ((H, r, d) if shared else sweep + (H, r, d)))
    heads, f = heads_numba(X, p["y"], Q * scale, K, nearest=True)
    ref = attention_heads_ref(X, p["y"], Q * scale, K)
    assert heads.shape == ref.shape and np.all(np.isfinite(heads))
    assert_close(heads, ref, dtype=np.float64)
    np.testing.assert_array_equal(f, np.broadcast_to(nearest_point_target(X, p["y"]), f.shape))
    assert heads_numba(X, p["y"], Q, K)[1] is None


def _lstsq_numba(Phi, f):
    from theorylab.lowrank.heads import _lstsq_normal_numba

    return _lstsq_normal_numba(Phi, f, 1e-10)


@settings(max_examples=50)
@given(S=st.integers(1, 4), P=st.sampled_from([1, 2, 3, 5, 7, 12]), extra=st.sampled_from([0, 1, 4, 30]),
       k=st.integers(1, 3), deficient=st.sampled_from(["none", "duplicate", "zero", "scaled", "mild"]), seed=seeds)
@example(S=1, P=1, extra=0, k=1, deficient="none", seed=0)  # one item, T = P = 1
@example(S=1, P=1, extra=0, k=1, deficient="zero", seed=0)  # Φ = 0: G = 0, the SVD returns 0
@example(S=3, P=5, extra=0, k=2, deficient="duplicate", seed=1)  # square T = P, exactly singular item
@example(S=2, P=7, extra=4, k=3, deficient="scaled", seed=2)  # cond(ΦᵀΦ) ~ 1e10: the fallback
def test_compiled_normal_equations_equal_per_item_minimum_norm_lstsq(S, P, extra, k, deficient, seed):
    """Every item as np.linalg.lstsq (minimum norm), the ill-conditioned and singular ones through the
    SVD fallback; the kernel marks exactly those (``bad``) and solves the well-conditioned ones."""
    from theorylab.lowrank._heads_numba import normal_equations
    from theorylab.lowrank.heads import COND_MAX

    Phi, f, ref = _features(S, P + extra, P, k, deficient, seed)
    out = _lstsq_numba(Phi, f)
    assert out.shape == (S, P, k)
    # normwise on the fitted values and the weights; as test_lstsq_batched_equals_per_item_minimum_norm_lstsq
    assert_close(np.einsum("stp,spk->stk", Phi, out), np.einsum("stp,spk->stk", Phi, ref), rtol=1e-8)
    assert_close(out, ref, rtol=1e-6 if deficient == "scaled" else 1e-8)
    W, bad = normal_equations(Phi, f, np.array([P]), COND_MAX)  # one width: the whole Φ
    W, bad = W[:, 0], bad[:, 0]
    G = np.swapaxes(Phi, -1, -2) @ Phi
    with np.errstate(divide="ignore"):
        cond = np.linalg.cond(G, 1)  # (S,) inf where singular
    assert np.all(bad[cond > 1e8]) and not np.any(bad[cond < 1e4])  # away from the threshold: the same choice
    good = ~bad
    assert_close(W[good], ref[good], rtol=1e-8)


@settings(max_examples=50)
@given(S=st.integers(1, 3), P=st.integers(1, 12), extra=st.sampled_from([0, 1, 5, 30]), k=st.integers(1, 3),
       deficient=st.sampled_from(["none", "duplicate", "zero", "scaled"]),
       raw=st.lists(st.integers(1, 12), min_size=1, max_size=6), seed=seeds)
@example(S=1, P=1, extra=0, k=1, deficient="none", raw=[1], seed=0)
@example(S=2, P=6, extra=3, k=2, deficient="duplicate", raw=[1, 3, 5, 6], seed=1)  # a repeated column: width 6 falls back
def test_compiled_prefix_solve_equals_lstsq_of_each_prefix(S, P, extra, k, deficient, raw, seed):
    """One factorization for every width: each prefix Φ[..., :p] solved as np.linalg.lstsq does
    (minimum norm), rows past p zero; the kernel flags exactly the ill-conditioned prefixes, and
    prefixes below a repeated column still come from the factorization."""
    from theorylab.lowrank._heads_numba import normal_equations
    from theorylab.lowrank.heads import COND_MAX, _lstsq_normal_numba

    widths = sorted({min(w, P) for w in raw})  # increasing, distinct, <= P
    Phi, f, _ = _features(S, P + extra, P, k, deficient, seed)
    out = _lstsq_normal_numba(Phi, f, 1e-10, widths)
    assert out.shape == (S, len(widths), P, k)
    W, bad = normal_equations(Phi, f, np.array(widths), COND_MAX)
    for w, p in enumerate(widths):
        ref = np.stack([np.linalg.lstsq(Phi[s, :, :p], f[s], rcond=1e-10)[0] for s in range(S)])
        assert_close(np.einsum("stp,spk->stk", Phi[..., :p], out[:, w, :p]),
                     np.einsum("stp,spk->stk", Phi[..., :p], ref), rtol=1e-8)
        assert np.all(out[:, w, p:] == 0.0)
        with np.errstate(divide="ignore"):
            cond = np.linalg.cond(np.swapaxes(Phi[..., :p], -1, -2) @ Phi[..., :p], 1)
        assert np.all(bad[cond > 1e8, w]) and not np.any(bad[cond < 1e4, w])
        assert_close(W[~bad[:, w], w, :p], ref[~bad[:, w]], rtol=1e-8)


def test_compiled_solve_broadcasts_like_lstsq_batched(rng):
    """Φ (T, P) shared with f (2, T, k), and Φ (3, 1, T, P) with f (4, T, k): the matmul broadcasting."""
    Phi, f = rng.standard_normal((9, 3)), rng.standard_normal((2, 9, 2))
    assert_close(_lstsq_numba(Phi, f), lstsq_batched(Phi, f), dtype=np.float64)
    Phi, f = rng.standard_normal((3, 1, 9, 3)), rng.standard_normal((4, 9, 1))
    out = _lstsq_numba(Phi, f)
    assert out.shape == (3, 4, 3, 1)
    assert_close(out, lstsq_batched(Phi, f), dtype=np.float64)


@given(S=st.integers(1, 3), T=st.integers(1, 14), N=st.integers(1, 5), d=dims, H=st.integers(1, 3),
       r=st.integers(1, 2), shared=st.booleans(), given_target=st.booleans(), dup=st.booleans(), seed=seeds)
@example(S=1, T=1, N=1, d=1, H=1, r=1, shared=False, given_target=False, dup=False, seed=0)
@example(S=2, T=12, N=3, d=2, H=3, r=1, shared=False, given_target=False, dup=True, seed=3)
def test_compiled_fit_equals_the_reference_fit(S, T, N, d, H, r, shared, given_target, dup, seed):
    """fit_output_weights on numba (compiled heads, targets and solve) and on ref (numpy) give the same
    fitted values; ``dup``: head 0 repeated in every item, Φ rank-deficient, so every item takes the
    SVD fallback (T >= P) or the SVD path (T < P)."""
    rng = np.random.default_rng(seed)
    p = make_inputs(rng, samples=T, N=N, d=d, batch=(S,))
    Q, K = _heads(rng, ((H, r, d) if shared else (S, H, r, d)))
    if dup and H > 1:
        Q[..., 1, :, :], K[..., 1, :, :] = Q[..., 0, :, :], K[..., 0, :, :]
    target = rng.standard_normal((S, T, d)) if given_target else None
    O = fit_output_weights(p["X"], p["y"], Q, K, target=target, backend="numba")
    O_ref = fit_output_weights(p["X"], p["y"], Q, K, target=target, backend="ref")
    assert O.shape == O_ref.shape == (S, H, d, d) and O.dtype == np.float64
    Qb, Kb = (np.broadcast_to(A, (S, H, r, d)) for A in (Q, K))
    pred = np.stack([multihead_lowrank(p["X"][s], p["y"][s], Qb[s], Kb[s], O[s], backend="ref") for s in range(S)])
    pred_ref = np.stack([multihead_lowrank(p["X"][s], p["y"][s], Qb[s], Kb[s], O_ref[s], backend="ref")
                         for s in range(S)])
    assert_close(pred, pred_ref, rtol=1e-8)  # least-squares fits; as test_batched_lstsq_equals_per_item_lstsq
    assert_close(O, O_ref, rtol=1e-6)  # minimum-norm weights: cond(Φ) of random heads <= ~1e3 here


def test_fit_keeps_float32_and_the_method_errors(rng):
    p = make_inputs(rng, samples=20, N=3, d=2, batch=(2,), dtype=np.float32)
    Q, K = (A.astype(np.float32) for A in _heads(rng, (2, 2, 1, 2)))
    O = fit_output_weights(p["X"], p["y"], Q, K, backend="numba")
    assert O.dtype == np.float32 and O.shape == (2, 2, 2, 2)
    with pytest.raises(ValueError, match="method"):
        fit_output_weights(p["X"], p["y"], Q, K, method="qr", backend="numba")


@pytest.mark.parametrize("backend", ["ref", "numba", "torch"])
def test_fit_output_weights_refuses_a_target_of_the_wrong_shape(backend):
    """target (sweep..., T, d): a sweep axis that does not broadcast, the wrong T or d, or a NaN
    is refused before any work, naming target and the shape it needs."""
    rng = np.random.default_rng(21)
    p = make_inputs(rng, samples=20, N=3, d=2, batch=(2,))
    Q, K = rng.standard_normal((2, 3, 1, 2)), rng.standard_normal((2, 3, 1, 2))
    X, y = (torch.from_numpy(p[k]) for k in ("X", "y")) if backend == "torch" else (p["X"], p["y"])
    Qa, Ka = (torch.from_numpy(a) for a in (Q, K)) if backend == "torch" else (Q, K)
    for shape in ((3, 20, 2), (2, 19, 2), (2, 20, 3), (20,)):
        with pytest.raises(ValueError, match=r"target must have shape \(sweep\.\.\., T, d\) = \(2, 20, 2\)"):
            fit_output_weights(X, y, Qa, Ka, target=np.zeros(shape), backend=backend)
    bad = np.zeros((2, 20, 2))
    bad[1, 3, 0] = np.nan
    with pytest.raises(ValueError, match="target contains NaN"):
        fit_output_weights(X, y, Qa, Ka, target=bad, backend=backend)
    good = nearest_point_target(p["X"], p["y"])
    O = fit_output_weights(X, y, Qa, Ka, target=good[:1] if backend != "torch" else good, backend=backend)  # (1, T, d) broadcasts
    assert tuple(O.shape) == (2, 3, 2, 2)


def test_compiled_prefix_solve_refuses_widths_out_of_order_or_range(rng):
    from theorylab.lowrank.heads import _lstsq_normal_numba

    Phi, f = rng.standard_normal((2, 9, 4)), rng.standard_normal((2, 9, 1))
    for widths in ([3, 2], [0, 2], [2, 5], [2, 2], []):
        with pytest.raises(ValueError, match="widths"):
            _lstsq_normal_numba(Phi, f, 1e-10, widths)
