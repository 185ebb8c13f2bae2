"""Linear self-attention with GD weights = gradient descent (:mod:`theorylab.icl.constructions`):
every backend against GD, the sympy proof and its control, gradients, bad input."""

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from theorylab.claims import get, run_claim
from theorylab.icl import gd_lsa_weights, gd_predict, lsa_forward, lsa_predict, make_inputs
from theorylab.icl.constructions import lsa_layer_ref, prompt_tokens
from theorylab.icl.constructions_claims import gd_written_out, lsa_block_step, lsa_library_symbolic, lsa_over_all_tokens
from theorylab.testing import seeds
from theorylab.tolerances import assert_close

pytestmark = pytest.mark.usefixtures("one_thread")
sizes = st.fixed_dictionaries({"batch": st.sampled_from(((1,), (3,), (2, 2))), "k": st.integers(1, 10),
                               "d": st.sampled_from((1, 2, 3, 5, 7)), "m": st.sampled_from((1, 2, 5))})


@pytest.mark.parametrize("backend", ["ref", "torch"])
@given(sz=sizes, seed=seeds, steps=st.integers(1, 4))
@example(sz=dict(batch=(1,), k=1, d=1, m=1), seed=0, steps=1)
def test_lsa_layers_equal_gd_steps(backend, sz, seed, steps):
    p = make_inputs(np.random.default_rng(seed), **sz, noise=0.3)
    lr = 0.5 / (1 + sz["d"])
    k, d = sz["k"], sz["d"]
    ref = gd_written_out(p["X"].reshape(-1, k, d), p["y"].reshape(-1, k), p["Xq"].reshape(-1, sz["m"], d), lr, steps)
    out = lsa_predict(p["X"], p["y"], p["Xq"], lr, steps, backend=backend)
    assert_close(out, ref[:, -1].reshape(p["yq"].shape), dtype=np.float64)
    assert_close(gd_predict(p["X"], p["y"], p["Xq"], lr, steps, backend=backend), out, dtype=np.float64)


def test_one_layer_by_hand():
    # d = 1, k = 2: x = (1, 2), y = (3, 5), x_q = 2, η = 0.5: ŷ = 2 * (0.5/2) * (3 + 10) = 6.5
    X, y, Q = np.array([[[1.0], [2.0]]]), np.array([[3.0, 5.0]]), np.array([[[2.0]]])
    assert lsa_predict(X, y, Q, 0.5, backend="ref").item() == pytest.approx(6.5, rel=1e-15)
    WQ, WK, WV = gd_lsa_weights(1, 0.5)
    Z = lsa_forward(prompt_tokens(X, y, Q), WQ, WK, WV, n_context=2, backend="torch")
    np.testing.assert_allclose(Z[0, :, 0], [1.0, 2.0, 2.0])  # x entries unchanged
    np.testing.assert_allclose(Z[0, 2, 1], -6.5)


def test_sympy_proof_general_and_library_reference():
    assert lsa_block_step() and lsa_library_symbolic()
    assert not lsa_block_step(normalize_by_extra=1)  # averaging over one more token is not a GD step
    proof = get("icl.lsa-layer-is-gd-step").proof()
    assert proof.proved and "symbolic d and k" in proof.scope


def test_control_is_a_finite_near_miss(rng):
    p = make_inputs(rng, batch=2, k=5, d=3, m=2)
    bad = lsa_over_all_tokens(p["X"], p["y"], p["Xq"], 0.1, 2)
    good = gd_predict(p["X"], p["y"], p["Xq"], 0.1, 2, backend="ref")
    assert np.isfinite(bad).all() and np.abs(bad - good).max() > 1e-3 * np.abs(good).max()


def test_lsa_forward_gradients():
    rng = np.random.default_rng(0)
    Z = torch.from_numpy(rng.standard_normal((2, 5, 3))).requires_grad_(True)
    Ws = [torch.from_numpy(rng.standard_normal((3, 3))).requires_grad_(True) for _ in range(3)]
    assert torch.autograd.gradcheck(lambda Z, a, b, c: lsa_forward(Z, a, b, c, n_context=3, layers=2, backend="torch"),
                                    [Z, *Ws])
    ref = Z.detach().numpy()
    for _ in range(2):
        ref = lsa_layer_ref(ref, *(W.detach().numpy() for W in Ws), 3)
    assert_close(lsa_forward(Z.detach(), *(W.detach() for W in Ws), n_context=3, layers=2), ref, dtype=np.float64)


def test_bad_input(rng):
    Z = rng.standard_normal((2, 5, 3))
    W = np.eye(3)
    with pytest.raises(ValueError, match=r"WK must have shape \(3, 3\)"):
        lsa_forward(Z, W, np.eye(4), W, n_context=2)
    with pytest.raises(ValueError, match="n_context must be <= the number of tokens 5"):
        lsa_forward(Z, W, W, W, n_context=6)
    with pytest.raises(ValueError, match="n_context must be >= 1"):
        lsa_forward(Z, W, W, W, n_context=0)
    with pytest.raises(ValueError, match="unknown backend 'numba'"):
        lsa_forward(Z, W, W, W, n_context=2, backend="numba")
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        gd_lsa_weights(3, -0.1)
    p = make_inputs(rng, batch=1, k=3, d=2, m=1)
    with pytest.raises(ValueError, match="Xq must have shape"):
        lsa_predict(p["X"], p["y"], p["Xq"][..., :1], 0.1)


def test_claim_holds_and_control_rejected():
    r = run_claim(get("icl.lsa-layer-is-gd-step"), samples=2, seed=5)
    assert r.ok and r.control_status == "rejected" and r.control_margin > 1e3


def test_lsa_forward_takes_an_unbatched_prompt():
    """Z (N, e) without batch axes is a valid prompt: the same as the batch of one."""
    p = make_inputs(np.random.default_rng(3), batch=1, k=5, d=3, m=2)
    Z = prompt_tokens(p["X"], p["y"], p["Xq"])  # (1, N, e)
    W = gd_lsa_weights(3, 0.3)
    one = lsa_forward(Z[0], *W, n_context=5, backend="ref")
    assert one.shape == Z.shape[1:]
    np.testing.assert_array_equal(one, lsa_forward(Z, *W, n_context=5, backend="ref")[0])
    with pytest.raises(ValueError, match="Z must have shape"):
        lsa_forward(Z[0, 0], *W, n_context=5, backend="ref")
