"""The Mamba-2-signature reference (on theorylab's ssd) agrees with a float64 loop of the
recurrence and with the Mamba-signature reference (on theorylab's selective_scan) under every
option: head groups (g = 1 and g > 1), D per head or per channel, z, dt_bias, dt_softplus,
dt_limit, initial and final states, L = 1 and L not a multiple of chunk_size."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings

from theorylab.testing import mamba2_inputs, mamba_chunk_scan_combined_ref, selective_scan_ref
from theorylab.tolerances import assert_close

pytestmark = pytest.mark.usefixtures("one_thread")


def loop(p):
    """Mamba-2's recurrence per (batch, head), float64 numpy, written from the docstring's math."""
    f = {k: (v.double().numpy() if torch.is_tensor(v) else v) for k, v in p.items()}
    x, dt, A, B, C = f["x"], f["dt"], f["A"], f["B"], f["C"]
    b, L, h, P = x.shape
    g, N = B.shape[2], B.shape[3]
    delta = dt + (f["dt_bias"] if "dt_bias" in f else 0.0)
    if f["dt_softplus"]:
        delta = np.logaddexp(0.0, delta)
    if "dt_limit" in f:
        delta = np.clip(delta, *f["dt_limit"])
    H = f.get("initial_states", np.zeros((b, h, P, N))).copy()
    y = np.empty_like(x)
    for t in range(L):
        for hd in range(h):
            grp = hd // (h // g)
            H[:, hd] = np.exp(delta[:, t, hd] * A[hd])[:, None, None] * H[:, hd] + \
                (delta[:, t, hd, None] * x[:, t, hd])[:, :, None] * B[:, t, grp, None, :]
            y[:, t, hd] = np.einsum("bpn,bn->bp", H[:, hd], C[:, t, grp])
    if "D" in f:
        D = f["D"]
        y = y + x * (D if D.ndim == 2 else D[:, None])
    if "z" in f:
        y = y * f["z"] / (1.0 + np.exp(-f["z"]))
    return y, H


@settings(max_examples=60)
@given(p=mamba2_inputs("float64", max_length=9))
def test_reference_equals_the_recurrence_under_every_option(p):
    out = mamba_chunk_scan_combined_ref(**p)
    y, H = loop(p)
    if p["return_final_states"]:
        out, final = out
        assert_close(final, H, dtype="float64")
    assert out.shape == p["x"].shape and out.dtype == torch.float64
    assert_close(out, y, dtype="float64")


def _as_mamba1(p):
    """Mamba-2 arguments in Mamba's layout (each head's P channels share dt, A and the group's B/C)."""
    x, dt = p["x"], p["dt"]
    b, L, h, P = x.shape
    N = p["B"].shape[3]
    q = {"u": x.reshape(b, L, h * P).transpose(1, 2), "delta": dt.repeat_interleave(P, dim=2).transpose(1, 2),
         "A": p["A"].repeat_interleave(P)[:, None].expand(h * P, N).contiguous(),
         "B": p["B"].permute(0, 2, 3, 1), "C": p["C"].permute(0, 2, 3, 1),
         "delta_softplus": p["dt_softplus"], "return_last_state": True}
    if "D" in p:
        q["D"] = p["D"].reshape(-1) if p["D"].ndim == 2 else p["D"].repeat_interleave(P)
    if "z" in p:
        q["z"] = p["z"].reshape(b, L, h * P).transpose(1, 2)
    if "dt_bias" in p:
        q["delta_bias"] = p["dt_bias"].repeat_interleave(P)
    return q


@settings(max_examples=40)
@given(p=mamba2_inputs("float64", max_length=9).map(lambda p: {**{k: v for k, v in p.items() if k not in (
    "initial_states", "dt_limit")}, "return_final_states": True}))
def test_ssd_path_equals_the_selective_scan_path(p):
    """Two theorylab functions, two layouts: ssd (Mamba-2 reference) and selective_scan (Mamba reference)."""
    out, final = mamba_chunk_scan_combined_ref(**p)
    b, L, h, P = p["x"].shape
    out1, last1 = selective_scan_ref(**_as_mamba1(p))
    assert_close(out, out1.transpose(1, 2).reshape(b, L, h, P), dtype="float64")
    assert_close(final, last1.reshape(b, h, P, -1), dtype="float64")


def test_chunk_size_does_not_change_the_result():
    p = {k: v for k, v in _fixed_case().items()}
    outs = [mamba_chunk_scan_combined_ref(**{**p, "chunk_size": q}) for q in (1, 2, 3, 7, 64)]
    for o in outs[1:]:
        assert_close(o, outs[0], dtype="float64")


def _fixed_case(L=7):
    g = torch.Generator().manual_seed(1)
    b, h, P, N, groups = 1, 4, 2, 3, 2
    return {"x": torch.randn(b, L, h, P, generator=g, dtype=torch.float64),
            "dt": torch.rand(b, L, h, generator=g, dtype=torch.float64) * 0.4 + 0.05,
            "A": -torch.rand(h, generator=g, dtype=torch.float64) - 0.5,
            "B": torch.randn(b, L, groups, N, generator=g, dtype=torch.float64),
            "C": torch.randn(b, L, groups, N, generator=g, dtype=torch.float64), "chunk_size": 3}


def test_the_reference_backward_is_its_own_gradient():
    p = _fixed_case(L=4)
    g = torch.Generator().manual_seed(2)
    extra = {"D": torch.randn(4, 2, generator=g, dtype=torch.float64), "z": torch.randn(1, 4, 4, 2, generator=g,
                                                                                         dtype=torch.float64),
             "initial_states": torch.randn(1, 4, 2, 3, generator=g, dtype=torch.float64)}
    names = ["x", "dt", "A", "B", "C", "D", "z", "initial_states"]
    args = [{**p, **extra}[k].clone().requires_grad_() for k in names]

    def f(*a):
        return mamba_chunk_scan_combined_ref(**dict(zip(names, a)), chunk_size=3, return_final_states=True)

    assert torch.autograd.gradcheck(f, args)


def test_segmented_run_with_carried_state_equals_the_full_run():
    p = _fixed_case(L=7)
    full, H = mamba_chunk_scan_combined_ref(**p, return_final_states=True)
    cut = 3
    first = {k: (v[:, :cut] if k in ("x", "dt", "B", "C") else v) for k, v in p.items()}
    second = {k: (v[:, cut:] if k in ("x", "dt", "B", "C") else v) for k, v in p.items()}
    y1, H1 = mamba_chunk_scan_combined_ref(**first, return_final_states=True)
    y2, H2 = mamba_chunk_scan_combined_ref(**second, initial_states=H1, return_final_states=True)
    assert_close(torch.cat([y1, y2], dim=1), full, dtype="float64")
    assert_close(H2, H, dtype="float64")


@pytest.mark.parametrize("change, match", [
    ({"B": torch.randn(1, 7, 3, 3)}, "B has 3 groups, which must divide heads = 4"),
    ({"C": torch.randn(1, 7, 2, 2)}, r"C must have shape \(1, 7, 2, 3\)"),
    ({"A": torch.randn(4, 1)}, r"A must have shape \(4,\)"),
    ({"chunk_size": 0}, "chunk_size must be an int >= 1"),
    ({"dt_limit": (0.5, 0.1)}, "dt_limit must be"),
    ({"D": torch.randn(3)}, r"D must have shape \(4,\)"),
    ({"initial_states": torch.randn(1, 4, 3, 2)}, r"initial_states must have shape \(1, 4, 2, 3\)"),
])
def test_bad_arguments_name_the_argument(change, match):
    p = {**_fixed_case(), **{k: (v.double() if torch.is_tensor(v) else v) for k, v in change.items()}}
    with pytest.raises((ValueError, TypeError), match=match):
        mamba_chunk_scan_combined_ref(**p)


@settings(max_examples=60, deadline=None)
@given(kw=mamba2_inputs(max_heads=3, max_length=5))
def test_mamba2_inputs_stay_within_their_bounds(kw):
    """heads in 1..max_heads, groups dividing heads, L in 1..max_length: the sizes it promises."""
    b, L, h, P = kw["x"].shape
    g = kw["B"].shape[2]
    assert 1 <= h <= 3 and h % g == 0 and 1 <= L <= 5 and kw["C"].shape[2] == g
