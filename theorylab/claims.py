"""Claims, papers, verdicts and the registry.

A *claim* is a statement from a paper that theorylab can check.  Each one has

* ``id``          -- ``"<theme>.<short-name>"``, e.g. ``"ssm.selective-scan-is-attention"``;
* ``paper``       -- a :class:`Paper` (title, year, arXiv id, number in ``papers/index.md``);
* ``statement``   -- the math, in one paragraph;
* ``kind``        -- ``"identity"`` (two computations agree within the tolerance policy),
  ``"complexity"`` (a count follows a law: fitted exponent within a band, or exact
  closed form), or ``"statistical"`` (a learning outcome over several seeds);
* ``check(rng, size) -> Verdict``      -- one random instance (``size`` is ``"quick"`` or
  ``"full"``, the budget);
* ``negative_control(rng, size) -> Verdict`` -- the same check applied to a deliberately
  wrong variant; it must *not* hold, which proves the check can fail;
* ``proof() -> Proof``   (optional)    -- an exact symbolic (sympy) proof for small sizes;
* ``experiment``                       -- the stem of the script in ``experiments/`` that
  draws its figure.

Every verdict has the same reading: the claim holds on that instance iff
``error <= tolerance``.  Identity checks report a normwise relative error and the
policy rtol; complexity checks report ``|fitted slope - predicted|`` and the band
half-width; statistical checks report a statistic and its threshold.

Adding a claim is one call to :func:`register` in its module.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np

__all__ = [
    "Paper",
    "Verdict",
    "Proof",
    "Claim",
    "ClaimReport",
    "register",
    "get",
    "all_claims",
    "select",
    "run_claim",
    "THEMES",
    "SIZES",
    "KINDS",
]

THEMES = ("ssm", "sparse", "icl", "lowrank")  # subpackages that register claims
SIZES = ("quick", "full")
KINDS = ("identity", "complexity", "statistical")
Size = Literal["quick", "full"]


@dataclass(frozen=True)
class Paper:
    """A source paper.  ``index`` is its number in ``shared/papers/index.md``."""

    title: str
    year: int
    arxiv: str
    index: int | None = None

    def cite(self) -> str:
        num = f"#{self.index} " if self.index is not None else ""
        return f"{num}{self.title} ({self.year}, arXiv:{self.arxiv})"

    def short(self) -> str:
        return f"#{self.index}" if self.index is not None else f"arXiv:{self.arxiv}"


@dataclass(frozen=True)
class Verdict:
    """Outcome of one check on one instance: holds iff ``error <= tolerance``.

    ``backends`` maps each backend the check ran (``"ref"``, ``"numba"``, ``"torch"``,
    ``"torch:cuda"``, or a named form such as ``"counter"``) to its own ``(error, tolerance)``;
    a verdict built by :meth:`combine` holds only when every backend's does.  A verdict with
    an empty ``backends`` stands for the single backend named in ``backend``.
    """

    holds: bool
    error: float
    tolerance: float
    backend: str = "ref"
    sizes: dict = field(default_factory=dict)
    detail: str = ""
    backends: dict = field(default_factory=dict)
    statistics: dict = field(default_factory=dict)

    @classmethod
    def from_error(cls, error: float, tolerance: float, **kw) -> "Verdict":
        error = float(error)
        ok = bool(math.isfinite(error) and error <= tolerance)
        return cls(holds=ok, error=error, tolerance=float(tolerance), **kw)

    @property
    def margin(self) -> float:
        """``error / tolerance`` (``inf`` for a positive error against a zero tolerance, ``nan`` if not finite)."""
        return _ratio(self.error, self.tolerance)

    @classmethod
    def from_statistic(cls, name: str, value: float, interval: tuple[float, float], threshold: float, *,
                       side: str = "<=", level: float = 0.99, **kw) -> "Verdict":
        """A one-sided statistical verdict: the statement is ``statistic <side> threshold``,
        judged by the interval's far end (``side="<="``: the upper bound must be <= threshold;
        ``side=">="``: the lower bound must be >= threshold).

        The verdict's ``error`` / ``tolerance`` keep the common reading (holds iff error <=
        tolerance): for ``"<="`` they are (upper bound, threshold); for ``">="`` they are
        (threshold, lower bound), so the margin is the ratio of the two when both are positive.
        ``statistics[name]`` records value, interval, level, threshold and side for reports.
        """
        if side not in ("<=", ">="):
            raise ValueError(f"side must be '<=' or '>='; got {side!r}")
        lo, hi = (float(x) for x in interval)
        value, threshold = float(value), float(threshold)
        finite = all(math.isfinite(x) for x in (value, lo, hi, threshold))
        if side == "<=":
            error, tol, ok = hi, threshold, finite and hi <= threshold
        else:
            error, tol, ok = threshold, lo, finite and lo >= threshold
        stat = {"value": value, "interval": [lo, hi], "level": float(level), "threshold": threshold, "side": side}
        detail = kw.pop("detail", "")
        text = f"{name} = {value:.4g}, {level:.0%} interval [{lo:.4g}, {hi:.4g}] {'<=' if side == '<=' else '>='} {threshold:.4g}?"
        return cls(holds=bool(ok), error=float(error), tolerance=float(tol), statistics={name: stat},
                   detail=(detail + "; " if detail else "") + text, **kw)

    def per_backend(self) -> dict[str, tuple[float, float]]:
        """``{backend: (error, tolerance)}`` -- the combined parts, or this verdict alone."""
        return dict(self.backends) if self.backends else {self.backend: (self.error, self.tolerance)}

    @classmethod
    def combine(cls, parts: dict, *, sizes: dict | None = None, detail: str = "") -> "Verdict":
        """One verdict from ``{backend: Verdict}``: it holds iff every part holds; its error and
        tolerance are those of the part with the largest ``error / tolerance``."""
        if not parts:
            raise ValueError("combine needs at least one part")
        flat: dict[str, tuple[float, float]] = {}
        stats: dict[str, dict] = {}
        for name, v in parts.items():
            for b, et in v.per_backend().items():
                key = name if len(v.per_backend()) == 1 else f"{name}/{b}"
                flat[key] = et
            for s_name, st in v.statistics.items():
                stats[s_name if len(parts) == 1 else f"{name}/{s_name}"] = st
        worst_name, worst = max(parts.items(), key=lambda kv: (not kv[1].holds, _sort_key(kv[1].margin)))
        return cls(
            holds=all(v.holds for v in parts.values()),
            error=worst.error,
            tolerance=worst.tolerance,
            backend=", ".join(flat),
            sizes=dict(sizes if sizes is not None else worst.sizes),
            detail=(detail + "; " if detail else "") + f"worst {worst_name}: {worst.detail}",
            backends=flat,
            statistics=stats,
        )


def _ratio(error: float, tolerance: float) -> float:
    if not math.isfinite(error):
        return float("nan")
    if tolerance > 0:
        return error / tolerance
    return 0.0 if error == 0 else float("inf")


def _sort_key(x: float) -> float:
    return float("inf") if math.isnan(x) else x


@dataclass(frozen=True)
class Proof:
    """Result of a symbolic proof: ``proved``, what was proved, and its **scope**.

    ``scope`` says for which sizes the proof holds (``"general: symbolic d and k"``,
    ``"L=4, N=2"``) and what it ran: the library's own reference on symbolic inputs
    (``"library reference"``) or a formula retyped for the proof (``"retyped formula"``).
    A proof without a scope is refused: "proved" alone is an overclaim.
    """

    proved: bool
    detail: str
    scope: str = ""

    def __post_init__(self):
        if not self.scope.strip():
            raise ValueError("a Proof must state its scope (sizes; library reference or retyped formula)")


@dataclass(frozen=True)
class Claim:
    id: str
    paper: Paper
    statement: str
    kind: str
    check: Callable[[np.random.Generator, str], Verdict]
    negative_control: Callable[[np.random.Generator, str], Verdict]
    experiment: str | None = None
    proof: Callable[[], Proof] | None = None
    module: str = ""
    test: str = ""
    samples: int = 5  # default number of random instances for `verify`
    controls: str = ""  # one line: what the negative control changes

    def __post_init__(self):
        theme, _, short = self.id.partition(".")
        if theme not in THEMES or not short:
            raise ValueError(f"claim id must be '<theme>.<name>' with theme in {THEMES}; got {self.id!r}")
        if self.kind not in KINDS:
            raise ValueError(f"claim kind must be one of {KINDS}; got {self.kind!r}")
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1; got {self.samples}")

    @property
    def theme(self) -> str:
        return self.id.partition(".")[0]


_REGISTRY: dict[str, Claim] = {}
_LOADED = False


def register(claim: Claim) -> Claim:
    """Add ``claim`` to the registry (idempotent for the same object; duplicate ids are an error)."""
    old = _REGISTRY.get(claim.id)
    if old is not None and old is not claim and old.module != claim.module:
        raise ValueError(f"claim id {claim.id!r} already registered by {old.module}")
    _REGISTRY[claim.id] = claim
    return claim


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    for theme in THEMES:
        try:
            importlib.import_module(f"theorylab.{theme}")
        except ModuleNotFoundError as e:
            if e.name != f"theorylab.{theme}":
                raise
    _LOADED = True


def all_claims() -> list[Claim]:
    """Every registered claim, sorted by id (imports the theme subpackages)."""
    _load_all()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get(claim_id: str) -> Claim:
    _load_all()
    if claim_id not in _REGISTRY:
        raise KeyError(f"no claim {claim_id!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[claim_id]


def select(patterns=()) -> list[Claim]:
    """Claims whose id equals a pattern, or whose theme equals it; all when empty."""
    claims = all_claims()
    if not patterns:
        return claims
    chosen, unknown = [], []
    for p in patterns:
        hit = [c for c in claims if c.id == p or c.theme == p]
        if not hit:
            unknown.append(p)
        chosen.extend(c for c in hit if c not in chosen)
    if unknown:
        raise ValueError(
            f"no claim or theme matches {unknown}; themes: {sorted({c.theme for c in claims})}, "
            f"claims: {[c.id for c in claims]}"
        )
    return chosen


JSON_SCHEMA_VERSION = 3


def _finite_or_none(x):
    """Strict JSON: non-finite numbers become ``null``."""
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


@dataclass(frozen=True)
class ClaimReport:
    """Aggregate of ``samples`` checks and controls of one claim (what ``verify`` prints).

    * ``backends``: ``{backend: {"holds", "max_error", "tolerance"}}`` over all instances;
      the claim holds only when every backend holds on every instance.
    * the negative control is *rejected* only when every control instance fails by the size of
      its error: a finite error above its tolerance.  A control whose error is NaN or inf, or
      that raised (a shape mismatch, say), is ``control_status == "invalid"``: it proves nothing,
      and the claim is not ``ok``.  ``control_margin`` is the smallest control error as a
      multiple of its tolerance.
    """

    claim: Claim
    holds: bool
    max_error: float
    tolerance: float
    negative_control_rejected: bool
    control_min_error: float
    samples: int
    backend: str
    size: str
    proved: bool | None
    detail: str
    backends: dict = field(default_factory=dict)
    control_status: str = "rejected"  # "rejected" | "accepted" | "invalid"
    control_margin: float = float("nan")
    control_detail: str = ""
    proof_scope: str = ""
    errors: tuple = ()  # every instance's (error / tolerance) of the check, for distributions
    statistics: dict = field(default_factory=dict)  # the worst instance's statistics (statistical claims)
    control_statistics: dict = field(default_factory=dict)  # the least-rejected control instance's

    @property
    def ok(self) -> bool:
        return self.holds and self.negative_control_rejected and self.proved is not False

    def as_json(self) -> dict:
        """Strict JSON (non-finite numbers as ``null``); schema version :data:`JSON_SCHEMA_VERSION`."""
        f = _finite_or_none
        return {
            "id": self.claim.id,
            "paper": self.claim.paper.cite(),
            "kind": self.claim.kind,
            "statement": self.claim.statement,
            "holds": self.holds,
            "ok": self.ok,
            "max_error": f(self.max_error),
            "tolerance": f(self.tolerance),
            "backends": {b: {"holds": v["holds"], "max_error": f(v["max_error"]), "tolerance": f(v["tolerance"])}
                         for b, v in self.backends.items()},
            "negative_control": {
                "status": self.control_status,
                "rejected": self.negative_control_rejected,
                "min_error": f(self.control_min_error),
                "margin": f(self.control_margin),
                "what": self.claim.controls,
                "detail": self.control_detail,
                "statistics": _stats_json(self.control_statistics),
            },
            "negative_control_rejected": self.negative_control_rejected,
            "negative_control_min_error": f(self.control_min_error),
            "proof": None if self.proved is None else {"proved": self.proved, "scope": self.proof_scope},
            "proved": self.proved,
            "samples": self.samples,
            "error_ratios": [f(x) for x in self.errors],
            "statistics": _stats_json(self.statistics),
            "backend": self.backend,
            "size": self.size,
            "detail": self.detail,
        }


def _stats_json(stats: dict) -> dict:
    f = _finite_or_none
    return {k: {"value": f(v["value"]), "interval": [f(x) for x in v["interval"]], "level": f(v["level"]),
                "threshold": f(v["threshold"]), "side": v["side"]} for k, v in stats.items()}


def _safe(fn, rng, size):
    """Run a check or control; an exception becomes a non-finite verdict naming it."""
    try:
        return fn(rng, size)
    except Exception as e:  # a control that crashes proves nothing; a check that crashes fails
        return Verdict(holds=False, error=float("nan"), tolerance=0.0, backend="-",
                       detail=f"raised {type(e).__name__}: {e}")


def run_claim(claim: Claim, *, samples: int | None = None, seed: int = 0, size: str = "quick") -> ClaimReport:
    """Run ``claim.check`` and ``claim.negative_control`` on ``samples`` independent instances.

    The claim holds iff every instance holds on every backend; the control is rejected iff
    every instance of the wrong variant fails *by magnitude* (finite error above tolerance).
    Instance ``i`` uses the ``i``-th child of ``SeedSequence(seed)``; control instances use a
    disjoint set of children.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}; got {size!r}")
    n = claim.samples if samples is None else int(samples)
    if n < 1:
        raise ValueError(f"samples must be >= 1; got {n}")
    children = np.random.SeedSequence(seed).spawn(2 * n)
    verdicts = [_safe(claim.check, np.random.default_rng(children[i]), size) for i in range(n)]
    controls = [_safe(claim.negative_control, np.random.default_rng(children[n + i]), size) for i in range(n)]
    worst = max(verdicts, key=lambda v: (not v.holds, _sort_key(v.margin)))
    parts: dict[str, list[tuple[float, float]]] = {}
    for v in verdicts:
        for b, et in v.per_backend().items():
            parts.setdefault(b, []).append(et)
    backends = {}
    for b, ets in parts.items():
        oks = [math.isfinite(e) and e <= t for e, t in ets]
        e, t = max(ets, key=lambda et: (not (math.isfinite(et[0]) and et[0] <= et[1]), _sort_key(_ratio(*et))))
        backends[b] = {"holds": all(oks), "max_error": e, "tolerance": t}
    if any(v.holds for v in controls):
        status = "accepted"
    elif all(math.isfinite(v.error) for v in controls):
        status = "rejected"
    else:
        status = "invalid"
    cworst = min(controls, key=lambda v: _sort_key(v.margin) if math.isfinite(v.error) else -math.inf)
    proof = claim.proof() if claim.proof is not None else None
    return ClaimReport(
        claim=claim,
        holds=all(v.holds for v in verdicts),
        max_error=max((v.error for v in verdicts), key=lambda x: _sort_key(x)),
        tolerance=worst.tolerance,
        negative_control_rejected=status == "rejected",
        control_min_error=min((v.error for v in controls), key=lambda x: _sort_key(x) if math.isfinite(x) else -math.inf),
        samples=n,
        backend=", ".join(backends),
        size=size,
        proved=None if proof is None else proof.proved,
        detail=worst.detail + (f"; proof: {proof.detail}" if proof is not None else ""),
        backends=backends,
        control_status=status,
        control_margin=cworst.margin,
        control_detail=cworst.detail + ("" if status != "invalid" else
                                        " -- rejected only by a non-finite error or an exception, which proves nothing"),
        proof_scope="" if proof is None else proof.scope,
        errors=tuple(v.margin for v in verdicts),
        statistics=dict(worst.statistics),
        control_statistics=dict(cworst.statistics),
    )
