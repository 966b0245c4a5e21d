"""CodeTask-CL's tasks (CodeXGLUE's concode, translate, summarize and refine) in the forms they are published in:
CodeT5's data folder, and the hub's CodeXGLUE datasets read by their parquet files.

    source = resolve_codexglue(cfg, "translate", "java-cs", ("train", "valid"))   # pinned, nothing read
    rows, unreadable = read_pairs(source, "translate", "java-cs", "train")        # raw {"id", "source", "target"}
    data = load_pair_task(cfg, "translate_java-cs", "translate", "java-cs", source, "valid")  # TaskData of Pairs

Both forms give the same pairs: every field is normalised as CodeT5's `read_<kind>_examples` (salesforce/CodeT5,
CodeT5/_utils.py) does it. Lines and json fields are `.strip()`ed; summarize joins `code_tokens` and
`docstring_tokens` with spaces and collapses whitespace, a newline inside a docstring token being dropped
(CodeT5's `.replace('\\n', '')`) and one inside a code token becoming a space. A pair is sampled like a
CodeSearchNet record (hybridcl.data.csn): rows ranked by a content hash, validated in that order, skipped ones
counted under PAIR_SKIP_REASONS, the samples cached by the split's pinned files. docs/codetask-cl.md ("Data
layouts") says where each layout comes from.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

from hybridcl.atomic import atomic_path
from hybridcl.data.csn import SplitSample, TaskData, sample_ranked, task_data
from hybridcl.data.forms import HUB_SPLITS, Listing, conversion_files, pushed_files
from hybridcl.data.hub import pin_hub_files
from hybridcl.data.pinning import DataSource
from hybridcl.data.readers import jsonl_rows
from hybridcl.data.schema import SPLITS, DataError, Pair, normalized
from hybridcl.data.source import files_identity, local_paths, local_source
from hybridcl.settings import DataConfig

CODEXGLUE_KINDS = ("concode", "translate", "summarize", "refine")
SUBTASKS = {
    "concode": ("none",),
    "translate": ("java-cs", "cs-java"),
    "summarize": ("ruby", "python", "javascript", "java", "go", "php"),
    "refine": ("small", "medium"),
}
HUB_IDS = {
    "concode": "google/code_x_glue_tc_text_to_code",
    "translate": "google/code_x_glue_cc_code_to_code_trans",
    "summarize": "google/code_x_glue_ct_code_to_text",
    "refine": "google/code_x_glue_cc_code_refinement",
}
PAIR_SKIP_REASONS = ("bad_json", "non_utf8", "missing_field", "empty_source", "empty_target", "too_long", "duplicate")

CODET5_FORM = "codet5-folder"
CODET5_LAYOUTS = {  # as CodeT5's get_filenames (CodeT5/utils.py) names them; <subtask> is filled in
    "concode": "concode/{train,dev,test}.json",
    "translate": "translate/{train,valid,test}.java-cs.txt.{java,cs}",
    "summarize": "summarize/<subtask>/{train,valid,test}.jsonl",
    "refine": "refine/<subtask>/{train,valid,test}.buggy-fixed.{buggy,fixed}",
}
# Where source and target are: the hub's columns, and the json fields of CodeT5's jsonl files (translate's
# and refine's files are named by them too). translate cs-java reads them the other way round.
FIELDS = {
    "concode": ("nl", "code"),
    "translate": ("java", "cs"),
    "summarize": ("code_tokens", "docstring_tokens"),
    "refine": ("buggy", "fixed"),
}
PAIR_SAMPLE_VERSION = 1


# ----------------------------------------------------------------------------------------------- layouts


def check_task(kind: str, subtask: str) -> None:
    if kind not in SUBTASKS:
        raise DataError(f"unknown CodeXGLUE task kind {kind!r}; known: {list(CODEXGLUE_KINDS)}")
    if subtask not in SUBTASKS[kind]:
        raise DataError(f"{kind} has no subtask {subtask!r}; known: {list(SUBTASKS[kind])}")


def fields(kind: str, subtask: str) -> tuple[str, str]:
    """(source field, target field) of a subtask."""
    source, target = FIELDS[kind]
    return (target, source) if subtask == "cs-java" else (source, target)


def codet5_files(kind: str, subtask: str, split: str) -> tuple[str, ...]:
    """The files of one split in CodeT5's data folder: one jsonl file, or (source, target) line-aligned files."""
    name = "dev" if kind == "concode" and split == "valid" else split
    if kind == "concode":
        return (f"concode/{name}.json",)
    if kind == "summarize":
        return (f"summarize/{subtask}/{name}.jsonl",)
    if kind == "refine":
        return tuple(f"refine/{subtask}/{name}.buggy-fixed.{field}" for field in fields(kind, subtask))
    return tuple(f"translate/{name}.java-cs.txt.{field}" for field in fields(kind, subtask))


def codet5_layout(kind: str, subtask: str) -> str:
    return CODET5_LAYOUTS[kind].replace("<subtask>", subtask)


def hub_configs(kind: str, subtask: str) -> tuple[str, ...]:
    """The hub dataset's folders holding a subtask: its language or size, or the single config, which the
    conversion branch keeps in `default/` and push_to_hub on main in `data/`."""
    return (subtask,) if kind in ("summarize", "refine") else ("default", "data")


Found = dict[str, tuple[str, ...] | str]  # our split -> its parquet files in order, or why they cannot be read


def hub_layout(paths: Iterable[str], kind: str, subtask: str, where: str) -> tuple[str, Found]:
    """(form, files by split) of the first hub form with a file of the subtask's config in `paths`."""
    paths, configs = list(paths), hub_configs(kind, subtask)
    one_group = lambda config: configs[-1] if config in configs else None  # noqa: E731 (messages name configs[-1])
    for form, find in (("parquet-conversion", conversion_files), ("push-to-hub-parquet", pushed_files)):
        found = {split: files for (_, split), files in find(paths, one_group).items()}
        if found:
            return form, found
    shown = ", ".join(sorted(paths)[:5]) + (", ..." if len(paths) > 5 else "")
    raise DataError(
        f"{where} holds no parquet of {kind} {subtask}; looked for {configs[0]}/<split>/NNNN.parquet "
        f"(refs/convert/parquet) and {configs[-1]}/<split>-NNNNN-of-NNNNN.parquet (push_to_hub); "
        f"found {len(paths)} file(s){': ' + shown if paths else ''}"
    )


def _hub_split(found: Found, form: str, kind: str, subtask: str, split: str, where: str) -> tuple[str, ...]:
    files = found.get(split)
    if isinstance(files, str):
        raise DataError(f"{where} ({form}): {files}")
    if not files:
        configs = hub_configs(kind, subtask)
        expected = (
            f"{configs[0]}/{HUB_SPLITS[split]}/NNNN.parquet"
            if form == "parquet-conversion"
            else f"{configs[-1]}/{HUB_SPLITS[split]}-NNNNN-of-NNNNN.parquet"
        )
        have = ", ".join(sorted(found)) or "none"
        raise DataError(f"{where} ({form}): no {kind} {subtask} {split} split; expected {expected}; it has: {have}")
    return files


# ----------------------------------------------------------------------------------------------- resolving


def resolve_codexglue(cfg: DataConfig, kind: str, subtask: str, splits: Sequence[str]) -> DataSource:
    """The subtask's source, pinned, naming the files of `splits` (train/valid/test); nothing is downloaded.

    cfg.source "hub": the kind's hub dataset (HUB_IDS) at cfg.hub_revision ("auto": refs/convert/parquet, then
    main), offline from the local Hugging Face cache. Otherwise cfg.source is CodeT5's data folder, fingerprinted
    by content. A missing split file, or a line-aligned pair whose files differ in length, is a DataError here.
    """
    check_task(kind, subtask)
    unknown = [split for split in splits if split not in SPLITS]
    if unknown:
        raise DataError(f"unknown split {unknown[0]!r}; known: {list(SPLITS)}")
    if cfg.source == "hub":
        return _resolve_hub(replace(cfg, hub_id=HUB_IDS[kind]), kind, subtask, splits)
    return _resolve_folder(cfg, kind, subtask, splits)


def _resolve_folder(cfg: DataConfig, kind: str, subtask: str, splits: Sequence[str]) -> DataSource:
    root = Path(cfg.source).expanduser()
    if not root.is_dir():
        raise DataError(f"data.source {cfg.source!r} is not a folder (CodeT5's data folder, or `hub`)")
    planned = [codet5_files(kind, subtask, split) for split in splits]
    for files in planned:
        missing = next((rel for rel in files if not (root / rel).is_file()), None)
        if missing:
            raise DataError(
                f"{root / missing} is missing; CodeT5's layout for {kind} {subtask} is {codet5_layout(kind, subtask)}"
            )
        if len(files) == 2:
            _check_aligned(root / files[0], root / files[1])
    return local_source("local", root, CODET5_FORM, sorted({rel for files in planned for rel in files}), cfg.cache_dir)


def _check_aligned(first: Path, second: Path) -> None:
    """CodeT5 zips the two files line by line, so a missing line shifts every pair after it."""
    counts = [_line_count(path) for path in (first, second)]
    if counts[0] != counts[1]:
        raise DataError(
            f"{first} has {counts[0]:,} lines but {second} has {counts[1]:,}; their lines are read as pairs, "
            "so both files of a split need as many"
        )


def _line_count(path: Path) -> int:
    try:
        with open(path, "rb") as lines:
            return sum(1 for _ in lines)
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error})") from None


def _resolve_hub(cfg: DataConfig, kind: str, subtask: str, splits: Sequence[str]) -> DataSource:
    """The subtask's files at the first revision of `revisions(cfg)` holding every split (cfg.hub_id: the kind's)."""

    def plan(listing: Listing, where: str) -> tuple[str, list[str]]:
        form, found = hub_layout((path for path, _ in listing), kind, subtask, where)
        return form, sorted({rel for split in splits for rel in _hub_split(found, form, kind, subtask, split, where)})

    hint = "offline, CodeT5's data folder is read with `--set data.source=DIR`"
    return pin_hub_files(cfg, plan, f"{kind} {subtask}", hint)


def split_files(source: DataSource, kind: str, subtask: str, split: str) -> tuple[str, ...]:
    """The files one split reads, in reading order, among exactly those `source` names."""
    where = f"{source.id} ({source.identity()})"
    if source.form == CODET5_FORM:
        rels = codet5_files(kind, subtask, split)
    else:
        form, found = hub_layout((rel for rel, _ in source.files), kind, subtask, where)
        rels = _hub_split(found, form, kind, subtask, split, where)
    named = {rel for rel, _ in source.files}
    outside = [rel for rel in rels if rel not in named]
    if outside:
        raise DataError(
            f"{where}: {kind} {subtask} {split} reads {outside[0]}, which the resolved source does not name"
        )
    return rels


def split_identity(source: DataSource, kind: str, subtask: str, split: str, cache_dir: str) -> list:
    """What pins one split's bytes, for the sample cache: the hub's commit and files, or the files' content hashes."""
    return files_identity(source, split_files(source, kind, subtask, split), cache_dir)


def split_location(source: DataSource, kind: str, subtask: str, split: str) -> str:
    """Where a split is read from, for messages."""
    rels = ", ".join(split_files(source, kind, subtask, split))
    return f"{source.id}@{source.commit[:12]}: {rels}" if source.kind == "hub" else f"{source.id}: {rels}"


# ----------------------------------------------------------------------------------------------- reading


def read_pairs(source: DataSource, kind: str, subtask: str, split: str) -> tuple[list[dict], Counter]:
    """The raw rows of one split from exactly the files `source` names: {"id", "source", "target"}, source and
    target normalised as CodeT5 reads them (None, or a value of another type, where a row lacks them), and the
    lines that could not be read as rows, by reason (bad_json, non_utf8)."""
    check_task(kind, subtask)
    files = local_paths(source, split_files(source, kind, subtask, split))
    unreadable: Counter = Counter()
    if source.form != CODET5_FORM:
        rows = [row for path, label in files for row in _parquet_pairs(path, label, kind, subtask)]
    elif len(files) == 2:
        rows = _aligned_pairs(files, unreadable)
    else:
        rows = [_pair(row, kind, subtask, str(number)) for number, row in _numbered_jsonl(*files[0], unreadable)]
    return rows, unreadable


def _stripped(value):
    return value.strip() if isinstance(value, str) else value


def _joined_tokens(newline: str) -> Callable:
    """CodeT5's summarize field: ' '.join(tokens), each newline replaced by `newline`, whitespace collapsed."""

    def join(tokens):
        if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
            return None
        return " ".join(" ".join(tokens).replace("\n", newline).split())

    return join


NORMALISERS = {"summarize": (_joined_tokens(" "), _joined_tokens(""))}  # (source, target); others are stripped


def _pair(row: dict, kind: str, subtask: str, row_id: str) -> dict:
    source_field, target_field = fields(kind, subtask)
    source, target = NORMALISERS.get(kind, (_stripped, _stripped))
    return {"id": row_id, "source": source(row.get(source_field)), "target": target(row.get(target_field))}


def _numbered_jsonl(path: Path, label: str, unreadable: Counter) -> list[tuple[int, dict]]:
    """(line number, row) of a jsonl file's readable lines; each bad line is counted (readers.jsonl_rows)."""
    try:
        with open(path, "rb") as lines:
            return [(number, row) for number, line in enumerate(lines) for row in jsonl_rows((line,), unreadable)]
    except OSError as error:
        raise DataError(f"{label}: cannot read ({error})") from None


def _aligned_pairs(files: Sequence[tuple[Path, str]], unreadable: Counter) -> list[dict]:
    """Line k of the source file with line k of the target file, each stripped; a line that is not UTF-8 costs
    its pair (counted). A blank line is a pair too, so that the files stay aligned."""
    (source_path, source_label), (target_path, target_label) = files
    rows = []
    try:
        with open(source_path, "rb") as sources, open(target_path, "rb") as targets:
            for number, lines in enumerate(zip(sources, targets)):
                try:
                    source, target = (line.decode("utf-8").strip() for line in lines)
                except UnicodeDecodeError:
                    unreadable["non_utf8"] += 1
                    continue
                rows.append({"id": str(number), "source": source, "target": target})
    except OSError as error:
        raise DataError(f"{source_label}, {target_label}: cannot read ({error})") from None
    return rows


def _parquet_pairs(path: Path, label: str, kind: str, subtask: str) -> list[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        missing = [name for name in FIELDS[kind] if name not in names]
        if missing:
            raise DataError(f"{label}: column(s) {missing} missing; the file has {names}")
        table = parquet.read(columns=[name for name in ("id", *FIELDS[kind]) if name in names])
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{label}: not a readable parquet file ({str(error).strip().splitlines()[0]})") from None
    return [_pair(row, kind, subtask, str(row.get("id", n))) for n, row in enumerate(table.to_pylist())]


# ----------------------------------------------------------------------------------------------- sampling


def to_pair(row: dict, max_record_chars: int) -> Pair | str:
    """A raw row -> a Pair, or the reason to skip it (too_long is judged on the fields as read)."""
    source, target = row.get("source"), row.get("target")
    if not isinstance(source, str) or not isinstance(target, str):
        return "missing_field"
    if max(len(source), len(target)) > max_record_chars:
        return "too_long"
    if not source.strip():
        return "empty_source"
    if not target.strip():
        return "empty_target"
    return Pair(str(row.get("id", "")), source, target)


def pair_key(pair: Pair) -> str:
    """Whitespace-insensitive identity of a pair, to find duplicates and keep evaluation apart from training."""
    return hashlib.sha1(f"{normalized(pair.source)}\0{normalized(pair.target)}".encode()).hexdigest()


def sample_pairs(
    rows: list[dict], unreadable: Counter, n: int, seed: int, max_record_chars: int, exclude: Iterable[str] = ()
) -> SplitSample:
    """Up to `n` valid, distinct pairs (`n` 0: every one): rows ranked by a hash of their content and the seed,
    validated in that order until `n` pass; pairs whose key is in `exclude` count as duplicates."""
    validate = functools.partial(to_pair, max_record_chars=max_record_chars)
    return sample_ranked(rows, unreadable, n, functools.partial(_rank, seed=seed), validate, pair_key, exclude)


def _rank(row: dict, seed: int) -> bytes:
    return hashlib.sha1(f"{seed}\0{row.get('source')}\0{row.get('target')}".encode("utf-8", "replace")).digest()


def load_pair_task(cfg: DataConfig, key: str, kind: str, subtask: str, source: DataSource, eval_split: str) -> TaskData:
    """The sampled train and evaluation Pairs of one subtask, read from exactly the files `source` names.

    Train: cfg.n_train pairs of the train split (0: all of it); evaluation: cfg.n_valid pairs of `eval_split`,
    never repeating a train pair. Both are cached under cfg.cache_dir, keyed by the split's pinned files and
    everything that chooses them. A split without a usable pair is a DataError naming it, where it was read
    from and what was skipped.
    """
    check_task(kind, subtask)
    if eval_split not in ("valid", "test"):
        raise DataError(f"unknown evaluation split {eval_split!r}; known: ['valid', 'test']")
    train = _cached_sample(cfg, kind, subtask, "train", cfg.n_train, set(), source)
    exclude = {pair_key(pair) for pair in train.records}
    evaluation = _cached_sample(cfg, kind, subtask, eval_split, cfg.n_valid, exclude, source)
    where = functools.partial(split_location, source, kind, subtask)
    return task_data(key, {"train": train, eval_split: evaluation}, source, eval_split, where)


def _cached_sample(
    cfg: DataConfig, kind: str, subtask: str, split: str, n: int, exclude: set[str], source: DataSource
) -> SplitSample:
    identity = json.dumps(
        [
            PAIR_SAMPLE_VERSION,
            split_identity(source, kind, subtask, split, cfg.cache_dir),
            kind,
            subtask,
            split,
            n,
            cfg.sample_seed,
            cfg.max_record_chars,
            hashlib.sha1("\n".join(sorted(exclude)).encode()).hexdigest(),
        ]
    )
    path = Path(cfg.cache_dir, "samples", "pairs-" + hashlib.sha1(identity.encode()).hexdigest() + ".json.gz")
    if path.is_file():
        saved = json.loads(gzip.decompress(path.read_bytes()))
        return SplitSample(
            [Pair(*pair) for pair in saved["pairs"]], saved["read"], saved["examined"], Counter(saved["skips"])
        )
    rows, unreadable = read_pairs(source, kind, subtask, split)
    sample = sample_pairs(rows, unreadable, n, cfg.sample_seed, cfg.max_record_chars, exclude)
    saved = {
        "pairs": [[pair.id, pair.source, pair.target] for pair in sample.records],
        "read": sample.read,
        "examined": sample.examined,
        "skips": dict(sample.skips),
    }
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(json.dumps(saved).encode("utf-8"), compresslevel=6))
    return sample
