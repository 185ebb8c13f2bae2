"""The sparse experiment scripts run in quick mode and the benchmark in smoke mode."""

import json
from pathlib import Path

import pytest

from theorylab.experiment import load_script

ROOT = Path(__file__).parents[2]


def _load(relpath: str):
    return load_script(ROOT / relpath)


@pytest.mark.parametrize("stem", ["sparse_nnz", "sparse_receptive_field", "sparse_block_density", "sparse_walltime"])
def test_experiment_quick_writes_figure_and_data(stem, tmp_path):
    paths = _load(f"experiments/{stem}.py").main(["--quick", "--out", str(tmp_path)])
    record = json.loads(Path(paths["json"]).read_text())
    assert Path(paths["png"]).stat().st_size > 1000
    assert record["stem"] == stem and record["quick"] is True and record["data"]
    if stem == "sparse_nnz":
        slopes = record["data"]["slopes"]
        assert abs(slopes["full causal"] - 2) < 0.05 and abs(slopes["strided l=ceil(sqrt n)"] - 1.5) < 0.05
    if stem == "sparse_receptive_field":
        cont = record["data"]["continuous"]["power attention"]
        assert all(c >= 2**d for d, c in zip(record["data"]["depths"], cont))


def test_benchmark_smoke_runs_and_is_correct():
    res = _load("benchmarks/sparse_attention.py").main(["--smoke", "--repeat", "1", "--json"])
    assert res["rel_error_fold_merge"] <= 1e-4 and res["rel_error_numba_csr"] <= 1e-4
    assert res["work_ratio"] > 1 and res["time_fold_merge_s"] > 0
