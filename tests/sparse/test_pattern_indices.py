"""Patterns a user builds are checked once, where they become compressed rows: an index
outside [0, i], unsorted or duplicated keys, a missing diagonal, or a negative offset is a
ValueError naming the pattern and the row -- the same on every backend, and never a crash
(the numba kernel runs under NUMBA_BOUNDSCHECK=1 in a subprocess).  mask(n) is refused
beyond max_entries and built without n² temporaries."""

import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from theorylab import sparse
from theorylab.backends import numba_available
from theorylab.sparse.patterns import MAX_ENTRIES, OffsetPattern, Pattern, check_csr
from theorylab.sparse.sparse_attention_claims import dense_masked_softmax

BACKENDS = ["ref", pytest.param("numba", marks=pytest.mark.skipif(not numba_available(), reason="numba is not installed")),
            "torch"]


class RowPattern(Pattern):
    """A user's pattern: rows from a function (i, n) -> keys, exact count by summing rows."""

    def __init__(self, rows, name="user_rows"):
        self.rows, self.name = rows, name

    def _row(self, i, n):
        return np.asarray(self.rows(i, n))

    def nnz(self, n):
        return sum(len(self.rows(i, n)) for i in range(n))


def _inputs(n, seed=0):
    return sparse.make_inputs(np.random.default_rng(seed), batch=1, heads=2, length=n, head_dim=3)


@st.composite
def bad_offsets(draw):
    """An offset set with a negative member, or without 0, or of floats."""
    kind = draw(st.sampled_from(["negative", "no_zero", "float", "huge_negative"]))
    good = draw(st.lists(st.integers(1, 30), max_size=5))
    if kind == "negative":
        return kind, [0, *good, -draw(st.integers(1, 30))]
    if kind == "huge_negative":
        return kind, [-draw(st.integers(10**5, 10**12)), 0, *good]
    if kind == "no_zero":
        return kind, good or [1]
    return kind, [0.0, *map(float, good)]


@pytest.mark.parametrize("backend", BACKENDS)
@given(case=bad_offsets(), n=st.integers(1, 20))
@example(case=("huge_negative", [-(10**6), 0]), n=12)  # the reported SIGSEGV
@example(case=("negative", [-1, 0]), n=12)  # the reported finite garbage
@settings(max_examples=20)
def test_bad_offsets_are_one_value_error_on_every_backend(backend, case, n):
    kind, offsets = case
    pattern = OffsetPattern("user_offsets", (), lambda m, o=offsets: np.array(o))
    x = _inputs(n)
    word = {"no_zero": "lack 0, so row 0 has no key", "float": "integers"}.get(kind, rf"offset -{-min(offsets)} gives row 0 the key {-min(offsets)}\b")
    for call in (lambda: pattern.csr(n), lambda: pattern.mask(n), lambda: pattern.row(n - 1, n),
                 lambda: sparse.attention(x["q"], x["k"], x["v"], pattern, backend=backend)):
        with pytest.raises(ValueError, match=word) as err:
            call()
        assert "user_offsets" in str(err.value)


@given(offsets=st.lists(st.integers(0, 40), min_size=1, max_size=8), n=st.integers(1, 25))
def test_offsets_are_a_set(offsets, n):
    """Order, duplicates and members >= n do not matter (D is a set); 0 is added by the user."""
    offsets = [0, *offsets]
    user = OffsetPattern("user", (), lambda m: np.array(offsets[::-1] + offsets))
    d = sorted({o for o in offsets if o < n})
    assert user.offsets(n).tolist() == d
    truth = np.zeros((n, n), dtype=bool)
    for o in d:
        truth[np.arange(o, n), np.arange(n - o)] = True
    assert np.array_equal(user.mask(n), truth)
    assert user.nnz(n) == int(truth.sum())
    indptr, indices = user.csr(n)
    assert np.array_equal(np.diff(indptr), truth.sum(1)) and indices.tolist() == np.nonzero(truth)[1].tolist()


ROW_BUGS = {
    "key_after_query": (lambda i, n: list(range(i + 1)) + ([i + 1] if i == 3 else []), "row 3 holds the key 4"),
    "negative_key": (lambda i, n: ([-1] if i == 2 else []) + [i], "row 2 holds the key -1"),
    "unsorted": (lambda i, n: [i, 0] if i == 4 else [i], "row 4"),
    "duplicate": (lambda i, n: [0, 0, i] if i == 5 else [i], "row 5"),
    "no_diagonal": (lambda i, n: [0] if i == 6 else [i], "row 6 does not hold its diagonal"),
    "huge_key": (lambda i, n: [i, 10**9] if i == 1 else [i], "row 1 holds the key 1000000000"),
    "float_keys": (lambda i, n: [float(i)], "integer"),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bug", sorted(ROW_BUGS))
def test_bad_rows_are_one_value_error_on_every_backend(backend, bug):
    rows, message = ROW_BUGS[bug]
    pattern = RowPattern(rows, name=f"user_{bug}")
    x = _inputs(8)
    for call in (lambda: pattern.csr(8), lambda: pattern.mask(8),
                 lambda: sparse.attention(x["q"], x["k"], x["v"], pattern, backend=backend)):
        with pytest.raises(ValueError, match=message) as err:
            call()
        assert f"user_{bug}" in str(err.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_valid_user_pattern_runs_everywhere(backend):
    pattern = RowPattern(lambda i, n: sorted({0, i // 2, i}))
    x = _inputs(17, seed=3)
    ref = dense_masked_softmax(x["q"], x["k"], x["v"], pattern.mask(17))
    np.testing.assert_allclose(sparse.attention(x["q"], x["k"], x["v"], pattern, backend=backend), ref, rtol=0, atol=1e-12)


@given(n=st.integers(1, 12), data=st.data())
def test_check_csr_accepts_exactly_the_contract(n, data):
    """Random CSR arrays: accepted iff every row is strictly increasing in [0, i] and ends at i."""
    rows = [sorted(data.draw(st.sets(st.integers(-2, n + 1), max_size=4))) for _ in range(n)]
    rows = [r if data.draw(st.booleans()) else sorted({*(j for j in r if 0 <= j < i), i}) for i, r in enumerate(rows)]
    ok = all(r and r[-1] == i and r[0] >= 0 for i, r in enumerate(rows))
    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = np.array([j for r in rows for j in r], dtype=np.int64)
    if ok:
        assert check_csr("p", n, indptr, indices)[1].tolist() == indices.tolist()
    else:
        with pytest.raises(ValueError, match=r"row \d+"):
            check_csr("p", n, indptr, indices)


@pytest.mark.skipif(not numba_available(), reason="numba is not installed")
def test_numba_kernel_under_boundscheck(tmp_path):
    """In one subprocess with NUMBA_BOUNDSCHECK=1 (and a fresh cache, so the kernel is compiled
    with bounds checks): the raw kernel given a bad index raises instead of reading memory; the
    public path refuses the reported patterns before the kernel; every family runs in bounds."""
    script = textwrap.dedent("""
        import numpy as np
        from numba.core import config
        assert config.BOUNDSCHECK == 1
        from theorylab import sparse
        from theorylab.sparse._sparse_attention_numba import _csr_kernel
        from theorylab.sparse.patterns import OffsetPattern

        q = np.random.default_rng(0).standard_normal((1, 12, 3))
        indptr, bad = np.arange(13, dtype=np.int64), np.arange(12, dtype=np.int64)
        bad[5] = 10**6
        try:
            _csr_kernel(q, q, q, indptr, bad, 1.0, np.empty_like(q))
            raise SystemExit("the bounds-checked kernel read index 10**6")
        except (IndexError, SystemError) as e:  # SystemError wraps the IndexError raised in a prange
            assert "out of bounds" in str(e) or "out of bounds" in str(e.__cause__), e
        x = sparse.make_inputs(np.random.default_rng(1), batch=2, heads=2, length=40, head_dim=3, value_dim=2)
        for offsets in ([-10**6, 0], [-1, 0]):
            p = OffsetPattern("user", (), lambda n, o=offsets: np.array(o))
            try:
                sparse.attention(x["q"], x["k"], x["v"], p, backend="numba")
                raise SystemExit(f"offsets {offsets} accepted")
            except ValueError as e:
                assert "row 0" in str(e), e
        for p in (sparse.strided(3), sparse.fixed(4, 2), sparse.sliding_window(5), sparse.dilated_window(3, 4),
                  sparse.power_attention(), sparse.window_global(4, 2), sparse.bigbird(3, 1, 2, 9), sparse.full_causal()):
            out = sparse.attention(x["q"], x["k"], x["v"], p, backend="numba")
            ref = sparse.attention_ref(x["q"], x["k"], x["v"], p)
            assert np.abs(out - ref).max() <= 1e-12 * np.abs(ref).max(), p
        print("bounds ok")
    """)
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "bounds ok" in res.stdout, res.stdout + res.stderr


# ---------------------------------------------------------------------------------------
# memory guard
# ---------------------------------------------------------------------------------------
ALL = [sparse.strided(5), sparse.fixed(6, 2), sparse.sliding_window(7), sparse.dilated_window(4, 3), sparse.power_attention(),
       sparse.window_global(9, 3), sparse.bigbird(8, 2, 3, 1), sparse.full_causal()]


@pytest.mark.parametrize("pattern", ALL, ids=str)
def test_mask_refused_beyond_max_entries(pattern):
    """n = 10**6 would need 931 GiB: refused with n and the memory; the limit is an argument."""
    with pytest.raises(ValueError, match=r"n = 1000000 .*931 GiB.*max_entries"):
        pattern.mask(10**6)
    assert MAX_ENTRIES == 2**31
    with pytest.raises(ValueError, match=r"n = 50\b"):
        pattern.mask(50, max_entries=2499)
    assert pattern.mask(50, max_entries=2500).shape == (50, 50)
    with pytest.raises(ValueError, match="n = 10"):
        pattern.csr(10, max_entries=pattern.nnz(10) - 1)
    with pytest.raises(ValueError, match="max_entries"):
        pattern.mask(4, max_entries=0)


def test_attention_refuses_a_mask_beyond_the_limit():
    """The dense paths (reference, masked-dense torch) inherit the guard: a clear error, not an allocation."""
    n = 50_000  # n² = 2.5e9 > 2**31
    q = np.zeros((1, 1, n, 1))
    for backend, pattern in (("ref", sparse.strided(3)), ("torch", sparse.bigbird(3, 1, 1, 0)), ("torch", sparse.full_causal())):
        with pytest.raises(ValueError, match=r"n = 50000"):
            sparse.attention(q, q, q, pattern, backend=backend)


@pytest.mark.parametrize("pattern", ALL, ids=str)
def test_mask_peak_memory_is_the_mask(pattern):
    """Peak allocation of mask(n) at n = 3000 (a 9 MB mask) stays within the mask plus 8 MiB;
    the former i − j int64 temporaries alone took 72 MB."""
    n = 3000
    pattern.mask(8)  # warm any lazy import
    tracemalloc.start()
    try:
        m = pattern.mask(n)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert m.shape == (n, n) and m.sum() == pattern.nnz(n)
    assert peak <= n * n + 8 * 2**20, f"{pattern}: peak {peak / 2**20:.1f} MiB for a {n * n / 2**20:.1f} MiB mask"
