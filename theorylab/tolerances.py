"""The one tolerance policy of theorylab, and ``assert_close``.

Errors are *normwise*: an output ``out`` matches a reference ``ref`` when

    max |out - ref|  <=  rtol * max |ref|

There is no per-entry ``atol``: a comparison that needs one is hiding a scale
problem.  ``rtol`` comes from the dtype of the computation under test:

=============================================================  ========
comparison                                                      rtol
=============================================================  ========
float64 vs float64 (exact identity, different operation order)  1e-10
float32 fast path vs float64 reference                          1e-4
bfloat16 / float16 (GPU) vs float64 reference                   2e-2
=============================================================  ========

A float64 comparison may be loosened only at the call site, with a comment that
derives the error growth (e.g. proportional to ``L * eps * cond``).

Round inputs to the fast path's dtype first, then upcast those same values for
the reference -- otherwise the comparison measures input rounding, not the
algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RTOL", "rtol_for", "Comparison", "compare", "assert_close"]

RTOL: dict[str, float] = {
    "float64": 1e-10,
    "float32": 1e-4,
    "bfloat16": 2e-2,
    "float16": 2e-2,
}


def _dtype_name(dtype) -> str:
    if isinstance(dtype, str) or type(dtype).__module__.startswith("torch"):
        return str(dtype).replace("torch.", "")
    return np.dtype(dtype).name


def rtol_for(dtype) -> float:
    """Policy rtol for a computation carried out in ``dtype`` (numpy or torch dtype, or name)."""
    name = _dtype_name(dtype)
    if name not in RTOL:
        raise ValueError(f"no tolerance policy for dtype {name!r}; known: {sorted(RTOL)}")
    return RTOL[name]


def _as_float64(a, argname: str) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor, without importing torch here
        a = a.detach().to("cpu")
        a = a.float() if str(a.dtype) in ("torch.bfloat16", "torch.float16") else a
        a = a.numpy()
    arr = np.asarray(a)
    if arr.dtype.kind == "c":
        return arr.astype(np.complex128)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{argname} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64)


@dataclass(frozen=True)
class Comparison:
    """Outcome of a normwise comparison; ``ok`` iff ``rel_error <= rtol``."""

    max_abs_error: float
    ref_scale: float  # max |ref|
    rel_error: float  # max_abs_error / ref_scale (or max_abs_error when ref == 0)
    worst_index: tuple
    rtol: float

    @property
    def ok(self) -> bool:
        return bool(self.rel_error <= self.rtol)

    def __str__(self) -> str:
        return (
            f"max abs error {self.max_abs_error:.3e}, relative error {self.rel_error:.3e} "
            f"(rtol {self.rtol:.1e}, max|ref| {self.ref_scale:.3e}), worst index {self.worst_index}"
        )


def compare(out, ref, *, rtol: float | None = None, dtype=None) -> Comparison:
    """Normwise comparison of ``out`` against ``ref``.

    ``rtol`` defaults to the policy for ``dtype``, which defaults to the dtype of ``out``.
    Non-finite values in ``out`` where ``ref`` is finite count as an infinite error.
    """
    o = _as_float64(out, "out")
    r = _as_float64(ref, "ref")
    if o.shape != r.shape:
        raise ValueError(f"out and ref differ in shape: out {o.shape}, ref {r.shape}")
    if rtol is None:
        rtol = rtol_for(dtype if dtype is not None else getattr(out, "dtype", np.float64))
    elif not (isinstance(rtol, (int, float, np.floating, np.integer)) and np.isfinite(rtol) and rtol >= 0):
        raise ValueError(f"rtol must be a finite number >= 0; got {rtol!r}")
    if o.size == 0:
        return Comparison(0.0, 0.0, 0.0, (), float(rtol))
    if not np.all(np.isfinite(r)):
        raise ValueError("ref contains NaN or inf; a reference must be finite")
    diff = np.abs(o - r)
    diff = np.where(np.isfinite(diff), diff, np.inf)
    flat = int(np.argmax(diff))
    worst = tuple(int(i) for i in np.unravel_index(flat, diff.shape))
    max_abs = float(diff.reshape(-1)[flat])
    scale = float(np.max(np.abs(r)))
    rel = max_abs / scale if scale > 0 else max_abs
    return Comparison(max_abs, scale, rel, worst, float(rtol))


def assert_close(out, ref, *, rtol: float | None = None, dtype=None, name: str = "") -> Comparison:
    """Raise ``AssertionError`` unless ``out`` matches ``ref`` under the policy; return the comparison."""
    c = compare(out, ref, rtol=rtol, dtype=dtype)
    if not c.ok:
        label = f"{name}: " if name else ""
        raise AssertionError(f"{label}out does not match ref: {c}")
    return c
