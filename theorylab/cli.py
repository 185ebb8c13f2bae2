"""The ``theorylab`` command: ``list``, ``verify``, ``reproduce``, ``bench``, ``readme-table``.

* ``theorylab list [--json]``: registered claims with paper, kind and experiment.
* ``theorylab verify [CLAIM_OR_THEME ...] [--samples N] [--seed S] [--full] [--json] [--report PATH]``:
  runs each claim's check on N random instances and its negative control; exits 1 if a
  claim fails, a control is not rejected, or a proof fails; ``--report`` also writes a
  Markdown verification report.
* ``theorylab reproduce [EXPERIMENT ...] [--quick] [--out DIR] [--cache DIR | --no-cache] [--force]
  [--jobs N | --scheduler ADDRESS]``: runs experiment scripts cell by cell through the results
  cache (finished cells are skipped; ``--force`` recomputes), on an executor (in-process, N
  local processes, a Dask cluster or ``local``), writing ``<stem>.png`` and ``<stem>.json``,
  then prints a summary table (docs/reproduce.md).
* ``theorylab bench [NAME ...] [--smoke]``: runs benchmark scripts, printing ratios.

Exit codes: ``0`` every claim holds (or the command succeeded), ``1`` a claim fails, a
control is accepted or invalid, or a proof fails, ``2`` a usage error (unknown claim, theme,
experiment or benchmark; ``--samples`` < 1; negative ``--seed``; an ``--out`` that is not a
writable folder), reported on stderr before anything is computed.  Output into a pipe that
closes early (``theorylab list | head -1``) ends quietly with the command's own exit code.
``--json`` output is strict JSON: non-finite numbers are ``null``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import claims as C
from .experiment import add_run_flags, check_out_dir, int_flag, load_script, progress, repo_root

USAGE_ERROR = 2


class _UsageError(Exception):
    pass


def _emit(text: str = "") -> None:
    """``print`` that survives a reader closing the pipe: later output goes to /dev/null."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _scripts(folder: str) -> dict[str, Path]:
    d = repo_root() / folder
    if not d.is_dir():
        raise _UsageError(
            f"no {folder}/ folder at {d}; `reproduce` and `bench` run from a source checkout (pip install -e .)"
        )
    return {p.stem: p for p in sorted(d.glob("*.py")) if not p.name.startswith("_") and p.stem != "gpu_check"}


def _run_script(path: Path, argv: list[str]):
    mod = load_script(path)
    if not hasattr(mod, "main"):
        raise _UsageError(f"{path} has no main(argv)")
    return mod.main(argv)


def _pick(available: dict, names: list[str], what: str) -> list[str]:
    unknown = [n for n in names if n not in available]
    if unknown:
        raise _UsageError(f"unknown {what} {unknown}; available: {sorted(available)}")
    return names or sorted(available)


def cmd_list(args) -> int:
    claims = C.all_claims()
    if args.json:
        rows = [
            {"id": c.id, "paper": c.paper.cite(), "kind": c.kind, "experiment": c.experiment,
             "statement": c.statement, "module": c.module, "test": c.test, "negative_control": c.controls}
            for c in claims
        ]
        _emit(json.dumps({"claims": rows}, indent=1))
        return 0
    w = max(len(c.id) for c in claims)
    pw = max(len("paper"), *(len(c.paper.short()) for c in claims))
    _emit(f"{'claim':<{w}}  {'kind':<11}  {'paper':<{pw}}  experiment")
    for c in claims:
        _emit(f"{c.id:<{w}}  {c.kind:<11}  {c.paper.short():<{pw}}  {c.experiment or '-'}")
    return 0


def _fmt(x) -> str:
    return f"{x:.2e}" if isinstance(x, float) else str(x)  # inf / nan print as such


def cmd_verify(args) -> int:
    try:
        claims = C.select(args.claims)
    except ValueError as e:
        raise _UsageError(str(e)) from None
    size = "full" if args.full else "quick"
    if args.report is not None and (args.report.is_dir() or not args.report.parent.resolve().is_dir()):
        raise _UsageError(f"--report {args.report}: give a file name in an existing folder")
    reports = []
    for claim in progress(claims, desc=f"verify ({size})") if not args.json else claims:
        reports.append(C.run_claim(claim, samples=args.samples, seed=args.seed, size=size))
    if args.json:
        doc = {"schema_version": C.JSON_SCHEMA_VERSION, "size": size, "seed": args.seed,
               "ok": all(r.ok for r in reports), "claims": [r.as_json() for r in reports]}
        _emit(json.dumps(doc, indent=1, allow_nan=False))
    else:
        w = max(len(r.claim.id) for r in reports)
        pw = max(len("paper"), *(len(r.claim.paper.short()) for r in reports))
        _emit(f"{'claim':<{w}}  {'paper':<{pw}}  {'holds':<5}  {'max error':>9}  {'tolerance':>9}  {'control':<8}  "
              f"{'ctl/tol':>8}  {'proof':<5}  {'n':>3}  backends")
        for r in reports:
            proof = "-" if r.proved is None else ("yes" if r.proved else "FAIL")
            control = {"rejected": "rejected", "accepted": "ACCEPTED", "invalid": "INVALID"}[r.control_status]
            per = ", ".join(f"{b}:{'ok' if v['holds'] else 'NO'}" for b, v in r.backends.items())
            _emit(f"{r.claim.id:<{w}}  {r.claim.paper.short():<{pw}}  {'yes' if r.holds else 'NO':<5}  {_fmt(r.max_error):>9}  "
                  f"{_fmt(r.tolerance):>9}  {control:<8}  {_fmt(r.control_margin):>8}  {proof:<5}  {r.samples:>3}  {per}")
        bad = [r.claim.id for r in reports if not r.ok]
        _emit(f"\n{len(reports) - len(bad)}/{len(reports)} claims hold on every backend with their negative control rejected "
              f"by the size of its error ({size} budget, seed {args.seed})" + (f"; FAILED: {bad}" if bad else ""))
        proofs = [r for r in reports if r.proved is not None]
        if proofs:
            _emit("proof scopes:")
            for r in proofs:
                _emit(f"  {r.claim.id}: {'proved' if r.proved else 'NOT proved'} ({r.proof_scope})")
        stat_reports = [r for r in reports if r.statistics]
        if stat_reports:
            _emit("statistics (one-sided intervals against their thresholds):")
            for r in stat_reports:
                for name, st in r.statistics.items():
                    lo, hi = st["interval"]
                    _emit(f"  {r.claim.id}: {name} = {_fmt(st['value'])}, {st['level']:.0%} interval "
                          f"[{_fmt(lo)}, {_fmt(hi)}] {st['side']} {_fmt(st['threshold'])}")
        for r in reports:
            if not r.ok:
                _emit(f"  {r.claim.id}: {r.detail}")
                if not r.negative_control_rejected:
                    _emit(f"    control {r.control_status}: {r.control_detail}")
    if args.report is not None:
        from .report import write_report

        write_report(reports, args.report, size=size, seed=args.seed)
    return 0 if all(r.ok for r in reports) else 1


def cmd_reproduce(args) -> int:
    from .executors import make_executor, use_executor
    from .reproduce import summary_table

    scripts = _scripts("experiments")
    names = _pick(scripts, args.experiments, "experiment")
    for flag, folder in (("--out", args.out), ("--cache", args.cache)):
        if folder is not None:
            try:
                check_out_dir(folder)
            except ValueError as e:
                raise _UsageError(str(e).replace("--out", flag, 1)) from None
    argv = (["--quick"] if args.quick else []) + (["--out", str(args.out)] if args.out else [])
    argv += (["--cache", str(args.cache)] if args.cache else []) + (["--no-cache"] if args.no_cache else [])
    argv += ["--force"] if args.force else []
    try:
        executor = make_executor(args.jobs, args.scheduler)
    except (ValueError, OSError) as e:  # no dask installed, no scheduler at ADDRESS
        raise _UsageError(f"--scheduler {args.scheduler}: {e}") from None
    rows = []
    with use_executor(executor):  # one pool / cluster for every figure
        _emit(f"reproduce: {len(names)} experiments; executor: {executor.name}")
        for name in names:
            rows.append(_run_script(scripts[name], argv))
    _emit(summary_table(rows))
    return 0


def cmd_bench(args) -> int:
    scripts = _scripts("benchmarks")
    names = _pick(scripts, args.names, "benchmark")
    argv = ["--smoke"] if args.smoke else []
    for name in names:
        _run_script(scripts[name], argv)
    return 0


def cmd_readme_table(args) -> int:
    from .readme import claims_table

    _emit(claims_table())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="theorylab", description="Theoretical claims about sequence models, checked.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("list", help="list registered claims")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_list)
    s = sub.add_parser("verify", help="check claims and reject their negative controls")
    s.add_argument("claims", nargs="*", help="claim ids or themes (default: all)")
    s.add_argument("--samples", type=int, default=None, help="random instances per claim (default: the claim's own)")
    s.add_argument("--seed", type=_seed, default=0, help="a non-negative integer (default 0)")
    s.add_argument("--full", action="store_true", help="full budget (larger sizes, longer statistical runs)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--report", type=Path, default=None, metavar="PATH",
                   help="also write a Markdown verification report to PATH (docs/verify.md)")
    s.set_defaults(func=cmd_verify)
    s = sub.add_parser("reproduce", help="run experiment scripts and write their figures")
    s.add_argument("experiments", nargs="*", help="experiment stems (default: all)")
    s.add_argument("--quick", action="store_true", help="small sizes: every figure in a few minutes")
    s.add_argument("--out", type=Path, default=None, help="output folder (default: figures/)")
    add_run_flags(s)
    s.set_defaults(func=cmd_reproduce)
    s = sub.add_parser("bench", help="run benchmark scripts and print ratios")
    s.add_argument("names", nargs="*", help="benchmark names (default: all)")
    s.add_argument("--smoke", action="store_true", help="tiny sizes: check that they run")
    s.set_defaults(func=cmd_bench)
    s = sub.add_parser("readme-table", help="print the README claims table generated from the registry")
    s.set_defaults(func=cmd_readme_table)
    return p


_seed = int_flag("--seed", 0, "a non-negative integer")


def main(argv=None) -> int:
    """Run one command; returns its exit code (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits with 2 on its own usage errors
    try:
        if getattr(args, "samples", None) is not None and args.samples < 1:
            raise _UsageError(f"--samples must be >= 1; got {args.samples}")
        return args.func(args)
    except _UsageError as e:
        sys.stderr.write(f"theorylab: {e}\n")
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
