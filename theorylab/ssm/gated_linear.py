"""GateLoop (data-controlled complex gates) and AFT-simple: recurrent = parallel forms.

Papers: #80 Katsch, "GateLoop: Fully Data-Controlled Linear Recurrence for Sequence
Modeling" (2023, arXiv:2311.01927), Sections 3.1-3.3; #119 Zhai et al., "An Attention Free
Transformer" (2021, arXiv:2105.14103), Section 3.1 (AFT-simple).

**GateLoop.** Per batch and head, a state H_t in C^{dk x dv} and input-controlled gates
a_t in C^{dk} with |a_t| <= 1 (one gate per key dimension; a scalar gate per head is the
case of equal entries):

    H_t = diag(a_t) H_{t-1} + k_t v_tᵀ,        y_t = q_tᵀ H_t       (recurrent mode, O(l))

* **associative scan** (parallel mode, O(l log l)): each step is the affine map
  H -> a ⊙ H + k vᵀ; maps compose by (a, b) ∘ (a', b') = (a' a, a' b + b'), which is
  associative, so an inclusive prefix scan gives every H_t = A_{≤t} ⊙ H_0 + B_{≤t};
* **surrogate attention** (O(l²)): unrolling,

      y_n = Σ_{m<=n} Σ_d q_n[d] k_m[d] M_d[n, m] v_m,     M_d[n, m] = Π_{j=m+1..n} a_j[d],

  i.e. Y = (Q Kᵀ ∘ M) V for a scalar gate.  Products of gates are taken as
  exp(Σ log a_j) with the stable segment sums of :mod:`theorylab.ssm._segsum` (complex log:
  log|a| + i arg a), never as ratios of cumulative products (which overflow as 1/Π a).

Outputs are complex (the paper uses the real part, or real and imaginary parts, downstream).

**AFT-simple.** Elementwise over the feature dimension d (q, k, v share it):

    y_t = σ(q_t) ⊙ Σ_{s<=t} exp(k_s) ⊙ v_s / Σ_{s<=t} exp(k_s)

* **closed form**: cumulative sums in log space, lse_t = log Σ_{s<=t} exp(k_s) and, with
  v = v⁺ - v⁻ (v^± >= 0), log Σ_{s<=t} exp(k_s) v_s^± = logcumsumexp(k + log v^±); then
  y = σ(q) ⊙ (exp(lnum⁺ - lse) - exp(lnum⁻ - lse)).  Every exponent is <= 0;
* **recurrent form** with a running max m_t = max(m_{t-1}, k_t):

      num_t = num_{t-1} e^{m_{t-1} - m_t} + e^{k_t - m_t} v_t,
      den_t = den_{t-1} e^{m_{t-1} - m_t} + e^{k_t - m_t},       y_t = σ(q_t) num_t / den_t;

* **attention form**: y_t = σ(q_t) ⊙ Σ_{s<=t} W[t, s] v_s with W[t, s] = exp(k_s - lse_t)
  (a causal softmax over positions, per feature).

The carried state is stored in the scale-free form [ℓ, μ] with ℓ = m + log den
(log Σ exp(k_s)) and μ = num / den (the running weighted mean of v).

Glossary (code -> paper): q, k, v -> Q, K, V; a -> a (GateLoop state transition); H -> h;
M -> the surrogate attention mask; lse, m, num, den -> the AFT normalizer and its pieces.

Shapes: GateLoop q, k (batch, length, heads, dk), v (batch, length, heads, dv),
a (batch, length, heads, dk) or (batch, length, heads) complex, y (batch, length, heads, dv)
complex, state (batch, heads, dk, dv) complex; AFT q, k, v, y (batch, length, heads, d),
state (batch, heads, d, 2).
"""

from __future__ import annotations

import numpy as np

from .. import _validate as V
from ..backends import is_tensor, resolve_backend, to_numpy
from ._contract import finish, torch_args, upcast
from ._segsum import segsum
from .linear_forms import check_qkv, check_state
from .selective import scan_combine

__all__ = [
    "gateloop",
    "gateloop_recurrent",
    "gateloop_step",
    "gateloop_scan",
    "gateloop_attention",
    "aft_simple",
    "aft_simple_recurrent",
    "aft_simple_closed_form",
    "aft_simple_attention",
    "make_gateloop_inputs",
]

BACKENDS = ("ref", "numba", "torch")
COMPLEX = {"float32": np.complex64, "float64": np.complex128}
# GateLoop's complex dtype for real inputs of each dtype: half precision computes (and returns) complex64,
# there being no complex bfloat16
CTYPE = {"float16": "complex64", "bfloat16": "complex64", "float32": "complex64", "float64": "complex128"}


# ---------------------------------------------------------------------------------------
# GateLoop
# ---------------------------------------------------------------------------------------
DECAYS = ("moderate", "extreme", "unit")


def make_gateloop_inputs(rng: np.random.Generator, *, batch=1, length=8, heads=2, dk=3, dv=5, scalar_gate=False,
                         decay="moderate", dtype=np.float64) -> dict:
    """q, k ~ N(0, 1/dk), v ~ N(0, 1); gates a = r e^{iθ}, θ ~ U[-π, π], with modulus r:

    ``decay="moderate"``: r ~ U[0.5, 1]; ``"extreme"``: r = e^{-U[0, 60]} (down to ~1e-26:
    products of a few gates underflow to 0, so a form that divides cumulative products
    gives 0/0, and a segment sum taken as a difference of cumulative sums loses its digits);
    ``"unit"``: r = 1 - 2^-22 (rotations that do not decay over the lengths drawn; r = 1 itself
    can round to |a| > 1 in complex arithmetic).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    if decay not in DECAYS:
        raise ValueError(f"decay must be one of {DECAYS}; got {decay!r}")
    b, L, h, dk, dv = (V.check_size(name, x) for name, x in (("batch", batch), ("length", length), ("heads", heads),
                                                              ("dk", dk), ("dv", dv)))
    if not isinstance(scalar_gate, (bool, np.bool_)):
        raise TypeError(f"scalar_gate must be a bool; got {type(scalar_gate).__name__}")
    gshape = (b, L, h) if scalar_gate else (b, L, h, dk)
    r = {"moderate": lambda: rng.uniform(0.5, 1.0, gshape), "extreme": lambda: np.exp(-rng.uniform(0.0, 60.0, gshape)),
         "unit": lambda: np.full(gshape, 1.0 - 2.0**-22)}[decay]()
    a = r * np.exp(1j * rng.uniform(-np.pi, np.pi, gshape))
    out = {"q": rng.standard_normal((b, L, h, dk)) / np.sqrt(dk), "k": rng.standard_normal((b, L, h, dk)) / np.sqrt(dk),
           "v": rng.standard_normal((b, L, h, dv))}
    out = {key: val.astype(dtype) for key, val in out.items()}
    out["a"] = a.astype(COMPLEX[np.dtype(dtype).name])
    return out


def _gates(a, dk):
    """(b, L, h) or (b, L, h, dk) -> (b, L, h, dk)."""
    return a[..., None].expand(*a.shape, dk) if is_tensor(a) and a.ndim == 3 else (
        np.broadcast_to(a[..., None], a.shape + (dk,)) if a.ndim == 3 else a)


def gateloop_recurrent(q, k, v, a, initial_state=None):
    """complex128 loop of H_t = diag(a_t) H_{t-1} + k_t v_tᵀ, y_t = q_tᵀ H_t.  Returns (y, H)."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    b, L, h, dk = q.shape
    a = _gates(np.asarray(a, dtype=np.complex128), dk)
    H = np.zeros((b, h, dk, v.shape[3]), complex) if initial_state is None else np.array(initial_state, np.complex128)
    y = np.empty((b, L, h, v.shape[3]), complex)
    for t in range(L):
        H, y[:, t] = gateloop_step(H, q[:, t], k[:, t], v[:, t], a[:, t])  # (b, h, dk, dv), (b, h, dv)
    return y, H


def gateloop_step(H, q_t, k_t, v_t, a_t):
    """One step: H_t = diag(a_t) H_{t-1} + k_t v_tᵀ, y_t = q_tᵀ H_t.  Returns (H_t, y_t).

    H (..., dk, dv); q_t, k_t, a_t (..., dk); v_t (..., dv).  Plain broadcasting and sums, so
    it also runs on object arrays of sympy symbols (the claim's induction-step proof).
    """
    H = a_t[..., :, None] * H + k_t[..., :, None] * v_t[..., None, :]  # (..., dk, dv)
    return H, (q_t[..., :, None] * H).sum(axis=-2)  # (..., dv)


def gateloop_scan(q, k, v, a, initial_state=None):
    """Hillis-Steele inclusive scan of the steps (a_t, k_t v_tᵀ) (complex128, O(l log l))."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    b, L, h, dk = q.shape
    A = np.array(_gates(np.asarray(a, dtype=np.complex128), dk))[..., None]  # (b, L, h, dk, 1)
    B = (k[..., :, None] * v[..., None, :]).astype(np.complex128)  # (b, L, h, dk, dv)
    shift = 1
    while shift < L:  # step t absorbs the prefix ending at t - shift: first earlier, then later
        nA, nB = scan_combine((A[:, :-shift], B[:, :-shift]), (A[:, shift:], B[:, shift:]))
        A = np.concatenate([A[:, :shift], nA], axis=1)
        B = np.concatenate([B[:, :shift], nB], axis=1)
        shift *= 2
    H = B if initial_state is None else A * np.asarray(initial_state, np.complex128)[:, None] + B  # (b, L, h, dk, dv)
    return np.einsum("blhk,blhkv->blhv", q, H), H[:, -1]


def gateloop_attention(q, k, v, a, *, mask_from: int = 1):
    """complex128 surrogate attention y_n = Σ_m Σ_d q_n[d] k_m[d] Π_{j=m+1..n} a_j[d] v_m.

    ``mask_from=1`` is the claim; ``mask_from=0`` multiplies in a_m too (wrong on purpose).
    """
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    dk = q.shape[3]
    a = _gates(np.asarray(a, dtype=np.complex128), dk)
    with np.errstate(divide="ignore"):
        loga = np.log(np.transpose(a, (0, 2, 3, 1)))  # (b, h, dk, L): log|a| + i arg a
    M = np.exp(segsum(loga))  # (b, h, dk, L, L): M_d[n, m] = Π_{j=m+1..n} a_j[d]
    if mask_from == 0:
        M = M * np.transpose(a, (0, 2, 3, 1))[..., None, :]  # includes a_m: one factor too many
    scores = np.einsum("bnhd,bmhd,bhdnm->bhnm", q, k, M)  # (b, h, L, L)
    return np.einsum("bhnm,bmhv->bnhv", scores, v)  # (b, L, h, dv)


def _gateloop_torch(q, k, v, a, H0, chunk_size=64):
    """Chunked associative scan in torch (complex), carrying H between chunks."""
    from ._prefix_scan import _prefix_scan

    ctype = a.dtype
    H, ys = H0, []
    for start in range(0, q.shape[1], chunk_size):
        sl = slice(start, start + chunk_size)
        A = a[:, sl, :, :, None]  # (b, T, h, dk, 1)
        B = (k[:, sl, :, :, None] * v[:, sl, :, None, :]).to(ctype)  # (b, T, h, dk, dv)
        pA, pB = _prefix_scan(A, B, dim=1)
        Hs = pA * H[:, None] + pB  # (b, T, h, dk, dv)
        ys.append((q[:, sl, :, :, None].to(ctype) * Hs).sum(3))  # (b, T, h, dv)
        H = Hs[:, -1]
    import torch

    return torch.cat(ys, dim=1), H


def _check_gates(a, q, kind):
    b, L, h, dk = (int(s) for s in q.shape)
    if is_tensor(a) != (kind == "torch") or not (is_tensor(a) or isinstance(a, np.ndarray)):
        raise TypeError(f"a must be the same container kind as q ({type(q).__name__}); got {type(a).__name__}")
    name = V.dtype_name(a)
    want = CTYPE[V.dtype_name(q)]
    if name not in (want, V.dtype_name(q)):
        raise TypeError(f"a must have dtype {want} (or real {V.dtype_name(q)}) to match q; got {name}")
    if kind == "torch" and a.device != q.device:  # (q is not on 'meta': check_qkv refused it)
        raise ValueError(f"a must be on q's device {q.device}; got {a.device}")
    if tuple(a.shape) not in ((b, L, h), (b, L, h, dk)):
        raise ValueError(f"a must have shape {(b, L, h)} or {(b, L, h, dk)}; got {tuple(a.shape)} (q {tuple(q.shape)})")
    V.check_finite("a", a)
    mod = a.detach().abs().max() if is_tensor(a) else np.abs(a).max()
    if float(mod) > 1.0:
        raise ValueError(f"a must satisfy |a| <= 1 (a contraction); max |a| is {float(mod)} (shape {tuple(a.shape)})")


def gateloop(q, k, v, a, *, initial_state=None, return_final_state=False, chunk_size=64, backend="auto"):
    """GateLoop y (batch, length, heads, dv), complex; see the module docstring.

    Backends: ``"ref"`` (complex128 recurrence), ``"numba"`` (compiled recurrence in the
    input's precision), ``"torch"`` (chunked associative scan; CPU/CUDA; differentiable),
    ``"auto"``.  ``initial_state`` (batch, heads, dk, dv) complex.  Outputs are complex128
    for float64 q, complex64 for float32 and half-precision q (computed in float32/complex64:
    there is no complex bfloat16); ``a`` is complex of that dtype or real of q's dtype.
    """
    kind = check_qkv(q, k, v)
    _check_gates(a, q, kind)
    b, L, h, dk = (int(s) for s in q.shape)
    dv = int(v.shape[3])
    ctype = CTYPE[V.dtype_name(q)]
    if initial_state is not None:
        if is_tensor(initial_state) != (kind == "torch") or not (is_tensor(initial_state) or
                                                                  isinstance(initial_state, np.ndarray)):
            raise TypeError(f"initial_state must be the same container kind as q ({type(q).__name__}); "
                            f"got {type(initial_state).__name__}")
        if V.dtype_name(initial_state) != ctype:
            raise TypeError(f"initial_state must have dtype {ctype}; got {V.dtype_name(initial_state)}")
        if kind == "torch" and initial_state.device != q.device:
            raise ValueError(f"initial_state must be on q's device {q.device}; got {initial_state.device}")
        V.check_shape("initial_state", initial_state, (b, h, dk, dv), {"q": q.shape, "v": v.shape})
        V.check_finite("initial_state", initial_state)
    chunk_size = V.check_size("chunk_size", chunk_size)
    backend = resolve_backend(backend, {"q": q, "k": k, "v": v, "a": a, "initial_state": initial_state}, valid=BACKENDS)
    if backend == "torch":  # half precision computes in float32 / complex64 (see theorylab.ssm._contract)
        import torch

        qt, kt, vt, at, H0 = upcast(*torch_args(q, k, v, a, initial_state))
        ct = getattr(torch, ctype)
        at = _gates(at.to(ct), dk)
        H0 = torch.zeros(b, h, dk, dv, dtype=ct, device=qt.device) if H0 is None else H0
        y, H = _gateloop_torch(qt, kt, vt, at, H0, chunk_size)
    elif backend == "numba":
        from ._gated_linear_numba import gateloop_recurrent as kernel

        dt = np.float64 if V.dtype_name(q) == "float64" else np.float32
        qn, kn, vn = (np.ascontiguousarray(to_numpy(x, dt)) for x in (q, k, v))
        an = np.ascontiguousarray(_gates(to_numpy(a).astype(ctype), dk))  # (b, L, h, dk)
        H0 = np.zeros((b, h, dk, dv), ctype) if initial_state is None else np.array(to_numpy(initial_state), ctype)
        y, H = kernel(qn, kn, vn, an, H0)
    else:
        y, H = gateloop_recurrent(to_numpy(q), to_numpy(k), to_numpy(v), to_numpy(a), to_numpy(initial_state))
    if kind == "torch":  # torch out: complex dtype matching q, on q's device
        import torch

        y, H = (x if is_tensor(x) else torch.from_numpy(x) for x in (y, H))
        y, H = (x.to(device=q.device, dtype=getattr(torch, ctype)) for x in (y, H))
    else:
        y, H = (to_numpy(x).astype(ctype, copy=False) for x in (y, H))
    return (y, H) if return_final_state else y


# ---------------------------------------------------------------------------------------
# AFT-simple
# ---------------------------------------------------------------------------------------
def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # σ(x), no overflow


def aft_simple_recurrent(q, k, v, initial_state=None, *, rescale_num=True):
    """float64 loop with a running max (module docstring).  Returns (y, state [ℓ, μ]).

    ``rescale_num=False`` forgets to rescale num when the max grows (wrong on purpose).
    """
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    b, L, h, d = q.shape
    if initial_state is None:
        m, num, den = np.full((b, h, d), -np.inf), np.zeros((b, h, d)), np.zeros((b, h, d))
    else:  # [ℓ, μ] -> m = ℓ, den = 1, num = μ
        st = np.asarray(initial_state, dtype=np.float64)
        m, num, den = st[..., 0].copy(), st[..., 1].copy(), np.ones((b, h, d))
    y = np.empty((b, L, h, d))
    for t in range(L):
        m_new = np.maximum(m, k[:, t])  # (b, h, d)
        old = np.exp(m - m_new)  # e^{m_{t-1} - m_t} <= 1 (0 when m = -inf)
        new = np.exp(k[:, t] - m_new)  # e^{k_t - m_t} <= 1
        num = (num * old if rescale_num else num) + new * v[:, t]
        den = den * old + new
        m = m_new
        y[:, t] = _sigmoid(q[:, t]) * num / den
    return y, np.stack([m + np.log(den), num / den], axis=-1)  # (b, h, d, 2)


def _prepend_state(k, v, state, xp_cat):
    """A carried state [ℓ, μ] acts as one earlier token with key ℓ and value μ."""
    return xp_cat(state[..., 0][:, None], k), xp_cat(state[..., 1][:, None], v)


def aft_simple_closed_form(q, k, v, initial_state=None):
    """float64 σ(Q) ∘ cumsum(e^K ∘ V) / cumsum(e^K) in log space (np.logaddexp.accumulate)."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    if initial_state is not None:
        k, v = _prepend_state(k, v, np.asarray(initial_state, np.float64), lambda a, b: np.concatenate([a, b], 1))
    with np.errstate(divide="ignore"):
        lse = np.logaddexp.accumulate(k, axis=1)  # (b, L', h, d): log Σ_{s<=t} e^{k_s}
        lpos = np.logaddexp.accumulate(k + np.log(np.maximum(v, 0.0)), axis=1)  # log Σ e^{k_s} v_s⁺
        lneg = np.logaddexp.accumulate(k + np.log(np.maximum(-v, 0.0)), axis=1)  # log Σ e^{k_s} v_s⁻
    mu = np.exp(lpos - lse) - np.exp(lneg - lse)  # (b, L', h, d): running weighted mean of v
    if initial_state is not None:
        lse, mu = lse[:, 1:], mu[:, 1:]
    return _sigmoid(q) * mu, np.stack([lse[:, -1], mu[:, -1]], axis=-1)


def aft_simple_attention(q, k, v):
    """float64 materialized y_t = σ(q_t) ⊙ Σ_{s<=t} exp(k_s - lse_t) v_s (per feature)."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    L = q.shape[1]
    lse = np.logaddexp.accumulate(k, axis=1)  # (b, L, h, d)
    lower = np.tril(np.ones((L, L), dtype=bool))[None, :, :, None, None]
    W = np.exp(np.where(lower, k[:, None] - lse[:, :, None], -np.inf))  # (b, t, s, h, d): exp(k_s - lse_t), s <= t
    return _sigmoid(q) * np.einsum("btshd,bshd->bthd", W, v)


def _aft_torch(q, k, v, state):
    import torch

    if state is not None:
        k, v = _prepend_state(k, v, state, lambda a, b: torch.cat([a, b], dim=1))
    one = torch.ones((), dtype=v.dtype, device=v.device)
    # log of the smallest normal number instead of log 0 = -inf: logcumsumexp's backward is NaN on
    # an all -inf prefix; the floor adds at most tiny * max|v| (1e-308 / 1e-38 relative)
    floor = torch.full((), float(np.log(torch.finfo(v.dtype).tiny)), dtype=v.dtype, device=v.device)

    def log_part(x):  # log max(x, 0), floored; finite values and gradients everywhere
        return torch.where(x > 0, torch.log(torch.where(x > 0, x, one)), floor)

    lse = torch.logcumsumexp(k, dim=1)  # (b, L', h, d)
    lpos = torch.logcumsumexp(k + log_part(v), dim=1)  # log Σ e^{k_s} v_s⁺
    lneg = torch.logcumsumexp(k + log_part(-v), dim=1)  # log Σ e^{k_s} v_s⁻
    mu = torch.exp(lpos - lse) - torch.exp(lneg - lse)
    if state is not None:
        lse, mu = lse[:, 1:], mu[:, 1:]
    return torch.sigmoid(q) * mu, torch.stack([lse[:, -1], mu[:, -1]], dim=-1)


def aft_simple(q, k, v, *, initial_state=None, return_final_state=False, backend="auto"):
    """AFT-simple y (batch, length, heads, d); see the module docstring.

    Backends: ``"ref"`` (float64 recurrence with a running max), ``"numba"`` (the same
    recurrence compiled, input precision), ``"torch"`` (closed form with
    ``torch.logcumsumexp``; CPU/CUDA; differentiable), ``"auto"``.  ``initial_state``
    (batch, heads, d, 2) = [ℓ, μ] continues a previous segment.
    """
    check_qkv(q, k, v, same_dim=True)
    b, L, h, d = (int(s) for s in q.shape)
    check_state("initial_state", initial_state, (b, h, d, 2), q, {"q": q.shape})
    backend = resolve_backend(backend, {"q": q, "k": k, "v": v, "initial_state": initial_state}, valid=BACKENDS)
    if backend == "torch":  # half precision computes in float32 (see theorylab.ssm._contract)
        y, st = _aft_torch(*upcast(*torch_args(q, k, v, initial_state)))
    elif backend == "numba":
        from ._gated_linear_numba import aft_recurrent

        dt = np.float64 if V.dtype_name(q) == "float64" else np.float32
        qn, kn, vn = (np.ascontiguousarray(to_numpy(x, dt)) for x in (q, k, v))
        if initial_state is None:
            m, num, den = np.full((b, h, d), -np.inf, dt), np.zeros((b, h, d), dt), np.zeros((b, h, d), dt)
        else:  # [ℓ, μ] -> m = ℓ, den = 1, num = μ
            stn = to_numpy(initial_state, dt)
            m, num, den = stn[..., 0].copy(), stn[..., 1].copy(), np.ones((b, h, d), dt)
        y, m, num, den = aft_recurrent(qn, kn, vn, m, num, den)
        st = np.stack([m + np.log(den), num / den], axis=-1)  # (b, h, d, 2)
    else:
        y, st = aft_simple_recurrent(*(to_numpy(x) for x in (q, k, v, initial_state)))
    y, st = finish(y, q, "y"), finish(st, q, "final state")
    return (y, st) if return_final_state else y
