"""Pass rate: share of generated programs that tree-sitter parses without error.

A prediction passes when ``parser.parse(code).root_node.has_error`` is false. Generated code is only
parsed, never executed. Rules:
- each language is read in the ways FORMS lists, and a program passes if one of them parses.
  Python is parsed as-is: a function body snippet (indented ``return x``) parses fine, and so does a
  whole function. A method is a function with no standalone form, so where the as-is parse fails, a
  JavaScript prediction is parsed once more as the body of a class (``class _ {\n<code>\n}``):
  ``async foo(a) { ... }`` -- a class method, as CodeSearchNet and our miner take them -- passes,
  while broken code (``return a + ;``, ``foo(a) { return a + ; }``) fails both ways. As-is, 76% of
  2,000 mined npm functions (mostly methods) would "fail" as references; ``reference_pass_rate`` in
  the results shows this ceiling for every run. Java and C# targets (CONCODE's
  ``int function ( ) { return loc0 ; }``, Bugs2Fix's ``public int METHOD_1 ( ) { ... }``, CodeXGLUE's
  translation methods) are single methods: they are read inside a class body first, then as-is (a
  whole file; C# top-level statements). In the class body every one of 40 CodeXGLUE C# targets
  parses, as-is only 34 (constructors such as ``public Foo(): base(x){...}`` need the class);
- Java and C# are close: a method in one often parses as the other. Of 40 CodeXGLUE C# targets, 10
  parse as Java (the rest use ``override``, ``virtual``, ``foreach``, ``lock``, ``@name``,
  ``: base(...)``, ``is``, ...); of 20 CodeXGLUE Java targets 10 parse as C# (the rest use ``throws``,
  ``final``, ``synchronized``, ``instanceof``, ``for (T x : xs)``, ``@Override``, ...), and so do 14
  of 15 CONCODE and 17 of 28 Bugs2Fix targets. Such a prediction is valid syntax in the task's
  language, so it passes;
- an empty or whitespace-only prediction does NOT pass, although tree-sitter parses "" without
  error (an empty module): the model produced no program, and counting that as syntactically valid
  would reward a model for saying nothing;
- grammars: ``tree_sitter_<language>`` packages. This project pins python, javascript, java and
  c_sharp (0.21.x: the 0.23 wheels hand tree-sitter 0.22 a capsule it does not take); for go, php
  and ruby the grammar package is not installed, so the pass rate is None (reported with the
  reason), never a guess. A grammar that is installed but does not load with tree-sitter 0.22 (e.g.
  a newer ABI) is treated the same way.
One parser per language is built once and reused.

Wrong language (an output check, collapse.py): a prediction that does not pass as its task's language
but passes as another language with a loadable grammar (read in that language's FORMS). One that
passes as both is its own language's, so between Java and C# the share is a lower bound: a Java method
for a C# task is flagged only when it uses syntax C# lacks (above). Of the translation targets above,
30 of 40 C# methods are flagged for a Java task and 10 of 20 Java methods for a C# task; none of them
parses as Python or JavaScript.
"""

from __future__ import annotations

import functools
import importlib

from tree_sitter import Language, Parser

# target language -> (grammar package, function returning the language pointer); codebleu's names
GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "java": ("tree_sitter_java", "language"),
    "c_sharp": ("tree_sitter_c_sharp", "language"),
    "go": ("tree_sitter_go", "language"),
    "php": ("tree_sitter_php", "language_php"),
    "ruby": ("tree_sitter_ruby", "language"),
}

_AS_IS = ("", "")
_CLASS_BODY = ("class _ {\n", "\n}")
# The ways a program may be read, tried in order (prefix, suffix); it passes if one parses cleanly.
# Java and C# constructors only parse inside a class (methods parse either way). php is untested here (its
# grammar is not installed); it is listed so that installing the grammar cannot silently give wrong
# figures: tree-sitter-php reads everything before a `<?php` tag as inline HTML, so without the tag
# every PHP prediction would "parse".
FORMS: dict[str, tuple[tuple[str, str], ...]] = {
    "python": (_AS_IS,),
    "javascript": (_AS_IS, _CLASS_BODY),
    "java": (_CLASS_BODY, _AS_IS),
    "c_sharp": (_CLASS_BODY, _AS_IS),
    "go": (_AS_IS,),
    "php": (("<?php\n", ""), ("<?php\nclass _ {\n", "\n}")),
    "ruby": (_AS_IS,),
}


@functools.lru_cache(maxsize=None)
def _load_parser(language: str) -> tuple[Parser | None, str | None]:
    if language not in GRAMMARS:
        return None, f"no tree-sitter grammar is known for {language!r}"
    module_name, attr = GRAMMARS[language]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None, (
            f"the tree-sitter grammar for {language} ({module_name.replace('_', '-')}) is not installed; "
            "this project pins grammars for python, javascript, java and c_sharp only"
        )
    try:
        return Parser(Language(getattr(module, attr)())), None
    except Exception as err:  # wrong ABI for tree-sitter 0.22, missing entry point, ...
        return None, f"the tree-sitter grammar for {language} does not load with this tree-sitter: {err}"


def get_parser(language: str) -> Parser | None:
    """The shared tree-sitter parser for ``language``, or None when its grammar is unavailable."""
    return _load_parser(language)[0]


def unavailable_reason(language: str) -> str | None:
    """Why there is no parser for ``language`` (None when there is one)."""
    return _load_parser(language)[1]


def parses(code: str, parser: Parser, forms: tuple[tuple[str, str], ...] = (_AS_IS,)) -> bool:
    """True when ``code`` is not blank and, read in one of ``forms``, parses without error."""
    if not code.strip():
        return False
    return any(
        not parser.parse(f"{prefix}{code}{suffix}".encode("utf-8")).root_node.has_error for prefix, suffix in forms
    )


def parse_flags(codes: list[str], language: str) -> list[bool] | None:
    """One flag per program (True = parses without error), or None when there is no grammar."""
    parser = get_parser(language)
    if parser is None:
        return None
    forms = FORMS[language]
    return [parses(code, parser, forms) for code in codes]


def pass_rate(codes: list[str], language: str) -> float | None:
    flags = parse_flags(codes, language)
    if flags is None or not flags:
        return None
    return sum(flags) / len(flags)


def wrong_language_flags(codes: list[str], language: str, own: list[bool] | None) -> list[bool] | None:
    """Per program: True when it does not parse as `language` (`own`: its parse_flags there) but parses
    as another language with a grammar; None without `own` (no grammar for `language`, or natural-language
    targets) or without another language's grammar."""
    others = [lang for lang in GRAMMARS if lang != language and get_parser(lang) is not None]
    if own is None or not others:
        return None
    return [not mine and any(parse_flags([code], other)[0] for other in others) for code, mine in zip(codes, own)]
