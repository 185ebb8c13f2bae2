"""In-context predictors (:mod:`theorylab.icl.predictors`): every backend against the float64
reference at every prefix, an independent per-prompt numpy.linalg.solve check of the contract
functions, metamorphic properties, gradients of the torch path, bad input.

Sides are named ``ref`` (float64 reference or independent solve) and ``out`` (under test).
"""

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from theorylab.backends import numba_available
from theorylab.claims import get, run_claim
from theorylab.icl import (
    averaging_predict,
    bayes_predict,
    gd_predict,
    knn_predict,
    lstsq_predict,
    make_inputs,
    ridge_predict,
)
from theorylab.icl.predictors import gd_ref, knn_ref, lstsq_ref, ridge_closed_form, rls_ref
from theorylab.icl.predictors_claims import gain_without_denominator, posterior_mean_function_space
from theorylab.testing import seeds
from theorylab.tolerances import assert_close

pytestmark = pytest.mark.usefixtures("one_thread")

BACKENDS = [
    "ref",
    pytest.param("numba", marks=pytest.mark.skipif(not numba_available(), reason="numba not installed")),
    "torch",
]
DIMS = st.sampled_from((1, 2, 3, 5, 7))
BATCH = st.sampled_from(((1,), (2,), (3,), (2, 3), (1, 2, 2)))
sizes = st.fixed_dictionaries({"batch": BATCH, "k": st.integers(1, 12), "d": DIMS, "m": st.sampled_from((1, 2, 5))})
EDGE = dict(batch=(1,), k=1, d=1, m=1)
ODD = dict(batch=(2, 3), k=7, d=5, m=3)

# (public function, keyword arguments, reference on (B, k, d) float64 arrays -> (B, k, m))
PREDICTORS = {
    "ridge": (ridge_predict, dict(lam=0.7), lambda X, y, Q: rls_ref(X, y, Q, 1 / 0.7, 1.0)),
    "bayes": (bayes_predict, dict(noise=0.5, tau=1.5), lambda X, y, Q: rls_ref(X, y, Q, 1.5**2, 0.5**2)),
    "lstsq": (lstsq_predict, {}, lambda X, y, Q: lstsq_ref(X, y, Q)),
    "gd": (gd_predict, dict(lr=0.2, steps=3), lambda X, y, Q: gd_ref(X, y, Q, 0.2, 3)),
    "averaging": (averaging_predict, {}, lambda X, y, Q: gd_ref(X, y, Q, 1.0, 1)),
    "knn": (knn_predict, dict(n_neighbors=3), lambda X, y, Q: knn_ref(X, y, Q, 3)),
}


def _flat(p):
    k, d = p["X"].shape[-2:]
    return p["X"].reshape(-1, k, d), p["y"].reshape(-1, k), p["Xq"].reshape(-1, p["Xq"].shape[-2], d)


def _pinv_prefixes(X, y, Xq):
    """x_qᵀ pinv(X_j) y_j per prefix, by numpy's SVD-based pinv (independent of Greville)."""
    return np.stack([np.einsum("bmd,bdk,bk->bm", Xq, np.linalg.pinv(X[:, : j + 1]), y[:, : j + 1])
                     for j in range(X.shape[1])], axis=1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(PREDICTORS))
@given(sz=sizes, seed=seeds)
@example(sz=EDGE, seed=0)
@example(sz=ODD, seed=1)
def test_backends_match_reference_at_every_prefix(backend, name, sz, seed):
    fn, kw, reference = PREDICTORS[name]
    p = make_inputs(np.random.default_rng(seed), **sz, noise=0.1)
    ref = reference(*_flat(p)).reshape(p["y"].shape + (sz["m"],))  # (..., k, m)
    out = fn(p["X"], p["y"], p["Xq"], prefixes=True, backend=backend, **kw)
    assert out.shape == ref.shape and out.dtype == np.float64
    rtol = 1e-10
    if name == "lstsq":  # Greville vs Greville in another order: error ~ eps cond(X_j)^2 at the j = d peak
        rtol = max(1e-10, 1e-14 * max(np.linalg.cond(X[: j + 1]) ** 2 for X in _flat(p)[0] for j in range(sz["k"])))
    assert_close(out, ref, rtol=rtol, name=f"{name}[{backend}]")
    last = fn(p["X"], p["y"], p["Xq"], backend=backend, **kw)
    assert last.shape == p["yq"].shape
    assert_close(last, ref[..., -1, :], rtol=rtol, name=f"{name}[{backend}] last prefix")


@pytest.mark.parametrize("backend", BACKENDS)
@given(sz=sizes, seed=seeds, lam=st.sampled_from((0.05, 0.3, 1.0, 10.0)))
@example(sz=EDGE, seed=0, lam=1.0)
def test_ridge_and_gd_match_an_independent_solve_per_prompt(backend, sz, seed, lam):
    p = make_inputs(np.random.default_rng(seed), **sz, noise=0.3)
    X, y, Xq = _flat(p)
    lr, steps = 0.1, 2
    ridge_ref, gd_ref_ = [], []
    for b in range(X.shape[0]):  # one plain solve per prompt: w = (XᵀX + λI)⁻¹Xᵀy
        A = X[b].T @ X[b] + lam * np.eye(sz["d"])
        ridge_ref.append(Xq[b] @ np.linalg.solve(A, X[b].T @ y[b]))
        w = np.zeros(sz["d"])  # GD written out: w <- w - lr * (1/k) Xᵀ(Xw - y)
        for _ in range(steps):
            w = w - lr * X[b].T @ (X[b] @ w - y[b]) / sz["k"]
        gd_ref_.append(Xq[b] @ w)
    shape = p["yq"].shape
    assert_close(ridge_predict(p["X"], p["y"], p["Xq"], lam, backend=backend), np.reshape(ridge_ref, shape), dtype=np.float64)
    assert_close(gd_predict(p["X"], p["y"], p["Xq"], lr, steps, backend=backend), np.reshape(gd_ref_, shape), dtype=np.float64)


@given(sz=sizes, seed=seeds)
@example(sz=EDGE, seed=0)
def test_ridge_recursion_equals_closed_form_and_lstsq_equals_pinv(sz, seed):
    p = make_inputs(np.random.default_rng(seed), **sz)
    X, y, Xq = _flat(p)
    assert_close(rls_ref(X, y, Xq, 1 / 0.3, 1.0), ridge_closed_form(X, y, Xq, 0.3), dtype=np.float64)
    cond2 = max(np.linalg.cond(X[b, : j + 1]) ** 2 for b in range(X.shape[0]) for j in range(sz["k"]))
    assert_close(lstsq_ref(X, y, Xq), _pinv_prefixes(X, y, Xq), rtol=max(1e-10, 1e-14 * cond2))


@given(sz=sizes, seed=seeds)
def test_bayes_equals_function_space_posterior_mean(sz, seed):
    p = make_inputs(np.random.default_rng(seed), **sz, noise=0.5, tau=2.0)
    ref = posterior_mean_function_space(*_flat(p), 0.5, 2.0).reshape(p["y"].shape + (sz["m"],))
    assert_close(bayes_predict(p["X"], p["y"], p["Xq"], 0.5, 2.0, prefixes=True, backend="ref"), ref, dtype=np.float64)


def test_predictors_by_hand():
    # d = 1, k = 2: x = (1, 2), y = (2, 3), query 1
    X, y, Q = np.array([[[1.0], [2.0]]]), np.array([[2.0, 3.0]]), np.array([[[1.0]]])
    np.testing.assert_allclose(ridge_predict(X, y, Q, 1.0, prefixes=True, backend="ref").ravel(), [2 / 2, 8 / 6])
    np.testing.assert_allclose(lstsq_predict(X, y, Q, prefixes=True, backend="ref").ravel(), [2.0, 8 / 5])
    np.testing.assert_allclose(averaging_predict(X, y, Q, prefixes=True, backend="ref").ravel(), [2.0, 4.0])
    np.testing.assert_allclose(gd_predict(X, y, Q, 0.5, prefixes=True, backend="ref").ravel(), [1.0, 2.0])
    np.testing.assert_allclose(knn_predict(X, y, Q, 1, prefixes=True, backend="ref").ravel(), [2.0, 2.0])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["ridge", "lstsq", "bayes", "averaging", "gd"])
@given(sz=sizes, seed=seeds)
def test_permuting_examples_leaves_the_full_prompt_prediction(backend, name, sz, seed):
    fn, kw, _ = PREDICTORS[name]
    rng = np.random.default_rng(seed)
    p = make_inputs(rng, **sz, noise=0.2)
    perm = rng.permutation(sz["k"])
    ref = fn(p["X"], p["y"], p["Xq"], backend=backend, **kw)
    out = fn(p["X"][..., perm, :], p["y"][..., perm], p["Xq"], backend=backend, **kw)
    rtol = 1e-10 if name != "lstsq" or sz["k"] != sz["d"] else 1e-6  # the interpolation peak k = d: eps cond^2
    assert_close(out, ref, rtol=rtol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_invariance(backend, rng):
    p = make_inputs(rng, batch=(3, 2), k=9, d=3, m=2, noise=0.1)
    full = ridge_predict(p["X"], p["y"], p["Xq"], 0.5, prefixes=True, backend=backend)
    one = ridge_predict(p["X"][1:2, 0], p["y"][1:2, 0], p["Xq"][1:2, 0], 0.5, prefixes=True, backend=backend)
    assert_close(one, full[1:2, 0], dtype=np.float64)


@pytest.mark.parametrize("name", ["ridge", "bayes", "gd", "averaging", "knn"])
def test_float32_backends(name, rng):
    fn, kw, reference = PREDICTORS[name]
    p = make_inputs(rng, batch=(2, 2), k=17, d=5, m=3, noise=0.1, dtype=np.float32)
    ref = reference(*(a.astype(np.float64) for a in _flat(p))).reshape(p["y"].shape + (3,))
    for b in ("ref", "numba", "torch"):
        out = fn(p["X"], p["y"], p["Xq"], prefixes=True, backend=b, **kw)
        assert out.dtype == np.float32
        assert_close(out, ref, dtype=np.float32, name=f"{name}[{b}]")


@pytest.mark.parametrize("name", ["ridge", "bayes", "lstsq", "gd"])
def test_torch_gradients_match_central_differences(name, rng):
    fn, kw, _ = PREDICTORS[name]
    p = make_inputs(rng, batch=(2,), k=4, d=3, m=2, noise=0.1)
    args = [torch.from_numpy(p[a]).requires_grad_(True) for a in ("X", "y", "Xq")]
    assert torch.autograd.gradcheck(lambda X, y, Q: fn(X, y, Q, prefixes=True, backend="torch", **kw), args,
                                    eps=1e-6, atol=1e-7, rtol=1e-6)


def test_torch_path_on_tensors_keeps_container_and_grad(rng):
    p = make_inputs(rng, batch=2, k=5, d=2, m=1)
    X = torch.from_numpy(p["X"]).requires_grad_(True)
    out = ridge_predict(X, torch.from_numpy(p["y"]), torch.from_numpy(p["Xq"]), 1.0)  # auto -> torch
    assert isinstance(out, torch.Tensor) and out.requires_grad and out.shape == (2, 1)
    with pytest.raises(ValueError, match="requires grad"):
        ridge_predict(X, torch.from_numpy(p["y"]), torch.from_numpy(p["Xq"]), 1.0, backend="ref")


def test_sherman_morrison_control_is_a_finite_near_miss(rng):
    p = make_inputs(rng, batch=2, k=6, d=3, m=2)
    X, y, Xq = _flat(p)
    bad = gain_without_denominator(X, y, Xq, 0.5)
    err = np.abs(bad - ridge_closed_form(X, y, Xq, 0.5)).max()
    assert np.isfinite(bad).all() and err > 1e-3


# ---- bad input ------------------------------------------------------------------------------
def _good(rng):
    return make_inputs(rng, batch=2, k=4, d=3, m=2)


@pytest.mark.parametrize("fn,kw", [(ridge_predict, dict(lam=1.0)), (gd_predict, dict(lr=0.1)), (lstsq_predict, {}),
                                   (knn_predict, {}), (averaging_predict, {}), (bayes_predict, dict(noise=1.0, tau=1.0))])
def test_bad_input_names_the_argument(fn, kw, rng):
    p = _good(rng)
    X, y, Q = p["X"], p["y"], p["Xq"]
    with pytest.raises(ValueError, match=r"y must have shape \(2, 4\)"):
        fn(X, y[:, :3], Q, **kw)
    with pytest.raises(ValueError, match=r"Xq must have shape \(2, 2, 3\)"):
        fn(X, y, Q[..., :2], **kw)  # mismatched d
    with pytest.raises(ValueError, match="X has a zero-size dimension"):
        fn(X[:, :0], y[:, :0], Q, **kw)  # k = 0
    bad = X.copy()
    bad[0, 1, 2] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        fn(bad, y, Q, **kw)
    with pytest.raises(TypeError, match="X must have a floating dtype"):
        fn(X.astype(np.int64), y, Q, **kw)
    with pytest.raises(TypeError, match="inputs must share one dtype"):
        fn(X.astype(np.float32), y, Q, **kw)
    with pytest.raises(TypeError, match="mix numpy arrays and torch tensors"):
        fn(torch.from_numpy(X), y, Q, **kw)
    with pytest.raises(ValueError, match="unknown backend"):
        fn(X, y, Q, backend="cuda", **kw)
    with pytest.raises(TypeError, match="prefixes must be a bool"):
        fn(X, y, Q, prefixes=1, **kw)


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_scalars(value, rng):
    p = _good(rng)
    X, y, Q = p["X"], p["y"], p["Xq"]
    with pytest.raises(ValueError, match="lam must be a finite number > 0"):
        ridge_predict(X, y, Q, value)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        gd_predict(X, y, Q, value)
    with pytest.raises(ValueError, match="noise must be a finite number > 0"):
        bayes_predict(X, y, Q, value, 1.0)
    with pytest.raises(TypeError, match="lam must be a number"):
        ridge_predict(X, y, Q, "1")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        gd_predict(X, y, Q, 0.1, 0)
    with pytest.raises(TypeError, match="n_neighbors must be an integer"):
        knn_predict(X, y, Q, 2.5)


def test_claims_hold_and_controls_are_rejected():
    for cid in ("icl.sherman-morrison-ridge", "icl.ridge-is-bayes-posterior-mean"):
        r = run_claim(get(cid), samples=2, seed=3)
        assert r.ok and r.control_status == "rejected" and r.control_margin > 1e3, (cid, r.detail)


# ---- minimum-norm least squares on awkward prompts: k < d, k = d, k > d, rank-deficient X ----
def _low_rank_prompt(rng, batch, k, d, rank, m):
    """X = A C of rank <= ``rank`` with a repeated row and a zero row when k allows: examples in the span."""
    X = rng.standard_normal((batch, k, rank)) @ rng.standard_normal((batch, rank, d))
    if k >= 3:
        X[:, k - 1] = X[:, 0]  # a duplicate
        X[:, 1] = 0.0  # a zero example
    return X, rng.standard_normal((batch, k)), rng.standard_normal((batch, m, d))


def _cond2(X):
    """max over prefixes of (s_max / s_min)² over the nonzero singular values (the error growth of Greville)."""
    worst = 1.0
    for b in range(X.shape[0]):
        for j in range(X.shape[1]):
            s = np.linalg.svd(X[b, : j + 1], compute_uv=False)
            s = s[s > 1e-9 * s.max()] if s.max() > 0 else s[:0]
            worst = max(worst, (s[0] / s[-1]) ** 2 if s.size else 1.0)
    return worst


@pytest.mark.parametrize("backend", BACKENDS)
@given(d=DIMS, dk=st.sampled_from((-2, -1, 0, 1, 4)), low=st.booleans(), seed=seeds)
@example(d=5, dk=0, low=False, seed=0)  # k = d: the interpolation peak
@example(d=7, dk=4, low=True, seed=1)
def test_lstsq_on_awkward_prompts_matches_reference_and_pinv(backend, d, dk, low, seed):
    rng = np.random.default_rng(seed)
    k = max(1, d + dk)
    rank = max(1, d // 2) if low else d
    X, y, Xq = _low_rank_prompt(rng, 3, k, d, rank, 2)
    ref = lstsq_ref(X, y, Xq)
    rtol = max(1e-10, 1e-14 * _cond2(X))
    out = lstsq_predict(X, y, Xq, prefixes=True, backend=backend)
    assert_close(out, ref, rtol=rtol, name=f"lstsq[{backend}] k={k} d={d} rank<={rank}")
    assert_close(out, _pinv_prefixes(X, y, Xq), rtol=rtol, name=f"lstsq[{backend}] vs pinv")


@pytest.mark.parametrize("backend", ["ref", "numba", "torch"])
def test_gd_step_too_large_for_short_prefixes_runs_only_the_full_prompt(backend):
    """A first example of norm 3 and lr = 40: the one-example prefix diverges (|1 − lr|x₁|²| = 359 per
    step, past the float64 range in 150 steps) while the full prompt of 200 examples converges
    (lr λ_max(XᵀX/k) < 2).  Without ``prefixes`` only the full prompt runs: no overflow warning,
    the reference's last row, and (torch) a finite gradient."""
    import warnings

    rng = np.random.default_rng(3)
    X = rng.standard_normal((2, 200, 2)) * 0.05
    X[:, 0] = [3.0, 0.0]
    y, Xq = X @ np.array([1.0, -2.0]), rng.standard_normal((2, 3, 2))
    lr, steps = 40.0, 150
    assert lr * np.max(np.linalg.eigvalsh(np.swapaxes(X, 1, 2) @ X / 200)) < 2  # the full prompt converges
    with np.errstate(all="ignore"):
        every = np.asarray(gd_predict(X, y, Xq, lr, steps=steps, prefixes=True, backend=backend))
    assert not np.isfinite(every[:, 0]).all()  # the short prefixes do diverge
    want = gd_ref(X, y, Xq, lr, steps, 199)[:, 0]  # the reference's last prefix alone
    assert np.isfinite(want).all()
    np.testing.assert_allclose(every[:, -1], want, rtol=1e-9, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = gd_predict(X, y, Xq, lr, steps=steps, backend=backend)
    np.testing.assert_allclose(np.asarray(out), want, rtol=1e-9, atol=1e-12)
    if backend == "torch":
        Xt = torch.tensor(X, requires_grad=True)
        gd_predict(Xt, torch.tensor(y), torch.tensor(Xq), lr, steps=steps, backend="torch").sum().backward()
        assert torch.isfinite(Xt.grad).all()
