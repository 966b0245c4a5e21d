"""CodeSearchNet in: read a language split from the hub or local files, validate and normalise every record.

Every source goes through `to_record`, so hub rows, local jsonl and parquet give the same pairs. A bad
record is skipped and counted under one of `SKIP_REASONS`; a source that cannot be read is a DataError.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
import zlib
from collections import Counter
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Iterable, Iterator

from hybridcl.config import LANGUAGES, DataConfig
from hybridcl.data.schema import HUB_COLUMNS, SPLITS, DataError, Record, dedup_key
from hybridcl.data.text import clean_docstring, strip_python_docstring

SKIP_REASONS = (
    "bad_json", "missing_field", "empty_code", "empty_docstring", "non_utf8", "wrong_language", "too_long", "duplicate",
)
HUB_SPLITS = {"train": "train", "valid": "validation", "test": "test"}
SPLIT_NAMES = {"train": "train", "valid": "valid", "validation": "valid", "test": "test"}
DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")
OFFLINE_HINT = (
    "offline alternatives: `hybridcl corpus build --out data/corpus` then `--set data.source=data/corpus`, "
    "or `--set data.source=DIR` with a directory of CodeSearchNet jsonl(.gz) files"
)


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


def data_files(path: str | Path) -> list[Path]:
    """`path` itself if it is a file, else the data files below it in sorted order."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or directory")
    files = sorted(file for file in path.rglob("*") if file.is_file() and file.name.endswith(DATA_SUFFIXES))
    if not files:
        raise DataError(f"{path}: no {'/'.join(DATA_SUFFIXES)} files in this directory")
    return files


def _file_rows(file: Path, skips: Counter) -> Iterator[dict]:
    try:
        yield from (_parquet_rows(file) if file.suffix == ".parquet" else _jsonl_rows(file, skips))
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{file}: cannot read ({error})") from error


def _jsonl_rows(file: Path, skips: Counter) -> Iterator[dict]:
    """Rows of a jsonl(.gz) file; each line is decoded strictly, so one bad line costs one record."""
    with (gzip.open if file.name.endswith(".gz") else open)(file, "rb") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                row = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError:
                skips["non_utf8"] += 1
                continue
            except json.JSONDecodeError:
                row = None
            if isinstance(row, dict):
                yield row
            else:
                skips["bad_json"] += 1


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


def load_split(cfg: DataConfig, language: str, split: str) -> tuple[list[Record], Counter]:
    """The validated, de-duplicated records of one language split, and the skip counts by reason."""
    _check_language(language)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; known: {list(SPLITS)}")
    skips: Counter = Counter()
    if cfg.source == "hub":
        records = validate(_hub_rows(cfg, language, split), language, cfg.max_record_chars, skips)
    else:
        path = split_path(cfg.source, language, split)
        records = read_records(path, language, max_record_chars=cfg.max_record_chars, skips=skips)
    return dedup(records, skips), skips


def split_path(source: str | Path, language: str, split: str) -> Path:
    """Where a local source keeps a split: the corpus layout, the original release layout, or one-language files."""
    source = Path(source)
    candidates = [
        source / language / f"{split}.jsonl.gz",
        source / language / f"{split}.jsonl",
        source / language / "final" / "jsonl" / split,
        source / f"{split}.jsonl.gz",
        source / f"{split}.jsonl",
    ]
    found = next((path for path in candidates if path.exists()), None)
    if found is None:
        raise DataError(f"no {language} {split} split in {source}; tried: {', '.join(map(str, candidates))}")
    return found


def _hub_rows(cfg: DataConfig, language: str, split: str) -> Iterator[dict]:
    import datasets

    try:
        dataset = datasets.load_dataset(cfg.hub_id, language, revision=cfg.hub_revision, split=HUB_SPLITS[split])
    except (OSError, datasets.exceptions.DatasetsError) as error:  # connection, offline and not-found errors
        where = f"{cfg.hub_id} ({language}, {split})"
        raise DataError(f"cannot load {where} from the Hugging Face hub: {error}; {OFFLINE_HINT}") from error
    for batch in dataset.with_format("arrow").iter(batch_size=1024):
        yield from batch.to_pylist()


def sample(records: list[Record], n: int, seed: int) -> list[Record]:
    """`n` records chosen by `seed`, independent of input order, hash() randomisation and machine."""
    ordered = sorted(records, key=_content_key)
    return ordered if n >= len(ordered) else random.Random(seed).sample(ordered, n)


def _content_key(record: Record) -> str:
    return hashlib.sha1("\0".join(astuple(record)).encode("utf-8")).hexdigest()


@dataclass
class TaskData:
    language: str
    train: list[Record]
    valid: list[Record]
    split_skips: dict[str, Counter]  # "train" / "valid" -> skipped records by reason
    counts: dict[str, int]  # train_available, train, valid_available (after removing train overlap), valid

    @property
    def skips(self) -> Counter:
        """Skipped records by reason, both splits."""
        return sum(self.split_skips.values(), Counter())

    def read(self, split: str) -> int:
        """Records read from the split: the usable ones plus the skipped ones."""
        return self.counts[f"{split}_available"] + sum(self.split_skips[split].values())


def load_task_data(cfg: DataConfig, language: str) -> TaskData:
    """The sampled train and valid records of one language; valid never repeats a train record.

    A split without a single usable record is a DataError naming the split, where it was read from and
    what was skipped, so a run stops before any training instead of training on nothing.
    """
    train_all, train_skips = load_split(cfg, language, "train")
    valid_all, valid_skips = load_split(cfg, language, "valid")
    valid_all = dedup(valid_all, valid_skips, seen={dedup_key(record) for record in train_all})
    for split, usable, skips in (("train", train_all, train_skips), ("valid", valid_all, valid_skips)):
        if not usable:
            raise DataError(f"{language} {split} split has no usable records ({split_location(cfg, language, split)}: "
                            f"{sum(skips.values())} read, all skipped{format_skips(skips, ': ')})")
    train, valid = sample(train_all, cfg.n_train, cfg.sample_seed), sample(valid_all, cfg.n_valid, cfg.sample_seed)
    counts = {
        "train_available": len(train_all), "train": len(train), "valid_available": len(valid_all), "valid": len(valid),
    }
    return TaskData(language, train, valid, {"train": train_skips, "valid": valid_skips}, counts)


def split_location(cfg: DataConfig, language: str, split: str) -> str:
    """Where a split is read from, for messages: a local path or the hub dataset."""
    if cfg.source == "hub":
        return f"{cfg.hub_id}@{cfg.hub_revision} {language}/{HUB_SPLITS[split]}"
    return str(split_path(cfg.source, language, split))


def format_skips(skips: Counter, lead: str = "") -> str:
    """`lead` + "bad_json 3, duplicate 1" in SKIP_REASONS order, or "" when nothing was skipped."""
    text = ", ".join(f"{reason} {skips[reason]:,}" for reason in SKIP_REASONS if skips[reason])
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
