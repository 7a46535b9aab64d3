"""README.md and docs/ point only at things that exist: files, sections, repository paths."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.doc_blocks import ROOT, documents

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)( §(\d+))?")
REPO_PATH = re.compile(r"`((?:[\w.-]+/)+[\w.-]+\.(?:md|py|toml|txt|conf|yaml|mjs))`")
NOT_IN_A_CHECKOUT = ("instance/", "INSTANCE_DIR/", "/")  # written at run time, or absolute


@pytest.mark.parametrize("document", documents(), ids=lambda p: p.name)
def test_links_and_section_references_resolve(document: Path) -> None:
    broken = []
    for target, _, section in LINK.findall(document.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path = document.parent / target
        if not path.exists():
            broken.append(target)
        elif section and not re.search(rf"^#+ {section}\.", path.read_text(), re.MULTILINE):
            broken.append(f"{target} §{section}")
    assert broken == []


@pytest.mark.parametrize("document", documents(), ids=lambda p: p.name)
def test_repository_paths_named_exist(document: Path) -> None:
    missing = [p for p in REPO_PATH.findall(document.read_text())
               if not p.startswith(NOT_IN_A_CHECKOUT) and not (ROOT / p).exists()
               and not (document.parent / p).exists()]
    assert missing == []
