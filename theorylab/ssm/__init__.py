"""State-space models and their attention forms.

Public API (see each module's docstring for the claim it encodes):

* :func:`selective_scan`, :func:`selective_attention_matrix` -- #93/#6: a selective SSM
  layer is causal, data-dependent attention.
* :func:`ssd`, :func:`ssd_matrix` -- state space duality: a scalar-decay SSM is masked
  linear attention; recurrence = chunked = M X.
* :mod:`implicit_attention` -- #6: Mamba, Griffin and RWKV layers as y = Ĥ(x) v.
* :mod:`dsf` -- #49: one recurrence h_t = Λ_t h_{t-1} + B_t u_t for attention and SSMs.
* :func:`hippo_legs`, :func:`s4_kernel_power` / :func:`s4_kernel_dplr` / :func:`s4_kernel_recurrent`,
  :func:`s4_convolve`, :func:`s4_recurrence` -- #44 S4: NPLR HiPPO, the kernel three ways.
* :func:`linear_attention`, :func:`cottention`, :func:`gateloop`, :func:`aft_simple`, :func:`hla2` --
  the linear-attention family (#74, #80, #119, #14) as RNNs.

One array contract for all of them (:mod:`theorylab.ssm._contract`, pinned by
tests/ssm/test_contract.py): numpy in -> numpy out of the input dtype, torch in -> torch
out on the input's device and dtype; a tensor that requires grad is refused off the
``"torch"`` backend; numpy arrays of any strides are accepted; float16/bfloat16 tensors are
computed in float32 on every torch path; a bad argument is a ValueError/TypeError naming it.
"""

from .selective import (
    make_inputs,
    scan_combine,
    selective_attention_matrix,
    selective_attention_matrix_ref,
    selective_scan,
    selective_scan_ref,
)
from . import selective_claims as _selective_claims  # noqa: F401  (registers the selective-scan claim)
from .duality import ssd, ssd_matrix
from . import duality_claims as _duality_claims  # noqa: F401  (registers the SSD claims)
from . import implicit_attention  # noqa: F401  (#6: whole layers as implicit attention)
from . import implicit_attention_claims as _implicit_attention_claims  # noqa: F401  (registers its claim)
from . import dsf  # noqa: F401  (#49: the dynamical systems framework)
from . import dsf_claims as _dsf_claims  # noqa: F401  (registers its claim)
from .s4 import (
    discretize_bilinear,
    hippo_dplr,
    hippo_legs,
    make_s4_inputs,
    s4_convolve,
    s4_kernel_dplr,
    s4_kernel_power,
    s4_kernel_recurrent,
    s4_recurrence,
)
from . import s4_claims as _s4_claims  # noqa: F401  (registers the S4 claims)
from .linear_forms import cottention, linear_attention, make_linear_attention_inputs
from .gated_linear import aft_simple, gateloop, make_gateloop_inputs
from .hla import hla2
from . import linear_forms_claims as _linear_forms_claims  # noqa: F401  (registers the linear-attention and Cottention claims)
from . import gated_linear_claims as _gated_linear_claims  # noqa: F401  (registers the GateLoop and AFT claims)
from . import hla_claims as _hla_claims  # noqa: F401  (registers the HLA claim)
from . import recurrent_state_claims as _recurrent_state_claims  # noqa: F401  (registers the decoding-memory claim)

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
    "hippo_legs",
    "hippo_dplr",
    "discretize_bilinear",
    "s4_kernel_power",
    "s4_kernel_dplr",
    "s4_kernel_recurrent",
    "s4_convolve",
    "s4_recurrence",
    "make_s4_inputs",
    "linear_attention",
    "cottention",
    "gateloop",
    "aft_simple",
    "hla2",
    "make_linear_attention_inputs",
    "make_gateloop_inputs",
]
