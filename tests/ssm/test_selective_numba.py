"""numba selective scan: its vectorizable exp, the scan and the matrix against the references.

The sides are named ``out`` (numba) and ``ref`` (float64 reference on the same values:
inputs rounded to the kernel's dtype first, then upcast).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, strategies as st

pytest.importorskip("numba", reason="numba backend not installed")

import numba  # noqa: E402

from theorylab.ssm import make_inputs, selective_attention_matrix_ref, selective_scan_ref  # noqa: E402
from theorylab.ssm._selective_numba import _channel_block, selective_attention_matrix_numba, selective_scan_numba  # noqa: E402
from theorylab.ssm._vexp import vexp, vexp_array  # noqa: E402
from theorylab.tolerances import assert_close  # noqa: E402

F32_TINY = float(np.finfo(np.float32).tiny)  # 2^-126, below it vexp flushes to 0
F32_MIN_ARG = float(np.log(np.float64(F32_TINY)))  # -87.3365
ULP32 = 2.0**-23  # float32 spacing at 1: relative ulp size is between ULP32/2 and ULP32
F64_TINY = float(np.finfo(np.float64).tiny)
NAMES = ("x", "delta", "A", "B", "C", "D")


# ---------------------------------------------------------------------------------------
# vexp
# ---------------------------------------------------------------------------------------
def _check_exp32(xs):
    x = np.asarray(xs, dtype=np.float32)
    out = vexp_array(x).astype(np.float64)
    ref = np.exp(x.astype(np.float64))
    normal = x.astype(np.float64) >= F32_MIN_ARG
    rel = np.abs(out[normal] - ref[normal]) / ref[normal]
    assert np.all(rel <= 2 * ULP32), f"max relative error {rel.max():.3e} > 2 ulp at x={x[normal][np.argmax(rel)]}"
    # below ln(2^-126) the result is flushed to 0: absolute error under the smallest normal
    assert np.all(out[~normal] == 0.0)
    assert np.all(np.abs(out[~normal] - ref[~normal]) <= F32_TINY)


@given(st.lists(st.floats(min_value=-100.0, max_value=0.0, width=32), min_size=1, max_size=64))
@example([0.0, -0.0])
@example([-1e-30, -1e-7, -0.5 * np.log(2.0), -np.log(2.0), -1.0])
@example([F32_MIN_ARG, np.nextafter(np.float32(F32_MIN_ARG), np.float32(0)), -87.4, -88.0, -100.0])
@example([-1e30, -3.4e38, -np.inf])
def test_vexp_float32_matches_np_exp(xs):
    _check_exp32(xs)


def test_vexp_float32_dense_sweep():
    # every regime of the range reduction: |k| from 0 to 126, both signs of r
    x = np.concatenate([np.linspace(F32_MIN_ARG, 0.0, 200_001), -np.logspace(-12, 0, 2_001)])
    _check_exp32(x)


def test_vexp_special_values():
    out = vexp_array(np.array([0.0, -np.inf, -1e300, -700.0], np.float64))
    assert out[0] == 1.0 and out[1] == 0.0 and out[2] == 0.0
    assert abs(out[3] - np.exp(-700.0)) <= 4e-16 * np.exp(-700.0)
    assert vexp_array(np.zeros(3, np.float32)).tolist() == [1.0, 1.0, 1.0]
    assert vexp(-1.0) == np.exp(-1.0)  # from Python it is np.exp
    with pytest.raises(TypeError, match="float32 or float64"):
        vexp_array(np.zeros(2, np.int64))


@given(st.lists(st.floats(min_value=-745.0, max_value=0.0), min_size=1, max_size=64))
@example([0.0, -1e-300, -0.34657359027997264, -708.39, -709.0, -np.inf])
def test_vexp_float64_matches_np_exp(xs):
    x = np.asarray(xs, dtype=np.float64)
    out = vexp_array(x)
    ref = np.exp(x)
    normal = ref >= F64_TINY
    # degree-13 Taylor: truncation < 1e-17; Horner's roundings give a few ulp
    assert np.all(np.abs(out[normal] - ref[normal]) <= 4 * 2.0**-52 * ref[normal])
    assert np.all(np.abs(out[~normal]) <= F64_TINY)


# ---------------------------------------------------------------------------------------
# scan
# ---------------------------------------------------------------------------------------
def _scan_case(dtype, batch, length, channels, state, seed, with_D, with_h0, decays="moderate"):
    rng = np.random.default_rng(seed)
    p = make_inputs(rng, batch=batch, length=length, channels=channels, state=state, decays=decays, dtype=dtype)
    args = [p[k] for k in NAMES]
    if not with_D:
        args[-1] = None
    h0 = rng.standard_normal((batch, channels, state)).astype(dtype) if with_h0 else None
    out = selective_scan_numba(*args, initial_state=h0)
    ref = selective_scan_ref(*[None if v is None else v.astype(np.float64) for v in args + [h0]])
    return out, ref


scan_sizes = dict(
    batch=st.integers(1, 3),
    length=st.one_of(st.sampled_from([1, 2, 3, 7, 31, 63]), st.integers(1, 80)),
    channels=st.sampled_from([1, 2, 3, 5, 7, 9, 17, 33]),
    state=st.sampled_from([1, 2, 3, 5, 7, 16]),
    seed=st.integers(0, 2**32 - 1),
    with_D=st.booleans(),
    with_h0=st.booleans(),
    decays=st.sampled_from(["moderate", "extreme"]),  # extreme: Δ·A from -1e4 to -1e-7
)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@given(**scan_sizes)
@example(batch=1, length=1, channels=1, state=1, seed=0, with_D=True, with_h0=False, decays="moderate")
@example(batch=1, length=63, channels=7, state=1, seed=1, with_D=True, with_h0=True, decays="extreme")
@example(batch=2, length=1, channels=5, state=3, seed=2, with_D=False, with_h0=True, decays="moderate")
@example(batch=3, length=31, channels=2, state=16, seed=3, with_D=True, with_h0=False, decays="extreme")
def test_scan_matches_ref(dtype, batch, length, channels, state, seed, with_D, with_h0, decays):
    (y, h), (y_ref, h_ref) = _scan_case(dtype, batch, length, channels, state, seed, with_D, with_h0, decays)
    assert y.dtype == dtype and y.shape == (batch, length, channels)
    assert h.dtype == dtype and h.shape == (batch, channels, state)
    assert_close(y, y_ref, dtype=dtype, name="y")
    assert_close(h, h_ref, dtype=dtype, name="h_last")


def test_scan_large_decays_underflow_to_zero():
    # Δ·A down to -1e4: decays flush to 0 (the true values are < 1e-38), the state forgets
    rng = np.random.default_rng(7)
    p = make_inputs(rng, batch=1, length=9, channels=3, state=5, dtype=np.float32)
    p["delta"] = np.full_like(p["delta"], 100.0)
    p["A"] = (p["A"] * 50).astype(np.float32)
    out, _ = selective_scan_numba(*[p[k] for k in NAMES])
    ref, _ = selective_scan_ref(*[p[k].astype(np.float64) for k in NAMES])
    assert_close(out, ref, dtype=np.float32)


def test_scan_segments_carry_state():
    # metamorphic: two segments with the carried state = one run
    rng = np.random.default_rng(11)
    p = make_inputs(rng, batch=2, length=41, channels=7, state=3)
    args = [p[k] for k in NAMES]
    y, h = selective_scan_numba(*args)
    cut = 17
    first = [v[:, :cut] if v.ndim == 3 else v for v in args]
    second = [v[:, cut:] if v.ndim == 3 else v for v in args]
    y1, h1 = selective_scan_numba(*first)
    y2, h2 = selective_scan_numba(*second, initial_state=h1)
    assert_close(np.concatenate([y1, y2], axis=1), y, dtype=np.float64)
    assert_close(h2, h, dtype=np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_scan_blocking_invariance(dtype):
    # metamorphic: the channel blocking (block widths 8 .. 256, chosen from the thread count
    # in use) must not change any result: the kernel is run directly with four different
    # widths, whatever the number of threads here; each channel's operations are the same
    # in every blocking, so the outputs are bit-identical, and they match the reference
    from theorylab.ssm._selective_numba import _scan_kernel

    rng = np.random.default_rng(13)
    p = make_inputs(rng, batch=2, length=9, channels=200, state=3, decays="extreme", dtype=dtype)
    x, delta, A, B, C, D = (p[k] for k in NAMES)
    h0 = rng.standard_normal((2, 200, 3)).astype(dtype)
    outs = {}
    for cbw in (8, 24, 104, 256):  # 25, 9, 2 and 1 blocks per batch row; the last block ragged for 24 and 104
        y, h = np.empty((2, 9, 200), dtype), np.empty((2, 200, 3), dtype)
        _scan_kernel(x, delta, np.ascontiguousarray(A.T), B, C, D, h0, y, h, cbw)
        outs[cbw] = (y, h)
    for cbw, (y, h) in outs.items():
        np.testing.assert_array_equal(y, outs[8][0], err_msg=f"block width {cbw}")
        np.testing.assert_array_equal(h, outs[8][1], err_msg=f"block width {cbw}")
    y_ref, h_ref = selective_scan_ref(*(v.astype(np.float64) for v in (x, delta, A, B, C, D, h0)))
    assert_close(outs[104][0], y_ref, dtype=dtype, name="y")
    assert_close(outs[104][1], h_ref, dtype=dtype, name="h_last")


@given(batch=st.integers(1, 9), channels=st.integers(1, 2000))
def test_channel_block_covers_channels(batch, channels):
    cb = _channel_block(batch, channels)
    assert cb % 8 == 0 and 8 <= cb <= 256
    assert cb < channels + 8  # no block wider than needed
    if batch == 1 and channels > 8 and numba.get_num_threads() > 1:
        assert -(-channels // cb) >= 2  # one batch row still gives two threads work


# ---------------------------------------------------------------------------------------
# hidden attention matrix
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@given(
    batch=st.integers(1, 2),
    length=st.sampled_from([1, 2, 7, 19]),
    channels=st.sampled_from([1, 2, 3, 5]),
    state=st.sampled_from([1, 3, 7]),
    seed=st.integers(0, 2**32 - 1),
    decays=st.sampled_from(["moderate", "extreme"]),
)
def test_matrix_matches_ref(dtype, batch, length, channels, state, seed, decays):
    p = make_inputs(np.random.default_rng(seed), batch=batch, length=length, channels=channels, state=state,
                    decays=decays, dtype=dtype)
    args = [p[k] for k in ("delta", "A", "B", "C")]
    out = selective_attention_matrix_numba(*args)
    ref = selective_attention_matrix_ref(*[v.astype(np.float64) for v in args])
    assert out.dtype == dtype
    assert_close(out, ref, dtype=dtype)


# ---------------------------------------------------------------------------------------
# benchmark script
# ---------------------------------------------------------------------------------------
def test_benchmark_smoke(capsys):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "ssm_scan.py"
    spec = importlib.util.spec_from_file_location("_bench_ssm_scan", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.main(["--smoke", "--repeat", "1"])
    for key in ("torch_loop_over_numba", "numba_over_exp_floor", "torch_chunked_over_numba"):
        assert np.isfinite(out[key]) and out[key] > 0, key
    for key in ("rel_error_numba", "rel_error_torch_loop", "rel_error_torch_chunked"):
        assert out[key] <= 1e-4, key
    assert "torch_loop_over_numba" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------
# vectorization (the point of vexp): the scan's inner loop must compile to vector code
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_scan_kernel_vectorizes(dtype):
    import re

    from numba import njit

    from theorylab.ssm import _selective_numba as K

    # a fresh, uncached compile of the same source: cached code cannot be inspected
    kernel = njit(parallel=True, fastmath=K._CONTRACT)(K._scan_kernel.py_func)
    p = make_inputs(np.random.default_rng(0), batch=1, length=3, channels=16, state=2, dtype=dtype)
    b, L, c = p["x"].shape
    kernel(
        p["x"], p["delta"], np.ascontiguousarray(p["A"].T), p["B"], p["C"], p["D"],
        np.zeros((b, c, 2), dtype), np.empty((b, L, c), dtype), np.empty((b, c, 2), dtype), 8,
    )  # fmt: skip
    llvm = kernel.inspect_llvm(kernel.signatures[0])
    fty, ity = ("float", "i32") if dtype == np.float32 else ("double", "i64")
    # vexp's 2^k is a shift of the float's bits: vectorized, it is a shl on an integer vector
    assert re.search(rf"shl <\d+ x {ity}>", llvm), "vexp did not vectorize in the scan"
    assert re.search(rf"fmul (fast |contract )*<\d+ x {fty}>", llvm)
    assert not re.search(r"call [^\n]*@(llvm\.exp|expf?\b|numba_gufunc_exp)", llvm), "a scalar exp call is left"
