"""The README claims table, generated from the registry (a test fails when the README is stale).

Regenerate with ``theorylab readme-table`` and paste between the markers
``<!-- claims-table:start -->`` and ``<!-- claims-table:end -->``, or run
``python -m theorylab.readme --write``.
"""

from __future__ import annotations

import sys

from .claims import all_claims, run_claim
from .experiment import repo_root

START, END = "<!-- claims-table:start -->", "<!-- claims-table:end -->"


def status(claim) -> str:
    """Measured now: one quick instance of the check and of the negative control (seed 0).
    Only what is the same on every machine goes in (no errors, margins or timings; CUDA, which
    CI lacks, is left out of the backend list); ``theorylab verify`` prints the numbers."""
    r = run_claim(claim, samples=1, seed=0, size="quick")
    if not r.ok:
        return "**FAILS** (`theorylab verify " + claim.id + "`)"
    proof = f", proved ({r.proof_scope})" if r.proved else ""
    backends = sorted({b.split("/")[-1].split("[")[-1].rstrip("]") for b in r.backends} - {"torch:cuda"})
    return f"holds ({', '.join(backends)}), control rejected{proof}"


def claims_table() -> str:
    rows = [
        "| claim | paper | kind | module | test | figure | negative control | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in all_claims():
        fig = f"[{c.experiment}](figures/{c.experiment}.png)" if c.experiment else "-"
        rows.append(
            f"| `{c.id}` | {c.paper.short()} {c.paper.title} ({c.paper.year}) | {c.kind} | `{c.module}` | "
            f"`{c.test}` | {fig} | {c.controls} | {status(c)} |"
        )
    return "\n".join(rows)


def render(readme: str, table: str | None = None) -> str:
    """``readme`` with the text between the markers replaced by ``table`` (default: the current one)."""
    if START not in readme or END not in readme:
        raise ValueError(f"README lacks the markers {START} ... {END}")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{claims_table() if table is None else table}\n{END}{tail}"


if __name__ == "__main__":
    path = repo_root() / "README.md"
    new = render(path.read_text())
    if "--write" in sys.argv:
        path.write_text(new)
    else:
        print(new)
