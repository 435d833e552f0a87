"""The code blocks of the docs, by name, so tests can run them as a reader would.

A block is named by the HTML comment on the line before it (``<!-- snippet: NAME -->``, or
the README's ``<!-- quick-start... -->`` markers), which readers of the rendered page never
see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DOCS", "REPO", "RUNNABLE", "Snippet", "named", "snippets"]

REPO = Path(__file__).resolve().parents[2]
DOCS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))

RUNNABLE = frozenset({"python", "bash", "sh"})
"""Languages of blocks a reader runs; ``text`` and ``json`` blocks show output or bodies."""

_FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```\n", re.S | re.M)
_NAME = re.compile(
    r"<!-- (?:snippet: ([\w.-]+)|(quick-start)[:\s].*?|quick-start-run: ([\w.]+)) -->"
)


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int
    language: str
    name: str | None
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    def commands(self) -> list[str]:
        """A shell block's command lines, without comments and blank lines."""
        lines = (re.sub(r"\s+#.*$", "", line).strip() for line in self.code.splitlines())
        return [line for line in lines if line and not line.startswith("#")]


def snippets(path: Path) -> list[Snippet]:
    text = path.read_text()
    found = []
    for fence in _FENCE.finditer(text):
        before = text[: fence.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        marker = _NAME.fullmatch(before)
        name = None
        if marker:
            name = marker.group(1) or marker.group(2) or f"quick-start-run-{marker.group(3)}"
        indent = len(fence.group(1))
        code = "\n".join(line[indent:] for line in fence.group(3).splitlines()) + "\n"
        line = text.count("\n", 0, fence.start()) + 1
        found.append(Snippet(path, line, fence.group(2), name, code))
    return found


def named(name: str) -> list[Snippet]:
    """Every block of the docs with this name (the same commands may be shown twice)."""
    found = [s for path in DOCS for s in snippets(path) if s.name == name]
    assert found, f"no block in the docs is named {name!r}"
    return found
