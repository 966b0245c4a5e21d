"""The Python miner: every function and method of a file (nested and async ones too), read with `ast`."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path
from typing import Iterable

from hybridcl.data.mined_function import MinedFunction, SkipFile, dedent, leading_whitespace, read_source
from hybridcl.data.text import clean_docstring, strip_python_docstring


def mine_python_file(path: str | Path) -> list[MinedFunction]:
    """Every function and method of a Python file (nested and async ones too), without decorators."""
    source = read_source(Path(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences and the like
            tree = ast.parse(source)
        definitions = list(_python_definitions(tree))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise SkipFile("parse_error") from None
    lines = source.split("\n")
    return [_python_function(node, name, lines) for node, name in definitions]


_PYTHON_BLOCKS = (ast.stmt, ast.excepthandler, ast.match_case)


def _python_definitions(node: ast.AST, prefix: str = "") -> Iterable[tuple[ast.AST, str]]:
    """(function node, qualified name) pairs: `Class.method`, `outer.inner`.

    Only statements can define functions, so expressions are not entered.
    """
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, _PYTHON_BLOCKS):
            continue
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = prefix + child.name
            if not isinstance(child, ast.ClassDef):
                yield child, name
            yield from _python_definitions(child, name + ".")
        else:
            yield from _python_definitions(child, prefix)


def _python_function(node: ast.FunctionDef, name: str, lines: list[str]) -> MinedFunction:
    first = lines[node.lineno - 1]
    segment = "\n".join([first[node.col_offset :]] + lines[node.lineno : node.end_lineno])
    original = dedent(segment, leading_whitespace(first))
    docstring = ast.get_docstring(node, clean=False)
    if docstring is None:
        return MinedFunction(name, node.lineno, original, None, original)
    return MinedFunction(name, node.lineno, strip_python_docstring(original), clean_docstring(docstring), original)
