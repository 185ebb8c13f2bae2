"""Running an experiment's cells through the cache and an executor; comparing data files.

:func:`run_cells` is what :func:`theorylab.experiment.run_experiment` calls between parsing
flags and writing the figure:

1. ``cells(cfg)`` gives the grid; each cell's key is computed (:func:`theorylab.cache.cell_key`);
2. unless ``force``, every cell found valid in the cache is taken from it; a corrupt entry is
   reported (one line on stderr), deleted and recomputed;
3. the remaining cells go to the executor; each finished cell is stored at once, so a run
   that is killed or fails keeps every cell that finished before;
4. ``assemble(cfg, results)`` builds the data.

:func:`comparable` is the part of a data file that two runs with the same config must agree on
bit for bit: the ``data``, less its top-level ``timings``.  The ``provenance`` section (command,
git commit, package versions, seconds, cells computed and cached) legitimately differs between
runs and is left out.
"""

from __future__ import annotations

import inspect
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .cache import MISS, CacheCorrupt, ResultCache, cell_key, code_version, library_version
from .cells import Cells, as_cells, checked_cells, config_fields, entry_name, to_json
from .executors import InProcess, Task, script_of

__all__ = ["run_cells", "CellRun", "comparable", "summary_table", "figures_table"]


@dataclass
class CellRun:
    """What :func:`run_cells` did: the data and how each cell was obtained."""

    data: dict
    total: int
    computed: int
    cached: int
    corrupt: int
    seconds: float
    executor: str
    code_version: str
    cell_seconds: list = field(default_factory=list)

    def summary(self) -> dict:
        return {"total": self.total, "computed": self.computed, "cached": self.cached, "corrupt": self.corrupt,
                "executor": self.executor, "code_version": self.code_version}


def _source_of(grid: Cells) -> tuple[str, str, str]:
    """(path, source) of the file that defines the grid, and the cell function's own source
    (two lambdas of one test file must not share a key)."""
    fn = getattr(grid.compute_cell, "_theorylab_entry", grid.compute_cell)
    mod = sys.modules.get(getattr(fn, "__module__", None) or "")
    path = getattr(mod, "__file__", None)
    text = Path(path).read_text(encoding="utf-8") if path and Path(path).is_file() else ""
    try:
        own = inspect.getsource(fn)
    except (OSError, TypeError):
        own = getattr(fn, "__qualname__", "")
    return str(path or "<unknown>"), text, own


def run_cells(stem: str, compute, cfg, *, cache: ResultCache | None, force: bool = False, executor=None,
              progress=None) -> CellRun:
    """Compute ``stem``'s data from its cells, reading and filling ``cache`` (``None``: no cache)."""
    grid = as_cells(compute)
    executor = executor or InProcess()
    t0 = time.perf_counter()
    cells = checked_cells(grid.cells(cfg))
    fields = config_fields(cfg)
    path, source, own = _source_of(grid)
    version = code_version(source + "\0" + own)
    keys = [cell_key(stem, fields, c, version) for c in cells]
    results: list = [None] * len(cells)
    done = [False] * len(cells)
    corrupt = 0
    if cache is not None and not force:
        for i, key in enumerate(keys):
            try:
                r = cache.get(stem, version, key)
            except CacheCorrupt as e:
                corrupt += 1
                sys.stderr.write(f"[{stem}] corrupt cache entry, recomputing: {e}\n")
                cache.discard(stem, version, key)
                continue
            if r is not MISS:
                results[i], done[i] = r, True
    todo = [i for i in range(len(cells)) if not done[i]]
    if todo and getattr(executor, "needs_script", False) and script_of(grid) is None:
        raise ValueError(f"{executor.name} runs cells from an experiment script: define {entry_name(grid)} at module "
                         "level of a script file (functions defined elsewhere run in-process only)")
    tasks = [Task(i, stem, path, source, library_version(), fields, cells[i], entry_name(grid),
                  grid.one_cell) for i in todo]
    stream = executor.run(grid, cfg, tasks)
    if progress is not None and todo:
        stream = progress(stream, desc=f"[{stem}] {len(todo)} cells ({len(cells) - len(todo)} cached)", total=len(todo))
    cell_seconds = []
    for i, result, secs in stream:
        results[i], done[i] = result, True
        cell_seconds.append(secs)
        if cache is not None:
            cache.put(stem, version, keys[i], cells[i], result, secs)
    data = to_json(grid.assemble(cfg, results))
    if cache is not None:
        cache.prune(stem, keep=version)
    return CellRun(data=data, total=len(cells), computed=len(todo), cached=len(cells) - len(todo), corrupt=corrupt,
                   seconds=time.perf_counter() - t0, executor=executor.name, code_version=version,
                   cell_seconds=cell_seconds)


def comparable(record_or_path) -> str:
    """The canonical JSON text of a data file's ``data`` without its ``timings`` key: equal for
    two runs of the same command (provenance and timings excluded)."""
    rec = record_or_path
    if isinstance(rec, (str, Path)):
        rec = json.loads(Path(rec).read_text())
    data = {k: v for k, v in rec["data"].items() if k != "timings"}
    return json.dumps({"stem": rec.get("stem"), "quick": rec.get("quick"), "data": data}, sort_keys=True)


def summary_table(rows: list[dict]) -> str:
    """``theorylab reproduce``'s closing table: experiment, cells computed / cached, seconds, outputs."""
    head = ("experiment", "cells", "computed", "cached", "seconds", "outputs")
    body = [(r["stem"], str(r["cells"]["total"]), str(r["cells"]["computed"]), str(r["cells"]["cached"]),
             f"{r['seconds']:.1f}", f"{r['png']}, {Path(r['json']).name}") for r in rows]
    if rows:
        body.append(("total", str(sum(r["cells"]["total"] for r in rows)), str(sum(r["cells"]["computed"] for r in rows)),
                     str(sum(r["cells"]["cached"] for r in rows)), f"{sum(r['seconds'] for r in rows):.1f}", ""))
    widths = [max(len(h), *(len(b[j]) for b in body)) if body else len(h) for j, h in enumerate(head)]
    fmt = lambda row: "  ".join(c.ljust(w) if j in (0, 5) else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths)))  # noqa: E731
    return "\n".join(fmt(row).rstrip() for row in [head, *body])


def figures_table(folder) -> str:
    """Markdown rows (figure, mode, cells, executor, seconds, commit) of every ``<stem>.json`` in
    ``folder``, read from each record's provenance: how and how long each committed figure was made
    ("—" where a record predates the field)."""
    rows = ["| figure | mode | cells | executor | seconds | commit |", "|---|---|---|---|---|---|"]
    for path in sorted(Path(folder).glob("*.json")):
        rec = json.loads(path.read_text())
        prov = rec["provenance"]
        cells = prov.get("cells") if isinstance(prov.get("cells"), dict) else {}
        rows.append(f"| {rec['stem']} | {'quick' if rec['quick'] else 'full'} | {cells.get('total', '—')} | "
                    f"{cells.get('executor', '—')} | {prov['seconds']:.0f} | {str(prov.get('git_commit', '—'))[:7]} |")
    return "\n".join(rows) + "\n"
