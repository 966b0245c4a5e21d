"""The offline miner: (code, docstring) pairs from local source trees, in CodeSearchNet's schema.

Python functions and methods with a docstring, read with `ast`; JavaScript functions, methods and
function-valued assignments preceded directly by a JSDoc block, read with tree-sitter. A pair needs a
docstring of at least `MIN_DOCSTRING_WORDS` words after `clean_docstring`. Pairs are deduplicated
(whitespace-normalised code; the first in (repo, path, line) order is kept) and split by package (see
`package_of`), so no package has functions in two splits.

Default sources: for Python the running interpreter's standard library and site-packages, for
JavaScript the npm packages pinned in `resources/js_packages.txt`, installed into the cache dir.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import warnings
from collections import Counter
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Iterable

from tqdm import tqdm

from hybridcl.data.schema import CORPUS_LAYOUT, POOLS, DataError, Record, dedup_key, write_jsonl_gz
from hybridcl.data.text import clean_docstring, strip_python_docstring, word_count

MIN_DOCSTRING_WORDS = 3
# Shares of the packages (not of the pairs) in each pool. Half the packages pre-train the stand-in base
# (it needs the most tokens); the experiments sample at most a few thousand train and valid pairs per
# language from the rest, and the seed-sized offline run 8K + 2K.
POOL_SHARES = {"pretrain": 0.5, "train": 0.3, "valid": 0.1, "test": 0.1}
EXTENSIONS = {".py": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript"}
TEST_DIRS = {"test", "tests", "testing", "__tests__", "spec"}
BUNDLE_DIRS = {"dist", "build", "umd"}
MAX_JS_BYTES = 1_000_000
MAX_MEAN_LINE_CHARS = 200  # a JavaScript file whose lines are longer on average is minified
NPM_PACKAGE_LIST = "js_packages.txt"
NPM_BEFORE = "2026-11-24T00:00:00Z"  # dependencies resolve as on this date (move it when the list changes)
FUNCTION_REASONS = {"no_docstring", "short_docstring", "duplicate"}  # counted per function; the rest per file


@dataclass(frozen=True)
class MinedFunction:
    """A function found in a file; `docstring` is cleaned, None when the function has none."""

    name: str
    line: int
    code: str
    docstring: str | None
    original: str = ""


@dataclass(frozen=True)
class SourceFile:
    path: Path
    language: str
    repo: str
    rel_path: str  # relative to the package root
    url_path: str  # relative to the source root


@dataclass(frozen=True)
class Source:
    """A tree to mine; `loose_repo` names the package of files directly under `root` (None: the file
    stem); folders named in `skip_dirs` are not entered."""

    root: Path
    loose_repo: str | None = None
    skip_dirs: frozenset[str] = frozenset()


class SkipFile(Exception):
    """A file that cannot be mined; `reason` goes into the summary's counts."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ----------------------------------------------------------------------------------------- reading


def _read_source(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        raise SkipFile("unreadable") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SkipFile("non_utf8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _leading_whitespace(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _dedent(text: str, indent: str) -> str:
    """Remove `indent` from every line that starts with it (a block's first line starts at its code)."""
    return "\n".join(line[len(indent) :] if line.startswith(indent) else line for line in text.split("\n"))


# ------------------------------------------------------------------------------------------ python


def mine_python_file(path: str | Path) -> list[MinedFunction]:
    """Every function and method of a Python file (nested and async ones too), without decorators."""
    source = _read_source(Path(path))
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
    original = _dedent(segment, _leading_whitespace(first))
    docstring = ast.get_docstring(node, clean=False)
    if docstring is None:
        return MinedFunction(name, node.lineno, original, None, original)
    return MinedFunction(name, node.lineno, strip_python_docstring(original), clean_docstring(docstring), original)


# -------------------------------------------------------------------------------------- javascript

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
    source = _read_source(Path(path))
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
    code = _dedent(_text(anchor), _leading_whitespace(lines[row]))
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


# --------------------------------------------------------------------------------------- discovery

MINERS = {"python": mine_python_file, "javascript": mine_javascript_file}


def discover_files(source: Source, language: str, skipped: Counter) -> list[SourceFile]:
    """The source's files of `language`, sorted by path; skipped files are counted by reason."""
    files = []
    npm_names: dict[Path, str | None] = {}
    for directory, dirnames, filenames in os.walk(source.root):
        dirnames[:] = [d for d in dirnames if not (d.startswith(".") or d == "__pycache__" or d in source.skip_dirs)]
        for filename in filenames:
            path = Path(directory, filename)
            if EXTENSIONS.get(path.suffix) != language or path.is_symlink():
                continue
            parts = path.relative_to(source.root).parts
            reason = _path_skip_reason(parts, language, path)
            if reason:
                skipped[reason] += 1
            else:
                repo, depth = package_of(source.root, parts, source.loose_repo, npm_names)
                files.append(SourceFile(path, language, repo, "/".join(parts[depth:]), "/".join(parts)))
    return sorted(files, key=lambda file: file.url_path)


def _path_skip_reason(parts: tuple[str, ...], language: str, path: Path) -> str | None:
    folders = set(parts[:-1])
    if folders & TEST_DIRS:
        return "test_folder"
    if language != "javascript":
        return None
    name = parts[-1]
    if ".min." in name or name.endswith("-min.js"):
        return "minified"
    if folders & BUNDLE_DIRS or "bundle" in name.lower() or path.stat().st_size > MAX_JS_BYTES:
        return "bundle"
    return None


PACKAGE_FOLDERS = {"site-packages", "dist-packages", "node_modules", "nodejs"}  # one package per child folder

Package = tuple[str, int]  # (name, number of leading path parts that lead to the package root)


def package_of(
    root: Path, parts: tuple[str, ...], loose_repo: str | None = None, npm_names: dict[Path, str | None] | None = None
) -> Package:
    """The package of the file `root/parts`, by the first rule that holds, in this order:

    - Python: the top-level import package: from the file's folder up, the last folder in a row with an
      `__init__.py` (named by the folder);
    - the folder right under the innermost site-packages, dist-packages, node_modules or nodejs
      folder (`@scope/name` for scoped npm packages); a file directly inside one is its own module;
    - JavaScript: the nearest folder with a package.json that gives a "name" (that name);
    - a file directly under `root`: `loose_repo` (default: the module name); any other file: its
      folder (the folder's relative path).

    Installed packages come before package.json files because a package may hold package.json files
    that name its subpath entry points (preact's `hooks/` is "preact-hooks"). `npm_names` caches
    package.json names by folder across calls.
    """
    language = EXTENSIONS.get(Path(parts[-1]).suffix)
    if language == "python" and (package := _python_package(root, parts)):
        return package
    if package := _installed_package(root.name, parts):
        return package
    if language == "javascript" and (package := _npm_package(root, parts, {} if npm_names is None else npm_names)):
        return package
    return _folder_package(parts, loose_repo)


def _python_package(root: Path, parts: tuple[str, ...]) -> Package | None:
    depth = len(parts) - 1  # of the file's folder
    while depth >= 0 and root.joinpath(*parts[:depth], "__init__.py").is_file():
        depth -= 1
    if depth == len(parts) - 1:
        return None
    return root.joinpath(*parts[: depth + 1]).name, depth + 1


def _installed_package(root_name: str, parts: tuple[str, ...]) -> Package | None:
    folders = (root_name, *parts[:-1])  # folders[i + 1] is parts[i]
    inside = [i for i, folder in enumerate(folders) if folder in PACKAGE_FOLDERS]
    if not inside:
        return None
    start = inside[-1]  # parts[start] is right under the innermost package folder
    if start == len(parts) - 1:
        return Path(parts[start]).stem, start
    width = 2 if parts[start].startswith("@") and start + 2 < len(parts) else 1
    return "/".join(parts[start : start + width]), start + width


def _npm_package(root: Path, parts: tuple[str, ...], names: dict[Path, str | None]) -> Package | None:
    for depth in range(len(parts) - 1, -1, -1):
        folder = root.joinpath(*parts[:depth])
        if folder not in names:
            names[folder] = _package_json_name(folder / "package.json")
        if names[folder]:
            return names[folder], depth
    return None


def _package_json_name(path: Path) -> str | None:
    """The "name" of a package.json; None when it has none (`{"type": "module"}` markers) or is unreadable."""
    try:
        manifest = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    name = manifest.get("name") if isinstance(manifest, dict) else None
    return name if isinstance(name, str) and name else None


def _folder_package(parts: tuple[str, ...], loose_repo: str | None) -> Package:
    if len(parts) == 1:
        return loose_repo or Path(parts[0]).stem, 0
    return "/".join(parts[:-1]), len(parts) - 1


# ------------------------------------------------------------------------------------------ mining


def _rejection(function: MinedFunction) -> str | None:
    if function.docstring is None:
        return "no_docstring"
    if word_count(function.docstring) < MIN_DOCSTRING_WORDS:
        return "short_docstring"
    return None


def mine_file(file: SourceFile) -> tuple[list[Record], Counter]:
    """The file's pairs as records (no partition yet) and the counts of what was skipped, by reason."""
    try:
        functions = MINERS[file.language](file.path)
    except SkipFile as skip:
        return [], Counter({skip.reason: 1})
    records, skipped = [], Counter()
    for function in functions:
        reason = _rejection(function)
        if reason:
            skipped[reason] += 1
        else:
            records.append(_record(file, function))
    return records, skipped


def _record(file: SourceFile, function: MinedFunction) -> Record:
    return Record(
        repo=file.repo,
        path=file.rel_path,
        func_name=function.name,
        language=file.language,
        code=function.code,
        docstring=function.docstring,
        url=f"file://{file.url_path}#L{function.line}",
        original_string=function.original,
    )


def mine_files(files: list[SourceFile], skipped: Counter, desc: str = "mining") -> list[Record]:
    """Records of all files in file order; over a pool of processes when there are many files."""
    workers = min(os.cpu_count() or 1, 8) if len(files) >= 64 else 1
    with tqdm(total=len(files), desc=desc, unit="file") as progress:
        if workers == 1:
            return _collect(map(mine_file, files), skipped, progress)
        with multiprocessing.Pool(workers) as pool:
            return _collect(pool.imap(mine_file, files, chunksize=16), skipped, progress)


def _collect(results: Iterable[tuple[list[Record], Counter]], skipped: Counter, progress: tqdm) -> list[Record]:
    records = []
    for file_records, file_skipped in results:
        records.extend(file_records)
        skipped.update(file_skipped)
        progress.update()
    return records


def deduplicate(records: list[Record]) -> tuple[list[Record], int]:
    """The records ordered by (repo, path), keeping their order within a file, without exact duplicates
    (the first is kept); and how many were removed."""
    seen: set[str] = set()
    unique = []
    for record in sorted(records, key=lambda record: (record.repo, record.path)):
        key = dedup_key(record)
        if key not in seen:
            seen.add(key)
            unique.append(record)
    return unique, len(records) - len(unique)


def pool_of(package: str, seed: int = 0) -> str:
    """The pool of a package: a pure function of its name (and the split seed), so adding or removing
    other packages never moves it. A hash of the name, read as a number in [0, 1), falls into one of
    POOL_SHARES' cumulative intervals."""
    position = int.from_bytes(hashlib.sha256(f"{seed}:{package}".encode()).digest()[:8], "big") / 2**64
    for pool, end in zip(POOL_SHARES, itertools.accumulate(POOL_SHARES.values())):
        if position < end:
            return pool
    return POOLS[-1]  # rounding of the last cumulative share


# ---------------------------------------------------------------------------------------- sources


def default_python_sources() -> list[Source]:
    """The running interpreter's standard library (without its site-packages) and site-packages."""
    paths = sysconfig.get_paths()
    stdlib = Source(Path(paths["stdlib"]), skip_dirs=frozenset({"site-packages", "dist-packages"}))
    site = [Source(root) for root in dict.fromkeys(Path(paths[key]) for key in ("purelib", "platlib"))]
    return [source for source in [stdlib, *site] if source.root.is_dir()]


def npm_package_list() -> list[str]:
    text = resources.files("hybridcl").joinpath("resources", NPM_PACKAGE_LIST).read_text(encoding="utf-8")
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def install_npm_packages(cache_dir: str | Path, packages: list[str]) -> Path:
    """Install `packages` under `cache_dir/npm`, skipped when the same list is already there."""
    cache_dir = Path(cache_dir)
    prefix = cache_dir / "npm"
    stamp = prefix / ".hybridcl-packages.sha256"
    digest = hashlib.sha256("\n".join([NPM_BEFORE, *packages]).encode()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest:
        return prefix
    shutil.rmtree(prefix, ignore_errors=True)
    prefix.mkdir(parents=True)
    print(f"installing {len(packages)} npm packages and their dependencies into {prefix} ...", flush=True)
    command = [
        "npm",
        "install",
        "--prefix",
        str(prefix),
        "--cache",
        str(cache_dir / "npm-cache"),
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",
        "--no-package-lock",
        "--legacy-peer-deps",
        f"--before={NPM_BEFORE}",
        "--loglevel=error",
        *packages,
    ]
    hint = "pass --source PATH to mine local JavaScript trees instead"
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError:
        raise DataError(f"npm is not installed; it fetches the default JavaScript sources; {hint}") from None
    if result.returncode != 0:
        raise DataError(f"npm install failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}\n{hint}")
    stamp.write_text(digest)
    return prefix


def _given_sources(paths: list[str | Path]) -> list[Source]:
    sources = []
    for path in map(Path, paths):
        if not path.exists():
            raise DataError(f"source path does not exist: {path}")
        if not path.is_dir():
            raise DataError(f"source path is not a directory (give the tree that holds it): {path}")
        root = path.resolve()
        sources.append(Source(root, root.name))
    return sources


# ------------------------------------------------------------------------------------------ corpus


def build_corpus(
    out_dir: str | Path,
    languages: Iterable[str],
    sources: list[str | Path] | None = None,
    cache_dir: str | Path = ".cache/hybridcl",
    seed: int = 0,
) -> dict:
    """Mine, deduplicate and split by package; write `out_dir/<language>/{pretrain,train,valid,test}.jsonl.gz`
    and `out_dir/summary.json`; return the summary."""
    started = time.monotonic()
    languages = list(dict.fromkeys(languages))
    unknown = [language for language in languages if language not in MINERS]
    if unknown:
        raise DataError(f"cannot mine language(s) {unknown}; choose from {sorted(MINERS)}")
    given = _given_sources(sources) if sources else None
    splits, summary = {}, {"layout": CORPUS_LAYOUT, "seed": seed, "languages": {}}
    for language in languages:
        language_sources = given or _default_sources(language, cache_dir)
        splits[language], summary["languages"][language] = _build_language(language, language_sources, seed)
    for language, by_split in splits.items():
        for split in POOLS:
            write_jsonl_gz(by_split[split], Path(out_dir, language, f"{split}.jsonl.gz"))
    summary["elapsed_seconds"] = round(time.monotonic() - started, 1)
    Path(out_dir, "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(format_summary(summary))
    return summary


def _default_sources(language: str, cache_dir: str | Path) -> list[Source]:
    if language == "python":
        return default_python_sources()
    return [Source(install_npm_packages(cache_dir, npm_package_list()))]


def _build_language(language: str, sources: list[Source], seed: int) -> tuple[dict[str, list[Record]], dict]:
    skipped: Counter = Counter()
    files = [file for source in sources for file in discover_files(source, language, skipped)]
    records, skipped["duplicate"] = deduplicate(mine_files(files, skipped, desc=f"mining {language}"))
    if not records:
        raise DataError(
            f"no {language} functions with a docstring of >= {MIN_DOCSTRING_WORDS} words in "
            f"{[str(source.root) for source in sources]}"
        )
    packages = sorted({record.repo for record in records})
    by_split = _assign_splits(records, seed)
    empty = [pool for pool, rows in by_split.items() if not rows]
    if empty:
        _warn_empty_pools(language, len(records), packages, empty, sources)
    return by_split, {
        "sources": [str(source.root) for source in sources],
        "files_mined": len(files),
        "packages": len(packages),
        "splits": {
            split: {"pairs": len(rows), "packages": len({row.repo for row in rows})} for split, rows in by_split.items()
        },
        "skipped_files": {reason: n for reason, n in sorted(skipped.items()) if reason not in FUNCTION_REASONS},
        "skipped_functions": {reason: n for reason, n in sorted(skipped.items()) if reason in FUNCTION_REASONS},
    }


def _warn_empty_pools(language: str, pairs: int, packages: list[str], empty: list[str], sources: list[Source]) -> None:
    shown = ", ".join(map(repr, packages[:5])) + (", ..." if len(packages) > 5 else "")
    print(
        f"warning: {language}: pool(s) {', '.join(empty)} are empty: the {pairs} pairs come from {len(packages)} "
        f"package(s) ({shown}) in {', '.join(str(source.root) for source in sources)}, and each package goes "
        "to one pool: give a tree with more packages",
        file=sys.stderr,
        flush=True,
    )


def _assign_splits(records: list[Record], seed: int) -> dict[str, list[Record]]:
    by_split: dict[str, list[Record]] = {pool: [] for pool in POOLS}
    for record in records:
        pool = pool_of(record.repo, seed)
        by_split[pool].append(replace(record, partition=pool))
    return by_split


def format_summary(summary: dict) -> str:
    lines = []
    for language, info in summary["languages"].items():
        total = sum(split["pairs"] for split in info["splits"].values())
        lines.append(f"{language}: {total} pairs from {info['files_mined']} files in {', '.join(info['sources'])}")
        for split, counts in info["splits"].items():
            lines.append(f"  {split:<8} {counts['pairs']:>7} pairs  {counts['packages']:>5} packages")
        for kind in ("skipped_files", "skipped_functions"):
            counts = ", ".join(f"{reason} {count}" for reason, count in info[kind].items()) or "none"
            lines.append(f"  {kind.replace('_', ' ')}: {counts}")
    lines.append(f"corpus mined in {summary['elapsed_seconds']} s")
    return "\n".join(lines)
