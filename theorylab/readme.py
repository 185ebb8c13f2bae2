"""The README claims table, generated from the registry (a test fails when the README is stale).

Regenerate with ``theorylab readme-table`` and paste between the markers
``<!-- claims-table:start -->`` and ``<!-- claims-table:end -->``, or run
``python -m theorylab.readme --write``.
"""

from __future__ import annotations

import sys

from .claims import all_claims
from .experiment import repo_root

START, END = "<!-- claims-table:start -->", "<!-- claims-table:end -->"


def claims_table() -> str:
    rows = [
        "| claim | paper | kind | module | test | figure | negative control |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in all_claims():
        fig = f"[{c.experiment}](figures/{c.experiment}.png)" if c.experiment else "-"
        rows.append(
            f"| `{c.id}` | {c.paper.short()} {c.paper.title} ({c.paper.year}) | {c.kind} | `{c.module}` | "
            f"`{c.test}` | {fig} | {c.controls} |"
        )
    return "\n".join(rows)


def render(readme: str) -> str:
    """``readme`` with the text between the markers replaced by the current table."""
    if START not in readme or END not in readme:
        raise ValueError(f"README lacks the markers {START} ... {END}")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{claims_table()}\n{END}{tail}"


if __name__ == "__main__":
    path = repo_root() / "README.md"
    new = render(path.read_text())
    if "--write" in sys.argv:
        path.write_text(new)
    else:
        print(new)
