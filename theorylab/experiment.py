"""Shared machinery of the experiment scripts in ``experiments/``.

An experiment script is::

    @dataclass(frozen=True)
    class Config:            # every field has a CLI flag --field (tuples: comma-separated)
        seeds: tuple = (0, 1, 2)
        ...
    FULL = Config(...)
    QUICK = Config(...)      # the same figure in seconds on 2 CPU cores

    def cells(cfg) -> list[dict]: ...            # the grid: one JSON dict per independent unit
    def compute_cell(cfg, cell) -> dict: ...     # one cell's numbers (JSON)
    def assemble(cfg, results) -> dict: ...      # results (in cell order) -> the data
    compute = Cells(cells, compute_cell, assemble)
    def plot(data, path) -> None: ...            # draws the PNG from `data` alone

    def main(argv=None):
        return run_experiment("<stem>", Config, FULL, QUICK, compute, plot, argv)

(a plain ``compute(cfg) -> dict`` also works: it is one cell; see :mod:`theorylab.cells`).

``run_experiment`` parses ``--quick``, ``--out DIR``, the config flags and the run flags
(``--cache DIR``, ``--no-cache``, ``--force``, ``--jobs N``, ``--scheduler ADDRESS``), prints the
config, runs the cells through the results cache and an executor
(:mod:`theorylab.reproduce`, :mod:`theorylab.cache`, :mod:`theorylab.executors`), and writes
``<out>/<stem>.json`` (``data`` + ``provenance``: command, config, seeds, package versions, git
commit, seconds, cells computed and cached) and ``<out>/<stem>.png`` together: both are
written to temporaries and renamed only when both are complete, so an interrupted run leaves
the previous pair (or none) and never a JSON without its PNG.  ``--out`` and ``--cache`` are
checked before any computation.  Files get the mode the umask gives.  The same command gives
the same ``data`` except its top-level ``timings`` (wall-clock times and what is fitted to
them): all randomness comes from the config's seeds (:func:`theorylab.reproduce.comparable`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

__all__ = ["strict_json", "run_experiment", "provenance", "progress", "apply_style", "atomic_write", "atomic_write_all", "check_out_dir",
           "remove_stale_temporaries", "repo_root", "default_out", "default_cache", "add_run_flags", "Cells",
           "load_script", "int_flag"]

from .cells import Cells  # noqa: E402  (re-exported: scripts declare their grid with it)


def load_script(path, name: str | None = None):
    """Import the script at ``path`` (an experiment or benchmark) as a module and return it.

    Registered in ``sys.modules`` under ``name`` (default ``_theorylab_script_<stem>``): dataclasses
    look their module up there."""
    import importlib.util

    path = Path(path)
    spec = importlib.util.spec_from_file_location(name or f"_theorylab_script_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path} is not a Python script")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def int_flag(flag: str, lo: int, what: str):
    """An argparse ``type`` for an integer flag >= ``lo``; the error names the flag and says ``what`` it must be."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be {what}; got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"{flag} must be {what}; got {v}")
        return v

    return parse


def repo_root() -> Path:
    """The checkout holding ``theorylab/`` (experiments, benchmarks and figures live there)."""
    return Path(__file__).resolve().parent.parent


def default_out() -> Path:
    return repo_root() / "figures"


def default_cache() -> Path:
    """``.theorylab-cache/`` in the checkout (it carries its own ``.gitignore``)."""
    return repo_root() / ".theorylab-cache"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True, text=True, timeout=10, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo_root(), capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("theorylab", "numpy", "torch", "numba", "sympy", "matplotlib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def provenance(cfg, argv) -> dict:
    cfg_dict = dataclasses.asdict(cfg)
    return {
        "command": " ".join([Path(sys.argv[0]).name, *argv]) if argv is not None else " ".join(sys.argv),
        "config": cfg_dict,
        "seeds": cfg_dict.get("seeds"),
        "versions": _versions(),
        "git_commit": _git_commit(),
    }


def _umask_mode() -> int:
    """0o666 less the process umask: the mode a plain ``open(path, "w")`` would give."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _temp_path(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.tmp.", suffix=path.suffix)
    os.close(fd)
    os.chmod(tmp, _umask_mode())  # mkstemp creates 0600; a figure is as readable as any file written here
    return Path(tmp)


def remove_stale_temporaries(folder: Path, stem: str) -> list[Path]:
    """Delete ``.<stem>.tmp.*`` files that a killed run left in ``folder``; return them."""
    stale = sorted(Path(folder).glob(f".{stem}.tmp.*")) if Path(folder).is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def atomic_write_all(writes: dict) -> None:
    """``{path: write}``: call every ``write(tmp_path)`` on a temporary beside its path, then
    rename them all -- an exception in any writer leaves every target as it was and no
    temporary behind; a killed process leaves ``.<stem>.tmp.*`` files that the next run of the
    same experiment removes (:func:`remove_stale_temporaries`)."""
    temps = {}
    try:
        for path, write in writes.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            temps[path] = _temp_path(path)
            write(temps[path])
        for path, tmp in temps.items():
            os.replace(tmp, path)
    finally:
        for tmp in temps.values():
            if tmp.exists():
                tmp.unlink()


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path`` (no half-written figures)."""
    atomic_write_all({Path(path): write})


def check_out_dir(out) -> Path:
    """``out`` as a folder that exists (created if needed) and is writable; else ``ValueError``
    naming it -- checked before any computation, so a bad ``--out`` costs nothing."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is not a folder (a file of that name exists)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".theorylab-write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"--out {out} is not a writable folder: {e.strerror or e}") from None
    return out


def progress(iterable, desc: str = "", total: int | None = None):
    """``tqdm`` over ``iterable`` on stderr: a live bar on a terminal; elsewhere (CI, a pipe,
    a log file) one summary line when it ends, so logs stay readable."""
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    bar = tqdm(iterable, desc=desc, total=total, file=sys.stderr, disable=not tty, leave=True, dynamic_ncols=True)
    t0 = time.perf_counter()
    n = 0
    for item in bar:
        n += 1
        yield item
    if not tty:
        sys.stderr.write(f"{desc} done: {n} steps in {time.perf_counter() - t0:.1f}s\n")


def apply_style() -> None:
    """The one plotting style (Agg backend; set here, never at import of theorylab)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 110,
            "font.size": 9,
            "axes.titlesize": 10,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
        }
    )


def _field_parser(ftype, default):
    if isinstance(default, bool):
        return lambda s: s.lower() in ("1", "true", "yes")
    if isinstance(default, tuple):
        elem = type(default[0]) if default else str
        return lambda s: tuple(elem(v) for v in s.split(",") if v)
    return type(default)


_jobs = int_flag("--jobs", 1, "an integer >= 1")


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """The flags of a run (shared by experiment scripts and ``theorylab reproduce``)."""
    p.add_argument("--cache", type=Path, default=None, help="results cache folder (default: .theorylab-cache/ in the checkout)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the results cache")
    p.add_argument("--force", action="store_true", help="recompute every cell (and refresh the cache)")
    p.add_argument("--jobs", type=_jobs, default=None, help="run cells in N local worker processes")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run cells on a Dask cluster (tcp://host:8786), or 'local' to start a LocalCluster")


def open_cache(args, error):
    """The cache the flags ask for (``None`` for ``--no-cache``); an explicit ``--cache`` that
    cannot be written is ``error(message)``; an unwritable default only warns."""
    from .cache import ResultCache

    if args.no_cache:
        return None
    cache = ResultCache(args.cache or default_cache())
    try:
        cache.prepare()
    except OSError as e:
        if args.cache is not None:
            error(f"--cache {args.cache} is not a writable folder: {e.strerror or e}")
        sys.stderr.write(f"theorylab: results cache disabled ({cache.root} not writable: {e.strerror or e})\n")
        return None
    return cache


def parse_config(stem, Config, FULL, QUICK, argv, with_run=False):
    p = argparse.ArgumentParser(prog=stem, description=(Config.__doc__ or "").strip().splitlines()[0] if Config.__doc__ else None)
    p.add_argument("--quick", action="store_true", help="quick mode: the same figure at small sizes")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: figures/)")
    add_run_flags(p)
    for f in dataclasses.fields(Config):
        default = getattr(FULL, f.name)
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=_field_parser(f.type, default), default=None)
    args = p.parse_args(argv)
    try:
        out = check_out_dir(args.out or default_out())
    except ValueError as e:
        p.error(str(e))
    base = QUICK if args.quick else FULL
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if getattr(args, f.name) is not None}
    cfg = dataclasses.replace(base, **overrides)
    if with_run:
        return cfg, out, args.quick, args, open_cache(args, p.error)
    return cfg, out, args.quick


def run_experiment(stem, Config, FULL, QUICK, compute, plot, argv=None) -> dict:
    """Parse flags, compute the cells (cache, executor), write ``<stem>.json`` and ``<stem>.png``;
    return their paths with ``cells`` (total, computed, cached, ...) and ``seconds``."""
    from .executors import current_executor, make_executor
    from .reproduce import run_cells

    argv = list(sys.argv[1:] if argv is None else argv)
    cfg, out, quick, args, cache = parse_config(stem, Config, FULL, QUICK, argv, with_run=True)
    print(f"[{stem}] {'quick' if quick else 'full'} config: {cfg}", flush=True)
    apply_style()
    own = args.jobs is not None or args.scheduler is not None
    executor = make_executor(args.jobs, args.scheduler) if own else (current_executor() or make_executor())
    try:
        run = run_cells(stem, compute, cfg, cache=cache, force=args.force, executor=executor, progress=progress)
    finally:
        if own:
            executor.close()
    data = run.data
    record = {"stem": stem, "quick": quick, "data": data, "provenance": provenance(cfg, [f"experiments/{stem}.py", *argv])}
    record["provenance"]["seconds"] = round(run.seconds, 2)
    record["provenance"]["cells"] = run.summary()
    json_path, png_path = Path(out) / f"{stem}.json", Path(out) / f"{stem}.png"
    remove_stale_temporaries(out, stem)
    text = json.dumps(strict_json(record), indent=1, sort_keys=True, allow_nan=False) + "\n"
    atomic_write_all({png_path: lambda p: plot(data, p), json_path: lambda p: p.write_text(text)})  # both or neither
    print(f"[{stem}] wrote {png_path} and {json_path} ({record['provenance']['seconds']} s; cells: {run.computed} computed, "
          f"{run.cached} cached, {run.executor})", flush=True)
    return {"json": str(json_path), "png": str(png_path), "stem": stem, "seconds": run.seconds, "cells": run.summary()}


def strict_json(o):
    """``o`` with numpy scalars and arrays as Python values and every non-finite float as
    ``None``: data files are strict JSON (``null``, never ``NaN``/``Infinity``)."""
    import math

    import numpy as np

    if isinstance(o, dict):
        return {k: strict_json(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [strict_json(v) for v in o]
    if isinstance(o, np.ndarray):
        return strict_json(o.tolist())
    if isinstance(o, np.generic):
        return strict_json(o.item())
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if o is None or isinstance(o, (str, int, float, bool)):
        return o
    raise TypeError(f"not JSON-serializable: {type(o).__name__}")
