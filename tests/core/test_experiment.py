"""Experiment machinery and the hidden-attention figure in quick mode, at tiny sizes."""

import json
from dataclasses import dataclass

import pytest

from theorylab.cli import _run_script, _scripts
from theorylab.experiment import run_experiment


@dataclass(frozen=True)
class Cfg:
    seeds: tuple = (0, 1)
    n: int = 3
    scale: float = 1.0


def test_run_experiment_writes_png_and_json_with_provenance(tmp_path):
    def compute(cfg):
        return {"values": [cfg.scale * i for i in range(cfg.n)]}

    def plot(data, path):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.plot(data["values"])
        fig.savefig(path)
        plt.close(fig)

    paths = run_experiment("toy", Cfg, Cfg(), Cfg(n=2), compute, plot, ["--quick", "--scale", "2.5", "--seeds", "3,4",
                                                                       "--out", str(tmp_path), "--no-cache"])
    rec = json.loads((tmp_path / "toy.json").read_text())
    assert rec["data"] == {"values": [0.0, 2.5]} and rec["quick"] is True
    prov = rec["provenance"]
    assert prov["config"] == {"seeds": [3, 4], "n": 2, "scale": 2.5} and prov["seeds"] == [3, 4]
    assert {"numpy", "torch", "theorylab", "python"} <= set(prov["versions"]) and "git_commit" in prov
    assert prov["cells"]["total"] == 1 and prov["cells"]["executor"] == "in-process"  # a plain compute is one cell
    assert (tmp_path / "toy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["png"].endswith("toy.png")
    assert not list(tmp_path.glob(".toy*"))  # no temp files left behind


def test_failed_plot_leaves_no_partial_file(tmp_path):
    def plot(data, path):
        path.write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run_experiment("toy", Cfg, Cfg(), Cfg(), lambda cfg: {}, plot, ["--out", str(tmp_path), "--no-cache"])
    assert not (tmp_path / "toy.png").exists() and not list(tmp_path.glob(".toy*"))


def test_hidden_attention_figure_quick_is_deterministic(tmp_path):
    from theorylab.reproduce import comparable

    tiny = ["--error-lengths", "4,9", "--time-lengths", "16,32,64", "--time-matrix-max", "32", "--heat-length", "8",
            "--no-cache"]
    script = _scripts("experiments")["ssm_hidden_attention"]
    first = _run_script(script, ["--quick", "--out", str(tmp_path / "a"), *tiny])
    second = _run_script(script, ["--quick", "--out", str(tmp_path / "b"), *tiny])
    assert first["cells"]["computed"] == second["cells"]["computed"] == 6  # heatmap, 2 error and 3 timed lengths
    assert comparable(first["json"]) == comparable(second["json"])  # all but timings and provenance
    data = json.loads(open(first["json"]).read())["data"]
    assert set(data["timings"]) == {"times", "slopes"} and len(data["timings"]["times"]["numba scan"]) == 3
    assert max(max(e) for e in data["errors"]["float64"]) < 1e-10
    assert max(max(e) for e in data["errors"]["float32"]) < 1e-4


def _toy_plot(data, path):
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + repr(data).encode())


def test_a_failed_plot_keeps_the_previous_pair_and_writes_no_json(tmp_path):
    run_experiment("toy", Cfg, Cfg(), Cfg(), lambda cfg: {"v": 1}, _toy_plot, ["--out", str(tmp_path), "--no-cache"])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken(data, path):
        path.write_bytes(b"half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        run_experiment("toy", Cfg, Cfg(), Cfg(), lambda cfg: {"v": 2}, broken, ["--out", str(tmp_path), "--no-cache"])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # old JSON and PNG, nothing else


def test_files_get_the_umask_mode_and_stale_temporaries_are_removed(tmp_path):
    import os
    import stat

    (tmp_path / ".toy.tmp.abc123.png").write_bytes(b"")  # what a SIGKILL mid-write leaves
    old = os.umask(0o022)
    try:
        run_experiment("toy", Cfg, Cfg(), Cfg(), lambda cfg: {"v": 1}, _toy_plot, ["--out", str(tmp_path), "--no-cache"])
    finally:
        os.umask(old)
    for name in ("toy.json", "toy.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.json", "toy.png"]


def test_data_files_are_strict_json(tmp_path):
    run_experiment("toy", Cfg, Cfg(), Cfg(), lambda cfg: {"v": [1.0, float("nan"), float("inf")]}, _toy_plot,
                   ["--out", str(tmp_path), "--no-cache"])
    text = (tmp_path / "toy.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c))["data"]["v"] == [1.0, None, None]


def test_a_bad_out_fails_before_compute(tmp_path):
    (tmp_path / "file").write_text("x")
    computed = []
    with pytest.raises(SystemExit) as e:
        run_experiment("toy", Cfg, Cfg(), Cfg(), lambda cfg: computed.append(1) or {}, _toy_plot,
                       ["--out", str(tmp_path / "file"), "--no-cache"])
    assert e.value.code == 2 and computed == []
