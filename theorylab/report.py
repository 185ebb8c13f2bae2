"""A Markdown verification report from :class:`theorylab.claims.ClaimReport` objects.

``theorylab verify --report PATH`` writes it; from Python::

    from theorylab.claims import run_claim, select
    from theorylab.report import write_report

    reports = [run_claim(c, samples=3, seed=0) for c in select(["icl"])]
    write_report(reports, "verify.md", size="quick", seed=0)

The report opens with a summary table (one row per claim, linked to its section), then one
section per claim:

* the statement, the paper, kind, module, test and figure;
* the verdict per backend (backend, holds, max error, tolerance, error / tolerance);
* the error distribution over the random instances: the ratios error / tolerance
  (:attr:`ClaimReport.errors`) as min / median / max, quantiles, and a text histogram by decade;
* the tolerance and its error model: the first paragraph of the check function's docstring
  when it speaks of a tolerance, else the claim's own section of its claims module's docstring
  (the paragraph that names the claim id), else "default policy";
* the negative control: what it changes, its status (rejected / accepted / invalid), its
  smallest error and that error as a multiple of the tolerance;
* the proof and its scope (or "no symbolic proof");
* the statistics (value, interval, threshold) when the verdict carries them.

Non-finite numbers print as ``nan`` / ``inf``; a claim that fails says so in its heading.
"""

from __future__ import annotations

import inspect
import math
import re
import sys
from pathlib import Path

from .tolerances import RTOL

__all__ = ["render_report", "write_report", "error_model"]

_KEYWORDS = re.compile(r"toleran|rtol|error model|band|threshold|policy|bound", re.I)


# ---------------------------------------------------------------------------------------
# formatting helpers
# ---------------------------------------------------------------------------------------
def _num(x) -> str:
    """A number for a table: 3 significant digits, ``nan`` / ``inf`` for non-finite or missing values."""
    if x is None:
        return "nan"
    if isinstance(x, int):  # bool included
        return str(x)
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    return f"{x:.3g}" if 1e-3 <= abs(x) < 1e4 else f"{x:.2e}"


def _cell(text) -> str:
    """One Markdown table cell: no newlines, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _ratio(error, tolerance) -> float:
    try:
        error, tolerance = float(error), float(tolerance)
    except (TypeError, ValueError):
        return float("nan")
    if not math.isfinite(error):
        return float("nan")
    if tolerance > 0:
        return error / tolerance
    return 0.0 if error == 0 else float("inf")


def _yes(flag: bool) -> str:
    return "yes" if flag else "**NO**"


_CONTROL = {"rejected": "rejected", "accepted": "**ACCEPTED**", "invalid": "**INVALID**"}


def _anchor(claim_id: str) -> str:
    return "claim-" + re.sub(r"[^a-z0-9-]", "-", claim_id.lower())


# ---------------------------------------------------------------------------------------
# tolerance and its error model
# ---------------------------------------------------------------------------------------
def _own_doc(fn) -> str:
    """The docstring written for the function ``fn`` itself (never a class's, e.g. a partial's)."""
    if not (inspect.isfunction(fn) or inspect.ismethod(fn)) or not fn.__doc__:
        return ""
    return inspect.cleandoc(fn.__doc__)


def _id_pattern(token: str) -> re.Pattern:
    """``sparse.nnz-exponent-<family>`` matches every id of that family."""
    parts = re.split(r"<[^>]*>", token)
    return re.compile(r"[\w-]+".join(re.escape(p) for p in parts) + r"\Z")


_OPENS = re.compile(r"\s*(?:[*-]\s+|\d+\.\s+)?``")  # a paragraph or bullet opening with ``name``
_RULE = re.compile(r"toleran|error model", re.I)


def _module_section(doc: str, claim_id: str, *, only_claim: bool = False) -> str:
    """The claim's own text in a claims module's docstring.

    The paragraph or bullet (``*``, ``-`` or ``1.``) that opens with the claim id in double
    backticks (``<family>`` in a name stands for any word), up to the next line indented no
    deeper than its first line; plus every top-level paragraph naming no claim that states a
    tolerance or an error model (a rule shared by the module's claims).  For a module that
    registers only this claim (``only_claim``) and names it: the whole docstring after its
    first paragraph.
    """
    lines = doc.splitlines()
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", doc.strip()) if p.strip()]

    def names(text):
        return re.findall(r"``([^`]+)``", text)

    def is_claim(n):
        return n == claim_id or ("<" in n and _id_pattern(n).match(claim_id) is not None)

    for i, line in enumerate(lines):
        if not (_OPENS.match(line) and any(is_claim(n) for n in names(line))):
            continue
        indent = len(line) - len(line.lstrip())
        out = [line.strip()]
        for nxt in lines[i + 1:]:
            if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                break
            out.append(nxt.strip())
        section = re.sub(r"\n{3,}", "\n\n", "\n".join(out).strip())
        section = re.sub(r"^(?:[*-]\s+|\d+\.\s+)", "", section)
        shared = [p for p in paragraphs[1:] if not p[:1].isspace() and _RULE.search(p)
                  and not any("." in n and n.split(".")[0] in ("ssm", "sparse", "icl", "lowrank") for n in names(p))
                  and p not in section]
        return "\n\n".join([section, *shared])
    if only_claim and any(is_claim(n) for n in names(doc)) and len(paragraphs) > 1:
        return "\n\n".join(paragraphs[1:])
    return ""


def _only_claim_of(modname: str, claim) -> bool:
    """Whether ``claim`` is the only registered claim whose check lives in ``modname``."""
    from .claims import all_claims

    return not [c for c in all_claims() if c.id != claim.id and _home(c)[1] == modname]


def _home(claim) -> tuple[object, str]:
    fn = claim.check
    while hasattr(fn, "func"):  # functools.partial
        fn = fn.func
    return fn, getattr(fn, "__module__", "") or ""


def error_model(claim) -> list[tuple[str, str]]:
    """``[(source, text), ...]``: where ``claim`` states its tolerance and error model.

    * the check function's own docstring: its first paragraph when it speaks of a tolerance
      (tolerance, rtol, error model, band, threshold, policy, bound), else its first paragraph
      that names a tolerance or an error model;
    * the claim's section of its check module's docstring (:func:`_module_section`).

    Empty when neither exists: the claim then uses the default policy.
    """
    fn, modname = _home(claim)
    out = []
    paras = [p.strip() for p in re.split(r"\n\s*\n", _own_doc(fn)) if p.strip()]
    if paras:
        pick = paras[0] if _KEYWORDS.search(paras[0]) else next((p for p in paras if _RULE.search(p)), "")
        if pick:
            out.append((f"docstring of `{modname}.{getattr(fn, '__qualname__', '?')}`", pick))
    mod = sys.modules.get(modname)
    section = _module_section(getattr(mod, "__doc__", "") or "", claim.id, only_claim=_only_claim_of(modname, claim))
    if section:
        out.append((f"docstring of `{modname}`", section))
    return out


def _policy_name(tolerance, kind: str = "identity") -> str:
    if kind != "identity":
        return {"complexity": "the band or exact count stated by the claim",
                "statistical": "the threshold stated by the claim"}.get(kind, "stated by the claim")
    try:
        tolerance = float(tolerance)
    except (TypeError, ValueError):
        return ""
    names = [k for k, v in RTOL.items() if v == tolerance]
    if names:
        return f"the default policy for {' / '.join(names)} (rtol {_num(tolerance)})"
    if tolerance == 0:
        return "exact (tolerance 0: a count or a boolean property)"
    return "a tolerance derived by the claim (see its error model below)"


# ---------------------------------------------------------------------------------------
# error distribution
# ---------------------------------------------------------------------------------------
def _quantile(sorted_xs: list, q: float) -> float:
    """Linear-interpolation quantile of a sorted, non-empty list."""
    pos = q * (len(sorted_xs) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def _histogram(finite: list, width: int = 30) -> list[str]:
    """Decade bins of error / tolerance (a ratio above 1 fails), one text bar per bin."""
    zeros = sum(1 for x in finite if x == 0)
    inf = sum(1 for x in finite if math.isinf(x))
    pos = [x for x in finite if 0 < x < math.inf]
    rows = []
    if zeros:
        rows.append(("0 (exact)", zeros))
    if pos:
        lo = math.floor(math.log10(min(pos))) - 1  # one decade of slack each side: log10 rounds
        hi = math.floor(math.log10(max(pos))) + 1
        bins = [(e, sum(1 for x in pos if 10.0**e <= x < 10.0 ** (e + 1))) for e in range(lo, hi + 1)]
        used = [i for i, (_, n) in enumerate(bins) if n] or [0, len(bins) - 1]  # empty end decades dropped
        rows += [(f"[1e{e}, 1e{e + 1})", n) for e, n in bins[used[0]:used[-1] + 1]]
    if inf:
        rows.append(("inf (error > 0 = tolerance)", inf))
    top = max((n for _, n in rows), default=1) or 1
    lw = max((len(label) for label, _ in rows), default=0)
    return [f"{label:<{lw}}  {'#' * max(1 if n else 0, round(width * n / top)):<{width}}  {n}" for label, n in rows]


def _distribution(errors) -> list[str]:
    ratios = [float("nan") if x is None else float(x) for x in errors]
    if not ratios:
        return ["No per-instance errors were recorded."]
    nan = sum(1 for x in ratios if math.isnan(x))
    finite = sorted(x for x in ratios if not math.isnan(x))
    fails = sum(1 for x in finite if x > 1)
    out = [f"{len(ratios)} instances; error / tolerance (a ratio above 1 fails the instance): "
           f"{fails + nan} above 1 or not finite."]
    if finite:
        qs = [(q, _quantile(finite, q)) for q in (0.0, 0.1, 0.5, 0.9, 1.0)]
        out += ["", f"min {_num(finite[0])} · median {_num(_quantile(finite, 0.5))} · max {_num(finite[-1])}"
                + (f" · {nan} not finite (nan: the check raised or returned a non-finite error)" if nan else ""),
                "", "| quantile | " + " | ".join(f"{int(q * 100)}%" for q, _ in qs) + " |",
                "|---|" + "---|" * len(qs),
                "| error / tolerance | " + " | ".join(_num(v) for _, v in qs) + " |",
                "", "```text", *_histogram(finite), "```"]
    else:
        out += ["", f"every instance's error is non-finite ({nan} nan)."]
    return out


# ---------------------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------------------
def _statistics_table(stats: dict) -> list[str]:
    rows = ["| statistic | value | interval | level | statement | holds |", "|---|---|---|---|---|---|"]
    for name, st in stats.items():
        if isinstance(st, dict):
            interval = st.get("interval") or [None, None]
            lo, hi = (list(interval) + [None, None])[:2]
            side, thr = st.get("side", "<="), st.get("threshold")
            far = hi if side == "<=" else lo
            try:
                ok = math.isfinite(float(far)) and (float(far) <= float(thr) if side == "<=" else float(far) >= float(thr))
                held = _yes(ok)
            except (TypeError, ValueError):
                held = "?"
            level = st.get("level")
            level = f"{level:.0%}" if isinstance(level, (int, float)) else _num(level)
            rows.append(f"| {_cell(name)} | {_num(st.get('value'))} | [{_num(lo)}, {_num(hi)}] | {level} | "
                        f"{'upper' if side == '<=' else 'lower'} bound {side} {_num(thr)} | {held} |")
        else:
            rows.append(f"| {_cell(name)} | {_cell(st)} | | | | |")
    return rows


def _claim_section(r) -> list[str]:
    c = r.claim
    verdict = "holds" if r.ok else "FAILS"
    out = [f'<a id="{_anchor(c.id)}"></a>', "", f"### `{c.id}` — {verdict}", ""]
    out += [f"**Statement.** {' '.join(c.statement.split())}", "",
            f"**Paper.** {c.paper.cite()}", ""]
    meta = [f"kind: {c.kind}", f"size: {r.size}", f"instances: {r.samples}"]
    meta += [f"{k}: `{v}`" for k, v in (("module", c.module), ("test", c.test)) if v]
    meta += [f"figure: `figures/{c.experiment}.png`"] if c.experiment else []
    out += [" · ".join(meta), ""]

    out += ["#### Verdict per backend", "", "| backend | holds | max error | tolerance | error / tolerance |",
            "|---|---|---|---|---|"]
    for b, v in r.backends.items():
        out.append(f"| `{_cell(b)}` | {_yes(v['holds'])} | {_num(v['max_error'])} | {_num(v['tolerance'])} | "
                   f"{_num(_ratio(v['max_error'], v['tolerance']))} |")
    out += ["", f"Claim: holds **{'yes' if r.holds else 'NO'}** on every backend and instance; worst instance: "
            f"error {_num(r.max_error)} against tolerance {_num(r.tolerance)}.", ""]
    if r.detail:
        out += ["Worst instance, as the check reports it:", "", "```text", r.detail.strip(), "```", ""]

    out += ["#### Error over the instances", "", *_distribution(r.errors), ""]

    out += ["#### Tolerance and its error model", "",
            f"Tolerance of the worst instance: {_num(r.tolerance)}, {_policy_name(r.tolerance, c.kind)}.", ""]
    models = error_model(c)
    for source, text in models:
        out += [f"From the {source}:", "", *("> " + line if line else ">" for line in text.splitlines()), ""]
    if not models:
        out += ["No stated error model: default policy (theorylab.tolerances).", ""]

    status = getattr(r, "control_status", "rejected" if r.negative_control_rejected else "accepted")
    out += ["#### Negative control", "", "| what it changes | status | min error | error / tolerance |",
            "|---|---|---|---|",
            f"| {_cell(c.controls or '-')} | {_CONTROL.get(status, status)} | {_num(r.control_min_error)} | "
            f"{_num(getattr(r, 'control_margin', float('nan')))} |", ""]
    meaning = {"rejected": "every control instance failed by a finite error above its tolerance: the check can fail.",
               "accepted": "a control instance HELD: the check does not tell the claim from its near miss.",
               "invalid": "a control instance failed only by a non-finite error or an exception, which proves nothing."}
    out += [f"Status: {meaning.get(status, status)}", ""]
    if getattr(r, "control_detail", ""):
        out += ["```text", r.control_detail.strip(), "```", ""]

    out += ["#### Proof", ""]
    if r.proved is None:
        out += ["No symbolic proof: the claim rests on the numerical checks above.", ""]
    else:
        out += [f"{'Proved' if r.proved else '**NOT proved**'} (sympy). Scope: {getattr(r, 'proof_scope', '') or '-'}.", ""]

    stats = getattr(r, "statistics", None)
    cstats = getattr(r, "control_statistics", None)
    if stats or cstats:
        out += ["#### Statistics", "",
                "A statistic is judged by the far end of its interval: for `<=` the verdict's error and "
                "tolerance are (upper end, threshold), for `>=` they are (threshold, lower end), so "
                "error <= tolerance reads the same way as elsewhere.", ""]
        if stats:
            out += ["Worst instance of the check:", "", *_statistics_table(stats), ""]
        if cstats:
            out += ["Least-rejected instance of the negative control:", "", *_statistics_table(cstats), ""]
    return out


def render_report(reports, *, size: str, seed: int, title: str = "theorylab verification report") -> str:
    """Markdown for ``reports`` (a list of :class:`theorylab.claims.ClaimReport`) run at budget
    ``size`` with ``seed``: a summary table, then one section per claim (module docstring)."""
    reports = list(reports)
    bad = [r.claim.id for r in reports if not r.ok]
    out = [f"# {title}", ""]
    out += [f"{len(reports) - len(bad)}/{len(reports)} claims hold on every backend with their negative control "
            f"rejected by the size of its error ({size} budget, seed {seed})."
            + (f" **Failed:** {', '.join(f'`{i}`' for i in bad)}." if bad else ""), ""]
    out += [_versions_line(), ""]
    out += ["Reading: a claim holds when error <= tolerance on every backend and every random instance; its "
            "negative control (a plausible near miss) must fail by a finite error above the tolerance. "
            "`ctl/tol` is the smallest control error as a multiple of the tolerance.", ""]
    out += ["## Summary", "",
            "| claim | paper | kind | holds | max error | tolerance | control | ctl/tol | proof | n |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        proof = "-" if r.proved is None else ("yes" if r.proved else "**FAIL**")
        status = getattr(r, "control_status", "rejected" if r.negative_control_rejected else "accepted")
        out.append(f"| [`{r.claim.id}`](#{_anchor(r.claim.id)}) | {_cell(r.claim.paper.short())} | {r.claim.kind} | "
                   f"{_yes(r.holds)} | {_num(r.max_error)} | {_num(r.tolerance)} | {_CONTROL.get(status, status)} | "
                   f"{_num(getattr(r, 'control_margin', float('nan')))} | {proof} | {r.samples} |")
    out += ["", "## Claims", ""]
    for r in reports:
        out += _claim_section(r)
    return "\n".join(out).rstrip() + "\n"


def _versions_line() -> str:
    from importlib import metadata

    parts = [f"python {sys.version.split()[0]}"]
    for pkg in ("theorylab", "numpy", "numba", "torch", "sympy"):
        try:
            parts.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{pkg} absent")
    return "Versions: " + ", ".join(parts) + "."


def write_report(reports, path, *, size: str, seed: int) -> Path:
    """Write :func:`render_report` to ``path`` atomically (a temporary beside it, then a rename:
    no half-written report); creates the parent folder.  Returns the path."""
    from .experiment import atomic_write

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"report path {path} is a folder; give a file name such as {path / 'verify.md'}")
    text = render_report(reports, size=size, seed=seed)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path
