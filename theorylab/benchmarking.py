"""Shared machinery of the scripts in ``benchmarks/``.

A benchmark script defines ``main(argv=None) -> dict`` that measures theorylab's path,
the baseline a user would otherwise use, and a physical floor *in the same run*, and
prints their ratios.  ``--smoke`` shrinks every size so CI can check that it runs;
``--json`` prints one JSON line with the results.  Speed targets live here, never in
timed tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

__all__ = ["timeit", "interleaved", "bench_parser", "emit", "machine"]


def timeit(fn, *, repeat: int = 5, warmup: int = 1, min_seconds: float = 0.0, clock=time.perf_counter,
           reduce=statistics.median) -> float:
    """Per-call time of ``fn()`` in seconds: ``reduce`` (median) over ``repeat`` runs after ``warmup``.

    With ``min_seconds > 0`` each measured run repeats ``fn`` until that much time has
    passed on ``clock`` and reports the per-call time (for sub-millisecond calls).
    ``clock=time.thread_time`` (or ``process_time``) with ``reduce=min`` measures CPU work,
    far less disturbed by other processes than wall time -- what cost-law fits use.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        calls, t0 = 0, clock()
        while True:
            fn()
            calls += 1
            dt = clock() - t0
            if dt >= min_seconds:
                break
        times.append(dt / calls)
    return reduce(times)


def interleaved(fns: dict, repeat: int, *, settle_s: float = 0.03) -> dict:
    """Seconds of every timed call per function (name -> list), one timed call of each per round.

    Rounds interleave the paths, so load from other processes falls on all of them alike.
    Before its timed call each path runs untimed for at least ``settle_s`` seconds (at least
    one call): what the previous path left behind then no longer counts against this one.
    Chiefly that is an OpenMP thread pool still spinning -- torch's and numba's workers
    each busy-wait after a parallel region (libgomp's default spin lasts ~10-20 ms on a
    CPU whose ``pause`` is slow), taking the cores from the other library's threads.  Each
    path is thus timed in the steady state of a user who calls it repeatedly.
    """
    times = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            while time.perf_counter() - t0 < settle_s:
                fn()
            times[k].append(timeit(fn, repeat=1, warmup=0))
    return times


def bench_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks that the benchmark runs")
    p.add_argument("--json", action="store_true", help="print the results as one JSON line")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (median reported)")
    return p


def machine() -> dict:
    import numpy as np
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "torch": torch.__version__,
    }


def emit(name: str, results: dict, as_json: bool) -> dict:
    """Print ``results`` (a dict of label -> value) as a table or one JSON line; return it."""
    results = {"benchmark": name, **results, "machine": machine()}
    if as_json:
        print(json.dumps(results, sort_keys=True, default=float))
    else:
        print(f"== {name}")
        for k, v in results.items():
            if k in ("benchmark",):
                continue
            print(f"  {k:<34} {v:.4g}" if isinstance(v, float) else f"  {k:<34} {v}")
    return results
