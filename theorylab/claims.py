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
    """Outcome of one check on one instance: holds iff ``error <= tolerance``."""

    holds: bool
    error: float
    tolerance: float
    backend: str = "ref"
    sizes: dict = field(default_factory=dict)
    detail: str = ""

    @classmethod
    def from_error(cls, error: float, tolerance: float, **kw) -> "Verdict":
        error = float(error)
        ok = bool(math.isfinite(error) and error <= tolerance)
        return cls(holds=ok, error=error, tolerance=float(tolerance), **kw)


@dataclass(frozen=True)
class Proof:
    """Result of a symbolic proof: ``proved`` and what was proved (sizes, statement)."""

    proved: bool
    detail: str


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


@dataclass(frozen=True)
class ClaimReport:
    """Aggregate of ``samples`` checks and controls of one claim (what ``verify`` prints)."""

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

    @property
    def ok(self) -> bool:
        return self.holds and self.negative_control_rejected and self.proved is not False

    def as_json(self) -> dict:
        return {
            "id": self.claim.id,
            "paper": self.claim.paper.cite(),
            "kind": self.claim.kind,
            "holds": self.holds,
            "max_error": self.max_error,
            "tolerance": self.tolerance,
            "negative_control_rejected": self.negative_control_rejected,
            "negative_control_min_error": self.control_min_error,
            "samples": self.samples,
            "backend": self.backend,
            "size": self.size,
            "proved": self.proved,
            "detail": self.detail,
        }


def run_claim(claim: Claim, *, samples: int | None = None, seed: int = 0, size: str = "quick") -> ClaimReport:
    """Run ``claim.check`` and ``claim.negative_control`` on ``samples`` independent instances.

    The claim holds iff every instance holds; the control is rejected iff no instance
    of the wrong variant holds.  Instance ``i`` uses the ``i``-th child of
    ``SeedSequence(seed)``; control instances use a disjoint set of children.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}; got {size!r}")
    n = claim.samples if samples is None else int(samples)
    if n < 1:
        raise ValueError(f"samples must be >= 1; got {n}")
    children = np.random.SeedSequence(seed).spawn(2 * n)
    verdicts = [claim.check(np.random.default_rng(children[i]), size) for i in range(n)]
    controls = [claim.negative_control(np.random.default_rng(children[n + i]), size) for i in range(n)]
    worst = max(verdicts, key=lambda v: (not v.holds, v.error / v.tolerance if v.tolerance else v.error))
    proof = claim.proof() if claim.proof is not None else None
    return ClaimReport(
        claim=claim,
        holds=all(v.holds for v in verdicts),
        max_error=max(v.error for v in verdicts),
        tolerance=worst.tolerance,
        negative_control_rejected=not any(v.holds for v in controls),
        control_min_error=min(v.error for v in controls),
        samples=n,
        backend=", ".join(sorted({v.backend for v in verdicts})),
        size=size,
        proved=None if proof is None else proof.proved,
        detail=worst.detail + (f"; proof: {proof.detail}" if proof is not None else ""),
    )
