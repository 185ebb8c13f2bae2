"""The `theorylab` command end to end (in-process; one subprocess for the entry point)."""

import json
import os
import subprocess
import sys

import pytest

from theorylab import claims as C
from theorylab.cli import main
from theorylab.claims import Claim, Paper, Verdict


def test_list_json(capsys):
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["claims"]
    ids = [r["id"] for r in rows]
    assert "ssm.selective-scan-is-attention" in ids
    assert {"id", "paper", "kind", "experiment"} <= set(rows[0])


def test_verify_json_schema_and_exit_code(capsys):
    assert main(["verify", "ssm.selective-scan-is-attention", "--samples", "2", "--json"]) == 0
    text = capsys.readouterr().out
    out = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert out["schema_version"] == C.JSON_SCHEMA_VERSION and out["ok"] is True
    (row,) = out["claims"]
    assert set(row) >= {"id", "paper", "kind", "holds", "max_error", "tolerance", "negative_control_rejected",
                        "samples", "backend", "backends", "negative_control", "proof", "error_ratios"}
    assert row["holds"] and row["negative_control_rejected"] and row["samples"] == 2
    assert {"ref", "numba", "torch"} <= {b.split("/")[-1] for b in row["backends"]}  # every backend a user calls
    assert all(v["holds"] and v["max_error"] is not None for v in row["backends"].values())
    ctl = row["negative_control"]
    assert ctl["status"] == "rejected" and ctl["margin"] > 1  # rejected by a finite error above tolerance
    assert row["proof"]["proved"] and row["proof"]["scope"]


@pytest.fixture
def broken_claim():
    ok = lambda rng, size: Verdict.from_error(0.0, 1.0)  # noqa: E731
    claim = Claim(id="ssm.zz-broken-control", paper=Paper("t", 2024, "0"), statement="s", kind="identity",
                  check=ok, negative_control=ok, controls="none")
    C._REGISTRY[claim.id] = claim
    yield claim
    del C._REGISTRY[claim.id]


def test_verify_fails_when_a_control_is_accepted(broken_claim, capsys):
    assert main(["verify", broken_claim.id, "--samples", "1"]) == 1
    assert "ACCEPTED" in capsys.readouterr().out


@pytest.fixture
def nan_control_claim():
    ok = lambda rng, size: Verdict.from_error(0.0, 1.0)  # noqa: E731
    nan = lambda rng, size: Verdict.from_error(float("nan"), 1.0)  # noqa: E731
    claim = Claim(id="ssm.zz-nan-control", paper=Paper("t", 2024, "0"), statement="s", kind="identity",
                  check=ok, negative_control=nan, controls="a variant that returns NaN")
    C._REGISTRY[claim.id] = claim
    yield claim
    del C._REGISTRY[claim.id]


def test_verify_says_a_nan_control_proves_nothing(nan_control_claim, capsys):
    assert main(["verify", nan_control_claim.id, "--samples", "1"]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "proves nothing" in out
    assert main(["verify", nan_control_claim.id, "--samples", "1", "--json"]) == 1
    row = json.loads(capsys.readouterr().out)["claims"][0]
    assert row["negative_control"]["status"] == "invalid" and row["negative_control"]["min_error"] is None


def test_usage_errors_exit_2_with_a_message(capsys, tmp_path):
    """0: all hold; 1: a claim fails; 2: a usage error, reported before anything is computed."""
    cases = [
        (["verify", "no-such-claim"], "no claim or theme matches"),
        (["verify", "ssm", "--samples", "0"], "--samples must be >= 1"),
        (["reproduce", "no_such_figure", "--quick"], "unknown experiment"),
        (["bench", "no_such_bench"], "unknown benchmark"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err
    for argv in (["verify", "--seed", "-1"], ["verify", "--seed", "x"], ["nope"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2, argv
    assert "--seed must be a non-negative integer" in capsys.readouterr().err


def test_a_bad_out_is_refused_before_any_computation(tmp_path, capsys, monkeypatch):
    import theorylab.cli as cli

    ran = []
    monkeypatch.setattr(cli, "_run_script", lambda path, argv: ran.append(path))
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    assert main(["reproduce", "ssm_ssd", "--quick", "--out", str(a_file)]) == 2
    assert "not a folder" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["reproduce", "ssm_ssd", "--quick", "--out", str(locked / "sub")]) == 2
    assert ran == []


def test_a_closed_pipe_ends_quietly():
    r = subprocess.run(f"{sys.executable} -m theorylab list | head -1", shell=True, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("claim") and "Traceback" not in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-c", "import sys, theorylab.cli as c; sys.stdout.close(); "
                        "import os; os.close(1); sys.exit(c.main(['list']))"], capture_output=True, text=True, timeout=120)
    assert "BrokenPipeError" not in r.stderr


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "theorylab", "list"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ssm.selective-scan-is-attention" in r.stdout


def test_verify_report_writes_markdown_and_refuses_a_bad_path(tmp_path, capsys):
    path = tmp_path / "verify.md"
    assert main(["verify", "sparse.nnz-closed-form", "--samples", "1", "--report", str(path)]) == 0
    text = path.read_text()
    assert text.startswith("# theorylab verification report") and "`sparse.nnz-closed-form` — holds" in text
    assert main(["verify", "sparse.nnz-closed-form", "--report", str(tmp_path / "missing" / "r.md")]) == 2
    assert main(["verify", "sparse.nnz-closed-form", "--report", str(tmp_path)]) == 2
    assert "give a file name" in capsys.readouterr().err
