"""Contracts the claim checks lean on: what make_inputs draws, which kernel a backend runs and
in which precision.  Each test here was written for a single-line change that ``theorylab
verify`` and the other tests let through (mutation testing, docs/mutation.md)."""

import numpy as np
import pytest
import torch

import theorylab.ssm._selective_numba as SN
from theorylab.ssm import make_inputs, selective_attention_matrix, selective_scan
from theorylab.ssm import duality as S


def test_selective_make_inputs_defaults_and_documented_ranges():
    p = make_inputs(np.random.default_rng(0))
    assert {k: v.shape for k, v in p.items()} == {"x": (1, 8, 3), "delta": (1, 8, 3), "A": (3, 2), "B": (1, 8, 2),
                                                  "C": (1, 8, 2), "D": (3,)}
    big = make_inputs(np.random.default_rng(1), batch=4, length=500, channels=7, state=5)
    d, a = big["delta"], -big["A"]
    assert 1e-2 <= d.min() and d.max() <= 0.5 and d.max() > 0.4 and d.min() < 1.2e-2  # log-uniform [1e-2, 0.5]
    assert 0.1 <= a.min() and a.max() <= 2.0
    ext = make_inputs(np.random.default_rng(1), batch=4, length=500, channels=7, state=5, decays="extreme")
    da = ext["delta"][..., None] * ext["A"][None, None]
    assert da.min() < -1e3 and da.max() > -1e-5  # decays from 0 in any float format to almost 1
    with pytest.raises(ValueError, match="length must be >= 1"):
        make_inputs(np.random.default_rng(0), length=0)


def test_numba_runs_float32_inputs_in_float32(monkeypatch):
    seen = []
    real = SN.selective_scan_numba

    def spy(*xs):
        seen.append({str(x.dtype) for x in xs if x is not None})
        return real(*xs)

    monkeypatch.setattr(SN, "selective_scan_numba", spy)
    p = make_inputs(np.random.default_rng(0), length=5, dtype=np.float32)
    y = selective_scan(**p, backend="numba")
    assert seen == [{"float32"}] and y.dtype == np.float32
    seen.clear()
    selective_scan(**{k: v.astype(np.float64) for k, v in p.items()}, backend="numba")
    assert seen == [{"float64"}]


def test_selective_attention_matrix_torch_keeps_the_graph():
    p = make_inputs(np.random.default_rng(2), length=6, channels=2, state=3)
    t = {k: torch.tensor(p[k], requires_grad=True) for k in ("delta", "A", "B", "C")}
    M = selective_attention_matrix(t["delta"], t["A"], t["B"], t["C"], backend="torch")
    assert M.requires_grad
    M.sum().backward()
    assert all(v.grad is not None and torch.isfinite(v.grad).all() for v in t.values())


def test_ssd_make_inputs_scale_and_keywords():
    p = S.make_inputs(np.random.default_rng(3), batch=2, length=400, heads=3, head_dim=2, state=16)
    for name in ("B", "C"):  # standard normal scaled by state^-1/4 = 0.5
        assert abs(p[name].std() - 0.5) < 0.02, (name, p[name].std())
    assert abs(p["X"].std() - 1.0) < 0.05
    with pytest.raises(TypeError):
        S.make_inputs(np.random.default_rng(0), 2)  # sizes are keyword-only


def test_regime_log_a_visits_every_regime_in_short_stretches():
    out = S.regime_log_a(np.random.default_rng(4), (2, 4000, 2), lo=-30.0)
    assert out.max() <= 0.0 and out.min() >= -30.0
    assert (out == 0.0).mean() > 0.1  # decay-free stretches
    assert ((out < 0) & (out >= -1e-3)).mean() > 0.1  # weak
    assert ((out < -1e-3) & (out >= -1.0)).mean() > 0.05  # moderate (and part of strong)
    assert (out < -1.0).mean() > 0.1  # strong
    short = S.regime_log_a(np.random.default_rng(5), (1, 16, 1))  # length < 16: stretches of one step
    assert len(np.unique(short)) > 4
