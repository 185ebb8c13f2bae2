"""Building blocks that turn measurements into :class:`~theorylab.claims.Verdict` objects.

* :func:`check_backends`    -- every backend of a public function a user can call here
  (``"ref"``, ``"numba"``, ``"torch"`` on CPU, and ``"torch:cuda"`` when CUDA is present);
* :func:`call_backend`      -- call a public function on one of those, as a user would;
* :func:`identity_verdict`  -- normwise error of ``out`` vs ``ref`` under the tolerance policy;
* :func:`backends_verdict`  -- one identity verdict per backend, combined (holds iff all hold);
* :func:`fit_loglog_slope`  -- least-squares exponent ``p`` of ``y ~ c * n**p``;
* :func:`slope_verdict`     -- a fitted exponent within ``expected +- band``;
* :func:`mean_interval`     -- mean and normal-approximation interval over seeds, for
  statistical claims.
"""

from __future__ import annotations

import numpy as np

from .claims import Verdict
from .tolerances import compare

__all__ = ["check_backends", "call_backend", "backends_verdict", "identity_verdict", "fit_loglog_slope", "slope_verdict", "mean_interval", "crossover_length"]


def check_backends(valid=("ref", "numba", "torch")) -> list[str]:
    """The backends of ``valid`` that a user can call on this machine, in a fixed order:
    ``ref``, ``numba`` and ``torch`` when their package is installed, then ``torch:cuda``
    (torch on a CUDA device) when ``"torch"`` is valid and CUDA is available."""
    from .backends import numba_available, torch_available

    have = {"ref": True, "numba": numba_available(), "torch": torch_available()}
    out = [b for b in valid if have.get(b, True)]
    if "torch" in out:
        import torch

        if torch.cuda.is_available():
            out.append("torch:cuda")
    return out


def _to_device(x, device):
    import torch

    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x)).to(device)
    return x


def _to_numpy64(y):
    """numpy float64 (complex128 for complex outputs), elementwise through tuples."""
    if isinstance(y, tuple):
        return tuple(_to_numpy64(v) for v in y)
    if hasattr(y, "detach"):
        y = y.detach().to("cpu")
        if y.is_complex():
            return y.numpy().astype(np.complex128)
        return y.double().numpy()
    if isinstance(y, np.ndarray):
        return y.astype(np.complex128 if np.iscomplexobj(y) else np.float64)
    return y


def call_backend(fn, backend: str, *args, **kw):
    """``fn(*args, backend=backend, **kw)`` as a user calls it, returned as numpy float64.

    ``"torch:cuda"`` moves every numpy argument to a CUDA tensor and calls ``backend="torch"``;
    the other names pass numpy arrays straight through (numpy in, numpy out).  Complex
    outputs come back as complex128."""
    if backend == "torch:cuda":
        args = tuple(_to_device(a, "cuda") for a in args)
        kw = {k: _to_device(v, "cuda") for k, v in kw.items()}
        backend = "torch"
    return _to_numpy64(fn(*args, backend=backend, **kw))


def backends_verdict(ref, outs: dict, *, dtype=None, rtol=None, sizes=None, what="") -> Verdict:
    """``{backend: output}`` each against ``ref``: one verdict per backend, combined by
    :meth:`Verdict.combine` (holds iff every backend holds)."""
    parts = {b: identity_verdict(o, ref, dtype=dtype, rtol=rtol, backend=b, sizes=sizes, what=f"{what} [{b}]")
             for b, o in outs.items()}
    return Verdict.combine(parts, sizes=sizes)


def identity_verdict(out, ref, *, dtype=None, rtol=None, backend="ref", sizes=None, what="") -> Verdict:
    """Verdict of an exact identity: ``out`` equals ``ref`` within the policy rtol of ``dtype``."""
    c = compare(out, ref, rtol=rtol, dtype=dtype)
    detail = f"{what}: {c}" if what else str(c)
    return Verdict.from_error(c.rel_error, c.rtol, backend=backend, sizes=dict(sizes or {}), detail=detail)


def fit_loglog_slope(ns, ys) -> float:
    """Exponent ``p`` of the least-squares fit ``log y = p log n + c``."""
    n = np.asarray(ns, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if n.shape != y.shape or n.ndim != 1 or n.size < 2:
        raise ValueError(f"need two 1-d sequences of equal length >= 2; got shapes {n.shape} and {y.shape}")
    if np.any(n <= 0) or np.any(y <= 0):
        raise ValueError("log-log fit needs positive sizes and values")
    p, _ = np.polyfit(np.log(n), np.log(y), 1)
    return float(p)


def slope_verdict(ns, ys, *, expected: float, band: float, backend="ref", what="") -> Verdict:
    """Verdict of a complexity law: fitted log-log slope within ``expected +- band``."""
    p = fit_loglog_slope(ns, ys)
    sizes = {"n_min": int(min(ns)), "n_max": int(max(ns)), "points": len(ns)}
    detail = f"{what + ': ' if what else ''}fitted exponent {p:.3f}, predicted {expected} +- {band}"
    return Verdict.from_error(abs(p - expected), band, backend=backend, sizes=sizes, detail=detail)


def crossover_length(ns, t_a, t_b) -> tuple[float, str]:
    """Length where cost curves ``t_a(n)`` and ``t_b(n)`` cross, and how it was found.

    ``"measured"``: log-log interpolation between the two sizes where the sign of
    log(t_a/t_b) changes (the first change); ``"extrapolated"``: no change in the measured
    range, so each curve gets a power-law fit c n^p and the fits are solved for equality;
    ``"none: same growth"`` (length ``inf``) when the fitted exponents differ by < 0.25.  Curves may be shorter than ``ns``; the
    common prefix is used.
    """
    m = min(len(t_a), len(t_b))
    n = np.asarray(ns[:m], dtype=np.float64)
    la, lb = np.log(np.asarray(t_a[:m], dtype=np.float64)), np.log(np.asarray(t_b[:m], dtype=np.float64))
    if m < 2:
        raise ValueError(f"need two common sizes; got {m}")
    d = la - lb
    for i in range(m):
        if d[i] == 0:
            return float(n[i]), "measured"
        if i + 1 < m and d[i] * d[i + 1] < 0:
            x0, x1 = np.log(n[i]), np.log(n[i + 1])
            return float(np.exp(x0 + (x1 - x0) * d[i] / (d[i] - d[i + 1]))), "measured"
    pa, ca = np.polyfit(np.log(n), la, 1)
    pb, cb = np.polyfit(np.log(n), lb, 1)
    if abs(pa - pb) < 0.25:  # same growth: a constant ratio, no crossover to speak of
        return float("inf"), "none: same growth"
    return float(np.exp((cb - ca) / (pa - pb))), "extrapolated"


def mean_interval(values, z: float = 2.576) -> tuple[float, float, float]:
    """Mean and the ``z``-sigma normal interval (default 99%) of ``values`` across seeds."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 2:
        raise ValueError(f"need a 1-d sample of size >= 2; got shape {v.shape}")
    m = float(v.mean())
    half = z * float(v.std(ddof=1)) / np.sqrt(v.size)
    return m, m - half, m + half
