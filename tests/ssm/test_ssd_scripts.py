"""The SSD benchmark runs in smoke mode and checks what it times; the figure script runs in quick mode."""

import json
import sys
from pathlib import Path

import numpy as np

from theorylab.experiment import load_script

ROOT = Path(__file__).parents[2]


def _load(relpath: str):
    return load_script(ROOT / relpath)


def test_benchmark_smoke_runs_and_what_it_times_is_correct(capsys):
    res = _load("benchmarks/ssm_ssd.py").main(["--smoke", "--repeat", "1", "--json"])
    for k in ("numba_recurrent", "numba_chunked", "torch_chunked", "listing1", "torch_loop"):
        assert res[f"rel_error_{k}"] <= 1e-4, k  # float32 vs the float64 recurrence
        assert res[f"time_{k}_s"] > 0
    assert np.isfinite(res["listing1_over_fastest"]) and np.isfinite(res["torch_loop_over_fastest"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["benchmark"] == "ssm_ssd"


def test_listing1_baseline_matches_reference():
    import torch

    from theorylab.ssm.duality import make_inputs, ssd_ref
    from theorylab.tolerances import assert_close

    bench = _load("benchmarks/ssm_ssd.py")
    p = make_inputs(np.random.default_rng(0), batch=2, length=12, heads=3, head_dim=5, state=7)
    t = [torch.from_numpy(p[k]) for k in ("X", "log_a", "B", "C")]
    ref = ssd_ref(**p)
    assert_close(bench.listing1_ssd(*t, 4), ref, dtype=np.float64, name="listing 1")
    assert_close(bench.torch_loop_ssd(*t), ref, dtype=np.float64, name="torch loop")


def test_experiment_quick_writes_figure_and_data(tmp_path):
    flags = ["--quick", "--out", str(tmp_path), "--long-lengths", "1024,2048", "--time-lengths", "128,256,512",
             "--chunk-sizes", "1,7,96", "--rank-states", "1,3"]
    paths = _load("experiments/ssm_ssd.py").main(flags)
    record = json.loads(Path(paths["json"]).read_text())
    assert Path(paths["png"]).stat().st_size > 1000
    data = record["data"]
    assert record["stem"] == "ssm_ssd" and record["quick"] is True
    assert [max(r) for r in data["ranks"]["SSD mask"]] == data["rank_states"]  # rank = N exactly
    assert all(min(r) > max(data["rank_states"]) for r in data["ranks"]["random lower mask"])
    assert max(max(r) for r in data["chunk_errors"]["torch float64"]) <= 1e-10
    for k in ("numba (stable)", "torch (stable segsum)"):  # within the claim's sqrt(L) eps32
        assert all(max(r) <= np.sqrt(L) * np.finfo(np.float32).eps for L, r in zip(data["long_lengths"], data["long_errors"][k]))
    # the unstable difference form is finite and fails by magnitude at every length drawn
    assert all(min(r) > np.sqrt(L) * np.finfo(np.float32).eps for L, r in zip(data["long_lengths"], data["long_errors"]["cumsum difference"]))
