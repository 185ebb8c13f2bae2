"""Sparse attention patterns, their exact costs, connectivity and fast attention.

Public API (each module's docstring states the claim it encodes):

* patterns (:mod:`theorylab.sparse.patterns`, #10 / #53 / #24): :func:`strided`,
  :func:`fixed`, :func:`sliding_window`, :func:`dilated_window`, :func:`power_attention`,
  :func:`window_global`, :func:`bigbird`, :func:`full_causal` -- objects with ``mask(n)``,
  exact ``nnz(n)``, ``row(i, n)``, ``row_counts(n)``, ``csr(n)``, ``density(n)`` and
  ``block_density(n, block)``.
* attention (:mod:`theorylab.sparse.sparse_attention`, #10): :func:`attention` -- softmax over a
  pattern's allowed keys; backends ``"ref"`` (dense masked, float64), ``"numba"``
  (compressed rows), ``"torch"`` (fold and merge for strided / fixed); :func:`attention_ref`,
  :func:`make_inputs`.
* content-based masks (:mod:`theorylab.sparse.content`, #17 / #5): :func:`routing_mask`,
  :func:`moba_mask`, and :class:`ExplicitPattern` to attend over any causal mask.
* claims: :mod:`~theorylab.sparse.counting` (nnz exponents and closed forms),
  :mod:`~theorylab.sparse.equivalence` (every path = dense masked softmax),
  :mod:`~theorylab.sparse.connectivity` (two hops, diameter, receptive field),
  :mod:`~theorylab.sparse.content` (one cluster / all blocks = full attention).
"""

from .sparse_attention import attention, attention_ref, make_inputs
from .content import ExplicitPattern, moba_mask, routing_mask
from .patterns import (
    BigBird,
    Fixed,
    OffsetPattern,
    Pattern,
    Strided,
    WindowGlobal,
    bigbird,
    dilated_window,
    fixed,
    full_causal,
    power_attention,
    sliding_window,
    strided,
    window_global,
)

__all__ = [
    "Pattern",
    "OffsetPattern",
    "Strided",
    "Fixed",
    "WindowGlobal",
    "BigBird",
    "strided",
    "fixed",
    "sliding_window",
    "dilated_window",
    "power_attention",
    "window_global",
    "bigbird",
    "full_causal",
    "attention",
    "attention_ref",
    "make_inputs",
    "ExplicitPattern",
    "routing_mask",
    "moba_mask",
]
from . import counting as _counting  # noqa: F401,E402  (registers the complexity claims)
from . import equivalence as _equivalence  # noqa: F401,E402  (registers the identity claims)
from . import connectivity as _connectivity  # noqa: F401,E402  (registers the connectivity claims)
