"""CodeSearchNet in every form it is served in: recognised from a listing, read the same, pinned and recorded.

Replicas of each form are written from a small mined-style corpus; the hub default is run offline on a
replica placed in a Hugging Face cache (huggingface_hub's own layout), through the code a real hub run takes.
"""

from __future__ import annotations

import gzip
import json
import zipfile
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from hybridcl.data import csn, hub, source
from hybridcl.data.forms import ANY_LANGUAGE, FORMS, recognise
from hybridcl.data.pinning import DataSource
from hybridcl.data.replicas import write_replica
from hybridcl.data.schema import SPLITS, DataError, Record
from hybridcl.data.source import resolve_data
from hybridcl.fingerprints import list_folder
from hybridcl.hf_cache import place_in_cache, repo_folder, snapshot_folder
from hybridcl.settings import DataConfig
from hybridcl.sources import describe
from smoke import write_smoke_language

HUB_ID = "code-search-net/code_search_net"
LANGUAGES = ("python", "javascript")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    for language in LANGUAGES:
        write_smoke_language(out, language)
    return out


def corpus_records(corpus: Path, language: str) -> dict[str, list[Record]]:
    return {split: list(csn.read_records(corpus / language / f"{split}.jsonl.gz", language)) for split in SPLITS}


@pytest.fixture(scope="module")
def replicas(corpus, tmp_path_factory) -> dict[str, Path]:
    """One folder per form, both languages, 2 files per split."""
    out = {}
    for form in FORMS:
        out[form] = tmp_path_factory.mktemp(form)
        for language in LANGUAGES:
            write_replica(corpus_records(corpus, language), out[form], language, shards=2, form=form)
    return out


def data_cfg(tmp_path: Path, **fields) -> DataConfig:
    return DataConfig(**{"n_train": 20, "n_valid": 6, "cache_dir": str(tmp_path / "cache"), **fields})


# --- recognition ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_each_replica_is_recognised_from_its_listing(replicas, form):
    layout = recognise(list_folder(replicas[form]), "replica")
    assert layout.form == form
    files, mixed = layout.split_files("python", "valid", "replica")
    assert not mixed and files
    expected = {
        "parquet-conversion": ("python/validation/0000.parquet", "python/validation/0001.parquet"),
        "push-to-hub-parquet": (
            "python/validation-00000-of-00002.parquet",
            "python/validation-00001-of-00002.parquet",
        ),
        "release-zip": ("data/python.zip",),
        "release-jsonl": (
            "python/final/jsonl/valid/python_valid_0.jsonl.gz",
            "python/final/jsonl/valid/python_valid_1.jsonl.gz",
        ),
    }[form]
    assert files == expected


@pytest.mark.parametrize(
    "paths, form, language, split, files, mixed",
    [
        (  # the conversion branch: a split cut short is in partial-<split>/; a full folder wins
            ["python/partial-train/0000.parquet", "python/partial-train/0001.parquet", "go/train/0000.parquet"],
            "parquet-conversion",
            "python",
            "train",
            ("python/partial-train/0000.parquet", "python/partial-train/0001.parquet"),
            False,
        ),
        (
            ["python/train/0001.parquet", "python/train/0000.parquet", "python/partial-train/0000.parquet"],
            "parquet-conversion",
            "python",
            "train",
            ("python/train/0000.parquet", "python/train/0001.parquet"),
            False,
        ),
        (  # the dataset repo's main branch: its loading script and the release's zips
            ["README.md", "code_search_net.py", "data/go.zip", "data/python.zip", "data/ruby.zip"],
            "release-zip",
            "python",
            "valid",
            ("data/python.zip",),
            False,
        ),
        (  # push_to_hub of the default config: one data/ folder with every language's rows
            ["README.md", "data/train-00001-of-00002.parquet", "data/train-00000-of-00002.parquet"],
            "push-to-hub-parquet",
            "ruby",
            "train",
            ("data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"),
            True,
        ),
        (
            ["python/data/validation-00000-of-00001.parquet", "python/data/train-00000-of-00001.parquet"],
            "push-to-hub-parquet",
            "python",
            "valid",
            ("python/data/validation-00000-of-00001.parquet",),
            False,
        ),
        (  # the release unpacked one level down (an archive extracted into its own folder), parts in number order
            [f"CodeSearchNet/java/final/jsonl/train/java_train_{k}.jsonl.gz" for k in (10, 2, 1)],
            "release-jsonl",
            "java",
            "train",
            tuple(f"CodeSearchNet/java/final/jsonl/train/java_train_{k}.jsonl.gz" for k in (1, 2, 10)),
            False,
        ),
    ],
)
def test_forms_are_recognised_from_listings_as_served(paths, form, language, split, files, mixed):
    layout = recognise([(path, 1) for path in paths], "listing")
    assert layout.form == form
    assert layout.split_files(language, split, "listing") == (files, mixed)
    assert (ANY_LANGUAGE, split) in layout.splits if mixed else (language, split) in layout.splits


def test_a_push_with_a_shard_missing_is_refused_naming_the_split():
    layout = recognise([("python/train-00000-of-00003.parquet", 1), ("python/train-00002-of-00003.parquet", 1)], "x")
    with pytest.raises(DataError, match=r"python train: shards missing"):
        layout.split_files("python", "train", "x")


def test_a_root_matching_no_form_fails_in_one_line_listing_the_forms_and_first_files(corpus, tmp_path):
    with pytest.raises(DataError) as error:
        resolve_data(data_cfg(tmp_path, hub_root=str(corpus)), ["python"])
    message = str(error.value)
    assert "\n" not in message and "holds no CodeSearchNet form" in message
    assert all(form in message for form in FORMS)
    assert "found 8 file(s): javascript/pretrain.jsonl.gz, javascript/test.jsonl.gz" in message
    assert message.endswith("is read with data.source=DIR instead")


def test_a_missing_language_names_the_form_and_what_it_has(replicas, tmp_path):
    with pytest.raises(DataError, match=r"\(release-zip\): no go train split; expected data/go\.zip holding .*it has"):
        resolve_data(data_cfg(tmp_path, hub_root=str(replicas["release-zip"])), ["python", "go"])


# --- reading ------------------------------------------------------------------------------------------


def test_every_form_gives_the_same_task(replicas, tmp_path):
    tasks = {}
    for form, folder in replicas.items():
        cfg = data_cfg(tmp_path / form, hub_root=str(folder))
        data = resolve_data(cfg, LANGUAGES)
        assert (data.kind, data.form, data.id, data.cached, data.download_bytes) == (
            "local",
            form,
            str(folder),
            True,
            0,
        )
        assert data.fingerprint.startswith("sha256:") and len(data.fingerprint) == 7 + 64
        assert {path for path, _ in data.files} == {path for path, _ in list_folder(folder)} - _test_files(form)
        tasks[form] = [csn.load_task_data(cfg, language, data) for language in LANGUAGES]
    first = tasks["parquet-conversion"]
    assert [len(task.train) for task in first] == [20, 20] and first[0].counts["train_read"] == 60
    for form, task in tasks.items():
        assert [(t.train, t.valid, t.counts) for t in task] == [(t.train, t.valid, t.counts) for t in first], form
        assert all(t.source.form == form for t in task)


def _test_files(form: str) -> set[str]:
    """A task reads train and valid: the test split's files are not among a source's files."""
    if form == "release-zip":
        return set()  # one archive per language holds all three splits
    return {path for language in LANGUAGES for path in _all_test_paths(form, language)}


def _all_test_paths(form: str, language: str) -> list[str]:
    return {
        "parquet-conversion": [f"{language}/test/000{k}.parquet" for k in range(2)],
        "push-to-hub-parquet": [f"{language}/test-0000{k}-of-00002.parquet" for k in range(2)],
        "release-jsonl": [f"{language}/final/jsonl/test/{language}_test_{k}.jsonl.gz" for k in range(2)],
    }[form]


def test_a_mixed_config_serves_each_language_its_own_rows(corpus, tmp_path):
    """push_to_hub's default config (data/<split>-...) holds every language: a task reads its language's rows."""
    import pyarrow.parquet as pq

    for language in LANGUAGES:
        write_replica(
            corpus_records(corpus, language), tmp_path / language, language, shards=1, form="push-to-hub-parquet"
        )
    for split in ("train", "validation"):
        tables = [pq.read_table(tmp_path / lang / f"{lang}/{split}-00000-of-00001.parquet") for lang in LANGUAGES]
        (tmp_path / "mixed" / "data").mkdir(parents=True, exist_ok=True)
        import pyarrow as pa

        pq.write_table(pa.concat_tables(tables), tmp_path / "mixed" / "data" / f"{split}-00000-of-00001.parquet")
    cfg = data_cfg(tmp_path, hub_root=str(tmp_path / "mixed"))
    mixed = {language: csn.load_task_data(cfg, language) for language in LANGUAGES}
    alone = {
        language: csn.load_task_data(data_cfg(tmp_path / language, hub_root=str(tmp_path / language)), language)
        for language in LANGUAGES
    }
    for language in LANGUAGES:
        assert mixed[language].counts == alone[language].counts and mixed[language].counts["train_read"] == 60
        assert mixed[language].train == alone[language].train
        assert {record.language for record in mixed[language].train} == {language}


@pytest.mark.parametrize(
    "damage, names",
    [
        ("truncated zip", ["data/python.zip", "not a readable zip archive"]),
        ("truncated gz member", ["data/python.zip", "member python/final/jsonl/train/python_train_1.jsonl.gz"]),
        ("corrupt gz file", ["python/final/jsonl/train/python_train_1.jsonl.gz", "cannot read"]),
    ],
)
def test_a_damaged_archive_or_member_is_one_data_error_naming_the_file(corpus, tmp_path, damage, names):
    records = corpus_records(corpus, "python")
    form = "release-jsonl" if damage == "corrupt gz file" else "release-zip"
    write_replica(records, tmp_path / "root", "python", shards=2, form=form)
    if damage == "truncated zip":
        path = tmp_path / "root" / "data" / "python.zip"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "truncated gz member":
        _rewrite_zip_member(
            tmp_path / "root" / "data" / "python.zip", "python/final/jsonl/train/python_train_1.jsonl.gz"
        )
    else:
        path = tmp_path / "root" / "python/final/jsonl/train/python_train_1.jsonl.gz"
        path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError) as error:
        csn.load_task_data(data_cfg(tmp_path, hub_root=str(tmp_path / "root")), "python")
    message = str(error.value)
    assert "\n" not in message and all(name in message for name in names), message


def _rewrite_zip_member(path: Path, member: str) -> None:
    """The archive with `member` cut short (a valid zip entry holding a truncated gzip stream)."""
    with zipfile.ZipFile(path) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    contents[member] = contents[member][: len(contents[member]) // 2]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data)


def test_bad_lines_in_a_zip_member_are_counted_not_fatal(corpus, tmp_path):
    path = tmp_path / "root" / "data" / "python.zip"
    write_replica(corpus_records(corpus, "python"), tmp_path / "root", "python", shards=1, form="release-zip")
    with zipfile.ZipFile(path) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    member = "python/final/jsonl/train/python_train_0.jsonl.gz"
    contents[member] = gzip.compress(gzip.decompress(contents[member]) + b"{not json\n")
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    task = csn.load_task_data(data_cfg(tmp_path, hub_root=str(tmp_path / "root")), "python")
    assert task.counts["train_read"] == 61 and task.split_skips["train"]["bad_json"] == 1


# --- local fingerprints -------------------------------------------------------------------------------


def test_the_fingerprint_is_of_content_and_its_hashes_are_cached(replicas, tmp_path, monkeypatch):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(replicas["release-jsonl"], folder)
    original = resolve_data(data_cfg(tmp_path, hub_root=str(replicas["release-jsonl"])), LANGUAGES)
    copied = resolve_data(data_cfg(tmp_path, hub_root=str(folder)), LANGUAGES)
    assert copied.fingerprint == original.fingerprint and copied.identity() == original.identity()
    hashed = []
    monkeypatch.setattr(source, "file_sha256", lambda path: hashed.append(path) or "0" * 64)
    assert resolve_data(data_cfg(tmp_path, hub_root=str(folder)), LANGUAGES) == copied  # every hash from the cache
    assert hashed == []
    monkeypatch.undo()
    part = folder / "python/final/jsonl/valid/python_valid_0.jsonl.gz"
    rows = gzip.decompress(part.read_bytes()).splitlines()
    part.write_bytes(gzip.compress(b"\n".join(reversed(rows)) + b"\n"))  # same records, other bytes
    assert resolve_data(data_cfg(tmp_path, hub_root=str(folder)), LANGUAGES).fingerprint != original.fingerprint


# --- the hub, offline, from a Hugging Face cache ------------------------------------------------------


def test_the_hub_default_resolves_offline_from_the_cache_and_records_form_and_commit(replicas, offline_cache, tmp_path):
    commit = place_in_cache(replicas["parquet-conversion"], offline_cache, HUB_ID, "dataset", "refs/convert/parquet")
    ref = offline_cache / f"datasets--{HUB_ID.replace('/', '--')}" / "refs" / "refs" / "convert" / "parquet"
    assert ref.read_text() == commit  # huggingface_hub's own path for a revision with a slash
    cfg = data_cfg(tmp_path)
    assert (cfg.source, cfg.hub_revision, cfg.hub_root) == ("hub", "auto", "")
    data = resolve_data(cfg, LANGUAGES)
    local = resolve_data(data_cfg(tmp_path, hub_root=str(replicas["parquet-conversion"])), LANGUAGES)
    record = data.as_record()
    assert record["kind"] == "hub" and record["id"] == HUB_ID and record["fingerprint"] is None
    assert (record["revision"], record["commit"], record["form"]) == (
        "refs/convert/parquet",
        commit,
        "parquet-conversion",
    )
    assert (record["cached"], record["download_bytes"]) == (True, 0)
    assert data.files == local.files and json.loads(json.dumps(record))["files"][0] == list(local.files[0])
    assert data.identity() == f"parquet-conversion@{commit}"
    line = describe(record)
    assert line.startswith(f"{HUB_ID} @ refs/convert/parquet (commit {commit[:12]}), form parquet-conversion: ")
    assert line.endswith(", cached")
    task = csn.load_task_data(cfg, "python", data)
    assert task.train == csn.load_task_data(data_cfg(tmp_path / "l", hub_root=str(local.id)), "python").train
    assert task.source == data


def test_auto_takes_main_without_a_conversion_and_the_conversion_first_when_both(replicas, offline_cache, tmp_path):
    main_commit = place_in_cache(replicas["release-zip"], offline_cache, HUB_ID, "dataset", "main")
    data = resolve_data(data_cfg(tmp_path), LANGUAGES)
    assert (data.revision, data.commit, data.form) == ("main", main_commit, "release-zip")
    assert data.files == (("data/javascript.zip", data.files[0][1]), ("data/python.zip", data.files[1][1]))
    zipped = csn.load_task_data(data_cfg(tmp_path), "javascript", data)
    conversion = place_in_cache(
        replicas["parquet-conversion"], offline_cache, HUB_ID, "dataset", "refs/convert/parquet"
    )
    data = resolve_data(data_cfg(tmp_path), LANGUAGES)
    assert (data.revision, data.commit, data.form) == ("refs/convert/parquet", conversion, "parquet-conversion")
    explicit = resolve_data(data_cfg(tmp_path, hub_revision="main"), LANGUAGES)
    assert (explicit.commit, explicit.form) == (main_commit, "release-zip")  # an explicit revision is read alone
    assert csn.load_task_data(data_cfg(tmp_path), "javascript", data).train == zipped.train


def test_an_explicit_commit_reads_the_recorded_bytes_and_gives_the_recorded_records(replicas, offline_cache, tmp_path):
    place_in_cache(replicas["push-to-hub-parquet"], offline_cache, HUB_ID, "dataset", "main")
    data = resolve_data(data_cfg(tmp_path), LANGUAGES)
    task = csn.load_task_data(data_cfg(tmp_path), "python", data)
    recorded = json.loads(json.dumps(data.as_record()))
    assert DataSource.from_record(recorded) == data
    pinned_cfg = data_cfg(tmp_path / "again", hub_revision=recorded["commit"])  # a fresh sample cache
    pinned = resolve_data(pinned_cfg, LANGUAGES)
    assert (pinned.commit, pinned.files, pinned.form) == (data.commit, data.files, data.form)
    again = csn.load_task_data(pinned_cfg, "python", pinned)
    assert (again.train, again.valid, again.counts) == (task.train, task.valid, task.counts)
    rerun = csn.load_task_data(pinned_cfg, "python", DataSource.from_record(recorded))
    assert (rerun.train, rerun.valid) == (task.train, task.valid)


def test_another_commit_of_the_same_revision_never_reuses_a_cached_sample(corpus, replicas, offline_cache, tmp_path):
    first = place_in_cache(replicas["parquet-conversion"], offline_cache, HUB_ID, "dataset", "refs/convert/parquet")
    cfg = data_cfg(tmp_path)
    before = csn.load_task_data(cfg, "python")
    changed = tmp_path / "changed"
    records = corpus_records(corpus, "python")
    records["train"] = [replace(r, docstring=f"{r.docstring} Edited.") for r in records["train"]]
    for language in LANGUAGES:
        write_replica(records if language == "python" else corpus_records(corpus, language), changed, language, 2)
    second = place_in_cache(changed, offline_cache, HUB_ID, "dataset", "refs/convert/parquet")
    assert second != first
    after = csn.load_task_data(cfg, "python")  # same config, same sample cache folder
    assert after.source.commit == second and all(r.docstring.endswith("Edited.") for r in after.train)
    pinned = csn.load_task_data(replace(cfg, hub_revision=first), "python")
    assert pinned.train == before.train and pinned.source.commit == first


def test_offline_a_split_missing_from_the_cache_fails_at_resolution_naming_it(replicas, offline_cache, tmp_path):
    import shutil

    commit = place_in_cache(replicas["parquet-conversion"], offline_cache, HUB_ID, "dataset", "refs/convert/parquet")
    snapshot = offline_cache / f"datasets--{HUB_ID.replace('/', '--')}" / "snapshots" / commit
    shutil.rmtree(snapshot / "javascript" / "validation")
    assert resolve_data(data_cfg(tmp_path), ["python"]).commit == commit
    with pytest.raises(DataError) as error:
        resolve_data(data_cfg(tmp_path, hub_revision="refs/convert/parquet"), LANGUAGES)
    message = str(error.value)
    assert "\n" not in message and "offline mode" in message and str(offline_cache) in message
    assert f"{HUB_ID}@refs/convert/parquet (parquet-conversion): no javascript valid split" in message


def test_an_online_resolution_lists_once_downloads_by_commit_and_leaves_the_cache_for_offline_runs(
    replicas, monkeypatch, tmp_path
):
    """The hub's answers are replayed from a replica; every step after them is the code an online run takes."""
    import huggingface_hub
    import huggingface_hub.constants

    folder, commit = replicas["release-jsonl"], "c" * 40
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hub, "hub_unavailable", lambda: None)
    asked = []

    def dataset_info(self, repo_id, revision=None, files_metadata=False):
        asked.append(revision)
        if revision != "main":
            raise RuntimeError(f"Revision Not Found for url: .../{revision}")
        siblings = [SimpleNamespace(rfilename=path, size=size) for path, size in list_folder(folder)]
        return SimpleNamespace(sha=commit, siblings=siblings)

    def hf_hub_download(repo_id, filename, repo_type=None, revision=None):
        assert (repo_id, repo_type, revision) == (HUB_ID, "dataset", commit)
        target = snapshot_folder(repo_id, "dataset", revision) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((folder / filename).read_bytes())
        return str(target)

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", dataset_info)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    data = resolve_data(data_cfg(tmp_path), LANGUAGES)
    assert asked == ["refs/convert/parquet", "main"]
    assert (data.revision, data.commit, data.form, data.cached) == ("main", commit, "release-jsonl", False)
    assert data.download_bytes == sum(size for _, size in data.files) > 0
    task = csn.load_task_data(data_cfg(tmp_path), "python", data)
    assert (repo_folder(HUB_ID, "dataset") / "refs" / "main").read_text() == commit
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "hub_unavailable", lambda: "offline mode (HF_HUB_OFFLINE)")
    offline = resolve_data(data_cfg(tmp_path), ["python"])
    assert (offline.commit, offline.form, offline.cached, offline.download_bytes) == (commit, "release-jsonl", True, 0)
    assert csn.load_task_data(data_cfg(tmp_path / "fresh"), "python", offline).train == task.train
    # offline, the listing saved when the hub answered says what a complete download holds
    (snapshot_folder(HUB_ID, "dataset", commit) / data.files[-1][0]).unlink()
    with pytest.raises(DataError, match=rf"{data.files[-1][0]} and 0 more not in the local cache"):
        resolve_data(data_cfg(tmp_path), ["python"])
