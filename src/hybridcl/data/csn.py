"""CodeSearchNet in: read a language split from the hub or local files, sample it, validate and normalise.

Every source goes through `to_record`, so hub rows, local jsonl and parquet give the same pairs. A bad
record is skipped and counted under one of `SKIP_REASONS`; a source that cannot be read is a DataError.
A task's train and valid samples (`load_task_data`) are drawn by a content hash (`sample_split`), so they
are the same on every machine, and cached. Which files a split is read from, and in which of
CodeSearchNet's forms, is hybridcl.data.source's DataSource (hybridcl.data.forms, .readers, .hub).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import re
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from hybridcl.atomic import atomic_path
from hybridcl.data.forms import data_files, member_pattern
from hybridcl.data.pinning import DataSource
from hybridcl.data.readers import file_jsonl_rows, read_split_files
from hybridcl.data.schema import HUB_COLUMNS, DataError, Record, check_corpus_layout, dedup_key
from hybridcl.data.source import local_paths, resolve_data, split_files, split_identity
from hybridcl.data.text import clean_docstring, strip_python_docstring
from hybridcl.settings import LANGUAGES, DataConfig

SKIP_REASONS = (
    "bad_json",
    "missing_field",
    "empty_code",
    "empty_docstring",
    "non_utf8",
    "wrong_language",
    "too_long",
    "code_too_long",
    "duplicate",
)
SPLIT_NAMES = {"pretrain": "pretrain", "train": "train", "valid": "valid", "validation": "valid", "test": "test"}


def to_record(row: dict, language: str | None = None, max_record_chars: int = 20_000) -> Record | str:
    """One raw row (original or hub column names) -> a normalised Record, or the reason to skip it.

    `language`, when given, is the expected language; `too_long` is judged on the fields as stored.
    """
    row = {HUB_COLUMNS.get(key, key): value for key, value in row.items()}
    code, docstring = row.get("code"), row.get("docstring")
    if docstring is None and row.get("docstring_tokens"):
        docstring = " ".join(row["docstring_tokens"])
    row_language = row.get("language") or language
    if not isinstance(code, str) or not isinstance(docstring, str) or not row_language:
        return "missing_field"
    if language and row_language != language:
        return "wrong_language"
    if max(len(code), len(docstring)) > max_record_chars:
        return "too_long"
    if not code.strip():
        return "empty_code"
    docstring = clean_docstring(docstring)
    if not docstring:
        return "empty_docstring"
    partition = _text(row, "partition")
    return Record(
        repo=_text(row, "repo"),
        path=_text(row, "path"),
        func_name=_text(row, "func_name"),
        language=row_language,
        code=strip_python_docstring(code) if row_language == "python" else code,
        docstring=docstring,
        partition=SPLIT_NAMES.get(partition, partition),
        url=_text(row, "url"),
        sha=_text(row, "sha"),
        original_string=_text(row, "original_string"),
    )


def _text(row: dict, key: str) -> str:
    value = row.get(key)
    return value if isinstance(value, str) else ""


def validate(rows: Iterable[dict], language: str | None, max_record_chars: int, skips: Counter) -> Iterator[Record]:
    """The usable records among `rows`; each skipped row is counted in `skips` by reason."""
    for row in rows:
        result = to_record(row, language, max_record_chars)
        if isinstance(result, str):
            skips[result] += 1
        else:
            yield result


def read_records(
    path: str | Path,
    language: str | None = None,
    *,
    max_record_chars: int = 20_000,
    skips: Counter | None = None,
) -> Iterator[Record]:
    """Records from a .jsonl / .jsonl.gz / .parquet file, or from every such file below a directory (sorted)."""
    if language is not None:
        _check_language(language)
    skips = Counter() if skips is None else skips
    for file in data_files(path):
        yield from validate(_file_rows(file, skips), language, max_record_chars, skips)


def _file_rows(file: Path, skips: Counter) -> Iterator[dict]:
    try:
        yield from (_parquet_rows(file) if file.suffix == ".parquet" else file_jsonl_rows(file, skips))
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{file}: cannot read ({error})") from error


def _parquet_rows(file: Path) -> Iterator[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        for batch in pq.ParquetFile(file).iter_batches(batch_size=1024):
            yield from batch.to_pylist()
    except pa.ArrowException as error:
        raise DataError(f"{file}: cannot read ({error})") from error


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise DataError(f"unknown language {language!r}; known: {list(LANGUAGES)}")


def dedup(records: Iterable[Record], skips: Counter, seen: set[str] | None = None) -> list[Record]:
    """`records` without exact duplicates (schema.dedup_key) or keys already in `seen`, counted as duplicate."""
    seen = set() if seen is None else seen
    unique = []
    for record in records:
        key = dedup_key(record)
        if key in seen:
            skips["duplicate"] += 1
        else:
            seen.add(key)
            unique.append(record)
    return unique


def read_split(
    cfg: DataConfig, language: str, split: str, source: DataSource | None = None
) -> tuple[list[dict], Counter]:
    """The raw rows of one language split, read from exactly the files `source` names (resolved from
    `cfg` when not given), and the lines that could not be read as rows, by reason."""
    source = source or resolve_data(cfg, [language], [split])
    rels, mixed = split_files(source, language, split)
    files = local_paths(source, rels)
    if source.form != "corpus":
        return read_split_files(source.form, files, language, split, mixed)
    unreadable: Counter = Counter()
    return [row for file, _ in files for row in _file_rows(file, unreadable)], unreadable


@dataclass
class SplitSample:
    """What sampling one split found: the records (or Pairs), and how many rows it read, examined and skipped."""

    records: list
    read: int  # lines or rows of the split, readable or not
    examined: int  # rows validated, in sampling order, to find `records`
    skips: Counter  # unreadable lines and examined rows that were skipped, by reason


def sample_split(
    rows: list[dict],
    unreadable: Counter,
    n: int,
    seed: int,
    language: str,
    max_record_chars: int,
    exclude: set[str] = frozenset(),
    max_code_chars: int = 0,
) -> SplitSample:
    """Up to `n` (0: every) valid, distinct records: rows are ranked by a hash of their content and the seed (the
    same order on every machine, whatever the files' order) and validated in that order until `n` pass.

    Only the examined rows are validated, so a 412K-row split costs a hash per row and about `n`
    validations. Records whose dedup key is in `exclude` (valid: the train sample's) count as duplicates;
    with `max_code_chars`, records whose code (as used: Python's without its docstring) is longer are
    skipped as code_too_long.
    """

    def validated(row: dict) -> Record | str:
        result = to_record(row, language, max_record_chars)
        if not isinstance(result, str) and max_code_chars and len(result.code) > max_code_chars:
            return "code_too_long"
        return result

    return sample_ranked(rows, unreadable, n, lambda row: _row_key(row, seed), validated, dedup_key, exclude)


def sample_ranked(
    rows: list[dict],
    unreadable: Counter,
    n: int,
    rank: Callable[[dict], bytes],
    validate: Callable[[dict], Any],
    key: Callable[[Any], str],
    exclude: Iterable[str] = (),
) -> SplitSample:
    """Up to `n` (0: every) valid, distinct items: rows ordered by `rank`, validated in that order until `n`
    pass. `validate` gives an item or the reason to skip the row; an item whose `key` was seen (or is in
    `exclude`) is skipped as duplicate."""
    order = sorted(range(len(rows)), key=lambda i: rank(rows[i]))
    skips, seen, items, examined = Counter(unreadable), set(exclude), [], 0
    for i in order:
        if len(items) == (n or len(rows)):
            break
        examined += 1
        result = validate(rows[i])
        item_key = None if isinstance(result, str) else key(result)
        if item_key is None or item_key in seen:
            skips[result if item_key is None else "duplicate"] += 1
            continue
        seen.add(item_key)
        items.append(result)
    return SplitSample(items, len(rows) + sum(unreadable.values()), examined, skips)


def _row_key(row: dict, seed: int) -> bytes:
    code = row.get("code", row.get("func_code_string"))
    docstring = row.get("docstring", row.get("func_documentation_string"))
    return hashlib.sha1(f"{seed}\0{code}\0{docstring}".encode("utf-8", "replace")).digest()


@dataclass
class TaskData:
    task: str  # the task's key: a CodeSearchNet language, or a stream task's name (`translate_java-cs`)
    train: list  # Record (CodeSearchNet) or Pair (hybridcl.data.schema) items
    valid: list  # the evaluation sample, drawn from the split `eval_split`
    split_skips: dict[str, Counter]  # "train" / eval_split -> skipped lines and records by reason
    counts: dict[str, int]  # per split: <split>_read, <split>_examined, <split> (records used)
    source: DataSource | None = None  # where the records were read from, pinned (DataSource.as_record())
    eval_split: str = "valid"

    @property
    def skips(self) -> Counter:
        """Skipped lines and records by reason, both splits."""
        return sum(self.split_skips.values(), Counter())


def load_task_data(
    cfg: DataConfig, language: str, source: DataSource | None = None, eval_split: str = "valid"
) -> TaskData:
    """The sampled train and evaluation records of one language; the evaluation sample (`cfg.n_valid`
    records of `eval_split`, valid or test) never repeats a train record.

    They are read from exactly the files `source` names (by default `resolve_data(cfg, [language], ("train",
    eval_split))`).
    The samples are cached in `cfg.cache_dir`, keyed by the split's pinned files (commit or content
    hashes, see source.split_identity) and everything that chooses them. A split without a single usable
    record is a DataError naming the split, where it was read from and what was skipped, so a run stops
    before any training instead of training on nothing.
    """
    source = source or resolve_data(cfg, [language], ("train", eval_split))
    train = _cached_sample(cfg, language, "train", cfg.n_train, set(), source)
    evaluation = _cached_sample(cfg, language, eval_split, cfg.n_valid, {dedup_key(r) for r in train.records}, source)
    where = functools.partial(split_location, source, language)
    return task_data(language, {"train": train, eval_split: evaluation}, source, eval_split, where)


def task_data(
    task: str, samples: dict[str, SplitSample], source: DataSource, eval_split: str, where: Callable[[str], str]
) -> TaskData:
    """The TaskData of a task's train and evaluation samples; a split without a single usable item is a
    DataError naming the split, where it was read from (`where(split)`) and what was skipped."""
    counts, skips = {}, {}
    for split, sample in samples.items():
        if not sample.records:
            raise DataError(
                f"{task} {split} split has no usable records ({where(split)}: "
                f"{sample.read} read, all skipped{format_skips(sample.skips, ': ')})"
            )
        counts.update({f"{split}_read": sample.read, f"{split}_examined": sample.examined, split: len(sample.records)})
        skips[split] = sample.skips
    return TaskData(task, samples["train"].records, samples[eval_split].records, skips, counts, source, eval_split)


SAMPLE_CACHE_VERSION = 2


def _cached_sample(
    cfg: DataConfig, language: str, split: str, n: int, exclude: set[str], source: DataSource
) -> SplitSample:
    identity = json.dumps(
        [
            SAMPLE_CACHE_VERSION,
            split_identity(source, language, split, cfg.cache_dir),
            language,
            split,
            n,
            cfg.sample_seed,
            cfg.max_record_chars,
            cfg.max_code_chars,
            hashlib.sha1("\n".join(sorted(exclude)).encode()).hexdigest(),
        ]
    )
    path = Path(cfg.cache_dir, "samples", hashlib.sha1(identity.encode()).hexdigest() + ".json.gz")
    if path.is_file():
        with gzip.open(path, "rt", encoding="utf-8") as file:
            saved = json.load(file)
        return SplitSample(
            [Record(**fields) for fields in saved["records"]], saved["read"], saved["examined"], Counter(saved["skips"])
        )
    rows, unreadable = read_split(cfg, language, split, source)
    sample = sample_split(
        rows, unreadable, n, cfg.sample_seed, language, cfg.max_record_chars, exclude, cfg.max_code_chars
    )
    saved = {
        "records": [asdict(r) for r in sample.records],
        "read": sample.read,
        "examined": sample.examined,
        "skips": dict(sample.skips),
    }
    with atomic_path(path) as tmp:  # one dumps and one write: json.dump would write each token to gzip
        tmp.write_bytes(gzip.compress(json.dumps(saved).encode("utf-8"), compresslevel=6))
    return sample


def split_location(source: DataSource, language: str, split: str) -> str:
    """Where a split is read from, for messages: its folder, its file (and zip members), or its shards."""
    rels, _ = split_files(source, language, split)
    if source.form in ("parquet-conversion", "release-jsonl"):
        where = os.path.commonpath([os.path.dirname(rel) for rel in rels])
    elif source.form == "push-to-hub-parquet":
        where = f"{os.path.dirname(rels[0])}/{os.path.basename(rels[0]).split('-')[0]}-*.parquet".lstrip("/")
    elif source.form == "release-zip":
        where = f"{rels[0]}:{member_pattern(language, split)}"
    else:
        where = rels[0] if len(rels) == 1 else os.path.commonpath(rels)
    if source.kind == "hub":
        return f"{source.id}@{source.commit[:12]}/{where}"
    return str(Path(source.id, where))


def format_skips(skips: Counter, lead: str = "", order: Sequence[str] = SKIP_REASONS) -> str:
    """`lead` + "bad_json 3, duplicate 1" in `order` (other reasons after them, sorted), or "" when nothing
    was skipped."""
    reasons = [*order, *sorted(set(skips) - set(order))]
    text = ", ".join(f"{reason} {skips[reason]:,}" for reason in reasons if skips[reason])
    return lead + text if text else ""


@dataclass
class CheckReport:
    path: str
    counts: dict[str, int]  # usable records by split (by file name where neither file nor record names one)
    skips: Counter

    @property
    def usable(self) -> bool:
        return any(self.counts.values())

    def summary(self) -> str:
        lines = [f"{self.path}: {sum(self.counts.values())} usable record(s)"]
        lines += [f"  {group}: {count}" for group, count in sorted(self.counts.items())]
        lines.append(f"skipped: {sum(self.skips.values())}")
        lines += [f"  {reason}: {self.skips[reason]}" for reason in SKIP_REASONS if self.skips[reason]]
        return "\n".join(lines)


def check_path(path: str | Path, language: str | None = None) -> CheckReport:
    """Validate CodeSearchNet-schema files and count usable records by split and skipped ones by reason.

    Without `language`, each file's expected language is the last directory name (from `path` down) or
    file-name word that is a known language; with none, any language is accepted.
    """
    if language is not None:
        _check_language(language)
    root, skips = Path(path), Counter()
    if root.is_dir():
        check_corpus_layout(root)
    groups: dict[str, list[Record]] = {}
    for file in data_files(root):
        parts = root.parts + (file.relative_to(root).parts if root.is_dir() else ())
        words = [part.lower() for part in parts[:-1]] + re.findall(r"[a-z]+", parts[-1].lower())
        file_language = language or next((word for word in reversed(words) if word in LANGUAGES), None)
        file_split = next((SPLIT_NAMES[word] for word in reversed(words) if word in SPLIT_NAMES), None)
        for record in read_records(file, file_language, skips=skips):
            groups.setdefault(file_split or record.partition or file.name, []).append(record)
    counts = {group: len(dedup(records, skips)) for group, records in groups.items()}
    return CheckReport(str(path), counts, skips)
