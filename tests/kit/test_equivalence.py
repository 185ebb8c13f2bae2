"""assert_equivalent catches a planted forward bug and a planted backward bug, each with a
minimal (shrunk) example in its message; it passes a correct kernel, forward and backward."""

import re

import numpy as np
import pytest
import torch
from hypothesis import find
from hypothesis import strategies as st

from theorylab.ssm import selective_scan
from theorylab.testing import (assert_equivalent, check_example, mamba_selective_scan_inputs, selective_scan_inputs,
                               selective_scan_ref)

pytestmark = pytest.mark.usefixtures("one_thread")


def _example_sizes(msg: str) -> dict:
    """{argument: shape} from the 'minimal failing example' block of a message."""
    block = msg.split("minimal failing example:")[1]
    return {m.group(1): tuple(int(x) for x in m.group(2).split(",") if x.strip())
            for m in re.finditer(r"(\w+): tensor of shape \(([^)]*)\)", block)}


# --- a user's kernel: Mamba's signature, (b, d, L) layout, a loop over time in float32 ---------------
def user_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False,
              _decay_after_input=False):
    """Variable B/C (b, n, L) only: the layout the planted-bug tests draw."""
    dl = delta if delta_bias is None else delta + delta_bias[:, None]
    dl = torch.nn.functional.softplus(dl) if delta_softplus else dl
    b, d, L = u.shape
    h = u.new_zeros(b, d, A.shape[1])
    ys = []
    for t in range(L):
        a = torch.exp(dl[:, :, t, None] * A)  # (b, d, n)
        inp = (dl[:, :, t] * u[:, :, t])[..., None] * B[:, None, :, t]  # (b, d, n)
        h = a * (h + inp) if _decay_after_input else a * h + inp
        ys.append((h * C[:, None, :, t]).sum(-1))
    y = torch.stack(ys, dim=2)
    if D is not None:
        y = y + D[:, None] * u
    if z is not None:
        y = y * torch.nn.functional.silu(z)
    return (y, h) if return_last_state else y


class _SkipWrongBackward(torch.autograd.Function):
    """y = x * s with a backward that forgets s where the sequence is longer than 1 step:
    the forward is exact, the gradient of x is wrong (a classic hand-written backward bug)."""

    @staticmethod
    def forward(ctx, x, s):
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, g):
        x, s = ctx.saved_tensors
        return g * (s if g.shape[-1] == 1 else 1.0), g * x


def user_scan_bad_backward(u, delta, A, B, C, D=None, z=None, return_last_state=False, **kw):
    """Right forward; its D-skip term goes through a custom Function whose backward for u is wrong."""
    y, h = user_scan(u, delta, A, B, C, return_last_state=True, **kw)
    if D is not None:
        y = y + _SkipWrongBackward.apply(u, D[:, None].expand_as(u).contiguous())
    if z is not None:
        y = y * torch.nn.functional.silu(z)
    return (y, h) if return_last_state else y


VARIABLE = dict(layouts=("variable",), max_length=8, max_dim=3)
SMALL = dict(layouts=("variable",), max_length=4, max_dim=2, max_batch=1)  # a small space: quick shrinking


def one(strategy, where=lambda p: True):
    """The simplest input dict of ``strategy`` satisfying ``where`` (deterministic)."""
    return find(strategy, where)


def test_a_correct_kernel_passes_forward_and_backward():
    assert_equivalent(user_scan, selective_scan_ref, mamba_selective_scan_inputs("float32", **VARIABLE), dtype="float32",
                      max_examples=25)


def test_planted_forward_bug_is_caught_with_a_minimal_example():
    def buggy(**p):
        return user_scan(**p, _decay_after_input=True)

    with pytest.raises(AssertionError) as e:
        assert_equivalent(buggy, selective_scan_ref, mamba_selective_scan_inputs("float32", **SMALL),
                          dtype="float32", max_examples=20)
    msg = str(e.value)
    assert msg.startswith("forward output"), msg
    sizes = _example_sizes(msg)
    assert sizes["u"] == (1, 1, 1), msg  # shrunk: the bug shows at one batch, one channel, one step
    assert sizes["A"] == (1, 1), msg


def test_planted_backward_bug_is_caught_with_a_minimal_example():
    """The forward pass is right (checked first), so only the gradient comparison can catch it."""
    p = one(mamba_selective_scan_inputs("float32", **VARIABLE), lambda p: "D" in p and p["u"].shape[2] > 3)
    check_example(user_scan_bad_backward, selective_scan_ref, p, dtype="float32", grad=False)  # forward agrees
    inputs = mamba_selective_scan_inputs("float32", **SMALL).filter(lambda p: "D" in p)
    with pytest.raises(AssertionError) as e:
        assert_equivalent(user_scan_bad_backward, selective_scan_ref, inputs, dtype="float32", max_examples=20)
    msg = str(e.value)
    assert msg.startswith("backward d/du"), msg
    assert "cotangent seed" in msg
    sizes = _example_sizes(msg)
    assert sizes["u"] == (1, 1, 2), msg  # shrunk to the shortest sequence that shows the bug (L = 2)


def test_a_kernel_without_autograd_graph_is_reported_not_passed():
    def detached(**p):
        out = selective_scan_ref(**p)
        return tuple(o.detach() for o in out) if isinstance(out, tuple) else out.detach()

    with pytest.raises(AssertionError, match="no autograd graph"):
        assert_equivalent(detached, selective_scan_ref, mamba_selective_scan_inputs("float32", **VARIABLE),
                          dtype="float32", max_examples=5)
    assert_equivalent(detached, selective_scan_ref, mamba_selective_scan_inputs("float32", **VARIABLE), dtype="float32",
                      max_examples=5, grad=False)


def test_the_numpy_signature_of_before_still_works_and_catches_a_bug():
    def scan(x, delta, A, B, C, D):  # the torch backend in float32 on numpy arrays
        return selective_scan(x, delta, A, B, C, D, backend="torch")  # numpy in, numpy out

    assert_equivalent(scan, lambda **p: selective_scan(**p, backend="ref"), selective_scan_inputs(dtype="float32"),
                      dtype="float32", max_examples=10)
    with pytest.raises(AssertionError, match="forward output"):
        assert_equivalent(lambda **p: scan(**p) * 1.001, lambda **p: selective_scan(**p, backend="ref"),
                          selective_scan_inputs(dtype="float32"), dtype="float32", max_examples=10)


def test_a_gradient_that_is_zero_in_exact_arithmetic_is_not_a_failure():
    """o = (q·k) v / (q·k) does not depend on q: its float32 gradient is rounding noise, which the
    whole-gradient norm (d/dv is O(1)) puts in scale; a per-input relative error would be ~1."""
    def normalized(q, k, v):
        s = (q * k).sum(-1, keepdim=True)
        return s * v / s

    inputs = st.just({"q": torch.tensor([[1.0649]]), "k": torch.tensor([[0.9361]]), "v": torch.tensor([[0.6404]])})
    assert_equivalent(normalized, normalized, inputs, dtype="float32", max_examples=1)


def test_grad_wrt_selects_inputs_and_bad_options_are_refused():
    p = one(mamba_selective_scan_inputs("float64", **VARIABLE))
    check_example(user_scan, selective_scan_ref, p, grad=True, grad_wrt=["A"])
    with pytest.raises(ValueError, match="grad must be one of"):
        check_example(user_scan, selective_scan_ref, p, grad="yes")
    with pytest.raises(ValueError, match="'nope'"):
        check_example(user_scan, selective_scan_ref, p, grad_wrt=["nope"])
    with pytest.raises(ValueError, match="grad=True needs"):
        check_example(np.negative, np.negative, {"x": np.ones(2)}, grad=True)


def test_an_output_count_or_shape_mismatch_is_a_failure_not_a_crash():
    p = one(mamba_selective_scan_inputs("float64", **VARIABLE), lambda p: p["return_last_state"] and p["u"].shape[0] > 1)
    with pytest.raises(AssertionError, match="candidate returns 1 outputs, reference 2"):
        check_example(lambda **q: selective_scan_ref(**q)[0], selective_scan_ref, p)
    with pytest.raises(AssertionError, match="differ in shape"):
        check_example(lambda **q: tuple(o.transpose(0, -1) for o in selective_scan_ref(**q)), selective_scan_ref, p)


class _ScaledGrad(torch.autograd.Function):
    """Identity whose backward multiplies the gradient by (1 + eps), or takes its absolute value."""

    @staticmethod
    def forward(ctx, x, eps, absolute):
        ctx.eps, ctx.absolute = eps, absolute
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return (g.abs() if ctx.absolute else g * (1 + ctx.eps)), None, None


def _identity_case(eps, absolute=False):
    inputs = st.just({"x": torch.linspace(-1.0, 1.0, 7, dtype=torch.float64), "y": torch.ones(3, dtype=torch.float64)})

    def cand(x, y):
        return _ScaledGrad.apply(x, eps, absolute), y * 2

    assert_equivalent(cand, lambda x, y: (x, y * 2), inputs, max_examples=1)


def test_the_gradient_tolerance_is_the_policy_rtol():
    """float64 policy rtol 1e-10: a gradient off by 1e-9 relative fails, one off by 1e-12 passes."""
    _identity_case(1e-12)
    with pytest.raises(AssertionError, match=r"backward d/dx: .* relative error 1\.0\d*e-09"):
        _identity_case(1e-9)


def test_the_cotangent_has_both_signs():
    """A backward that returns |g| is wrong; a cotangent of one sign would let it pass."""
    with pytest.raises(AssertionError, match="backward d/dx"):
        _identity_case(0.0, absolute=True)
