"""DSF (#49): the recurrence, its matrix, and the mappings of linear attention and S6."""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from theorylab.claims import get, run_claim
from theorylab.ssm import make_inputs, selective_attention_matrix_ref, selective_scan_ref
from theorylab.ssm.dsf import (
    dsf_apply,
    dsf_matrix,
    dsf_recurrence,
    linear_attention_ref,
    linear_attention_to_dsf,
    selective_ssm_to_dsf,
)
from theorylab.tolerances import assert_close

sizes = st.fixed_dictionaries({"batch": st.integers(1, 2), "length": st.integers(1, 9),
                               "channels": st.sampled_from([1, 2, 3, 5]), "state": st.sampled_from([1, 2, 3])})


@given(sz=sizes, seed=st.integers(0, 2**32 - 1))
@example(sz=dict(batch=1, length=1, channels=1, state=1), seed=0)
def test_selective_ssm_in_dsf(sz, seed):
    p = make_inputs(np.random.default_rng(seed), **sz)
    ref, _ = selective_scan_ref(p["x"], p["delta"], p["A"], p["B"], p["C"])
    Lam, B, C, u = selective_ssm_to_dsf(p["x"], p["delta"], p["A"], p["B"], p["C"])
    assert_close(dsf_recurrence(Lam, B, C, u), ref, dtype=np.float64)
    Phi = dsf_matrix(Lam, B, C)
    assert_close(dsf_apply(Phi, u), ref, dtype=np.float64)
    # Φ[t, s] is diagonal over channels with the hidden attention matrix on the diagonal
    M = selective_attention_matrix_ref(p["delta"], p["A"], p["B"], p["C"])
    assert_close(np.einsum("btscc->bcts", Phi), M, dtype=np.float64)
    off = Phi * (1 - np.eye(sz["channels"]))
    assert np.all(off == 0)


@given(seed=st.integers(0, 2**32 - 1), L=st.integers(1, 9), dk=st.sampled_from([1, 2, 3]), dv=st.sampled_from([1, 2, 5]))
def test_linear_attention_in_dsf(seed, L, dk, dv):
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((2, 2, L, dk))
    v = rng.standard_normal((2, L, dv))
    ref = linear_attention_ref(q, k, v)
    Lam, B, C, u = linear_attention_to_dsf(q, k, v)
    assert_close(dsf_recurrence(Lam, B, C, u), ref, dtype=np.float64)
    Phi = dsf_matrix(Lam, B, C)
    assert_close(dsf_apply(Phi, u), ref, dtype=np.float64)
    expected = np.tril(np.einsum("btd,bsd->bts", q, k))[..., None, None] * np.eye(dv)
    assert_close(Phi, expected, dtype=np.float64)


def test_full_transition_matrices(rng):
    # a rotation-like full Λ_t: the recurrence and the matrix form still agree
    b, L, N, d = 1, 6, 3, 2
    Lam = rng.standard_normal((b, L, N, N)) * 0.4
    B = rng.standard_normal((b, L, N, d))
    C = rng.standard_normal((b, L, 4, N))
    u = rng.standard_normal((b, L, d))
    assert_close(dsf_apply(dsf_matrix(Lam, B, C), u), dsf_recurrence(Lam, B, C, u), dtype=np.float64)


def test_claim_holds_and_control_is_rejected():
    r = run_claim(get("ssm.dsf-equal-matrices-equal-outputs"), samples=5, seed=11)
    assert r.holds and r.negative_control_rejected


def test_bad_input(rng):
    Lam, B, C, u = linear_attention_to_dsf(*rng.standard_normal((3, 1, 4, 2)))
    with pytest.raises(ValueError, match="Lambda must have shape"):
        dsf_recurrence(Lam[:, :3], B, C, u)
    with pytest.raises(ValueError, match="u must have shape"):
        dsf_recurrence(Lam, B, C, u[..., :1])
    with pytest.raises(ValueError, match="C must have shape"):
        dsf_matrix(Lam, B, C[..., :1])
    with pytest.raises(ValueError, match="B must be non-empty and finite"):
        dsf_matrix(Lam, np.full_like(B, np.nan), C)
    with pytest.raises(TypeError, match="u must be a numpy.ndarray"):
        dsf_recurrence(Lam, B, C, u.tolist())
