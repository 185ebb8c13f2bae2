"""The README claims table is generated from the registry and must be current."""

import pytest

from theorylab.experiment import repo_root
from theorylab.readme import END, START, claims_table, render


@pytest.fixture(scope="module")
def table():
    return claims_table()  # runs one quick instance of every claim and its control


def test_readme_claims_table_is_current(table):
    readme = (repo_root() / "README.md").read_text()
    assert render(readme, table) == readme, "README claims table is stale: run `python -m theorylab.readme --write`"


def test_table_lists_every_claim_and_all_hold(table):
    from theorylab.claims import all_claims

    for c in all_claims():
        assert f"`{c.id}`" in table
    assert "FAILS" not in table


def test_readme_shows_the_ci_test_command():
    ci = (repo_root() / ".ci" / "run").read_text()
    readme = (repo_root() / "README.md").read_text()
    cmd = next(line.strip() for line in ci.splitlines() if "pytest" in line and not line.lstrip().startswith("#"))
    assert cmd.startswith("HYPOTHESIS_PROFILE=ci python -m pytest")
    assert cmd in readme, f"README must show the test command that .ci/run runs: {cmd}"
    assert START in readme and END in readme
