"""Where cells run: in this process (default), a local process pool, or a Dask cluster.

Every executor has ``run(grid, cfg, tasks)``: it yields ``(index, result, seconds)`` as cells
finish (in any order), so the driver stores each finished cell in the cache at once; the first
exception of a cell cancels what has not started and is raised.  Results are JSON values
(:func:`theorylab.cells.to_json`), computed the same way everywhere.

Pool and Dask workers do not need the experiment script on their disk nor the cache: a task
carries the script's *source*, the config fields and the cell, and the worker execs the source
into a module of its own (once per process).  Workers do need ``theorylab`` importable at the
same code version as the driver: each task carries the driver's
:func:`theorylab.cache.library_version` and a worker with another version refuses the task
(otherwise a cached cell could come from other code than its key says).

* ``InProcess()`` -- calls the functions directly, in cell order.
* ``ProcessPool(jobs)`` -- ``concurrent.futures.ProcessPoolExecutor`` with the ``spawn`` start
  method (a forked child of a process that ran torch or numba threads can deadlock).
* ``DaskExecutor(address)`` -- ``distributed.Client(address)``; ``address="local"`` starts a
  ``LocalCluster`` of ``jobs`` single-threaded worker processes (default 2) for this run.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import importlib.util
import sys
import time
from pathlib import Path
from typing import NamedTuple

from .cells import Cells, config_from_fields, entry_name, to_json

__all__ = ["Task", "run_task", "InProcess", "ProcessPool", "DaskExecutor", "make_executor", "use_executor",
           "current_executor"]


class Task(NamedTuple):
    index: int
    stem: str
    script: str  # path, for messages and tracebacks
    source: str  # the script's source text
    library: str  # the driver's library_version()
    config: dict
    cell: dict
    entry: str  # module-level name of compute_cell (or of a one-cell compute)
    one_cell: bool


_MODULES: dict = {}


def _load_source(stem: str, script: str, source: str):
    """The script as a module built from ``source`` (cached per process by the source's hash)."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    name = f"_theorylab_cell_{stem}_{digest}"
    if name not in _MODULES:
        spec = importlib.util.spec_from_loader(name, loader=None, origin=script)
        mod = importlib.util.module_from_spec(spec)
        mod.__file__ = script
        sys.modules[name] = mod  # dataclasses look their module up here
        exec(compile(source, script, "exec"), mod.__dict__)
        _MODULES[name] = mod
    return _MODULES[name]


def run_task(task: Task):
    """Worker entry point: run one cell of a script given by its source; ``(index, result, s)``."""
    from .cache import library_version

    mine = library_version()
    if mine != task.library:
        import socket

        raise RuntimeError(f"worker {socket.gethostname()} has theorylab code version {mine}, the driver {task.library}: "
                           "every worker must import the same theorylab checkout as the driver (a library file edited "
                           "after the driver started counts as another version; rerun)")
    mod = _load_source(task.stem, task.script, task.source)
    cfg = config_from_fields(mod.Config, task.config)
    fn = getattr(mod, task.entry)
    t0 = time.perf_counter()
    result = fn(cfg) if task.one_cell else fn(cfg, task.cell)
    return task.index, to_json(result), time.perf_counter() - t0


class InProcess:
    """Run cells here, in order (the default; the only executor for functions not in a script)."""

    name = "in-process"
    needs_script = False

    def run(self, grid: Cells, cfg, tasks):
        for t in tasks:
            t0 = time.perf_counter()
            result = to_json(grid.compute_cell(cfg, t.cell))
            yield t.index, result, time.perf_counter() - t0

    def close(self):
        pass


class _FutureExecutor:
    needs_script = True

    def _drain(self, futures, as_completed):
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()


class ProcessPool(_FutureExecutor):
    """``jobs`` local worker processes (spawned once, reused by every experiment of a run)."""

    def __init__(self, jobs: int, initializer=None):
        if not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"--jobs must be an integer >= 1; got {jobs!r}")
        self.jobs, self.initializer = jobs, initializer
        self.name = f"process pool ({jobs} workers)"
        self._pool = None

    def run(self, grid, cfg, tasks):
        import concurrent.futures as cf
        import multiprocessing

        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=self.initializer)
        futures = [self._pool.submit(run_task, t) for t in tasks]
        yield from self._drain(futures, cf.as_completed)

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class DaskExecutor(_FutureExecutor):
    """Cells as tasks of a Dask ``distributed`` cluster at ``address`` (``"local"``: start one)."""

    def __init__(self, address: str, jobs: int | None = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ValueError("--scheduler needs dask distributed: pip install 'theorylab[dist]'") from None
        self._cluster = None
        if address == "local":
            self._cluster = LocalCluster(n_workers=jobs or 2, threads_per_worker=1, processes=True,
                                         dashboard_address=None)
            address = self._cluster.scheduler_address
        self.client = Client(address, timeout=20)
        self.name = f"dask ({address})"

    def run(self, grid, cfg, tasks):
        from distributed import as_completed

        futures = [self.client.submit(run_task, t, pure=False) for t in tasks]
        yield from self._drain(futures, as_completed)

    def close(self):
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(jobs: int | None = None, scheduler: str | None = None):
    """The executor the flags ask for: ``--scheduler`` (Dask), else ``--jobs N`` > 1 (pool),
    else in-process."""
    if scheduler:
        return DaskExecutor(scheduler, jobs)
    if jobs is not None and jobs != 1:
        return ProcessPool(jobs)
    return InProcess()


_CURRENT: contextvars.ContextVar = contextvars.ContextVar("theorylab_executor", default=None)


def current_executor():
    """The executor of the enclosing :func:`use_executor` block, or ``None``."""
    return _CURRENT.get()


@contextlib.contextmanager
def use_executor(executor):
    """Run every experiment inside the block on ``executor`` (one pool or cluster for a whole
    ``theorylab reproduce``, instead of one per figure); closes it at the end."""
    token = _CURRENT.set(executor)
    try:
        yield executor
    finally:
        _CURRENT.reset(token)
        executor.close()


def script_of(grid: Cells) -> Path | None:
    """The file that defines ``grid``'s cell function at module level, or ``None``."""
    fn = getattr(grid.compute_cell, "_theorylab_entry", grid.compute_cell)
    mod = sys.modules.get(getattr(fn, "__module__", None) or "")
    path = getattr(mod, "__file__", None)
    if not path or getattr(mod, entry_name(grid), None) is not fn:
        return None
    return Path(path)
