"""Polynomial features, truncation bound and ε-rank (:mod:`theorylab.lowrank.bounded_entries`); their claims.

Sides are named ``ref`` (float64 reference) and ``out`` (the computation under test)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from theorylab.claims import get, run_claim
from theorylab.lowrank.bounded_entries import (
    eps_rank,
    eps_rank_bound,
    feature_count,
    make_inputs,
    polynomial_features,
    taylor_kernel,
    taylor_remainder_bound,
)
from theorylab.lowrank.bounded_entries_claims import (
    enumerate_count,
    eps_rank_unscaled,
    factorization_proof,
    features_without_multinomial,
    rank_by_truncation,
)
from theorylab.testing import corrupt, seeds
from theorylab.tolerances import assert_close

BACKENDS = ["ref", "torch"]
EPS_BACKENDS = ["ref", "numba", "torch"]
dims = st.sampled_from([1, 2, 3, 5, 7])
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("backend", BACKENDS)
@given(d=dims, g=st.integers(0, 4), n=st.integers(1, 9), m=st.integers(1, 9), B=st.sampled_from([0.3, 1.0, 5.0]),
       seed=seeds)
@example(d=1, g=0, n=1, m=1, B=1.0, seed=0)
@example(d=7, g=3, n=2, m=5, B=5.0, seed=1)
def test_features_factor_the_taylor_kernel(backend, d, g, n, m, B, seed):
    p = make_inputs(np.random.default_rng(seed), n=n, m=m, d=d, B=B)
    ref = taylor_kernel(p["Q"], p["K"], g)
    U, V = polynomial_features(p["Q"], g, backend=backend), polynomial_features(p["K"], g, backend=backend)
    assert U.shape == (m, feature_count(d, g)) and V.shape == (n, math.comb(d + g, g))
    assert_close(U @ V.T, ref, dtype=np.float64, name=backend)
    low = p["Q"].astype(np.float32)
    assert_close(polynomial_features(low, g, backend=backend), polynomial_features(low.astype(np.float64), g),
                 dtype=np.float32)


@given(d=st.integers(1, 4), g=st.integers(0, 5))
def test_feature_count_equals_enumeration(d, g):
    assert feature_count(d, g) == enumerate_count(d, g) == polynomial_features(np.ones((1, d)), g).shape[-1]


def test_features_by_hand():
    # d = 2, g = 2: [1, x1, x2, x1²/√2, x1 x2, x2²/√2]
    out = polynomial_features(np.array([[2.0, 3.0]]), 2, backend="torch")[0]
    np.testing.assert_allclose(out, [1, 2, 3, 4 / math.sqrt(2), 6, 9 / math.sqrt(2)], rtol=1e-15)


def test_missing_multinomial_coefficients_fail():
    p = make_inputs(np.random.default_rng(0), n=4, m=3, d=3, B=1.0)
    bad = features_without_multinomial(p["Q"], 2) @ features_without_multinomial(p["K"], 2).T
    assert np.max(np.abs(bad - taylor_kernel(p["Q"], p["K"], 2))) > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
@given(d=dims, g=st.integers(1, 5), beta=st.sampled_from([0.05, 0.5, 4.0]), seed=seeds)
def test_truncation_within_lagrange_bound(backend, d, g, beta, seed):
    p = make_inputs(np.random.default_rng(seed), n=5, m=4, d=d, B=math.sqrt(beta))
    S = p["Q"] @ p["K"].T
    U, V = polynomial_features(p["Q"], g, backend=backend), polynomial_features(p["K"], g, backend=backend)
    err = np.abs(np.exp(S) - U @ V.T)
    assert np.all(err <= taylor_remainder_bound(S, g) + 1e-13 * np.exp(np.abs(p["Q"]) @ np.abs(p["K"]).T))


def test_gradient_of_features_matches_central_differences():
    X = torch.tensor(make_inputs(np.random.default_rng(3), n=3, d=3, B=1.2)["Q"], requires_grad=True)
    w = torch.randn(3, feature_count(3, 3), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    (polynomial_features(X, 3) * w).sum().backward()
    num = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            h = np.zeros((3, 3))
            h[i, j] = 1e-6
            f = lambda Y: float((polynomial_features(torch.tensor(Y), 3) * w).sum())  # noqa: E731
            num[i, j] = (f(X.detach().numpy() + h) - f(X.detach().numpy() - h)) / 2e-6
    # central differences: truncation ~h² |f'''| ~ 1e-12, rounding ~eps |f| / h ~ 1e-10
    assert_close(X.grad.numpy(), num, rtol=1e-6)


@pytest.mark.parametrize("backend", EPS_BACKENDS)
@given(m=st.integers(1, 9), n=st.integers(1, 9), eps=st.sampled_from([1e-1, 1e-2, 1e-4]), seed=seeds)
@example(m=1, n=1, eps=1e-2, seed=0)
def test_eps_rank_equals_explicit_truncations(backend, m, n, eps, seed):
    rng = np.random.default_rng(seed)
    M = np.exp(rng.standard_normal((m, 3)) @ rng.standard_normal((3, n)))
    assert int(eps_rank(M, eps, backend=backend)) == rank_by_truncation(M, eps)


@pytest.mark.parametrize("backend", EPS_BACKENDS)
def test_eps_rank_is_batched_and_scale_free(backend, rng):
    M = np.exp(rng.standard_normal((2, 3, 6, 2)) @ rng.standard_normal((2, 3, 2, 7)))
    r = eps_rank(M, 1e-3, backend=backend)
    assert r.shape == (2, 3)
    assert [int(x) for x in np.ravel(r)] == [rank_by_truncation(x, 1e-3) for x in M.reshape(6, 6, 7)]
    np.testing.assert_array_equal(eps_rank(1e6 * M, 1e-3, backend=backend), r)  # ε is relative to ||M||_F
    np.testing.assert_array_equal(eps_rank(1e-6 * M, 1e-3, backend=backend), r)
    assert np.all(eps_rank_unscaled(1e-6 * M, 1e-3) == 0)  # the unscaled threshold is not scale-free


@given(n=st.integers(1, 40), B=st.sampled_from([0.25, 0.5]), seed=seeds)
def test_eps_rank_below_taylor_bound(n, B, seed):
    p = make_inputs(np.random.default_rng(seed), n=n, d=3, B=B)
    assert int(eps_rank(np.exp(p["Q"] @ p["K"].T), 1e-2)) <= eps_rank_bound(B, 3, 1e-2)


def test_sympy_proof():
    assert factorization_proof().proved


@pytest.mark.parametrize("cid", ["lowrank.polynomial-kernel-factorization", "lowrank.taylor-truncation-bound",
                                 pytest.param("lowrank.eps-rank-threshold", marks=pytest.mark.slow)])
def test_claims_hold_and_controls_rejected(cid):
    rep = run_claim(get(cid), samples=1, seed=3)
    assert rep.holds and rep.control_status == "rejected", rep.detail + rep.control_detail


HOWS = ["extra_dim", "wrong_size", "int_dtype", "nan", "inf", "list", "empty"]


@given(how=st.sampled_from(HOWS), backend=st.sampled_from(["auto", "ref", "numba", "torch"]))
def test_bad_input_names_the_argument(how, backend):
    if how not in ("extra_dim", "wrong_size") and backend != "numba":  # every shape (..., d) is a valid X
        with pytest.raises((ValueError, TypeError), match="X"):
            polynomial_features(corrupt(np.ones((3, 2)), how), 2, backend=backend)
    bad = np.ones(3) if how in ("extra_dim", "wrong_size") else corrupt(np.ones((3, 2)), how)  # M needs 2 axes
    with pytest.raises((ValueError, TypeError), match="M"):
        eps_rank(bad, 0.1, backend=backend)


def test_option_errors():
    X = np.ones((3, 2))
    with pytest.raises(ValueError, match="degree"):
        polynomial_features(X, -1)
    with pytest.raises(TypeError, match="degree"):
        polynomial_features(X, 2.5)
    with pytest.raises(ValueError, match="eps"):
        eps_rank(X, 0.0)
    with pytest.raises(ValueError, match="unknown backend"):
        eps_rank(X, 0.1, backend="fast")
    with pytest.raises(ValueError, match="unknown backend"):
        polynomial_features(X, 2, backend="numba")  # eps_rank alone has a numba path
    with pytest.raises(ValueError, match="requires grad"):
        polynomial_features(torch.ones(3, 2, dtype=torch.float64, requires_grad=True), 2, backend="ref")


# ---- the numba eps-rank (Gram eigenvalues in one compiled loop) against the batched SVD reference ----
def tridiagonal_eigenvalues(d, e):
    """Eigenvalues of C tridiagonals (d, e) (k, C) by ql_lanes without early stop, in place in d
    (unsorted per lane); False if some lane did not converge."""
    from theorylab.lowrank._eigen_lanes_numba import ql_lanes

    C = d.shape[1]
    f = np.empty(C, dtype=np.int64)
    ql_lanes(d, e, np.full(C, -1.0), np.zeros(C), f)
    return bool(np.all(f == d.shape[0]))


@given(B=st.sampled_from([1, 2, 4, 33]), m=st.integers(1, 13), n=st.integers(1, 13),
       kind=st.sampled_from(["exp", "gauss", "deficient"]),
       scale=st.sampled_from([1.0, 1e-120, 1e120]), eps=st.sampled_from([0.3, 1e-2, 1e-5, 1e-7]), seed=seeds)
@example(B=1, m=1, n=1, kind="gauss", scale=1.0, eps=1e-2, seed=0)
@example(B=2, m=2, n=7, kind="deficient", scale=1.0, eps=1e-7, seed=1)
@example(B=3, m=13, n=2, kind="exp", scale=1e120, eps=0.3, seed=2)
def test_numba_eps_rank_equals_the_svd_reference(B, m, n, kind, scale, eps, seed):
    rng = np.random.default_rng(seed)
    if kind == "exp":
        M = np.exp(rng.standard_normal((B, m, 3)) @ rng.standard_normal((B, 3, n)))
    else:
        M = rng.standard_normal((B, m, n))
        if kind == "deficient":  # rank <= 1 and a zero item: decisions at exact ties and zero tails
            M = rng.standard_normal((B, m, 1)) @ rng.standard_normal((B, 1, n))
            M[0] = 0.0
    ref = eps_rank(M, eps, backend="ref")
    out = eps_rank(M * scale, eps, backend="numba")  # scale-free: the reference of the unscaled M
    np.testing.assert_array_equal(out, ref)
    if scale != 1.0:  # the reference itself at 1e±120 (σ² would leave the float64 range unscaled)
        np.testing.assert_array_equal(eps_rank(M * scale, eps, backend="ref"), ref)
    assert out.dtype == np.int64 and out.shape == (B,)


def test_numba_eps_rank_of_structured_spectra():
    """Known singular values: diag(σ) rotated, tails by hand (hypothesis above covers random matrices)."""
    rng = np.random.default_rng(5)
    U, _ = np.linalg.qr(rng.standard_normal((9, 9)))
    V, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    s = np.array([4.0, 2.0, 1.0, 0.5, 0.0, 0.0])  # ||M||_F² = 21.25
    M = U[:, :6] @ np.diag(s) @ V.T
    for eps, want in ((0.5, 1), (0.2, 3), (0.05, 4), (1e-9, 4), (1.01, 0)):  # tails after r = 1..4: 5.25, 1.25, 0.25, 0
        assert int(eps_rank(M, eps, backend="numba")) == want == int(eps_rank(M, eps, backend="ref"))
    assert int(eps_rank(np.zeros((3, 4)), 0.1, backend="numba")) == 0


@settings(max_examples=40)
@given(k=st.integers(1, 30), seed=seeds)
@example(k=1, seed=0)
@example(k=2, seed=1)
def test_numba_kernel_decides_generic_items_itself(k, seed):
    """The SVD fallback must stay rare: on generic matrices the kernel's own eigenvalues match
    eigvalsh and its own ranks (no -1) equal the reference (a broken QR step would hide behind it)."""
    from theorylab.lowrank._bounded_entries_numba import LANES, eps_rank_numba
    from theorylab.lowrank._eigen_lanes_numba import tridiagonalize_lanes

    rng = np.random.default_rng(seed)
    A = rng.standard_normal((3, k, k + 3))
    A[2, :, 1:] = 0.0  # a rank-1 lane: zero columns below the diagonal (no-op reflectors) next to generic ones
    Gs = A @ np.swapaxes(A, -1, -2)  # (3, k, k)
    lower = np.tril(rng.standard_normal((k, k)), -1)[..., None]  # garbage below the diagonal: never read
    dd, ee, v, p = (np.empty((k, 3)) for _ in range(4))
    tridiagonalize_lanes(np.ascontiguousarray(np.moveaxis(Gs, 0, -1) + lower), dd, ee, v, p)
    assert tridiagonal_eigenvalues(dd, ee)
    for c, G in enumerate(Gs):
        np.testing.assert_allclose(np.sort(dd[:, c]), np.linalg.eigvalsh(G), rtol=0, atol=1e-12 * np.abs(G).max())
    B = LANES + 3  # a full group of lanes and a partial one
    M = np.exp(rng.standard_normal((B, k, 3)) @ rng.standard_normal((B, 3, k + 2)))
    out = eps_rank_numba(M, 1e-2)
    assert np.all(out >= 0)
    np.testing.assert_array_equal(out, eps_rank(M, 1e-2, backend="ref"))


def test_polynomial_features_ref_backend_keeps_torch_in_torch_out():
    from theorylab.lowrank.bounded_entries import polynomial_features

    X = np.random.default_rng(6).standard_normal((5, 3))
    ref = polynomial_features(torch.from_numpy(X), 2, backend="ref")
    assert isinstance(ref, torch.Tensor)
    np.testing.assert_allclose(ref.numpy(), polynomial_features(X, 2, backend="ref"), rtol=1e-12)
    out32 = polynomial_features(X.astype(np.float32), 2, backend="ref")
    assert isinstance(out32, np.ndarray) and out32.dtype == np.float32


def test_numba_eps_rank_does_not_depend_on_the_thread_count():
    """Groups of lanes run in parallel (prange): one thread and all threads give the same ranks
    (also when the thread count changes the group size, :func:`lanes`)."""
    import numba

    from theorylab.lowrank._bounded_entries_numba import LANES, eps_rank_numba

    rng = np.random.default_rng(11)
    M = np.exp(rng.standard_normal((3 * LANES + 5, 9, 3)) @ rng.standard_normal((3 * LANES + 5, 3, 7)))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = eps_rank_numba(M, 1e-3)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(eps_rank_numba(M, 1e-3), one)
    np.testing.assert_array_equal(one, eps_rank(M, 1e-3, backend="ref"))
    from theorylab.lowrank._bounded_entries_numba import _eps_rank_threads

    for C in (1, 7, LANES):  # a group size that divides nothing, and single items
        np.testing.assert_array_equal(_eps_rank_threads(M, 1e-3, 2, C), one)


def test_numba_eps_rank_group_size_follows_the_batch_and_k():
    """One large matrix is one lane (no padded lanes recomputed), a small batch is split over the
    threads, and the (k, k, C) Gram stack stays within the workspace."""
    from theorylab.lowrank._bounded_entries_numba import LANES, WORKSPACE, lanes

    assert lanes(1, 256, 2) == 1
    assert lanes(18, 24, 2) == 9
    assert lanes(10**6, 24, 2) == LANES
    assert lanes(10**6, 200, 1) * 200 * 200 <= WORKSPACE
    assert lanes(10**6, 2000, 1) == 1


@settings(max_examples=40)
@given(k=st.integers(1, 20), seed=seeds, x_at=st.sampled_from(["eig", "between", "below", "above"]))
def test_sturm_count_below_equals_eigvalsh_count(k, seed, x_at):
    """x off the spectrum (an eigenvalue exactly at x counts as below: the early stop then waits)."""
    from theorylab.lowrank._eigen_lanes_numba import sturm_count_below as _sturm_count_below

    rng = np.random.default_rng(seed)
    d, e = rng.standard_normal(k), rng.standard_normal(max(k - 1, 0))
    lam = np.linalg.eigvalsh(np.diag(d) + np.diag(e, 1) + np.diag(e, -1))
    mid = (lam[k // 2 - 1] + lam[k // 2]) / 2 if k > 1 else lam[0] + 0.5
    x = {"eig": lam[k // 2] + 1e-9, "between": mid, "below": lam[0] - 1.0, "above": lam[-1] + 1.0}[x_at]
    want = int(np.sum(lam < x))
    assert _sturm_count_below(d, np.concatenate([e**2, [0.0]]), 0, x) == want
    if k > 2:  # a trailing block: the count of the sub-tridiagonal from row 2 on
        sub = np.linalg.eigvalsh(np.diag(d[2:]) + np.diag(e[2:], 1) + np.diag(e[2:], -1))
        assert _sturm_count_below(d, np.concatenate([e**2, [0.0]]), 2, x) == int(np.sum(sub < x))


@settings(max_examples=60)
@given(k=st.integers(1, 20), C=st.integers(1, 9), seed=seeds, splits=st.integers(0, 3))
@example(k=1, C=1, seed=0, splits=0)
@example(k=2, C=3, seed=1, splits=1)
def test_ql_lanes_equals_eigvalsh_on_every_lane(k, C, seed, splits):
    """All lanes sweep together, each on its own unreduced block: lanes with exact zeros on the
    off-diagonal (blocks split in the middle, a diagonal lane, lanes of different scales) must
    each get their own eigenvalues."""
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((k, C)) * 10.0 ** rng.integers(-3, 4, C)
    e = rng.standard_normal((k, C)) * 10.0 ** rng.integers(-3, 4, C)
    for _ in range(splits):
        e[rng.integers(0, k), rng.integers(0, C)] = 0.0
    e[:, 0] = 0.0 if C > 1 else e[:, 0]  # a diagonal lane next to the others
    want = [np.linalg.eigvalsh(np.diag(d[:, c]) + np.diag(e[: k - 1, c], 1) + np.diag(e[: k - 1, c], -1))
            for c in range(C)]
    dd, ee = d.copy(), e.copy()
    assert tridiagonal_eigenvalues(dd, ee)
    for c in range(C):
        scale = max(np.abs(want[c]).max(), 1e-300)
        np.testing.assert_allclose(np.sort(dd[:, c]), want[c], rtol=0, atol=1e-13 * k * scale)


def test_ql_stops_early_after_the_small_eigenvalues_and_the_rank_is_unchanged():
    """A graded spectrum 4^-i: at ε = 1e-2 the tail past rank r is a few of the smallest
    eigenvalues; the iteration stops after them (f < k) and the rank equals the SVD's."""
    from theorylab.lowrank._eigen_lanes_numba import U_ROUND, ql_lanes, tridiagonalize_lanes

    rng = np.random.default_rng(12)
    k = 16
    U, _ = np.linalg.qr(rng.standard_normal((k, k)))
    lam = 4.0 ** -np.arange(k)
    G = (U * lam) @ U.T
    dd, ee, v, p = (np.empty((k, 2)) for _ in range(4))
    tridiagonalize_lanes(np.ascontiguousarray(np.stack([G, G], axis=-1)), dd, ee, v, p)
    fro2 = lam.sum()
    thr, delta = 1e-4 * fro2, 64.0 * k * k * U_ROUND * fro2
    f = np.empty(2, dtype=np.int64)
    ql_lanes(dd, ee, np.array([thr, -1.0]), np.array([delta, 0.0]), f)  # lane 1: no early stop
    assert 0 < f[0] < k and f[1] == k  # lane 0 stopped early, next to a lane that went on
    np.testing.assert_allclose(np.sort(dd[: f[0], 0]), np.sort(lam)[: f[0]], rtol=0, atol=1e-12)  # the f smallest
    np.testing.assert_allclose(np.sort(dd[:, 1]), np.sort(lam), rtol=0, atol=1e-12)
    M = U * np.sqrt(lam)  # singular values sqrt(lam)
    assert int(eps_rank(M, 1e-2, backend="numba")) == int(eps_rank(M, 1e-2, backend="ref"))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("backend", ["ref", "numba", "torch"])
def test_eps_rank_rejects_non_finite_entries_on_every_backend(bad, backend):
    """The compiled kernel tests finiteness in its own pass over the entries (-2), the others before."""
    M = np.exp(np.random.default_rng(13).standard_normal((40, 5, 6)))
    M[37, 4, 0] = bad  # in the second group of 32 items, at its last row
    with pytest.raises(ValueError, match=r"M contains NaN or inf \(shape \(40, 5, 6\)\)"):
        eps_rank(M, 1e-2, backend=backend)


def test_eps_rank_auto_leaves_large_matrices_to_the_svd(monkeypatch):
    """"auto" compiles small shorter sides and hands one above AUTO_NUMBA_MAX_K to LAPACK's SVD."""
    from theorylab.lowrank import _bounded_entries_numba as kernel
    from theorylab.lowrank.bounded_entries import AUTO_NUMBA_MAX_K

    calls = []
    real = kernel.eps_rank_numba
    monkeypatch.setattr(kernel, "eps_rank_numba", lambda M, eps: calls.append(M.shape) or real(M, eps))
    rng = np.random.default_rng(13)
    small = rng.standard_normal((2, 5, AUTO_NUMBA_MAX_K + 7))
    large = rng.standard_normal((AUTO_NUMBA_MAX_K + 1, AUTO_NUMBA_MAX_K + 2))
    assert np.array_equal(eps_rank(small, 0.1), eps_rank(small, 0.1, backend="ref"))
    assert calls == [(2, 5, AUTO_NUMBA_MAX_K + 7)]
    assert int(eps_rank(large, 0.1)) == int(eps_rank(large, 0.1, backend="ref"))
    assert len(calls) == 1  # the SVD decided
    assert int(eps_rank(large, 0.1, backend="numba")) == int(eps_rank(large, 0.1, backend="ref"))
    assert len(calls) == 2  # an explicit backend is obeyed


def test_ql_lanes_puts_the_smaller_end_on_top_lane_by_lane():
    """QL deflates at the top: a lane whose last diagonal is the smaller is reversed (same
    eigenvalues), the other is not, and the off-diagonals come back squared."""
    from theorylab.lowrank._eigen_lanes_numba import _prepare

    # lane 0 graded large -> small, lane 1 small -> large, lane 2 small in the middle but not at the end
    d = np.array([[5.0, 1.0, 3.0], [2.0, 2.0, 1.0], [1.0, 5.0, 5.0]])
    e = np.array([[3.0, 3.0, 3.0], [4.0, 4.0, 4.0], [0.0, 0.0, 0.0]])
    tol2 = np.empty(3)
    _prepare(d, e, tol2)
    np.testing.assert_array_equal(d, [[1.0, 1.0, 3.0], [2.0, 2.0, 1.0], [5.0, 5.0, 5.0]])
    np.testing.assert_array_equal(e[:2], [[16.0, 9.0, 9.0], [9.0, 16.0, 16.0]])
    norm = 1.0 + 4.0 + 25.0 + 2.0 * (9.0 + 16.0)
    np.testing.assert_allclose(tol2[:2], (2.0 * np.finfo(float).eps / 2 * np.sqrt(norm)) ** 2, rtol=1e-15)


def test_householder_reflects_away_from_the_column_to_avoid_cancellation():
    """A column below the diagonal almost along e_1 (x = 1, the rest 1e-9): the reflector must
    map x to −sign(x) ||col|| (v = x − α without cancellation); the other sign rounds x − α to
    0, the column is not zeroed, and the tridiagonal's eigenvalues are off by ~1e-9."""
    from theorylab.lowrank._eigen_lanes_numba import tridiagonalize_lanes

    rng = np.random.default_rng(16)
    k = 6
    A = rng.standard_normal((k, k))
    G = A + A.T
    for sign in (1.0, -1.0):  # x > 0 and x < 0
        G[0, 1:] = G[1:, 0] = [sign, 1e-9, -1e-9, 1e-9, 1e-9]
        dd, ee, v, p = (np.empty((k, 1)) for _ in range(4))
        tridiagonalize_lanes(G[:, :, None].copy(), dd, ee, v, p)  # a copy: the reduction overwrites G
        assert tridiagonal_eigenvalues(dd, ee)
        np.testing.assert_allclose(np.sort(dd[:, 0]), np.linalg.eigvalsh(G), rtol=0, atol=1e-13 * np.abs(G).max())


def test_numba_kernel_defers_every_tail_within_its_rounding_margin():
    """The kernel decides nothing within δ = 64 k² u tr(G) of the threshold: a tail 500 u tr(G)
    below it (inside δ for k = 6, where 64 k² = 2304) comes back -1, for the SVD to decide; one
    5000 u tr(G) below it (outside δ) is decided by the kernel itself.  Both equal the reference."""
    from theorylab.lowrank._bounded_entries_numba import U_ROUND, eps_rank_numba

    rng = np.random.default_rng(14)
    U, _ = np.linalg.qr(rng.standard_normal((9, 9)))
    V, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    s = np.array([4.0, 2.0, 1.0, 0.5, 0.0, 0.0])  # tr = 21.25; the tail after rank 3 is 0.25
    M = (U[:, :6] * s) @ V.T
    tr = float(np.sum(s**2))
    for gap, kernel_says in ((500.0, -1), (5000.0, 3)):
        eps = np.sqrt((0.25 + gap * U_ROUND * tr) / tr)
        assert int(eps_rank_numba(M[None], eps)[0]) == kernel_says
        assert int(eps_rank(M, eps, backend="numba")) == 3 == int(eps_rank(M, eps, backend="ref"))


@pytest.mark.parametrize("backend", ["ref", "numba", "torch"])
@pytest.mark.parametrize("scale", [1e-300, 1e-160, 1e160, 1e300])
def test_eps_rank_is_scale_free_to_the_ends_of_the_float_range(backend, scale):
    """Entries near the float64 limits: σ² of the raw matrix would overflow (inf tails) or
    underflow (zero tails); every backend scales each matrix first and gives the unit-scale ranks."""
    rng = np.random.default_rng(15)
    M = np.exp(rng.standard_normal((6, 9, 3)) @ rng.standard_normal((6, 3, 8)))
    want = eps_rank(M, 1e-2, backend="ref")
    assert len(set(want.tolist())) > 1  # not a constant answer
    Ms = M / np.abs(M).max() * scale
    got = eps_rank(torch.from_numpy(Ms), 1e-2) if backend == "torch" else eps_rank(Ms, 1e-2, backend=backend)
    np.testing.assert_array_equal(np.asarray(got), want)
