"""Linformer (:mod:`theorylab.lowrank.linformer`): exact projections, sketches, spectrum; its claims."""

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from theorylab.claims import get, run_claim
from theorylab.lowrank.linformer import (
    linformer_attention,
    make_inputs,
    sampling_projection,
    softmax_attention,
    softmax_attention_ref,
    topk_energy,
)
from theorylab.lowrank.linformer_claims import sketch_errors
from theorylab.testing import corrupt, seeds
from theorylab.tolerances import assert_close

BACKENDS = ["ref", "torch"]
dims = st.sampled_from([1, 2, 3, 5, 7])
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("backend", BACKENDS)
@given(n=st.integers(1, 12), m=st.integers(1, 6), d=dims, dv=dims, scale=st.sampled_from([1.0, 30.0, 100.0]), seed=seeds)
@example(n=1, m=1, d=1, dv=1, scale=1.0, seed=0)
@example(n=7, m=3, d=5, dv=2, scale=100.0, seed=1)
def test_identity_and_permutation_projections_are_exact(backend, n, m, d, dv, scale, seed):
    rng = np.random.default_rng(seed)
    p = make_inputs(rng, n=n, m=m, d=d, dv=dv)
    Q, K, V = p["Q"] * scale, p["K"], p["V"]
    ref = softmax_attention_ref(Q, K, V)
    Pi = np.eye(n)[rng.permutation(n)]
    assert_close(softmax_attention(Q, K, V, backend=backend), ref, dtype=np.float64)
    assert_close(linformer_attention(Q, K, V, np.eye(n), np.eye(n), backend=backend), ref, dtype=np.float64)
    assert_close(linformer_attention(Q, K, V, Pi, Pi, backend=backend), ref, dtype=np.float64)
    idx = rng.integers(0, n, size=3)
    S = np.eye(n)[idx]
    assert_close(linformer_attention(Q, K, V, S, S, backend=backend), softmax_attention_ref(Q, K[idx], V[idx]),
                 dtype=np.float64)


def test_mismatched_projections_are_not_exact(rng):
    p = make_inputs(rng, n=5, m=2, d=3, dv=2)
    F = np.eye(5)[[1, 0, 2, 3, 4]]
    out = linformer_attention(p["Q"], p["K"], p["V"], np.eye(5), F)
    assert np.max(np.abs(out - softmax_attention_ref(p["Q"], p["K"], p["V"]))) > 1e-4


def test_torch_gradients_match_central_differences(rng):
    p = make_inputs(rng, n=5, m=2, d=3, dv=2)
    E = rng.standard_normal((3, 5)) / 3
    t = {k: torch.tensor(v, requires_grad=True) for k, v in {**p, "E": E}.items()}
    linformer_attention(t["Q"], t["K"], t["V"], t["E"], t["E"].detach()).sum().backward()
    for key in ("Q", "K", "E"):
        num = np.zeros_like(t[key].detach().numpy())
        for i in np.ndindex(num.shape):
            args = {k: v.detach().numpy().copy() for k, v in t.items()}
            f = []
            for s in (1, -1):
                a = {k: v.copy() for k, v in args.items()}
                a[key][i] += s * 1e-6
                f.append(linformer_attention(a["Q"], a["K"], a["V"], a["E"], args["E"]).sum())
            num[i] = (f[0] - f[1]) / 2e-6
        # central differences: truncation ~h² ~ 1e-12, rounding ~eps/h ~ 1e-10
        assert_close(t[key].grad.numpy(), num, rtol=1e-6, name=key)


@pytest.mark.parametrize("backend", BACKENDS)
@given(m=st.integers(1, 7), n=st.integers(1, 7), k=st.integers(1, 8), seed=seeds)
def test_topk_energy_is_eckart_young(backend, m, n, k, seed):
    P = np.random.default_rng(seed).standard_normal((2, m, n))
    out = topk_energy(P, k, backend=backend)
    for b in range(2):
        U, s, Vt = np.linalg.svd(P[b], full_matrices=False)
        Pk = (U[:, :k] * s[:k]) @ Vt[:k]
        assert abs(out[b] - (1 - np.linalg.norm(P[b] - Pk) ** 2 / np.linalg.norm(P[b]) ** 2)) < 1e-12


def test_sampling_projection_rows_are_unit_vectors(rng):
    S = sampling_projection(rng, 7, 4, batch=(3,))
    assert S.shape == (3, 4, 7) and np.all(S.sum(-1) == 1) and set(np.unique(S)) <= {0.0, 1.0}


def test_sketch_error_falls_with_k(rng):
    big = np.mean([sketch_errors(rng, (256,), 4)[0][0] for _ in range(4)])
    small = np.mean([sketch_errors(rng, (256,), 64)[0][0] for _ in range(4)])
    assert small < 0.6 * big


@pytest.mark.parametrize("cid", ["lowrank.linformer-exact-projection",
                                 pytest.param("lowrank.linformer-error-free-of-n", marks=pytest.mark.slow)])  # statistical: seconds per run
def test_claims_hold_and_controls_rejected(cid):
    rep = run_claim(get(cid), samples=1, seed=5)
    assert rep.holds and rep.control_status == "rejected", rep.detail + rep.control_detail


@given(key=st.sampled_from(["Q", "K", "V", "E", "F"]),
       how=st.sampled_from(["extra_dim", "drop_dim", "wrong_size", "int_dtype", "nan", "inf", "list", "empty"]),
       backend=st.sampled_from(["auto", "ref", "torch"]))
def test_bad_input_names_the_argument(key, how, backend):
    p = make_inputs(np.random.default_rng(0), n=4, m=3, d=2, dv=5)
    p["E"] = p["F"] = np.eye(4)[:3]
    # E, F: a wrong number of positions; Q: a wrong feature size (any number of queries is valid); K, V: tokens
    p[key] = corrupt(p[key], how, axis=-2 if key in "KV" else -1)
    with pytest.raises((ValueError, TypeError)) as err:
        linformer_attention(p["Q"], p["K"], p["V"], p["E"], p["F"], backend=backend)
    assert key in str(err.value), str(err.value)


def test_n_free_statistic_is_judged_by_its_interval(monkeypatch):
    """The verdict compares the interval's far end (not the mean) with the band, over fewer seeds here."""
    from theorylab.lowrank import linformer_claims

    monkeypatch.setitem(linformer_claims.FREE_OF_N, "seeds", 4)
    v = linformer_claims._free_of_n(np.random.default_rng(0), "quick", False)
    (stat,) = [s for k, s in v.statistics.items() if k.endswith("|ln err ratio|")]
    lo, hi = stat["interval"]
    assert hi > stat["value"] >= lo >= 0.0 and stat["threshold"] == 0.3 and stat["side"] == "<="
    assert v.per_backend()["fit"] == (hi, 0.3)
