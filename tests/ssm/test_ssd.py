"""Tests of state space duality: ssd, ssd_matrix and their claims.

The two sides of each comparison are named ``ref`` (the float64 recurrence or an
independent value) and ``out`` (the form under test).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import assume, example, given, strategies as st

from theorylab.backends import numba_available
from theorylab.claims import get, run_claim
from theorylab.ssm import ssd, ssd_matrix
from theorylab.ssm.duality import make_inputs, regime_log_a, ssd_chunked_ref, ssd_matrix_ref, ssd_ref
from theorylab.tolerances import assert_close

BACKENDS = [
    "ref",
    pytest.param("numba", marks=pytest.mark.skipif(not numba_available(), reason="numba is not installed")),
    "torch",
]
FAST = [b for b in BACKENDS if b != "ref"]
ARGS = ("X", "log_a", "B", "C")

# ---------------------------------------------------------------------------------------
# golden cases
# ---------------------------------------------------------------------------------------
# Provenance: tests/data/ssd.json (see tests/data/README.md) holds X, log_a, B, C, Y, M computed
# in float64 by an independent implementation of the contract (not theorylab's code), pinned
# unchanged.  Read at collection time: a missing file is a collection error, never a skip.
VECTORS = Path(__file__).parents[1] / "data" / "ssd.json"


def _golden_cases():
    cases = json.loads(VECTORS.read_text())["cases"]
    return [pytest.param({k: np.asarray(v, dtype=np.float64) for k, v in c.items()}, id=f"case{i}-L{len(c['X'][0])}")
            for i, c in enumerate(cases)]


@pytest.mark.parametrize("case", _golden_cases())
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("chunk_size", [1, 2, 3, 64])
def test_golden_ssd(case, backend, chunk_size):
    out = ssd(*(case[k] for k in ARGS), chunk_size=chunk_size, backend=backend)
    assert_close(out, case["Y"], dtype=np.float64, name=f"ssd[{backend}, Q={chunk_size}]")


@pytest.mark.parametrize("case", _golden_cases())
@pytest.mark.parametrize("container", ["numpy", "torch"])
@pytest.mark.parametrize("backend", ["auto", "ref", "torch"])
def test_golden_matrix(case, container, backend):
    args = [case[k] for k in ("log_a", "B", "C")]
    if container == "torch":
        args = [torch.from_numpy(a) for a in args]
    out = ssd_matrix(*args, backend=backend)
    assert isinstance(out, torch.Tensor) == (container == "torch")  # the container follows the input
    assert_close(out, case["M"], dtype=np.float64, name=f"ssd_matrix[{backend}, {container}]")
    assert_close(ssd_chunked_ref(*(case[k] for k in ARGS), 2), case["Y"], dtype=np.float64, name="ssd_chunked_ref")


# ---------------------------------------------------------------------------------------
# strategies: sizes and a seed; make_inputs builds the arrays
# ---------------------------------------------------------------------------------------
DIMS = st.sampled_from([1, 2, 3, 5, 7])
sizes_st = st.fixed_dictionaries({
    "batch": st.integers(1, 2),
    "length": st.one_of(st.sampled_from([1, 2, 7, 8, 63, 64, 65, 129]), st.integers(1, 80)),
    "heads": st.sampled_from([1, 2, 3]),
    "head_dim": DIMS,
    "state": DIMS,
})
chunk_st = st.one_of(st.sampled_from([1, 7, 64]), st.integers(1, 90))
seed_st = st.integers(0, 2**32 - 1)


def _inputs(sizes, seed, **kw):
    return make_inputs(np.random.default_rng(seed), **sizes, **kw)


@given(sizes=sizes_st, chunk=chunk_st, seed=seed_st)
@example(sizes=dict(batch=1, length=1, heads=1, head_dim=1, state=1), chunk=1, seed=0)
@example(sizes=dict(batch=2, length=65, heads=3, head_dim=5, state=7), chunk=64, seed=1)
@example(sizes=dict(batch=1, length=63, heads=2, head_dim=3, state=2), chunk=7, seed=2)
@example(sizes=dict(batch=1, length=5, heads=2, head_dim=7, state=5), chunk=90, seed=3)
def test_backends_match_reference_float64(sizes, chunk, seed):
    p = _inputs(sizes, seed)
    ref = ssd_ref(**p)
    for backend in ("numba", "torch") if numba_available() else ("torch",):
        out = ssd(**p, chunk_size=chunk, backend=backend)
        assert out.dtype == np.float64 and out.shape == p["X"].shape
        assert_close(out, ref, dtype=np.float64, name=f"ssd[{backend}, Q={chunk}] {sizes}")
    assert_close(ssd_chunked_ref(**p, chunk_size=chunk), ref, dtype=np.float64, name="ssd_chunked_ref")


@given(sizes=sizes_st, chunk=chunk_st, seed=seed_st)
@example(sizes=dict(batch=1, length=129, heads=2, head_dim=7, state=3), chunk=64, seed=0)
def test_backends_match_reference_float32(sizes, chunk, seed):
    p32 = _inputs(sizes, seed, dtype=np.float32)  # rounded to float32 first ...
    ref = ssd_ref(*(p32[k].astype(np.float64) for k in ARGS))  # ... then upcast for the reference
    for backend in ("numba", "torch") if numba_available() else ("torch",):
        out = ssd(**p32, chunk_size=chunk, backend=backend)
        assert out.dtype == np.float32
        assert_close(out, ref, dtype=np.float32, name=f"ssd[{backend}, Q={chunk}] float32 {sizes}")
    pt = {k: torch.from_numpy(v) for k, v in p32.items()}
    out = ssd(**pt, chunk_size=chunk)  # auto -> torch
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert_close(out, ref, dtype=np.float32, name="ssd[auto, torch tensors]")


@given(sizes=sizes_st, chunk=chunk_st, seed=seed_st, dtype=st.sampled_from([np.float64, np.float32]))
@example(sizes=dict(batch=1, length=65, heads=2, head_dim=3, state=2), chunk=7, seed=0, dtype=np.float32)
@example(sizes=dict(batch=2, length=129, heads=3, head_dim=5, state=7), chunk=17, seed=1, dtype=np.float64)
def test_extreme_decays_match_reference(sizes, chunk, seed, dtype):
    """log_a in stretches of no, weak, moderate and extreme decay (down to -1e4: products of
    decays that underflow to 0, where a ratio exp(cs_t) / exp(cs_s) gives 0/0 and a difference
    cs_t - cs_s of cumulative sums loses its digits), every backend of ssd and ssd_matrix."""
    rng = np.random.default_rng(seed)
    p = make_inputs(rng, **sizes)
    p["log_a"] = regime_log_a(rng, p["log_a"].shape, lo=-1e4)
    p = {k: v.astype(dtype) for k, v in p.items()}
    ref = ssd_ref(*(p[k].astype(np.float64) for k in ARGS))  # the same (rounded) values in float64
    for backend in ("ref", "numba", "torch") if numba_available() else ("ref", "torch"):
        out = ssd(**p, chunk_size=chunk, backend=backend)
        assert_close(out, ref, dtype=dtype, name=f"ssd[{backend}, Q={chunk}] {np.dtype(dtype).name} {sizes}")
    for backend in ("ref", "torch"):
        M = ssd_matrix(p["log_a"], p["B"], p["C"], backend=backend)
        assert_close(np.einsum("bhts,bshp->bthp", M.astype(np.float64), p["X"].astype(np.float64)), ref, dtype=dtype,
                     name=f"ssd_matrix[{backend}] X")


@given(sizes=sizes_st, seed=seed_st)
@example(sizes=dict(batch=1, length=1, heads=1, head_dim=1, state=1), seed=0)
def test_matrix_form_equals_recurrence(sizes, seed):
    p = _inputs(sizes, seed)
    M = ssd_matrix(p["log_a"], p["B"], p["C"])  # (b, h, L, L)
    L = sizes["length"]
    assert M.shape == (sizes["batch"], sizes["heads"], L, L)
    assert np.all(np.triu(M, 1) == 0.0), "M must be exactly 0 above the diagonal"
    diag = np.einsum("bthn,bthn->bht", p["C"], p["B"])  # M[t, t] = <C_t, B_t> (empty product = 1)
    assert_close(np.diagonal(M, axis1=2, axis2=3), diag, dtype=np.float64, name="diag(M)")
    out = np.einsum("bhts,bshp->bthp", M, p["X"])
    assert_close(out, ssd_ref(**p), dtype=np.float64, name="M X vs recurrence")


# ---------------------------------------------------------------------------------------
# metamorphic properties
# ---------------------------------------------------------------------------------------
@given(sizes=sizes_st, q1=chunk_st, q2=chunk_st, seed=seed_st)
@example(sizes=dict(batch=1, length=64, heads=1, head_dim=2, state=3), q1=1, q2=64, seed=0)
def test_chunk_size_invariance(sizes, q1, q2, seed):
    p = _inputs(sizes, seed)
    for backend in ("numba", "torch") if numba_available() else ("torch",):
        ref = ssd(**p, chunk_size=q1, backend=backend)
        out = ssd(**p, chunk_size=q2, backend=backend)
        assert_close(out, ref, dtype=np.float64, name=f"{backend}: Q={q2} vs Q={q1}")


@given(sizes=sizes_st, cut=st.integers(1, 200), chunk=chunk_st, seed=seed_st)
def test_causal_prefix_and_segments(sizes, cut, chunk, seed):
    """A prefix's output ignores the future; the suffix equals its own run plus the carried
    state H_cut propagated by the decays: y_t = ssd(suffix)_t + exp(Σ_{k=cut..t} log_a_k) H_cut C_t."""
    p = _inputs(sizes, seed)
    L = sizes["length"]
    cut = min(cut, L)
    ref = ssd_ref(**p)
    head = ssd(*(p[k][:, :cut] for k in ARGS), chunk_size=chunk, backend="torch")
    assert_close(head, ref[:, :cut], dtype=np.float64, name="prefix")
    if cut < L:
        X, a, B, C = (p[k] for k in ARGS)
        H = np.einsum("bhs,bshp,bshn->bhpn", np.exp(np.cumsum(a[:, :cut][:, ::-1], 1)[:, ::-1] - a[:, :cut]).transpose(0, 2, 1),
                      X[:, :cut], B[:, :cut])  # state after step cut-1
        tail = ssd(X[:, cut:], a[:, cut:], B[:, cut:], C[:, cut:], chunk_size=chunk, backend="torch")
        carried = np.einsum("bth,bhpn,bthn->bthp", np.exp(np.cumsum(a[:, cut:], 1)), H, C[:, cut:])
        assert_close(tail + carried, ref[:, cut:], dtype=np.float64, name="segmented run with carried state")


@given(sizes=sizes_st, seed=seed_st, alpha=st.floats(-3, 3))
def test_linear_in_x_and_equivariant_in_batch_and_heads(sizes, seed, alpha):
    p = _inputs(sizes, seed)
    q = _inputs(sizes, seed + 1)
    ref = alpha * ssd(**p) + ssd(q["X"], p["log_a"], p["B"], p["C"])
    out = ssd(alpha * p["X"] + q["X"], p["log_a"], p["B"], p["C"])
    assert_close(out, ref, dtype=np.float64, name="linearity in X")
    perm_b = np.random.default_rng(seed).permutation(sizes["batch"])
    perm_h = np.random.default_rng(seed).permutation(sizes["heads"])
    pp = {k: v[perm_b][:, :, perm_h] for k, v in p.items()}
    assert_close(ssd(**pp), ssd(**p)[perm_b][:, :, perm_h], dtype=np.float64, name="batch/head permutation")


@given(sizes=sizes_st, chunk=chunk_st, seed=seed_st)
def test_zero_decay_is_causal_linear_attention(sizes, chunk, seed):
    p = _inputs(sizes, seed)
    L = sizes["length"]
    scores = np.einsum("bthn,bshn->bhts", p["C"], p["B"]) * np.tril(np.ones((L, L)))  # Q = C, K = B
    ref = np.einsum("bhts,bshp->bthp", scores, p["X"])  # V = X
    for backend in ("ref", "numba", "torch") if numba_available() else ("ref", "torch"):
        out = ssd(p["X"], np.zeros_like(p["log_a"]), p["B"], p["C"], chunk_size=chunk, backend=backend)
        assert_close(out, ref, dtype=np.float64, name=f"linear attention [{backend}]")


def test_hand_computed_value():
    """One head, head_dim 1, state 1: y = [b0 c0 x0, a1 b0 c1 x0 + b1 c1 x1] by hand."""
    X = np.array([2.0, 3.0]).reshape(1, 2, 1, 1)
    log_a = np.log(np.array([0.5, 0.25])).reshape(1, 2, 1)
    B = np.array([1.0, 2.0]).reshape(1, 2, 1, 1)
    C = np.array([4.0, 5.0]).reshape(1, 2, 1, 1)
    ref = np.array([1 * 4 * 2, 0.25 * 1 * 5 * 2 + 2 * 5 * 3]).reshape(1, 2, 1, 1)
    for backend in ("ref", "numba", "torch") if numba_available() else ("ref", "torch"):
        for q in (1, 2):
            assert_close(ssd(X, log_a, B, C, chunk_size=q, backend=backend), ref, dtype=np.float64)


# ---------------------------------------------------------------------------------------
# torch: containers, devices, gradients
# ---------------------------------------------------------------------------------------
def test_torch_container_dtype_and_auto():
    p = {k: torch.from_numpy(v) for k, v in make_inputs(np.random.default_rng(0), length=9, dtype=np.float32).items()}
    out = ssd(**p, chunk_size=4)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.device == p["X"].device
    for backend in ("ref", "numba") if numba_available() else ("ref",):  # torch in -> torch out, any backend
        other = ssd(**p, chunk_size=4, backend=backend)
        assert isinstance(other, torch.Tensor) and other.dtype == torch.float32
        assert_close(other, out.double(), dtype=np.float32)
    M = ssd_matrix(p["log_a"], p["B"], p["C"])
    assert isinstance(M, torch.Tensor) and M.dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize("backend", ["torch", "ref"])
def test_half_precision_tensors(dtype, backend):
    p = make_inputs(np.random.default_rng(1), length=100, heads=2, head_dim=8, state=4)
    pt = {k: torch.from_numpy(v).to(dtype) for k, v in p.items()}  # rounded to half first ...
    ref = ssd_ref(*(pt[k].float().numpy() for k in ARGS))  # ... then upcast for the reference
    out = ssd(**pt, chunk_size=16, backend=backend)
    assert out.dtype == dtype
    assert_close(out, ref, dtype=dtype, name=f"{dtype} [{backend}]")


@pytest.mark.parametrize("length,chunk", [(5, 2), (6, 3), (4, 8), (1, 1)])
def test_torch_gradients_match_finite_differences(length, chunk):
    p = make_inputs(np.random.default_rng(length), batch=1, length=length, heads=2, head_dim=3, state=2,
                    log_a_range=(-0.8, -0.1))  # interior of log_a <= 0, so central differences stay valid
    args = tuple(torch.from_numpy(p[k]).requires_grad_(True) for k in ARGS)
    assert torch.autograd.gradcheck(lambda *a: ssd(*a, chunk_size=chunk, backend="torch"), args, eps=1e-6, atol=1e-7)
    assert torch.autograd.gradcheck(lambda *a: ssd_matrix(*a), args[1:], eps=1e-6, atol=1e-7)


def test_torch_gradient_equals_reference_gradient():
    """d<W, Y>/dX of the chunked torch form equals M^T W from the float64 matrix form."""
    p = make_inputs(np.random.default_rng(5), batch=2, length=11, heads=3, head_dim=2, state=5)
    W = np.random.default_rng(6).standard_normal(p["X"].shape)
    X = torch.from_numpy(p["X"]).requires_grad_(True)
    out = ssd(X, *(torch.from_numpy(p[k]) for k in ARGS[1:]), chunk_size=4)
    (out * torch.from_numpy(W)).sum().backward()
    M = ssd_matrix_ref(p["log_a"], p["B"], p["C"])
    ref = np.einsum("bhts,bthp->bshp", M, W)
    assert_close(X.grad, ref, dtype=np.float64, name="dY/dX")


# ---------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------
def _good(length=6):
    return make_inputs(np.random.default_rng(0), batch=2, length=length, heads=3, head_dim=5, state=7)


@given(arg=st.sampled_from(ARGS), axis=st.integers(0, 3), delta=st.sampled_from([-1, 1, 2]),
       container=st.sampled_from(["numpy", "torch"]))
def test_wrong_shapes_raise_value_error_naming_argument(arg, axis, delta, container):
    p = _good()
    a = p[arg]
    axis = axis % a.ndim
    assume(not (arg == "X" and axis == 3))  # head_dim is free: X alone defines it
    shape = list(a.shape)
    new = shape[axis] + delta
    shape[axis] = new if new >= 1 and new != shape[axis] else shape[axis] + 1
    p[arg] = np.ones(shape) * (-0.5 if arg == "log_a" else 1.0)
    if container == "torch":
        p = {k: torch.from_numpy(v) for k, v in p.items()}
    with pytest.raises(ValueError) as e:
        ssd(**p)
    assert any(k in str(e.value) for k in ARGS) and "shape" in str(e.value)
    if arg != "X":
        with pytest.raises(ValueError, match="shape"):
            ssd_matrix(p["log_a"], p["B"], p["C"])


@pytest.mark.parametrize("arg", ARGS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("container", ["numpy", "torch"])
def test_non_finite_raises(arg, bad, container):
    p = _good()
    p[arg] = p[arg].copy()
    p[arg].reshape(-1)[3] = bad
    if container == "torch":
        p = {k: torch.from_numpy(v) for k, v in p.items()}
    with pytest.raises(ValueError, match=f"{arg} contains NaN or inf"):
        ssd(**p)
    if arg != "X":
        with pytest.raises(ValueError, match=f"{arg} contains NaN or inf"):
            ssd_matrix(p["log_a"], p["B"], p["C"])


def test_finite_check_survives_overflowing_sum():
    """Huge finite entries overflow a float32 sum; that alone must not be reported as inf."""
    from theorylab.ssm.duality import _validate

    p = {k: v.astype(np.float32) for k, v in _good().items()}
    p["X"] = np.full_like(p["X"], 3e38)
    assert _validate(**p) == "numpy"
    assert _validate(**{k: torch.from_numpy(v) for k, v in p.items()}) == "torch"


@pytest.mark.parametrize("container", ["numpy", "torch"])
def test_positive_log_a_raises(container):
    p = _good()
    p["log_a"] = p["log_a"].copy()
    p["log_a"][1, 2, 0] = 0.25
    if container == "torch":
        p = {k: torch.from_numpy(v) for k, v in p.items()}
    with pytest.raises(ValueError, match="log_a must be <= 0"):
        ssd(**p)
    with pytest.raises(ValueError, match="log_a must be <= 0"):
        ssd_matrix(p["log_a"], p["B"], p["C"])


@pytest.mark.parametrize("chunk_size,err", [(0, ValueError), (-3, ValueError), (1.5, TypeError), (True, TypeError),
                                            ("8", TypeError), (None, TypeError)])
def test_bad_chunk_size(chunk_size, err):
    with pytest.raises(err, match="chunk_size"):
        ssd(**_good(), chunk_size=chunk_size)


@given(arg=st.sampled_from(ARGS), axis=st.integers(0, 3))
def test_empty_dims_raise(arg, axis):
    p = _good()
    a = p[arg]
    shape = list(a.shape)
    shape[axis % a.ndim] = 0
    p[arg] = np.zeros(shape)
    with pytest.raises(ValueError):
        ssd(**p)
    if arg != "X":
        with pytest.raises(ValueError):
            ssd_matrix(p["log_a"], p["B"], p["C"])


def test_empty_everywhere_raises_naming_zero_size():
    p = make_inputs(np.random.default_rng(0), length=1)
    p = {k: v[:, :0] for k, v in p.items()}
    with pytest.raises(ValueError, match="zero-size"):
        ssd(**p)


@pytest.mark.parametrize("arg", ARGS)
def test_wrong_dtype_and_container_raise_type_error(arg):
    p = _good()
    q = dict(p, **{arg: p[arg].astype(np.int64)})
    with pytest.raises(TypeError, match=arg):
        ssd(**q)
    q = dict(p, **{arg: p[arg].astype(np.float32)})
    with pytest.raises(TypeError, match="one dtype"):
        ssd(**q)
    q = dict(p, **{arg: torch.from_numpy(p[arg])})
    with pytest.raises(TypeError, match="mix numpy arrays and torch tensors"):
        ssd(**q)
    q = dict(p, **{arg: p[arg].tolist()})
    with pytest.raises(TypeError, match=arg):
        ssd(**q)


def test_ssd_matrix_backends_and_containers():
    p = _good()
    ref = ssd_matrix_ref(p["log_a"], p["B"], p["C"])
    out = ssd_matrix(p["log_a"], p["B"], p["C"], backend="torch")  # numpy in -> numpy out, computed by torch
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    assert_close(out, ref, dtype=np.float64, name="ssd_matrix[torch] on numpy")
    with pytest.raises(ValueError, match="valid backends"):
        ssd_matrix(p["log_a"], p["B"], p["C"], backend="numba")
    t = [torch.from_numpy(p[k]).requires_grad_(True) for k in ("log_a", "B", "C")]
    with pytest.raises(ValueError, match="requires grad"):  # ref would detach: refused, never silent
        ssd_matrix(*t, backend="ref")


def test_wrong_ndim_and_unknown_backend():
    p = _good()
    with pytest.raises(ValueError, match="log_a must be 3-d"):
        ssd(p["X"], p["log_a"][..., None], p["B"], p["C"])
    with pytest.raises(ValueError, match="X must be 4-d"):
        ssd(p["X"][0], p["log_a"], p["B"], p["C"])
    with pytest.raises(ValueError, match="valid backends"):
        ssd(**p, backend="cuda")
    with pytest.raises(TypeError):
        ssd(*p.values(), 64)  # chunk_size is keyword-only


# ---------------------------------------------------------------------------------------
# claims
# ---------------------------------------------------------------------------------------
_PARTS = {  # the per-backend parts each claim must report (numba only where installed)
    "ssm.ssd-duality": ["M X[ref]", "M X[torch]", "chunked[ref]", "chunked[numba]", "chunked[torch]"],
    "ssm.ssd-semiseparable-rank": ["rank<=N[ref]", "rank<=N[torch]", "rank=N attained[ref]", "rank=N attained[torch]"],
    "ssm.ssd-linear-attention": ["ref", "numba", "torch", "M X[ref]", "M X[torch]"],
}


@pytest.mark.parametrize("claim_id", sorted(_PARTS))
def test_claim_holds_on_every_backend_and_control_is_rejected(claim_id):
    report = run_claim(get(claim_id), samples=3, seed=7)
    assert report.holds, report.detail
    expected = {b for b in _PARTS[claim_id] if numba_available() or "numba" not in b}
    assert expected <= set(report.backends), report.backends
    assert all(v["holds"] for v in report.backends.values())
    assert report.control_status == "rejected", report.control_detail  # by a finite error
    assert np.isfinite(report.control_min_error) and report.control_margin > 10
    assert report.proved is not False
    assert report.ok


def test_duality_proof_is_general_and_fails_for_the_control():
    from theorylab.ssm.duality_claims import duality_proof

    proof = duality_proof()
    assert proof.proved, proof.detail
    assert proof.scope.startswith("general") and "chunk" in proof.scope and "retyped formula" in proof.scope
    wrong = duality_proof(carry_decay=False)  # the control: state carried without its decay
    assert not wrong.proved and "!= W(t)" in wrong.detail


@given(nc=st.one_of(st.sampled_from([1, 2, 3, 4, 5, 17, 64, 65]), st.integers(1, 150)), g=st.integers(1, 3),
       seed=seed_st)
def test_states_entering_chunks_equal_the_chunk_loop(nc, g, seed):
    """The blocked inter-chunk recurrence (blocks of ~sqrt(nc) chunks) = the plain loop over chunks."""
    from theorylab.ssm._duality_torch import _states_entering

    rng = np.random.default_rng(seed)
    S = rng.standard_normal((g, nc, 2, 3))
    ell = rng.uniform(-3.0, 0.0, (g, nc))
    ref = np.zeros_like(S)
    for c in range(1, nc):
        ref[:, c] = np.exp(ell[:, c - 1])[:, None, None] * ref[:, c - 1] + S[:, c - 1]
    out = _states_entering(torch.from_numpy(S), torch.from_numpy(ell))
    assert_close(out, ref, dtype=np.float64, name=f"H_in, nc={nc}")


@pytest.mark.parametrize("budget", [1, 1 << 12, 1 << 40])
def test_torch_chunked_result_does_not_depend_on_the_head_grouping(monkeypatch, budget):
    """The CPU path runs heads in groups sized by a memory budget (one head per group up to all
    heads at once): a heuristic for speed that must not change a single bit of the result."""
    import theorylab.ssm._duality_torch as T

    p = make_inputs(np.random.default_rng(7), batch=2, length=37, heads=5, head_dim=3, state=4)
    args = [torch.from_numpy(p[k]) for k in ("X", "log_a", "B", "C")]
    base = T.ssd_chunked_torch(*args, chunk_size=8)
    monkeypatch.setattr(T, "_CPU_GROUP_BYTES", budget)
    torch.testing.assert_close(T.ssd_chunked_torch(*args, chunk_size=8), base, rtol=0, atol=0)
