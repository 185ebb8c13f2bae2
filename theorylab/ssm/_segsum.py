"""Stable segment sums: the log of a product of decays over a segment, for every segment.

``segsum(x)[..., t, s] = sum_{k=s+1..t} x[..., k]`` for ``s <= t`` and ``-inf`` above the
diagonal, so that ``exp(segsum(x))`` is the lower-triangular decay matrix
``L[t, s] = prod_{k=s+1..t} exp(x_k)`` with ``L[t, t] = 1``.

Two ways to compute it:

* unstable: ``cs[t] - cs[s]`` with ``cs = cumsum(x)`` -- one cumulative sum, but when
  ``|cs|`` is large (long sequences, strong decay) the difference of two large numbers
  loses all digits (float32 at ``|cs| ~ 1e4`` has a spacing of ~1e-3);
* stable (used here): mask ``x`` to the entries ``k > s`` of each column ``s`` and take
  the cumulative sum down the column -- each entry is a sum of exactly the terms in
  its own segment, with no cancellation.
"""

from __future__ import annotations

import numpy as np


def segsum(x: np.ndarray) -> np.ndarray:
    """Stable segment sums of ``x`` (..., T) -> (..., T, T); ``-inf`` above the diagonal."""
    T = x.shape[-1]
    strict = np.tril(np.ones((T, T), dtype=bool), -1)  # [k, s]: k > s
    xx = np.where(strict, x[..., :, None], 0.0)  # (..., T, T): [k, s] = x_k if k > s
    out = np.cumsum(xx, axis=-2)  # [t, s] = sum_{s < k <= t} x_k
    lower = np.tril(np.ones((T, T), dtype=bool))
    return np.where(lower, out, -np.inf)


def segsum_torch(x):
    """Torch twin of :func:`segsum` (differentiable; masks with ``where``, no in-place ops)."""
    import torch

    T = x.shape[-1]
    strict = torch.ones(T, T, dtype=torch.bool, device=x.device).tril(-1)
    xx = torch.where(strict, x[..., :, None], torch.zeros((), dtype=x.dtype, device=x.device))
    out = torch.cumsum(xx, dim=-2)
    lower = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
    return torch.where(lower, out, torch.full((), -torch.inf, dtype=x.dtype, device=x.device))
