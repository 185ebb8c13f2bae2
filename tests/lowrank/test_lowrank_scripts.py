"""The low-rank experiment scripts run in quick mode and the benchmark in smoke mode."""

import json
from pathlib import Path

import pytest

from theorylab.experiment import load_script

ROOT = Path(__file__).parents[2]


def _load(relpath: str):
    return load_script(ROOT / relpath)


@pytest.mark.parametrize("stem", ["lowrank_bounded_entries", "lowrank_linformer"])
def test_experiment_quick_writes_figure_and_data(stem, tmp_path):
    paths = _load(f"experiments/{stem}.py").main(["--quick", "--out", str(tmp_path)])
    record = json.loads(Path(paths["json"]).read_text())
    assert Path(paths["png"]).stat().st_size > 1000
    assert record["stem"] == stem and record["quick"] is True and record["data"]
    data = record["data"]
    if stem == "lowrank_bounded_entries":
        assert abs(data["slopes"]["0.5"]) < 0.1 and data["slopes"]["4.0"] > 0.6
        for g, err in data["truncation"].items():
            assert all(e <= 1.01 * b + 1e-12 for e, b in zip(err, data["bound"][g]))
    if stem == "lowrank_linformer":
        e8, e32 = (sum(map(sum, data["errors"][k])) for k in ("8", "32"))
        assert e32 < e8  # error falls with k


SMALL = {  # quick mode, shrunk further by config flags (the scripts' own --quick runs take ~30 s and ~10 s)
    "lowrank_heads": ["--seeds", "0,1", "--ds", "2,3", "--Hs", "1,2,3,4,6,8,12,16", "--trained-ds", "2",
                      "--trained-Hs", "1", "--trained-steps", "20", "--test", "300", "--min-train", "400"],
    "lowrank_lora": ["--seeds", "4", "--sizes", "2x12x12x10"],
}


@pytest.mark.parametrize("stem", ["lowrank_heads", "lowrank_lora"])
def test_new_experiments_write_figure_and_data(stem, tmp_path):
    paths = _load(f"experiments/{stem}.py").main(["--quick", "--out", str(tmp_path), "--no-cache", *SMALL[stem]])
    data = json.loads(Path(paths["json"]).read_text())["data"]
    assert Path(paths["png"]).stat().st_size > 1000
    if stem == "lowrank_heads":
        assert data["fits"]["1"]["rate"] > 0  # H* grows with d for rank-1 heads
        assert all(h == 1 for h in data["full_rank_Hstar"].values())
        e = data["curves"]["1"]["2"]["errors"]
        assert all(row[0] > row[-1] for row in e)
    else:
        e = data["sizes"]["2x12x12x10"]
        assert e["threshold_rank"] == 7 and e["rates"][0] == 0.0  # rank 1: below the dimension count
        assert e["min_rate_above_bound"] == 1.0 and len(e["rates"]) == 10


def test_benchmark_smoke_runs_and_is_correct():
    res = _load("benchmarks/lowrank_batched.py").main(["--smoke", "--repeat", "1", "--json"])
    assert res["max_rank_mismatch"] == 0 and res["lstsq_rel_error"] <= 1e-8
    assert res["time_batched_svd_s"] > 0 and res["time_batched_lstsq_s"] > 0 and res["time_batched_eps_rank_s"] > 0
