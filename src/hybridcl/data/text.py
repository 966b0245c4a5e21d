"""Docstring and code clean-up shared by every data source, so all sources give the same pairs."""

from __future__ import annotations

import ast
import inspect
import io
import re

_JSDOC_TAG = re.compile(r"^\s*@\w+")
_JSDOC_INLINE = re.compile(r"\{@\w+\s+([^}|]*)(?:\|[^}]*)?\}")  # {@link Foo|text} -> Foo


def clean_docstring(text: str) -> str:
    """First paragraph of a docstring or JSDoc block, without comment markers or @tags, on one line."""
    if text.lstrip().startswith("/*"):
        text = _strip_comment_markers(text)
    lines = inspect.cleandoc(text).splitlines()
    paragraph: list[str] = []
    for line in lines:
        if _JSDOC_TAG.match(line) or (not line.strip() and paragraph):
            break
        if line.strip():
            paragraph.append(line.strip())
    return _JSDOC_INLINE.sub(r"\1", " ".join(paragraph)).strip()


def _strip_comment_markers(comment: str) -> str:
    body = comment.strip()
    body = body[3:] if body.startswith("/**") else body[2:]
    body = body[:-2] if body.endswith("*/") else body
    return "\n".join(re.sub(r"^\s*\*( ?)", "", line) for line in body.splitlines())


def word_count(text: str) -> int:
    return len(text.split())


def strip_python_docstring(code: str) -> str:
    """The function's source without its docstring statement (CodeSearchNet keeps it in `code`).

    Source that does not parse on its own is returned unchanged.
    """
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code
    function = next((node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    if function is None or not function.body:
        return code
    first = function.body[0]
    if not (
        isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    ):
        return code
    if first.lineno == function.lineno:  # `def f(): "doc"; ...` on one line: leave it whole
        return code
    lines = io.StringIO(code, newline="").readlines()  # the line breaks ast counts (not str.splitlines')
    start, end = first.lineno - 1, first.end_lineno
    if len(function.body) == 1:  # keep the function valid: a docstring-only body becomes `pass`
        indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
        return "".join(lines[:start] + [f"{indent}pass\n"] + lines[end:])
    return "".join(lines[:start] + lines[end:])
