"""Patterns: rows, masks and exact counts agree; golden Child et al. rows; bad arguments."""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from theorylab import sparse
from theorylab.sparse.patterns_claims import enumerate_mask

VECTORS = Path(__file__).parents[1] / "data" / "sparse_patterns.json"  # provenance: tests/data/README.md


@st.composite
def any_pattern(draw):
    """A pattern of every family with small, awkward parameters."""
    kind = draw(st.sampled_from(["strided", "fixed", "window", "dilated", "power", "window_global", "bigbird", "full"]))
    l = draw(st.integers(1, 9))
    if kind == "strided":
        return sparse.strided(l)
    if kind == "fixed":
        return sparse.fixed(l, draw(st.integers(1, l)))
    if kind == "window":
        return sparse.sliding_window(draw(st.integers(1, 9)))
    if kind == "dilated":
        return sparse.dilated_window(draw(st.integers(1, 6)), draw(st.integers(1, 4)))
    if kind == "power":
        return sparse.power_attention()
    if kind == "window_global":
        return sparse.window_global(draw(st.integers(1, 7)), draw(st.integers(0, 4)))
    if kind == "bigbird":
        return sparse.bigbird(draw(st.integers(1, 5)), draw(st.integers(0, 3)), draw(st.integers(0, 4)), draw(st.integers(0, 2**31)))
    return sparse.full_causal()


@given(pattern=any_pattern(), n=st.integers(1, 70))
@example(pattern=sparse.strided(1), n=1)
@example(pattern=sparse.fixed(7, 7), n=13)
@example(pattern=sparse.bigbird(2, 0, 3, 5), n=64)
@example(pattern=sparse.power_attention(), n=33)  # offset 32 = n - 1 enters at n = 2^k + 1
@example(pattern=sparse.strided(4), n=13)
def test_mask_rows_csr_and_nnz_agree(pattern, n):
    m = pattern.mask(n)
    assert m.shape == (n, n) and m.dtype == bool
    assert np.array_equal(m, enumerate_mask(pattern, n)), "mask = enumeration of the defining rule"
    assert not np.triu(m, 1).any(), "pattern must be causal"
    assert m.diagonal().all(), "every query attends to itself"
    assert pattern.nnz(n) == int(m.sum())
    assert np.array_equal(pattern.row_counts(n), m.sum(axis=1))
    indptr, indices = pattern.csr(n)
    for i in range(n):
        ref = np.flatnonzero(m[i])
        assert np.array_equal(pattern.row(i, n), ref)
        assert np.array_equal(indices[indptr[i] : indptr[i + 1]], ref)


@given(pattern=any_pattern(), m=st.integers(1, 40), extra=st.integers(0, 40))
def test_prefix_consistent(pattern, m, extra):
    """Rows do not depend on the sequence length: mask(m) = mask(m + extra)[:m, :m]."""
    assert np.array_equal(pattern.mask(m + extra)[:m, :m], pattern.mask(m))


@given(l=st.integers(1, 12), n=st.integers(1, 80))
def test_strided_contract(l, n):
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    d = i - j
    expected = (d >= 0) & ((d <= l) | (d % l == 0))
    assert np.array_equal(sparse.strided(l).mask(n), expected)
    assert sparse.strided(l).row_counts(n).max() <= l + 1 + (n - 1) // l


@given(l=st.integers(1, 12), data=st.data(), n=st.integers(1, 80))
def test_fixed_contract(l, data, n):
    c = data.draw(st.integers(1, l))
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    expected = (j <= i) & ((j // l == i // l) | (j % l >= l - c))
    assert np.array_equal(sparse.fixed(l, c).mask(n), expected)


def test_golden_child_et_al_rows():
    """Golden rows and counts from an independent implementation of the Child et al. strided
    and fixed patterns (tests/data/sparse_patterns.json; a missing file fails)."""
    data = json.loads(VECTORS.read_text())
    cases = [(sparse.strided(c["l"]), c) for c in data["strided"]] + [(sparse.fixed(c["l"], c["c"]), c) for c in data["fixed"]]
    assert len(cases) >= 4
    for pattern, case in cases:
        n = case["n"]
        assert pattern.nnz(n) == case["nnz"], pattern
        assert [pattern.row(i, n).tolist() for i in range(n)] == case["rows"], pattern


def test_power_and_dilated_offsets():
    assert sparse.power_attention().row(13, 20).tolist() == [5, 9, 11, 12, 13]
    assert sparse.dilated_window(3, 4).row(13, 20).tolist() == [5, 9, 13]
    assert sparse.sliding_window(3).row(1, 5).tolist() == [0, 1]
    assert sparse.window_global(2, 2).row(6, 7).tolist() == [0, 1, 5, 6]


@pytest.mark.parametrize("n", [10**6, 10**7])
def test_nnz_large_n_exact_and_fast(n):
    import time

    l = int(np.ceil(np.sqrt(n)))
    pats = [sparse.strided(l), sparse.fixed(l, 3), sparse.sliding_window(256), sparse.power_attention(),
            sparse.window_global(128, 4), sparse.bigbird(64, 2, 3, 0), sparse.full_causal(), sparse.dilated_window(64, 4)]
    t0 = time.perf_counter()
    counts = [p.nnz(n) for p in pats]
    assert time.perf_counter() - t0 < 1.0
    assert all(isinstance(c, int) for c in counts)
    q, r = divmod(n, l)
    tri = lambda m: m * (m + 1) // 2  # noqa: E731
    expected = [
        tri(l) + (q - 1) * l * l + l * q * (q - 1) // 2 + r * (l + q),  # strided: per-row l + a, block sums
        q * tri(l) + 3 * l * q * (q - 1) // 2 + tri(r) + r * q * 3,  # fixed(l, 3): b + 1 + 3a per row
        256 * n - tri(255),  # window 256: n rows of 256 keys minus the first rows' missing ones
        n * (n.bit_length() + 1) - (2 ** n.bit_length() - 1) if n & (n - 1) else None,  # power (n not a power of 2)
        # window w=128 + g=4 globals: n w - tri(w-1) + g (n-g) minus the overlap (w-g) g + tri(g-1)
        128 * n - tri(127) + 4 * (n - 4) - (124 * 4 + tri(3)),
        None,  # BigBird: window_global(64, 2) plus min(3, i - 64 + 1 - 2) random keys per row
        tri(n),
        sum(n - 4 * t for t in range(64)),  # dilated: offsets 0, 4, ..., 252
    ]
    # window_global(64, 2) plus min(3, i - 65) random keys in rows i >= 66: 1 + 2 + 3 (n - 68)
    expected[5] = 64 * n - tri(63) + 2 * (n - 2) - (62 * 2 + tri(1)) + 3 + 3 * (n - 68)
    for pattern, got, want in zip(pats, counts, expected):
        if want is not None:
            assert got == want, pattern


def test_block_density_of_strided_is_much_higher_than_nominal():
    p = sparse.strided(32)
    assert p.density(1024) < 0.15
    assert p.block_density(1024, block=32) == 1.0  # the stride column hits every key block
    assert sparse.full_causal().block_density(100, block=16) == 1.0
    assert sparse.sliding_window(16).block_density(256, block=16) < 0.25


@pytest.mark.parametrize(
    "make, err, word",
    [
        (lambda: sparse.strided(0), ValueError, "l"),
        (lambda: sparse.strided(2.5), TypeError, "l"),
        (lambda: sparse.strided(True), TypeError, "l"),
        (lambda: sparse.fixed(4, 0), ValueError, "c"),
        (lambda: sparse.fixed(4, 5), ValueError, "c"),
        (lambda: sparse.fixed(0, 1), ValueError, "l"),
        (lambda: sparse.sliding_window(0), ValueError, "w"),
        (lambda: sparse.dilated_window(3, 0), ValueError, "r"),
        (lambda: sparse.window_global(3, -1), ValueError, "g"),
        (lambda: sparse.bigbird(3, 1, -1, 0), ValueError, "r"),
        (lambda: sparse.bigbird(3, 1, 1, -5), ValueError, "seed"),
        (lambda: sparse.bigbird(3, 1, 1, "0"), TypeError, "seed"),
        (lambda: sparse.strided(4).mask(0), ValueError, "n"),
        (lambda: sparse.strided(4).nnz(-3), ValueError, "n"),
        (lambda: sparse.fixed(4, 2).nnz(3.0), TypeError, "n"),
        (lambda: sparse.strided(4).row(5, 5), ValueError, "i"),
        (lambda: sparse.power_attention().row(-1, 5), ValueError, "i"),
        (lambda: sparse.full_causal().block_density(8, block=0), ValueError, "block"),
    ],
)
def test_bad_arguments_name_the_argument(make, err, word):
    with pytest.raises(err, match=rf"\b{word}\b"):
        make()


@given(v=st.one_of(st.floats(allow_nan=True), st.text(max_size=3), st.none(), st.integers(-50, 0)))
def test_bad_lengths_rejected(v):
    with pytest.raises((TypeError, ValueError), match=r"\bn\b"):
        sparse.fixed(3, 1).nnz(v)
