"""LoRA in the NTK regime (:mod:`theorylab.lowrank.lora_ntk`): Jacobians, residuals, thresholds, training; its claim."""

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from theorylab.claims import get, run_claim
from theorylab.lowrank.lora_ntk import (
    dimension_count_rank,
    fit_lora_ntk,
    lora_rank_threshold,
    make_inputs,
    ntk_jacobians,
    ntk_residuals,
    success_lower_bound,
)
from theorylab.testing import corrupt, seeds
from theorylab.tolerances import assert_close

BACKENDS = ["ref", "torch"]
dims = st.sampled_from([1, 2, 3, 5, 7])
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=30)  # each example: an autograd Jacobian
@given(K=st.integers(1, 3), N=st.integers(1, 4), d_in=dims, d_out=dims, seed=seeds)
@example(K=1, N=1, d_in=1, d_out=1, seed=0)
def test_jacobians_equal_autograd_of_the_network(backend, K, N, d_in, d_out, seed):
    p = make_inputs(np.random.default_rng(seed), K=K, N=N, d_in=d_in, d_out=d_out)
    G = ntk_jacobians(p["X"], p["W0"], p["V"], backend=backend)
    assert G.shape == (K * N, d_out, d_in)
    X, V = torch.tensor(p["X"]), torch.tensor(p["V"])
    J = torch.autograd.functional.jacobian(lambda W: torch.tanh(X @ W.T) @ V.T, torch.tensor(p["W0"]))  # (N, K, o, i)
    assert_close(G, J.reshape(K * N, d_out, d_in).numpy(), dtype=np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=40)
@given(S=st.integers(1, 3), J=st.integers(1, 6), d_in=dims, d_out=dims, r=st.integers(1, 4), seed=seeds)
def test_residuals_equal_a_loop(backend, S, J, d_in, d_out, r, seed):
    rng = np.random.default_rng(seed)
    G, y = rng.standard_normal((J, d_out, d_in)), rng.standard_normal(J)
    A, B = rng.standard_normal((S, r, d_in)), rng.standard_normal((S, d_out, r))
    out = ntk_residuals(G, y, A, B, backend=backend)
    ref = np.array([[np.sum(G[j] * (B[s] @ A[s])) - y[j] for j in range(J)] for s in range(S)])
    assert_close(out, ref, dtype=np.float64)


def test_residual_gradients_match_central_differences(rng):
    G, y = rng.standard_normal((5, 3, 4)), rng.standard_normal(5)
    A, B = rng.standard_normal((2, 4)), rng.standard_normal((3, 2))
    At = torch.tensor(A, requires_grad=True)
    (ntk_residuals(torch.tensor(G), torch.tensor(y), At, torch.tensor(B)) ** 2).sum().backward()
    num = np.zeros_like(A)
    for i in np.ndindex(A.shape):
        f = []
        for s in (1, -1):
            a = A.copy()
            a[i] += s * 1e-6
            f.append((ntk_residuals(G, y, a, B) ** 2).sum())
        num[i] = (f[0] - f[1]) / 2e-6
    assert_close(At.grad.numpy(), num, rtol=1e-6)


@pytest.mark.parametrize("K, N, want", [(1, 1, 2), (2, 12, 7), (1, 20, 6), (3, 8, 7), (1, 21, 7), (2, 15, 8)])
def test_rank_threshold_by_hand(K, N, want):
    assert lora_rank_threshold(K, N) == want  # smallest r with r(r+1)/2 > KN
    assert want * (want + 1) // 2 > K * N >= (want - 1) * want // 2


def test_dimension_count_by_hand():
    assert dimension_count_rank(2, 12, 12, 10) == 2  # 1·21 < 24 <= 2·20
    assert dimension_count_rank(1, 5, 3, 3) == 1  # 1·5 >= 5
    assert dimension_count_rank(2, 10, 3, 3) == 4  # 3·3 = 9 < 20: no rank of a 3 x 3 matrix fits


def test_success_lower_bound_is_clopper_pearson():
    assert success_lower_bound(32, 32) == pytest.approx(0.01 ** (1 / 32), abs=1e-12)
    assert success_lower_bound(0, 16) == 0.0
    lo = success_lower_bound(31, 32)  # P(X >= 31 | lo) = 0.01
    tail = sum(math.comb(32, i) * lo**i * (1 - lo) ** (32 - i) for i in (31, 32))
    assert tail == pytest.approx(0.01, rel=1e-6) and 0.78 < lo < 0.82
    with pytest.raises(ValueError, match="successes"):
        success_lower_bound(5, 4)


def test_training_fits_above_the_threshold_and_misses_at_rank_one():
    p = make_inputs(np.random.default_rng(0), K=2, N=12, d_in=12, d_out=10)
    G = ntk_jacobians(p["X"], p["W0"], p["V"])
    above = fit_lora_ntk(G, p["y"], lora_rank_threshold(2, 12), np.random.default_rng(1), seeds=4)
    one = fit_lora_ntk(G, p["y"], 1, np.random.default_rng(1), seeds=4)
    assert np.all(above["loss"] <= 1e-10)
    res = ntk_residuals(G, p["y"], above["A"], above["B"])
    assert_close((res**2).sum(-1) / (p["y"] ** 2).sum(), above["loss"], rtol=1e-6)  # the loss it reports
    assert np.all(np.isfinite(one["loss"])) and np.all(one["loss"] > 1e-3)  # 21 unknowns, 24 equations
    again = fit_lora_ntk(G, p["y"], 1, np.random.default_rng(1), seeds=4)
    np.testing.assert_array_equal(again["loss"], one["loss"])  # deterministic under the seed


def test_claim_holds_and_control_rejected():
    rep = run_claim(get("lowrank.lora-above-threshold-fits"), samples=1, seed=2)
    assert rep.holds and rep.control_status == "rejected", rep.detail + rep.control_detail
    st_ = rep.statistics["rate/success rate"]
    assert st_["value"] == 1.0 and st_["interval"][0] >= 0.8
    assert rep.control_statistics["success rate"]["value"] == 0.0


@given(key=st.sampled_from(["X", "W0", "V"]), how=st.sampled_from(["drop_dim", "extra_dim", "wrong_size", "int_dtype", "nan", "list"]),
       backend=st.sampled_from(["auto", "ref", "torch"]))
@example(key="X", how="extra_dim", backend="ref")  # a stack of X is not a batch here: refused, not misread
def test_bad_jacobian_input_names_the_argument(key, how, backend):
    p = make_inputs(np.random.default_rng(0), K=2, N=3, d_in=4, d_out=5)
    if key == "X" and how == "wrong_size":
        how = "drop_dim"  # more samples are valid
    p[key] = corrupt(p[key], how, axis=-1)
    with pytest.raises((ValueError, TypeError)) as err:
        ntk_jacobians(p["X"], p["W0"], p["V"], backend=backend)
    assert key in str(err.value), str(err.value)


@given(key=st.sampled_from(["G", "y", "A", "B"]), how=st.sampled_from(["wrong_size", "int_dtype", "inf", "empty"]))
def test_bad_residual_input_names_the_argument(key, how):
    rng = np.random.default_rng(0)
    v = {"G": rng.standard_normal((4, 3, 2)), "y": rng.standard_normal(4), "A": rng.standard_normal((2, 2)),
         "B": rng.standard_normal((3, 2))}
    v[key] = corrupt(v[key], how, axis=-1)
    with pytest.raises((ValueError, TypeError)) as err:
        ntk_residuals(v["G"], v["y"], v["A"], v["B"])
    assert key in str(err.value), str(err.value)
