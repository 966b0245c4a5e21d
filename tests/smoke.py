"""The smoke-test assets: a small CodeSearchNet-schema corpus of both languages and a micro stand-in base."""

from __future__ import annotations

from pathlib import Path

from hybridcl.config import load_config
from hybridcl.data.schema import Record, write_jsonl_gz
from hybridcl.model.pretrain import build_stand_in_base

SMOKE = Path(__file__).parents[1] / "configs" / "smoke.yaml"
VERBS = ["add", "scale", "merge", "split", "count", "parse", "format", "clamp", "join", "filter"]
NOUNS = ["items", "values", "names", "rows", "tokens", "paths", "words", "keys"]


def python_record(verb: str, noun: str, i: int, split: str) -> Record:
    code = (
        f"def {verb}_{noun}_{i}({noun}, limit={i}):\n    result = [x for x in {noun} if x]\n    return result[:limit]\n"
    )
    return Record(
        f"pkg{i % 4}",
        f"mod{i}.py",
        f"{verb}_{noun}_{i}",
        "python",
        code,
        f"{verb.capitalize()} the {noun} up to a limit of {i}.",
        split,
    )


def javascript_record(verb: str, noun: str, i: int, split: str) -> Record:
    code = f"function {verb}{noun.capitalize()}{i}({noun}) {{\n  return {noun}.slice(0, {i}).map(String);\n}}"
    return Record(
        f"pkg{i % 4}",
        f"lib{i}.js",
        f"{verb}{noun}{i}",
        "javascript",
        code,
        f"{verb.capitalize()} the first {i} {noun} as strings.",
        split,
    )


def go_record(verb: str, noun: str, i: int, split: str) -> Record:
    """A third language for task streams beyond two (no tree-sitter grammar pinned: code metrics are None)."""
    code = f"func {verb.capitalize()}{noun.capitalize()}{i}({noun} []string) []string {{\n\treturn {noun}[:{i}]\n}}"
    return Record(
        f"pkg{i % 4}", f"f{i}.go", f"{verb}{noun}{i}", "go", code, f"{verb.capitalize()} the first {i} {noun}.", split
    )


RECORD_MAKERS = {"python": python_record, "javascript": javascript_record, "go": go_record}


def write_smoke_language(corpus: Path, language: str) -> None:
    make = RECORD_MAKERS[language]
    pairs = [(verb, noun) for verb in VERBS for noun in NOUNS]
    for split, chunk, first in (
        ("pretrain", pairs[:60], 60),
        ("train", pairs[:60], 0),
        ("valid", pairs[60:72], 0),
        ("test", pairs[72:], 0),
    ):
        records = [make(verb, noun, first + i, split) for i, (verb, noun) in enumerate(chunk)]
        write_jsonl_gz(records, corpus / language / f"{split}.jsonl.gz")


def build_smoke_assets(root: Path) -> dict[str, Path]:
    corpus = root / "corpus"
    for language in ("python", "javascript"):
        write_smoke_language(corpus, language)
    build_stand_in_base(corpus, root / "base", size="micro", steps=20, progress=False)
    return {"corpus": corpus, "base": root / "base", "cache": root / "cache"}


def smoke_config(assets: dict[str, Path], *overrides: str):
    return load_config(
        SMOKE,
        [
            f"data.source={assets['corpus']}",
            f"model.name={assets['base']}",
            f"data.cache_dir={assets['cache']}",
            *overrides,
        ],
    )
