"""Trained in-context learners (:mod:`theorylab.icl.learners`): deterministic training, the forward
on every backend against the float64 reference, prefix and query masking, SPD / ILWD by hand,
bad input, and the statistical claims' checks and controls on a tiny budget."""

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import theorylab.icl.learners_claims as LC
from theorylab.claims import Verdict, get
from theorylab.icl import gd_lsa_weights, gd_predict, make_inputs
from theorylab.icl.learners import (Learner, ilwd, implicit_weights, learner_predict, spd, train_learner)
from theorylab.testing import seeds
from theorylab.tolerances import assert_close

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = {"transformer": dict(width=8, heads=2, steps=3, batch=4), "lsa": dict(steps=3, batch=4)}
_CACHE = {}


def tiny(kind, d, layers, seed=0):
    """A learner after 3 training steps (weights away from their initial symmetry), cached per module."""
    key = (kind, d, layers, seed)
    if key not in _CACHE:
        _CACHE[key] = train_learner(kind, d=d, k=4, noise=0.1, seed=seed, layers=layers, **TINY[kind])
    return _CACHE[key]


@pytest.mark.parametrize("kind", ["transformer", "lsa"])
def test_training_is_deterministic_under_its_seed(kind):
    a, b = (train_learner(kind, d=3, k=4, noise=0.2, seed=7, layers=2, **TINY[kind]) for _ in range(2))
    c = train_learner(kind, d=3, k=4, noise=0.2, seed=8, layers=2, **TINY[kind])
    assert a.params.keys() == b.params.keys()
    assert all(np.array_equal(a.params[n], b.params[n]) for n in a.params) and a.losses == b.losses
    assert any(not np.array_equal(a.params[n], c.params[n]) for n in a.params)
    state = torch.random.get_rng_state()
    train_learner(kind, d=3, k=4, seed=1, **TINY[kind])
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is never drawn from


def test_training_learns(rng):
    """300 steps of the claims' LSA setting bring the loss from ~|w|² = d down to the one-step-GD level."""
    m = train_learner("lsa", d=4, k=8, seed=0, steps=300, batch=64)
    assert np.mean(m.losses[:10]) > 3.5 and np.mean(m.losses[-30:]) < 2.8


sizes = st.fixed_dictionaries({"batch": st.sampled_from(((1,), (3,), (2, 2))), "k": st.integers(1, 6),
                               "d": st.sampled_from((1, 2, 3)), "m": st.sampled_from((1, 2, 5))})


@pytest.mark.parametrize("kind,layers", [("transformer", 1), ("transformer", 2), ("lsa", 1), ("lsa", 2)])
@given(sz=sizes, seed=seeds, prefixes=st.booleans())
@example(sz=dict(batch=(1,), k=1, d=1, m=1), seed=0, prefixes=True)
def test_torch_forward_matches_reference(kind, layers, sz, seed, prefixes):
    model = tiny(kind, sz["d"], layers)
    p = make_inputs(np.random.default_rng(seed), **sz, noise=0.3)
    ref = learner_predict(model, p["X"], p["y"], p["Xq"], prefixes=prefixes, backend="ref")
    out = learner_predict(model, *(torch.from_numpy(p[n]) for n in ("X", "y", "Xq")), prefixes=prefixes, backend="torch")
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    assert ref.shape == (p["yq"].shape[:-1] + ((sz["k"],) if prefixes else ()) + (sz["m"],))
    assert_close(out.numpy(), ref, dtype=np.float64)
    f32 = learner_predict(model, p["X"].astype(np.float32), p["y"].astype(np.float32), p["Xq"].astype(np.float32),
                          prefixes=prefixes, backend="torch")
    assert f32.dtype == np.float32


@pytest.mark.parametrize("kind,layers", [("transformer", 2), ("lsa", 2)])
def test_prefix_n_sees_exactly_the_first_n_examples(kind, layers, rng):
    """Row n−1 of prefixes=True = the prediction from the prompt cut to n examples; changing a later
    example does not change it; queries never influence each other."""
    model = tiny(kind, 3, layers)
    p = make_inputs(rng, batch=2, k=6, d=3, m=4, noise=0.3)
    full = learner_predict(model, p["X"], p["y"], p["Xq"], prefixes=True, backend="ref")
    for n in (1, 3, 6):
        cut = learner_predict(model, p["X"][:, :n], p["y"][:, :n], p["Xq"], backend="torch")
        assert_close(cut, full[:, n - 1], dtype=np.float64)
    y2 = p["y"].copy()
    y2[:, 4] += 10.0
    moved = learner_predict(model, p["X"], y2, p["Xq"], prefixes=True, backend="torch")
    assert np.array_equal(moved[:, :4], full[:, :4]) or np.abs(moved[:, :4] - full[:, :4]).max() < 1e-12
    assert np.abs(moved[:, 4:] - full[:, 4:]).max() > 1e-6
    one = learner_predict(model, p["X"], p["y"], p["Xq"][:, 2:3], prefixes=True, backend="torch")
    assert_close(one[..., 0], full[..., 2], dtype=np.float64)


def test_lsa_learner_with_gd_weights_is_gd(rng):
    """A hand-built one-layer LSA learner with the weights of gd_lsa_weights predicts one GD step."""
    WQ, WK, WV = gd_lsa_weights(3, 0.4)
    model = Learner(kind="lsa", d=3, k=5, layers=1, width=0, heads=1, noise=0.0, tau=1.0, seed=0,
                    shuffle_labels=False, params={"WQ0": WQ, "WK0": WK, "WV0": WV})
    p = make_inputs(rng, batch=3, k=5, d=3, m=2)
    gd = gd_predict(p["X"], p["y"], p["Xq"], 0.4, 1, prefixes=True, backend="ref")
    for b in ("ref", "torch"):
        assert_close(learner_predict(model, p["X"], p["y"], p["Xq"], prefixes=True, backend=b), gd, dtype=np.float64)
    assert spd(gd, learner_predict(model, p["X"], p["y"], p["Xq"], prefixes=True)).max() < 1e-20


def test_torch_gradients_through_the_inputs():
    model = tiny("transformer", 2, 1)
    p = make_inputs(np.random.default_rng(3), batch=2, k=3, d=2, m=2)
    X, y, Xq = (torch.from_numpy(p[n]).requires_grad_(True) for n in ("X", "y", "Xq"))
    assert torch.autograd.gradcheck(lambda a, b, c: learner_predict(model, a, b, c, prefixes=True, backend="torch"),
                                    (X, y, Xq))


def test_spd_and_ilwd_by_hand():
    a = np.array([[[1.0, 2.0], [0.0, 0.0]], [[3.0, 2.0], [1.0, -1.0]]])  # (2 prompts, k=2, m=2)
    b = np.zeros_like(a)
    # prefix 1: (1 + 4 + 9 + 4)/4 = 4.5; prefix 2: (0 + 0 + 1 + 1)/4 = 0.5
    np.testing.assert_allclose(spd(a, b), [4.5, 0.5], rtol=1e-15)
    Xq = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # (1, m=3, d=2)
    w1, w2 = np.array([2.0, -1.0]), np.array([0.0, 3.0])
    pa = np.stack([Xq[0] @ w1, Xq[0] @ w1])[None]  # (1, k=2, 3): weights w1 at both prefixes
    pb = np.stack([Xq[0] @ w1, Xq[0] @ w2])[None]
    np.testing.assert_allclose(implicit_weights(Xq, pb)[0], [w1, w2], atol=1e-14)
    # ILWD: prefix 1 equal weights; prefix 2 ||w1 − w2||² = 4 + 16 = 20
    np.testing.assert_allclose(ilwd(Xq, pa, pb), [0.0, 20.0], atol=1e-12)


def test_bad_input():
    model = tiny("lsa", 2, 1)
    p = make_inputs(np.random.default_rng(0), batch=2, k=3, d=2, m=2)
    with pytest.raises(ValueError, match="kind"):
        train_learner("rnn", d=2, k=3)
    with pytest.raises(ValueError, match="width must be divisible by heads"):
        train_learner("transformer", d=2, k=3, width=10, heads=3)
    with pytest.raises(ValueError, match="noise"):
        train_learner("lsa", d=2, k=3, noise=-1.0)
    with pytest.raises(ValueError, match="lr"):
        train_learner("lsa", d=2, k=3, lr=0.0)
    with pytest.raises(ValueError, match="k"):
        train_learner("lsa", d=2, k=0)
    with pytest.raises(ValueError, match="seed"):
        train_learner("lsa", d=2, k=3, seed=-1)
    with pytest.raises(TypeError, match="learner"):
        learner_predict("model", p["X"], p["y"], p["Xq"])
    with pytest.raises(ValueError, match="d = 2"):
        learner_predict(model, p["X"][..., :1], p["y"], p["Xq"][..., :1])
    with pytest.raises(ValueError, match="y"):
        learner_predict(model, p["X"], p["y"][:, :2], p["Xq"])
    with pytest.raises(TypeError, match="prefixes"):
        learner_predict(model, p["X"], p["y"], p["Xq"], prefixes=1)
    with pytest.raises(ValueError, match="backend"):
        learner_predict(model, p["X"], p["y"], p["Xq"], backend="numba")
    with pytest.raises(ValueError, match="spd"):
        spd(np.zeros((2, 3, 2)), np.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match="m >= d"):
        implicit_weights(p["Xq"][:, :1], np.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match="b"):
        spd(np.zeros((2, 3, 2)), np.full((2, 3, 2), np.nan))


@pytest.fixture
def small_budget(monkeypatch):
    """The claims at a tiny budget: 2 seeds, 8 training steps, 8 evaluation prompts."""
    monkeypatch.setitem(LC.SEEDS, "quick", 2)
    monkeypatch.setattr(LC, "TRANSFORMER", {**LC.TRANSFORMER, "steps": 8, "batch": 8, "width": 8})
    monkeypatch.setattr(LC, "SOFTMAX1", {**LC.SOFTMAX1, "steps": 8, "batch": 8, "width": 8})
    monkeypatch.setattr(LC, "LSA", {**LC.LSA, "steps": 8, "batch": 8})
    monkeypatch.setattr(LC, "EVAL", {"batch": 8, "m": 4})


@pytest.mark.parametrize("claim,stat", [("icl.trained-transformer-closer-to-ridge", "gap"),
                                        ("icl.linear-attention-is-one-step-gd", "ratio"),
                                        ("icl.best-ridge-lambda-tracks-noise", "slope")])
def test_claim_checks_and_controls_run_every_backend(small_budget, claim, stat):
    c = get(claim)
    for fn in (c.check, c.negative_control):
        v = fn(np.random.default_rng(1), "quick")
        assert isinstance(v, Verdict) and f"statistic/{stat}" in v.statistics
        st_ = v.statistics[f"statistic/{stat}"]
        assert np.isfinite(st_["value"]) and all(np.isfinite(st_["interval"]))
        identity = {b: et for b, et in v.backends.items() if b.startswith(("same[", "forward["))}
        assert any(b.startswith("forward[torch]") for b in identity)
        assert any(b.startswith("same[numba]") for b in identity) and any(b.startswith("same[torch]") for b in identity)
        assert all(e <= t for e, t in identity.values())  # every backend equals the reference on the same instances


def test_best_lambda_grid_finds_the_ridge_it_was_given(rng):
    """A 'learner' that is ridge with λ = 1 has λ* = 1 on the grid (1 is a grid point)."""
    from theorylab.icl import ridge_predict

    p = make_inputs(rng, batch=64, k=6, d=3, m=4, noise=0.5)
    f = ridge_predict(p["X"], p["y"], p["Xq"], 1.0, prefixes=True, backend="ref")
    assert LC.best_lambda(f, p, {}, "") == pytest.approx(1.0, rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("claim", ["icl.trained-transformer-closer-to-ridge", "icl.linear-attention-is-one-step-gd",
                                   "icl.best-ridge-lambda-tracks-noise"])
def test_claims_decide_at_the_quick_budget(claim):
    from theorylab.claims import run_claim

    r = run_claim(get(claim), size="quick")
    assert r.ok and r.control_status == "rejected"


def test_experiment_tiny_run_writes_figure_and_is_deterministic(tmp_path):
    """experiments/icl_trained.py at a tiny config, twice: PNG + JSON, and the same data except `timings`."""
    import importlib.util
    import json
    import sys
    from pathlib import Path

    path = Path(__file__).parents[2] / "experiments" / "icl_trained.py"
    spec = importlib.util.spec_from_file_location("icl_trained", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    argv = ["--quick", "--seeds", "0,1", "--steps", "4", "--lsa-steps", "4", "--batch", "8", "--width", "8",
            "--noises", "0.5,2.0", "--prompts", "8", "--no-cache"]
    data = []
    for run in ("a", "b"):
        paths = mod.main(argv + ["--out", str(tmp_path / run)])
        assert Path(paths["png"]).stat().st_size > 1000
        rec = json.loads(Path(paths["json"]).read_text())
        assert rec["stem"] == "icl_trained" and "timings" in rec["data"]
        data.append(rec["data"])
    for d in data:
        d.pop("timings")
    assert data[0] == data[1]
    d = data[0]
    assert set(d["transformer"]["spd"]) == {"ridge", "lstsq", "gd", "averaging", "knn"}
    assert len(d["transformer"]["spd"]["ridge"]["mean"]) == 8 and len(d["best_lambda"]["per_seed"]) == 2
