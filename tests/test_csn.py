"""hybridcl.data.csn: reading, validating, splitting and sampling CodeSearchNet records, offline."""

from __future__ import annotations

import ast
import gzip
import json
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from hybridcl.cli import main
from hybridcl.config import DataConfig
from hybridcl.data import csn
from hybridcl.data.schema import HUB_COLUMNS, DataError


def csn_row(i: int, language: str = "python", **fields) -> dict:
    """An original-schema CodeSearchNet row; python `code` keeps its docstring, as the release does."""
    if language == "python":
        code = f'def add_{i}(a, b):\n    """Add {i} to a sum.\n\n    More detail.\n    """\n    return a + b + {i}\n'
        docstring = f"Add {i} to a sum.\n\nMore detail."
    else:
        code = f"function add{i}(a, b) {{\n  return a + b + {i};\n}}"
        docstring = f"Add {i} to a sum.\n@param {{number}} a first"
    row = {
        "repo": f"owner/repo{i}", "path": f"pkg/mod{i}.py", "func_name": f"add_{i}", "original_string": code,
        "language": language, "code": code, "code_tokens": code.split(), "docstring": docstring,
        "docstring_tokens": docstring.split(), "sha": "abc123", "url": f"https://github.com/owner/repo{i}#L{i}",
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
    records, skips = csn.load_split(DataConfig(source=str(tmp_path)), "python", "train")
    assert [r.func_name for r in records] == ["add_0", "add_1"]
    assert skips == Counter({"duplicate": 1})


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
        csn.load_split(DataConfig(source=str(tmp_path)), "cobol", "train")


def test_missing_split_names_the_paths_tried(tmp_path):
    write_jsonl(tmp_path / "python" / "train.jsonl", [csn_row(0)])
    with pytest.raises(DataError, match=r"python/test\.jsonl\.gz.*final/jsonl/test"):
        csn.load_split(DataConfig(source=str(tmp_path)), "python", "test")


def test_unreachable_hub_fails_fast_naming_the_offline_alternatives(monkeypatch, tmp_path):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # the libraries read these variables at import time, which may have happened already
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    start = time.monotonic()
    with pytest.raises(DataError, match="hybridcl corpus build") as error:
        csn.load_split(DataConfig(source="hub"), "python", "train")
    assert time.monotonic() - start < 10
    assert "code-search-net/code_search_net" in str(error.value) and "data.source" in str(error.value)


def test_hub_rows_are_validated_like_local_rows(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        rows = [hub_row(0), hub_row(1, func_code_string=""), hub_row(2, language="java"), hub_row(3)]
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    cfg = DataConfig(source="hub", hub_id="some/mirror", hub_revision="rev1")
    records, skips = csn.load_split(cfg, "python", "valid")
    assert calls == [(("some/mirror", "python"), {"revision": "rev1", "split": "validation"})]
    assert [r.func_name for r in records] == ["add_0", "add_3"]
    assert records[0].docstring == "Add 0 to a sum." and "More detail" not in records[0].code
    assert skips == Counter({"empty_code": 1, "wrong_language": 1})


# --- local layouts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("relative", [
    "python/valid.jsonl.gz",  # `hybridcl corpus build`
    "python/final/jsonl/valid/python_valid_0.jsonl.gz",  # the original CodeSearchNet release
    "valid.jsonl",  # one language per source directory
])
def test_load_split_finds_each_layout(tmp_path, relative):
    write_jsonl(tmp_path / relative, [csn_row(0), csn_row(1, language="javascript")], gz=relative.endswith(".gz"))
    records, skips = csn.load_split(DataConfig(source=str(tmp_path)), "python", "valid")
    assert [r.func_name for r in records] == ["add_0"]
    assert skips == Counter({"wrong_language": 1})


# --- sampling and task data ------------------------------------------------------------------------

def test_sample_is_deterministic_and_independent_of_input_order(tmp_path):
    records, _ = read(write_jsonl(tmp_path / "x.jsonl", [csn_row(i) for i in range(50)]))
    shuffled = records[:]
    random.Random(1).shuffle(shuffled)
    chosen = csn.sample(records, 10, seed=0)
    assert len(chosen) == 10 and len(set(chosen)) == 10
    assert csn.sample(records, 10, seed=0) == chosen
    assert csn.sample(shuffled, 10, seed=0) == chosen
    assert csn.sample(records, 10, seed=1) != chosen
    assert set(csn.sample(shuffled, 60, seed=0)) == set(records)
    assert csn.sample(shuffled, 60, seed=0) == csn.sample(records, 50, seed=3)


def test_load_task_data_samples_and_removes_train_valid_overlap(tmp_path):
    write_jsonl(tmp_path / "python" / "train.jsonl", [csn_row(i) for i in range(20)])
    # valid repeats train record 3 (with other whitespace) and has one bad record
    leaked = csn_row(103, code=csn_row(3)["code"].replace("a + b", "a  +\tb"))
    valid_rows = [csn_row(i) for i in range(100, 106)] + [leaked, b"{oops"]
    write_jsonl(tmp_path / "python" / "valid.jsonl", valid_rows)
    cfg = DataConfig(source=str(tmp_path), n_train=8, n_valid=100, sample_seed=7)
    task = csn.load_task_data(cfg, "python")
    assert task.language == "python"
    assert task.counts == {"train_available": 20, "train": 8, "valid_available": 6, "valid": 6}
    assert len(task.train) == 8 and len(set(task.train)) == 8
    assert {r.func_name for r in task.valid} == {f"add_{i}" for i in range(100, 106)}
    assert task.skips == Counter({"duplicate": 1, "bad_json": 1})
    assert task.split_skips == {"train": Counter(), "valid": Counter({"duplicate": 1, "bad_json": 1})}
    assert (task.read("train"), task.read("valid")) == (20, 8)
    assert csn.load_task_data(cfg, "python").train == task.train


@pytest.mark.parametrize("split", ["train", "valid"])
@pytest.mark.parametrize("bad_lines", [[], [b"{oops", csn_row(1, docstring="")]], ids=["empty", "all-invalid"])
def test_a_split_without_usable_records_is_one_line_naming_split_path_and_skips(tmp_path, split, bad_lines):
    good = {"train": [csn_row(i) for i in range(5)], "valid": [csn_row(i) for i in range(10, 13)]}
    good[split] = bad_lines
    for name, rows in good.items():
        write_jsonl(tmp_path / "python" / f"{name}.jsonl", rows)
    with pytest.raises(DataError) as error:
        csn.load_task_data(DataConfig(source=str(tmp_path)), "python")
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
