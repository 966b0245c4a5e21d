"""`hybridcl` command line: one sub-command per job, each a thin call into the library."""

from __future__ import annotations

import argparse
import sys

from hybridcl.config import LANGUAGES, ConfigError
from hybridcl.data.schema import DataError


def _corpus_build(args: argparse.Namespace) -> int:
    from hybridcl.data.mine import build_corpus

    build_corpus(
        out_dir=args.out,
        languages=args.languages,
        sources=args.source,
        cache_dir=args.cache_dir,
        seed=args.seed,
    )
    return 0


def _corpus_check(args: argparse.Namespace) -> int:
    from hybridcl.data.csn import check_path

    report = check_path(args.path, language=args.language)
    print(report.summary())
    return 0 if report.usable else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybridcl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    corpus = commands.add_parser("corpus", help="the offline CodeSearchNet-schema corpus")
    corpus_commands = corpus.add_subparsers(dest="corpus_command", required=True)

    build = corpus_commands.add_parser("build", help="mine local source trees into DIR/<language>/{train,valid,test}.jsonl.gz")
    build.add_argument("--out", required=True, help="output directory")
    build.add_argument("--languages", nargs="+", default=["python", "javascript"], choices=["python", "javascript"])
    build.add_argument("--source", action="append", default=None, metavar="PATH",
                       help="mine this tree instead of the defaults (repeatable)")
    build.add_argument("--cache-dir", default=".cache/hybridcl", help="where npm packages for JavaScript are installed")
    build.add_argument("--seed", type=int, default=0, help="seed of the package-level split")
    build.set_defaults(run=_corpus_build)

    check = corpus_commands.add_parser("check", help="validate CodeSearchNet-schema files and count records")
    check.add_argument("path", help="a .jsonl / .jsonl.gz file or a directory of them")
    check.add_argument("--language", choices=LANGUAGES, default=None,
                       help="expected language (default: taken from the directory or file name)")
    check.set_defaults(run=_corpus_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ConfigError, DataError) as error:
        print(f"hybridcl: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
