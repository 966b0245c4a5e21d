"""hybridcl.data.csn: reading, validating, splitting and sampling CodeSearchNet records, offline."""

from __future__ import annotations

import ast
import gzip
import json
import random
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from hybridcl.cli import main
from hybridcl.data import csn
from hybridcl.data.schema import HUB_COLUMNS, DataError
from hybridcl.settings import DataConfig


def csn_row(i: int, language: str = "python", **fields) -> dict:
    """An original-schema CodeSearchNet row; python `code` keeps its docstring, as the release does."""
    if language == "python":
        code = f'def add_{i}(a, b):\n    """Add {i} to a sum.\n\n    More detail.\n    """\n    return a + b + {i}\n'
        docstring = f"Add {i} to a sum.\n\nMore detail."
    else:
        code = f"function add{i}(a, b) {{\n  return a + b + {i};\n}}"
        docstring = f"Add {i} to a sum.\n@param {{number}} a first"
    row = {
        "repo": f"owner/repo{i}",
        "path": f"pkg/mod{i}.py",
        "func_name": f"add_{i}",
        "original_string": code,
        "language": language,
        "code": code,
        "code_tokens": code.split(),
        "docstring": docstring,
        "docstring_tokens": docstring.split(),
        "sha": "abc123",
        "url": f"https://github.com/owner/repo{i}#L{i}",
        "partition": "train",
    }
    return {**row, **fields}


def hub_row(i: int, language: str = "python", **fields) -> dict:
    """The same row under the hub dataset's column names."""
    original = {value: key for key, value in HUB_COLUMNS.items()}
    row = {original[key]: value for key, value in csn_row(i, language).items() if key in original}
    return {**row, "split_name": "validation", **fields}


def write_jsonl(path: Path, rows: list, gz: bool = False) -> Path:
    """Rows are dicts (written as JSON) or raw bytes lines (written as they are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join((row if isinstance(row, bytes) else json.dumps(row).encode()) + b"\n" for row in rows)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def sample_all(
    source: Path, split: str = "train", language: str = "python", n: int = 1000, seed: int = 0, **cfg
) -> csn.SplitSample:
    """Up to `n` records of a split as a task would sample them (no cache)."""
    rows, unreadable = csn.read_split(DataConfig(source=str(source), **cfg), language, split)
    return csn.sample_split(rows, unreadable, n, seed, language, 20_000)


def write_hub_shards(root: Path, folder: str, shards: list[list[dict]]) -> None:
    """Parquet shards under root/python/<folder>/, as the hub's conversion lays them out."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "python" / folder).mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(shards):
        pq.write_table(pa.Table.from_pylist(rows), root / "python" / folder / f"{i:04d}.parquet")


def read(path, **kwargs) -> tuple[list, Counter]:
    skips = Counter()
    return list(csn.read_records(path, "python", skips=skips, **kwargs)), skips


# --- reading ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["train.jsonl", "train.jsonl.gz"])
def test_reads_original_schema(tmp_path, name):
    path = write_jsonl(tmp_path / name, [csn_row(0), csn_row(1)], gz=name.endswith(".gz"))
    records, skips = read(path)
    assert [r.func_name for r in records] == ["add_0", "add_1"]
    first = records[0]
    assert first.docstring == "Add 0 to a sum."
    assert (first.repo, first.path, first.language) == ("owner/repo0", "pkg/mod0.py", "python")
    assert first.partition == "train"
    assert first.url == "https://github.com/owner/repo0#L0" and first.sha == "abc123"
    assert not skips


def test_reads_every_data_file_below_a_directory_in_sorted_order(tmp_path):
    write_jsonl(tmp_path / "b" / "train.jsonl", [csn_row(2)])
    write_jsonl(tmp_path / "a" / "x.jsonl.gz", [csn_row(0), csn_row(1)], gz=True)
    write_parquet(tmp_path / "c.parquet", [hub_row(3)])
    (tmp_path / "README.md").write_text("not data")
    records, _ = read(tmp_path)
    assert [r.func_name for r in records] == ["add_0", "add_1", "add_2", "add_3"]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_hub_column_names_give_the_same_records_as_the_original_schema(tmp_path, fmt):
    rows = [hub_row(0), hub_row(1)]
    path = write_parquet(tmp_path / "x.parquet", rows) if fmt == "parquet" else write_jsonl(tmp_path / "x.jsonl", rows)
    records, skips = read(path)
    expected, _ = read(write_jsonl(tmp_path / "orig" / "x.jsonl", [csn_row(0), csn_row(1)]))
    assert [r.code for r in records] == [r.code for r in expected]
    assert [r.docstring for r in records] == [r.docstring for r in expected]
    assert [r.url for r in records] == [r.url for r in expected]
    assert {r.partition for r in records} == {"valid"}  # hub "validation" -> the canonical split name
    assert not skips


def test_only_docstring_tokens_are_joined_into_the_docstring(tmp_path):
    row = csn_row(0)
    del row["docstring"]
    records, _ = read(write_jsonl(tmp_path / "x.jsonl", [row]))
    assert records[0].docstring == "Add 0 to a sum. More detail."


def test_python_docstring_is_stripped_from_code_and_javascript_code_is_kept(tmp_path):
    (record,), _ = read(write_jsonl(tmp_path / "x.jsonl", [csn_row(0)]))
    assert "Add 0" not in record.code and "More detail" not in record.code
    assert "return a + b + 0" in record.code
    ast.parse(record.code)  # still a valid function
    assert record.original_string == csn_row(0)["code"]
    js = csn_row(1, language="javascript")
    (js_record,) = csn.read_records(write_jsonl(tmp_path / "y.jsonl", [js]), "javascript")
    assert js_record.code == js["code"]
    assert js_record.docstring == "Add 1 to a sum."


# --- one test per skip reason: the bad record is skipped and counted, the good ones kept --------------


def assert_skipped(tmp_path, bad, reason, **kwargs):
    path = write_jsonl(tmp_path / "train.jsonl", [csn_row(0), bad, csn_row(1)])
    records, skips = read(path, **kwargs)
    assert [r.func_name for r in records] == ["add_0", "add_1"]
    assert skips == Counter({reason: 1})


def test_skips_bad_json(tmp_path):
    assert_skipped(tmp_path, b'{"code": "def f(): pass", "docstring": ', "bad_json")


def test_skips_missing_field(tmp_path):
    row = csn_row(9)
    del row["docstring"], row["docstring_tokens"]
    assert_skipped(tmp_path, row, "missing_field")


def test_skips_empty_code(tmp_path):
    assert_skipped(tmp_path, csn_row(9, code="  \n\t "), "empty_code")


def test_skips_empty_docstring(tmp_path):
    # only a @tag: nothing is left after clean_docstring
    assert_skipped(tmp_path, csn_row(9, docstring="@param x the value"), "empty_docstring")


def test_skips_non_utf8(tmp_path):
    line = json.dumps(csn_row(9)).encode().replace(b"Add 9", b"Add \xff\xfe 9")
    assert_skipped(tmp_path, line, "non_utf8")


def test_skips_wrong_language(tmp_path):
    assert_skipped(tmp_path, csn_row(9, language="javascript"), "wrong_language")


def test_skips_too_long(tmp_path):
    long_code = "def f():\n" + "    x = 1\n" * 200
    assert_skipped(tmp_path, csn_row(9, code=long_code), "too_long", max_record_chars=1000)


def test_skips_duplicate_within_a_split(tmp_path):
    same_code_other_spacing = csn_row(9, code=csn_row(0)["code"].replace("return a", "return   a"))
    write_jsonl(tmp_path / "python" / "train.jsonl", [csn_row(0), same_code_other_spacing, csn_row(1)])
    sample = sample_all(tmp_path)
    assert len(sample.records) == 2 and "add_1" in {r.func_name for r in sample.records}
    assert sample.skips == Counter({"duplicate": 1})


# --- unusable sources ------------------------------------------------------------------------------


def test_missing_path_is_a_data_error_naming_it(tmp_path):
    missing = tmp_path / "nowhere" / "train.jsonl"
    with pytest.raises(DataError, match="nowhere"):
        read(missing)


def test_corrupt_gzip_is_a_data_error_naming_the_file(tmp_path):
    bad = tmp_path / "broken.jsonl.gz"
    bad.write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError, match="broken.jsonl.gz"):
        read(tmp_path)
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(gzip.compress(json.dumps(csn_row(0)).encode() * 50)[:-20])
    with pytest.raises(DataError, match="cut.jsonl.gz"):
        read(truncated)


def test_unknown_language_is_a_data_error_naming_it(tmp_path):
    with pytest.raises(DataError, match="cobol.*python"):
        csn.read_split(DataConfig(source=str(tmp_path)), "cobol", "train")


def test_missing_split_names_the_paths_tried(tmp_path):
    write_jsonl(tmp_path / "python" / "train.jsonl", [csn_row(0)])
    with pytest.raises(DataError, match=r"python/test\.jsonl\.gz.*final/jsonl/test"):
        csn.read_split(DataConfig(source=str(tmp_path)), "python", "test")


def test_unreachable_hub_fails_fast_naming_the_offline_alternatives(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import: set it there
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # an empty cache
    start = time.monotonic()
    with pytest.raises(DataError, match="hybridcl corpus build") as error:
        csn.read_split(DataConfig(source="hub"), "python", "train")
    assert time.monotonic() - start < 10
    message = str(error.value)
    # data.hub_revision=auto tried the conversion branch, then main, each in the local cache only
    assert "code-search-net/code_search_net@refs/convert/parquet: not in the local cache" in message
    assert "code-search-net/code_search_net@main: not in the local cache" in message
    assert "offline mode" in message and str(tmp_path / "hf") in message
    assert "data.hub_root" in message and "\n" not in message


def test_hub_layout_is_read_by_files_and_validated_like_local_rows(tmp_path):
    rows = [hub_row(0), hub_row(1, func_code_string=""), hub_row(2, language="java"), hub_row(3)]
    write_hub_shards(tmp_path, "validation", [rows[:2], rows[2:]])  # two shards, read in order
    cfg = DataConfig(source="hub", hub_root=str(tmp_path))
    rows, unreadable = csn.read_split(cfg, "python", "valid")
    sample = csn.sample_split(rows, unreadable, 100, 0, "python", 20_000)
    assert sorted(r.func_name for r in sample.records) == ["add_0", "add_3"]
    record = next(r for r in sample.records if r.func_name == "add_0")
    assert record.docstring == "Add 0 to a sum." and "More detail" not in record.code
    assert sample.skips == Counter({"empty_code": 1, "wrong_language": 1})
    assert (sample.read, sample.examined) == (4, 4)


def test_a_partial_conversion_folder_is_found(tmp_path):
    write_hub_shards(tmp_path, "partial-train", [[hub_row(i) for i in range(3)]])
    rows, _ = csn.read_split(DataConfig(source="hub", hub_root=str(tmp_path)), "python", "train")
    assert sorted(row["func_name"] for row in rows) == ["add_0", "add_1", "add_2"]


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("no split folder", r"\(parquet-conversion\): no python train split; expected python/train/NNNN\.parquet"),
        ("a shard that is not parquet", r"0001\.parquet \(python train\): not a readable parquet file"),
        ("columns missing", r"0000\.parquet \(python train\): column\(s\) \['func_documentation_string'\] missing"),
    ],
)
def test_a_broken_hub_layout_is_one_line_naming_file_language_and_split(tmp_path, damage, expected):
    write_hub_shards(tmp_path, "validation", [[hub_row(9)]])  # the form is recognised: train is what is wrong
    if damage == "a shard that is not parquet":
        write_hub_shards(tmp_path, "train", [[hub_row(0)]])
        (tmp_path / "python" / "train" / "0001.parquet").write_text("not parquet")
    elif damage == "columns missing":
        write_hub_shards(tmp_path, "train", [[{"func_code_string": "def f(): pass"}]])
    with pytest.raises(DataError, match=expected) as error:
        csn.read_split(DataConfig(source="hub", hub_root=str(tmp_path)), "python", "train")
    assert "\n" not in str(error.value)


# --- local layouts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "relative",
    [
        "python/valid.jsonl.gz",  # `hybridcl corpus build`
        "python/final/jsonl/valid/python_valid_0.jsonl.gz",  # the original CodeSearchNet release
        "valid.jsonl",  # one language per source directory
    ],
)
def test_load_split_finds_each_layout(tmp_path, relative):
    write_jsonl(tmp_path / relative, [csn_row(0), csn_row(1, language="javascript")], gz=relative.endswith(".gz"))
    sample = sample_all(tmp_path, "valid")
    assert [r.func_name for r in sample.records] == ["add_0"]
    assert sample.skips == Counter({"wrong_language": 1})


# --- sampling and task data ------------------------------------------------------------------------


def test_sample_is_the_same_whatever_the_file_order_and_validates_only_what_it_needs(tmp_path):
    rows = [csn_row(i) for i in range(50)] + [csn_row(i, docstring="") for i in range(50, 60)]
    write_jsonl(tmp_path / "a" / "train.jsonl", rows)
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    write_jsonl(tmp_path / "b" / "train.jsonl", shuffled)
    chosen = sample_all(tmp_path / "a", n=10)
    assert len(chosen.records) == 10 and len(set(chosen.records)) == 10
    assert sample_all(tmp_path / "b", n=10).records == chosen.records
    assert sample_all(tmp_path / "a", n=10, seed=1).records != chosen.records
    assert chosen.examined == 10 + chosen.skips["empty_docstring"] < 60 and chosen.read == 60
    everything = sample_all(tmp_path / "b", n=100)
    assert len(everything.records) == 50 and everything.examined == 60
    assert everything.skips == Counter({"empty_docstring": 10})


def test_load_task_data_samples_and_removes_train_valid_overlap(tmp_path):
    write_jsonl(tmp_path / "python" / "train.jsonl", [csn_row(i) for i in range(20)])
    # valid repeats train record 3 (with other whitespace) and has one bad record
    leaked = csn_row(103, code=csn_row(3)["code"].replace("a + b", "a  +\tb"))
    valid_rows = [csn_row(i) for i in range(100, 106)] + [leaked, b"{oops"]
    write_jsonl(tmp_path / "python" / "valid.jsonl", valid_rows)
    cfg = DataConfig(source=str(tmp_path), n_train=20, n_valid=100, sample_seed=7, cache_dir=str(tmp_path / "cache"))
    task = csn.load_task_data(cfg, "python")
    assert task.task == "python"
    assert task.counts == {
        "train_read": 20,
        "train_examined": 20,
        "train": 20,
        "valid_read": 8,
        "valid_examined": 7,
        "valid": 6,
    }
    assert len(set(task.train)) == 20
    assert {r.func_name for r in task.valid} == {f"add_{i}" for i in range(100, 106)}
    assert task.split_skips == {"train": Counter(), "valid": Counter({"duplicate": 1, "bad_json": 1})}


def test_task_samples_are_cached_until_a_file_changes(tmp_path, monkeypatch):
    for split, first in (("train", 0), ("valid", 100)):
        write_jsonl(tmp_path / "python" / f"{split}.jsonl", [csn_row(i) for i in range(first, first + 30)])
    cfg = DataConfig(source=str(tmp_path), n_train=10, n_valid=5, cache_dir=str(tmp_path / "cache"))
    task = csn.load_task_data(cfg, "python")
    reads = []
    real_read_split = csn.read_split
    monkeypatch.setattr(csn, "read_split", lambda *args: reads.append(args[2]) or real_read_split(*args))
    cached = csn.load_task_data(cfg, "python")
    assert reads == [] and (cached.train, cached.valid, cached.counts) == (task.train, task.valid, task.counts)
    write_jsonl(tmp_path / "python" / "valid.jsonl", [csn_row(i) for i in range(200, 230)])
    changed = csn.load_task_data(cfg, "python")
    assert reads == ["valid"] and changed.train == task.train and changed.valid != task.valid
    assert csn.load_task_data(replace(cfg, sample_seed=1), "python").train != task.train


@pytest.mark.parametrize("split", ["train", "valid"])
@pytest.mark.parametrize("bad_lines", [[], [b"{oops", csn_row(1, docstring="")]], ids=["empty", "all-invalid"])
def test_a_split_without_usable_records_is_one_line_naming_split_path_and_skips(tmp_path, split, bad_lines):
    good = {"train": [csn_row(i) for i in range(5)], "valid": [csn_row(i) for i in range(10, 13)]}
    good[split] = bad_lines
    for name, rows in good.items():
        write_jsonl(tmp_path / "python" / f"{name}.jsonl", rows)
    with pytest.raises(DataError) as error:
        csn.load_task_data(DataConfig(source=str(tmp_path), cache_dir=str(tmp_path / "cache")), "python")
    message = str(error.value)
    assert "\n" not in message and f"python {split} split has no usable records" in message
    assert str(tmp_path / "python" / f"{split}.jsonl") in message
    assert f"{len(bad_lines)} read" in message
    if bad_lines:
        assert "bad_json 1, empty_docstring 1" in message


# --- `hybridcl corpus check` -----------------------------------------------------------------------


def test_check_path_counts_by_split_and_reason(tmp_path):
    write_jsonl(tmp_path / "python" / "train.jsonl.gz", [csn_row(0), csn_row(1), csn_row(0)], gz=True)
    write_jsonl(tmp_path / "python" / "valid.jsonl", [csn_row(2), csn_row(3, language="go"), b"nope"])
    write_jsonl(tmp_path / "javascript" / "test.jsonl", [csn_row(4, language="javascript")])
    write_jsonl(tmp_path / "misc.jsonl", [csn_row(5, partition="test"), csn_row(6, language="ruby", partition="")])
    report = csn.check_path(tmp_path)
    assert report.counts == {"train": 2, "valid": 1, "test": 2, "misc.jsonl": 1}
    assert report.skips == Counter({"duplicate": 1, "wrong_language": 1, "bad_json": 1})
    assert report.usable
    summary = report.summary()
    assert "6 usable" in summary and "wrong_language: 1" in summary and "train: 2" in summary


def test_check_path_with_only_bad_records_is_not_usable(tmp_path):
    write_jsonl(tmp_path / "python" / "train.jsonl", [b"{", csn_row(0, language="ruby"), csn_row(1, code="")])
    report = csn.check_path(tmp_path)
    assert not report.usable
    assert report.skips == Counter({"bad_json": 1, "wrong_language": 1, "empty_code": 1})
    assert csn.check_path(tmp_path, language="ruby").usable


def test_cli_corpus_check_exit_status(tmp_path, capsys):
    good = write_jsonl(tmp_path / "good" / "python" / "train.jsonl", [csn_row(0)])
    bad = write_jsonl(tmp_path / "bad" / "python" / "train.jsonl", [b"not json"])
    assert main(["corpus", "check", str(good)]) == 0
    assert "1 usable" in capsys.readouterr().out
    assert main(["corpus", "check", str(bad.parent)]) == 1
    assert "bad_json: 1" in capsys.readouterr().out
    assert main(["corpus", "check", str(tmp_path / "missing")]) != 0
    assert "missing" in capsys.readouterr().err


def test_strip_python_docstring_keeps_one_line_functions_and_form_feeds():
    from hybridcl.data.text import strip_python_docstring

    one_line = 'def f(): "Doc string here."; return 1'
    assert strip_python_docstring(one_line) == one_line
    with_form_feed = 'def f():\n    """Doc\x0cmore."""\n    return 1\n'
    assert strip_python_docstring(with_form_feed) == "def f():\n    return 1\n"


def test_a_hub_split_without_usable_rows_names_its_folder(tmp_path):
    write_hub_shards(tmp_path, "train", [[hub_row(0, func_documentation_string="")]])
    write_hub_shards(tmp_path, "validation", [[hub_row(1)]])
    cfg = DataConfig(source="hub", hub_root=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(
        DataError,
        match=rf"python train split has no usable records \({tmp_path}/python/train: "
        r"1 read, all skipped: empty_docstring 1\)",
    ):
        csn.load_task_data(cfg, "python")


def test_max_code_chars_keeps_functions_that_fit_judged_without_the_python_docstring():
    long_doc = '    """Add one.\n\n    ' + "Detail. " * 40 + '\n    """\n'
    rows = [
        {
            "language": "python",
            "docstring": "Add one.",
            "code": "def short(x):\n" + long_doc + "    return x + 1\n",
            "func_name": "short",
        },
        {
            "language": "python",
            "docstring": "Add many.",
            "code": "def long(x):\n    return x" + " + 1" * 40 + "\n",
            "func_name": "long",
        },
    ]
    sample = csn.sample_split(rows, Counter(), 10, 0, "python", 20_000, max_code_chars=60)
    assert [r.func_name for r in sample.records] == ["short"]  # 300+ characters stored, 31 once stripped
    assert sample.skips == Counter({"code_too_long": 1})
    assert len(csn.sample_split(rows, Counter(), 10, 0, "python", 20_000).records) == 2  # 0: no limit
