import numpy as np
import pytest

from theorylab.checks import crossover_length, fit_loglog_slope, identity_verdict, mean_interval, slope_verdict
from theorylab.claims import Claim, Paper, Verdict, all_claims, run_claim, select

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
