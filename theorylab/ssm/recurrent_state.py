"""Decoding memory: a recurrent decoder carries a constant-size state, softmax attention a growing KV cache.

Papers: Katharopoulos et al., "Transformers are RNNs" (2020, arXiv:2006.16236), Sec. 3.4
(linear attention generates each token in constant time and memory); the recurrent forms
of :mod:`theorylab.ssm.linear_forms`, :mod:`theorylab.ssm.gated_linear` (#80, #119) and
:mod:`theorylab.ssm.hla` (#14).

A decoder generates token t from (q_t, k_t, v_t) and what it kept from tokens < t.
:func:`decode` runs that loop one token per call, as a generating model does:

* a **recurrent form** (linear attention with elu+1 and normalization, GateLoop,
  AFT-simple, second-order HLA) calls its public function on the one-token slice with
  ``initial_state=`` the state it carries and ``return_final_state=True``, and keeps only
  the state returned;
* **softmax attention** keeps every key and value seen (the KV cache) and computes
  y_t = Σ_{s<=t} softmax_s(q_t·k_s/√d) v_s with the max subtracted from the logits.

After every token the decoder reports the bytes it carries (``held[t]``, the state's or the
cache's ``nbytes``).  The claim ``ssm.recurrent-state-is-constant``: held[t] does not depend
on t for the recurrent forms (log-log slope 0), grows as t for the KV cache (slope 1), and
the streamed outputs equal the full-sequence (materialized) forms -- the state carried is
all the decoder needs.

Shapes: q, k, v (batch, length, heads, d) (one d: AFT-simple is elementwise); a
(batch, length, heads, d) complex; y (batch, length, heads, d) (complex for GateLoop).
"""

from __future__ import annotations

import numpy as np

from ..backends import is_tensor
from .gated_linear import aft_simple, aft_simple_attention, gateloop, gateloop_attention
from .hla import hla2, hla2_materialized
from .linear_forms import linear_attention, linear_attention_parallel

__all__ = ["RECURRENT_FORMS", "FORMS", "decode", "full_sequence", "softmax_attention_ref", "held_bytes"]

RECURRENT_FORMS = ("linear attention", "GateLoop", "AFT-simple", "HLA (2nd order)")
FORMS = RECURRENT_FORMS + ("softmax KV cache",)
_PUBLIC = {"linear attention": lambda q, k, v, a, **kw: linear_attention(q, k, v, feature_map="elu1", normalize=True, **kw),
           "GateLoop": lambda q, k, v, a, **kw: gateloop(q, k, v, a, **kw),
           "AFT-simple": lambda q, k, v, a, **kw: aft_simple(q, k, v, **kw),
           "HLA (2nd order)": lambda q, k, v, a, **kw: hla2(q, k, v, **kw)}


def held_bytes(obj) -> int:
    """Bytes of the arrays (numpy or torch) in ``obj`` (an array or a tuple/list of them)."""
    if isinstance(obj, (tuple, list)):
        return sum(held_bytes(x) for x in obj)
    if is_tensor(obj):
        return int(obj.element_size() * obj.numel())
    return int(np.asarray(obj).nbytes)


def softmax_attention_ref(q, k, v):
    """float64 causal softmax attention, materialized: y_t = Σ_{s<=t} softmax_s(q_t·k_s/√d) v_s."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    L = q.shape[1]
    s = np.einsum("bthd,bshd->bhts", q, k) / np.sqrt(q.shape[-1])  # (b, h, L, L)
    s = np.where(np.tril(np.ones((L, L), dtype=bool)), s, -np.inf)
    w = np.exp(s - s.max(axis=-1, keepdims=True))
    return np.einsum("bhts,bshv->bthv", w / w.sum(-1, keepdims=True), v)


def full_sequence(form: str, q, k, v, a=None):
    """The materialized (parallel) form of ``form`` on the whole sequence (float64 / complex128)."""
    if form == "linear attention":
        return linear_attention_parallel(q, k, v, feature_map="elu1", normalize=True)
    if form == "GateLoop":
        return gateloop_attention(q, k, v, a)
    if form == "AFT-simple":
        return aft_simple_attention(q, k, v)
    if form == "HLA (2nd order)":
        return hla2_materialized(q, k, v)
    if form == "softmax KV cache":
        return softmax_attention_ref(q, k, v)
    raise ValueError(f"form must be one of {FORMS}; got {form!r}")


def _to_numpy(y):
    return y.detach().cpu().numpy() if is_tensor(y) else np.asarray(y)


def decode(form: str, q, k, v, a=None, *, backend: str = "ref", keep_history: bool = False):
    """Generate every token in turn; returns ``(y, held)``: outputs and bytes carried after each token.

    ``backend`` is passed to the recurrent form's public function (``"torch:cuda"``: the
    inputs go to CUDA first).  The softmax decoder is numpy.  ``keep_history=True`` makes a
    recurrent decoder also keep one number per head per token (its output's norm, as for a
    later renormalization): the near miss the claim's control measures.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}; got {form!r}")
    q, k, v = (np.asarray(x) for x in (q, k, v))
    b, L, h, d = q.shape
    ys, held = [], np.empty(L, dtype=np.int64)
    if form == "softmax KV cache":
        K = np.empty((b, 0, h, d))
        V = np.empty((b, 0, h, v.shape[3]))
        for t in range(L):
            K = np.concatenate([K, k[:, t:t + 1]], axis=1)  # the cache grows by one key and one value
            V = np.concatenate([V, v[:, t:t + 1]], axis=1)
            s = np.einsum("bhd,bshd->bhs", q[:, t], K) / np.sqrt(d)  # (b, h, t+1)
            w = np.exp(s - s.max(axis=-1, keepdims=True))  # max shift: logits may be ~1e4
            ys.append(np.einsum("bhs,bshv->bhv", w / w.sum(-1, keepdims=True), V))
            held[t] = held_bytes((K, V))
        return np.stack(ys, axis=1), held
    fn = _PUBLIC[form]
    if backend == "torch:cuda":
        import torch

        q, k, v = (torch.from_numpy(np.ascontiguousarray(x)).to("cuda") for x in (q, k, v))
        a = None if a is None else torch.from_numpy(np.ascontiguousarray(a)).to("cuda")
        backend = "torch"
    state, history = None, []
    for t in range(L):
        sl = slice(t, t + 1)
        y, state = fn(q[:, sl], k[:, sl], v[:, sl], None if a is None else a[:, sl], initial_state=state,
                      return_final_state=True, backend=backend)
        ys.append(_to_numpy(y)[:, 0])
        if keep_history:
            history.append(np.abs(ys[-1]).max(axis=-1))  # (b, h): one number per head per token
        held[t] = held_bytes(state) + sum(x.nbytes for x in history)
    return np.stack(ys, axis=1), held
