"""Every python code block in docs/*.md and README.md runs (worked examples stay true)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_doc_code_blocks_run(doc):
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
    assert blocks, f"{doc.name} has no python code block"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(doc), "exec"), namespace)


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_doc_relative_links_exist(doc):
    """Every relative link (Markdown or HTML) in the docs and the README points at a file that exists."""
    text = doc.read_text()
    links = re.findall(r"\]\(([^)#\s]+)\)", text) + re.findall(r'(?:src|href)="([^"#]+)"', text)
    broken = [link for link in links if "://" not in link and not (doc.parent / link).exists()]
    assert not broken, f"{doc.name} links to missing files: {broken}"
