"""theorylab._simd: each vector operation against numpy, IEEE propagation, and 512-bit code.

The sides are named ``out`` (a numba kernel built from the operations) and ``ref`` (numpy).
"""

import re

import numpy as np
import pytest
from hypothesis import given, strategies as st

pytest.importorskip("numba", reason="numba backend not installed")

from numba import njit  # noqa: E402

from theorylab import _simd as S  # noqa: E402

DTYPES = [np.float32, np.float64]


@njit
def _ops(a, b, s, out):
    """out rows: load/store, splat, fma(v, v, v), fma(s, v, v), fma(v, s, v), mul(s, v), mul(v, v), add."""
    W = S.lanes(a)
    x = S.load(a, 0)
    y = S.load(b, 0)
    S.store(out, 0 * W, x)
    S.store(out, 1 * W, S.splat(a, s))
    S.store(out, 2 * W, S.fma(x, y, x))
    S.store(out, 3 * W, S.fma(s, x, y))
    S.store(out, 4 * W, S.fma(x, s, y))
    S.store(out, 5 * W, S.mul(s, x))
    S.store(out, 6 * W, S.mul(x, y))
    S.store(out, 7 * W, S.add(x, y))
    return S.hsum(x), W


@njit
def _streamed(src, dst, offset):
    W = S.lanes(src)
    for i in range(0, src.size, W):
        S.stream(dst, offset + i, S.load(src, i))
        S.prefetch(src, i + 4 * W)  # beyond the end near the last lines: a hint never faults
    S.fence()


@njit
def _unaligned_sum(a, start):
    """Σ a[start : start + lanes] through one unaligned load."""
    return S.hsum(S.load(a, start))


@pytest.mark.parametrize("dtype", DTYPES)
@given(seed=st.integers(0, 2**32 - 1), s=st.floats(-4, 4, allow_nan=False))
def test_operations_match_numpy(dtype, seed, s):
    rng = np.random.default_rng(seed)
    W = 64 // np.dtype(dtype).itemsize
    a, b = (rng.standard_normal(W).astype(dtype) for _ in range(2))
    out = np.zeros(8 * W, dtype)
    total, lanes = _ops(a, b, s, out)
    assert lanes == W
    s_ = dtype(s)
    ref = np.concatenate([a, np.full(W, s_), a * b + a, s_ * a + b, a * s_ + b, s_ * a, a * b, a + b])
    tol = 4 * np.finfo(dtype).eps * (1 + np.abs(ref))  # fma rounds once; numpy rounds twice
    assert np.all(np.abs(out - ref) <= tol), np.abs(out - ref).max()
    assert abs(total - a.astype(np.float64).sum()) <= W * np.finfo(dtype).eps * np.abs(a).sum()


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_finite_values_propagate(dtype):
    """No fast-math: NaN stays NaN and inf * 0 is NaN, as the SSD checksum relies on."""
    W = 64 // np.dtype(dtype).itemsize
    a = np.ones(W, dtype)
    b = np.zeros(W, dtype)
    a[1], a[2] = np.nan, np.inf
    out = np.zeros(8 * W, dtype)
    total, _ = _ops(a, b, 0.0, out)
    rows = out.reshape(8, W)
    assert np.isnan(total)
    assert np.isnan(rows[3, 1]) and np.isnan(rows[3, 2])  # fma(0, nan, 0), fma(0, inf, 0)
    assert np.isnan(rows[6, 2]) and np.isnan(rows[5, 2])  # inf * 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_vectors", [1, 3])
def test_stream_writes_aligned_rows(dtype, n_vectors):
    W = 64 // np.dtype(dtype).itemsize
    src = np.arange(n_vectors * W, dtype=dtype)
    buf = np.zeros(src.size + 2 * W, dtype)
    offset = (-buf.ctypes.data % 64) // buf.itemsize  # first 64-byte boundary in buf
    _streamed(src, buf, offset)
    assert np.array_equal(buf[offset:offset + src.size], src)
    assert not buf[:offset].any() and not buf[offset + src.size:].any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_load_needs_no_alignment(dtype):
    W = 64 // np.dtype(dtype).itemsize
    a = np.arange(3 * W, dtype=dtype)
    for start in (0, 1, W - 1, W + 3):
        assert _unaligned_sum(a, start) == a[start:start + W].sum()


def test_typing_rejects_wrong_arguments():
    from numba.core.errors import TypingError

    @njit
    def two_d(a):
        return S.load(a, 0)

    @njit
    def mixed(a, b):
        return S.add(S.load(a, 0), S.load(b, 0))

    with pytest.raises(TypingError):
        two_d(np.zeros((2, 16), np.float32))
    with pytest.raises(TypingError):
        mixed(np.zeros(16, np.float32), np.zeros(8, np.float64))


def _host_has_avx512() -> bool:
    try:
        import llvmlite.binding as ll

        return bool(ll.get_host_cpu_features().get("avx512f", False))
    except Exception:  # pragma: no cover - exotic host
        return False


@pytest.mark.parametrize("dtype", DTYPES)
def test_ssd_step_kernel_uses_full_vector_registers(dtype):
    """The SSD step kernel does its FMAs on the host's widest vector registers -- zmm on an
    AVX-512 host (where LLVM's own vectorizer would pick 256-bit ymm), ymm pairs elsewhere
    (each 64-byte vector as two halves) -- with no scalar FMA in the hot loop."""
    from theorylab.ssm import _duality_numba as K

    kernel = njit(fastmath=K._FLAGS)(K._steps.py_func)  # fresh, uncached: cached code cannot be inspected
    W = 64 // np.dtype(dtype).itemsize
    n, pp, T = 3, 2 * W, 3
    z = lambda k: np.zeros(k, dtype)  # noqa: E731
    R = T + 1  # odd T: the kernel also runs row T, an identity step the caller provides
    kernel(z(R * pp), z(R), z(R * n), z(R * n), T, n, pp, z(n * pp), z(R * pp), z(1), z(1), z(1), -1, -1, 1, 1, 1)
    asm = kernel.inspect_asm(kernel.signatures[0])
    suffix = "ps" if dtype == np.float32 else "pd"
    reg = "zmm" if _host_has_avx512() else "ymm"
    assert len(re.findall(rf"vfmadd\w*{suffix}\s+[^\n]*%{reg}", asm)) >= 8, f"too few {reg} FMAs"
    assert not re.search(r"vfmadd\w*s[sd]\s", asm), "a scalar FMA is left"
