"""State-space models and their attention forms.

Public API (see each module's docstring for the claim it encodes):

* :func:`selective_scan`, :func:`selective_attention_matrix` -- #93/#6: a selective SSM
  layer is causal, data-dependent attention.
* :func:`ssd`, :func:`ssd_matrix` -- state space duality: a scalar-decay SSM is masked
  linear attention; recurrence = chunked = M X.
* :mod:`implicit_attention` -- #6: Mamba, Griffin and RWKV layers as y = Ĥ(x) v.
* :mod:`dsf` -- #49: one recurrence h_t = Λ_t h_{t-1} + B_t u_t for attention and SSMs.
"""

from .selective import (
    make_inputs,
    scan_combine,
    selective_attention_matrix,
    selective_attention_matrix_ref,
    selective_scan,
    selective_scan_ref,
)
from . import hidden_attention as _hidden_attention  # noqa: F401  (registers the claim)
from .ssd import ssd, ssd_matrix
from . import ssd_claims as _ssd_claims  # noqa: F401  (registers the SSD claims)
from . import implicit_attention  # noqa: F401  (#6: whole layers as implicit attention; registers its claim)
from . import dsf  # noqa: F401  (#49: the dynamical systems framework; registers its claim)

__all__ = [
    "selective_scan",
    "selective_attention_matrix",
    "selective_scan_ref",
    "selective_attention_matrix_ref",
    "scan_combine",
    "make_inputs",
    "ssd",
    "ssd_matrix",
    "implicit_attention",
    "dsf",
]
