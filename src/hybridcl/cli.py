"""`hybridcl` command line: one sub-command per job, each a thin call into the library."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from hybridcl import __version__
from hybridcl.errors import UserError
from hybridcl.logs import BUILD_LOG, LEVELS, RUN_LOG, SWEEP_LOG, console_logging, failure_log, log_file, one_line
from hybridcl.run_files import ANALYSIS_FILE, PLOTS_DIR, RESULTS_FILE
from hybridcl.settings import (
    BASE_ARCHS,
    BASE_SIZES,
    JOBS_PER,
    LANGUAGES,
    SLURM_RESOURCES,
    SWEEP_LAUNCHERS,
    ConfigError,
)

# Read from the environment when the libraries load, so set (unless the user set them) before any is:
# - library progress bars off (transformers' "Loading weights", "Writing model shards", datasets', the hub's);
# - OpenMP's idle threads spin 1,000 rounds instead of 300,000 before they sleep: beside one busy process a
#   training step of the tiny stand-in took 3.0x its quiet time, now 1.8x, at the same quiet speed
#   (benchmarks/busy_machine.py);
# - transformers never asks the hub to convert a pytorch_model.bin repository to safetensors (it would on a
#   hub-name load of such a repository; load_base reads a local folder, so this is a second guard).
LIBRARY_ENVIRONMENT = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "GOMP_SPINCOUNT": "1000",
    "DISABLE_SAFETENSORS_CONVERSION": "1",
}

logger = logging.getLogger(__name__)


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


def _corpus_replica(args: argparse.Namespace) -> int:
    from itertools import islice

    from hybridcl.data.csn import read_records
    from hybridcl.data.forms import split_path
    from hybridcl.data.replicas import write_replica
    from hybridcl.data.schema import SPLITS

    for language in args.languages:
        records = {
            split: list(islice(read_records(split_path(args.corpus, language, split), language), args.rows))
            for split in SPLITS
        }
        written = write_replica(records, args.out, language, shards=args.shards, form=args.form)
        print(
            f"{language}: "
            + ", ".join(f"{split} {len(rows):,} rows" for split, rows in records.items())
            + f" in {len(written)} file(s) under {args.out}/ ({args.form})"
        )
    return 0


def _base_build(args: argparse.Namespace) -> int:
    from hybridcl.model.pretrain import build_settings, build_stand_in_base, check_out_dir

    settings = build_settings(args.size, args.steps, args.seed, args.arch)
    out = Path(args.out)
    check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)  # the build's log is written from its start
    with log_file(out / BUILD_LOG, {"settings": json.dumps(settings)}):
        build_stand_in_base(
            args.corpus,
            args.out,
            size=args.size,
            steps=args.steps,
            seed=args.seed,
            arch=args.arch,
            snapshots=args.snapshots,
        )
    return 0


def _step_list(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(part) for part in text.split(","))
    except ValueError:
        steps = ()
    if not steps or min(steps) < 1:
        raise argparse.ArgumentTypeError(f"expected positive step counts separated by commas, got {text!r}")
    return steps


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _overrides(args: argparse.Namespace) -> list[str]:
    """`--set KEY=VALUE ...` and `--seeds N` as config overrides."""
    return list(args.set) + ([f"seeds={args.seeds}"] if args.seeds is not None else [])


def _params(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import torch

    from hybridcl.config import load_config
    from hybridcl.model.base import load_base
    from hybridcl.params import params_report

    cfg = load_config(args.config, args.set)
    with torch.device("meta"):  # counts need the shapes only: no weights in memory, none initialised
        base, _ = load_base(replace(cfg.model, random_init=True, tokenizer=""))
        print(params_report(cfg, base))
    return 0


def _run(args: argparse.Namespace) -> int:
    from hybridcl.config import load_config
    from hybridcl.continual import ContinualRun, run_folder
    from hybridcl.report import console_summary

    overrides = _overrides(args)
    cfg = load_config(args.config, overrides)
    out = args.out or f"runs/{cfg.name}"
    with run_folder(cfg, out):
        results = ContinualRun(cfg, out).run()
        logger.info(console_summary(results))
        logger.info(f"report: {out}/{ANALYSIS_FILE} (results: {out}/{RESULTS_FILE}, plots: {out}/{PLOTS_DIR}/)")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    if args.status or args.summarize:
        return _sweep_folder(args)
    from hybridcl.sweep import parse_grid, run_sweep
    from hybridcl.sweep_jobs import parse_slurm

    if args.parallel is not None and args.launcher != "local":
        raise ConfigError("--parallel N runs points as local jobs: give it with --launcher local")
    if args.slurm and args.launcher != "slurm":
        raise ConfigError("--slurm key=value sets the resources of Slurm jobs: give it with --launcher slurm")
    if args.jobs_per == "seed" and args.launcher == "inline":
        raise ConfigError("--jobs-per seed runs each seed as its own job: give it with --launcher local or slurm")
    overrides = _overrides(args)
    run_sweep(
        args.config,
        parse_grid(args.grid),
        overrides,
        args.out,
        launcher=args.launcher,
        parallel=args.parallel or 1,
        jobs_per=args.jobs_per,
        slurm=parse_slurm(args.slurm),
    )
    return 0


def _sweep_folder(args: argparse.Namespace) -> int:
    """`hybridcl sweep FOLDER --status` / `--summarize`: of a sweep folder, nothing run."""
    from hybridcl.sweep import finish_sweep
    from hybridcl.sweep_status import sweep_status

    if args.status and args.summarize:
        raise ConfigError("give --status or --summarize, not both")
    if args.grid or args.launcher != "inline":
        raise ConfigError("--status and --summarize take the sweep's folder alone, without --grid or --launcher")
    if args.status:
        print("\n".join(sweep_status(args.config)))
        return 0
    if finish_sweep(args.config, partial=True) is None:
        raise UserError(f"no point of the sweep in {args.config} has finished yet: nothing to summarize")
    return 0


def _report(args: argparse.Namespace) -> int:
    from hybridcl.report import load_results, write_report
    from hybridcl.report.sweep_summary import enclosing_sweep

    written = write_report(load_results(args.run_dir), args.run_dir, sweep=enclosing_sweep(args.run_dir))
    print("\n".join(str(path) for path in written))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from hybridcl.bench.compare import main as bench_main

    return bench_main(args.unparsed)


def _doctor(args: argparse.Namespace) -> int:
    from hybridcl.doctor import run_checks

    return run_checks(args.config, args.set)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybridcl", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hybridcl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    corpus = commands.add_parser("corpus", help="the offline CodeSearchNet-schema corpus")
    corpus_commands = corpus.add_subparsers(dest="corpus_command", required=True)

    build = corpus_commands.add_parser(
        "build", help="mine local source trees into DIR/<language>/{pretrain,train,valid,test}.jsonl.gz"
    )
    build.add_argument("--out", required=True, help="output directory")
    build.add_argument(
        "--languages",
        nargs="+",
        default=["python", "javascript"],
        choices=["python", "javascript"],
        help="languages to mine (default: both)",
    )
    build.add_argument(
        "--source",
        action="append",
        default=None,
        metavar="PATH",
        help="mine this tree instead of the defaults (repeatable)",
    )
    build.add_argument("--cache-dir", default=".cache/hybridcl", help="where npm packages for JavaScript are installed")
    build.add_argument("--seed", type=int, default=0, help="seed of the package-level split")
    build.set_defaults(run=_corpus_build)

    check = corpus_commands.add_parser("check", help="validate CodeSearchNet-schema files and count records")
    check.add_argument("path", help="a .jsonl / .jsonl.gz file or a directory of them")
    check.add_argument(
        "--language",
        choices=LANGUAGES,
        default=None,
        help="expected language (default: taken from the directory or file name)",
    )
    check.set_defaults(run=_corpus_check)

    from hybridcl.data.forms import FORMS

    replica = corpus_commands.add_parser(
        "replica",
        help="write a corpus in one of the forms CodeSearchNet is served in (default: the hub's parquet "
        "conversion, DIR/<language>/<split>/NNNN.parquet with hub column names), to run the hub path offline "
        "with --set data.hub_root=DIR",
    )
    replica.add_argument("--corpus", required=True, help="a corpus written by `hybridcl corpus build`")
    replica.add_argument("--out", required=True, help="output directory")
    replica.add_argument(
        "--languages",
        nargs="+",
        default=["python", "javascript"],
        choices=LANGUAGES,
        help="languages to copy (default: python javascript)",
    )
    replica.add_argument("--rows", type=int, default=3000, help="rows per split at most (default: 3000)")
    replica.add_argument("--shards", type=int, default=3, help="files per split (default: 3)")
    replica.add_argument(
        "--form",
        choices=FORMS,
        default=FORMS[0],
        help="parquet-conversion: <language>/<split>/NNNN.parquet (refs/convert/parquet); push-to-hub-parquet: "
        "<language>/<split>-NNNNN-of-NNNNN.parquet; release-zip: data/<language>.zip holding "
        "<language>/final/jsonl/<split>/*.jsonl.gz; release-jsonl: those files unpacked (default: parquet-conversion)",
    )
    replica.set_defaults(run=_corpus_replica)

    base = commands.add_parser("base", help="the offline stand-in base model")
    base_commands = base.add_subparsers(dest="base_command", required=True)
    base_build = base_commands.add_parser(
        "build",
        help="train a BPE tokenizer and pre-train a small T5 (span corruption + docstring<->code generation) or, "
        "with --arch causal, a small Llama (code LM + docstring<->code generation) on a mined corpus; killed and "
        "started again, it continues",
    )
    base_build.add_argument(
        "--arch",
        choices=BASE_ARCHS,
        default="t5",
        help="t5 (models/stand-in-base) or causal (models/stand-in-causal); default: t5",
    )
    base_build.add_argument("--corpus", required=True, help="a corpus written by `hybridcl corpus build`")
    base_build.add_argument("--out", required=True, help="output directory (save_pretrained layout)")
    base_build.add_argument("--size", choices=BASE_SIZES, default="tiny", help="model size (default: tiny)")
    base_build.add_argument("--steps", type=int, default=None, help="pre-training steps (default: the size's)")
    base_build.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the data order")
    base_build.add_argument(
        "--snapshots",
        type=_step_list,
        default=(),
        metavar="N,N,...",
        help="also save the base as it is after these steps, to OUT-step<N> (budget curves)",
    )
    _add_log_level(base_build, f"OUT/{BUILD_LOG}")
    base_build.set_defaults(run=_base_build)

    params = commands.add_parser("params", help="trainable and stored parameters per strategy and stage (no download)")
    params.add_argument("--config", default=None, help="YAML config (default: the seed preset)")
    params.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    params.set_defaults(run=_params)

    run = commands.add_parser("run", help="run every strategy of a config over all stages, then write the report")
    run.add_argument("config", help="YAML config, e.g. configs/local.yaml")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    run.add_argument("--out", default=None, help="run folder (default: runs/<config name>); reused to continue")
    run.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="number of seeds (overrides `seeds`); on a finished run it adds the missing seeds",
    )
    _add_log_level(run, f"OUT/{RUN_LOG}")
    run.set_defaults(run=_run)

    sweep = commands.add_parser(
        "sweep",
        help="one run per point of a grid of config values (e.g. lora.r x layer.count), then sweep_summary.json/.md "
        "and sweep_pareto.png; started again, it continues",
    )
    sweep.add_argument(
        "config", help="YAML config, e.g. configs/local.yaml (with --status or --summarize: the sweep's folder)"
    )
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="values of one config key (repeatable: the points are the cartesian product)",
    )
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    sweep.add_argument("--seeds", type=int, default=None, help="number of seeds of every point (overrides `seeds`)")
    sweep.add_argument("--out", default=None, help="sweep folder (default: runs/<name>-sweep); reused to continue")
    sweep.add_argument(
        "--launcher",
        choices=SWEEP_LAUNCHERS,
        default="inline",
        help="inline: the points one after another in this process (default); local: as jobs on this machine "
        "(submitit), --parallel at a time; slurm: as one Slurm job array (submitit), this command returning once "
        "they are submitted",
    )
    sweep.add_argument(
        "--parallel",
        type=_positive_int,
        default=None,
        metavar="N",
        help="with --launcher local: jobs run at once, each with cores/N torch threads (default 1)",
    )
    sweep.add_argument(
        "--jobs-per",
        choices=JOBS_PER,
        default="point",
        help="with --launcher local or slurm: one job per point (default), or per (point, seed)",
    )
    sweep.add_argument(
        "--slurm",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"with --launcher slurm, a resource of every job ({', '.join(SLURM_RESOURCES)}; time in minutes, default "
        "1440); kept in the sweep folder for the next submission",
    )
    sweep.add_argument(
        "--status", action="store_true", help="of the sweep folder given: one line per point (done, running, ...)"
    )
    sweep.add_argument(
        "--summarize",
        action="store_true",
        help="of the sweep folder given: the summary and RQ3 now, of the points finished so far (marked partial)",
    )
    _add_log_level(sweep, f"OUT/{SWEEP_LOG} and each point's {RUN_LOG}")
    sweep.set_defaults(run=_sweep)

    report = commands.add_parser(
        "report", help=f"regenerate {ANALYSIS_FILE} and {PLOTS_DIR}/ from a run's results JSON"
    )
    report.add_argument("run_dir", help=f"a run folder (holding {RESULTS_FILE})")
    report.set_defaults(run=_report)

    bench = commands.add_parser(
        "bench", add_help=False, help="hybridcl vs Seq2SeqTrainer side by side (`hybridcl bench --help`)"
    )
    bench.set_defaults(run=_bench)

    doctor = commands.add_parser(
        "doctor",
        help="check imports, WordNet, tree-sitter grammars, a hybrid pass, device; with a config, resolve its "
        "model and data (no download) and print its plan",
    )
    doctor.add_argument("config", nargs="?", default=None, help="YAML config to check, e.g. configs/seed.yaml")
    doctor.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    doctor.set_defaults(run=_doctor)
    return parser


def _add_log_level(command: argparse.ArgumentParser, where: str) -> None:
    command.add_argument(
        "--log-level",
        choices=list(LEVELS),
        default="info",
        help=f"debug: {where} also gets every optimizer step's loss, learning rate and time (default: info)",
    )


def pin_hash_seed() -> None:
    """CodeBLEU's dataflow score depends on set order, so on str hashing: restart this very command
    with PYTHONHASHSEED=0 (it only takes effect at interpreter start) for reproducible numbers."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unparsed = parser.parse_known_args(argv)
    if unparsed and args.command != "bench":  # bench hands its options to its own parser
        parser.error(f"unrecognized arguments: {' '.join(unparsed)}")
    args.unparsed = unparsed
    if argv is None and args.command in ("run", "sweep", "report"):
        pin_hash_seed()
    for key, value in LIBRARY_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    with console_logging(getattr(args, "log_level", "info")):
        try:
            return args.run(args)
        except UserError as error:
            print(f"hybridcl: error: {one_line(str(error))}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            after_echo = "\n" if sys.stderr.isatty() else ""  # the terminal's ^C ends no line
            resume = "the same command continues from the last finished stage"
            print(f"{after_echo}hybridcl: interrupted; {resume}", file=sys.stderr)
            return 130
        except Exception as error:
            logged = failure_log(error)
            if logged is None:  # a command without a log file: Python's traceback
                raise
            message = f"{type(error).__name__}: {one_line(str(error))}"
            print(f"hybridcl: error: {message} (full traceback in {logged})", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
