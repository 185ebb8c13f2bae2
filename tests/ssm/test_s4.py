"""S4 (#44): HiPPO-LegS NPLR, the kernel three ways, convolution = recurrence, cost.

Sides are named ``ref`` (float64 recurrence) and ``out`` (the computation under test).
"""

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from theorylab.claims import get, run_claim
from theorylab.ssm.s4 import (
    discretize_bilinear,
    hippo_dplr,
    hippo_legs,
    make_s4_inputs,
    s4_c_tilde,
    s4_convolve,
    s4_kernel_dplr,
    s4_kernel_power,
    s4_kernel_recurrent,
    s4_recurrence,
)
from theorylab.ssm.s4_claims import (
    convolution_sum,
    hippo_proof,
    kernel_proof,
    kernel_proof_residuals,
    legs_residual,
    linear_cost_verdict,
    nplr_residual,
)
from theorylab.testing import corrupt, seeds
from theorylab.tolerances import assert_close, compare

sizes = st.fixed_dictionaries(
    {
        "batch": st.integers(1, 2),
        "length": st.integers(1, 70),
        "channels": st.sampled_from([1, 2, 3]),
        "state": st.sampled_from([1, 2, 3, 5, 7, 16]),
    }
)


pytestmark = pytest.mark.usefixtures("one_thread")


def _dplr_args(p):
    h, n = p["B"].shape
    Lam, Pt, Bt, V = hippo_dplr(n)
    return Lam, Pt, np.broadcast_to(Bt, (h, n)).copy(), p["C"] @ V, p["dt"]


# ---- HiPPO-LegS ----------------------------------------------------------------------------
def test_hippo_legs_by_hand():
    A, P, B = hippo_legs(3)
    s3, s5, s15 = np.sqrt(3), np.sqrt(5), np.sqrt(15)
    expected = np.array([[-1, 0, 0], [-s3, -2, 0], [-s5, -s15, -3]])
    np.testing.assert_allclose(A, expected, rtol=1e-15)
    np.testing.assert_allclose(P, [np.sqrt(0.5), np.sqrt(1.5), np.sqrt(2.5)], rtol=1e-15)
    np.testing.assert_allclose(B, [1, s3, s5], rtol=1e-15)


@given(N=st.integers(1, 200))
@example(N=1)
def test_hippo_is_normal_plus_low_rank(N):
    A, P, _ = hippo_legs(N)
    assert nplr_residual(A, P) <= 1e-14
    assert nplr_residual(A, np.sqrt(np.arange(N) + 1.0)) > 1e-3  # the control's P fails


@given(N=st.integers(1, 64))
def test_dplr_basis_reconstructs_A(N):
    A, P, B = hippo_legs(N)
    Lam, Pt, Bt, V = hippo_dplr(N)
    assert_close(V.conj().T @ V, np.eye(N), rtol=1e-12)  # unitary
    np.testing.assert_allclose(Lam.real, -0.5, rtol=1e-12)
    out = V @ (np.diag(Lam) - np.outer(Pt, Pt.conj())) @ V.conj().T
    # eigh of an N x N Hermitian matrix: backward error ~ N eps ||S||, ||S|| ~ N
    assert_close(out, A, rtol=1e-12)
    assert_close(V @ Bt, B, rtol=1e-12)


@given(N=st.integers(2, 64))
def test_hippo_legs_is_exact_on_polynomials(N):
    A, P, B = hippo_legs(N)
    assert legs_residual(A, B) <= 1e-11
    r = np.sqrt(2.0 * np.arange(N) + 1.0)
    assert legs_residual(A, r**2) > 0.1  # B without its square root
    A_bad = -np.tril(np.outer(r**2, r**2), -1) - np.diag(np.arange(N) + 1.0)
    assert legs_residual(A_bad, r**2) > 0.1 or nplr_residual(A_bad, P) > 0.1  # A and B without their square roots


def test_legs_coefficients_by_hand():
    # N = 2: g_0 = 1, g_1 = sqrt(3)(2x - 1); x^0 -> (1, 0), x^1 -> (1/2, sqrt(3)/6); (jI - A) γ_j = B
    A, _, B = hippo_legs(2)
    np.testing.assert_allclose(-A @ [1.0, 0.0], B, rtol=1e-15)
    np.testing.assert_allclose((np.eye(2) - A) @ [0.5, np.sqrt(3) / 6], B, rtol=1e-15)


def test_cost_band_rejects_a_visible_quadratic_term():
    ns = np.array([256, 512, 1024, 2048, 4096, 8192, 16384])
    assert linear_cost_verdict(ns, 1e-6 * ns, "linear", "x").holds
    assert linear_cost_verdict(ns, 1e-6 * ns * np.log(ns), "L log L", "x").holds
    assert linear_cost_verdict(ns, 1e-6 * (256 + ns), "linear + an overhead equal to it at the bottom", "x").holds
    noisy = 1e-6 * ns * np.array([1, 1, 1, 1, 1, 1.15, 0.85])  # a fast last point: top slope 0.68, still O(L)
    assert linear_cost_verdict(ns, noisy, "linear, noisy top", "x").holds
    assert not linear_cost_verdict(ns, 1e-6 * ns * np.array([1, 1, 1, 1, 1, 1.2, 1.75]), "steep top", "x").holds
    for c in (1000.0, 10000.0, 16384.0):  # quadratic visible inside the range, or near the linear term at its top
        assert not linear_cost_verdict(ns, ns**2 + c * ns, f"L² + {c} L", "x").holds


def test_hippo_sympy_proof():
    assert hippo_proof().proved


def test_dplr_sympy_proof_and_its_wrong_sign():
    assert kernel_proof().proved
    import sympy as sp

    r = kernel_proof_residuals(lowrank_sign=-1)[1]
    assert r != sp.zeros(*r.shape)


# ---- the kernel three ways ------------------------------------------------------------------
def test_kernel_by_hand_state_1():
    # N = 1: A = -1, B = 1, Ā = (1 - Δ/2)/(1 + Δ/2), B̄ = Δ/(1 + Δ/2), K_ℓ = c Ā^ℓ B̄
    A, B, C, dt = np.array([[-1.0]]), np.array([[1.0]]), np.array([[3.0]]), np.array([0.25])
    ab, bb = (1 - 0.125) / (1 + 0.125), 0.25 / (1 + 0.125)
    expected = 3.0 * ab ** np.arange(6) * bb
    for fn in (s4_kernel_power, s4_kernel_recurrent):
        np.testing.assert_allclose(fn(A, B, C, dt, 6)[0], expected, rtol=1e-14)


@given(sz=sizes, seed=seeds)
@example(sz=dict(batch=1, length=1, channels=1, state=1), seed=0)
@example(sz=dict(batch=1, length=63, channels=3, state=7), seed=1)
def test_kernel_power_dplr_recurrent_agree(sz, seed):
    p = make_s4_inputs(np.random.default_rng(seed), **sz)
    L = sz["length"]
    ref = s4_kernel_recurrent(p["A"], p["B"], p["C"], p["dt"], L)
    out_power = s4_kernel_power(p["A"], p["B"], p["C"], p["dt"], L)
    out_dplr = s4_kernel_dplr(*_dplr_args(p), L)
    assert ref.shape == out_power.shape == out_dplr.shape == (sz["channels"], L)
    assert_close(out_power, ref, dtype=np.float64, name="power")
    assert_close(out_dplr, ref, dtype=np.float64, name="dplr")


@given(sz=sizes, seed=seeds)
def test_dplr_with_given_c_tilde(sz, seed):
    p = make_s4_inputs(np.random.default_rng(seed), **sz)
    Lam, Pt, Bd, Cd, dt = _dplr_args(p)
    Ct = s4_c_tilde(Lam, Pt, Cd, dt, sz["length"])
    out = s4_kernel_dplr(Lam, Pt, Bd, Cd, dt, sz["length"], c_tilde=Ct)
    assert_close(out, s4_kernel_dplr(Lam, Pt, Bd, Cd, dt, sz["length"]), dtype=np.float64)


@pytest.mark.parametrize("L", [1, 2, 3, 64, 257])
def test_kernel_claim_controls_are_rejected(L):
    from theorylab.ssm.s4_claims import _kernels

    p = make_s4_inputs(np.random.default_rng(L), length=L, channels=2, state=8)
    Kp, Kd, Kr = _kernels(p, lowrank_sign=-1.0)
    assert not compare(Kd, Kr, dtype=np.float64).ok  # wrong sign of the low-rank correction
    # Euler instead of bilinear in one path: Ā = I + ΔA, B̄ = ΔB
    Ae = np.eye(8) + p["dt"][:, None, None] * p["A"]
    Be = p["dt"][:, None] * p["B"]
    Ke = np.stack([np.einsum("hn,hn->h", p["C"], np.einsum("hnk,hk->hn", np.linalg.matrix_power(Ae, ell), Be))
                   for ell in range(L)], axis=-1)
    assert not compare(Ke, Kr, dtype=np.float64).ok


def test_discretize_bilinear_matches_definition(rng):
    p = make_s4_inputs(rng, channels=2, state=5)
    Ab, Bb = discretize_bilinear(p["A"], p["B"], p["dt"])
    for h in range(2):
        left = np.eye(5) - p["dt"][h] / 2 * p["A"]
        assert_close(left @ Ab[h], np.eye(5) + p["dt"][h] / 2 * p["A"], rtol=1e-13)
        assert_close(left @ Bb[h], p["dt"][h] * p["B"][h], rtol=1e-13)


# ---- convolution mode = recurrent mode --------------------------------------------------------
@pytest.mark.parametrize("backend", ["ref", "torch"])
@given(sz=sizes, seed=seeds)
@example(sz=dict(batch=1, length=1, channels=1, state=1), seed=0)
def test_convolution_equals_recurrence(backend, sz, seed):
    p = make_s4_inputs(np.random.default_rng(seed), **sz)
    K = s4_kernel_recurrent(p["A"], p["B"], p["C"], p["dt"], sz["length"])
    ref = s4_recurrence(p["u"], p["A"], p["B"], p["C"], p["dt"], p["D"], backend="ref")
    assert_close(convolution_sum(p["u"], K, p["D"]), ref, dtype=np.float64, name="direct convolution sum")
    out = s4_convolve(p["u"], K, p["D"], backend=backend)
    assert out.dtype == np.float64
    assert_close(out, ref, dtype=np.float64, name=f"conv[{backend}]")
    out_rec = s4_recurrence(p["u"], p["A"], p["B"], p["C"], p["dt"], p["D"], backend=backend)
    assert_close(out_rec, ref, dtype=np.float64, name=f"recurrence[{backend}]")
    # float32: inputs rounded first, the reference sees the same values
    u32, K32, D32 = p["u"].astype(np.float32), K.astype(np.float32), p["D"].astype(np.float32)
    ref32 = s4_convolve(u32.astype(np.float64), K32.astype(np.float64), D32.astype(np.float64), backend="ref")
    out32 = s4_convolve(u32, K32, D32, backend=backend)
    assert out32.dtype == np.float32
    assert_close(out32, ref32, dtype=np.float32, name=f"conv float32[{backend}]")


@pytest.mark.parametrize("backend", ["ref", "torch"])
@given(sz=sizes, seed=seeds, cut=st.floats(0, 1))
def test_segmented_recurrence_equals_full_run(backend, sz, seed, cut):
    p = make_s4_inputs(np.random.default_rng(seed), **sz)
    args = (p["A"], p["B"], p["C"], p["dt"], p["D"])
    ref, x_ref = s4_recurrence(p["u"], *args, backend=backend, return_final_state=True)
    k = int(round(cut * sz["length"]))
    parts, x = [], None
    for seg in (p["u"][:, :k], p["u"][:, k:]):
        if seg.shape[1]:
            y, x = s4_recurrence(seg, *args, initial_state=x, return_final_state=True, backend=backend)
            parts.append(y)
    assert_close(np.concatenate(parts, axis=1), ref, dtype=np.float64)
    assert_close(x, x_ref, dtype=np.float64)


def test_torch_in_torch_out(rng):
    p = make_s4_inputs(rng, batch=2, length=9, channels=3, state=4)
    K = s4_kernel_recurrent(p["A"], p["B"], p["C"], p["dt"], 9)
    u, Kt, D = (torch.from_numpy(v.astype(np.float32)) for v in (p["u"], K, p["D"]))
    out = s4_convolve(u, Kt, D)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    y = s4_recurrence(u, p["A"], p["B"], p["C"], p["dt"], D)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
    ref = s4_recurrence(p["u"], p["A"], p["B"], p["C"], p["dt"], p["D"], backend="ref")
    assert_close(out, ref, dtype=np.float32)
    assert_close(y, ref, dtype=np.float32)


# ---- claims ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cid", ["ssm.s4-hippo-nplr", "ssm.s4-kernel-three-ways", "ssm.s4-convolution-is-recurrence",
                                 "ssm.s4-kernel-cost"])
def test_claims_hold_and_controls_are_rejected(cid):
    r = run_claim(get(cid), samples=2 if cid != "ssm.s4-kernel-cost" else 1)
    assert r.holds, r.detail
    assert r.negative_control_rejected, r.control_detail
    assert r.proved is not False
    if cid == "ssm.s4-convolution-is-recurrence":
        assert {"ref", "torch", "legs"} <= set(r.backends)


# ---- bad input ---------------------------------------------------------------------------------
HOWS = ["extra_dim", "wrong_size", "int_dtype", "nan", "list", "empty"]


@given(key=st.sampled_from(["u", "A", "B", "C", "dt", "D"]), how=st.sampled_from(HOWS), seed=st.integers(0, 100),
       backend=st.sampled_from(["ref", "torch"]))
def test_recurrence_rejects_bad_input(key, how, seed, backend):
    p = make_s4_inputs(np.random.default_rng(seed), length=4, channels=3, state=2)
    p[key] = corrupt(p[key], how)
    with pytest.raises((ValueError, TypeError)) as err:
        s4_recurrence(p["u"], p["A"], p["B"], p["C"], p["dt"], p["D"], backend=backend)
    assert key in str(err.value) or (key in "ABC" and "shape" in str(err.value)), str(err.value)


@given(key=st.sampled_from(["u", "K", "D"]), how=st.sampled_from(HOWS), backend=st.sampled_from(["ref", "torch"]))
def test_convolve_rejects_bad_input(key, how, backend):
    p = make_s4_inputs(np.random.default_rng(0), length=4, channels=3, state=2)
    p["K"] = s4_kernel_recurrent(p["A"], p["B"], p["C"], p["dt"], 4)
    p[key] = corrupt(p[key], how)
    with pytest.raises((ValueError, TypeError)) as err:
        s4_convolve(p["u"], p["K"], p["D"], backend=backend)
    assert key in str(err.value), str(err.value)


def test_kernel_rejects_bad_sizes_and_steps(rng):
    p = make_s4_inputs(rng, channels=2, state=3)
    with pytest.raises(ValueError, match="L must be >= 1"):
        s4_kernel_power(p["A"], p["B"], p["C"], p["dt"], 0)
    with pytest.raises(TypeError, match="L must be an int"):
        s4_kernel_recurrent(p["A"], p["B"], p["C"], p["dt"], 2.5)
    with pytest.raises(ValueError, match="dt must be >="):
        s4_kernel_recurrent(p["A"], p["B"], p["C"], -p["dt"], 4)
    with pytest.raises(ValueError, match="C must have shape"):
        s4_kernel_dplr(*_dplr_args(p)[:3], p["C"][:1].astype(complex), p["dt"], 4)
    with pytest.raises(ValueError, match="unknown backend"):
        s4_convolve(p["u"], s4_kernel_power(p["A"], p["B"], p["C"], p["dt"], 16), backend="numba")
    with pytest.raises(ValueError, match="N must be >= 1"):
        hippo_legs(0)
