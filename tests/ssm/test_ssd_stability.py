"""Long-sequence float32 stability of SSD (claim ``ssm.ssd-float32-long``).

float32 at length 65,536 with log_a anywhere in [-30, 0] (stretches of no, weak, moderate
and strong decay) must stay finite and within √L·ε₃₂ (3.1e-5) normwise of the float64
recurrence run on the same (float32-rounded) inputs; the unstable form (decays as
differences of one float32 cumulative sum) must fail that tolerance by magnitude, with a
finite output, at the claim's quick length and at the full length.
"""

import numpy as np
import pytest
import torch

from theorylab.backends import numba_available
from theorylab.claims import get, run_claim
from theorylab.ssm import ssd
from theorylab.ssm.duality import ssd_ref
from theorylab.ssm.duality_claims import long_inputs, naive_cumsum_ssd, stability_rtol
from theorylab.tolerances import assert_close, compare

ARGS = ("X", "log_a", "B", "C")
FAST = [pytest.param("numba", marks=pytest.mark.skipif(not numba_available(), reason="numba is not installed")), "torch"]


def _case(size, seed):
    p = long_inputs(np.random.default_rng(seed), size)  # float32
    ref = ssd_ref(*(p[k].astype(np.float64) for k in ARGS))  # same values, upcast
    return p, ref


@pytest.fixture(scope="module")
def long_case():
    p, ref = _case("full", 65536)  # length 65,536
    assert p["log_a"].min() >= -30.0 and p["log_a"].max() <= 0.0 and p["X"].shape[1] == 65536
    return p, ref


@pytest.fixture(scope="module")
def quick_case():
    return _case("quick", 8192)  # the claim's quick length


def test_tolerance_is_sqrt_length_eps32():
    eps = float(np.finfo(np.float32).eps)
    assert stability_rtol(8192) == pytest.approx(np.sqrt(8192) * eps)
    assert 1e-5 < stability_rtol(8192) < 1.1e-5 and 3e-5 < stability_rtol(65536) < 3.1e-5


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("chunk_size", [64, 257])
def test_float32_long_sequence_is_finite_and_accurate(long_case, backend, chunk_size):
    p, ref = long_case
    out = ssd(**p, chunk_size=chunk_size, backend=backend)
    assert out.dtype == np.float32
    assert np.isfinite(out).all()
    assert_close(out, ref, rtol=stability_rtol(65536), name=f"float32 {backend} Q={chunk_size}, length 65,536")


def test_float32_long_sequence_torch_tensors(long_case):
    p, ref = long_case
    out = ssd(**{k: torch.from_numpy(v) for k, v in p.items()})
    assert torch.isfinite(out).all()
    assert_close(out, ref, rtol=stability_rtol(65536), name="float32 torch tensors, length 65,536")


@pytest.mark.parametrize("case,length", [("quick_case", 8192), ("long_case", 65536)])
def test_unstable_difference_form_fails_by_magnitude(request, case, length):
    """The control: exp(cs_t - cs_s) of one float32 cumsum is finite, but its error exceeds
    √L·ε₃₂ many times over, at the quick length already."""
    p, ref = request.getfixturevalue(case)
    out = naive_cumsum_ssd(**p, mode="difference")
    assert np.isfinite(out).all()
    c = compare(out, ref, rtol=stability_rtol(length))
    assert c.rel_error > 10 * stability_rtol(length), c


def test_naive_exp_ratio_segment_sums_give_nan(quick_case):
    """The other unstable form, exp(cs_t) / exp(cs_s): 0/0 once cs < -88 (why the claim's
    control is the finite difference form instead)."""
    p, _ = quick_case
    with np.errstate(all="ignore"):
        out = naive_cumsum_ssd(**p, mode="ratio")
    assert not np.isfinite(out).all()


def test_stability_claim_quick():
    report = run_claim(get("ssm.ssd-float32-long"), samples=1, seed=3)
    assert report.holds, report.detail
    assert {"torch"} | ({"numba"} if numba_available() else set()) <= set(report.backends)
    assert report.control_status == "rejected" and report.control_margin > 10  # finite, by magnitude
