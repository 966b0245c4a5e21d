"""Replicas of CodeTask-CL's data in the forms hybridcl.data.codexglue reads, made here, for tests and offline
runs: CodeT5's data folder (`write_codet5_folder`) and the hub's four CodeXGLUE datasets as parquet in a Hugging
Face cache (`write_hub_cache`). Both hold the same examples, so both forms give the same pairs.

The examples are generated from four templates per task over twelve field names and a constant (example i:
name i % 12, template (i // 12) % 4, constant i // 48 + 1), so every example of a task is distinct and the
same on every machine:

    concode    an English description plus CONCODE's class context -> a tokenised Java method (`function`)
    translate  a small Java method -> the same method in C# (PascalCase, `virtual`, `bool`, `string`)
    summarize  a Ruby method as a CodeSearchNet row (code_tokens, docstring_tokens, ...) -> its docstring
    refine     a Bugs2Fix-style abstracted Java method with one bug (operator, bound, null check) -> fixed

Split k of (train, valid, test) holds examples k*n .. (k+1)*n - 1 of `examples_per_split` = n.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from pathlib import Path

from hybridcl.data.codexglue import CODEXGLUE_KINDS, FIELDS, HUB_IDS, codet5_files, hub_configs
from hybridcl.data.forms import HUB_SPLITS
from hybridcl.data.hub import CONVERSION_BRANCH, REPO_TYPE
from hybridcl.data.schema import CSN_FIELDS, SPLITS
from hybridcl.hf_cache import place_in_cache

STREAM_SUBTASKS = {"concode": "none", "translate": "java-cs", "summarize": "ruby", "refine": "small"}
NAMES = ("count", "size", "total", "offset", "length", "index", "width", "height", "limit", "depth", "weight", "score")
DEFAULT_EXAMPLES = 32
HUB_FORMS = {"parquet-conversion": CONVERSION_BRANCH, "push-to-hub-parquet": "main"}  # form -> the revision serving it


def _parts(i: int) -> tuple[str, int, int]:
    """(field name, template, constant) of example i: distinct for every i."""
    return NAMES[i % len(NAMES)], (i // len(NAMES)) % 4, i // (4 * len(NAMES)) + 1


def _concode(i: int) -> dict:
    f, template, c = _parts(i)
    cap = f.capitalize()
    nl, code = [
        (f"returns the {f} increased by {c} .", f"int function ( ) {{ return {f} + {c} ; }}"),
        (f"resets the {f} to {c} .", f"void function ( ) {{ {f} = {c} ; }}"),
        (
            f"checks whether the {f} is above a limit plus {c} .",
            f"boolean function ( int arg0 ) {{ return {f} > arg0 + {c} ; }}",
        ),
        (f"describes the {f} minus {c} .", f'String function ( ) {{ return "{f}=" + ( {f} - {c} ) ; }}'),
    ][template]
    fields = f"int {f} concode_elem_sep String name"
    methods = f"void reset{cap} concode_elem_sep int get{cap}"
    context = f"concode_field_sep {fields} concode_field_sep {methods}"
    return {"nl": f"{nl} {context}", "code": code}


def _translate(i: int) -> dict:
    f, template, c = _parts(i)
    cap = f.capitalize()
    java, cs = [
        (f"public int next{cap}(){{return {f} + {c};}}", f"public virtual int Next{cap}(){{return {f} + {c};}}"),
        (f"public void reset{cap}(){{{f} = {c};}}", f"public virtual void Reset{cap}(){{{f} = {c};}}"),
        (
            f"public boolean is{cap}Above(int limit){{return {f} > limit + {c};}}",
            f"public virtual bool Is{cap}Above(int limit){{return {f} > limit + {c};}}",
        ),
        (
            f'public String describe{cap}(){{return "{f}=" + ({f} - {c});}}',
            f'public virtual string Describe{cap}(){{return "{f}=" + ({f} - {c});}}',
        ),
    ][template]
    return {"java": java, "cs": cs}


def _refine(i: int) -> dict:
    _, template, c = _parts(i)
    m, v = i % len(NAMES) + 1, i % len(NAMES) + 2
    head = f"public boolean METHOD_{m} ( int VAR_{v} )"
    buggy, fixed = [
        (
            f"public int METHOD_{m} ( ) {{ return VAR_{v} - {c} ; }}",
            f"public int METHOD_{m} ( ) {{ return VAR_{v} + {c} ; }}",
        ),
        (f"{head} {{ return VAR_{v} <= {c} ; }}", f"{head} {{ return VAR_{v} < {c} ; }}"),
        (
            f"public void METHOD_{m} ( ) {{ VAR_{v} . METHOD_{c + 20} ( ) ; }}",
            f"public void METHOD_{m} ( ) {{ if ( ( VAR_{v} ) != null ) {{ VAR_{v} . METHOD_{c + 20} ( ) ; }} }}",
        ),
        (f"{head} {{ return ( VAR_{v} ) == {c} ; }}", f"{head} {{ return ( VAR_{v} ) != {c} ; }}"),
    ][template]
    return {"buggy": buggy, "fixed": fixed}


def _summarize(i: int, split: str) -> dict:
    """A CodeSearchNet-schema row, as CodeXGLUE's code-to-text jsonl holds them."""
    f, template, c = _parts(i)
    name, body, docstring = [
        (f"add_{f}", f"value + {c}", f"Adds {c} to the {f}."),
        (f"scale_{f}", f"value * {c}", f"Scales the {f} by {c}."),
        (f"{f}_above?", f"value > {c}", f"Whether the {f} is above {c}."),
        (f"clamp_{f}", f"[value, {c}].min", f"Clamps the {f} to at most {c}."),
    ][template]
    code = f"def {name}(value)\n  {body}\nend"
    sha = hashlib.sha1(code.encode()).hexdigest()
    row = {
        "repo": "hybridcl/ruby-replica",
        "path": f"lib/{f}.rb",
        "func_name": name,
        "original_string": code,
        "language": "ruby",
        "code": code,
        "code_tokens": re.findall(r"\w+\??|[^\w\s]", code),
        "docstring": docstring,
        "docstring_tokens": re.findall(r"\w+|[^\w\s]", docstring),
        "sha": sha,
        "url": f"https://github.com/hybridcl/ruby-replica/blob/{sha}/lib/{f}.rb#L1-L3",
        "partition": split,
    }
    return {key: row[key] for key in CSN_FIELDS}


def examples(kind: str, split: str, n: int) -> list[dict]:
    """The `n` examples of one split of a stream task, as the hub's columns (summarize: CodeSearchNet's fields)."""
    first = SPLITS.index(split) * n
    if kind == "summarize":
        return [_summarize(i, split) for i in range(first, first + n)]
    make = {"concode": _concode, "translate": _translate, "refine": _refine}[kind]
    return [make(i) for i in range(first, first + n)]


# ----------------------------------------------------------------------------------------------- CodeT5's folder


def write_codet5_folder(
    root: str | Path, examples_per_split: int = DEFAULT_EXAMPLES, *, kinds: tuple[str, ...] = CODEXGLUE_KINDS
) -> Path:
    """CodeT5's data folder for the stream's tasks (concode, translate java-cs, which cs-java reads the other
    way round, summarize/ruby, refine/small), each split `examples_per_split` examples; returns `root`."""
    root = Path(root)
    for kind in kinds:
        for split in SPLITS:
            files = [root / rel for rel in codet5_files(kind, STREAM_SUBTASKS[kind], split)]
            for file in files:
                file.parent.mkdir(parents=True, exist_ok=True)
            rows = examples(kind, split, examples_per_split)
            if len(files) == 1:
                files[0].write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
            else:
                for file, field in zip(files, FIELDS[kind]):
                    file.write_text("".join(_line(kind, row[field]) for row in rows), encoding="utf-8")
    return root


def _line(kind: str, text: str) -> str:
    """Bugs2Fix's files end each line with a space; CodeT5's strip() removes it."""
    return f"{text} \n" if kind == "refine" else f"{text}\n"


# ----------------------------------------------------------------------------------------------- the hub's parquet


def write_hub_cache(
    hf_hub_cache: str | Path, examples_per_split: int = DEFAULT_EXAMPLES, *, form: str = "parquet-conversion"
) -> dict[str, str]:
    """The four hub datasets' stream subtasks as parquet in `form` (the conversion branch's
    `<config>/<split>/0000.parquet` at refs/convert/parquet, or push_to_hub's
    `<config>/<split>-00000-of-00001.parquet` at main), placed in the Hugging Face cache `hf_hub_cache`;
    returns hub id -> commit."""
    if form not in HUB_FORMS:
        raise ValueError(f"unknown hub form {form!r}; known: {list(HUB_FORMS)}")
    commits = {}
    for kind in CODEXGLUE_KINDS:
        with tempfile.TemporaryDirectory() as staging:
            for split in SPLITS:
                path = Path(staging, _hub_path(kind, split, form))
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_parquet(kind, examples(kind, split, examples_per_split), path)
            if form == "push-to-hub-parquet":
                Path(staging, "README.md").write_text(f"# {HUB_IDS[kind]} (a hybridcl replica)\n")
            commits[HUB_IDS[kind]] = place_in_cache(staging, hf_hub_cache, HUB_IDS[kind], REPO_TYPE, HUB_FORMS[form])
    return commits


def _hub_path(kind: str, split: str, form: str) -> str:
    configs = hub_configs(kind, STREAM_SUBTASKS[kind])
    if form == "parquet-conversion":
        return f"{configs[0]}/{HUB_SPLITS[split]}/0000.parquet"
    return f"{configs[-1]}/{HUB_SPLITS[split]}-00000-of-00001.parquet"


def _write_parquet(kind: str, rows: list[dict], path: Path) -> None:
    """The hub's columns: an int32 `id` (the row's index in its split) first, token lists as lists of strings;
    code_to_text has no `partition` column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": i, **{key: value for key, value in row.items() if key != "partition"}} for i, row in enumerate(rows)]
    if kind == "refine":
        rows = [{**row, "buggy": row["buggy"] + " ", "fixed": row["fixed"] + " "} for row in rows]
    types = {"id": pa.int32(), "code_tokens": pa.list_(pa.string()), "docstring_tokens": pa.list_(pa.string())}
    schema = pa.schema([(name, types.get(name, pa.string())) for name in rows[0]])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
