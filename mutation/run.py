"""Mutation testing of theorylab's claim-bearing modules, with cosmic-ray.

Each target module is mutated one single-line change at a time (an operator swapped, a
constant moved by one, a comparison loosened, a loop skipped); a mutant is *killed* when
``theorylab verify`` on the module's claims, or the module's tests, fail on it.  The score is
killed / (killed + survived) over the mutants run.

Why cosmic-ray: it runs any kill command (here ``theorylab verify`` and pytest), and it edits
the source file itself, so numba kernels are mutated and recompiled like any other code (a
mutator that rewrites functions into trampolines cannot reach code numba compiles).  Because it
edits files in place, every run happens in a scratch ``git worktree`` of HEAD, never in the
checkout you work in.

Usage (from the repository root; ``pip install cosmic-ray``)::

    python mutation/run.py --list
    python mutation/run.py theorylab/ssm/selective.py [--sample 40] [--seed 0] [--timeout 300]

``--sample N`` runs a uniform, seeded sample of N mutants (all when N >= their number).  Results
go to ``mutation/results/<module>.json`` (score, every survivor with its diff); docs/mutation.md
records the scores and what each survivor means.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "mutation" / "results"

# module -> (claims verified, tests run); both must pass for a mutant to survive
_SEL = (["ssm.selective-scan-is-attention"], ["tests/ssm/test_selective_scan.py", "tests/ssm/test_selective_numba.py",
                                               "tests/ssm/test_inputs_and_dispatch.py"])
_SSD = (["ssm.ssd-duality", "ssm.ssd-linear-attention", "ssm.ssd-float32-long"],
        ["tests/ssm/test_ssd.py", "tests/ssm/test_ssd_numba.py", "tests/ssm/test_ssd_stability.py",
         "tests/ssm/test_inputs_and_dispatch.py"])
_LIN = (["ssm.linear-attention-is-rnn", "ssm.cottention-is-rnn"], ["tests/ssm/test_linear_forms.py", "tests/ssm/test_contract.py"])
_GATED = (["ssm.gateloop-three-forms", "ssm.aft-simple-recurrent"], ["tests/ssm/test_gated_linear.py", "tests/ssm/test_contract.py"])
_HLA = (["ssm.hla-second-order-streaming"], ["tests/ssm/test_hla.py"])
_ATT = (["sparse.attention-is-masked-softmax", "sparse.fold-and-merge-is-exact"],
        ["tests/sparse/test_attention.py", "tests/sparse/test_attention_contract.py", "tests/sparse/test_inputs_and_helpers.py"])
_PAT = (["sparse.nnz-closed-form", "sparse.two-hop-coverage", "sparse.attention-is-masked-softmax"],
        ["tests/sparse/test_patterns.py", "tests/sparse/test_counting.py", "tests/sparse/test_pattern_counts.py",
         "tests/sparse/test_pattern_indices.py", "tests/sparse/test_inputs_and_helpers.py"])
_PRED = (["icl.sherman-morrison-ridge", "icl.ridge-is-bayes-posterior-mean", "icl.lsa-layer-is-gd-step"],
         ["tests/icl/test_predictors.py"])
_HEADS = (["lowrank.full-rank-head-nearest-point"], ["tests/lowrank/test_heads.py"])

TARGETS: dict[str, tuple[list[str], list[str]]] = {
    # ssm: references, public functions and fast paths
    "theorylab/ssm/selective.py": _SEL,
    "theorylab/ssm/_selective_numba.py": _SEL,
    "theorylab/ssm/_selective_torch.py": _SEL,
    "theorylab/ssm/_prefix_scan.py": _SEL,
    "theorylab/ssm/duality.py": _SSD,
    "theorylab/ssm/_duality_numba.py": _SSD,
    "theorylab/ssm/_duality_torch.py": _SSD,
    "theorylab/ssm/linear_forms.py": _LIN,
    "theorylab/ssm/_linear_forms_numba.py": _LIN,
    "theorylab/ssm/gated_linear.py": _GATED,
    "theorylab/ssm/_gated_linear_numba.py": _GATED,
    "theorylab/ssm/hla.py": _HLA,
    "theorylab/ssm/_hla_numba.py": _HLA,
    "theorylab/ssm/s4.py": (["ssm.s4-hippo-nplr", "ssm.s4-kernel-three-ways", "ssm.s4-convolution-is-recurrence"],
                            ["tests/ssm/test_s4.py"]),
    "theorylab/ssm/recurrent_state.py": (["ssm.recurrent-state-is-constant"], ["tests/ssm/test_recurrent_state.py"]),
    # sparse
    "theorylab/sparse/patterns.py": _PAT,
    "theorylab/sparse/patterns_counts.py": (["sparse.nnz-closed-form", "sparse.nnz-exponent-power", "sparse.nnz-exponent-strided"],
                                            _PAT[1]),
    "theorylab/sparse/_patterns_validate.py": _PAT,
    "theorylab/sparse/sparse_attention.py": _ATT,
    "theorylab/sparse/_sparse_attention_numba.py": _ATT,
    "theorylab/sparse/_sparse_attention_torch.py": _ATT,
    "theorylab/sparse/content.py": (["sparse.moba-top-k-gate", "sparse.routing-nearest-centroid", "sparse.routing-cost-exponent"],
                                    ["tests/sparse/test_content.py", "tests/sparse/test_inputs_and_helpers.py"]),
    "theorylab/sparse/connectivity.py": (["sparse.two-hop-coverage", "sparse.bigbird-diameter", "sparse.power-receptive-field"],
                                         ["tests/sparse/test_connectivity.py", "tests/sparse/test_inputs_and_helpers.py"]),
    "theorylab/ssm/_s4_torch.py": (["ssm.s4-kernel-three-ways", "ssm.s4-convolution-is-recurrence"], ["tests/ssm/test_s4.py"]),
        # icl and lowrank: the exact constructions and the closed-form/statistical claims
    "theorylab/icl/constructions.py": (["icl.lsa-layer-is-gd-step", "icl.sherman-morrison-ridge", "icl.ridge-is-bayes-posterior-mean"],
                                       ["tests/icl/test_constructions.py"]),
    "theorylab/icl/prequential.py": (["icl.prequential-code-is-evidence", "icl.prequential-complexity-d-log-n",
                                      "icl.bma-regret-at-most-log-k", "icl.bma-average-regret-1-over-t"],
                                     ["tests/icl/test_prequential.py"]),
    "theorylab/lowrank/bounded_entries.py": (["lowrank.polynomial-kernel-factorization", "lowrank.taylor-truncation-bound",
                                              "lowrank.eps-rank-threshold"], ["tests/lowrank/test_bounded_entries.py"]),
    "theorylab/lowrank/linformer.py": (["lowrank.linformer-exact-projection", "lowrank.linformer-error-free-of-n"],
                                       ["tests/lowrank/test_linformer.py"]),
    "theorylab/lowrank/lora.py": (["lowrank.lora-factored-gradients", "lowrank.nola-parameter-count"], ["tests/lowrank/test_lora.py"]),
    "theorylab/icl/predictors.py": _PRED,
    "theorylab/icl/_predictors_numba.py": _PRED,
    "theorylab/icl/_predictors_torch.py": _PRED,
    "theorylab/lowrank/_bounded_entries_numba.py": (["lowrank.eps-rank-threshold"], ["tests/lowrank/test_bounded_entries.py"]),
    "theorylab/lowrank/_eigen_lanes_numba.py": (["lowrank.eps-rank-threshold"], ["tests/lowrank/test_bounded_entries.py"]),
    "theorylab/lowrank/heads.py": _HEADS,
    "theorylab/lowrank/_heads_numba.py": _HEADS,
    "theorylab/_fastexp.py": (["lowrank.full-rank-head-nearest-point"], ["tests/core/test_fastexp.py", "tests/lowrank/test_heads.py"]),
    "theorylab/icl/autoregressive.py": (["icl.ar-lsa-no-better-than-least-squares", "icl.ar-excess-mse-shrinks-with-context",
                                         "icl.ar-cot-rollout-collapses"], ["tests/icl/test_autoregressive.py"]),
    "theorylab/icl/learners.py": (["icl.trained-transformer-closer-to-ridge", "icl.linear-attention-is-one-step-gd",
                                   "icl.best-ridge-lambda-tracks-noise"], ["tests/icl/test_learners.py"]),
    "theorylab/lowrank/heads_scaling.py": (["lowrank.rank-one-heads-exponential-in-d"], ["tests/lowrank/test_heads_scaling.py"]),
    "theorylab/lowrank/lora_ntk.py": (["lowrank.lora-above-threshold-fits"], ["tests/lowrank/test_lora_ntk.py"]),
    # the kernel authors' kit: references with the peers' signatures, and the equivalence harness
    "theorylab/testing/equivalence.py": (["ssm.ssd-linear-attention"], ["tests/kit/test_equivalence.py"]),
    "theorylab/testing/mamba.py": (["ssm.selective-scan-is-attention"], ["tests/kit/test_mamba_ref.py", "tests/kit/test_kit_bad_input.py"]),
    "theorylab/testing/mamba2.py": (["ssm.ssd-linear-attention"], ["tests/kit/test_mamba2_ref.py", "tests/kit/test_kit_bad_input.py"]),
    "theorylab/testing/fla.py": (["ssm.ssd-linear-attention"], ["tests/kit/test_fla_ref.py", "tests/kit/test_kit_bad_input.py"]),
    # core: what turns measurements into verdicts
    "theorylab/claims.py": (["ssm.ssd-linear-attention"], ["tests/core/test_claims.py", "tests/core/test_cli.py"]),
    "theorylab/checks.py": (["ssm.ssd-linear-attention"], ["tests/core/test_claims.py"]),
    "theorylab/tolerances.py": (["ssm.ssd-linear-attention"], ["tests/core/test_tolerances.py", "tests/core/test_claims.py"]),
}

# The operators that make the single-line bugs kernel authors make: + <-> -, * <-> /,
# a constant off by one, a strict comparison made loose (and back), a sign dropped, a loop
# skipped, a condition negated.  Left out: swaps to operators no one confuses (<<, |, %),
# removing decorators (dropping @njit leaves the same math: equivalent by design),
# exception and variable replacement.
KEEP = [
    r"core/ReplaceBinaryOperator_(Add_Sub|Sub_Add|Mul_Div|Div_Mul|Add_Mul|Mul_Add|Sub_Mul|Pow_Mul|FloorDiv_Mul)$",
    r"core/ReplaceComparisonOperator_(Lt_LtE|LtE_Lt|Gt_GtE|GtE_Gt|Lt_Gt|Gt_Lt|LtE_GtE|GtE_LtE|Eq_NotEq|NotEq_Eq|Is_IsNot|IsNot_Is)$",
    r"core/NumberReplacer$",
    r"core/ReplaceUnaryOperator_(USub_UAdd|Delete_USub|Delete_Not)$",
    r"core/(ZeroIterationForLoop|ReplaceTrueWithFalse|ReplaceFalseWithTrue|ReplaceAndWithOr|ReplaceOrWithAnd|AddNot|ReplaceBreakWithContinue)$",
]


def kill_command(claims: list[str], tests: list[str]) -> str:
    """``theorylab verify CLAIMS`` and then the module's tests, both on a fresh, empty numba cache:
    numba invalidates a cached function when its own file changes, not when a function it calls
    from another file does, so a warm cache would run a caller's compiled copy of the unmutated
    callee (a mutant of ``_eigen_lanes_numba`` hidden behind ``_bounded_entries_numba``'s cache)."""
    verify = f"{sys.executable} -m theorylab verify {' '.join(claims)} --samples 2"
    pytest = f"env HYPOTHESIS_PROFILE=dev {sys.executable} -m pytest -x -q -p no:cacheprovider {' '.join(tests)}"
    fresh = 'export NUMBA_CACHE_DIR="$(mktemp -d)"; trap \'rm -rf "$NUMBA_CACHE_DIR"\' EXIT; '
    return "bash -c " + shlex.quote(f"{fresh}{verify} >/dev/null 2>&1 && {pytest} >/dev/null 2>&1")


def _config(module: str, claims, tests, timeout: float) -> str:
    return "\n".join([
        "[cosmic-ray]",
        f'module-path = "{module}"',
        f"timeout = {timeout}",
        "excluded-modules = []",
        f"test-command = {json.dumps(kill_command(claims, tests))}",
        "",
        "[cosmic-ray.distributor]",
        'name = "local"',
        "",
    ])


def _select(db_path: Path, sample: int, seed: int) -> dict:
    """Skip the mutants of operators outside KEEP, then all but a seeded sample of the rest."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    keep = re.compile("|".join(f"(?:{k})" for k in KEEP))
    with use_db(str(db_path), WorkDB.Mode.open) as db:
        items = list(db.pending_work_items)
        kept = [w for w in items if all(keep.match(m.operator_name) for m in w.mutations)]
        chosen = set(w.job_id for w in random.Random(seed).sample(kept, min(sample, len(kept))))
        for w in items:
            if w.job_id not in chosen:
                why = "not sampled" if w in kept else "operator not kept"
                db.set_result(w.job_id, WorkResult(output=why, worker_outcome=WorkerOutcome.SKIPPED))
    return {"mutants": len(items), "kept_operators": len(kept), "run": len(chosen)}


def run(module: str, sample: int, seed: int, timeout: float) -> dict:
    claims, tests = TARGETS[module]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="theorylab-mutation-"))
    tree = work / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), head], cwd=ROOT, check=True, capture_output=True)
    t0 = time.time()
    try:
        (work / "cr.toml").write_text(_config(module, claims, tests, timeout))
        db = work / "session.sqlite"
        subprocess.run(["cosmic-ray", "init", str(work / "cr.toml"), str(db)], cwd=tree, check=True)
        counts = _select(db, sample, seed)
        print(f"[mutation] {module}: {counts}", flush=True)
        # baseline: the unmutated tree must pass the kill command, or every mutant would count as killed
        base = subprocess.run(shlex.split(kill_command(claims, tests)), cwd=tree, capture_output=True, timeout=timeout)
        if base.returncode != 0:
            raise SystemExit(f"[mutation] {module}: the kill command fails on the unmutated commit {head[:7]}; "
                             "fix that first (no score recorded)")
        subprocess.run(["cosmic-ray", "exec", str(work / "cr.toml"), str(db)], cwd=tree, check=True)
        dump = subprocess.run(["cosmic-ray", "dump", str(db)], cwd=tree, check=True, capture_output=True, text=True).stdout
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    killed, survivors, incompetent = 0, [], 0
    for line in dump.splitlines():
        item, result = json.loads(line)
        if not result or result.get("worker_outcome") == "skipped":
            continue
        outcome = result.get("test_outcome")
        m = item["mutations"][0]
        if outcome == "killed":
            killed += 1
        elif outcome == "survived":
            survivors.append({"operator": m["operator_name"], "occurrence": m["occurrence"],
                              "line": m["start_pos"][0], "diff": result.get("diff", "")})
        else:
            incompetent += 1
    ran = killed + len(survivors)
    out = {"module": module, "claims": claims, "tests": tests, "commit": head, "seed": seed, "sample": sample,
           **counts, "killed": killed, "survived": len(survivors), "incompetent": incompetent,
           "score": killed / ran if ran else None, "seconds": round(time.time() - t0),
           "kill_command": kill_command(claims, tests), "operators": KEEP, "survivors": survivors}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / (module.replace("/", "__").removesuffix(".py") + ".json")).write_text(json.dumps(out, indent=1) + "\n")
    print(f"[mutation] {module}: killed {killed}/{ran} ({out['score']:.0%}), {incompetent} incompetent, "
          f"{out['seconds']} s", flush=True)
    return out


def retest(module: str, timeout: float) -> list[dict]:
    """Apply each recorded survivor of ``module`` to HEAD (in a scratch worktree) and run the
    current kill command on it: the survivor is now ``"killed"``, ``"survives"``, or
    ``"does not apply"`` (the code it changed has changed).  Written back into the result file."""
    path = RESULTS / (module.replace("/", "__").removesuffix(".py") + ".json")
    d = json.loads(path.read_text())
    claims, tests = TARGETS[module]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="theorylab-mutation-"))
    tree = work / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), head], cwd=ROOT, check=True, capture_output=True)
    try:
        for s in d["survivors"]:
            patch = "\n".join(s["diff"].splitlines()[1:]) + "\n"  # drop cosmic-ray's banner line
            ok = subprocess.run(["git", "apply", "--recount", "-"], cwd=tree, input=patch, text=True, capture_output=True)
            if ok.returncode != 0:
                s["retest"] = {"commit": head, "outcome": "does not apply"}
                continue
            try:
                r = subprocess.run(shlex.split(kill_command(claims, tests)), cwd=tree, timeout=timeout, capture_output=True)
                outcome = "killed" if r.returncode != 0 else "survives"
            except subprocess.TimeoutExpired:
                outcome = "killed (timeout)"
            subprocess.run(["git", "checkout", "--", "."], cwd=tree, check=True)
            s["retest"] = {"commit": head, "outcome": outcome}
            print(f"[mutation] retest {module}:{s['line']} {s['operator']}: {outcome}", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    path.write_text(json.dumps(d, indent=1) + "\n")
    return d["survivors"]


def report() -> str:
    """A Markdown table of every result in mutation/results (module, commit, mutants, score)."""
    rows = ["| module | commit | mutants (kept operators) | run | killed | survived | survivors killed on retest | score now |",
            "|---|---|---|---|---|---|---|---|"]
    tk = tr = tn = 0
    for f in sorted(RESULTS.glob("*.json")):
        d = json.loads(f.read_text())
        later = sum(1 for s in d["survivors"] if s.get("retest", {}).get("outcome", "").startswith("killed"))
        ran = d["killed"] + d["survived"]
        tk, tr, tn = tk + d["killed"], tr + ran, tn + later
        rows.append(f"| `{d['module']}` | {d['commit'][:7]} | {d['mutants']} ({d['kept_operators']}) | {d['run']} | "
                    f"{d['killed']} | {d['survived']} | {later} | {(d['killed'] + later) / ran:.0%} |")
    rows.append(f"| **all** | | | {tr} | {tk} | {tr - tk} | {tn} | **{(tk + tn) / tr:.0%}** |" if tr else "| (no results) |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("modules", nargs="*")
    p.add_argument("--list", action="store_true", help="the target modules with their claims and tests")
    p.add_argument("--report", action="store_true", help="print the results so far as a Markdown table")
    p.add_argument("--retest", action="store_true",
                   help="apply each recorded survivor of MODULES to HEAD and run today's kill command on it")
    p.add_argument("--sample", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant (a hang counts as killed)")
    a = p.parse_args(argv)
    if a.report:
        print(report())
        return 0
    if a.list or not a.modules:
        for m, (c, t) in TARGETS.items():
            print(f"{m}\n    claims: {' '.join(c)}\n    tests:  {' '.join(t)}")
        return 0
    unknown = [m for m in a.modules if m not in TARGETS]
    if unknown:
        p.error(f"unknown modules {unknown}; see --list")
    for m in a.modules:
        retest(m, a.timeout) if a.retest else run(m, a.sample, a.seed, a.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
