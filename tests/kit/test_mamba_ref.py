"""The Mamba-signature reference agrees with theorylab's selective_scan under every option:
B/C time-invariant, variable or grouped (g = 1 and g > 1), D, z, delta_bias, delta_softplus,
return_last_state, L = 1, d != n, and Mamba's mixed precision."""

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from theorylab.ssm import selective_scan
from theorylab.testing import assert_equivalent, mamba_selective_scan_inputs, selective_scan_ref
from theorylab.tolerances import assert_close

pytestmark = pytest.mark.usefixtures("one_thread")


def _bc_of_channel(X, c, dim, L, b):
    """(b, L, n) B or C seen by channel c: written from Mamba's layouts, independently of the kit."""
    X = X.detach().double().numpy()
    if X.ndim == 2:  # (dim, n)
        return np.broadcast_to(X[c], (b, L, X.shape[1])).copy()
    if X.ndim == 3:  # (b, n, L)
        return X.transpose(0, 2, 1).copy()
    g = X.shape[1]  # (b, g, n, L): channel c in group c // (dim // g)
    return X[:, c // (dim // g)].transpose(0, 2, 1).copy()


def expected(p):
    """Channel by channel with theorylab's float64 numpy reference backend."""
    u = p["u"].double().numpy()
    b, d, L = u.shape
    dl = p["delta"].double().numpy() + (0 if "delta_bias" not in p else p["delta_bias"].double().numpy()[:, None])
    if p["delta_softplus"]:
        dl = np.logaddexp(0.0, dl)
    A = p["A"].double().numpy()
    D = None if "D" not in p else p["D"].double().numpy()
    y, h = np.empty((b, d, L)), np.empty((b, d, A.shape[1]))
    for c in range(d):
        yc, hc = selective_scan(u[:, c, :, None].transpose(0, 1, 2), dl[:, c, :, None], A[c:c + 1],
                                _bc_of_channel(p["B"], c, d, L, b), _bc_of_channel(p["C"], c, d, L, b),
                                None if D is None else D[c:c + 1], return_final_state=True, backend="ref")
        y[:, c], h[:, c] = yc[..., 0], hc[:, 0]
    if "z" in p:
        z = p["z"].double().numpy()
        y = y * z / (1.0 + np.exp(-z))
    return y, h


@settings(max_examples=60)
@given(p=mamba_selective_scan_inputs("float64", max_length=9, max_dim=6))
def test_reference_equals_theorylab_selective_scan_under_every_option(p):
    out = selective_scan_ref(**p)
    y, h = expected(p)
    if p["return_last_state"]:
        out, last = out
        assert last.shape == h.shape
        assert_close(last, h, dtype="float64")
    assert out.dtype == torch.float64 and out.shape == p["u"].shape
    assert_close(out, y, dtype="float64")


def test_every_layout_and_option_is_drawn():
    """The strategy reaches each layout, grouped with g = 1 and g > 1, L = 1 and d != n."""
    seen = set()

    @settings(max_examples=200, database=None)
    @given(p=mamba_selective_scan_inputs("float64", max_length=9, max_dim=6))
    def collect(p):
        for name in ("B", "C"):
            X = p[name]
            seen.add((name, {2: "invariant", 3: "variable", 4: "grouped"}[X.ndim]))
            if X.ndim == 4:
                seen.add((name, "g>1" if X.shape[1] > 1 else "g=1"))
        seen.update(k for k in ("D", "z", "delta_bias") if k in p)
        seen.update(k for k in ("delta_softplus", "return_last_state") if p[k])
        seen.add("L=1" if p["u"].shape[2] == 1 else "L>1")
        seen.add("d!=n" if p["u"].shape[1] != p["A"].shape[1] else "d=n")

    collect()
    want = {(n, k) for n in "BC" for k in ("invariant", "variable", "grouped", "g>1", "g=1")}
    want |= {"D", "z", "delta_bias", "delta_softplus", "return_last_state", "L=1", "d!=n"}
    assert want <= seen, want - seen


@pytest.mark.parametrize("half", ["bfloat16", "float16"])
def test_mixed_precision_as_mamba_accepts_it(half):
    """Half u/delta/B/C/z with float32 A, D, delta_bias: computed in float32, out in u's dtype,
    last_state in float32; within the half-precision policy of the float64 result."""
    inputs = mamba_selective_scan_inputs(half, max_length=9).map(lambda p: {**p, "return_last_state": True})

    @settings(max_examples=20)
    @given(p=inputs)
    def run(p):
        assert p["A"].dtype == torch.float32 and p["u"].dtype == getattr(torch, half)
        out, last = selective_scan_ref(**p)
        assert out.dtype == p["u"].dtype and last.dtype == torch.float32
        ref_out, ref_last = selective_scan_ref(**{k: (v.double() if torch.is_tensor(v) else v) for k, v in p.items()})
        assert_close(out, ref_out, dtype=half)
        assert_close(last, ref_last, dtype="float32")

    run()


def test_the_reference_backward_is_its_own_gradient():
    """gradcheck (float64 finite differences) through every input of a grouped, gated case."""
    g = torch.Generator().manual_seed(0)
    b, d, n, L, groups = 1, 4, 3, 5, 2
    u, z = torch.randn(b, d, L, generator=g, dtype=torch.float64), torch.randn(b, d, L, generator=g, dtype=torch.float64)
    delta = torch.rand(b, d, L, generator=g, dtype=torch.float64) * 0.4 + 0.05
    A = -torch.rand(d, n, generator=g, dtype=torch.float64) - 0.1
    B, C = (torch.randn(b, groups, n, L, generator=g, dtype=torch.float64) for _ in range(2))
    D, bias = torch.randn(d, generator=g, dtype=torch.float64), torch.rand(d, generator=g, dtype=torch.float64) * 0.1
    args = [t.requires_grad_() for t in (u, delta, A, B, C, D, z, bias)]
    assert torch.autograd.gradcheck(lambda *a: selective_scan_ref(*a, delta_softplus=True, return_last_state=True),
                                    args)


def test_an_independent_torch_loop_agrees_forward_and_backward():
    """A plain per-step loop of Mamba's recurrence (time-invariant C, variable B) as the candidate."""
    def loop(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False):
        dl = torch.nn.functional.softplus(delta) if delta_softplus else delta
        h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
        ys = []
        for t in range(u.shape[2]):
            h = torch.exp(dl[:, :, t, None] * A) * h + (dl[:, :, t] * u[:, :, t])[..., None] * B[:, None, :, t]
            ys.append((h * C[None]).sum(-1))
        y = torch.stack(ys, dim=2)
        return (y, h) if return_last_state else y

    inputs = mamba_selective_scan_inputs("float32", max_length=9, options=False).filter(
        lambda p: p["B"].ndim == 3 and p["C"].ndim == 2)
    assert_equivalent(loop, selective_scan_ref, inputs, dtype="float32", max_examples=20)


@pytest.mark.parametrize("case, match", [
    ("complex_A", "A must be real"),
    ("groups", "B has 2 groups, which must divide dim = 3"),
    ("delta_shape", r"delta must have shape \(1, 3, 4\)"),
    ("negative_delta", "delta"),
    ("u_numpy", "u must be a torch tensor"),
    ("flag", "delta_softplus must be a bool"),
    ("C_shape", r"C must have shape \(3, 2\)"),
])
def test_bad_arguments_name_the_argument(case, match):
    p = {"u": torch.randn(1, 3, 4), "delta": torch.rand(1, 3, 4), "A": -torch.rand(3, 2), "B": torch.randn(1, 2, 4),
         "C": torch.randn(3, 2)}
    if case == "complex_A":
        p["A"] = p["A"].to(torch.complex64)
    elif case == "groups":
        p["B"] = torch.randn(1, 2, 2, 4)
    elif case == "delta_shape":
        p["delta"] = torch.rand(1, 4, 3)
    elif case == "negative_delta":
        p["delta"] = -p["delta"]
    elif case == "u_numpy":
        p["u"] = p["u"].numpy()
    elif case == "flag":
        p["delta_softplus"] = "yes"
    elif case == "C_shape":
        p["C"] = torch.randn(2, 3)
    with pytest.raises((ValueError, TypeError), match=match):
        selective_scan_ref(**p)


@example(L=1)
@given(L=st.integers(1, 6))
@settings(max_examples=5)
def test_grouped_with_one_group_equals_variable(L):
    g = torch.Generator().manual_seed(L)
    p = {"u": torch.randn(2, 3, L, generator=g), "delta": torch.rand(2, 3, L, generator=g) * 0.5,
         "A": -torch.rand(3, 2, generator=g), "B": torch.randn(2, 2, L, generator=g), "C": torch.randn(2, 2, L, generator=g)}
    grouped = selective_scan_ref(**{**p, "B": p["B"][:, None], "C": p["C"][:, None]})
    assert torch.equal(grouped, selective_scan_ref(**p))
