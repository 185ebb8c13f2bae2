"""Sparse attention: every backend and both fold-and-merge kernels against the float64
dense masked-softmax reference; awkward sizes; containers; bad inputs; claims."""

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from theorylab import sparse
from theorylab.backends import numba_available
from theorylab.claims import get
from theorylab.sparse._sparse_attention_torch import attention_torch
from theorylab.sparse.patterns_claims import enumerate_mask
from theorylab.sparse.sparse_attention_claims import FAMILIES, dense_masked_softmax, draw_pattern
from theorylab.tolerances import assert_close

BACKENDS = [
    "ref",
    pytest.param("numba", marks=pytest.mark.skipif(not numba_available(), reason="numba is not installed")),
    "torch",
]


@st.composite
def cases(draw, families=FAMILIES, max_length=70):
    """Sizes, a seed and a logit regime; the pattern is drawn from the seed."""
    seed = draw(st.integers(0, 2**32 - 1))
    family = draw(st.sampled_from(families))
    sizes = dict(
        batch=draw(st.integers(1, 2)),
        heads=draw(st.sampled_from([1, 3])),
        length=draw(st.integers(1, max_length)),
        head_dim=draw(st.sampled_from([1, 3, 5, 8])),
    )
    sizes["value_dim"] = draw(st.sampled_from([sizes["head_dim"], 2]))
    sizes["logits"] = draw(st.sampled_from(["x1", "x30", "large"]))
    return seed, family, sizes


# largest |logit| of a "large" instance: beyond exp's overflow (float64 709, float32 88), so a
# softmax or a log-sum-exp merge without its max shift returns inf / NaN.  float32 stops at 150:
# a logit s carries a rounding error ~ |s|·6e-8, which moves the weights by as much (<= 1e-5 < 1e-4).
LARGE = {np.float64: (800.0, 2000.0), np.float32: (100.0, 150.0)}


def _instance(seed, family, sizes, dtype):
    rng = np.random.default_rng(seed)
    sizes = dict(sizes)
    logits = sizes.pop("logits", "x1")
    pattern = draw_pattern(rng, family)
    x = sparse.make_inputs(rng, **sizes, logit_scale=30.0 if logits == "x30" else 1.0)
    if logits == "large":
        mask = pattern.mask(sizes["length"])
        s = np.abs(np.matmul(x["q"], np.swapaxes(x["k"], -1, -2)))[..., mask].max() / np.sqrt(sizes["head_dim"])
        x["q"] = x["q"] * (rng.uniform(*LARGE[dtype]) / max(s, 1e-3))
    x = {c: a.astype(dtype) for c, a in x.items()}
    ref = dense_masked_softmax(*(x[c].astype(np.float64) for c in "qkv"), enumerate_mask(pattern, sizes["length"]))
    return pattern, x, ref  # ref: independent float64 dense masked softmax of the same rounded values


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(case=cases())
@example(case=(0, "strided", dict(batch=1, heads=1, length=1, head_dim=1, value_dim=1, logits="x1")))
@example(case=(1, "fixed", dict(batch=1, heads=1, length=13, head_dim=3, value_dim=3, logits="large")))
@example(case=(2, "strided", dict(batch=2, heads=3, length=63, head_dim=5, value_dim=2, logits="large")))
@example(case=(5, "window", dict(batch=1, heads=1, length=40, head_dim=3, value_dim=3, logits="large")))
@settings(max_examples=40)
def test_backends_match_reference(backend, dtype, case):
    pattern, x, ref = _instance(*case, dtype)
    out = sparse.attention(x["q"], x["k"], x["v"], pattern, backend=backend)
    assert isinstance(out, np.ndarray) and out.dtype == dtype and out.shape == ref.shape
    assert_close(out, ref, dtype=dtype, name=f"{backend} {pattern} {case[2]}")


@pytest.mark.parametrize("kernel", ["matmul", "flash_cpu"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@given(case=cases(families=("strided", "fixed"), max_length=150), chunk=st.sampled_from([1, 3, 32]))
@example(case=(3, "strided", dict(batch=1, heads=1, length=1, head_dim=1, value_dim=1, logits="x1")), chunk=32)
@example(case=(4, "fixed", dict(batch=1, heads=2, length=97, head_dim=7, value_dim=7, logits="large")), chunk=32)
@example(case=(6, "strided", dict(batch=1, heads=2, length=90, head_dim=3, value_dim=3, logits="large")), chunk=32)
@settings(max_examples=40)
def test_fold_and_merge_kernels(kernel, dtype, case, chunk):
    """Both dense-block kernels of the fold-and-merge path, any n (divisible by l or not)."""
    seed, family, sizes = case
    if kernel == "flash_cpu":
        sizes = {**sizes, "value_dim": sizes["head_dim"]}
    pattern, x, ref = _instance(seed, family, sizes, np.float64 if dtype == torch.float64 else np.float32)
    q, k, v = (torch.from_numpy(x[c]) for c in "qkv")
    scale = sizes["head_dim"] ** -0.5
    if family == "strided":
        from theorylab.sparse._sparse_attention_torch import strided_fold_merge

        out = strided_fold_merge(q, k, v, pattern.l, scale, kernel=kernel, chunk=chunk)
    else:
        out = attention_torch(q, k, v, pattern, scale, kernel=kernel)
    assert out.dtype == dtype
    assert_close(out, ref, dtype=dtype, name=f"{kernel} {pattern}")


def test_torch_in_torch_out_and_scale():
    rng = np.random.default_rng(5)
    x = sparse.make_inputs(rng, batch=1, heads=2, length=19, head_dim=3, dtype=np.float32)
    q, k, v = (torch.from_numpy(x[c]) for c in "qkv")
    out = sparse.attention(q, k, v, sparse.strided(4), scale=0.3)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.device == q.device
    ref = sparse.attention_ref(x["q"], x["k"], x["v"], sparse.strided(4), scale=0.3)
    assert_close(out, ref, dtype=np.float32)
    for backend in ("ref", "numba", "torch"):
        assert isinstance(sparse.attention(q, k, v, sparse.fixed(4, 2), backend=backend), torch.Tensor)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40))
def test_batch_invariance_and_full_equals_causal_softmax(seed, n):
    rng = np.random.default_rng(seed)
    x = sparse.make_inputs(rng, batch=3, heads=1, length=n, head_dim=2)
    pattern = draw_pattern(rng)
    whole = sparse.attention(x["q"], x["k"], x["v"], pattern, backend="torch")
    for b in range(3):
        part = sparse.attention(x["q"][b : b + 1], x["k"][b : b + 1], x["v"][b : b + 1], pattern, backend="torch")
        assert_close(part, whole[b : b + 1], dtype=np.float64)
    sdpa = torch.nn.functional.scaled_dot_product_attention(*(torch.from_numpy(x[c]) for c in "qkv"), is_causal=True)
    assert_close(sparse.attention(x["q"], x["k"], x["v"], sparse.full_causal(), backend="numba"), sdpa.numpy(), dtype=np.float64)


def test_length_one_is_value():
    x = sparse.make_inputs(np.random.default_rng(0), length=1, head_dim=3)
    for p in (sparse.strided(5), sparse.fixed(2, 1), sparse.power_attention()):
        assert_close(sparse.attention(x["q"], x["k"], x["v"], p, backend="torch"), x["v"], dtype=np.float64)


def _arrays(**over):
    x = sparse.make_inputs(np.random.default_rng(0), batch=1, heads=2, length=6, head_dim=3)
    x.update(over)
    return x


@pytest.mark.parametrize(
    "over, pattern, kw, err, word",
    [
        (dict(q=np.zeros((2, 6, 3))), sparse.strided(2), {}, ValueError, "q"),
        (dict(k=np.zeros((1, 2, 5, 3))), sparse.strided(2), {}, ValueError, "k"),
        (dict(v=np.zeros((1, 2, 7, 3))), sparse.strided(2), {}, ValueError, "v"),
        (dict(v=np.zeros((1, 2, 6, 3), dtype=np.float32)), sparse.strided(2), {}, TypeError, "dtype"),
        (dict(q=np.zeros((1, 2, 6, 3), dtype=np.int64)), sparse.strided(2), {}, TypeError, "q"),
        (dict(k=[[1.0]]), sparse.strided(2), {}, TypeError, "k"),
        (dict(q=np.full((1, 2, 6, 3), np.nan)), sparse.strided(2), {}, ValueError, "q"),
        (dict(v=np.full((1, 2, 6, 3), np.inf)), sparse.strided(2), {}, ValueError, "v"),
        (dict(q=np.zeros((1, 0, 6, 3)), k=np.zeros((1, 0, 6, 3)), v=np.zeros((1, 0, 6, 3))), sparse.strided(2), {}, ValueError, "q"),
        ({}, "strided", {}, TypeError, "pattern"),
        ({}, np.ones((6, 6), bool), {}, TypeError, "pattern"),
        ({}, sparse.strided(2), dict(scale=0.0), ValueError, "scale"),
        ({}, sparse.strided(2), dict(scale=float("nan")), ValueError, "scale"),
        ({}, sparse.strided(2), dict(scale="1"), TypeError, "scale"),
        ({}, sparse.strided(2), dict(backend="cuda"), ValueError, "backend"),
        ({}, sparse.strided(2), dict(backend=None), TypeError, "backend"),
    ],
)
def test_bad_input_names_the_argument(over, pattern, kw, err, word):
    x = _arrays(**over)
    with pytest.raises(err, match=word):
        sparse.attention(x["q"], x["k"], x["v"], pattern, **kw)


@given(shape=st.lists(st.integers(0, 4), min_size=1, max_size=5), which=st.sampled_from("qkv"))
def test_random_wrong_shapes_raise_value_error(shape, which):
    x = _arrays()
    x[which] = np.zeros(shape)
    if x[which].shape == (1, 2, 6, 3) or (which == "v" and len(shape) == 4 and shape[:3] == [1, 2, 6] and shape[3] > 0):
        return  # a valid shape
    with pytest.raises(ValueError, match=which):
        sparse.attention(x["q"], x["k"], x["v"], sparse.strided(2))


def test_mixed_containers_rejected():
    x = _arrays()
    with pytest.raises(TypeError, match="mix"):
        sparse.attention(torch.from_numpy(x["q"]), x["k"], x["v"], sparse.strided(2))


@pytest.mark.parametrize("claim_id", ["sparse.attention-is-masked-softmax", "sparse.fold-and-merge-is-exact"])
@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=8)
def test_identity_claims_hold_and_controls_fail(claim_id, seed):
    claim = get(claim_id)
    ok = claim.check(np.random.default_rng(seed), "quick")
    bad = claim.negative_control(np.random.default_rng(seed), "quick")
    assert ok.holds, ok.detail
    assert not bad.holds, bad.detail


@pytest.mark.parametrize("kernel", ["matmul", "flash_cpu"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@given(case=cases(families=("strided", "fixed", "power"), max_length=120))
@settings(max_examples=15)
def test_half_precision_within_policy(kernel, dtype, case):
    """bf16 / fp16 (the GPU dtypes, here on CPU): log-sum-exp statistics stay in float32."""
    seed, family, sizes = case
    sizes = {**sizes, "head_dim": 8, "value_dim": 8}
    sizes.pop("logits")
    rng = np.random.default_rng(seed)
    pattern = draw_pattern(rng, family)
    x = sparse.make_inputs(rng, **sizes, dtype=np.float32)
    t = {c: torch.from_numpy(x[c]).to(dtype) for c in "qkv"}
    ref = sparse.attention_ref(*(t[c].float().numpy() for c in "qkv"), pattern)  # the rounded values
    out = attention_torch(t["q"], t["k"], t["v"], pattern, 8**-0.5, kernel=kernel)
    assert out.dtype == dtype
    assert_close(out, ref, dtype=dtype, name=f"{kernel} {pattern}")


@given(case=cases(max_length=50))
@settings(max_examples=30)
def test_reference_matches_torch_masked_sdpa(case):
    """The reference against an independent implementation of dense masked attention:
    torch's scaled_dot_product_attention with the pattern's boolean mask (float64)."""
    pattern, x, ref = _instance(*case, np.float64)
    n = case[2]["length"]
    q, k, v = (torch.from_numpy(x[c]) for c in "qkv")
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=torch.from_numpy(pattern.mask(n)))
    assert_close(ref, sdpa.numpy(), dtype=np.float64, name=str(pattern))
    assert_close(sparse.attention_ref(x["q"], x["k"], x["v"], pattern), ref, dtype=np.float64, name=str(pattern))


def test_make_inputs_rejects_bad_arguments():
    with pytest.raises(TypeError, match="rng"):
        sparse.make_inputs(0)
    with pytest.raises(ValueError, match=r"\blength\b"):
        sparse.make_inputs(np.random.default_rng(0), length=0)


@pytest.mark.parametrize("kernel", ["matmul", "flash_cpu"])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 150), w=st.integers(1, 70), chunk=st.sampled_from([1, 5, 64]))
@example(seed=0, n=64, w=65, chunk=64)
@settings(max_examples=30)
def test_sliding_window_band(kernel, seed, n, w, chunk):
    from theorylab.sparse._sparse_attention_torch import sliding_window_band

    x = sparse.make_inputs(np.random.default_rng(seed), batch=1, heads=2, length=n, head_dim=3)
    ref = sparse.attention_ref(x["q"], x["k"], x["v"], sparse.sliding_window(w))
    out = sliding_window_band(*(torch.from_numpy(x[c]) for c in "qkv"), w, 3**-0.5, kernel=kernel, chunk=chunk)
    assert_close(out, ref, dtype=np.float64, name=f"window w={w}")
