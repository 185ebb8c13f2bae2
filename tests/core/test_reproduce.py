"""theorylab reproduce: cells, the results cache (hit, miss, --force, corrupt entries, resume
after an exception or a kill), identical data twice, and the pool and Dask executors giving
the in-process data.  A toy experiment script (written to tmp_path) keeps each run in
milliseconds; its cells record every computation in a log file named by $TOY_LOG."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from theorylab.cli import _run_script, main
from theorylab.reproduce import comparable

TOY = '''
import os
import time
from dataclasses import dataclass

import numpy as np

from theorylab.experiment import Cells, run_experiment


@dataclass(frozen=True)
class Config:
    seeds: tuple = (0, 1, 2, 3)
    n: int = 5


FULL = Config()
QUICK = Config(seeds=(0, 1, 2))


def cells(cfg):
    return [{"seed": s} for s in cfg.seeds]


def compute_cell(cfg, cell):
    seed = cell["seed"]
    with open(os.environ["TOY_LOG"], "a") as f:
        f.write(f"{seed}\\n")
    if str(seed) == os.environ.get("TOY_FAIL_AT"):
        raise RuntimeError("interrupted")
    if str(seed) == os.environ.get("TOY_HANG_AT"):
        time.sleep(600)
    x = np.random.default_rng(seed).standard_normal(cfg.n)
    return {"x": x, "bad": float("nan"), "seconds": time.perf_counter()}


def assemble(cfg, results):
    return {"x": [r["x"] for r in results], "bad": [r["bad"] for r in results],
            "timings": {"clock": [r["seconds"] for r in results]}}


compute = Cells(cells, compute_cell, assemble)


def plot(data, path):
    path.write_bytes(b"PNG" + repr(data["x"]).encode())


def main(argv=None):
    return run_experiment("toycells", Config, FULL, QUICK, compute, plot, argv)


if __name__ == "__main__":
    main()
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    script = tmp_path / "toycells.py"
    script.write_text(TOY)
    log = tmp_path / "log.txt"
    monkeypatch.setenv("TOY_LOG", str(log))
    monkeypatch.delenv("TOY_FAIL_AT", raising=False)
    monkeypatch.delenv("TOY_HANG_AT", raising=False)
    cache, out = tmp_path / "cache", tmp_path / "out"

    def run(*flags, out_dir=out):
        return _run_script(script, ["--quick", "--out", str(out_dir), "--cache", str(cache), *flags])

    def computed():
        return [int(s) for s in log.read_text().split()] if log.exists() else []

    run.script, run.cache, run.out, run.log, run.computed = script, cache, out, log, computed
    return run


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("toycells/*/*.json"))


def test_second_run_takes_every_cell_from_the_cache_and_force_recomputes(toy):
    first = toy()
    assert first["cells"]["computed"] == 3 and first["cells"]["cached"] == 0 and toy.computed() == [0, 1, 2]
    data1 = json.loads(Path(first["json"]).read_text())
    second = toy()
    assert second["cells"] == {**first["cells"], "computed": 0, "cached": 3}
    assert toy.computed() == [0, 1, 2]  # nothing ran again
    data2 = json.loads(Path(second["json"]).read_text())
    assert data2["data"] == data1["data"]  # timings included: they are the cached cells' own
    assert data1["data"]["bad"] == [None, None, None]  # non-finite -> null, fresh and cached alike
    assert toy(("--force"))["cells"]["computed"] == 3 and toy.computed() == [0, 1, 2, 0, 1, 2]
    full = toy("--seeds", "0,1,2,3")  # another config is another key: every cell computed
    assert full["cells"]["computed"] == 4
    assert len(_entries(toy.cache)) == 7 and (toy.cache / ".gitignore").read_text().strip().endswith("*")
    toy("--no-cache", "--seeds", "5")
    assert toy.computed()[-1] == 5 and len(_entries(toy.cache)) == 7  # --no-cache writes nothing


def test_corrupt_entries_are_detected_and_recomputed(toy, capsys):
    toy()
    a, b, c = _entries(toy.cache)
    a.write_text(a.read_text()[: len(a.read_text()) // 2])  # truncated (a write cut short)
    entry = json.loads(b.read_text())
    entry["result"]["x"][0] += 1.0  # a garbled number in valid JSON: checksum mismatch
    b.write_text(json.dumps(entry))
    c.write_text("[1, 2]")  # JSON, but not an entry
    run = toy()
    assert run["cells"]["computed"] == 3 and run["cells"]["corrupt"] == 3
    err = capsys.readouterr().err
    assert "not valid JSON" in err and "checksum mismatch" in err and "not a cache entry" in err
    assert toy()["cells"]["cached"] == 3  # rewritten valid


def test_an_entry_under_another_key_is_rejected(toy, capsys):
    toy()
    a, b, _ = _entries(toy.cache)
    b.write_text(a.read_text())  # a valid entry copied to another cell's path
    run = toy()
    assert run["cells"]["computed"] == 1 and "expected" in capsys.readouterr().err


def test_after_an_exception_in_a_cell_the_rerun_computes_only_what_did_not_finish(toy, monkeypatch):
    monkeypatch.setenv("TOY_FAIL_AT", "2")
    with pytest.raises(RuntimeError, match="interrupted"):
        toy()
    assert len(_entries(toy.cache)) == 2 and not (toy.out / "toycells.json").exists()
    monkeypatch.delenv("TOY_FAIL_AT")
    run = toy()
    assert run["cells"]["computed"] == 1 and run["cells"]["cached"] == 2
    assert toy.computed() == [0, 1, 2, 2]


# the library version pinned in the child and here: the test is about the kill, and a library
# file edited while it runs (another checkout tool, an editor) would otherwise change the key
_PINNED = ("import runpy, sys, theorylab.cache as c, theorylab.reproduce as r; "
           "c.library_version = r.library_version = lambda: 'pinned'; "
           "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


_PIN_HERE = "import theorylab.cache as c, theorylab.reproduce as r; c.library_version = r.library_version = lambda: 'pinned'"


@pytest.fixture
def pinned(monkeypatch):
    import theorylab.cache
    import theorylab.reproduce

    for mod in (theorylab.cache, theorylab.reproduce):
        monkeypatch.setattr(mod, "library_version", lambda: "pinned")


def test_a_killed_run_keeps_its_finished_cells(toy, pinned):
    env = {**os.environ, "TOY_HANG_AT": "2", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", _PINNED, str(toy.script), "--quick", "--out", str(toy.out),
                             "--cache", str(toy.cache)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while toy.computed()[-1:] != [2] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert toy.computed() == [0, 1, 2], "the child never reached the hanging cell"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run = toy()
    assert run["cells"]["computed"] == 1 and run["cells"]["cached"] == 2 and toy.computed() == [0, 1, 2, 2]
    assert not list(toy.cache.rglob(".tmp.*"))


def test_two_runs_give_identical_data_except_timings_and_provenance(toy, tmp_path):
    a = json.loads(Path(toy("--no-cache", out_dir=tmp_path / "a")["json"]).read_text())
    b = json.loads(Path(toy("--no-cache", out_dir=tmp_path / "b")["json"]).read_text())
    assert comparable(a) == comparable(b)
    assert a["data"]["timings"] != b["data"]["timings"]  # a clock: it differs, and it is excluded
    assert "cells" in a["provenance"] and "git_commit" in a["provenance"]


def test_process_pool_gives_the_in_process_data_and_fills_the_same_cache(toy, tmp_path, pinned):
    from functools import partial

    from theorylab.executors import ProcessPool, use_executor

    with use_executor(ProcessPool(2, initializer=partial(exec, _PIN_HERE))):  # what --jobs 2 makes, pinned
        pooled = toy(out_dir=tmp_path / "pool")
    assert pooled["cells"]["executor"].startswith("process pool") and pooled["cells"]["computed"] == 3
    here = toy("--no-cache", out_dir=tmp_path / "here")
    assert comparable(pooled["json"]) == comparable(here["json"])
    assert toy(out_dir=tmp_path / "again")["cells"]["cached"] == 3  # the pool's cells were stored by the driver


def test_dask_local_cluster_gives_the_in_process_data_and_shares_the_cache(toy, tmp_path, pinned):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        on_dask = toy("--scheduler", cluster.scheduler_address, out_dir=tmp_path / "dask")
    assert on_dask["cells"]["computed"] == 3 and on_dask["cells"]["executor"].startswith("dask")
    here = toy("--no-cache", out_dir=tmp_path / "here")
    assert comparable(on_dask["json"]) == comparable(here["json"])
    again = toy(out_dir=tmp_path / "again")  # in-process, same cache: every cell was stored by the Dask run
    assert again["cells"]["cached"] == 3


def test_functions_outside_a_script_run_in_process_only(tmp_path):
    from dataclasses import dataclass

    from theorylab.experiment import Cells, run_experiment

    @dataclass(frozen=True)
    class Cfg:
        n: int = 2

    grid = Cells(lambda cfg: [{"i": i} for i in range(cfg.n)], lambda cfg, c: {"v": c["i"]},
                 lambda cfg, rs: {"v": [r["v"] for r in rs]})
    args = ["--out", str(tmp_path), "--cache", str(tmp_path / "c")]
    assert run_experiment("local", Cfg, Cfg(), Cfg(), grid, lambda d, p: p.write_bytes(b"x"), args)["cells"]["computed"] == 2
    with pytest.raises(ValueError, match="module level"):
        run_experiment("local", Cfg, Cfg(), Cfg(), grid, lambda d, p: p.write_bytes(b"x"), [*args, "--force", "--jobs", "2"])
    assert grid(Cfg()) == {"v": [0, 1]}  # a grid is still compute(cfg)


def test_cells_must_be_distinct_json_dicts():
    from theorylab.cells import Cells

    with pytest.raises(ValueError, match="same cell twice"):
        Cells(lambda cfg: [{"a": 1}, {"a": 1}], lambda cfg, c: {}, lambda cfg, rs: {})(None)
    with pytest.raises(TypeError, match="dict"):
        Cells(lambda cfg: [1], lambda cfg, c: {}, lambda cfg, rs: {})(None)


def test_cli_reproduce_prints_a_summary_and_rejects_bad_flags(tmp_path, capsys):
    args = ["reproduce", "sparse_nnz", "--quick", "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")]
    assert main(args) == 0 and main(args) == 0
    table = capsys.readouterr().out.splitlines()
    header = next(i for i, line in reversed(list(enumerate(table))) if line.startswith("experiment"))
    assert table[header].split()[:5] == ["experiment", "cells", "computed", "cached", "seconds"]
    assert table[header + 1].split()[:4] == ["sparse_nnz", "1", "0", "1"]  # the second run: from the cache
    (tmp_path / "f").write_text("x")
    assert main([*args[:-1], str(tmp_path / "f")]) == 2
    assert "--cache" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main([*args, "--jobs", "0"])
    assert e.value.code == 2


def test_a_worker_with_other_library_code_refuses_the_task(toy):
    from theorylab.executors import Task, run_task

    task = Task(0, "toycells", str(toy.script), TOY, "0123456789abcdef", {"seeds": [0], "n": 2}, {"seed": 0},
                "compute_cell", False)
    with pytest.raises(RuntimeError, match="same theorylab checkout"):
        run_task(task)
    from theorylab.cache import library_version

    index, result, seconds = run_task(task._replace(library=library_version()))
    assert index == 0 and len(result["x"]) == 2 and result["bad"] is None and seconds >= 0


def test_cli_jobs_runs_a_real_experiment_in_worker_processes_with_the_in_process_data(tmp_path, capsys):
    """`theorylab reproduce --jobs 2` end to end: the cells of a real figure run in two worker
    processes and give the data of the in-process run."""
    base = ["reproduce", "icl_prequential", "--quick"]
    assert main([*base, "--jobs", "2", "--out", str(tmp_path / "pool"), "--cache", str(tmp_path / "c1")]) == 0
    out = capsys.readouterr().out
    assert "executor: process pool" in out
    assert main([*base, "--no-cache", "--out", str(tmp_path / "here")]) == 0
    assert comparable(tmp_path / "pool" / "icl_prequential.json") == comparable(tmp_path / "here" / "icl_prequential.json")


def test_docs_table_of_committed_figures_matches_their_records():
    """docs/reproduce.md lists every committed figure's mode, cells, executor and time as its JSON says."""
    from theorylab.experiment import repo_root
    from theorylab.reproduce import figures_table

    root = repo_root()
    doc = (root / "docs" / "reproduce.md").read_text()
    table = doc.split("<!-- figures-table:start -->\n")[1].split("<!-- figures-table:end -->")[0]
    assert table == figures_table(root / "figures"), "stale: paste theorylab.reproduce.figures_table('figures')"
    stems = {p.stem for p in (root / "figures").glob("*.json")}
    assert stems == {p.stem for p in (root / "experiments").glob("*.py")}  # one record per experiment
    assert all(f"| {s} |" in table for s in stems)
    assert "| quick |" not in table  # figures/ holds the full-mode figures


def test_figures_table_reads_mode_cells_and_executor(tmp_path):
    import json

    from theorylab.reproduce import figures_table

    rec = {"stem": "toy", "quick": True, "data": {},
           "provenance": {"seconds": 12.4, "git_commit": "abcdef123", "cells": {"total": 3, "executor": "process pool (2 workers)"}}}
    (tmp_path / "toy.json").write_text(json.dumps(rec))
    old = dict(rec, stem="old", quick=False, provenance={"seconds": 3.0})
    (tmp_path / "old.json").write_text(json.dumps(old))
    rows = figures_table(tmp_path).splitlines()
    assert rows[2] == "| old | full | — | — | 3 | — |"
    assert rows[3] == "| toy | quick | 3 | process pool (2 workers) | 12 | abcdef1 |"
