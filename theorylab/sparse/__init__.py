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
* content-based selection (:mod:`theorylab.sparse.content`, #17 / #5): Routing Transformer
  (:func:`routing_centroids`, :func:`routing_assign`, :func:`routing_clusters`,
  :func:`routing_mask`, :func:`routing_row_counts`, :func:`routing_attention`) and MoBA
  (:func:`moba_scores`, :func:`moba_select`, :func:`moba_mask`, :func:`moba_attention`);
  :class:`ExplicitPattern` to attend over any causal mask.
* connectivity (:mod:`theorylab.sparse.connectivity`): reach within p hops, receptive fields.

One anatomy per family: ``<family>.py`` (statement, inputs, reference, public functions),
``_<family>_numba.py``, ``_<family>_torch.py``, ``<family>_claims.py`` (checks, controls,
proofs): patterns (+ patterns_counts, the exact counters; _patterns_validate, index and
memory checks) / patterns_claims (counters = enumeration) and patterns_exponent_claims
(nnz laws), sparse_attention / _sparse_attention_numba /
_sparse_attention_torch / sparse_attention_claims, connectivity / connectivity_claims,
content / content_claims.
"""

from .sparse_attention import attention, attention_ref, make_inputs
from .content import (
    ExplicitPattern,
    moba_attention,
    moba_mask,
    moba_scores,
    moba_select,
    routing_assign,
    routing_attention,
    routing_centroids,
    routing_clusters,
    routing_mask,
    routing_row_counts,
)
from .patterns import (
    BigBird,
    Fixed,
    OffsetPattern,
    Pattern,
    SlidingWindow,
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
    "SlidingWindow",
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
    "routing_centroids",
    "routing_assign",
    "routing_clusters",
    "routing_mask",
    "routing_row_counts",
    "routing_attention",
    "moba_scores",
    "moba_select",
    "moba_mask",
    "moba_attention",
]
from . import patterns_claims as _patterns_claims  # noqa: F401,E402  (registers the closed-form counting claim)
from . import patterns_exponent_claims as _patterns_exponent_claims  # noqa: F401,E402  (registers the exponent claims)
from . import sparse_attention_claims as _sparse_attention_claims  # noqa: F401,E402  (registers the identity claims)
from . import connectivity_claims as _connectivity_claims  # noqa: F401,E402  (registers the connectivity claims)
from . import content_claims as _content_claims  # noqa: F401,E402  (registers the routing and MoBA claims)
