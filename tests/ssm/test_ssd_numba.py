"""The numba SSD kernel's own structure against the float64 recurrence.

Sizes are chosen around the kernel's blocking: head_dim around whole vectors (16 float32 /
8 float64 per vector, tiles of two), lengths and chunks around the 16-step time block,
more batch x heads than one run of 16, and 1 or 2 threads (jobs split between threads in
the middle of a chunk).  ``out`` is the numba backend, ``ref`` the float64 recurrence on
the same (rounded) values.
"""

import numpy as np
import pytest
from hypothesis import example, given, strategies as st

pytest.importorskip("numba", reason="numba backend not installed")

import numba  # noqa: E402

from theorylab.ssm import ssd  # noqa: E402
from theorylab.ssm._duality_numba import _RUN, _STEPS, ssd_numba  # noqa: E402
from theorylab.ssm.duality import make_inputs, regime_log_a, ssd_ref  # noqa: E402
from theorylab.tolerances import assert_close  # noqa: E402

ARGS = ("X", "log_a", "B", "C")

sizes_st = st.fixed_dictionaries({
    "batch": st.integers(1, 2),
    "length": st.one_of(st.sampled_from([1, 15, 16, 17, 31, 33, 48]), st.integers(1, 70)),
    "heads": st.one_of(st.sampled_from([1, 3, 17]), st.integers(1, 20)),
    "head_dim": st.sampled_from([1, 7, 8, 9, 15, 16, 17, 32, 33]),
    "state": st.sampled_from([1, 2, 16, 17]),
})


@given(sizes=sizes_st, chunk=st.one_of(st.sampled_from([1, 15, 16, 17, 64]), st.integers(1, 80)),
       dtype=st.sampled_from([np.float32, np.float64]), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**32 - 1))
@example(sizes=dict(batch=2, length=33, heads=17, head_dim=16, state=16), chunk=17, dtype=np.float32, threads=2, seed=0)
@example(sizes=dict(batch=1, length=48, heads=20, head_dim=8, state=2), chunk=64, dtype=np.float64, threads=2, seed=1)
@example(sizes=dict(batch=1, length=1, heads=1, head_dim=1, state=1), chunk=1, dtype=np.float32, threads=1, seed=2)
def test_numba_kernel_matches_reference(sizes, chunk, dtype, threads, seed):
    p = make_inputs(np.random.default_rng(seed), **sizes, dtype=dtype)
    ref = ssd_ref(*(p[k].astype(np.float64) for k in ARGS))
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        out, finite = ssd_numba(*(p[k] for k in ARGS), chunk_size=chunk)
    finally:
        numba.set_num_threads(before)
    assert finite and out.dtype == dtype and out.shape == p["X"].shape and out.flags.c_contiguous
    assert out.ctypes.data % 64 == 0
    assert_close(out, ref, dtype=dtype, name=f"ssd_numba Q={chunk} {sizes} {np.dtype(dtype).name} threads={threads}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("threads", [1, 2])
def test_sizes_straddling_the_blocking_constants(dtype, threads):
    """Lengths, chunks and batch x heads one below, at and one above the kernel's time block
    (_STEPS) and head run (_RUN), derived from the constants themselves, so a change of
    either keeps the boundaries covered; chunks end inside, at and past a block.  A job
    split between two threads in mid-chunk is included."""
    cases = []
    for L in (_STEPS - 1, _STEPS, _STEPS + 1, 2 * _STEPS + 1):
        for Q in (_STEPS - 1, _STEPS, _STEPS + 1, L):
            for bh in (_RUN - 1, _RUN, _RUN + 1):
                cases.append((L, Q, bh))
    rng = np.random.default_rng(17)
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        for L, Q, bh in cases:
            batch = 1 + bh % 2
            heads = -(-bh // batch)
            p = make_inputs(rng, batch=batch, length=L, heads=heads, head_dim=3, state=2, dtype=dtype)
            p["log_a"] = regime_log_a(rng, p["log_a"].shape, lo=-50.0).astype(dtype)
            ref = ssd_ref(*(p[k].astype(np.float64) for k in ARGS))
            out, finite = ssd_numba(*(p[k] for k in ARGS), chunk_size=Q)
            assert finite
            assert_close(out, ref, dtype=dtype, name=f"L={L} Q={Q} batch x heads={batch}x{heads} threads={threads}")
    finally:
        numba.set_num_threads(before)


@given(arg=st.sampled_from(["X", "B", "C"]), where=st.floats(0, 1, exclude_max=True),
       bad=st.sampled_from([np.nan, np.inf, -np.inf]), chunk=st.sampled_from([1, 16, 1000]),
       dtype=st.sampled_from([np.float32, np.float64]), head_dim=st.sampled_from([3, 16, 33]))
def test_non_finite_anywhere_raises_naming_the_argument(arg, where, bad, chunk, dtype, head_dim):
    """The numba backend finds a NaN/inf from its output checksum, wherever it sits."""
    p = make_inputs(np.random.default_rng(0), batch=2, length=37, heads=3, head_dim=head_dim, state=5, dtype=dtype)
    p[arg] = p[arg].copy()
    p[arg].reshape(-1)[int(where * p[arg].size)] = bad
    with pytest.raises(ValueError, match=f"{arg} contains NaN or inf"):
        ssd(**p, chunk_size=chunk, backend="numba")


def test_overflow_from_finite_inputs_is_not_blamed_on_them():
    """Finite float32 inputs whose products overflow give inf in Y, not a false input error."""
    p = make_inputs(np.random.default_rng(0), batch=1, length=4, heads=1, head_dim=16, state=2, dtype=np.float32)
    p["X"] = np.full_like(p["X"], 3e38)
    p["B"] = np.full_like(p["B"], 10.0)
    out = ssd(**p, backend="numba")
    assert not np.isfinite(out).all()


_BOUNDS_SCRIPT = """
import numpy as np
from numba import njit
from theorylab import _simd as S
from theorylab.ssm._duality_numba import ssd_numba
from theorylab.ssm.duality import make_inputs, ssd_ref

@njit
def one_past(a):
    return S.hsum(S.load(a, a.size - S.lanes(a) + 1))

try:
    one_past(np.zeros(32, np.float32))
    raise SystemExit("an out-of-bounds vector load was not caught")
except IndexError:
    pass
cases = [(dict(batch=2, length=37, heads=17, head_dim=5, state=3), 7),
         (dict(batch=1, length=33, heads=3, head_dim=16, state=17), 16),
         (dict(batch=1, length=17, heads=2, head_dim=33, state=2), 1000),
         (dict(batch=1, length=1, heads=1, head_dim=1, state=1), 1)]
for sizes, Q in cases:
    for dt in (np.float32, np.float64):
        p = make_inputs(np.random.default_rng(0), **sizes, dtype=dt)
        args = [p[k] for k in ("X", "log_a", "B", "C")]
        out, finite = ssd_numba(*args, chunk_size=Q)
        ref = ssd_ref(*(a.astype(np.float64) for a in args))
        assert finite and np.allclose(out, ref, rtol=1e-4, atol=1e-5), (sizes, Q, dt)
print("in bounds")
"""


def test_kernel_stays_in_bounds(tmp_path):
    """Every vector and scalar access of the SSD kernel, checked: the kernel compiled afresh
    with numba's bounds checking on (which also covers theorylab._simd's vector accesses)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", _BOUNDS_SCRIPT], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0 and "in bounds" in run.stdout, run.stdout + run.stderr
