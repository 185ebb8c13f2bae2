"""``assert_equivalent``: a candidate kernel against a reference, forward and backward.

For every input dict ``p`` drawn from a hypothesis strategy:

1. **forward**: ``candidate(**p)`` against ``reference(**upcast(p))``, where ``upcast`` turns
   every floating-point array or tensor into float64 (the candidate's rounded values, so the
   comparison measures the algorithm, not input rounding).  Outputs may be one array/tensor
   or a tuple/list of them (``(o, final_state)``); ``None`` entries must match ``None``.
2. **backward** (torch only): with floating-point tensors among the inputs, both sides run
   under autograd.  A random cotangent W (one per differentiable output, drawn from the
   example's seed, rounded to the candidate's output dtype) defines the scalar
   ``Σ <out, W>``; its gradients with respect to every floating-point input tensor (or the
   names in ``grad_wrt``) -- the candidate's autograd against the reference's, in float64
   -- are compared under the same policy, normwise over the *whole* gradient (the gradient
   of one scalar with respect to all inputs is one vector): max |Δ| <= rtol · max |∇ref|.
   Per input it would be ill-posed: a gradient that is exactly 0 in exact arithmetic (the
   normalizer of a normalized attention is invariant to the scale of q) comes out as
   rounding noise of size eps · (the terms that cancel), which has no relative scale of its
   own.  A wrong backward of a custom
   ``torch.autograd.Function`` shows up here even when its forward is right.

Both comparisons use :mod:`theorylab.tolerances` (normwise, rtol from ``dtype``).  On a
mismatch hypothesis shrinks the example, and the ``AssertionError`` names the pass
(``forward output[1]``, ``backward d/dA``), the normwise error with the worst index, and
the minimal failing example (each argument's shape and dtype, each option's value, the seed
of the cotangent).
"""

from __future__ import annotations

import numpy as np
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from ..tolerances import compare, rtol_for

__all__ = ["assert_equivalent", "check_example", "describe_example", "upcast"]

_seeds = st.integers(0, 2**32 - 1)
GRAD_MODES = ("auto", True, False)
_PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)  # no "explain": it reruns the kernel many times


def _is_tensor(v) -> bool:
    return type(v).__module__.startswith("torch") and hasattr(v, "requires_grad")


def _is_float_tensor(v) -> bool:
    return _is_tensor(v) and (v.is_floating_point() or v.is_complex())


def _up(v):
    if isinstance(v, np.ndarray) and v.dtype.kind in "fc":
        return v.astype(np.complex128 if v.dtype.kind == "c" else np.float64)
    if _is_float_tensor(v):
        import torch

        return v.detach().to(torch.complex128 if v.is_complex() else torch.float64)
    if isinstance(v, (tuple, list)):  # e.g. a (state, normalizer) pair
        return type(v)(_up(x) for x in v)
    return v


def upcast(p: dict) -> dict:
    """``p`` with floating numpy arrays and tensors (also inside tuples and lists) in float64
    (complex in complex128), detached."""
    return {k: _up(v) for k, v in p.items()}


def _desc(v) -> str:
    if _is_tensor(v) or isinstance(v, np.ndarray):
        kind = "tensor" if _is_tensor(v) else "array"
        return f"{kind} of shape {tuple(v.shape)}, {str(v.dtype).replace('torch.', '')}"
    if isinstance(v, (tuple, list)) and any(_is_tensor(x) or isinstance(x, np.ndarray) for x in v):
        return "(" + ", ".join(_desc(x) for x in v) + ")"
    return repr(v)


def describe_example(p: dict, seed: int | None = None) -> str:
    """One line per argument: shape and dtype of arrays/tensors, the value of anything else."""
    lines = [f"    {k}: {_desc(v)}" for k, v in p.items()]
    if seed is not None:
        lines.append(f"    (cotangent seed {seed})")
    return "\n".join(lines)


class _Example(dict):
    """An input dict that hypothesis reports by shapes and options, not by every tensor entry."""

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: {_desc(v)}" for k, v in self.items()) + "}"

    def _repr_pretty_(self, printer, cycle) -> None:  # hypothesis' pretty printer
        printer.text(repr(self))


def _flatten(out, path="output"):
    """[(path, leaf)] of a possibly nested tuple/list output."""
    if isinstance(out, (tuple, list)):
        return [x for i, o in enumerate(out) for x in _flatten(o, f"{path}[{i}]")]
    return [(path, out)]


def _fail(what: str, detail: str, p: dict, seed) -> None:
    raise AssertionError(f"{what}: {detail}\n  minimal failing example:\n{describe_example(p, seed)}")


def _compare(what, out, ref, p, seed, dtype, rtol) -> None:
    if out is None or ref is None:
        if (out is None) != (ref is None):
            _fail(what, f"candidate gives {type(out).__name__}, reference gives {type(ref).__name__}", p, seed)
        return
    try:
        c = compare(out, ref, rtol=rtol, dtype=dtype)
    except ValueError as e:  # shapes differ
        _fail(what, str(e), p, seed)
    if not c.ok:
        _fail(what, f"out does not match ref: {c}", p, seed)


def check_example(candidate, reference, p: dict, *, dtype="float64", grad="auto", grad_wrt=None, rtol=None,
                  grad_rtol=None, seed: int = 0) -> None:
    """One example of :func:`assert_equivalent` (no hypothesis): raises ``AssertionError`` naming
    the failing pass and describing ``p``.  ``seed`` draws the backward pass's cotangent."""
    if grad not in GRAD_MODES:
        raise ValueError(f"grad must be one of {GRAD_MODES}; got {grad!r}")
    names = [k for k, v in p.items() if _is_float_tensor(v)] if grad_wrt is None else list(grad_wrt)
    for k in names:
        if not _is_float_tensor(p.get(k)):
            raise ValueError(f"grad_wrt names {k!r}, which is not a floating-point tensor among the inputs")
    backward = bool(names) if grad == "auto" else bool(grad)
    if backward and not names:
        raise ValueError("grad=True needs floating-point torch tensors among the inputs")
    cand_in, ref_in = dict(p), upcast(p)
    if backward:
        for k in names:
            cand_in[k] = p[k].detach().clone().requires_grad_(True)
            ref_in[k] = ref_in[k].requires_grad_(True)
    outs, refs = _flatten(candidate(**cand_in)), _flatten(reference(**ref_in))
    if len(outs) != len(refs):
        _fail("forward", f"candidate returns {len(outs)} outputs, reference {len(refs)}", p, None)
    for (path, o), (_, r) in zip(outs, refs):
        _compare(f"forward {path}", o, r, p, None, dtype, rtol)
    if backward:
        _check_backward(cand_in, ref_in, names, outs, refs, p, seed, dtype, grad_rtol if grad_rtol is not None else rtol)


def _check_backward(cand_in, ref_in, names, outs, refs, p, seed, dtype, rtol) -> None:
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    loss_c = loss_r = None
    for (path, o), (_, r) in zip(outs, refs):
        if not (_is_float_tensor(r) and r.requires_grad):
            continue  # an output that does not depend on the inputs (or is not a tensor)
        if not (_is_tensor(o) and o.requires_grad):
            _fail(f"backward {path}", "the candidate's output has no autograd graph (it does not depend "
                  "differentiably on the inputs); pass grad=False to check the forward pass only", p, seed)
        w = torch.randn(tuple(r.shape), generator=gen, dtype=torch.float64)
        w = w.to(o.dtype if o.is_floating_point() else torch.float64).to(torch.float64)  # round to the candidate's dtype
        term_c = (torch.real(o.to(torch.complex128 if o.is_complex() else torch.float64)) * w.to(o.device)).sum()
        term_r = (torch.real(r) * w.to(r.device)).sum()
        loss_c = term_c if loss_c is None else loss_c + term_c
        loss_r = term_r if loss_r is None else loss_r + term_r
    if loss_r is None:
        return
    gc = torch.autograd.grad(loss_c, [cand_in[k] for k in names], allow_unused=True)
    gr = torch.autograd.grad(loss_r, [ref_in[k] for k in names], allow_unused=True)
    comps = {}
    for k, a, b in zip(names, gc, gr):
        a = torch.zeros_like(cand_in[k]) if a is None else a
        b = torch.zeros_like(ref_in[k]) if b is None else b
        if tuple(a.shape) != tuple(b.shape):
            _fail(f"backward d/d{k}", f"gradient shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}", p, seed)
        comps[k] = compare(a, b, rtol=0.0)  # errors only; the tolerance is applied to the whole gradient below
    scale = max(c.ref_scale for c in comps.values())
    tol = rtol if rtol is not None else rtol_for(dtype)
    worst = max(comps, key=lambda k: comps[k].max_abs_error)
    c = comps[worst]
    rel = c.max_abs_error / scale if scale > 0 else c.max_abs_error
    if not rel <= tol:
        per = ", ".join(f"d/d{k} {v.max_abs_error:.2e}" for k, v in comps.items())
        _fail(f"backward d/d{worst}", f"max abs error {c.max_abs_error:.3e} at index {c.worst_index}, relative error "
              f"{rel:.3e} of the whole gradient's max|ref| {scale:.3e} (rtol {tol:.1e}); max abs error per input: {per}",
              p, seed)


def assert_equivalent(candidate, reference, inputs: st.SearchStrategy[dict], *, dtype="float64",
                      max_examples: int | None = None, grad="auto", grad_wrt=None, rtol: float | None = None,
                      grad_rtol: float | None = None) -> None:
    """Run ``candidate(**p)`` against ``reference(**upcast(p))`` on inputs drawn from ``inputs``,
    forward and (for torch tensors) backward; see the module docstring.

    ``dtype`` names the candidate's computation dtype (it sets the policy rtol; ``rtol`` /
    ``grad_rtol`` override it, with an error model stated where you call it).  ``grad``:
    ``"auto"`` (backward whenever floating-point tensors are among the inputs), ``True``,
    ``False``.  ``grad_wrt``: the input names to differentiate (default: every floating-point
    tensor).  No hypothesis deadline (a kernel may compile on its first call).  Raises
    hypothesis' shrunk counterexample as an ``AssertionError`` that names the
    pass, the normwise error with the worst index and the minimal failing example.
    """
    if grad not in GRAD_MODES:
        raise ValueError(f"grad must be one of {GRAD_MODES}; got {grad!r}")

    @settings(deadline=None, phases=_PHASES, **({} if max_examples is None else {"max_examples": max_examples}))
    @given(p=inputs.map(_Example), seed=_seeds)
    def run(p, seed):
        check_example(candidate, reference, dict(p), dtype=dtype, grad=grad, grad_wrt=grad_wrt, rtol=rtol,
                      grad_rtol=grad_rtol, seed=seed)

    run()
