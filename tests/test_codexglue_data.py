"""CodeTask-CL's tasks read from CodeT5's data folder and from the hub's CodeXGLUE datasets (replicas of both,
hybridcl.data.codexglue_replicas): pinned, read as CodeT5 reads them, sampled, validated and cached."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hybridcl.data import codexglue
from hybridcl.data.codexglue import HUB_IDS, load_pair_task, read_pairs, resolve_codexglue
from hybridcl.data.codexglue_replicas import write_codet5_folder, write_hub_cache
from hybridcl.data.schema import SPLITS, DataError, Pair
from hybridcl.settings import DataConfig

TASKS = [
    ("concode", "none"),
    ("translate", "java-cs"),
    ("translate", "cs-java"),
    ("summarize", "ruby"),
    ("refine", "small"),
]
N = 32  # examples per split in the replicas


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_codet5_folder(tmp_path_factory.mktemp("codet5") / "data", N)


@pytest.fixture
def copy(folder, tmp_path) -> Path:
    """A copy of the folder a test may damage."""
    return Path(shutil.copytree(folder, tmp_path / "data"))


def data_cfg(tmp_path: Path, source, **fields) -> DataConfig:
    return DataConfig(
        **{"source": str(source), "n_train": 16, "n_valid": 8, "cache_dir": str(tmp_path / "cache"), **fields}
    )


def load(cfg: DataConfig, kind: str, subtask: str, eval_split: str = "valid"):
    source = resolve_codexglue(cfg, kind, subtask, ("train", eval_split))
    return load_pair_task(cfg, f"{kind}_{subtask}", kind, subtask, source, eval_split)


def append_lines(path: Path, *lines: bytes) -> None:
    with open(path, "ab") as file:
        file.writelines(line + b"\n" for line in lines)


# --- the CodeT5 folder --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, subtask", TASKS)
def test_each_task_is_read_from_the_codet5_folder_pinned_by_content(folder, tmp_path, kind, subtask):
    source = resolve_codexglue(data_cfg(tmp_path, folder), kind, subtask, SPLITS)
    expected = {rel for split in SPLITS for rel in codexglue.codet5_files(kind, subtask, split)}
    assert (source.kind, source.form, source.id) == ("local", "codet5-folder", str(folder))
    assert {rel for rel, _ in source.files} == expected and source.fingerprint.startswith("sha256:")
    data = load(data_cfg(tmp_path, folder), kind, subtask)
    assert (len(data.train), len(data.valid), data.task) == (16, 8, f"{kind}_{subtask}")
    assert all(isinstance(pair, Pair) and pair.source and pair.target for pair in data.train + data.valid)
    assert data.counts == {
        "train_read": N,
        "train_examined": 16,
        "train": 16,
        "valid_read": N,
        "valid_examined": 8,
        "valid": 8,
    }


def test_the_files_are_those_of_codet5s_get_filenames():
    assert codexglue.codet5_files("concode", "none", "valid") == ("concode/dev.json",)
    assert codexglue.codet5_files("translate", "cs-java", "test") == (
        "translate/test.java-cs.txt.cs",
        "translate/test.java-cs.txt.java",
    )
    assert codexglue.codet5_files("refine", "medium", "train") == (
        "refine/medium/train.buggy-fixed.buggy",
        "refine/medium/train.buggy-fixed.fixed",
    )
    assert codexglue.codet5_files("summarize", "go", "valid") == ("summarize/go/valid.jsonl",)


def test_cs_java_reads_the_translation_files_the_other_way_round(folder, tmp_path):
    cfg = data_cfg(tmp_path, folder)
    forward, _ = read_pairs(resolve_codexglue(cfg, "translate", "java-cs", ["train"]), "translate", "java-cs", "train")
    back, _ = read_pairs(resolve_codexglue(cfg, "translate", "cs-java", ["train"]), "translate", "cs-java", "train")
    assert [(row["target"], row["source"]) for row in back] == [(row["source"], row["target"]) for row in forward]
    assert forward[0]["source"].startswith("public int next") and "virtual" in forward[0]["target"]


def test_fields_are_normalised_as_codet5s_readers_do(copy, tmp_path):
    (copy / "concode" / "train.json").write_text(
        json.dumps({"nl": "  returns x .\t", "code": "\n int f ( ) ;  "}) + "\n"
    )
    row = {"code_tokens": ["def", "a\nb", " c "], "docstring_tokens": ["Adds", "on\ne", "\tthing", "."]}
    (copy / "summarize" / "ruby" / "train.jsonl").write_text(json.dumps(row) + "\n")
    (copy / "refine" / "small" / "train.buggy-fixed.buggy").write_text(" a ( ) ; \r\n")
    (copy / "refine" / "small" / "train.buggy-fixed.fixed").write_text("b ( ) ; \n")
    cfg = data_cfg(tmp_path, copy)
    expected = {
        "concode": ("returns x .", "int f ( ) ;"),
        "summarize": ("def a b c", "Adds one thing ."),  # a newline in a docstring token is dropped, in code a space
        "refine": ("a ( ) ;", "b ( ) ;"),
    }
    for kind, subtask in (("concode", "none"), ("summarize", "ruby"), ("refine", "small")):
        rows, _ = read_pairs(resolve_codexglue(cfg, kind, subtask, ["train"]), kind, subtask, "train")
        assert [(row["source"], row["target"]) for row in rows] == [expected[kind]], kind


# --- bad rows and bad folders -------------------------------------------------------------------------------


def test_bad_rows_are_skipped_and_counted_by_reason(copy, tmp_path):
    append_lines(
        copy / "concode" / "train.json",
        b'{"nl": "returns nothing", "code": ',  # cut short
        json.dumps({"nl": "returns nothing .", "code": "  "}).encode(),
        b'{"nl": "returns caf\xe9 .", "code": "int f ( ) ;"}',  # latin-1
        json.dumps({"nl": "x" * 600, "code": "int f ( ) ;"}).encode(),
        json.dumps({"nl": "returns the code field ."}).encode(),
        json.dumps({"nl": "", "code": "int f ( ) ;"}).encode(),
        json.dumps({"nl": "returns the count increased by 1 .  ", "code": "int f ( ) ;"}).encode(),
    )
    first = (copy / "concode" / "train.json").read_text(encoding="utf-8", errors="replace").splitlines()[0]
    append_lines(copy / "concode" / "train.json", f" {first} ".encode())  # the first row again, padded
    data = load(data_cfg(tmp_path, copy, n_train=0, max_record_chars=500), "concode", "none")
    expected = {"bad_json": 1, "empty_target": 1, "non_utf8": 1, "too_long": 1, "missing_field": 1, "empty_source": 1}
    assert data.split_skips["train"] == {**expected, "duplicate": 1}
    assert (data.counts["train_read"], data.counts["train"]) == (N + 8, N + 1)


def test_bad_lines_of_line_aligned_files_cost_their_pair_only(copy, tmp_path):
    append_lines(copy / "refine" / "small" / "train.buggy-fixed.buggy", b"public void \xff ( ) { }", b"a ( ) ;", b"c ;")
    append_lines(copy / "refine" / "small" / "train.buggy-fixed.fixed", b"public void f ( ) { }", b"", b"d ;")
    data = load(data_cfg(tmp_path, copy, n_train=0), "refine", "small")
    assert data.split_skips["train"] == {"non_utf8": 1, "empty_target": 1}
    assert Pair(str(N + 2), "c ;", "d ;") in data.train  # still aligned after both


def test_a_misaligned_pair_is_refused_before_any_work_naming_both_files_and_counts(copy, tmp_path):
    cs = copy / "translate" / "valid.java-cs.txt.cs"
    cs.write_text("".join(cs.read_text().splitlines(keepends=True)[:-1]))
    cfg = data_cfg(tmp_path, copy)
    with pytest.raises(DataError) as error:
        resolve_codexglue(cfg, "translate", "java-cs", ("train", "valid"))
    java = copy / "translate" / "valid.java-cs.txt.java"
    assert str(error.value).startswith(f"{java} has {N} lines but {cs} has {N - 1}")
    assert "\n" not in str(error.value) and not (tmp_path / "cache" / "samples").exists()


@pytest.mark.parametrize(
    "kind, subtask, removed, layout",
    [
        (
            "translate",
            "java-cs",
            "translate/valid.java-cs.txt.cs",
            "translate/{train,valid,test}.java-cs.txt.{java,cs}",
        ),
        ("concode", "none", "concode/dev.json", "concode/{train,dev,test}.json"),
        ("summarize", "ruby", "summarize/ruby/train.jsonl", "summarize/ruby/{train,valid,test}.jsonl"),
        (
            "refine",
            "small",
            "refine/small/valid.buggy-fixed.buggy",
            "refine/small/{train,valid,test}.buggy-fixed.{buggy,fixed}",
        ),
    ],
)
def test_a_missing_split_file_is_named_with_the_layout_expected(copy, tmp_path, kind, subtask, removed, layout):
    (copy / removed).unlink()
    with pytest.raises(DataError) as error:
        resolve_codexglue(data_cfg(tmp_path, copy), kind, subtask, ("train", "valid"))
    task = f"{kind} {subtask}"
    assert str(error.value) == f"{copy / removed} is missing; CodeT5's layout for {task} is {layout}"


def test_a_split_without_a_usable_pair_is_an_error_naming_it_and_the_skips(copy, tmp_path):
    # CodeXGLUE's public concode/test.json has every "code" empty
    test = copy / "concode" / "test.json"
    test.write_text(
        "".join(json.dumps({**json.loads(line), "code": ""}) + "\n" for line in test.read_text().splitlines())
    )
    with pytest.raises(DataError) as error:
        load(data_cfg(tmp_path, copy), "concode", "none", eval_split="test")
    assert str(error.value) == (
        f"concode_none test split has no usable records ({copy}: concode/test.json: "
        f"{N} read, all skipped: empty_target {N})"
    )


def test_unknown_tasks_splits_and_folders_are_one_line_errors(folder, tmp_path):
    cfg = data_cfg(tmp_path, folder)
    for kind, subtask, splits, message in [
        ("concod", "none", ["train"], "unknown CodeXGLUE task kind 'concod'"),
        ("translate", "java-go", ["train"], "translate has no subtask 'java-go'"),
        ("refine", "small", ["dev"], "unknown split 'dev'"),
    ]:
        with pytest.raises(DataError, match=message):
            resolve_codexglue(cfg, kind, subtask, splits)
    with pytest.raises(DataError, match="is not a folder"):
        resolve_codexglue(data_cfg(tmp_path, tmp_path / "nowhere"), "refine", "small", ["train"])


# --- sampling -----------------------------------------------------------------------------------------------


def test_n_train_zero_reads_the_whole_training_split(folder, tmp_path):
    data = load(data_cfg(tmp_path, folder, n_train=0), "translate", "java-cs")
    rows, _ = read_pairs(
        resolve_codexglue(data_cfg(tmp_path, folder), "translate", "java-cs", ["train"]),
        "translate",
        "java-cs",
        "train",
    )
    assert len(data.train) == data.counts["train"] == data.counts["train_examined"] == N
    assert sorted((pair.source, pair.target) for pair in data.train) == sorted((r["source"], r["target"]) for r in rows)


def test_evaluation_never_repeats_a_training_pair(copy, tmp_path):
    train = (copy / "summarize" / "ruby" / "train.jsonl").read_text().splitlines()
    valid = copy / "summarize" / "ruby" / "valid.jsonl"
    valid.write_text("\n".join(train + valid.read_text().splitlines()) + "\n")  # every train row in valid too
    data = load(data_cfg(tmp_path, copy, n_train=0, n_valid=2 * N), "summarize", "ruby")  # examines every row
    keys = {codexglue.pair_key(pair) for pair in data.train}
    assert len(data.valid) == N and not keys & {codexglue.pair_key(pair) for pair in data.valid}
    assert data.split_skips["valid"]["duplicate"] == N


def test_the_sample_depends_on_the_seed_not_on_the_file_order(copy, tmp_path):
    first = load(data_cfg(tmp_path, copy), "concode", "none")
    train = copy / "concode" / "train.json"
    train.write_text("".join(reversed(train.read_text().splitlines(keepends=True))))
    reordered = load(data_cfg(tmp_path / "again", copy), "concode", "none")
    other_seed = load(data_cfg(tmp_path / "seed", copy, sample_seed=1), "concode", "none")
    pairs = {(pair.source, pair.target) for pair in first.train}
    assert pairs == {(pair.source, pair.target) for pair in reordered.train}
    assert pairs != {(pair.source, pair.target) for pair in other_seed.train}


def test_a_second_load_reads_no_data_file(folder, tmp_path, monkeypatch):
    cfg = data_cfg(tmp_path, folder)
    source = resolve_codexglue(cfg, "refine", "small", ("train", "valid"))
    first = load_pair_task(cfg, "refine_small", "refine", "small", source, "valid")

    def unreadable(*args):
        raise AssertionError("a data file was read")

    monkeypatch.setattr(codexglue, "read_pairs", unreadable)
    assert load_pair_task(cfg, "refine_small", "refine", "small", source, "valid") == first


# --- the hub's CodeXGLUE datasets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "form, revision", [("parquet-conversion", "refs/convert/parquet"), ("push-to-hub-parquet", "main")]
)
@pytest.mark.parametrize("kind, subtask", TASKS)
def test_the_hub_datasets_give_the_same_rows_and_samples_as_codet5s_folder(
    folder, offline_cache, tmp_path, form, revision, kind, subtask
):
    commits = write_hub_cache(offline_cache, N, form=form)
    hub_cfg = data_cfg(tmp_path, "hub")
    source = resolve_codexglue(hub_cfg, kind, subtask, SPLITS)
    assert (source.kind, source.id, source.form, source.revision) == ("hub", HUB_IDS[kind], form, revision)
    assert source.commit == commits[HUB_IDS[kind]] and source.cached and len(source.files) == 3
    local_cfg = data_cfg(tmp_path / "local", folder)
    local = resolve_codexglue(local_cfg, kind, subtask, SPLITS)
    for split in SPLITS:
        assert read_pairs(source, kind, subtask, split) == read_pairs(local, kind, subtask, split), split
    hub_data, local_data = load(hub_cfg, kind, subtask), load(local_cfg, kind, subtask)
    assert (hub_data.train, hub_data.valid) == (local_data.train, local_data.valid)


def test_auto_reads_the_conversion_branch_first_and_main_when_asked(offline_cache, tmp_path):
    conversion = write_hub_cache(offline_cache, 8)
    main = write_hub_cache(offline_cache, 8, form="push-to-hub-parquet")
    auto = resolve_codexglue(data_cfg(tmp_path, "hub"), "refine", "small", ["train"])
    pinned = resolve_codexglue(data_cfg(tmp_path, "hub", hub_revision="main"), "refine", "small", ["train"])
    assert (auto.form, auto.commit, auto.files[0][0]) == (
        "parquet-conversion",
        conversion[HUB_IDS["refine"]],
        "small/train/0000.parquet",
    )
    assert (pinned.form, pinned.commit, pinned.files[0][0]) == (
        "push-to-hub-parquet",
        main[HUB_IDS["refine"]],
        "small/train-00000-of-00001.parquet",
    )


def test_offline_a_split_the_cache_lacks_is_named_with_its_expected_path(offline_cache, tmp_path):
    commit = write_hub_cache(offline_cache, 8)[HUB_IDS["translate"]]
    snapshot = offline_cache / "datasets--google--code_x_glue_cc_code_to_code_trans" / "snapshots" / commit
    shutil.rmtree(snapshot / "default" / "test")
    with pytest.raises(DataError) as error:
        resolve_codexglue(data_cfg(tmp_path, "hub"), "translate", "java-cs", ("train", "test"))
    message = str(error.value)
    assert "\n" not in message and "offline mode (HF_HUB_OFFLINE)" in message
    assert (
        "google/code_x_glue_cc_code_to_code_trans@refs/convert/parquet (parquet-conversion): "
        "no translate java-cs test split; expected default/test/NNNN.parquet" in message
    )
    assert "--set data.source=DIR" in message


def test_a_hub_sample_is_served_from_the_cache_once_the_files_are_gone(offline_cache, tmp_path):
    commit = write_hub_cache(offline_cache, N)[HUB_IDS["summarize"]]
    cfg = data_cfg(tmp_path, "hub")
    source = resolve_codexglue(cfg, "summarize", "ruby", ("train", "valid"))
    first = load_pair_task(cfg, "summarize_ruby", "summarize", "ruby", source, "valid")
    shutil.rmtree(offline_cache / "datasets--google--code_x_glue_ct_code_to_text" / "snapshots" / commit)
    assert load_pair_task(cfg, "summarize_ruby", "summarize", "ruby", source, "valid") == first
    assert first.source.as_record()["commit"] == commit
