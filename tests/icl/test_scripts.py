"""The icl experiment scripts run in quick mode and the benchmark in smoke mode."""

import json
from pathlib import Path

import pytest

from theorylab.experiment import load_script

ROOT = Path(__file__).parents[2]


def _load(relpath: str):
    return load_script(ROOT / relpath)


@pytest.mark.parametrize("stem", ["icl_prequential", "icl_constructions"])
def test_experiment_quick_writes_figure_and_data(stem, tmp_path):
    paths = _load(f"experiments/{stem}.py").main(["--quick", "--out", str(tmp_path)])
    record = json.loads(Path(paths["json"]).read_text())
    assert Path(paths["png"]).stat().st_size > 1000
    assert record["stem"] == stem and record["quick"] is True
    data = record["data"]
    if stem == "icl_prequential":
        assert data["split"]["max_abs_gap_prequential_vs_evidence"] < 1e-8
        for c in data["complexity"].values():
            assert abs(c["slope_upper_half"] - c["law"]) < 0.1 * c["law"] + 0.05
    else:
        assert max(data["lsa_vs_gd_rel_error"]["max"]) < 1e-10
        assert max(data["sherman_morrison_vs_closed_form_rel_error"]["max"]) < 1e-10


def test_benchmark_smoke_runs_and_is_correct():
    res = _load("benchmarks/icl_predictors.py").main(["--smoke", "--repeat", "1", "--json"])
    assert res["max_rel_error_vs_closed_form"] <= 1e-10 and res["all_over_floor"] > 0
