"""One prepared GPU check: equivalence on the device against the float64 reference, then timings.

Prints one JSON line per measurement.  Run on a CUDA machine::

    python benchmarks/gpu_check.py                 # device cuda, large sizes
    python benchmarks/gpu_check.py --device cpu --smoke   # how CI and laptops test this script

Every section is independent: a failure in one prints ``{"section": ..., "error": ...}`` and
the script goes on, so one run yields every number it can.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback

import numpy as np


def _sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _time(fn, device, repeat=5):
    fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def emit(**kw):
    print(json.dumps(kw, sort_keys=True, default=float), flush=True)


def selective_scan_section(device, smoke):
    """theorylab.ssm.selective_scan on the device vs the float64 reference; time vs length."""
    import torch

    from theorylab.ssm import make_inputs, selective_attention_matrix, selective_scan, selective_scan_ref
    from theorylab.tolerances import compare

    rng = np.random.default_rng(0)
    p = make_inputs(rng, batch=2, length=33 if smoke else 1000, channels=16, state=16)
    ref, _ = selective_scan_ref(*[p[k] for k in ("x", "delta", "A", "B", "C", "D")])
    for dt in (torch.float64, torch.float32):
        low = {k: torch.tensor(v, dtype=dt, device=device) for k, v in p.items()}
        ref_dt, _ = selective_scan_ref(*[low[k].double().cpu().numpy() for k in ("x", "delta", "A", "B", "C", "D")])
        out = selective_scan(*[low[k] for k in ("x", "delta", "A", "B", "C", "D")], backend="torch")
        c = compare(out, ref_dt, dtype=str(dt).replace("torch.", ""))
        emit(section="selective_scan", check="torch vs float64 ref", dtype=str(dt), device=str(device),
             rel_error=c.rel_error, rtol=c.rtol, ok=c.ok)
        M = selective_attention_matrix(*[low[k] for k in ("delta", "A", "B", "C")], backend="torch")
        y_attn = torch.einsum("bcts,bsc->btc", M, low["x"]) + low["D"] * low["x"]
        c = compare(y_attn, ref_dt, dtype=str(dt).replace("torch.", ""))
        emit(section="selective_scan", check="M x + D x vs float64 ref", dtype=str(dt), device=str(device),
             rel_error=c.rel_error, rtol=c.rtol, ok=c.ok)
    del ref
    for L in ((64, 128) if smoke else (1024, 4096, 16384)):
        q = make_inputs(rng, batch=1, length=L, channels=256 if not smoke else 8, state=16, dtype=np.float32)
        t = [torch.from_numpy(q[k]).to(device) for k in ("x", "delta", "A", "B", "C", "D")]
        sec = _time(lambda: selective_scan(*t, backend="torch"), device)
        emit(section="selective_scan", check="time", length=L, channels=t[0].shape[2], device=str(device), seconds=sec)


SECTIONS = {"selective_scan": selective_scan_section}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--only", nargs="*", default=None, help=f"sections to run (default all: {sorted(SECTIONS)})")
    args = ap.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_check: CUDA is not available; use --device cpu to test the script")
    emit(section="machine", device=args.device, torch=torch.__version__,
         gpu=torch.cuda.get_device_name() if args.device.startswith("cuda") else None)
    failed = 0
    for name in args.only or sorted(SECTIONS):
        try:
            SECTIONS[name](args.device, args.smoke)
        except Exception as e:  # report and go on: one run should yield every number it can
            failed += 1
            emit(section=name, error=repr(e), trace=traceback.format_exc()[-2000:])
    return {"failed_sections": failed}


if __name__ == "__main__":
    sys.exit(1 if main()["failed_sections"] else 0)
