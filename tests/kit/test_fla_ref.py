"""The fla-signature references (simple GLA, GLA, retention, linear attention) agree with a
float64 loop of each recurrence under every option, and with each other where the math says
so (three theorylab functions: ssd, gateloop, linear_attention)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings

from theorylab.testing import (FLA_KINDS, chunk_gla_ref, chunk_linear_attn_ref, chunk_retention_ref,
                               chunk_simple_gla_ref, fla_inputs)
from theorylab.tolerances import assert_close

pytestmark = pytest.mark.usefixtures("one_thread")
REF = {"simple_gla": chunk_simple_gla_ref, "gla": chunk_gla_ref, "retention": chunk_retention_ref,
       "linear_attn": chunk_linear_attn_ref}


def _np(v):
    if isinstance(v, tuple):
        return tuple(_np(x) for x in v)
    return v.double().numpy() if torch.is_tensor(v) else v


def loop(kind, p):
    """S_t = diag(exp(g_t)) S_{t-1} + k_t v_tᵀ, o_t = s q_tᵀ S_t per (batch, head), float64 numpy."""
    f = {k: _np(v) for k, v in p.items()}
    q, k, v = f["q"], f["k"], f["v"]
    B, T, H, K = q.shape
    s = f.get("scale") or K ** -0.5
    if kind == "gla":
        g = f["g"]
    elif kind == "simple_gla":
        g = np.broadcast_to((f["g"] if "g" in f else f["g_gamma"][None, None])[..., None], (B, T, H, K))
    elif kind == "retention":
        g = np.broadcast_to(np.log(1 - 2.0 ** (-5.0 - np.arange(H)))[None, None, :, None], (B, T, H, K))
    else:
        g = np.zeros((B, T, H, K))
    init = f.get("initial_state")
    S0, z0 = init if isinstance(init, tuple) else (init, None)
    S = np.zeros((B, H, K, v.shape[3])) if S0 is None else S0.copy()
    z = np.zeros((B, H, K)) if z0 is None else z0[:, 0].copy()
    o = np.empty_like(v)
    for t in range(T):
        S = np.exp(g[:, t])[..., None] * S + k[:, t, :, :, None] * v[:, t, :, None, :]
        z = z + k[:, t]
        o[:, t] = np.einsum("bhk,bhkv->bhv", s * q[:, t], S)
        if f.get("normalize"):
            o[:, t] /= np.einsum("bhk,bhk->bh", s * q[:, t], z)[..., None] + 1e-10
    final = (S, z[:, None]) if f.get("normalize") else S
    return o, final


@pytest.mark.parametrize("kind", FLA_KINDS)
def test_reference_equals_the_recurrence_under_every_option(kind):
    @settings(max_examples=40)
    @given(p=fla_inputs(kind, "float64", max_length=9))
    def run(p):
        o, final = REF[kind](**p)
        o_ref, final_ref = loop(kind, p)
        assert o.shape == p["v"].shape and o.dtype == torch.float64
        assert_close(o, o_ref, dtype="float64")
        if not p["output_final_state"]:
            assert final is None
        elif isinstance(final_ref, tuple):
            assert_close(final[0], final_ref[0], dtype="float64")
            assert_close(final[1], final_ref[1], dtype="float64")
        else:
            assert_close(final, final_ref, dtype="float64")

    run()


@settings(max_examples=20)
@given(p=fla_inputs("simple_gla", "float64", max_length=9).map(lambda p: {**p, "output_final_state": True}))
def test_simple_gla_on_ssd_equals_gla_on_gateloop_with_the_gate_on_every_key(p):
    o, S = chunk_simple_gla_ref(**p)
    B, T, H, K = p["q"].shape
    g = p["g"] if "g" in p else p["g_gamma"][None, None].expand(B, T, H)
    rest = {k: v for k, v in p.items() if k not in ("g", "g_gamma")}
    o2, S2 = chunk_gla_ref(**rest, g=g[..., None].expand(B, T, H, K).contiguous())
    assert_close(o2, o, dtype="float64")
    assert_close(S2, S, dtype="float64")


@settings(max_examples=20)
@given(p=fla_inputs("linear_attn", "float64", max_length=9).map(
    lambda p: {**p, "normalize": False, "initial_state": p.get("initial_state") if not isinstance(
        p.get("initial_state"), tuple) else p["initial_state"][0]}))
def test_linear_attention_equals_simple_gla_with_no_decay(p):
    B, T, H, K = p["q"].shape
    o, S = chunk_linear_attn_ref(**p)
    rest = {k: v for k, v in p.items() if k != "normalize"}
    o2, S2 = chunk_simple_gla_ref(**rest, g=torch.zeros(B, T, H, dtype=torch.float64))
    assert_close(o, o2, dtype="float64")
    if p["output_final_state"]:
        assert_close(S, S2, dtype="float64")


@pytest.mark.parametrize("kind", FLA_KINDS)
def test_segmented_run_with_carried_state_equals_the_full_run(kind):
    g = torch.Generator().manual_seed(3)
    B, T, H, K, V = 2, 7, 2, 3, 2
    pos = kind == "linear_attn"
    q, k = (torch.randn(B, T, H, K, generator=g, dtype=torch.float64) for _ in range(2))
    q, k = (q.exp(), k.exp()) if pos else (q, k)
    p = {"q": q, "k": k, "v": torch.randn(B, T, H, V, generator=g, dtype=torch.float64)}
    if kind == "gla":
        p["g"] = -torch.rand(B, T, H, K, generator=g, dtype=torch.float64)
    if kind == "simple_gla":
        p["g"] = -torch.rand(B, T, H, generator=g, dtype=torch.float64)
    full, S = REF[kind](**p, output_final_state=True)
    cut = 4
    y1, S1 = REF[kind](**{n: x[:, :cut] for n, x in p.items()}, output_final_state=True)
    y2, S2 = REF[kind](**{n: x[:, cut:] for n, x in p.items()}, initial_state=S1, output_final_state=True)
    assert_close(torch.cat([y1, y2], dim=1), full, dtype="float64")
    for a, b in zip(S2 if isinstance(S2, tuple) else (S2,), S if isinstance(S, tuple) else (S,)):
        assert_close(a, b, dtype="float64")


@pytest.mark.parametrize("kind", FLA_KINDS)
def test_the_reference_backward_is_its_own_gradient(kind):
    g = torch.Generator().manual_seed(4)
    B, T, H, K, V = 1, 3, 2, 2, 3
    args = {"q": torch.randn(B, T, H, K, generator=g, dtype=torch.float64).exp(),
            "k": torch.randn(B, T, H, K, generator=g, dtype=torch.float64).exp(),
            "v": torch.randn(B, T, H, V, generator=g, dtype=torch.float64),
            "initial_state": torch.randn(B, H, K, V, generator=g, dtype=torch.float64)}
    if kind == "gla":
        args["g"] = -torch.rand(B, T, H, K, generator=g, dtype=torch.float64)
    if kind == "simple_gla":
        args["g"] = -torch.rand(B, T, H, generator=g, dtype=torch.float64)
    names = list(args)
    leaves = [args[n].clone().requires_grad_() for n in names]

    def f(*a):
        o, final = REF[kind](**dict(zip(names, a)), output_final_state=True)
        return (o, *final) if isinstance(final, tuple) else (o, final)

    assert torch.autograd.gradcheck(f, leaves)


def test_bf16_inputs_compute_in_float32_and_return_q_dtype():
    g = torch.Generator().manual_seed(5)
    q, k = (torch.randn(1, 5, 2, 3, generator=g).bfloat16() for _ in range(2))
    v, gate = torch.randn(1, 5, 2, 2, generator=g).bfloat16(), -torch.rand(1, 5, 2, 3, generator=g).bfloat16()
    o, S = chunk_gla_ref(q, k, v, gate, output_final_state=True)
    assert o.dtype == torch.bfloat16 and S.dtype == torch.float32
    o64, _ = chunk_gla_ref(q.double(), k.double(), v.double(), gate.double())
    assert_close(o, o64, dtype="bfloat16")


@pytest.mark.parametrize("call, match", [
    (lambda q, k, v: chunk_simple_gla_ref(q, k, v), "exactly one of g"),
    (lambda q, k, v: chunk_simple_gla_ref(q, k, v, g=torch.ones(1, 4, 2)), "log forget gates <= 0"),
    (lambda q, k, v: chunk_gla_ref(q, k, v, -torch.ones(1, 4, 2)), r"g must have shape \(1, 4, 2, 3\)"),
    (lambda q, k, v: chunk_gla_ref(q, k[..., :2], v, -torch.ones(1, 4, 2, 3)), r"k must have shape \(1, 4, 2, 3\)"),
    (lambda q, k, v: chunk_retention_ref(q, k, v, initial_state=torch.zeros(1, 2, 5, 3)),
     r"initial_state must have shape \(1, 2, 3, 5\)"),
    (lambda q, k, v: chunk_linear_attn_ref(q, k, v, scale="big"), "scale must be a real number"),
    (lambda q, k, v: chunk_linear_attn_ref(q, k, v, normalize=1), "normalize must be a bool"),
])
def test_bad_arguments_name_the_argument(call, match):
    q, k, v = torch.randn(1, 4, 2, 3), torch.randn(1, 4, 2, 3), torch.randn(1, 4, 2, 5)
    with pytest.raises((ValueError, TypeError), match=match):
        call(q, k, v)


@pytest.mark.parametrize("kind", FLA_KINDS)
def test_fla_inputs_default_lengths_reach_17(kind):
    """The default lengths run to 17 (not a multiple of any chunk size), and never past it."""
    from hypothesis import find

    kw = find(fla_inputs(kind), lambda kw: kw["q"].shape[1] == 17, settings=settings(max_examples=2000, deadline=None))
    assert kw["q"].shape[1] == 17

    @settings(max_examples=30, deadline=None)
    @given(kw=fla_inputs(kind))
    def bounded(kw):
        assert 1 <= kw["q"].shape[1] <= 17

    bounded()
