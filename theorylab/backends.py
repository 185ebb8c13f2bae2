"""Backend resolution and numpy <-> torch conversion.

Every public computation takes ``backend=`` with one of the names its module
lists (typically ``"ref"``, ``"numba"``, ``"torch"``) or ``"auto"``.

The ``"auto"`` rule (the only one):

* any input is a ``torch.Tensor``  ->  ``"torch"`` (on the tensors' device);
* otherwise (numpy input)          ->  ``"numba"`` when numba is importable, else ``"ref"``.

An unknown name, or a backend whose package is missing, raises ``ValueError``
listing the valid choices.  There is never a silent fallback.

Gradients: only ``"torch"`` is differentiable.  A tensor that requires grad given to
another backend (which would detach it and return an output without a graph) is a
``ValueError`` that names the differentiable backend, never a silent detach.

Containers follow the input: numpy in -> numpy out; torch in -> torch out, on
the same device and with the same dtype, whatever backend computed it.
"""

from __future__ import annotations

import contextlib

import importlib.util
import sys
from functools import lru_cache

import numpy as np

__all__ = [
    "resolve_backend",
    "is_tensor",
    "any_tensor",
    "numba_available",
    "torch_available",
    "to_numpy",
    "like_input",
    "to_torch",
    "warm_torch_cpu_math",
]


@lru_cache(maxsize=None)
def numba_available() -> bool:
    return importlib.util.find_spec("numba") is not None


@lru_cache(maxsize=None)
def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def is_tensor(x) -> bool:
    """True for a ``torch.Tensor``; never imports torch itself."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def any_tensor(*xs) -> bool:
    return any(is_tensor(x) for x in xs if x is not None)


_AVAILABLE = {"numba": numba_available, "torch": torch_available}


@lru_cache(maxsize=None)
def warm_torch_cpu_math() -> None:
    """Call torch's vectorized CPU math functions once each, on one element (so on one thread).

    torch sends contiguous float32/float64 ``exp``, ``log``, ``sqrt``, ... to MKL's vector
    math library, which picks its kernel lazily at a function's first call.  When that first
    call runs on several intra-op threads at once, one thread can run a low-accuracy
    kernel on its chunk (pytorch/pytorch#188792, open; seen here as a 3e-9 error in a
    float64 ``exp`` of 16,896 elements in roughly 1 fresh process in 10).  One single-element call of each
    function settles the choice first.  Every public function taking tensors calls this
    (once per process, microseconds) before computing.
    """
    import torch

    with torch.inference_mode():
        for dtype in (torch.float32, torch.float64):
            one = torch.full((1,), 0.5, dtype=dtype)
            for fn in (torch.exp, torch.expm1, torch.log, torch.log1p, torch.sqrt, torch.rsqrt,
                       torch.sin, torch.cos, torch.tanh, torch.erf, torch.sigmoid):
                fn(one)


def _requires_grad(x) -> bool:
    return is_tensor(x) and bool(x.requires_grad)


def resolve_backend(backend, inputs=(), *, valid=("ref", "numba", "torch")) -> str:
    """Resolve ``backend`` (a name or ``"auto"``) for ``inputs`` under the module rule above.

    ``inputs`` should hold every array argument, as a sequence or as ``{name: array}`` (then
    errors name the argument): a tensor among them that requires grad is refused on any
    backend but ``"torch"`` (the differentiable one)."""
    named = dict(inputs) if isinstance(inputs, dict) else {f"array argument #{i + 1}": x for i, x in enumerate(inputs)}
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a string, one of {['auto', *valid]}; got {type(backend).__name__}")
    if backend == "auto":
        if any_tensor(*named.values()):
            backend = "torch"
        elif "numba" in valid and numba_available():
            backend = "numba"
        else:
            backend = "ref"
    if backend not in valid:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {['auto', *valid]}")
    check = _AVAILABLE.get(backend)
    if check is not None and not check():
        raise ValueError(f"backend {backend!r} is not available: the package {backend!r} is not installed")
    grads = [f"{name} (shape {tuple(x.shape)})" for name, x in named.items() if x is not None and _requires_grad(x)]
    if backend != "torch" and grads:
        fix = "use backend='torch' (differentiable) or detach the inputs" if "torch" in valid else \
            "no backend of this function is differentiable; detach the inputs"
        raise ValueError(f"input tensor {', '.join(grads)} requires grad, but backend {backend!r} would detach it "
                         f"and return an output without a graph; {fix}")
    return backend


def to_torch(x, *, device=None, dtype=None):
    """``x`` (numpy array or tensor) as a tensor; numpy arrays of any strides (negative ones
    included) are copied to a contiguous array first.  ``None`` passes through."""
    import torch

    if x is None:
        return None
    if not isinstance(x, torch.Tensor):
        x = torch.from_numpy(np.ascontiguousarray(x))
    return x.to(device=device if device is not None else x.device, dtype=dtype if dtype is not None else x.dtype)


def to_numpy(x, dtype=None) -> np.ndarray | None:
    """A numpy view/copy of ``x`` (tensor or array-like); ``None`` passes through."""
    if x is None:
        return None
    if is_tensor(x):
        x = x.detach().to("cpu")
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        x = x.numpy()
    arr = np.asarray(x)
    return arr if dtype is None else arr.astype(dtype, copy=False)


def like_input(result, template):
    """Return ``result`` in the container of ``template``: a tensor on its device/dtype, or numpy."""
    if is_tensor(template):
        import torch

        if not isinstance(result, torch.Tensor):
            result = torch.from_numpy(np.ascontiguousarray(result))
        return result.to(device=template.device, dtype=template.dtype)
    if is_tensor(result):
        return result.detach().to("cpu").numpy()
    return result


@contextlib.contextmanager
def one_torch_thread():
    """Run the block on one torch intra-op thread, restoring the caller's count afterwards.

    For training loops over tiny tensors: one thread avoids the worker pool's spin-waits
    (~5x faster on 2 cores) and fixes the order of every reduction, so the same seed gives the
    same weights whatever thread count the caller set."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
