"""What the language miners share: the function they find, the signal that a file cannot be mined, and
reading and dedenting source text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MinedFunction:
    """A function found in a file; `docstring` is cleaned, None when the function has none."""

    name: str
    line: int
    code: str
    docstring: str | None
    original: str = ""


class SkipFile(Exception):
    """A file that cannot be mined; `reason` goes into the summary's counts."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def read_source(path: Path) -> str:
    """The file's text with `\n` line ends; SkipFile when it cannot be read as UTF-8."""
    try:
        data = path.read_bytes()
    except OSError:
        raise SkipFile("unreadable") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SkipFile("non_utf8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def leading_whitespace(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def dedent(text: str, indent: str) -> str:
    """Remove `indent` from every line that starts with it (a block's first line starts at its code)."""
    return "\n".join(line[len(indent) :] if line.startswith(indent) else line for line in text.split("\n"))
