"""The Markdown verification report (theorylab.report): every section, failures shown as such."""

import math
import re

import pytest

from theorylab.claims import Claim, Paper, Proof, Verdict, get, run_claim
from theorylab.report import _distribution, _module_section, error_model, render_report, write_report

PAPER = Paper("A test paper", 2024, "0000.00000", index=None)


def _fake(check, control, **kw):
    """A claim built here and never registered (the registry is left alone)."""
    kw.setdefault("controls", "the near miss of the fake")
    kw.setdefault("kind", "identity")
    return Claim(id="ssm.test-only-report", paper=PAPER, statement="a fake statement",
                 check=check, negative_control=control, **kw)


def _section(text: str, claim_id: str) -> str:
    start = text.index(f"### `{claim_id}`")
    nxt = text.find("\n### `", start + 1)
    return text[start:] if nxt < 0 else text[start:nxt]


@pytest.fixture(scope="module")
def real_reports():
    ids = ["ssm.s4-hippo-nplr", "icl.ridge-is-bayes-posterior-mean", "sparse.nnz-exponent-window"]
    return [run_claim(get(i), samples=3, seed=0) for i in ids]


def test_report_of_real_claims_has_every_section(real_reports, tmp_path):
    path = write_report(real_reports, tmp_path / "sub" / "verify.md", size="quick", seed=0)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# theorylab verification report")
    assert "3/3 claims hold" in text and "quick budget, seed 0" in text
    summary = text[text.index("## Summary"):text.index("## Claims")]
    for r in real_reports:
        c = r.claim
        assert f"[`{c.id}`](#claim-{c.id.replace('.', '-')})" in summary
        assert f'<a id="claim-{c.id.replace(".", "-")}"></a>' in text
        sec = _section(text, c.id)
        assert sec.startswith(f"### `{c.id}` — holds")
        assert " ".join(c.statement.split()) in sec and c.paper.cite() in sec
        for heading in ("#### Verdict per backend", "#### Error over the instances",
                        "#### Tolerance and its error model", "#### Negative control", "#### Proof"):
            assert heading in sec, (c.id, heading)
        for b in r.backends:  # one row per backend, each holding
            assert re.search(rf"\| `{re.escape(b)}` \| yes \|", sec), (c.id, b)
        assert "3 instances" in sec and "min " in sec and "median " in sec and "max " in sec
        assert "| quantile | 0% | 10% | 50% | 90% | 100% |" in sec
        assert f"| {c.controls} | rejected |" in sec
        assert "#### Statistics" not in sec  # none of these carries a statistic
    ridge = _section(text, "icl.ridge-is-bayes-posterior-mean")
    assert "`ridge_predict/numba`" in ridge and "`bayes_predict/torch`" in ridge
    assert "the default policy for float64" in ridge
    assert "> ``icl.ridge-is-bayes-posterior-mean``" in ridge and "Error model" in ridge  # the claim's own section
    assert "No symbolic proof" in ridge
    hippo = _section(text, "ssm.s4-hippo-nplr")
    assert "Proved (sympy). Scope: general: symbolic entries" in hippo
    window = _section(text, "sparse.nnz-exponent-window")
    assert "the band or exact count stated by the claim" in window
    assert "> Band, derived." in window  # the family section of ``sparse.nnz-exponent-<family>``
    assert not list(tmp_path.glob("sub/.*tmp*"))  # written atomically, no temporary left


def test_a_failing_claim_is_shown_failing_with_its_control_status(real_reports):
    def check(rng, size):
        return Verdict.combine({"ref": Verdict.from_error(1e-13, 1e-10, backend="ref"),
                                "torch": Verdict.from_error(3e-9, 1e-10, backend="torch", detail="torch drifts")})

    accepted = _fake(check, lambda rng, size: Verdict.from_error(1e-12, 1e-10))  # the control holds
    invalid = _fake(lambda rng, size: Verdict.from_error(1e-12, 1e-10),
                    lambda rng, size: Verdict.from_error(float("nan"), 1e-10))
    proof_fails = _fake(lambda rng, size: Verdict.from_error(1e-12, 1e-10),
                        lambda rng, size: Verdict.from_error(1.0, 1e-10),
                        proof=lambda: Proof(False, "the symbolic difference is not zero", scope="L=3, retyped formula"))
    for claim, status in ((accepted, "**ACCEPTED**"), (invalid, "**INVALID**"), (proof_fails, "rejected")):
        r = run_claim(claim, samples=3, seed=1)
        assert not r.ok
        text = render_report([real_reports[0], r], size="quick", seed=1)
        assert "1/2 claims hold" in text and "**Failed:** `ssm.test-only-report`" in text
        row = next(line for line in text.splitlines() if line.startswith("| [`ssm.test-only-report`]"))
        assert status in row
        sec = _section(text, "ssm.test-only-report")
        assert sec.startswith("### `ssm.test-only-report` — FAILS")
        assert f"| the near miss of the fake | {status} |" in sec
    r = run_claim(accepted, samples=3, seed=1)
    sec = _section(render_report([r], size="quick", seed=1), "ssm.test-only-report")
    assert "| `ref` | yes |" in sec and "| `torch` | **NO** | 3.00e-09 | 1.00e-10 | 30 |" in sec
    assert "3 above 1 or not finite" in sec and "[1e1, 1e2)" in sec  # every instance at 30x tolerance
    assert "a control instance HELD" in sec and "torch drifts" in sec
    sec = _section(render_report([run_claim(invalid, samples=2)], size="quick", seed=0), "ssm.test-only-report")
    assert "non-finite error or an exception" in sec
    sec = _section(render_report([run_claim(proof_fails, samples=2)], size="quick", seed=0), "ssm.test-only-report")
    assert "**NOT proved** (sympy). Scope: L=3, retyped formula." in sec


def test_statistics_section_when_the_verdict_carries_one(real_reports):
    if not hasattr(Verdict, "from_statistic"):
        pytest.skip("Verdict has no statistics in this version of theorylab.claims")
    claim = _fake(lambda rng, size: Verdict.from_statistic("gap", 0.1, (0.05, 0.2), 0.3),
                  lambda rng, size: Verdict.from_statistic("gap", 0.5, (0.4, 0.6), 0.3), kind="statistical")
    r = run_claim(claim, samples=2)
    sec = _section(render_report([r], size="quick", seed=0), "ssm.test-only-report")
    assert "#### Statistics" in sec and "the threshold stated by the claim" in sec
    assert "| gap | 0.1 | [0.05, 0.2] | 99% | upper bound <= 0.3 | yes |" in sec
    assert "| gap | 0.5 | [0.4, 0.6] | 99% | upper bound <= 0.3 | **NO** |" in sec  # the control's


def test_a_report_without_statistics_fields_renders(real_reports):
    class Old:  # a ClaimReport of a version without ``statistics`` / ``control_statistics``
        def __init__(self, r):
            self._r = r

        def __getattr__(self, name):
            if name in ("statistics", "control_statistics"):
                raise AttributeError(name)
            return getattr(self._r, name)

    text = render_report([Old(r) for r in real_reports], size="full", seed=3)
    assert "3/3 claims hold" in text and "full budget, seed 3" in text and "#### Statistics" not in text


def test_error_distribution_counts_every_instance():
    lines = "\n".join(_distribution([0.0, 2e-6, 3e-6, 0.5, 2.0, math.inf, float("nan"), None]))
    assert "8 instances" in lines and "4 above 1 or not finite" in lines  # 2.0, inf, nan, None
    assert "2 not finite" in lines
    bars = dict(re.findall(r"^(\[\S+, \S+\))\s+#*\s+(\d+)$", lines, flags=re.M))
    assert {k: v for k, v in bars.items() if v != "0"} == {"[1e-6, 1e-5)": "2", "[1e-1, 1e0)": "1", "[1e0, 1e1)": "1"}
    assert list(bars)[0] == "[1e-6, 1e-5)" and list(bars)[-1] == "[1e0, 1e1)"  # empty decades between, none outside
    assert re.search(r"^0 \(exact\)\s+#+\s+1$", lines, flags=re.M)
    assert re.search(r"^inf \(error > 0 = tolerance\)\s+#+\s+1$", lines, flags=re.M)
    hist = _distribution([1e-3, 1e-2, 0.1, 1.0])  # exact powers of ten land in their own decade
    assert sum(int(m) for m in re.findall(r"#+\s+(\d+)$", "\n".join(hist), flags=re.M)) == 4
    assert _distribution([]) == ["No per-instance errors were recorded."]


def test_module_section_reads_bullets_numbers_and_families():
    doc = """Title line.

1. ``ssm.a-one`` -- first claim, tolerance 1e-10.
   continued line.
2. ``ssm.b-two`` -- second claim.

``ssm.fam-<family>``: a family.
   Band, derived: 0.02.

Errors are counts; tolerance 0.
"""
    assert _module_section(doc, "ssm.a-one") == ("``ssm.a-one`` -- first claim, tolerance 1e-10.\ncontinued line."
                                                  "\n\nErrors are counts; tolerance 0.")
    assert _module_section(doc, "ssm.fam-window").startswith("``ssm.fam-<family>``: a family.\nBand, derived")
    assert _module_section(doc, "ssm.absent") == ""
    single = "Claim of x: ``ssm.only``.\n\nCheck: it, float64 policy."
    assert _module_section(single, "ssm.only", only_claim=True) == "Check: it, float64 policy."
    assert _module_section(single, "ssm.only", only_claim=False) == ""


def test_every_registered_claim_states_where_its_tolerance_comes_from():
    from theorylab.claims import all_claims

    missing = [c.id for c in all_claims() if not error_model(c)]
    assert not missing, f"no tolerance / error-model text found for {missing}"


def test_write_report_refuses_a_folder(tmp_path, real_reports):
    with pytest.raises(ValueError, match="is a folder"):
        write_report(real_reports, tmp_path, size="quick", seed=0)
