"""The offline miner, on small trees built here (no npm, no network)."""

from __future__ import annotations

import gzip
import json
import os
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from hybridcl.cli import main
from hybridcl.data.mine import POOL_SHARES, build_corpus, pool_of
from hybridcl.data.mine_javascript import mine_javascript_file
from hybridcl.data.mine_python import mine_python_file
from hybridcl.data.mine_sources import install_npm_packages
from hybridcl.data.schema import CORPUS_LAYOUT, POOLS, DataError, Record, normalized, write_jsonl_gz
from hybridcl.data.source_trees import package_of
from hybridcl.logs import console_logging


def write(root: Path, relative: str, text: str | bytes) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def read_split(out: Path, language: str, split: str) -> list[dict]:
    with gzip.open(out / language / f"{split}.jsonl.gz", "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def read_all(out: Path, language: str) -> list[dict]:
    return [row for split in POOLS for row in read_split(out, language, split)]


def python_function(name: str, body: str = "return 1") -> str:
    return f'def {name}(x):\n    """Compute the {name} value of x."""\n    {body}\n'


def js_function(name: str, body: str = "return 1;") -> str:
    return f"/**\n * Compute the {name} value of x.\n * @param {{number}} x\n */\nfunction {name}(x) {{\n  {body}\n}}\n"


PYTHON_MODULE = '''
def documented(a, b):
    """Add two numbers together.

    Longer explanation that is not part of the first paragraph.
    """
    total = a + b
    return total


def undocumented():
    return 1


def short():
    """Too short."""
    return 2


class Greeter:
    @staticmethod
    def plain():
        """Return the plain greeting text."""
        return "hi"

    async def greet(self, name):
        """Say hello to somebody nicely."""
        def inner(x):
            """Format the greeting text for x."""
            return f"hi {x}"
        return inner(name)
'''

JS_MODULE = """
/**
 * Add two numbers and return the sum.
 * @param {number} a the first
 * @returns {number} the sum
 */
function add(a, b) { return a + b; }

// Subtract two numbers from each other.
function sub(a, b) { return a - b; }

/* Multiply two numbers with each other. */
function mul(a, b) { return a * b; }

class Calculator {
  /**
   * Divide one number by another number.
   */
  divide(a, b) {
    return a / b;
  }
}

/** Compute the remainder of a division. */
utils.mod = function (a, b) { return a % b; };

/** Square a number, see {@link add} for more. */
const square = (x) => x * x;

/** Export an identity function for users. */
exports.identity = function (x) { return x; };

var shapes = {
  /** Area of a circle with radius r. */
  circle: function (r) { return 3.14 * r * r; },
};

/** Export a named function for modules. */
export function named(a) { return a; }

/** Two words */
function tiny() {}
"""


# ------------------------------------------------------------------------------------------ python


def test_python_functions_methods_and_nested_functions(tmp_path):
    functions = {f.name: f for f in mine_python_file(write(tmp_path, "m.py", PYTHON_MODULE))}
    assert set(functions) == {
        "documented",
        "undocumented",
        "short",
        "Greeter.plain",
        "Greeter.greet",
        "Greeter.greet.inner",
    }
    assert functions["documented"].docstring == "Add two numbers together."
    assert functions["undocumented"].docstring is None
    assert functions["documented"].code == "def documented(a, b):\n    total = a + b\n    return total"
    assert '"""' in functions["documented"].original
    assert functions["Greeter.plain"].code.startswith("def plain():")  # no decorator, dedented
    assert functions["Greeter.greet"].code.startswith("async def greet(self, name):\n    def inner(x):")
    assert functions["Greeter.greet.inner"].code == 'def inner(x):\n    return f"hi {x}"'


def test_python_pairs_need_a_docstring_of_three_words(tmp_path):
    write(tmp_path / "src" / "pkg", "m.py", PYTHON_MODULE)
    summary = build_corpus(tmp_path / "out", ["python"], sources=[tmp_path / "src"])
    rows = read_all(tmp_path / "out", "python")
    assert sorted(row["func_name"] for row in rows) == [
        "Greeter.greet",
        "Greeter.greet.inner",
        "Greeter.plain",
        "documented",
    ]
    skipped = summary["languages"]["python"]["skipped_functions"]
    assert skipped["no_docstring"] == 1 and skipped["short_docstring"] == 1
    row = next(row for row in rows if row["func_name"] == "documented")
    assert (row["repo"], row["path"], row["language"]) == ("pkg", "m.py", "python")
    assert row["url"] == "file://pkg/m.py#L1"
    assert row["docstring_tokens"] == ["Add", "two", "numbers", "together."]
    assert "Add two numbers" not in row["code"] and "Add two numbers" in row["original_string"]


# -------------------------------------------------------------------------------------- javascript


def test_javascript_only_jsdoc_blocks_count(tmp_path):
    functions = {f.name: f for f in mine_javascript_file(write(tmp_path, "m.js", JS_MODULE))}
    documented = {name for name, f in functions.items() if f.docstring is not None}
    assert documented == {
        "add",
        "Calculator.divide",
        "utils.mod",
        "square",
        "exports.identity",
        "shapes.circle",
        "named",
        "tiny",
    }
    assert functions["sub"].docstring is None and functions["mul"].docstring is None
    assert functions["add"].docstring == "Add two numbers and return the sum."  # tags stripped
    assert functions["square"].docstring == "Square a number, see add for more."
    assert functions["add"].code == "function add(a, b) { return a + b; }"
    assert functions["Calculator.divide"].code == "divide(a, b) {\n  return a / b;\n}"
    assert functions["utils.mod"].code == "utils.mod = function (a, b) { return a % b; };"
    assert functions["square"].code == "const square = (x) => x * x;"
    assert functions["shapes.circle"].code == "circle: function (r) { return 3.14 * r * r; }"
    assert functions["named"].code == "export function named(a) { return a; }"
    assert all("/**" not in f.code for f in functions.values())


def test_javascript_minified_bundled_and_test_files_are_skipped(tmp_path):
    source = tmp_path / "src"
    write(source / "pkg" / "lib", "ok.js", js_function("kept"))
    write(source / "pkg" / "lib", "named.min.js", js_function("minname"))
    packed = js_function("packed").replace("\n", " ") + ";var a=" + "1+" * 400 + "1;"
    write(source / "pkg" / "lib", "packed.js", packed)
    write(source / "pkg" / "test", "t.js", js_function("intest"))
    write(source / "pkg" / "__tests__", "t.js", js_function("intests"))
    write(source / "pkg" / "dist", "d.js", js_function("indist"))
    write(source / "pkg" / "lib", "types.d.ts", "export declare function typed(): void;\n")
    summary = build_corpus(tmp_path / "out", ["javascript"], sources=[source])
    assert [row["func_name"] for row in read_all(tmp_path / "out", "javascript")] == ["kept"]
    assert summary["languages"]["javascript"]["skipped_files"] == {"bundle": 1, "minified": 2, "test_folder": 2}


def test_python_test_folders_are_skipped(tmp_path):
    source = tmp_path / "src"
    write(source / "pkg", "core.py", python_function("kept"))
    for folder in ("tests", "test", "testing"):
        write(source / "pkg" / folder, "t.py", python_function(f"in_{folder}"))
    summary = build_corpus(tmp_path / "out", ["python"], sources=[source])
    assert [row["func_name"] for row in read_all(tmp_path / "out", "python")] == ["kept"]
    assert summary["languages"]["python"]["skipped_files"] == {"test_folder": 3}


# ------------------------------------------------------------------------------------- bad input


def test_unreadable_sources_are_counted_not_fatal(tmp_path):
    source = tmp_path / "src"
    write(source / "pkg", "good.py", python_function("good"))
    write(
        source / "pkg",
        "latin.py",
        "# -*- coding: latin-1 -*-\n".encode() + python_function("caf\xe9").encode("latin-1"),
    )
    write(source / "pkg", "broken.py", "def broken(:\n    pass\n")
    write(source / "pkg", "nul.py", b"x = 1\x00\n")
    write(source / "pkg", "good.js", js_function("goodjs"))
    write(source / "pkg", "broken.js", js_function("brokenjs") + "function ( {\n")
    write(source / "pkg", "latin.js", js_function("caf\xe9").encode("latin-1"))
    summary = build_corpus(tmp_path / "out", ["python", "javascript"], sources=[source])
    assert summary["languages"]["python"]["skipped_files"] == {"non_utf8": 1, "parse_error": 2}
    assert summary["languages"]["javascript"]["skipped_files"] == {"non_utf8": 1, "parse_error": 1}
    assert [row["func_name"] for row in read_all(tmp_path / "out", "python")] == ["good"]
    assert [row["func_name"] for row in read_all(tmp_path / "out", "javascript")] == ["goodjs"]


def test_a_missing_source_is_a_data_error_naming_it(tmp_path):
    missing = tmp_path / "does-not-exist"
    with pytest.raises(DataError, match="does-not-exist"):
        build_corpus(tmp_path / "out", ["python"], sources=[missing])
    assert main(["corpus", "build", "--out", str(tmp_path / "out"), "--source", str(missing)]) == 2
    assert not (tmp_path / "out").exists()
    with pytest.raises(DataError, match="not a directory"):
        build_corpus(tmp_path / "out", ["python"], sources=[write(tmp_path, "single.py", python_function("f"))])


def test_a_tree_without_pairs_is_a_data_error(tmp_path):
    write(tmp_path / "src" / "pkg", "m.py", "def f():\n    return 1\n")
    with pytest.raises(DataError, match="no python functions"):
        build_corpus(tmp_path / "out", ["python"], sources=[tmp_path / "src"])


# ------------------------------------------------------------------------------------------- npm


def fake_npm(bin_dir: Path, exit_code: int = 0) -> Path:
    """An `npm` that logs its calls and creates node_modules under --prefix (or fails)."""
    log = bin_dir / "calls.log"
    write(
        bin_dir,
        "npm",
        f"""\
        #!/bin/sh
        echo "$@" >> {log}
        if [ {exit_code} -ne 0 ]; then echo "registry unreachable" >&2; exit {exit_code}; fi
        mkdir -p "$3/node_modules/left-pad"
        """,
    )
    (bin_dir / "npm").chmod(0o755)
    return log


def test_npm_install_runs_once_per_package_list(tmp_path, monkeypatch):
    log = fake_npm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    prefix = install_npm_packages(tmp_path / "cache", ["left-pad@1.3.0"])
    assert (prefix / "node_modules" / "left-pad").is_dir() and prefix.is_relative_to(tmp_path / "cache")
    install_npm_packages(tmp_path / "cache", ["left-pad@1.3.0"])
    assert len(log.read_text().splitlines()) == 1
    install_npm_packages(tmp_path / "cache", ["left-pad@1.3.0", "is-odd@3.0.1"])
    calls = log.read_text().splitlines()
    assert len(calls) == 2 and "--ignore-scripts" in calls[1] and "is-odd@3.0.1" in calls[1]


def test_npm_failures_are_data_errors_pointing_at_source(tmp_path, monkeypatch):
    fake_npm(tmp_path / "bin", exit_code=1)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(DataError, match=r"(?s)registry unreachable.*--source"):
        install_npm_packages(tmp_path / "cache", ["left-pad@1.3.0"])
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DataError, match=r"npm is not installed.*--source"):
        install_npm_packages(tmp_path / "cache", ["left-pad@1.3.0"])


# -------------------------------------------------------------------------- packages and splits


@pytest.mark.parametrize(
    "root, parts, loose, expected",
    [
        ("src", ("node_modules", "lodash", "fp", "map.js"), None, ("lodash", 2)),
        ("src", ("node_modules", "@babel", "core", "lib", "index.js"), None, ("@babel/core", 3)),
        ("src", ("node_modules", "a", "node_modules", "@s", "b", "x.js"), None, ("@s/b", 5)),
        ("src", ("usr", "share", "nodejs", "@s", "b", "lib", "x.js"), "src", ("@s/b", 5)),
        ("src", ("usr", "lib", "python3", "dist-packages", "six.py"), "src", ("six", 4)),
        ("site-packages", ("numpy", "linalg", "x.py"), None, ("numpy", 1)),
        ("site-packages", ("six.py",), None, ("six", 0)),
        ("node_modules", ("debug", "src", "index.js"), None, ("debug", 1)),
        ("src", ("usr", "share", "doc", "x", "y.js"), "src", ("usr/share/doc/x", 4)),
        ("src", ("email", "mime", "text.py"), None, ("email/mime", 2)),
        ("src", ("os.py",), None, ("os", 0)),
        ("src", ("loose.py",), "project", ("project", 0)),
    ],
)
def test_package_of_a_path_without_marker_files(tmp_path, root, parts, loose, expected):
    assert package_of(tmp_path / root, parts, loose) == expected


def test_python_packages_are_top_level_import_packages(tmp_path):
    for folder in ("pkg", "pkg/sub", "pkg/sub/deeper", "lib/site-packages/foo"):
        write(tmp_path, f"{folder}/__init__.py", "")
    assert package_of(tmp_path, ("pkg", "sub", "deeper", "m.py")) == ("pkg", 1)
    assert package_of(tmp_path, ("pkg", "sub", "data", "m.py")) == ("pkg/sub/data", 3)  # data/ is no package
    assert package_of(tmp_path, ("lib", "site-packages", "foo", "scripts", "x.py")) == ("foo", 3)
    write(tmp_path, "__init__.py", "")
    assert package_of(tmp_path, ("pkg", "m.py")) == (tmp_path.name, 0)


def test_javascript_packages_come_from_the_nearest_named_package_json(tmp_path):
    write(tmp_path, "proj/package.json", '{"name": "@me/proj", "version": "1.0.0"}')
    write(tmp_path, "proj/esm/package.json", '{"type": "module"}')
    write(tmp_path, "proj/esm/broken/package.json", '{"name": ')
    write(tmp_path, "proj/esm/broken/list/package.json", '["name"]')
    write(tmp_path, "proj/vendor/tool/package.json", '{"name": "tool"}')
    assert package_of(tmp_path, ("proj", "esm", "broken", "list", "x.js")) == ("@me/proj", 1)
    assert package_of(tmp_path, ("proj", "vendor", "tool", "lib", "x.js")) == ("tool", 3)
    assert package_of(tmp_path, ("proj", "vendor", "tool", "lib", "x.py")) == ("proj/vendor/tool/lib", 4)
    write(tmp_path, "node_modules/preact/package.json", '{"name": "preact"}')
    write(tmp_path, "node_modules/preact/hooks/package.json", '{"name": "preact-hooks"}')  # a subpath entry point
    assert package_of(tmp_path, ("node_modules", "preact", "hooks", "src", "index.js")) == ("preact", 2)


def test_a_debian_tree_gives_its_packages_not_usr(tmp_path, capsys):
    nodejs = tmp_path / "src" / "usr" / "share" / "nodejs"
    for name in ("a", "b", "c", "@s/d"):
        write(nodejs / name, "package.json", json.dumps({"name": name}))
        write(nodejs / name / "esm", "package.json", '{"type": "module"}')
        safe = name.replace("@s/", "")
        write(nodejs / name / "lib", "index.js", js_function(f"{safe}_main"))
        write(nodejs / name / "esm", "index.mjs", js_function(f"{safe}_esm"))
    summary = build_corpus(tmp_path / "out", ["javascript"], sources=[tmp_path / "src"])
    rows = read_all(tmp_path / "out", "javascript")
    assert {(row["repo"], row["path"]) for row in rows if row["func_name"].startswith("a_")} == {
        ("a", "lib/index.js"),
        ("a", "esm/index.mjs"),
    }
    assert {row["repo"] for row in rows} == {"a", "b", "c", "@s/d"}
    assert summary["languages"]["javascript"]["packages"] == 4


def test_a_tree_with_one_package_is_warned_about_in_one_line(tmp_path, capsys):
    write(tmp_path / "src", "package.json", '{"name": "only"}')
    for name in ("f", "g", "h"):
        write(tmp_path / "src" / "lib", f"{name}.js", js_function(name))
    with console_logging():  # the console of `hybridcl corpus build`
        summary = build_corpus(tmp_path / "out", ["javascript"], sources=[tmp_path / "src"])
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1
    empty = [pool for pool in POOLS if pool != pool_of("only")]
    assert all(
        part in warnings[0]
        for part in (
            "javascript",
            f"pool(s) {', '.join(empty)} are empty",
            "3 pairs",
            "1 package(s) ('only')",
            str(tmp_path / "src"),
        )
    )
    assert summary["languages"]["javascript"]["packages"] == 1


def test_a_package_pool_is_a_pure_function_of_its_name_near_the_shares():
    names = [f"pkg{i:04d}" for i in range(4000)]
    pools = {name: pool_of(name) for name in names}
    assert {name: pool_of(name) for name in reversed(names[:100])} == {name: pools[name] for name in names[:100]}
    counts = Counter(pools.values())
    for pool, share in POOL_SHARES.items():
        assert abs(counts[pool] / len(names) - share) < 0.03, (pool, counts)
    assert [pool_of(name, seed=1) for name in names[:50]] != [pools[name] for name in names[:50]]
    assert tuple(POOL_SHARES) == POOLS and sum(POOL_SHARES.values()) == pytest.approx(1)


def many_packages(root: Path, count: int = 30, reverse: bool = False) -> None:
    """`count` packages with 1..5 documented functions each, in Python and JavaScript."""
    jobs = [(p, f) for p in range(count) for f in range(1 + p % 5)]
    for p, f in reversed(jobs) if reverse else jobs:
        write(root / f"pkg{p:02d}", f"mod{f}.py", python_function(f"p{p}_f{f}", f"return {p} * {f}"))
        write(root / f"pkg{p:02d}" / "lib", f"mod{f}.js", js_function(f"p{p}_f{f}", f"return {p} * {f};"))


def test_no_package_in_two_splits_and_partition_matches_file(tmp_path):
    many_packages(tmp_path / "src", count=60)
    summary = build_corpus(tmp_path / "out", ["python", "javascript"], sources=[tmp_path / "src"])
    for language in ("python", "javascript"):
        owner = {}
        for split in POOLS:
            rows = read_split(tmp_path / "out", language, split)
            assert rows and all(row["partition"] == split for row in rows)
            for row in rows:
                assert owner.setdefault(row["repo"], split) == split
        assert len(owner) == 60
        splits = summary["languages"][language]["splits"]
        assert sum(s["packages"] for s in splits.values()) == 60
        assert all(splits[pool]["pairs"] for pool in POOLS)
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["languages"] == summary["languages"] and saved["layout"] == CORPUS_LAYOUT


def test_exact_duplicates_are_removed_within_and_across_packages(tmp_path):
    source = tmp_path / "src"
    shared = python_function("shared", "return 42")
    write(source / "alpha", "a.py", shared)
    write(source / "alpha", "b.py", shared)  # repeated inside a package
    write(source / "beta", "c.py", shared.replace("return 42", "return   42"))  # only whitespace differs
    for p in range(12):
        write(source / f"pkg{p:02d}", "m.py", python_function(f"unique{p}"))
    summary = build_corpus(tmp_path / "out", ["python"], sources=[source])
    rows = read_all(tmp_path / "out", "python")
    keys = [normalized(row["code"]) for row in rows]
    assert len(keys) == len(set(keys)) == 13
    assert summary["languages"]["python"]["skipped_functions"]["duplicate"] == 2
    assert [(row["repo"], row["path"]) for row in rows if row["func_name"] == "shared"] == [("alpha", "a.py")]


def test_output_is_byte_identical_across_builds_and_file_creation_order(tmp_path):
    many_packages(tmp_path / "one" / "src", count=24)
    many_packages(tmp_path / "two" / "src", count=24, reverse=True)
    outputs = []
    for source, out in [("one", "out1"), ("one", "out2"), ("two", "out3")]:
        build_corpus(tmp_path / out, ["python", "javascript"], sources=[tmp_path / source / "src"], seed=3)
        outputs.append(
            {
                (language, split): gzip.decompress((tmp_path / out / language / f"{split}.jsonl.gz").read_bytes())
                for language in ("python", "javascript")
                for split in POOLS
            }
        )
    assert outputs[0] == outputs[1] == outputs[2]
    assert all(outputs[0].values())


def test_corpus_check_shows_the_four_pools_and_an_old_layout_is_refused(tmp_path, capsys):
    many_packages(tmp_path / "src", count=60)
    build_corpus(tmp_path / "out", ["python"], sources=[tmp_path / "src"])
    capsys.readouterr()
    assert main(["corpus", "check", str(tmp_path / "out")]) == 0
    groups = {line.split(":")[0].strip() for line in capsys.readouterr().out.splitlines()[1:] if line.startswith("  ")}
    assert groups == set(POOLS)
    summary = tmp_path / "out" / "summary.json"
    summary.write_text(json.dumps({k: v for k, v in json.loads(summary.read_text()).items() if k != "layout"}))
    assert main(["corpus", "check", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "older layout" in error and f"hybridcl corpus build --out {tmp_path / 'out'}" in error


def test_the_same_records_give_the_same_file_bytes(tmp_path):
    """No time and no (temporary) file name in the gzip header: a corpus built twice has one fingerprint."""
    records = [
        Record("repo", "a.py", f"f{i}", "python", f"def f{i}(): pass", "Does a thing well.", "train") for i in range(3)
    ]
    write_jsonl_gz(records, tmp_path / "first.jsonl.gz")
    write_jsonl_gz(records, tmp_path / "second" / "train.jsonl.gz")
    first, second = (tmp_path / "first.jsonl.gz").read_bytes(), (tmp_path / "second" / "train.jsonl.gz").read_bytes()
    assert first == second
    assert [json.loads(line)["func_name"] for line in gzip.decompress(first).splitlines()] == ["f0", "f1", "f2"]
