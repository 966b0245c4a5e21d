"""CodeSearchNet's record schema: the interchange format of every data source here."""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from hybridcl.atomic import atomic_path
from hybridcl.errors import UserError

SPLITS = ("train", "valid", "test")
POOLS = ("pretrain", *SPLITS)  # a mined corpus's pools: `pretrain` is the stand-in base's alone
CORPUS_LAYOUT = 2  # summary.json's "layout" of a corpus with these pools, split by package-name hash


def check_corpus_layout(folder: str | Path) -> None:
    """Refuse a corpus written by an older `hybridcl corpus build` (no pretrain pool, other splits)."""
    summary = Path(folder) / "summary.json"
    if not summary.is_file():
        return  # not a mined corpus: CodeSearchNet files of another origin
    try:
        layout = json.loads(summary.read_text()).get("layout", 1)
    except (OSError, ValueError, AttributeError):
        layout = None
    if layout != CORPUS_LAYOUT:
        raise DataError(
            f"{folder} is a corpus of an older layout ({layout}; this hybridcl reads {CORPUS_LAYOUT}: "
            f"pools {', '.join(POOLS)}, by package-name hash); rebuild it: `rm -r {folder}` and "
            f"`hybridcl corpus build --out {folder}` (a config with offline.build rebuilds it on first use)"
        )


# The original CodeSearchNet jsonl fields, in their published order.
CSN_FIELDS = (
    "repo",
    "path",
    "func_name",
    "original_string",
    "language",
    "code",
    "code_tokens",
    "docstring",
    "docstring_tokens",
    "sha",
    "url",
    "partition",
)

# The Hugging Face `code_search_net` dataset's column names -> the original schema's.
HUB_COLUMNS = {
    "repository_name": "repo",
    "func_path_in_repository": "path",
    "func_name": "func_name",
    "whole_func_string": "original_string",
    "language": "language",
    "func_code_string": "code",
    "func_code_tokens": "code_tokens",
    "func_documentation_string": "docstring",
    "func_documentation_tokens": "docstring_tokens",
    "split_name": "partition",
    "func_code_url": "url",
}


@dataclass(frozen=True)
class Record:
    """One (code, docstring) pair; `code` holds the function without its docstring."""

    repo: str
    path: str
    func_name: str
    language: str
    code: str
    docstring: str
    partition: str = ""
    url: str = ""
    sha: str = ""
    original_string: str = ""

    def to_csn(self) -> dict:
        """The record as an original-schema jsonl object (token fields are whitespace tokens)."""
        row = asdict(self)
        row["code_tokens"] = self.code.split()
        row["docstring_tokens"] = self.docstring.split()
        row["original_string"] = self.original_string or self.code
        return {key: row[key] for key in CSN_FIELDS}


def normalized(text: str) -> str:
    """Whitespace-insensitive form used to find exact duplicates."""
    return " ".join(text.split())


def dedup_key(record: Record) -> str:
    return normalized(record.code)


def write_jsonl_gz(records: Iterable[Record], path: str | Path) -> int:
    """Write records atomically (temp file, then rename); returns how many were written. The gzip header
    carries no time and no file name, so the same records give the same bytes (and corpus fingerprint)."""
    count = 0
    with (
        atomic_path(path) as tmp,
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as packed,
        io.TextIOWrapper(packed, encoding="utf-8") as out,
    ):
        for record in records:
            out.write(json.dumps(record.to_csn(), ensure_ascii=False) + "\n")
            count += 1
    return count


class DataError(UserError, ValueError):
    """Input data that cannot be used: a missing path, an unknown language, nothing usable."""


@dataclass(frozen=True)
class Pair:
    """One example of a task: what the model reads (without its task's cue) and what it should write."""

    id: str
    source: str
    target: str
