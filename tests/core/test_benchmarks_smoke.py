"""Every benchmark script runs in smoke mode (tiny sizes) and returns its measurements.

Benchmarks are not timed tests: speed targets live in the scripts and BENCHMARKS.md.
"""

import pytest

from theorylab.cli import _run_script, _scripts

BENCHES = _scripts("benchmarks")


@pytest.mark.parametrize("name", sorted(BENCHES))
def test_benchmark_smoke(name, capsys):
    out = _run_script(BENCHES[name], ["--smoke"])
    assert isinstance(out, dict) and out, f"{name}.main must return its results"
    assert capsys.readouterr().out.strip(), f"{name} printed nothing"


def test_gpu_check_runs_on_cpu(capsys):
    import json

    from theorylab.experiment import repo_root

    out = _run_script(repo_root() / "benchmarks" / "gpu_check.py", ["--device", "cpu", "--smoke"])
    assert out == {"failed_sections": 0}
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    checks = [r for r in rows if "ok" in r]
    assert checks and all(r["ok"] for r in checks)
