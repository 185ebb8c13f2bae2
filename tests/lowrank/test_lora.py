"""LoRA (:mod:`theorylab.lowrank.lora`): forward, factored gradients, best factors, NOLA counts; its claims."""

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from theorylab.claims import get, run_claim
from theorylab.lowrank._lora_torch import LoRALinear, NOLALinear
from theorylab.lowrank.lora import (
    lora_factors,
    lora_gradients,
    lora_linear,
    lora_parameter_count,
    make_inputs,
    nola_factors,
    nola_parameter_count,
)
from theorylab.lowrank.lora_claims import autograd_gradients, trainable
from theorylab.testing import corrupt, seeds
from theorylab.tolerances import assert_close

BACKENDS = ["ref", "torch"]
dims = st.sampled_from([1, 2, 3, 5, 7])
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("backend", BACKENDS)
@given(N=st.integers(1, 9), d_in=dims, d_out=dims, r=dims, alpha=st.sampled_from([0.5, 1.0, 16.0]), seed=seeds)
@example(N=1, d_in=1, d_out=1, r=1, alpha=1.0, seed=0)
@example(N=3, d_in=5, d_out=7, r=2, alpha=16.0, seed=1)
def test_factored_gradients_equal_autograd(backend, N, d_in, d_out, r, alpha, seed):
    p = make_inputs(np.random.default_rng(seed), N=N, d_in=d_in, d_out=d_out, r=r)
    gA, gB, Y = autograd_gradients(p["X"], p["W0"], p["A"], p["B"], p["G"], alpha)
    dA, dB = lora_gradients(p["X"], p["A"], p["B"], p["G"], alpha=alpha, backend=backend)
    assert dA.shape == (r, d_in) and dB.shape == (d_out, r)
    assert_close(dA, gA, dtype=np.float64, name="dA")
    assert_close(dB, gB, dtype=np.float64, name="dB")
    assert_close(lora_linear(p["X"], p["W0"], p["A"], p["B"], alpha=alpha, backend=backend), Y, dtype=np.float64)


def test_leading_axes_are_summed(rng):
    p = make_inputs(rng, N=6, d_in=3, d_out=2, r=2)
    flat = lora_gradients(p["X"], p["A"], p["B"], p["G"])
    nested = lora_gradients(p["X"].reshape(2, 3, 3), p["A"], p["B"], p["G"].reshape(2, 3, 2))
    for a, b in zip(flat, nested):
        assert_close(b, a, dtype=np.float64)


def test_lora_linear_gradient_matches_central_differences(rng):
    p = make_inputs(rng, N=4, d_in=3, d_out=2, r=2)
    A = torch.tensor(p["A"], requires_grad=True)
    lora_linear(torch.tensor(p["X"]), torch.tensor(p["W0"]), A, torch.tensor(p["B"]), alpha=2.0).pow(2).sum().backward()
    num = np.zeros_like(p["A"])
    for i in np.ndindex(num.shape):
        f = []
        for s in (1, -1):
            a = p["A"].copy()
            a[i] += s * 1e-6
            f.append((lora_linear(p["X"], p["W0"], a, p["B"], alpha=2.0) ** 2).sum())
        num[i] = (f[0] - f[1]) / 2e-6
    assert_close(A.grad.numpy(), num, rtol=1e-6)  # central differences: ~h² + eps/h


@pytest.mark.parametrize("backend", BACKENDS)
@given(d_out=dims, d_in=dims, seed=seeds)
def test_lora_factors_are_the_best_rank_r_update(backend, d_out, d_in, seed):
    delta = np.random.default_rng(seed).standard_normal((d_out, d_in))
    r = min(d_out, d_in)
    B, A = lora_factors(delta, r, backend=backend)
    assert_close(B @ A, delta, dtype=np.float64)  # full rank: exact
    if r > 1:
        B1, A1 = lora_factors(delta, 1, backend=backend)
        s = np.linalg.svd(delta, compute_uv=False)
        assert abs(np.linalg.norm(delta - B1 @ A1) ** 2 - np.sum(s[1:] ** 2)) < 1e-9 * np.sum(s**2)


@given(d_in=st.integers(1, 40), d_out=st.integers(1, 40), r=st.integers(1, 6), k=st.integers(1, 30),
       l=st.integers(1, 30))
def test_counters_equal_enumeration(d_in, d_out, r, k, l):
    r = min(r, d_in, d_out)
    assert trainable(NOLALinear(d_in, d_out, r, k, l)) == nola_parameter_count(k, l) == k + l
    assert trainable(LoRALinear(d_in, d_out, r)) == lora_parameter_count(d_in, d_out, r)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nola_factors_match_the_module(backend):
    m = NOLALinear(5, 3, 2, 4, 6, generator=torch.Generator().manual_seed(0))
    torch.nn.init.normal_(m.coef_b)
    A, B = nola_factors(*(t.detach().numpy() for t in (m.coef_a, m.coef_b, m.basis_a, m.basis_b)), backend=backend)
    A_ref, B_ref = m.factors()
    assert_close(A, A_ref.detach(), dtype=np.float64)
    assert_close(B, B_ref.detach(), dtype=np.float64)


@pytest.mark.parametrize("cid", ["lowrank.lora-factored-gradients", "lowrank.nola-parameter-count"])
def test_claims_hold_and_controls_rejected(cid):
    rep = run_claim(get(cid), samples=2, seed=7)
    assert rep.holds and rep.control_status == "rejected", rep.detail + rep.control_detail


@given(key=st.sampled_from(["X", "A", "B", "G"]),
       how=st.sampled_from(["extra_dim", "drop_dim", "wrong_size", "int_dtype", "nan", "inf", "list", "empty"]),
       backend=st.sampled_from(["auto", "ref", "torch"]))
def test_bad_input_names_the_argument(key, how, backend):
    p = make_inputs(np.random.default_rng(0), N=4, d_in=5, d_out=3, r=2)
    if key == "X" and how in ("extra_dim",):
        how = "wrong_size"  # X may carry leading axes; a wrong feature size is the error
    p[key] = corrupt(p[key], how, axis=-1)
    with pytest.raises((ValueError, TypeError)) as err:
        lora_gradients(p["X"], p["A"], p["B"], p["G"], backend=backend)
    assert key in str(err.value), str(err.value)


def test_lora_gradients_of_a_single_example_and_nola_scalar_coefficients():
    """X (d_in,) and G (d_out,) (one example, no batch axis) are valid; a 0-d coef_b is refused by name."""
    from theorylab.lowrank.lora import lora_gradients, nola_factors

    rng = np.random.default_rng(5)
    X, G, A, B = rng.standard_normal(4), rng.standard_normal(3), rng.standard_normal((2, 4)), rng.standard_normal((3, 2))
    dA, dB = lora_gradients(X, A, B, G, alpha=2.0, backend="ref")
    dA2, dB2 = lora_gradients(X[None], A, B, G[None], alpha=2.0, backend="ref")
    np.testing.assert_allclose(dA, dA2, rtol=1e-12)
    np.testing.assert_allclose(dB, dB2, rtol=1e-12)
    with pytest.raises(ValueError, match="coef_b"):
        nola_factors(np.ones(2), np.array(1.0), rng.standard_normal((2, 2, 4)), rng.standard_normal((1, 3, 2)))
