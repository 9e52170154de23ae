"""The docs stand alone: every link in README.md and docs/ resolves inside the repository (anchors
included), and the docs speak of the product, not of the material it was built from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|^\s*\[[^\]]+\]:\s*(\S+)", re.M)


def _without_code(text: str) -> str:
    text = re.sub(r"(?ms)^```.*?^```", "", text)
    return re.sub(r"`[^`\n]*`", "", text)


def _anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"(?m)^#{1,6}\s+(.+?)\s*#*\s*$", _without_code(path.read_text()))
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def links(path: Path) -> list[str]:
    return [a or b for a, b in LINK.findall(_without_code(path.read_text()))]


def test_there_are_docs_and_links():
    assert len(DOCS) > 5 and sum(len(links(p)) for p in DOCS) > 10


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_resolves_inside_the_repository(doc):
    for target in links(doc):
        assert not re.match(r"^[a-z][a-z0-9+.-]*:|^//", target, re.I), f"{doc.name}: {target} leaves the repository"
        where, _, anchor = target.partition("#")
        file = (doc.parent / where).resolve() if where else doc
        assert file.is_relative_to(REPO) and file.exists(), f"{doc.name}: {target} does not resolve inside the repository"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file), f"{doc.name}: {target}: no heading #{anchor} in {file.name}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_docs_speak_of_the_product(doc):
    text = doc.read_text()
    for pattern in (r"(?i)\bseed\s*0\d\d\b", r"(?i)\bthe seed'?s?\b", r"shared/", r"DESIGN\.md", r"/work/"):
        assert not re.search(pattern, text), f"{doc.name} mentions {pattern!r}: docs speak of the product"


def test_the_readme_links_the_architecture_map():
    assert "(docs/architecture.md)" in (REPO / "README.md").read_text()
