"""The `theorylab` command end to end (in-process; one subprocess for the entry point)."""

import json
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
    out = json.loads(capsys.readouterr().out)
    (row,) = out["claims"]
    assert set(row) >= {"id", "paper", "kind", "holds", "max_error", "tolerance", "negative_control_rejected",
                        "samples", "backend"}
    assert row["holds"] and row["negative_control_rejected"] and row["samples"] == 2


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


def test_unknown_names_exit_with_a_message():
    with pytest.raises(SystemExit, match="no claim or theme matches"):
        main(["verify", "no-such-claim"])
    with pytest.raises(SystemExit, match="unknown experiment"):
        main(["reproduce", "no_such_figure", "--quick"])
    with pytest.raises(SystemExit, match="unknown benchmark"):
        main(["bench", "no_such_bench"])
    with pytest.raises(SystemExit):
        main(["verify", "--samples", "0"])


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "theorylab", "list"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ssm.selective-scan-is-attention" in r.stdout
