"""The offline miner: (code, docstring) pairs from local source trees, in CodeSearchNet's schema.

Python functions and methods with a docstring, read with `ast`; JavaScript functions, methods and
function-valued assignments preceded directly by a JSDoc block, read with tree-sitter. A pair needs a
docstring of at least `MIN_DOCSTRING_WORDS` words after `clean_docstring`. Pairs are deduplicated
(whitespace-normalised code; the first in (repo, path, line) order is kept) and split by package (see
`package_of`), so no package has functions in two splits.

This module mines the files and builds the corpus; the miners are data.mine_python and
data.mine_javascript, which files are mined and their packages data.source_trees, the default sources
data.mine_sources.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Iterable

from hybridcl.data.mine_javascript import mine_javascript_file
from hybridcl.data.mine_python import mine_python_file
from hybridcl.data.mine_sources import default_sources, given_sources
from hybridcl.data.mined_function import MinedFunction, SkipFile
from hybridcl.data.schema import CORPUS_LAYOUT, POOLS, DataError, Record, dedup_key, write_jsonl_gz
from hybridcl.data.source_trees import Source, SourceFile, discover_files
from hybridcl.data.text import word_count
from hybridcl.progress import Progress

MIN_DOCSTRING_WORDS = 3
# Shares of the packages (not of the pairs) in each pool. Half the packages pre-train the stand-in base
# (it needs the most tokens); the experiments sample at most a few thousand train and valid pairs per
# language from the rest, and the seed-sized offline run 8K + 2K.
POOL_SHARES = {"pretrain": 0.5, "train": 0.3, "valid": 0.1, "test": 0.1}
FUNCTION_REASONS = {"no_docstring", "short_docstring", "duplicate"}  # counted per function; the rest per file
MINERS = {"python": mine_python_file, "javascript": mine_javascript_file}

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ mining


def _rejection(function: MinedFunction) -> str | None:
    if function.docstring is None:
        return "no_docstring"
    if word_count(function.docstring) < MIN_DOCSTRING_WORDS:
        return "short_docstring"
    return None


def mine_file(file: SourceFile) -> tuple[list[Record], Counter]:
    """The file's pairs as records (no partition yet) and the counts of what was skipped, by reason."""
    try:
        functions = MINERS[file.language](file.path)
    except SkipFile as skip:
        return [], Counter({skip.reason: 1})
    records, skipped = [], Counter()
    for function in functions:
        reason = _rejection(function)
        if reason:
            skipped[reason] += 1
        else:
            records.append(_record(file, function))
    return records, skipped


def _record(file: SourceFile, function: MinedFunction) -> Record:
    return Record(
        repo=file.repo,
        path=file.rel_path,
        func_name=function.name,
        language=file.language,
        code=function.code,
        docstring=function.docstring,
        url=f"file://{file.url_path}#L{function.line}",
        original_string=function.original,
    )


def mine_files(files: list[SourceFile], skipped: Counter, desc: str = "mining") -> list[Record]:
    """Records of all files in file order; over a pool of processes when there are many files."""
    workers = min(os.cpu_count() or 1, 8) if len(files) >= 64 else 1
    with Progress(len(files), desc, "file") as progress:
        if workers == 1:
            return _collect(map(mine_file, files), skipped, progress)
        with multiprocessing.Pool(workers) as pool:
            return _collect(pool.imap(mine_file, files, chunksize=16), skipped, progress)


def _collect(results: Iterable[tuple[list[Record], Counter]], skipped: Counter, progress: Progress) -> list[Record]:
    records = []
    for file_records, file_skipped in results:
        records.extend(file_records)
        skipped.update(file_skipped)
        progress.update()
    return records


def deduplicate(records: list[Record]) -> tuple[list[Record], int]:
    """The records ordered by (repo, path), keeping their order within a file, without exact duplicates
    (the first is kept); and how many were removed."""
    seen: set[str] = set()
    unique = []
    for record in sorted(records, key=lambda record: (record.repo, record.path)):
        key = dedup_key(record)
        if key not in seen:
            seen.add(key)
            unique.append(record)
    return unique, len(records) - len(unique)


def pool_of(package: str, seed: int = 0) -> str:
    """The pool of a package: a pure function of its name (and the split seed), so adding or removing
    other packages never moves it. A hash of the name, read as a number in [0, 1), falls into one of
    POOL_SHARES' cumulative intervals."""
    position = int.from_bytes(hashlib.sha256(f"{seed}:{package}".encode()).digest()[:8], "big") / 2**64
    for pool, end in zip(POOL_SHARES, itertools.accumulate(POOL_SHARES.values())):
        if position < end:
            return pool
    return POOLS[-1]  # rounding of the last cumulative share


# ------------------------------------------------------------------------------------------ corpus


def build_corpus(
    out_dir: str | Path,
    languages: Iterable[str],
    sources: list[str | Path] | None = None,
    cache_dir: str | Path = ".cache/hybridcl",
    seed: int = 0,
) -> dict:
    """Mine, deduplicate and split by package; write `out_dir/<language>/{pretrain,train,valid,test}.jsonl.gz`
    and `out_dir/summary.json`; return the summary."""
    started = time.monotonic()
    languages = list(dict.fromkeys(languages))
    unknown = [language for language in languages if language not in MINERS]
    if unknown:
        raise DataError(f"cannot mine language(s) {unknown}; choose from {sorted(MINERS)}")
    given = given_sources(sources) if sources else None
    splits, summary = {}, {"layout": CORPUS_LAYOUT, "seed": seed, "languages": {}}
    for language in languages:
        language_sources = given or default_sources(language, cache_dir)
        splits[language], summary["languages"][language] = _build_language(language, language_sources, seed)
    for language, by_split in splits.items():
        for split in POOLS:
            write_jsonl_gz(by_split[split], Path(out_dir, language, f"{split}.jsonl.gz"))
    summary["elapsed_seconds"] = round(time.monotonic() - started, 1)
    Path(out_dir, "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    logger.info(format_summary(summary))
    return summary


def _build_language(language: str, sources: list[Source], seed: int) -> tuple[dict[str, list[Record]], dict]:
    skipped: Counter = Counter()
    files = [file for source in sources for file in discover_files(source, language, skipped)]
    records, skipped["duplicate"] = deduplicate(mine_files(files, skipped, desc=f"mining {language}"))
    if not records:
        raise DataError(
            f"no {language} functions with a docstring of >= {MIN_DOCSTRING_WORDS} words in "
            f"{[str(source.root) for source in sources]}"
        )
    packages = sorted({record.repo for record in records})
    by_split = _assign_splits(records, seed)
    empty = [pool for pool, rows in by_split.items() if not rows]
    if empty:
        _warn_empty_pools(language, len(records), packages, empty, sources)
    return by_split, {
        "sources": [str(source.root) for source in sources],
        "files_mined": len(files),
        "packages": len(packages),
        "splits": {
            split: {"pairs": len(rows), "packages": len({row.repo for row in rows})} for split, rows in by_split.items()
        },
        "skipped_files": {reason: n for reason, n in sorted(skipped.items()) if reason not in FUNCTION_REASONS},
        "skipped_functions": {reason: n for reason, n in sorted(skipped.items()) if reason in FUNCTION_REASONS},
    }


def _warn_empty_pools(language: str, pairs: int, packages: list[str], empty: list[str], sources: list[Source]) -> None:
    shown = ", ".join(map(repr, packages[:5])) + (", ..." if len(packages) > 5 else "")
    logger.warning(
        f"warning: {language}: pool(s) {', '.join(empty)} are empty: the {pairs} pairs come from {len(packages)} "
        f"package(s) ({shown}) in {', '.join(str(source.root) for source in sources)}, and each package goes "
        "to one pool: give a tree with more packages"
    )


def _assign_splits(records: list[Record], seed: int) -> dict[str, list[Record]]:
    by_split: dict[str, list[Record]] = {pool: [] for pool in POOLS}
    for record in records:
        pool = pool_of(record.repo, seed)
        by_split[pool].append(replace(record, partition=pool))
    return by_split


def format_summary(summary: dict) -> str:
    lines = []
    for language, info in summary["languages"].items():
        total = sum(split["pairs"] for split in info["splits"].values())
        lines.append(f"{language}: {total} pairs from {info['files_mined']} files in {', '.join(info['sources'])}")
        for split, counts in info["splits"].items():
            lines.append(f"  {split:<8} {counts['pairs']:>7} pairs  {counts['packages']:>5} packages")
        for kind in ("skipped_files", "skipped_functions"):
            counts = ", ".join(f"{reason} {count}" for reason, count in info[kind].items()) or "none"
            lines.append(f"  {kind.replace('_', ' ')}: {counts}")
    lines.append(f"corpus mined in {summary['elapsed_seconds']} s")
    return "\n".join(lines)
