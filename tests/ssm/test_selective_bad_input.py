"""Bad input to the selective-scan API: a clear ValueError/TypeError naming the argument.

Hypothesis picks an argument and a corruption; the call must raise (never crash, hang or
return NaN), and the message must name the argument.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from theorylab.ssm import make_inputs, selective_attention_matrix, selective_scan
from theorylab.testing import CORRUPTIONS, corrupt

KEYS = ("x", "delta", "A", "B", "C", "D")
MATRIX_KEYS = ("delta", "A", "B", "C")


@given(key=st.sampled_from(KEYS), how=st.sampled_from(CORRUPTIONS), seed=st.integers(0, 1000),
       backend=st.sampled_from(["auto", "ref", "numba", "torch"]))
def test_scan_rejects_bad_input_naming_the_argument(key, how, seed, backend):
    p = make_inputs(np.random.default_rng(seed), batch=2, length=3, channels=5, state=2)
    bad = dict(p, **{key: corrupt(p[key], how)})
    with pytest.raises((ValueError, TypeError)) as err:
        selective_scan(*[bad[k] for k in KEYS], backend=backend)
    msg = str(err.value)
    assert key in msg or ("mix" in msg and how == "tensor") or "dtype" in msg, msg


@given(key=st.sampled_from(MATRIX_KEYS), how=st.sampled_from(CORRUPTIONS), seed=st.integers(0, 1000),
       backend=st.sampled_from(["auto", "ref", "numba", "torch"]))
def test_matrix_rejects_bad_input_naming_the_argument(key, how, seed, backend):
    p = make_inputs(np.random.default_rng(seed), batch=2, length=3, channels=5, state=2)
    bad = dict(p, **{key: corrupt(p[key], how)})
    with pytest.raises((ValueError, TypeError)) as err:
        selective_attention_matrix(*[bad[k] for k in MATRIX_KEYS], backend=backend)
    msg = str(err.value)
    assert key in msg or ("mix" in msg and how == "tensor") or "dtype" in msg, msg


@pytest.mark.parametrize(
    "key,value,word",
    [("delta", -0.1, "delta must be >= 0"), ("A", 0.5, "A must be <= 0")],
)
def test_domain_errors(key, value, word, rng):
    p = make_inputs(rng, length=4)
    p[key] = p[key].copy()
    p[key].reshape(-1)[1] = value
    with pytest.raises(ValueError, match=word):
        selective_scan(*[p[k] for k in KEYS])


def test_initial_state_shape_and_backend_names(rng):
    p = make_inputs(rng, batch=2, length=4, channels=3, state=2)
    args = [p[k] for k in KEYS]
    with pytest.raises(ValueError, match="initial_state must have shape"):
        selective_scan(*args, initial_state=np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="unknown backend 'cuda'.*'ref', 'numba', 'torch'"):
        selective_scan(*args, backend="cuda")
    with pytest.raises(TypeError, match="backend must be a string"):
        selective_scan(*args, backend=None)
    with pytest.raises(TypeError, match="unexpected keyword"):
        selective_scan(*args, chunk=4)  # a misspelled option is an error, never swallowed


def test_make_inputs_rejects_bad_sizes():
    with pytest.raises(ValueError, match="length must be >= 1"):
        make_inputs(np.random.default_rng(0), length=0)
    with pytest.raises(TypeError, match="length must be an integer"):
        make_inputs(np.random.default_rng(0), length=2.7)  # once truncated to 2 silently
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        make_inputs(0)
