"""CodeSearchNet from the hub, read by its files: the parquet conversion of `code-search-net/code_search_net`.

The dataset's own loading script no longer runs under datasets 5.x, and on the conversion's branch
`datasets.load_dataset(id, "python", revision="refs/convert/parquet")` finds a single `default` config
("BuilderConfig 'python' not found"). What the hub serves on that branch is a tree of files, one
folder per config (here: per language) and split (https://huggingface.co/docs/dataset-viewer/parquet):

    <root>/<language>/<split>/0000.parquet, 0001.parquet, ...   split: train, validation, test
    <root>/<language>/partial-<split>/0000.parquet, ...         the converter's folder for a split it
                                                                converted only in part (large splits)

`split_files` lists one language split's shards under a root that is an `hf://datasets/<id>@<revision>`
URL or a local folder laid out the same way (a replica, see `write_replica`); `read_rows` reads only
the columns a record needs. Both go through fsspec, so the hub and a replica take the same code path.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from hybridcl.config import DataConfig
from hybridcl.data.schema import HUB_COLUMNS, DataError, Record

HUB_SPLITS = {"train": "train", "valid": "validation", "test": "test"}
COLUMNS = (
    "repository_name",
    "func_path_in_repository",
    "func_name",
    "language",
    "func_code_string",
    "func_documentation_string",
    "func_code_url",
)
REQUIRED_COLUMNS = ("func_code_string", "func_documentation_string")
OFFLINE_HINT = (
    "offline alternatives: a local replica of the layout with `--set data.hub_root=DIR`, "
    "`hybridcl corpus build --out data/corpus` then `--set data.source=data/corpus`, "
    "or `--set data.source=DIR` with a directory of CodeSearchNet jsonl(.gz) files"
)


def hub_root(cfg: DataConfig) -> str:
    """`data.hub_root`, or the hub's own root for `data.hub_id` at `data.hub_revision`."""
    return cfg.hub_root or f"hf://datasets/{cfg.hub_id}@{quote(cfg.hub_revision, safe='')}"


def split_files(root: str, language: str, split: str) -> list[str]:
    """The parquet shards of one language split, in order; a DataError names what is missing."""
    import fsspec

    folder = HUB_SPLITS[split]
    fs, base = fsspec.core.url_to_fs(root)
    for name in (folder, f"partial-{folder}"):
        try:
            found = sorted(fs.glob(f"{base.rstrip('/')}/{language}/{name}/*.parquet"))
        except Exception as error:  # network and hub errors come in many types; all mean "cannot list"
            raise DataError(f"cannot list {root} ({language} {split}): {error}; {OFFLINE_HINT}") from None
        if found:
            return [fs.unstrip_protocol(path) for path in found]
    raise DataError(
        f"no {language} {split} split under {root}: expected {language}/{folder}/*.parquet "
        f"(or {language}/partial-{folder}/*.parquet)"
    )


def read_rows(files: list[str], language: str, split: str) -> list[dict]:
    """The rows of `files` with the columns of COLUMNS that they have, under the hub's column names."""
    return [row for path in files for row in _file_rows(path, language, split)]


def _file_rows(path: str, language: str, split: str) -> list[dict]:
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = f"{path} ({language} {split})"
    try:
        with fsspec.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            names = parquet.schema_arrow.names
            missing = [column for column in REQUIRED_COLUMNS if column not in names]
            if missing:
                raise DataError(f"{where}: column(s) {missing} missing; the file has {names}")
            return parquet.read(columns=[column for column in COLUMNS if column in names]).to_pylist()
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{where}: not a readable parquet file ({error})") from None


def write_replica(
    records_by_split: dict[str, list[Record]], out_dir: str | Path, language: str, shards: int = 3
) -> list[Path]:
    """Write `records_by_split` ("train"/"valid"/"test") in the conversion's layout and column names,
    each split in `shards` parquet files; returns the files written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    to_hub = {ours: theirs for theirs, ours in HUB_COLUMNS.items()}
    written = []
    for split, records in records_by_split.items():
        folder = Path(out_dir, language, HUB_SPLITS[split])
        folder.mkdir(parents=True, exist_ok=True)
        size = -(-len(records) // shards)
        for shard in range(shards):
            chunk = records[shard * size : (shard + 1) * size]
            rows = [{to_hub[key]: value for key, value in _hub_fields(record, split).items()} for record in chunk]
            path = folder / f"{shard:04d}.parquet"
            pq.write_table(pa.Table.from_pylist(rows, schema=_hub_schema()), path)
            written.append(path)
    return written


def _hub_fields(record: Record, split: str) -> dict:
    return {
        "repo": record.repo,
        "path": record.path,
        "func_name": record.func_name,
        "original_string": record.code,
        "language": record.language,
        "code": record.code,
        "code_tokens": record.code.split(),
        "docstring": record.docstring,
        "docstring_tokens": record.docstring.split(),
        "partition": HUB_SPLITS[split],
        "url": record.url,
    }


def _hub_schema():
    import pyarrow as pa

    lists = ("func_code_tokens", "func_documentation_tokens")
    return pa.schema([(name, pa.list_(pa.string()) if name in lists else pa.string()) for name in HUB_COLUMNS])
