"""The forms CodeSearchNet is served in, recognised from a file listing alone.

    parquet-conversion   <language>/<split>/NNNN.parquet, or <language>/partial-<split>/NNNN.parquet
                         (the hub's conversion branch refs/convert/parquet; split: train, validation, test)
    push-to-hub-parquet  <config>/<split>-NNNNN-of-NNNNN.parquet, <config>/data/<split>-..., data/<split>-...
                         (what `Dataset.push_to_hub` writes on a main branch)
    release-zip          data/<language>.zip or <language>.zip, holding
                         <language>/final/jsonl/{train,valid,test}/<language>_<split>_<k>.jsonl.gz
                         (the original release; the hub repo's main branch serves these)
    release-jsonl        [...]/<language>/final/jsonl/<split>/*.jsonl.gz (or .jsonl): the release unpacked

`recognise(listing)` takes (relative path, bytes) pairs and returns the first form of FORMS with a file
in the listing, with the files of each (language, split). A config that is not a language (`all`,
`default`, push_to_hub's plain `data/`) holds rows of every language: it serves a language that has no
folder of its own, read with a filter on the rows' `language` column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from hybridcl.data.schema import DataError, check_corpus_layout
from hybridcl.settings import LANGUAGES

DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")  # the files a local CodeSearchNet-schema folder is read from

FORMS = ("parquet-conversion", "push-to-hub-parquet", "release-zip", "release-jsonl")
FORM_PATTERNS = {
    "parquet-conversion": "<language>/<split>/NNNN.parquet",
    "push-to-hub-parquet": "[<config>/][data/]<split>-NNNNN-of-NNNNN.parquet",
    "release-zip": "[data/]<language>.zip",
    "release-jsonl": "<language>/final/jsonl/<split>/*.jsonl.gz",
}
ANY_LANGUAGE = "*"  # a config holding every language's rows
MIXED_CONFIGS = ("all", "default", "data")
SPLIT_NAMES = {"train": "train", "validation": "valid", "valid": "valid", "test": "test"}
RELEASE_SPLITS = {"train": "train", "valid": "valid", "test": "test"}  # our split -> the release's folder name
HUB_SPLITS = {"train": "train", "valid": "validation", "test": "test"}  # our split -> the hub's folder name

CONVERSION_FILE = re.compile(
    r"(?P<config>[^/]+)/(?P<partial>partial-)?(?P<split>train|validation|test)/(?P<n>\d+)\.parquet"
)
PUSHED_FILE = re.compile(
    r"(?:(?P<config>[^/]+)/)?(?:data/)?(?P<split>train|validation|valid|test)-(?P<n>\d{5})-of-(?P<of>\d{5})\.parquet"
)
_ZIP = re.compile(r"(?:data/)?(?P<config>[a-z]+)\.zip")
_JSONL = re.compile(
    r"(?P<prefix>(?:.*/)?)(?P<config>[a-z]+)/final/jsonl/(?P<split>train|valid|test)/[^/]+\.jsonl(?:\.gz)?"
)

Listing = Sequence[tuple[str, int]]


@dataclass(frozen=True)
class Layout:
    """A recognised form and, per (language or ANY_LANGUAGE, split), its files in reading order."""

    form: str
    splits: dict[tuple[str, str], tuple[str, ...] | str]  # a str: why that split cannot be read

    def split_files(self, language: str, split: str, where: str) -> tuple[tuple[str, ...], bool]:
        """(files, filter_by_language) of one language split; a DataError names what was expected."""
        for key, mixed in (((language, split), False), ((ANY_LANGUAGE, split), True)):
            found = self.splits.get(key)
            if isinstance(found, str):
                raise DataError(f"{where} ({self.form}): {found}")
            if found:
                return found, mixed
        have = ", ".join(f"{lang} {name}" for lang, name in sorted(self.splits)) or "nothing"
        raise DataError(
            f"{where} ({self.form}): no {language} {split} split; expected {expected_path(self.form, language, split)}; "
            f"it has: {have}"
        )


def expected_path(form: str, language: str, split: str) -> str:
    """Where a form keeps one language split, for messages."""
    return {
        "parquet-conversion": f"{language}/{HUB_SPLITS[split]}/NNNN.parquet",
        "push-to-hub-parquet": f"{language}/{HUB_SPLITS[split]}-NNNNN-of-NNNNN.parquet",
        "release-zip": f"data/{language}.zip holding {member_pattern(language, split)}",
        "release-jsonl": member_pattern(language, split),
    }[form]


def member_pattern(language: str, split: str) -> str:
    return f"{language}/final/jsonl/{RELEASE_SPLITS[split]}/*.jsonl.gz"


def recognise(listing: Listing, where: str) -> Layout:
    """The first form of FORMS found in `listing`; none is one DataError line naming the forms and first files."""
    paths = [path for path, _ in listing]
    for form in FORMS:
        splits = _RECOGNISERS[form](paths)
        if splits:
            return Layout(form, splits)
    shown = ", ".join(sorted(paths)[:5]) + (", ..." if len(paths) > 5 else "")
    looked = "; ".join(f"{form} ({pattern})" for form, pattern in FORM_PATTERNS.items())
    raise DataError(
        f"{where} holds no CodeSearchNet form; looked for {looked}; found {len(paths)} file(s)"
        + (f": {shown}" if paths else "")
    )


def _language(config: str) -> str | None:
    if config in LANGUAGES:
        return config
    return ANY_LANGUAGE if config in MIXED_CONFIGS else None


def conversion_files(paths: Iterable[str], group: Callable[[str], str | None] = _language) -> dict:
    """(group, split) -> files of the conversion branch's form; `group` names a config's group (None: not read)."""
    full, partial = {}, {}
    for path in paths:
        match = CONVERSION_FILE.fullmatch(path)
        name = match and group(match["config"])
        if name:
            key = (name, SPLIT_NAMES[match["split"]])
            (partial if match["partial"] else full).setdefault(key, []).append((int(match["n"]), path))
    return {key: _in_order(files) for key, files in {**partial, **full}.items()}  # a full folder wins


def pushed_files(paths: Iterable[str], group: Callable[[str], str | None] = _language) -> dict:
    """(group, split) -> push_to_hub's shards, or why they are not one whole push; a plain `data/` is config "data"."""
    found: dict[tuple[str, str], list] = {}
    for path in paths:
        match = PUSHED_FILE.fullmatch(path)
        name = match and group(match["config"] or "data")
        if name:
            found.setdefault((name, SPLIT_NAMES[match["split"]]), []).append((int(match["n"]), path, match["of"]))
    return {key: complete_shards(key, files) for key, files in found.items()}


def complete_shards(key: tuple[str, str], files: list[tuple[int, str, str]]) -> tuple[str, ...] | str:
    """The shards in order, or why they are not one whole push (`-NNNNN-of-NNNNN`: k of N, all N present)."""
    counts = {int(of) for _, _, of in files}
    numbers = sorted(n for n, _, _ in files)
    if len(counts) != 1 or numbers != list(range(counts.pop())):
        names = sorted(path for _, path, _ in files)
        return f"{key[0]} {key[1]}: shards missing or of two pushes ({len(names)} found: {', '.join(names[:4])} ...)"
    return _in_order([(n, path) for n, path, _ in files])


def _zips(paths: Iterable[str]) -> dict:
    found = {}
    for path in sorted(paths, key=lambda p: p.count("/"), reverse=True):  # data/<language>.zip wins
        match = _ZIP.fullmatch(path)
        if match and match["config"] in LANGUAGES:
            found.update({(match["config"], split): (path,) for split in RELEASE_SPLITS})
    return found


def _release(paths: Iterable[str]) -> dict:
    found: dict[tuple[str, str], list] = {}
    prefixes: dict[tuple[str, str], set] = {}
    for path in paths:
        match = _JSONL.fullmatch(path)
        if match and match["config"] in LANGUAGES:
            key = (match["config"], match["split"])
            found.setdefault(key, []).append((natural_key(path), path))
            prefixes.setdefault(key, set()).add(match["prefix"])
    return {
        key: _in_order(files)
        if len(prefixes[key]) == 1
        else f"{key[0]} {key[1]}: two copies, under {sorted(prefixes[key])}"
        for key, files in found.items()
    }


def natural_key(name: str) -> tuple:
    """`python_train_10` after `python_train_9`."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _in_order(files: list[tuple]) -> tuple[str, ...]:
    return tuple(path for _, path in sorted(files))


_RECOGNISERS = {
    "parquet-conversion": conversion_files,
    "push-to-hub-parquet": pushed_files,
    "release-zip": _zips,
    "release-jsonl": _release,
}


def plan_files(layout: Layout, languages: Iterable[str], splits: Iterable[str], where: str) -> list[str]:
    """Every file `layout` reads for `languages`' `splits`, each once, in a stable order."""
    planned = [
        file for language in languages for split in splits for file in layout.split_files(language, split, where)[0]
    ]
    return sorted(set(planned))


# The corpus form: a local folder of CodeSearchNet-schema files (e.g. a mined corpus).


def corpus_split_files(source: str | Path, language: str, split: str) -> list[Path]:
    """The files of one split of a local CodeSearchNet-schema source (see split_path)."""
    return data_files(split_path(source, language, split))


def split_path(source: str | Path, language: str, split: str) -> Path:
    """Where a local source keeps a split: the corpus layout, the original release layout, or one-language files."""
    source = Path(source)
    check_corpus_layout(source)
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
