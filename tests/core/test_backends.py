import numpy as np
import pytest
import torch

from theorylab.backends import like_input, numba_available, resolve_backend, to_numpy


def test_auto_rule():
    assert resolve_backend("auto", (torch.zeros(1),)) == "torch"
    assert resolve_backend("auto", (np.zeros(1),)) == ("numba" if numba_available() else "ref")
    assert resolve_backend("auto", (np.zeros(1),), valid=("ref", "torch")) == "ref"


def test_unknown_and_unavailable(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown backend 'jax'; valid backends: \['auto', 'ref', 'numba', 'torch'\]"):
        resolve_backend("jax", ())
    with pytest.raises(ValueError, match="unknown backend 'numba'"):
        resolve_backend("numba", (), valid=("ref", "torch"))
    import theorylab.backends as B

    monkeypatch.setitem(B._AVAILABLE, "numba", lambda: False)
    with pytest.raises(ValueError, match="'numba' is not available"):
        resolve_backend("numba", ())
    # and "auto" does not silently pick it either
    monkeypatch.setattr(B, "numba_available", lambda: False)
    assert resolve_backend("auto", (np.zeros(1),)) == "ref"


def test_containers_follow_input():
    t = torch.ones(2, dtype=torch.float32)
    back = like_input(np.array([1.0, 2.0]), t)
    assert isinstance(back, torch.Tensor) and back.dtype == torch.float32
    assert isinstance(like_input(torch.ones(2), np.zeros(2)), np.ndarray)
    assert to_numpy(None) is None and to_numpy(torch.ones(2, dtype=torch.bfloat16)).dtype == np.float32
