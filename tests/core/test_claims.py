import json

import numpy as np
import pytest

from theorylab.checks import crossover_length, fit_loglog_slope, identity_verdict, mean_interval, slope_verdict
from theorylab.claims import Claim, Paper, Proof, Verdict, all_claims, run_claim, select

PAPER = Paper("A test paper", 2024, "0000.00000", index=None)


def _claim(check, control, **kw):
    return Claim(id="ssm.test-only", paper=PAPER, statement="s", kind="identity", check=check,
                 negative_control=control, **kw)


def test_run_claim_aggregates_and_detects_an_accepted_control():
    good = lambda rng, size: Verdict.from_error(1e-12, 1e-10)  # noqa: E731
    bad = lambda rng, size: Verdict.from_error(0.5, 1e-10)  # noqa: E731
    r = run_claim(_claim(good, bad), samples=3)
    assert r.holds and r.negative_control_rejected and r.ok and r.samples == 3
    r = run_claim(_claim(good, good), samples=2)  # a control that holds: the check cannot fail
    assert r.holds and not r.negative_control_rejected and not r.ok
    r = run_claim(_claim(bad, bad), samples=2)
    assert not r.holds and not r.ok


def test_nan_error_never_holds():
    assert not Verdict.from_error(float("nan"), 1.0).holds


def test_instances_are_seeded_and_distinct():
    seen = []

    def check(rng, size):
        seen.append(rng.integers(1 << 30))
        return Verdict.from_error(0.0, 1.0)

    c = _claim(check, lambda rng, size: Verdict.from_error(1.0, 0.0))
    run_claim(c, samples=3, seed=5)
    first = list(seen)
    seen.clear()
    run_claim(c, samples=3, seed=5)
    assert seen == first and len(set(first)) == 3


def test_claim_validation():
    ok = lambda rng, size: Verdict.from_error(0, 1)  # noqa: E731
    with pytest.raises(ValueError, match="theme"):
        Claim(id="nope.x", paper=PAPER, statement="", kind="identity", check=ok, negative_control=ok)
    with pytest.raises(ValueError, match="kind"):
        Claim(id="ssm.x", paper=PAPER, statement="", kind="vibes", check=ok, negative_control=ok)
    with pytest.raises(ValueError, match="size must be one of"):
        run_claim(_claim(ok, ok), size="huge")


def test_select_and_registry_metadata():
    claims = all_claims()
    assert "ssm.selective-scan-is-attention" in [c.id for c in claims]
    assert all(c.theme == "ssm" for c in select(["ssm"]))
    with pytest.raises(ValueError, match="no claim or theme matches"):
        select(["nope"])
    for c in claims:  # each claim names files that exist
        from theorylab.experiment import repo_root

        assert (repo_root() / c.module).is_file(), c.module
        assert (repo_root() / c.test).is_file(), c.test
        assert c.experiment is None or (repo_root() / "experiments" / f"{c.experiment}.py").is_file()
        assert c.controls, f"{c.id} must say what its negative control changes"


def test_check_helpers():
    ns = np.array([10, 100, 1000])
    assert fit_loglog_slope(ns, 3 * ns**1.5) == pytest.approx(1.5)
    assert slope_verdict(ns, ns**2.0, expected=2.0, band=0.05).holds
    assert not slope_verdict(ns, ns**1.5, expected=2.0, band=0.05).holds
    assert identity_verdict(np.ones(3), np.ones(3), dtype=np.float64).holds
    m, lo, hi = mean_interval([1.0, 2.0, 3.0])
    assert lo < m == 2.0 < hi
    with pytest.raises(ValueError, match="positive"):
        fit_loglog_slope([1, 2], [0, 1])
    with pytest.raises(ValueError, match="positive"):
        fit_loglog_slope([0, 2], [1, 2])
    assert fit_loglog_slope([1, 4], [0.25, 1.0]) == pytest.approx(1.0)  # values below 1 are valid


def test_crossover_length():
    ns = [10, 100, 1000, 10000]
    quad = [1e-4 * n**2 for n in ns]  # crosses 1e-1 * n at n = 1000
    lin = [1e-1 * n for n in ns]
    L, how = crossover_length(ns, quad, lin)
    assert how == "measured" and L == pytest.approx(1000)
    L, how = crossover_length(ns[:2], quad[:2], lin)  # beyond the measured range: fits
    assert how == "extrapolated" and L == pytest.approx(1000)
    assert crossover_length(ns, lin, lin[:1] + lin[1:])[1] == "measured"
    assert crossover_length(ns, lin, [2 * t for t in lin]) == (float("inf"), "none: same growth")


def test_a_statistical_claim_is_one_registration():
    """A one-sided statistical claim over seeds: E[x̄] of U(0, 1) draws exceeds 0.4.

    The verdict's error is the lower end of the 99% interval below the threshold (<= 0
    holds); the control asks the same of U(-0.5, 0.5) draws and must be rejected.
    """

    def stat(rng, size, shift):
        n_seeds, n = (8, 200) if size == "quick" else (32, 2000)
        means = [np.random.default_rng(rng.integers(1 << 31)).uniform(shift, 1 + shift, n).mean() for _ in range(n_seeds)]
        m, lo, hi = mean_interval(means)
        return Verdict.from_error(0.4 - lo, 0.0, detail=f"mean {m:.3f}, 99% interval [{lo:.3f}, {hi:.3f}]")

    claim = Claim(id="ssm.toy-statistical", paper=PAPER, statement="mean of U(0,1) > 0.4", kind="statistical",
                  check=lambda rng, size: stat(rng, size, 0.0), negative_control=lambda rng, size: stat(rng, size, -0.5),
                  samples=1, controls="draws shifted by -0.5")
    for size in ("quick", "full"):
        r = run_claim(claim, size=size, seed=1)
        assert r.ok and r.size == size and r.samples == 1 and "99% interval" in r.detail


def test_combine_holds_only_when_every_backend_holds():
    parts = {"ref": Verdict.from_error(1e-16, 1e-10), "numba": Verdict.from_error(3e-12, 1e-10),
             "torch": Verdict.from_error(2e-5, 1e-4)}
    v = Verdict.combine(parts)
    assert v.holds and set(v.backends) == {"ref", "numba", "torch"}
    assert v.error == 2e-5 and v.tolerance == 1e-4  # worst error / tolerance: torch at 0.2
    bad = Verdict.combine({**parts, "numba": Verdict.from_error(1e-3, 1e-10, detail="index off by one")})
    assert not bad.holds and bad.error == 1e-3 and "numba" in bad.detail and "off by one" in bad.detail
    nested = Verdict.combine({"scan": v, "matrix": Verdict.from_error(0.0, 1e-10)})
    assert set(nested.backends) == {"scan/ref", "scan/numba", "scan/torch", "matrix"}
    with pytest.raises(ValueError):
        Verdict.combine({})


def test_run_claim_reports_every_backend_and_fails_on_one():
    def check(rng, size):
        return Verdict.combine({"ref": Verdict.from_error(0.0, 1e-10), "numba": Verdict.from_error(5e-11, 1e-10),
                                "torch": Verdict.from_error(rng.uniform(0, 2e-10), 1e-10)})

    r = run_claim(_claim(check, lambda rng, size: Verdict.from_error(0.5, 1e-10)), samples=8, seed=3)
    assert set(r.backends) == {"ref", "numba", "torch"}
    assert r.backends["ref"]["holds"] and r.backends["numba"]["holds"]
    assert not r.backends["torch"]["holds"] and not r.holds and not r.ok  # one backend, one instance: fails
    assert r.backends["torch"]["max_error"] > 1e-10 and r.backends["numba"]["max_error"] == 5e-11
    j = r.as_json()
    assert j["backends"]["torch"]["holds"] is False and j["backends"]["ref"]["max_error"] == 0.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_control_rejected_by_a_non_finite_error_is_invalid(bad):
    good = lambda rng, size: Verdict.from_error(0.0, 1e-10)  # noqa: E731
    r = run_claim(_claim(good, lambda rng, size: Verdict.from_error(bad, 1e-10)), samples=2)
    assert r.holds and r.control_status == "invalid" and not r.negative_control_rejected and not r.ok
    assert "proves nothing" in r.control_detail
    json.dumps(r.as_json(), allow_nan=False)  # strict JSON: non-finite numbers are null


def test_a_control_that_raises_is_invalid_and_a_check_that_raises_fails():
    good = lambda rng, size: Verdict.from_error(0.0, 1e-10)  # noqa: E731

    def shape_mismatch(rng, size):
        raise ValueError("out and ref differ in shape")

    r = run_claim(_claim(good, shape_mismatch), samples=1)
    assert r.control_status == "invalid" and not r.ok and "differ in shape" in r.control_detail
    r = run_claim(_claim(shape_mismatch, lambda rng, size: Verdict.from_error(1.0, 1e-10)), samples=1)
    assert not r.holds and not r.ok and "differ in shape" in r.detail


def test_control_margin_is_the_smallest_control_error_over_tolerance():
    good = lambda rng, size: Verdict.from_error(0.0, 1e-10)  # noqa: E731
    errors = iter([3e-8, 2e-9, 5e-7])
    r = run_claim(_claim(good, lambda rng, size: Verdict.from_error(next(errors), 1e-10)), samples=3)
    assert r.control_status == "rejected" and r.control_margin == pytest.approx(20.0)
    assert r.as_json()["negative_control"]["margin"] == pytest.approx(20.0)


def test_a_proof_must_state_its_scope():
    with pytest.raises(ValueError, match="scope"):
        Proof(True, "sympy: something")
    p = Proof(True, "sympy: something", scope="L=4; retyped formula")

    def proof():
        return p

    good = lambda rng, size: Verdict.from_error(0.0, 1e-10)  # noqa: E731
    r = run_claim(_claim(good, lambda rng, size: Verdict.from_error(1.0, 1e-10), proof=proof), samples=1)
    assert r.proved and r.proof_scope == "L=4; retyped formula"
    assert r.as_json()["proof"] == {"proved": True, "scope": "L=4; retyped formula"}


def test_every_registered_proof_states_its_scope():
    for c in all_claims():
        if c.proof is not None:
            assert c.proof().scope, c.id


def test_from_statistic_one_sided_reading():
    v = Verdict.from_statistic("gap", 0.1, (0.05, 0.2), 0.3)
    assert v.holds and v.error == 0.2 and v.tolerance == 0.3
    assert v.statistics["gap"] == {"value": 0.1, "interval": [0.05, 0.2], "level": 0.99, "threshold": 0.3, "side": "<="}
    bad = Verdict.from_statistic("gap", 0.25, (0.2, 0.35), 0.3)
    assert not bad.holds and bad.margin > 1
    ge = Verdict.from_statistic("rate", 0.9, (0.85, 0.95), 0.8, side=">=")
    assert ge.holds and (ge.error, ge.tolerance) == (0.8, 0.85)
    assert not Verdict.from_statistic("rate", 0.9, (0.75, 0.95), 0.8, side=">=").holds
    assert not Verdict.from_statistic("gap", float("nan"), (0.0, 0.1), 0.3).holds
    with pytest.raises(ValueError, match="side"):
        Verdict.from_statistic("gap", 0.1, (0.0, 0.2), 0.3, side="<")


def test_statistics_survive_combine_and_reach_json():
    a = Verdict.from_statistic("gap", 0.1, (0.05, 0.2), 0.3, backend="ref")
    b = Verdict.from_error(1e-12, 1e-10, backend="torch")
    v = Verdict.combine({"stat[ref]": a, "same[torch]": b})
    assert v.statistics == {"stat[ref]/gap": a.statistics["gap"]}
    claim = Claim(id="ssm.test-stat", paper=PAPER, kind="statistical", statement="s",
                    check=lambda rng, size="quick": v,
                    negative_control=lambda rng, size="quick": Verdict.from_statistic("gap", 0.5, (0.4, 0.6), 0.3),
                    module="m", test="t")
    rep = run_claim(claim, samples=2)
    j = rep.as_json()
    assert rep.ok and j["statistics"]["stat[ref]/gap"]["interval"] == [0.05, 0.2]
    assert j["negative_control"]["statistics"]["gap"]["threshold"] == 0.3
    json.dumps(j, allow_nan=False)
