"""The fenced code blocks of README.md and docs/*.md, each marked as run by a test or not.

A block is preceded by `<!-- snippet: NAME -->` (a test runs it as written) or
`<!-- not-run: REASON -->` (a diagram, a file layout, a command that needs production paths).
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
MARKER = re.compile(r"<!-- (snippet|not-run): ([^>]+?) -->\n$")


@dataclass(frozen=True)
class Block:
    """One fenced block: its marker ("snippet", "not-run" or None), name or reason, code."""

    path: Path
    marker: str | None
    label: str
    language: str
    code: str


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    found = []
    for fence in FENCE.finditer(text):
        marker = MARKER.search(text, 0, fence.start())
        if marker is not None and marker.end() != fence.start():
            marker = None
        found.append(Block(path, marker.group(1) if marker else None,
                           marker.group(2) if marker else "", fence.group(1), fence.group(2)))
    return found


def snippets(path: Path) -> dict[str, Block]:
    """name -> block of every block a test runs."""
    return {b.label: b for b in blocks(path) if b.marker == "snippet"}


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py as a module (scripts/ is not a package), e.g. a docs renderer."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
