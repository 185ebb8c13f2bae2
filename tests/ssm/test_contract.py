"""One array contract for every public ssm function, on every backend.

Hypothesis drives bad arguments (wrong shapes, dtypes, containers, None, NaN/inf, empty
sizes, 'meta' tensors), odd strides (transposed, negative, sliced) and tensors that require
grad through each public function.  The answer is the correct result (equal to the
contiguous call, or to the reference backend) or a ValueError/TypeError whose message names
the argument -- never another exception, a crash or a silent NaN.  One test runs a few
numba kernels in a subprocess with NUMBA_BOUNDSCHECK=1 and a fresh cache, so an
out-of-bounds index is an IndexError there, not a silent read.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from theorylab import ssm
from theorylab.ssm import duality, gated_linear, linear_forms, s4
from theorylab.tolerances import assert_close

pytestmark = pytest.mark.usefixtures("one_thread")

ALL3, TWO = ("ref", "numba", "torch"), ("ref", "torch")


def _s4_dplr(rng):
    p = ssm.make_s4_inputs(rng, batch=2, length=5, channels=3, state=4)
    Lam, Pt, Bt, V = ssm.hippo_dplr(4)
    return {"Lam": Lam, "P": Pt, "B": np.broadcast_to(Bt, (3, 4)).copy(), "C": p["C"] @ V, "dt": p["dt"]}


def _s4(rng):
    return ssm.make_s4_inputs(rng, batch=2, length=5, channels=3, state=4)


def _la(rng, same=False):
    return ssm.make_linear_attention_inputs(rng, batch=2, length=5, heads=2, dk=3, dv=3 if same else 4)


def _sel(rng):
    return ssm.make_inputs(rng, batch=2, length=5, channels=3, state=2)


def _ssd(rng):
    return duality.make_inputs(rng, batch=2, length=5, heads=2, head_dim=3, state=2)


# name -> (function, arrays(rng) -> dict, positional array names, extra kwargs, backends)
SPECS = {
    "selective_scan": (ssm.selective_scan, _sel, ("x", "delta", "A", "B", "C", "D"), {}, ALL3),
    "selective_attention_matrix": (ssm.selective_attention_matrix, _sel, ("delta", "A", "B", "C"), {}, ALL3),
    "ssd": (ssm.ssd, _ssd, ("X", "log_a", "B", "C"), {"chunk_size": 2}, ALL3),
    "ssd_matrix": (ssm.ssd_matrix, _ssd, ("log_a", "B", "C"), {}, TWO),
    "linear_attention": (ssm.linear_attention, _la, ("q", "k", "v"), {"chunk_size": 2}, ALL3),
    "cottention": (ssm.cottention, _la, ("q", "k", "v"), {"p": 0.5, "chunk_size": 2}, ALL3),
    "gateloop": (ssm.gateloop, lambda r: ssm.make_gateloop_inputs(r, batch=2, length=5, heads=2, dk=3, dv=4),
                 ("q", "k", "v", "a"), {"chunk_size": 2}, ALL3),
    "aft_simple": (ssm.aft_simple, lambda r: _la(r, same=True), ("q", "k", "v"), {}, ALL3),
    "hla2": (ssm.hla2, _la, ("q", "k", "v"), {"chunk_size": 2}, ALL3),
    "discretize_bilinear": (ssm.discretize_bilinear, _s4, ("A", "B", "dt"), {}, TWO),
    "s4_kernel_power": (lambda *a, **k: ssm.s4_kernel_power(*a, 5, **k), _s4, ("A", "B", "C", "dt"), {}, TWO),
    "s4_kernel_recurrent": (lambda *a, **k: ssm.s4_kernel_recurrent(*a, 5, **k), _s4, ("A", "B", "C", "dt"), {},
                            TWO),
    "s4_kernel_dplr": (lambda *a, **k: ssm.s4_kernel_dplr(*a, 5, **k), _s4_dplr, ("Lam", "P", "B", "C", "dt"), {},
                       TWO),
    "s4_recurrence": (ssm.s4_recurrence, _s4, ("u", "A", "B", "C", "dt", "D"), {}, TWO),
    "s4_convolve": (ssm.s4_convolve, lambda r: dict(_s4(r), K=0.1 * r.standard_normal((3, 5))), ("u", "K", "D"), {},
                    TWO),
}
CALLS = [(name, b) for name, spec in SPECS.items() for b in spec[4]]
ARGS = [(name, key) for name, spec in SPECS.items() for key in spec[2]]


def _call(name, arrays, backend, **over):
    """``name``'s function on ``arrays``; ``over`` replaces arrays or adds keyword options."""
    fn, _, keys, kw, _ = SPECS[name]
    extra = {k: v for k, v in over.items() if k not in keys}
    return fn(*(over.get(k, arrays[k]) for k in keys), **{**kw, **extra}, backend=backend)


def _numpy(out):
    """Every array in the (possibly nested) output as numpy complex128 / float64."""
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in _numpy(o)]
    a = out.detach().cpu().resolve_conj().numpy() if torch.is_tensor(out) else np.asarray(out)
    return [a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)]


def _same(out, ref, rtol=1e-10):
    """Equal outputs (rtol raised to the float32 policy for a float32 output)."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    if any(str(o.dtype).replace("torch.", "") in ("float32", "complex64") for o in outs):
        rtol = max(rtol, 1e-4)
    for o, r in zip(_numpy(out), _numpy(ref), strict=True):
        assert o.shape == r.shape
        assert np.isfinite(o).all(), "a silent NaN or inf"
        assert np.abs(o - r).max() <= rtol * max(np.abs(r).max(), 1e-300), np.abs(o - r).max()


# ---- bad arguments ----------------------------------------------------------------------------
BAD = ("extra_dim", "drop_dim", "wrong_size", "int_dtype", "other_float", "nan", "inf", "list", "none", "int",
       "empty", "meta", "other_container")


def _bad(v, how):
    if how == "extra_dim":
        return v[..., None]
    if how == "drop_dim":
        return v[0] if v.ndim > 1 else v.reshape(1, -1)
    if how == "wrong_size":
        return np.concatenate([v, v[..., :1]], axis=-1)
    if how == "int_dtype":
        return v.real.astype(np.int64)
    if how == "other_float":
        return v.astype({"float64": np.float32, "complex128": np.complex64}[v.dtype.name])
    if how in ("nan", "inf"):
        w = v.copy()
        w.reshape(-1)[-1] = np.nan if how == "nan" else np.inf
        return w
    if how == "list":
        return v.tolist()
    if how == "none":
        return None
    if how == "int":
        return 3
    if how == "empty":
        return v[..., :0]
    if how == "meta":
        return torch.from_numpy(v).to("meta")
    if how == "other_container":
        return torch.from_numpy(v)
    raise AssertionError(how)


def _check_bad(name, key, how, seed, backend):
    arrays = SPECS[name][1](np.random.default_rng(seed))
    bad = _bad(arrays[key], how)
    try:
        out = _call(name, arrays, backend, **{key: bad})
    except (ValueError, TypeError) as err:
        msg = str(err)
        assert key in msg, f"{type(err).__name__} does not name {key!r}: {msg}"
        return
    # accepted only where the value is in fact valid: a longer free axis (dv, head_dim), an optional
    # D left out, or an s4_recurrence/s4_kernel_dplr argument whose dtype or container is converted
    free = how == "wrong_size" or (how == "none" and key == "D") or \
        (name == "s4_recurrence" and (how == "other_float" and key in ("u", "D") or how == "other_container" and key == "u")) \
        or (name == "s4_kernel_dplr" and how == "other_float")
    assert free, f"{how} {key} accepted"
    ref = _call(name, {**arrays, key: bad}, "ref")
    _same(out, ref, rtol=1e-10)


@given(arg=st.sampled_from(ARGS), how=st.sampled_from(BAD), seed=st.integers(0, 2**16), data=st.data())
def test_bad_argument_is_a_clear_error_or_the_correct_result(arg, how, seed, data):
    backend = data.draw(st.sampled_from(("auto",) + SPECS[arg[0]][4]), label="backend")
    _check_bad(*arg, how, seed, backend)


# ---- strides: transposed, negative, sliced views give the contiguous call's result ------------
def _view(v, how):
    """A numpy view with the values of ``v``: Fortran order, negative strides or a strided slice."""
    if how == "sliced":
        return np.stack([v, v], axis=-1)[..., 0]
    if how == "negative":
        return np.ascontiguousarray(v[..., ::-1])[..., ::-1]
    return np.asfortranarray(v)


def _strided_tensor(v, how):
    """A tensor view with the values of ``v`` (torch has no negative strides: an offset view instead)."""
    t = torch.from_numpy(np.ascontiguousarray(v))
    if how == "sliced":
        return torch.stack([t, t], dim=-1)[..., 0]
    if how == "transposed" and t.ndim >= 2:
        return t.transpose(0, -1).contiguous().transpose(0, -1)
    return torch.cat([t.reshape(-1), t.reshape(-1)])[t.numel():].view(t.shape)  # storage offset


VIEWS = ("transposed", "negative", "sliced")


def _check_strided(name, backend, how, as_tensor, seed):
    arrays = SPECS[name][1](np.random.default_rng(seed))
    keys = SPECS[name][2]
    if as_tensor:
        cont = {k: torch.from_numpy(np.ascontiguousarray(arrays[k])) for k in keys}
        odd = {k: _strided_tensor(arrays[k], how) for k in keys}
    else:
        cont = {k: np.ascontiguousarray(arrays[k]) for k in keys}
        odd = {k: _view(arrays[k], how) for k in keys}
    _same(_call(name, arrays, backend, **odd), _call(name, arrays, backend, **cont), rtol=1e-12)


@given(call=st.sampled_from(CALLS), how=st.sampled_from(VIEWS), as_tensor=st.booleans(), seed=st.integers(0, 2**16))
def test_strided_arguments_give_the_contiguous_result(call, how, as_tensor, seed):
    _check_strided(*call, how, as_tensor, seed)


@pytest.mark.parametrize("name", list(SPECS))
def test_every_bad_argument_and_every_view_of_one_function(name):
    """The two properties above, exhaustively for one seed: every argument x corruption x backend
    and every backend x view x container (a few hundred calls, most refused before computing)."""
    for key in SPECS[name][2]:
        for how in BAD:
            for backend in ("auto",) + SPECS[name][4]:
                _check_bad(name, key, how, 1, backend)
    for backend in SPECS[name][4]:
        for how in VIEWS:
            for as_tensor in (False, True):
                _check_strided(name, backend, how, as_tensor, 2)


# ---- requires_grad: refused off torch (every argument is checked), a graph on torch -----------
@pytest.mark.parametrize("name,key", ARGS)
def test_requires_grad_is_refused_off_torch_for_every_argument(name, key):
    arrays = SPECS[name][1](np.random.default_rng(0))
    t = {k: torch.from_numpy(arrays[k]) for k in SPECS[name][2]}
    t[key] = t[key].clone().requires_grad_()
    for backend in SPECS[name][4]:
        if backend == "torch":
            continue
        with pytest.raises(ValueError, match="requires grad.*backend='torch'") as err:
            _call(name, t, backend, **t)
        assert key.split("_")[0] in str(err.value) and str(tuple(t[key].shape)) in str(err.value), str(err.value)


@pytest.mark.parametrize("name", list(SPECS))
def test_torch_backend_keeps_a_graph_to_every_argument(name):
    arrays = SPECS[name][1](np.random.default_rng(1))
    t = {k: torch.from_numpy(arrays[k]).clone().requires_grad_() for k in SPECS[name][2]}
    out = _call(name, t, "auto", **t)
    sum(o.abs().sum() for o in (out if isinstance(out, tuple) else (out,))).backward()
    for k, v in t.items():
        assert v.grad is not None and torch.isfinite(v.grad).all(), f"{name}: no finite gradient for {k}"


# ---- scalar parameters and sizes --------------------------------------------------------------
@pytest.mark.parametrize("p", [np.float32(0.5), np.float64(0.5), np.array(0.5), 1, np.int64(2)])
def test_cottention_accepts_real_scalars(p, rng):
    a = _la(rng)
    _same(ssm.cottention(a["q"], a["k"], a["v"], p=p), ssm.cottention(a["q"], a["k"], a["v"], p=float(p)))


@pytest.mark.parametrize("p,err", [(float("nan"), ValueError), (np.inf, ValueError), (-0.5, ValueError),
                                   (True, TypeError), ("0.5", TypeError), (None, TypeError),
                                   (np.zeros(2), TypeError)])
def test_cottention_refuses_bad_p_naming_it(p, err, rng):
    a = _la(rng)
    with pytest.raises(err, match=r"\bp must"):
        ssm.cottention(a["q"], a["k"], a["v"], p=p)


MAKERS = [(ssm.make_inputs, "length"), (duality.make_inputs, "state"), (ssm.make_s4_inputs, "channels"),
          (ssm.make_linear_attention_inputs, "dk"), (ssm.make_gateloop_inputs, "dv"),
          (lambda rng, **kw: ssm.implicit_attention.init_params("mamba", rng, **kw), "d_inner")]


@pytest.mark.parametrize("maker,size", MAKERS)
@pytest.mark.parametrize("value,err", [(2.7, TypeError), (2.0, TypeError), (True, TypeError), ("3", TypeError),
                                       (0, ValueError), (-1, ValueError)])
def test_make_inputs_sizes_are_integers(maker, size, value, err):
    with pytest.raises(err, match=f"{size} must be"):
        maker(np.random.default_rng(0), **{size: value})
    assert maker(np.random.default_rng(0), **{size: np.int64(3)}) is not None  # numpy integers are sizes


@pytest.mark.parametrize("fn,kw", [(ssm.ssd, {}), (ssm.linear_attention, {}), (ssm.hla2, {}), (ssm.gateloop, {})])
def test_chunk_size_is_a_size(fn, kw, rng):
    if fn is ssm.ssd:
        a = _ssd(rng)
        args = (a["X"], a["log_a"], a["B"], a["C"])
    elif fn is ssm.gateloop:
        a = ssm.make_gateloop_inputs(rng)
        args = (a["q"], a["k"], a["v"], a["a"])
    else:
        a = _la(rng)
        args = (a["q"], a["k"], a["v"])
    with pytest.raises(TypeError, match="chunk_size must be an integer"):
        fn(*args, chunk_size=2.5, backend="torch")
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        fn(*args, chunk_size=0, backend="torch")


# ---- S4 containers: numpy in -> numpy out of its dtype, torch in -> torch out ----------------
@pytest.mark.parametrize("name", ["discretize_bilinear", "s4_kernel_power", "s4_kernel_recurrent", "s4_kernel_dplr"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("container", ["numpy", "torch"])
def test_s4_functions_follow_their_input(name, dtype, container, rng):
    arrays = SPECS[name][1](rng)
    real, cplx = np.dtype(dtype), np.dtype({"float32": "complex64", "float64": "complex128"}[dtype])
    a = {k: arrays[k].astype(cplx if np.iscomplexobj(arrays[k]) else real) for k in SPECS[name][2]}
    if container == "torch":
        a = {k: torch.from_numpy(v) for k, v in a.items()}
    for backend in ("auto",) + TWO:
        out = _call(name, a, backend, **a)
        for o in out if isinstance(out, tuple) else (out,):
            assert (torch.is_tensor(o) if container == "torch" else isinstance(o, np.ndarray)), type(o)
            assert str(o.dtype).replace("torch.", "") == dtype
        ref = _call(name, arrays, "ref")
        _same(out, ref, rtol=1e-10 if dtype == "float64" else 1e-4)


def test_s4_convolve_takes_a_kernel_of_its_dtype(rng):
    p = {k: v.astype(np.float32) for k, v in ssm.make_s4_inputs(rng, length=12, channels=2, state=4).items()}
    K = ssm.s4_kernel_power(p["A"], p["B"], p["C"], p["dt"], 12)  # float32 in -> float32 out
    y = ssm.s4_convolve(p["u"], K, p["D"])
    ref = ssm.s4_recurrence(*(p[k].astype(np.float64) for k in ("u", "A", "B", "C", "dt", "D")), backend="ref")
    assert y.dtype == np.float32
    assert_close(y, ref, dtype=np.float32)
    Lam, Pt, Bt, V = ssm.hippo_dplr(4)
    dplr = [x.astype(np.complex64) for x in (Lam, Pt, np.broadcast_to(Bt, (2, 4)), p["C"] @ V)]
    Kt = ssm.s4_kernel_dplr(*(torch.from_numpy(x) for x in dplr), torch.from_numpy(p["dt"]), 12)
    yt = ssm.s4_convolve(torch.from_numpy(p["u"]), Kt, torch.from_numpy(p["D"]))
    assert Kt.dtype == yt.dtype == torch.float32
    assert_close(yt.numpy(), ref, dtype=np.float32)


@pytest.mark.parametrize("name", ["discretize_bilinear", "s4_kernel_power", "s4_kernel_recurrent", "s4_kernel_dplr",
                                  "s4_recurrence", "s4_convolve"])
def test_s4_torch_gradients_pass_gradcheck(name):
    arrays = SPECS[name][1](np.random.default_rng(3))
    keys = SPECS[name][2]
    t = {k: torch.from_numpy(arrays[k]).clone().requires_grad_() for k in keys}

    def f(*xs):
        return _call(name, dict(zip(keys, xs)), "torch", **dict(zip(keys, xs)))

    assert torch.autograd.gradcheck(f, tuple(t[k] for k in keys), eps=1e-6, atol=1e-7, rtol=1e-5)


# ---- a gateloop / s4_recurrence argument on another device ---------------------------------------
def test_parameters_on_the_meta_device_are_refused_by_name(rng):
    g = ssm.make_gateloop_inputs(rng)
    q, k, v = (torch.from_numpy(g[x]) for x in "qkv")
    with pytest.raises(ValueError, match="a must be on q's device"):
        ssm.gateloop(q, k, v, torch.from_numpy(g["a"]).to("meta"))
    p = _s4(rng)
    with pytest.raises(ValueError, match="A must be on u's device|A is on the 'meta' device"):
        ssm.s4_recurrence(torch.from_numpy(p["u"]), torch.from_numpy(p["A"]).to("meta"), p["B"], p["C"], p["dt"])
    a = _la(rng)
    with pytest.raises(ValueError, match="initial_state"):
        ssm.linear_attention(*(torch.from_numpy(a[x]) for x in "qkv"),
                             initial_state=torch.zeros(2, 2, 3, 5, dtype=torch.float64, device="meta"))


# ---- kernels bounds-checked -------------------------------------------------------------------
BOUNDSCHECK_SCRIPT = textwrap.dedent("""
    import numpy as np
    from theorylab import ssm
    rng = np.random.default_rng(0)
    p = ssm.make_inputs(rng, batch=2, length=7, channels=3, state=5)
    args = [p[k] for k in ("x", "delta", "A", "B", "C", "D")]
    y = ssm.selective_scan(args[0][:, ::-1], *args[1:], backend="numba")  # a negative-stride x
    ref = ssm.selective_scan(np.ascontiguousarray(args[0][:, ::-1]), *args[1:], backend="ref")
    assert np.abs(y - ref).max() <= 1e-12 * np.abs(ref).max()
    g = ssm.make_gateloop_inputs(rng, batch=1, length=5, heads=3, dk=2, dv=7, scalar_gate=True)
    out = ssm.gateloop(g["q"], g["k"], g["v"], g["a"], backend="numba")
    assert np.abs(out - ssm.gateloop(g["q"], g["k"], g["v"], g["a"], backend="ref")).max() <= 1e-12
    print("bounds-checked ok")
""")


def test_numba_kernels_under_boundscheck(tmp_path):
    """The selective scan (channel blocks, odd sizes, a negative-stride x) and GateLoop (a scalar gate
    broadcast over dk) compiled afresh with bounds checks: two kernels, ~15 s of compiling."""
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), NUMBA_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", BOUNDSCHECK_SCRIPT], env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0 and "bounds-checked ok" in res.stdout, res.stderr[-3000:]


# ---- carried states follow the same contract ----------------------------------------------------
STATEFUL = ["selective_scan", "linear_attention", "cottention", "gateloop", "aft_simple", "hla2", "s4_recurrence"]


@pytest.mark.parametrize("name", STATEFUL)
def test_initial_state_follows_the_contract(name):
    arrays = SPECS[name][1](np.random.default_rng(5))
    _, state = _call(name, arrays, "ref", return_final_state=True)
    parts = state if isinstance(state, tuple) else (state,)

    def as_state(xs):
        return tuple(xs) if isinstance(state, tuple) else xs[0]

    t = {k: torch.from_numpy(arrays[k]) for k in SPECS[name][2]}
    grad = [torch.from_numpy(np.ascontiguousarray(x)).requires_grad_() for x in parts]
    with pytest.raises(ValueError, match="requires grad.*backend='torch'"):
        _call(name, t, "ref", **t, initial_state=as_state(grad))
    y = _call(name, t, "torch", **t, initial_state=as_state(grad))
    y.abs().sum().backward()
    assert all(g.grad is not None and torch.isfinite(g.grad).all() for g in grad)
    flipped = [np.ascontiguousarray(x[..., ::-1])[..., ::-1] for x in parts]  # negative strides, same values
    _same(_call(name, arrays, "torch", initial_state=as_state(flipped)),
          _call(name, arrays, "torch", initial_state=as_state([np.ascontiguousarray(x) for x in parts])))
