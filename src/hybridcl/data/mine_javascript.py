"""The JavaScript miner: function declarations, methods and function-valued assignments of a file, each
with the JSDoc block right before it if any, read with tree-sitter."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from hybridcl.data.mined_function import MinedFunction, SkipFile, dedent, leading_whitespace, read_source
from hybridcl.data.text import clean_docstring

MAX_MEAN_LINE_CHARS = 200  # a JavaScript file whose lines are longer on average is minified

_JS_FUNCTION_VALUES = {"function_expression", "arrow_function", "generator_function"}
_JS_DECLARATIONS = {"function_declaration", "generator_function_declaration"}
# `var o = {...}`, `a.b = {...}`, `{key: {...}}`: the field that names an object literal
_JS_OBJECT_OWNER_FIELDS = {"variable_declarator": "name", "assignment_expression": "left", "pair": "key"}


# every node kind that may define a function; `_javascript_name` tells which do
_JS_CANDIDATES_QUERY = """[
  (function_declaration) (generator_function_declaration) (method_definition) (pair) (field_definition)
  (expression_statement) (lexical_declaration) (variable_declaration) (export_statement)
] @candidate"""


@cache
def _javascript_tools():
    """(parser, query of candidate nodes), built once per process."""
    import tree_sitter_javascript
    from tree_sitter import Language, Parser

    language = Language(tree_sitter_javascript.language())
    return Parser(language), language.query(_JS_CANDIDATES_QUERY)


def mine_javascript_file(path: str | Path) -> list[MinedFunction]:
    """Function declarations, methods and function-valued assignments, with their JSDoc if any."""
    source = read_source(Path(path))
    if _looks_minified(source):
        raise SkipFile("minified")
    parser, candidates = _javascript_tools()
    tree = parser.parse(source.encode("utf-8"))
    if tree.root_node.has_error:
        raise SkipFile("parse_error")
    lines = source.split("\n")
    definitions = ((node, _javascript_name(node)) for node, _ in candidates.captures(tree.root_node))
    return [_javascript_function(node, name, lines) for node, name in definitions if name is not None]


def _looks_minified(source: str) -> bool:
    """Long lines on average; `//` lines (an inline source map, say) do not count."""
    lengths = [len(line) for line in source.split("\n") if not line.lstrip().startswith("//")]
    return bool(lengths) and sum(lengths) / len(lengths) > MAX_MEAN_LINE_CHARS


def _javascript_name(node) -> str | None:
    """The defined function's name when `node` defines one, else None."""
    kind = node.type
    if kind in _JS_DECLARATIONS:
        return _text(node.child_by_field_name("name"))
    if kind == "method_definition":
        return _qualified(node, _text(node.child_by_field_name("name")))
    if kind in ("pair", "field_definition") and _is_function(node.child_by_field_name("value")):
        key = node.child_by_field_name("key") or node.child_by_field_name("property")
        return _qualified(node, _text(key))
    if kind == "expression_statement" and node.named_child_count == 1:
        expression = node.named_children[0]
        if expression.type == "assignment_expression" and _is_function(expression.child_by_field_name("right")):
            return _text(expression.child_by_field_name("left"))
    if kind in ("lexical_declaration", "variable_declaration"):
        declarator = node.named_children[0] if node.named_child_count else None
        if declarator is not None and _is_function(declarator.child_by_field_name("value")):
            return _text(declarator.child_by_field_name("name"))
    if kind == "export_statement" and _is_function(node.child_by_field_name("value")):
        return "default"
    return None


def _is_function(node) -> bool:
    return node is not None and node.type in _JS_FUNCTION_VALUES


def _text(node) -> str:
    return node.text.decode("utf-8") if node is not None else ""


def _qualified(member, name: str) -> str:
    """`Owner.name` for a member of a named class or of an object literal given a name."""
    owner = _owner_name(member.parent)
    return f"{owner}.{name}" if owner else name


def _owner_name(container) -> str:
    holder = container.parent
    if container.type == "class_body":
        return _text(holder.child_by_field_name("name"))
    if container.type == "object" and holder is not None and holder.type in _JS_OBJECT_OWNER_FIELDS:
        return _text(holder.child_by_field_name(_JS_OBJECT_OWNER_FIELDS[holder.type]))
    return ""


def _javascript_function(node, name: str, lines: list[str]) -> MinedFunction:
    anchor = node.parent if node.parent is not None and node.parent.type == "export_statement" else node
    row = anchor.start_point[0]
    code = dedent(_text(anchor), leading_whitespace(lines[row]))
    return MinedFunction(name, row + 1, code, _jsdoc(anchor))


def _jsdoc(anchor) -> str | None:
    """The cleaned JSDoc block right before `anchor` (nothing but whitespace between), else None."""
    comment = anchor.prev_sibling
    if comment is None or comment.type != "comment":
        return None
    text = _text(comment)
    if not text.startswith("/**") or text.startswith("/**/"):
        return None
    return clean_docstring(text)
