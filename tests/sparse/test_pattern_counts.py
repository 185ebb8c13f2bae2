"""Exact counts for any n a Python int holds: nnz(n) in Python integers (no float, no int64),
pinned three ways -- brute force at small n (test_patterns / test_counting), the reported
huge cases against sums computed here, and for n up to 10**40 the increment nnz(n + 1) −
nnz(n) against each family's per-row count (with nnz(1) = 1 this fixes nnz by induction)."""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from theorylab import sparse
from theorylab.sparse import patterns_counts as PC
from theorylab.sparse.patterns import OffsetPattern

HUGE = st.integers(1, 10**40)


def _row_count(pattern, i: int) -> int:
    """Keys of row i, retyped from each family's definition, in Python integers (valid for huge i)."""
    name = pattern.name.split("(")[0]
    if name == "strided":
        l = pattern.l
        return (min(i, l) + 1) + (i // l + 1) - (1 + (i >= l))  # window + stride − shared {0, l}
    if name == "fixed":
        return i % pattern.l + 1 + (i // pattern.l) * pattern.c
    p = dict(getattr(pattern, "params", ()))
    if name == "sliding_window":
        return min(i + 1, p["w"])
    if name == "dilated_window":
        return min(p["w"], i // p["r"] + 1)
    if name == "power_attention":
        return 1 + i.bit_length()  # 0 and the powers 2^k <= i
    if name in ("window_global", "bigbird"):
        w, g = pattern.w, pattern.g
        if i < g:
            base = i + 1
        else:
            base = min(i + 1, w) + g - max(0, min(g, i + 1) - max(0, i - w + 1))  # window + globals − overlap
        return base + (min(pattern.r, max(0, i - w + 1 - g)) if name == "bigbird" else 0)
    if name == "full_causal":
        return i + 1
    raise AssertionError(name)


@st.composite
def families(draw, big=False):
    """A pattern of every family; with big=True its parameters may be huge too."""
    top = 10**30 if big else 40
    k = st.integers(1, top)
    kind = draw(st.sampled_from(["strided", "fixed", "window", "dilated", "power", "window_global", "bigbird", "full"]))
    if kind == "strided":
        return sparse.strided(draw(k))
    if kind == "fixed":
        l = draw(k)
        return sparse.fixed(l, draw(st.integers(1, l)))
    if kind == "window":
        return sparse.sliding_window(draw(k))
    if kind == "dilated":
        return sparse.dilated_window(draw(k), draw(k))
    if kind == "power":
        return sparse.power_attention()
    if kind == "window_global":
        return sparse.window_global(draw(k), draw(st.integers(0, top)))
    if kind == "bigbird":
        return sparse.bigbird(draw(k), draw(st.integers(0, top)), draw(st.integers(0, top)), 0)
    return sparse.full_causal()


@given(pattern=families(big=True), n=HUGE)
@example(pattern=sparse.dilated_window(10**6, 10**8), n=10**14)
@example(pattern=sparse.power_attention(), n=10**30)
@example(pattern=sparse.strided(3), n=2**64 + 1)
@example(pattern=sparse.bigbird(2**63, 5, 7, 0), n=2**64)
def test_increment_is_the_row_count_at_huge_n(pattern, n):
    got, nxt = pattern.nnz(n), pattern.nnz(n + 1)
    assert type(got) is int and type(nxt) is int
    assert nxt - got == _row_count(pattern, n), pattern
    assert pattern.nnz(1) == 1
    assert 0 < pattern.density(n) <= 1.0


@given(pattern=families(), n=st.integers(1, 60))
def test_row_count_formula_is_the_brute_force_one(pattern, n):
    """The per-row counts used above equal the library's checked rows at small n."""
    assert [_row_count(pattern, i) for i in range(n)] == [pattern.row(i, n).size for i in range(n)]


def test_reported_cases_exactly():
    """dilated_window(10**6, 10**8) at n = 10**14: offsets t·10**8, t < 10**6 (int64 returned 1.05e20);
    power_attention at n = 10**30 (raised OverflowError): sums computed here term by term."""
    n = 10**14
    assert sparse.dilated_window(10**6, 10**8).nnz(n) == sum(n - t * 10**8 for t in range(10**6)) == 50000050000000000000
    n = 10**30
    assert sparse.power_attention().nnz(n) == n + sum(n - 2**k for k in range(200) if 2**k < n)


@given(n=st.integers(2, 2**62), picks=st.lists(st.floats(0, 1), min_size=1, max_size=6))
def test_user_offsets_count_exactly_near_int64(n, picks):
    """A user's offsets without a closed form: Σ (n − δ) in Python integers (int64 overflows
    past 2**63 for these sizes), equal to the sum computed here."""
    offsets = sorted({0, *(min(n - 1, int(p * n)) for p in picks)})
    pattern = OffsetPattern("user", (), lambda m: np.array(offsets, dtype=np.int64))
    assert pattern.nnz(n) == sum(n - d for d in offsets)


@pytest.mark.parametrize("method", ["mask", "csr", "row_counts", "offsets", "row", "block_density"])
def test_array_methods_refuse_n_beyond_int64_naming_n(method):
    p = sparse.power_attention()
    call = {"row": lambda: p.row(0, 10**30)}.get(method, lambda: getattr(p, method)(10**30))
    with pytest.raises(ValueError, match=r"\bn = 10{30}\b|n = 1000000000000000000000000000000"):
        call()
    user = OffsetPattern("user", (), lambda m: np.array([0, 1]))
    with pytest.raises(ValueError, match=r"n = 1000000000000000000000000000000"):
        user.nnz(10**30)  # no closed form: summing its offsets needs them as an array


def test_sum_clip_and_offsets_count_match_loops():
    for x0 in range(-4, 5):
        for x1 in range(-4, 9):
            for lo in range(-2, 3):
                for hi in range(lo, 5):
                    assert PC._sum_clip(x0, x1, lo, hi) == sum(min(max(x, lo), hi) for x in range(x0, x1))
    assert PC.offsets_count(10, [0, 3, 12]) == 10 + 7
