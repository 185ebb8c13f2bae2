"""Long-sequence float32 stability of SSD (claim ``ssm.ssd-float32-long``).

float32 at length 65,536 with log_a anywhere in [-30, 0] (stretches of no, weak, moderate
and strong decay) must stay finite and within 1e-3 normwise of the float64 recurrence
run on the same (float32-rounded) inputs.
"""

import numpy as np
import pytest
import torch

from theorylab.backends import numba_available
from theorylab.claims import get, run_claim
from theorylab.ssm import ssd
from theorylab.ssm.duality import ssd_ref
from theorylab.ssm.duality_claims import STABILITY_RTOL, long_inputs, naive_cumsum_ssd
from theorylab.tolerances import assert_close, compare


@pytest.fixture(scope="module")
def long_case():
    p = long_inputs(np.random.default_rng(65536), "full")  # length 65,536, float32
    assert p["log_a"].min() >= -30.0 and p["log_a"].max() <= 0.0 and p["X"].shape[1] == 65536
    ref = ssd_ref(*(p[k].astype(np.float64) for k in ("X", "log_a", "B", "C")))  # same values, upcast
    return p, ref


@pytest.mark.parametrize("backend", [
    pytest.param("numba", marks=pytest.mark.skipif(not numba_available(), reason="numba is not installed")),
    "torch",
])
@pytest.mark.parametrize("chunk_size", [64, 257])
def test_float32_long_sequence_is_finite_and_accurate(long_case, backend, chunk_size):
    p, ref = long_case
    out = ssd(**p, chunk_size=chunk_size, backend=backend)
    assert out.dtype == np.float32
    assert np.isfinite(out).all()
    assert_close(out, ref, rtol=STABILITY_RTOL, name=f"float32 {backend} Q={chunk_size}, length 65,536")


def test_float32_long_sequence_torch_tensors(long_case):
    p, ref = long_case
    out = ssd(**{k: torch.from_numpy(v) for k, v in p.items()})
    assert torch.isfinite(out).all()
    assert_close(out, ref, rtol=STABILITY_RTOL, name="float32 torch tensors, length 65,536")


def test_naive_exp_ratio_segment_sums_break(long_case):
    """The control: decays as exp(cs_t) / exp(cs_s) of one float32 cumsum give NaN."""
    p, ref = long_case
    out = naive_cumsum_ssd(**p, mode="ratio")
    assert not np.isfinite(out).all()
    assert not compare(out, ref, rtol=STABILITY_RTOL).ok


def test_stability_claim_quick():
    report = run_claim(get("ssm.ssd-float32-long"), samples=1, seed=3)
    assert report.holds, report.detail
    assert report.negative_control_rejected
