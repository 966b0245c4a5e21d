"""Rows of one language split, read from the local files of a recognised form (hybridcl.data.forms).

Every form gives rows with the same fields (`FIELDS`, original CodeSearchNet names), so one function
read from any form gives the same Record. Parquet files are read by column, the release's zip members
are streamed (zip member -> gzip -> lines) without unpacking the archive, and every failure to read a
file is a one-line DataError naming the file (and the zip member).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zipfile
import zlib
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from hybridcl.data.forms import RELEASE_SPLITS, member_pattern, natural_key
from hybridcl.data.schema import HUB_COLUMNS, DataError

# The fields a Record is made of, by their original names; the token lists and sha are left out.
FIELDS = ("repo", "path", "func_name", "language", "code", "docstring", "url", "partition")
REQUIRED = (("func_code_string", "code"), ("func_documentation_string", "docstring"))
UNREADABLE = (OSError, EOFError, zlib.error, zipfile.BadZipFile, zipfile.LargeZipFile)

# One file to read: its local path, and its name for messages (a path relative to the source's root).
Source = tuple[Path, str]


def read_split_files(
    form: str, files: Sequence[Source], language: str, split: str, mixed: bool = False
) -> tuple[list[dict], Counter]:
    """The rows of one language split from `files` of `form`, and the lines that were not rows, by reason.

    `mixed`: the files hold every language's rows; only `language`'s are returned.
    """
    unreadable: Counter = Counter()
    rows: list[dict] = []
    for path, label in files:
        where = f"{label} ({language} {split})"
        if form in ("parquet-conversion", "push-to-hub-parquet"):
            rows += parquet_rows(path, where, language if mixed else None)
        elif form == "release-zip":
            rows += zip_rows(path, where, language, split, unreadable)
        else:
            rows += _guarded(where, lambda: list(map(project, file_jsonl_rows(path, unreadable))))
    return rows, unreadable


def project(row: dict) -> dict:
    """`row` under original names, with only FIELDS (and docstring_tokens where there is no docstring)."""
    if "code" not in row:  # hub column names (the release's rows, the common case, have the original ones)
        row = {HUB_COLUMNS.get(key, key): value for key, value in row.items()}
    kept = {key: row[key] for key in FIELDS if key in row}
    if "docstring" not in kept and "docstring_tokens" in row:
        kept["docstring_tokens"] = row["docstring_tokens"]
    return kept


def parquet_rows(path: Path, where: str, language: str | None = None) -> list[dict]:
    """FIELDS of a parquet file's rows (hub or original column names); with `language`, only its rows."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        missing = [hub for hub, ours in REQUIRED if hub not in names and ours not in names]
        if missing:
            raise DataError(f"{where}: column(s) {missing} missing; the file has {names}")
        columns = [name for name in names if HUB_COLUMNS.get(name, name) in FIELDS]
        table = parquet.read(columns=columns)
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{where}: not a readable parquet file ({_first_line(error)})") from None
    table = table.rename_columns([HUB_COLUMNS.get(name, name) for name in table.column_names])
    if language is not None and "language" in table.column_names:
        table = table.filter(pc.equal(table["language"], language))
    return table.to_pylist()


def zip_rows(path: Path, where: str, language: str, split: str, unreadable: Counter) -> list[dict]:
    """Rows of the release's `<language>/final/jsonl/<split>/*.jsonl.gz` members of a zip, streamed."""
    pattern = re.compile(rf"(?:.*/)?{language}/final/jsonl/{RELEASE_SPLITS[split]}/[^/]+\.jsonl(?:\.gz)?")
    rows: list[dict] = []
    try:
        archive = zipfile.ZipFile(path)
    except UNREADABLE as error:
        raise DataError(f"{where}: not a readable zip archive ({_first_line(error)})") from None
    with archive:
        members = sorted((name for name in archive.namelist() if pattern.fullmatch(name)), key=natural_key)
        if not members:
            shown = ", ".join(archive.namelist()[:3])
            raise DataError(f"{where}: no {member_pattern(language, split)} in the archive (it holds {shown}, ...)")
        for member in members:
            rows += _guarded(f"{where}: member {member}", lambda: _member_rows(archive, member, unreadable))
    return rows


def _member_rows(archive: zipfile.ZipFile, member: str, unreadable: Counter) -> list[dict]:
    with archive.open(member) as raw:
        stream = gzip.GzipFile(fileobj=raw) if member.endswith(".gz") else raw
        return [project(row) for row in jsonl_rows(io.BufferedReader(stream, 1 << 20), unreadable)]


def file_jsonl_rows(path: Path, unreadable: Counter) -> Iterator[dict]:
    """Rows of a .jsonl or .jsonl.gz file, all fields (see jsonl_rows)."""
    with (gzip.open if path.name.endswith(".gz") else open)(path, "rb") as lines:
        yield from jsonl_rows(lines, unreadable)


def jsonl_rows(lines: Iterable[bytes], unreadable: Counter) -> Iterator[dict]:
    """Rows of jsonl lines; each is decoded strictly, so one bad line costs one record (counted by reason)."""
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            unreadable["non_utf8"] += 1
            continue
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            yield row
        else:
            unreadable["bad_json"] += 1


def _guarded(where: str, read):
    """`read()`, with a file that cannot be read turned into a DataError naming `where`."""
    try:
        return read()
    except UNREADABLE as error:
        raise DataError(f"{where}: cannot read ({_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    return (str(error).strip() or type(error).__name__).splitlines()[0]
