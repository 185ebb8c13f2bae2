"""One prepared GPU check: equivalence on the device against the float64 reference, then timings.

Prints one JSON line per measurement.  Run on a CUDA machine::

    python benchmarks/gpu_check.py                 # device cuda, large sizes
    python benchmarks/gpu_check.py --device cpu --smoke   # how CI and laptops test this script
    python benchmarks/gpu_check.py --only ssd      # one section

Sections: ``selective_scan``; ``ssd`` (chunk sizes 1/7/64 vs the float64 reference, the
float32 stability case at 65,536, times at 4k/16k/64k of the torch chunked path, the same
under ``torch.compile``, and Listing 1, against the Triton anchor); ``sparse`` (bf16
fold-and-merge vs dense causal SDPA at n = 16k/64k).

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


def _sibling(name: str):
    """Another script of benchmarks/ as a module (this one may run from anywhere)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(f"_bench_{name}", Path(__file__).resolve().parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def _timings(section, fns: dict, device, **info):
    """Time each path; a path that fails (say torch.compile without a compiler) is reported, not fatal."""
    out = {}
    for name, fn in fns.items():
        try:
            out[name] = _time(fn, device)
            emit(section=section, check="time", path=name, device=str(device), seconds=out[name], **info)
        except Exception as e:  # noqa: BLE001 - report and go on
            emit(section=section, check="time", path=name, device=str(device), error=repr(e)[:500], **info)
    return out


SSD_TRITON_ANCHOR_S = 1.16e-3  # chunk_simple_gla, fp32, 1 x 65,536 x 16 x 64 x 64 on an H200 (issue anchor)


def ssd_section(device, smoke):
    """theorylab.ssm.ssd (torch) on the device: chunk sizes 1/7/64 vs the float64 reference, the
    float32 stability case, then times at 4k/16k/64k against Listing 1 and the Triton anchor."""
    import torch

    from theorylab.ssm import ssd
    from theorylab.ssm._duality_torch import ssd_chunked_torch
    from theorylab.ssm.duality import make_inputs, ssd_ref
    from theorylab.tolerances import compare

    listing1_ssd = _sibling("ssm_ssd").listing1_ssd  # the paper's Listing 1 in einsums
    names = ("X", "log_a", "B", "C")
    rng = np.random.default_rng(0)
    p = make_inputs(rng, batch=2, length=33 if smoke else 130, heads=3, head_dim=5, state=7)
    for dt in (torch.float64, torch.float32):
        low = [torch.tensor(p[k], dtype=dt, device=device) for k in names]
        ref = ssd_ref(*[v.double().cpu().numpy() for v in low])
        for Q in (1, 7, 64):
            c = compare(ssd(*low, chunk_size=Q, backend="torch"), ref, dtype=str(dt).replace("torch.", ""))
            emit(section="ssd", check=f"torch chunk {Q} vs float64 ref", dtype=str(dt), device=str(device),
                 rel_error=c.rel_error, rtol=c.rtol, ok=c.ok)
    L = 4096 if smoke else 65536  # the stability case: float32, log_a anywhere in [-30, 0]
    q = make_inputs(rng, batch=1, length=L, heads=2, head_dim=4, state=4, log_a_range=(-30.0, 0.0), dtype=np.float32)
    ref = ssd_ref(*[q[k].astype(np.float64) for k in names])
    out = ssd(*[torch.from_numpy(q[k]).to(device) for k in names], backend="torch")
    c = compare(out, ref, dtype="float32")
    emit(section="ssd", check="float32 stability, log_a in [-30, 0]", length=L, device=str(device),
         rel_error=c.rel_error, finite=bool(torch.isfinite(out).all()), ok=bool(c.rel_error <= 1e-3))
    compiled = torch.compile(ssd_chunked_torch, dynamic=False)
    lengths = (256, 512) if smoke else (4096, 16384, 65536)
    for L in lengths:
        sizes = dict(batch=1, length=L, heads=2, head_dim=8, state=8) if smoke else \
            dict(batch=1, length=L, heads=16, head_dim=64, state=64)
        q = make_inputs(rng, **sizes, dtype=np.float32)
        t = [torch.from_numpy(q[k]).to(device) for k in names]
        fns = {"torch_chunked": lambda: ssd(*t, chunk_size=64, backend="torch"),
               "listing1": lambda: listing1_ssd(*t, 64)}
        if L == lengths[-1]:  # compiling takes a while: only at the anchor's length
            fns["torch_chunked_compiled"] = lambda: compiled(*t, chunk_size=64)
        with torch.inference_mode():
            times = _timings("ssd", fns, device, length=L)
        if L == 65536 and times:
            best = min(times.values())
            emit(section="ssd", check="fastest torch path over the Triton anchor", device=str(device),
                 ratio=best / SSD_TRITON_ANCHOR_S, target=2.0, ok=bool(best <= 2.0 * SSD_TRITON_ANCHOR_S))


def sparse_section(device, smoke):
    """theorylab.sparse.attention (torch, strided, bf16) vs dense causal SDPA: rows checked
    against the float64 reference, then times (target: >= 10x at n = 65,536)."""
    import math

    import torch

    from theorylab.sparse import attention, strided

    rows_ref = _sibling("sparse_attention").rows_ref  # float64 reference of chosen query rows
    sdpa = torch.nn.functional.scaled_dot_product_attention
    rng = np.random.default_rng(0)
    for n in ((256, 1024) if smoke else (16384, 65536)):
        d = 16 if smoke else 64
        pattern = strided(math.isqrt(n - 1) + 1)
        x = {c: rng.standard_normal((1, 1, n, d)).astype(np.float32) for c in "qkv"}
        q, k, v = (torch.from_numpy(x[c]).to(device, torch.bfloat16) for c in "qkv")
        with torch.inference_mode():
            out = attention(q, k, v, pattern, backend="torch")
            rows = np.unique(np.concatenate([[0, n - 1], rng.integers(0, n, 30)]))
            lowered = {c: t.float().cpu().numpy() for c, t in zip("qkv", (q, k, v))}
            ref = rows_ref(lowered["q"], lowered["k"], lowered["v"], pattern, rows)
            err = float(np.abs(out[0, 0, rows].float().cpu().numpy() - ref).max() / np.abs(ref).max())
            emit(section="sparse", check="bf16 strided vs float64 rows", n=n, device=str(device),
                 rel_error=err, rtol=2e-2, ok=bool(err <= 2e-2))
            times = _timings("sparse", {"fold_merge": lambda: attention(q, k, v, pattern, backend="torch"),
                                        "sdpa_dense": lambda: sdpa(q, k, v, is_causal=True)}, device, n=n)
        if len(times) == 2:
            emit(section="sparse", check="dense over fold-and-merge", n=n, device=str(device),
                 ratio=times["sdpa_dense"] / times["fold_merge"], target=10.0)


SECTIONS = {"selective_scan": selective_scan_section, "ssd": ssd_section, "sparse": sparse_section}


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
