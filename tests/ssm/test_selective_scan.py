"""Selective scan = hidden attention (#93, #6): every backend against the float64 reference.

Sides are named ``ref`` (float64 reference) and ``out`` (the computation under test).
"""

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from theorylab.backends import numba_available
from theorylab.claims import get, run_claim
from theorylab.ssm import (
    make_inputs,
    scan_combine,
    selective_attention_matrix,
    selective_attention_matrix_ref,
    selective_scan,
    selective_scan_ref,
)
from theorylab.ssm.selective_claims import negative_control, proof
from theorylab.tolerances import assert_close
from theorylab.testing import seeds

KEYS = ("x", "delta", "A", "B", "C", "D")
BACKENDS = [
    "ref",
    pytest.param("numba", marks=pytest.mark.skipif(not numba_available(), reason="numba not installed")),
    "torch",
]

sizes = st.fixed_dictionaries(
    {
        "batch": st.integers(1, 3),
        # up to 40, and a few lengths around the torch scan's 64-step chunk (state carried across)
        "length": st.one_of(st.integers(1, 40), st.sampled_from([63, 64, 65, 130])),
        "channels": st.sampled_from([1, 2, 3, 5, 7]),
        "state": st.sampled_from([1, 2, 3, 5]),
        "decays": st.sampled_from(["moderate", "extreme"]),  # extreme: Δ·A from -1e4 to -1e-7
    }
)


def _args(p):
    return [p[k] for k in KEYS]


def _rounded(p, dtype):
    """Inputs rounded to ``dtype`` (for the fast path) and the same values in float64 (for ref)."""
    low = {k: v.astype(dtype) for k, v in p.items()}
    return low, {k: v.astype(np.float64) for k, v in low.items()}


# ---- golden cases ----------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_vectors(backend, golden):
    # Provenance: tests/data/selective_scan.json (see tests/data/README.md), computed by an
    # independent float64 implementation of the contract (y includes D*x, M does not).
    # A missing file fails this test; it never skips.
    cases = golden("selective_scan")["cases"]
    assert cases
    for case in cases:
        a = {k: np.array(v, dtype=np.float64) for k, v in case.items()}
        out_y = selective_scan(*[a[k] for k in KEYS], backend=backend)
        out_M = selective_attention_matrix(a["delta"], a["A"], a["B"], a["C"], backend=backend)
        assert_close(out_y, a["y"], dtype=np.float64, name=f"y[{backend}]")
        assert_close(out_M, a["M"], dtype=np.float64, name=f"M[{backend}]")


# ---- every backend vs the reference ------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@given(sz=sizes, seed=seeds)
@example(sz=dict(batch=1, length=1, channels=1, state=1, decays="moderate"), seed=0)
@example(sz=dict(batch=2, length=63, channels=3, state=5, decays="extreme"), seed=1)
def test_scan_backends_match_reference(backend, sz, seed):
    p = make_inputs(np.random.default_rng(seed), **sz)
    ref, _ = selective_scan_ref(*_args(p))
    out = selective_scan(*_args(p), backend=backend)
    assert out.dtype == np.float64 and out.shape == ref.shape
    assert_close(out, ref, dtype=np.float64, name=backend)
    low, up = _rounded(p, np.float32)
    ref32, _ = selective_scan_ref(*_args(up))
    out32 = selective_scan(*_args(low), backend=backend)
    assert out32.dtype == np.float32
    assert_close(out32, ref32, dtype=np.float32, name=f"{backend} float32")


@pytest.mark.parametrize("backend", BACKENDS)
@given(sz=sizes, seed=seeds)
@example(sz=dict(batch=1, length=1, channels=1, state=1, decays="moderate"), seed=0)
@example(sz=dict(batch=1, length=9, channels=2, state=3, decays="extreme"), seed=2)
def test_matrix_backends_match_reference(backend, sz, seed):
    p = make_inputs(np.random.default_rng(seed), **sz)
    ref = selective_attention_matrix_ref(p["delta"], p["A"], p["B"], p["C"])
    out = selective_attention_matrix(p["delta"], p["A"], p["B"], p["C"], backend=backend)
    assert_close(out, ref, dtype=np.float64, name=backend)
    low, up = _rounded(p, np.float32)
    ref32 = selective_attention_matrix_ref(up["delta"], up["A"], up["B"], up["C"])
    out32 = selective_attention_matrix(low["delta"], low["A"], low["B"], low["C"], backend=backend)
    assert_close(out32, ref32, dtype=np.float32, name=f"{backend} float32")


# ---- the claim: y = M x + D x ------------------------------------------------------------
@given(sz=sizes, seed=seeds)
@example(sz=dict(batch=1, length=1, channels=1, state=1, decays="moderate"), seed=0)
def test_attention_form_equals_scan(sz, seed):
    p = make_inputs(np.random.default_rng(seed), **sz)
    ref, _ = selective_scan_ref(*_args(p))
    M = selective_attention_matrix_ref(p["delta"], p["A"], p["B"], p["C"])
    out = np.einsum("bcts,bsc->btc", M, p["x"]) + p["D"] * p["x"]
    assert_close(out, ref, dtype=np.float64)


@given(sz=sizes, seed=seeds)
def test_matrix_is_causal_and_matches_closed_form(sz, seed):
    p = make_inputs(np.random.default_rng(seed), **{**sz, "length": min(sz["length"], 9)})
    M = selective_attention_matrix_ref(p["delta"], p["A"], p["B"], p["C"])
    b, L, c = p["delta"].shape
    assert np.all(np.triu(M, 1) == 0)
    # entry by entry, straight from the formula (independent of the vectorized form)
    ref = np.zeros_like(M)
    for bi in range(b):
        for ci in range(c):
            for t in range(L):
                for s in range(t + 1):
                    for n in range(p["A"].shape[1]):
                        logdec = sum(p["delta"][bi, k, ci] * p["A"][ci, n] for k in range(s + 1, t + 1))
                        ref[bi, ci, t, s] += p["C"][bi, t, n] * np.exp(logdec) * p["delta"][bi, s, ci] * p["B"][bi, s, n]
    assert_close(M, ref, dtype=np.float64)


def test_matrix_by_hand():
    # L = 2, one channel, one state: M = [[C0 d0 B0, 0], [C1 exp(d1 A) d0 B0, C1 d1 B1]]
    d = np.array([[[0.5], [0.25]]])
    A = np.array([[-2.0]])
    B = np.array([[[3.0], [5.0]]])
    C = np.array([[[7.0], [11.0]]])
    M = selective_attention_matrix(d, A, B, C, backend="ref")
    expected = np.array([[7 * 0.5 * 3, 0.0], [11 * np.exp(-0.5) * 0.5 * 3, 11 * 0.25 * 5]])
    np.testing.assert_allclose(M[0, 0], expected, rtol=1e-14)


def test_sympy_proof_is_general_and_fails_for_the_control():
    p = proof()
    assert p.proved and p.scope.startswith("general") and "retyped formula" in p.scope
    wrong = proof(extra_step=True)  # decay over k = s..t: the induction step does not close
    assert not wrong.proved and "not u_t" in wrong.detail


# ---- associative scan --------------------------------------------------------------------
@given(seed=seeds, n=st.integers(1, 6))
def test_scan_combine_is_associative_and_reproduces_recurrence(seed, n):
    rng = np.random.default_rng(seed)
    steps = [(rng.uniform(0, 1, n), rng.standard_normal(n)) for _ in range(4)]
    e1, e2, e3, _ = steps
    left = scan_combine(scan_combine(e1, e2), e3)
    right = scan_combine(e1, scan_combine(e2, e3))
    for lo, ro in zip(left, right):
        assert_close(lo, ro, dtype=np.float64)
    h0 = rng.standard_normal(n)
    h = h0
    acc = (np.ones(n), np.zeros(n))
    for a, b in steps:
        h = a * h + b
        acc = scan_combine(acc, (a, b))
    assert_close(acc[0] * h0 + acc[1], h, dtype=np.float64)


# ---- segmented run with carried state ----------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@given(sz=sizes, seed=seeds, cut=st.floats(0, 1))
def test_segmented_run_equals_full_run(backend, sz, seed, cut):
    p = make_inputs(np.random.default_rng(seed), **sz)
    L = sz["length"]
    k = int(round(cut * L))
    ref, h_ref = selective_scan(*_args(p), backend=backend, return_final_state=True)
    first = {key: (v[:, :k] if v.ndim == 3 else v) for key, v in p.items()}
    second = {key: (v[:, k:] if v.ndim == 3 else v) for key, v in p.items()}
    parts, h = [], None
    for seg in (first, second):
        if seg["x"].shape[1] == 0:
            continue
        y, h = selective_scan(*_args(seg), backend=backend, initial_state=h, return_final_state=True)
        parts.append(y)
    assert_close(np.concatenate(parts, axis=1), ref, dtype=np.float64)
    assert_close(h, h_ref, dtype=np.float64)


# ---- torch: containers, devices, gradients -----------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_in_torch_out(backend, rng):
    p = make_inputs(rng, batch=2, length=5, channels=3, state=2, dtype=np.float32)
    t = [torch.from_numpy(v) for v in _args(p)]
    out = selective_scan(*t, backend=backend)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.device == t[0].device
    M = selective_attention_matrix(*t[1:5], backend=backend)
    assert isinstance(M, torch.Tensor) and M.shape == (2, 3, 5, 5)
    assert_close(out, selective_scan(*_args(p), backend="ref"), dtype=np.float32)


def test_auto_backend_rule(rng):
    p = make_inputs(rng, length=4)
    out = selective_scan(*[torch.from_numpy(v) for v in _args(p)])  # tensor -> torch backend
    assert isinstance(out, torch.Tensor)
    assert isinstance(selective_scan(*_args(p)), np.ndarray)  # numpy -> numba or ref, numpy out


def test_torch_gradients_match_finite_differences_of_reference(rng):
    p = make_inputs(rng, batch=1, length=6, channels=2, state=3)
    w = rng.standard_normal((1, 6, 2))  # loss = sum(w * y)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    loss = (torch.from_numpy(w) * selective_scan(*[t[k] for k in KEYS], backend="torch")).sum()
    loss.backward()
    eps = 1e-6
    for key in KEYS:
        grad_fd = np.zeros_like(p[key])
        for idx in np.ndindex(p[key].shape):
            hi, lo = dict(p), dict(p)
            hi[key], lo[key] = p[key].copy(), p[key].copy()
            hi[key][idx] += eps
            lo[key][idx] -= eps
            f_hi = np.sum(w * selective_scan_ref(*_args(hi))[0])
            f_lo = np.sum(w * selective_scan_ref(*_args(lo))[0])
            grad_fd[idx] = (f_hi - f_lo) / (2 * eps)
        # central differences: error ~ eps^2 f''' + eps_mach f / eps ~ 1e-10 relative
        assert_close(t[key].grad.numpy(), grad_fd, rtol=1e-6, name=f"d loss / d {key}")


# ---- long sequences and extreme decays ---------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_long_sequence_extreme_decay_matches_reference(backend, rng):
    # Δ·A from -6e5 to 0: decays that underflow to exactly 0 next to channels that never
    # forget; float32 in, the float64 reference on the same (rounded) values
    p = make_inputs(rng, length=4096, channels=2, state=3, dtype=np.float32)
    p["A"] = np.array([[-1e4, -1.0, 0.0], [-50.0, -1e-3, -3e4]], dtype=np.float32)
    p["delta"] = (p["delta"] * 20).astype(np.float32)
    up = {k: v.astype(np.float64) for k, v in p.items()}
    out = selective_scan(*_args(p), backend=backend)
    ref, _ = selective_scan_ref(*_args(up))
    assert_close(out, ref, dtype=np.float32, name=f"scan[{backend}]")  # NaN or inf anywhere fails too
    T = 300
    head = {k: (v[:, :T] if v.ndim == 3 else v) for k, v in p.items()}
    M = selective_attention_matrix(head["delta"], head["A"], head["B"], head["C"], backend=backend)
    M_ref = selective_attention_matrix_ref(*(up[k][:, :T] if up[k].ndim == 3 else up[k] for k in ("delta", "A", "B", "C")))
    assert_close(M, M_ref, dtype=np.float32, name=f"M[{backend}]")
    assert np.all(np.triu(M, 1) == 0)  # causal: exactly 0 above the diagonal
    out_attn = np.einsum("bcts,bsc->btc", M.astype(np.float64), up["x"][:, :T]) + up["D"] * up["x"][:, :T]
    assert_close(out_attn, ref[:, :T], dtype=np.float32, name=f"M x + D x [{backend}] vs scan")


# ---- the registered claim ----------------------------------------------------------------
def test_claim_holds_on_every_backend_and_control_is_rejected():
    report = run_claim(get("ssm.selective-scan-is-attention"), samples=3, seed=7)
    assert report.holds and report.negative_control_rejected and report.proved
    expected = {"ref", "torch"} | ({"numba"} if numba_available() else set())
    assert expected <= set(report.backends), report.backends  # every backend reported by its own name
    assert {"torch float32", "torch float32 long"} <= set(report.backends)
    assert all(v["holds"] for v in report.backends.values())
    assert all(v["max_error"] <= 1e-10 for b, v in report.backends.items() if "float32" not in b)
    assert report.control_status == "rejected" and np.isfinite(report.control_min_error)
    assert report.control_margin > 1e3  # a finite error, far above the tolerance


def test_negative_control_fails_alone(rng):
    v = negative_control(rng, "quick")
    assert not v.holds and np.isfinite(v.error) and v.error > 1e3 * v.tolerance
