"""Replicas of CodeSearchNet's served forms (hybridcl.data.forms), written from records, and a replica
placed in a Hugging Face cache: the hub paths, run without the hub.

`write_replica` writes one language in one form: the parquet forms with the hub dataset's column names,
the release forms as the original jsonl.gz files (`<language>_<split>_<k>.jsonl.gz`), zipped for
release-zip. `hybridcl.hf_cache.place_in_cache(folder, cache_dir, repo_id, "dataset", revision)` lays a
replica folder out as huggingface_hub's cache holds a dataset revision (`blobs/`, `snapshots/<commit>/`,
`refs/<revision>`), so `data.source=hub` finds it offline.
"""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path
from typing import Mapping

from hybridcl.data.forms import FORMS, HUB_SPLITS, RELEASE_SPLITS
from hybridcl.data.schema import HUB_COLUMNS, Record

DEFAULT_FORM = "parquet-conversion"


def write_replica(
    records_by_split: dict[str, list[Record]],
    out_dir: str | Path,
    language: str,
    shards: int | Mapping[str, int] = 3,
    form: str = DEFAULT_FORM,
) -> list[Path]:
    """Write `records_by_split` ("train"/"valid"/"test") of one language in `form` under `out_dir`, each
    split in `shards` files (or `shards[split]`): parquet files, or the release's jsonl.gz parts; returns
    the files written."""
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; known: {list(FORMS)}")
    out_dir = Path(out_dir)
    counts = {split: shards if isinstance(shards, int) else shards[split] for split in records_by_split}
    if form == "release-zip":
        return [_write_zip(records_by_split, out_dir / "data" / f"{language}.zip", language, counts)]
    written = []
    for split, records in records_by_split.items():
        for shard, chunk in enumerate(_chunks(records, counts[split])):
            path = out_dir / _shard_path(form, language, split, shard, counts[split])
            path.parent.mkdir(parents=True, exist_ok=True)
            if form == "release-jsonl":
                path.write_bytes(_jsonl_gz(chunk, split))
            else:
                _write_parquet(chunk, split, path)
            written.append(path)
    return written


def _shard_path(form: str, language: str, split: str, shard: int, shards: int) -> str:
    if form == "parquet-conversion":
        return f"{language}/{HUB_SPLITS[split]}/{shard:04d}.parquet"
    if form == "push-to-hub-parquet":
        return f"{language}/{HUB_SPLITS[split]}-{shard:05d}-of-{shards:05d}.parquet"
    return _release_member(language, split, shard)


def _release_member(language: str, split: str, shard: int) -> str:
    name = RELEASE_SPLITS[split]
    return f"{language}/final/jsonl/{name}/{language}_{name}_{shard}.jsonl.gz"


def _chunks(records: list[Record], shards: int) -> list[list[Record]]:
    size = max(1, -(-len(records) // shards))
    return [records[shard * size : (shard + 1) * size] for shard in range(shards)]


def _jsonl_gz(records: list[Record], split: str) -> bytes:
    lines = (json.dumps({**record.to_csn(), "partition": RELEASE_SPLITS[split]}) for record in records)
    return gzip.compress("".join(line + "\n" for line in lines).encode(), compresslevel=6, mtime=0)


def _write_zip(records_by_split: dict[str, list[Record]], path: Path, language: str, shards: dict[str, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for split, records in records_by_split.items():
            for shard, chunk in enumerate(_chunks(records, shards[split])):
                archive.writestr(_release_member(language, split, shard), _jsonl_gz(chunk, split))
    return path


def _write_parquet(records: list[Record], split: str, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    to_hub = {ours: theirs for theirs, ours in HUB_COLUMNS.items()}
    rows = [{to_hub[key]: value for key, value in _hub_fields(record, split).items()} for record in records]
    pq.write_table(pa.Table.from_pylist(rows, schema=_hub_schema()), path)


def _hub_fields(record: Record, split: str) -> dict:
    return {
        "repo": record.repo,
        "path": record.path,
        "func_name": record.func_name,
        "original_string": record.original_string or record.code,
        "language": record.language,
        "code": record.code,
        "code_tokens": record.code.split(),
        "docstring": record.docstring,
        "docstring_tokens": record.docstring.split(),
        "partition": RELEASE_SPLITS[split],
        "url": record.url,
    }


def _hub_schema():
    import pyarrow as pa

    lists = ("func_code_tokens", "func_documentation_tokens")
    return pa.schema([(name, pa.list_(pa.string()) if name in lists else pa.string()) for name in HUB_COLUMNS])
