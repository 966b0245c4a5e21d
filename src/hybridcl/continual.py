"""The continual runner: every strategy of the config over stages 0..S, every task evaluated after every stage.

    run = ContinualRun(cfg, out_dir)
    results = run.run()        # trains, evaluates, writes runs/<name>/... (docs/design.md section 4)

Each finished stage is a folder `<strategy dir>/seed<k>/stage<s>/` holding the components trained at
that stage (LoRA adapters in PEFT format, layers as safetensors, the base for `full_finetune`), the
predictions per task (jsonl) and, written last and atomically, `stage.json`. A folder with
`stage.json` is done: a run started again on the same output folder restores it instead of training.
The results JSON is rebuilt from those files after every stage (docs/results-schema.md; the
figures come from `hybridcl.results`); it says `finished: true` only once every stage exists and
analysis.md and the plots are written.

A strategy's hooks (hybridcl.strategies) choose a stage's data and an extra loss term before it
trains; its `after_stage` runs once the stage's components are saved, and again whenever a finished
stage is restored or copied, with a `state` dict kept across the stages of that strategy and seed.

A run folder is bound to the settings that change results once a stage in it has finished
(hybridcl.continuation says which may change). Temporary files of writes that a kill interrupted are
removed when the run starts again.

Under `torchrun` every process trains and generates its share of each evaluation; the main process
alone scores and writes files, and every process waits for each stage.json before going on.

Strategies whose first stages are identical (same components by role, same data, same seed) train
that prefix once: the later strategy copies the earlier one's finished stage, renaming components.
With identity layer init every strategy's stage 0 is the base model, so stage 0 is evaluated once
per seed (in `stage0/`) and shared.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import logging
import platform
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file

from hybridcl import folder_lock, versions
from hybridcl.atomic import atomic_path, remove_temp_files, write_text
from hybridcl.config import Config, plain_config
from hybridcl.continuation import continues_finished_stages
from hybridcl.data.batching import EncodedSet, encode_texts
from hybridcl.data.csn import TaskData, format_skips
from hybridcl.data.tasks import Task, load_task, prompt_template, task_texts
from hybridcl.evaluate import evaluate_task
from hybridcl.faults import kill_point
from hybridcl.logs import FILE_ONLY, RUN_LOG, duration, log_file, text_digest
from hybridcl.metrics import require_wordnet
from hybridcl.model.base import base_config, load_base
from hybridcl.model.families import CAUSAL, base_kind, check_layer_settings
from hybridcl.model.hybrid import HybridModel, check_target_modules
from hybridcl.offline_assets import build_offline_assets
from hybridcl.params import count_params
from hybridcl.results import results_tree, strategy_comparisons, strategy_results
from hybridcl.run_files import RESULTS_FILE, results_dir_name
from hybridcl.settings import IDENTITY_INITS, ConfigError
from hybridcl.sources import SOURCES_FILE, check_continuation, describe, record_sources, records, resolve_sources
from hybridcl.strategies import StageContext, Strategy, Use, get_strategy, shared_prefix
from hybridcl.tracking import Tracker, check_installed
from hybridcl.train import (
    checkpoint_gradients,
    make_accelerator,
    prepare_stage,
    resolve_mixed_precision,
    stage_loader,
    train_stage,
)

logger = logging.getLogger(__name__)

SKIP_WARNING_SHARE = 0.2  # a split that finds more than this share of the records it looks at unusable gets a warning
CHOSEN_SKIP = "code_too_long"
WRITING_LOCK = ".writing.lock"


@dataclasses.dataclass
class LoadedTask:
    task: Task
    pairs: list  # the evaluation sample (eval.split): sources and references of the evaluation
    train: EncodedSet
    valid: EncodedSet
    data: dict  # counts and skips, for the results


class ContinualRun:
    """`seeds`: the seeds this process trains (default: every seed of the config). A seed job of a sweep
    (`--jobs-per seed`) trains one; the results file it writes still holds every seed finished in the folder."""

    def __init__(self, cfg: Config, out_dir: str | Path, seeds: list[int] | None = None):
        self.cfg = cfg
        self.out = Path(out_dir)
        self.stream = {task.key: task for task in cfg.tasks}
        self.tasks_order = tuple(self.stream)
        self.strategies = [get_strategy(name).configured(cfg.cl) for name in cfg.strategies]
        self.seeds = cfg.seed_values
        self.run_seeds = self.seeds if seeds is None else seeds

    # ---------------------------------------------------------------------------------- set-up

    def prepare(self) -> None:
        """Everything that can fail on bad input, before anything is trained or written to the folder."""
        require_wordnet()  # before hours of training, not after
        continuing = continues_finished_stages(self.cfg, self.out)
        self.created = self._created() if continuing else _now()
        if self.cfg.offline.build:
            build_offline_assets(self.cfg)
        check_installed(self.cfg.train.log_with)
        self.accelerator = make_accelerator(self.cfg.train, tracking_dir=self.out / "tracking")
        self.tracker = Tracker(self.accelerator, plain_config(self.cfg))
        self._main = self.accelerator.is_main_process  # the one process that writes files
        self.device = self.accelerator.device
        self.precision = {
            "train": self.accelerator.mixed_precision,
            "generation": resolve_mixed_precision(self.cfg.train.mixed_precision, self.device.type, generation=True),
        }
        sources = resolve_sources(self.cfg)
        check_layer_settings(base_config(self.cfg.model, sources["model"]), self.cfg.layer)
        if continuing:
            check_continuation(self.out, sources)
        self.sources = records(sources)
        for key, record in self.sources.items():
            logger.info(f"{key}: {describe(record)}")
        self.base, self.tokenizer = load_base(self.cfg.model, source=sources["model"])
        if self.tokenizer is None:
            raise ConfigError(f"model {self.cfg.model.name!r} has no tokenizer; a run needs one to read the data")
        check_target_modules(self.base, self.cfg.lora.target_modules)
        loaded = {
            key: load_task(self.cfg.data, task, sources, self.cfg.eval.split) for key, task in self.stream.items()
        }
        logger.info(data_summary(loaded))
        self.tasks = {key: self._encode_task(self.stream[key], data) for key, data in loaded.items()}
        self.params = {
            s.name: count_params(s, self.tasks_order, self.base, self.cfg.lora, self.cfg.layer) for s in self.strategies
        }
        if self._main:
            removed = self._remove_temp_files()
            if removed:
                logger.info(f"removed {removed} temporary file(s) of writes interrupted in an earlier run")
            write_text(self.out / "config.yaml", config_yaml(self.cfg))
            if not continuing or not (self.out / SOURCES_FILE).is_file():
                record_sources(self.out, sources)
        self.write_results()

    def _remove_temp_files(self) -> int:
        """Those of this process's seeds only, when other seeds' jobs may be writing beside it."""
        if not self.out.is_dir():
            return 0
        if self.run_seeds == self.seeds:
            return remove_temp_files(self.out)
        return sum(remove_temp_files(folder) for seed in self.run_seeds for folder in self.out.glob(f"*/seed{seed}"))

    def _created(self) -> str:
        """When the run in this folder started: kept across restarts, in the results file."""
        try:
            return json.loads((self.out / RESULTS_FILE).read_text())["created"]
        except (OSError, ValueError, KeyError, TypeError):
            return _now()

    def _encode_task(self, task: Task, data: TaskData) -> LoadedTask:
        """The task's train and evaluation ids: (source, target) for a T5 base, (prompt, completion) for a causal."""
        data_cfg = self.cfg.data
        prompt = prompt_template(data_cfg, task) if base_kind(self.base.config) == CAUSAL else None
        encode = lambda pairs: encode_texts(  # noqa: E731
            *task_texts(task, pairs, data_cfg.task_prefix),
            self.tokenizer,
            task.kind,
            data_cfg.max_source_tokens,
            data_cfg.max_target_tokens,
            data_cfg.cache_dir,
            prompt=prompt,
        )
        info = {
            "counts": data.counts,
            "skips": dict(sorted(data.skips.items())),
            "split_skips": {split: dict(sorted(skips.items())) for split, skips in data.split_skips.items()},
        }
        return LoadedTask(task, data.valid, encode(data.train), encode(data.valid), info)

    # -------------------------------------------------------------------------------- the run

    def run(self) -> dict:
        self.prepare()
        for seed in self.run_seeds:
            for strategy in self.strategies:
                self._run_strategy(strategy, seed)
            kill_point("seed done")
        return self.finish()

    def finish(self) -> dict:
        """Report first, then the results file that says `finished`: a kill in between leaves it unfinished."""
        from hybridcl.report import write_report

        if self._main:
            with self._writing():
                results = self.collect(finished=self._complete())
                write_report(results, self.out)
                _write_json(self.out / RESULTS_FILE, results)
        else:
            results = self.collect(finished=self._complete())
        if results["finished"]:
            self.tracker.log_cl_figures(results)
        # Every process waits for the report, then leaves the process group: a process that exits while
        # another still talks to it aborts (SIGABRT), and torchrun then stops the rest mid-write.
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()
        return results

    def _run_strategy(self, strategy: Strategy, seed: int) -> None:
        n_stages = strategy.num_stages(self.tasks_order)
        if (self.stage_dir(strategy, seed, n_stages) / "stage.json").is_file():
            logger.info(f"{strategy.name} seed {seed}: every stage finished before")
            return
        with self.tracker.run(f"{strategy.name}/seed{seed}", strategy=strategy.name, seed=seed):
            self._run_stages(strategy, seed, n_stages)

    def _run_stages(self, strategy: Strategy, seed: int, n_stages: int) -> None:
        model = HybridModel(copy.deepcopy(self.base), self.cfg.lora, self.cfg.layer).to(self.device)
        if self.cfg.train.gradient_checkpointing:
            checkpoint_gradients(model)
        self._stage0(model, strategy, seed)
        self.tracker.log_stage(self._read_stage(strategy, seed, 0), losses=False)
        train_sets = {key: task.train for key, task in self.tasks.items()}
        state = {}  # the strategy's own, across this seed's stages (StageContext.state)
        for index in range(1, n_stages + 1):
            stage = prepare_stage(model, strategy, self.tasks_order, index, seed)
            folder = self.stage_dir(strategy, seed, index)
            context = StageContext(
                model, stage, self.tasks_order, seed, train_sets, folder, state, main_process=self._main
            )
            donor = self._donor(strategy, index)
            finished_before = (folder / "stage.json").is_file()
            if finished_before:
                self._restore(strategy, context)
                done = "restored (finished before)"
            elif donor is not None:
                self._copy_stage(strategy, donor, context)
                done = f"copied from {donor.name} (identical up to here)"
            else:
                logger.info(f"{strategy.name} stage {index} seed {seed}: start", extra=FILE_ONLY)
                start = time.perf_counter()
                self._train_and_evaluate(strategy, context)
                done = f"trained and evaluated in {duration(time.perf_counter() - start)}"
            logger.info(f"{strategy.name} stage {index} seed {seed}: {done}")
            # a stage trained now logged its losses step by step; a restored or copied one has them in stage.json
            trained_now = not finished_before and donor is None
            self.tracker.log_stage(self._read_stage(strategy, seed, index), losses=not trained_now)
            self.write_results()

    def stage_dir(self, strategy: Strategy, seed: int, index: int) -> Path:
        if index == 0 and self._shared_stage0():
            return self.out / "stage0" / f"seed{seed}"
        return stage_folder(self.out, strategy, seed, index)

    def _shared_stage0(self) -> bool:
        """Identity init (a T5 layer's `identity`, a causal base's `copy` and `fresh`) + LoRA's zero B: every
        strategy's stage 0 is the base model itself."""
        return self.cfg.layer.init in IDENTITY_INITS

    def _donor(self, strategy: Strategy, index: int) -> Strategy | None:
        """An earlier strategy of the config that reaches the same state after stage `index`."""
        for other in self.strategies[: self.strategies.index(strategy)]:
            if shared_prefix(other, strategy, self.tasks_order) >= index:
                return other
        return None

    # -------------------------------------------------------------------------------- stages

    def _stage0(self, model: HybridModel, strategy: Strategy, seed: int) -> None:
        folder = self.stage_dir(strategy, seed, 0)
        if (folder / "stage.json").is_file():
            return
        if self._shared_stage0():
            model.activate(None, None)
            uses = {key: Use() for key in self.tasks_order}  # no adapter, no layer
        else:  # fresh components of each task (a random layer is not the identity)
            for index in range(1, strategy.num_stages(self.tasks_order) + 1):
                prepare_stage(model, strategy, self.tasks_order, index, seed)
            uses = {key: strategy.evaluation(self.tasks_order, 0, key) for key in self.tasks_order}
        model.freeze()
        name = "every strategy" if self._shared_stage0() else strategy.name
        logger.info(f"{name} stage 0 seed {seed}: start", extra=FILE_ONLY)
        start = time.perf_counter()
        evaluation = self._evaluate_all(model, uses, folder, f"{strategy.name} s0 seed{seed}")
        self._mark_done(folder, {"stage": 0, "seed": seed, "train": None, "eval": evaluation})
        logger.info(f"{name} stage 0 seed {seed}: evaluated in {duration(time.perf_counter() - start)}")

    def _train_and_evaluate(self, strategy: Strategy, context: StageContext) -> None:
        """Train the stage on the strategy's data (with its extra loss), save what it trained, evaluate."""
        train = dataclasses.replace(self.cfg.train, seed=context.seed)
        kind = base_kind(self.base.config)
        loader = stage_loader(
            strategy.stage_data(context), self.tokenizer.pad_token_id, train, self.accelerator, kind=kind
        )
        desc = f"{strategy.name} s{context.stage.index} seed{context.seed}"
        extra_loss = strategy.extra_loss(context)
        log_losses = functools.partial(self.tracker.log_losses, context.stage.index)
        stats = train_stage(
            context.model, loader, train, self.accelerator, desc=desc, extra_loss=extra_loss, on_losses=log_losses
        )
        self._save_components(context.model, context.stage.trainable, context.folder)
        strategy.after_stage(context)
        self._finish_stage(strategy, context, stats.to_dict(), desc)

    def _copy_stage(self, strategy: Strategy, donor: Strategy, context: StageContext) -> None:
        """Take the donor's finished stage: its trained components under this strategy's names, its figures."""
        model, trainable, folder = context.model, context.stage.trainable, context.folder
        source = self.stage_dir(donor, context.seed, context.stage.index)
        donor_names = _renaming(strategy, donor, self.tasks_order)
        for name in trainable.loras:
            weights = load_file(str(source / "lora" / donor_names["lora", name] / "adapter_model.safetensors"))
            model.set_lora_state(name, weights)
        for name in trainable.layers:
            model.set_layer_state(name, load_file(str(source / "layers" / f"{donor_names['layer', name]}.safetensors")))
        if trainable.base:
            self._load_base_weights(model, source)
        self._save_components(model, trainable, folder)
        strategy.after_stage(dataclasses.replace(context, origin="copied"))
        donor_stage = json.loads((source / "stage.json").read_text())
        if self._main:
            _copy_tree(source / "predictions", folder / "predictions")
        donor_stage.update(shared_with=donor_stage.get("shared_with") or donor.name)
        for key, evaluation in donor_stage["eval"].items():  # the same roles, under this strategy's names
            use = strategy.evaluation(self.tasks_order, context.stage.index, key)
            evaluation["components"] = dataclasses.asdict(use)
        self._mark_done(folder, donor_stage)

    def _restore(self, strategy: Strategy, context: StageContext) -> None:
        """A finished stage from an earlier (interrupted) run: load what it trained, train nothing."""
        model, trainable, folder = context.model, context.stage.trainable, context.folder
        for name in trainable.loras:
            model.load_lora(name, folder)
        for name in trainable.layers:
            model.load_layer(name, folder)
        if trainable.base:
            self._load_base_weights(model, folder)
        strategy.after_stage(dataclasses.replace(context, origin="restored"))

    def _finish_stage(self, strategy: Strategy, context: StageContext, train_stats: dict, desc: str) -> None:
        """Evaluate every task with its components after this stage, then mark the stage done."""
        index, model = context.stage.index, context.model
        model.freeze()
        uses = {key: strategy.evaluation(self.tasks_order, index, key) for key in self.tasks_order}
        evaluation = self._evaluate_all(model, uses, context.folder, desc)
        record = {"stage": index, "seed": context.seed, "shared_with": None, "train": train_stats, "eval": evaluation}
        self._mark_done(context.folder, record)

    def _mark_done(self, folder: Path, record: dict) -> None:
        """Write stage.json, last: the stage is done. Every process waits for it (and the files before
        it), so all agree on what is finished and may read what the main process wrote."""
        if self._main:
            _write_json(folder / "stage.json", record)
        self.accelerator.wait_for_everyone()

    # ------------------------------------------------------------------------------ evaluation

    def _evaluate_all(self, model: HybridModel, uses: dict, folder: Path, desc: str) -> dict:
        """Every process generates its share; the main process scores, writes the predictions and gets
        the figures (the others an empty dict)."""
        evaluation = {}
        for key, use in uses.items():
            model.activate(use.lora, use.layer)
            loaded = self.tasks[key]
            result = evaluate_task(
                model,
                loaded.pairs,
                loaded.valid,
                self.tokenizer,
                task=loaded.task,
                settings=self.cfg.eval,
                device=self.device,
                desc=f"{desc} {key}",
                precision=self.precision["generation"],
                accelerator=self.accelerator,
                task_prefix=self.cfg.data.task_prefix,
            )
            if result is None:
                continue
            scores, rows, cost = result
            _write_jsonl(folder / "predictions" / f"{key}.jsonl", rows)
            kill_point("evaluated")
            evaluation[key] = {
                "scores": scores["corpus"],
                "bleu_stats": scores["bleu_stats"],  # per example: the results' paired bootstrap rescores from these
                "notes": scores["notes"],
                "components": dataclasses.asdict(use),
                "cost": {**cost.to_dict(), "score_time_s": sum(scores["seconds"].values())},
            }
        return evaluation

    # ------------------------------------------------------------------------------ components

    def _save_components(self, model: HybridModel, trainable, folder: Path) -> None:
        if not self._main:
            return
        for name in trainable.loras:
            model.save_lora(name, folder)
        for name in trainable.layers:
            model.save_layer(name, folder)
        if trainable.base:
            _atomic_save_file(_untied_state(model.base), folder / "base.safetensors")

    def _load_base_weights(self, model: HybridModel, folder: Path) -> None:
        """strict=False: the file holds one name per tied tensor (see _untied_state)."""
        model.base.load_state_dict(load_file(str(folder / "base.safetensors")), strict=False)

    # ------------------------------------------------------------------------------- results

    def write_results(self) -> None:
        if self._main:
            with self._writing():
                _write_json(self.out / RESULTS_FILE, self.collect())

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """The results file (and report) of a folder whose seeds run as separate jobs: one writer at a time,
        each collecting every stage finished so far, so the last write holds them all. The folder's first
        `created` stays."""
        with folder_lock.exclusive(self.out / WRITING_LOCK):
            if (self.out / RESULTS_FILE).is_file():
                self.created = self._created()
            yield

    def collect(self, finished: bool = False) -> dict:
        """The results JSON (docs/results-schema.md) from the stage files present now."""
        records = {s.name: self._records(s) for s in self.strategies}
        strategies = {
            s.name: strategy_results(s, self.tasks_order, records[s.name], self.params[s.name], self._headlines())
            for s in self.strategies
        }
        return results_tree(
            plain_config(self.cfg),
            created=self.created,
            versions=versions(),
            device={
                "type": self.device.type,
                "name": _device_name(self.device),
                "processes": self.accelerator.num_processes,
                "precision": self.precision,
            },
            seeds=self.seeds,
            data={key: task.data for key, task in self.tasks.items()},
            sources=self.sources,
            strategies=strategies,
            finished=finished,
            comparisons=strategy_comparisons(self.tasks_order, records),
            task_info={key: task.as_record() for key, task in self.stream.items()},
        )

    def _headlines(self) -> dict[str, str]:
        return {key: task.headline for key, task in self.stream.items()}

    def _complete(self) -> bool:
        """Whether every stage of every strategy and seed has finished."""
        return all(
            (self.stage_dir(s, seed, index) / "stage.json").is_file()
            for s in self.strategies
            for seed in self.seeds
            for index in range(s.num_stages(self.tasks_order) + 1)
        )

    def _records(self, strategy: Strategy) -> list[list[dict | None]]:
        """Each seed's stage records, stages 0..S: the parsed stage.json, None where not finished."""
        n_stages = strategy.num_stages(self.tasks_order)
        return [[self._read_stage(strategy, seed, s) for s in range(n_stages + 1)] for seed in self.seeds]

    def _read_stage(self, strategy: Strategy, seed: int, index: int) -> dict | None:
        path = self.stage_dir(strategy, seed, index) / "stage.json"
        return json.loads(path.read_text()) if path.is_file() else None


# ------------------------------------------------------------------------------------ helpers


def _renaming(strategy: Strategy, donor: Strategy, tasks) -> dict[tuple[str, str], str]:
    """(kind, this strategy's component name) -> the donor's name for the same role."""
    donor_roles = donor.roles(tasks)
    return {
        (role.split(":")[0], name): donor_roles[role]
        for role, name in strategy.roles(tasks).items()
        if role in donor_roles
    }


def data_summary(tasks: dict[str, TaskData]) -> str:
    """Per task and split: records read, examined (in sampling order), used, and skipped by reason; a
    warning line for each split that skipped more than SKIP_WARNING_SHARE of what it looked at."""
    lines, warnings = ["data: records read -> examined -> used (sampled), skipped by reason"], []
    width = max([11, *map(len, tasks)])
    for key, data in tasks.items():
        for split in ("train", data.eval_split):
            read, examined, used = (data.counts[f"{split}{suffix}"] for suffix in ("_read", "_examined", ""))
            skips = data.split_skips[split]
            skipped = sum(skips.values())
            lines.append(
                f"  {key:<{width}} {split:<5} {read:>9,} -> {examined:>9,} -> {used:>7,}   "
                f"skipped {skipped:,}{format_skips(skips, ': ')}"
            )
            bad = skipped - skips[CHOSEN_SKIP]  # code_too_long is data.max_code_chars at work, not bad data
            if bad > SKIP_WARNING_SHARE * (bad + used):
                warnings.append(
                    f"warning: {key} {split}: {bad / (bad + used):.0%} of {bad + used:,} "
                    f"records looked at were unusable ({format_skips(skips)}); check the data"
                )
    return "\n".join(lines + warnings)


def config_yaml(cfg: Config) -> str:
    """The text of a run folder's config.yaml: the resolved config."""
    return yaml.safe_dump(plain_config(cfg), sort_keys=False)


@contextmanager
def run_folder(cfg: Config, out: str | Path, seed: int | None = None) -> Iterator[None]:
    """The run folder (or one seed of it), held by this process (hybridcl.folder_lock), and its log file
    (hybridcl.logs), whose header names the config.yaml the run writes. The lock comes first: a refused process
    writes nothing there."""
    header = {"config.yaml sha256": text_digest(config_yaml(cfg)), **({} if seed is None else {"seed job": str(seed)})}
    with folder_lock.hold(out, seed) as dead_holder, log_file(Path(out) / RUN_LOG, header):
        if dead_holder:
            held = "run folder's" if seed is None else f"seed {seed}'s"
            logger.info(f"took over the {held} lock from {folder_lock.describe(dead_holder)}, which has ended")
        yield


def finished_seeds(cfg: Config, out: str | Path) -> list[int]:
    """The seeds whose every strategy has finished its last stage in the run folder."""
    tasks = tuple(task.key for task in cfg.tasks)
    strategies = [get_strategy(name).configured(cfg.cl) for name in cfg.strategies]
    return [
        seed
        for seed in cfg.seed_values
        if all((stage_folder(out, s, seed, s.num_stages(tasks)) / "stage.json").is_file() for s in strategies)
    ]


def stage_folder(out: str | Path, strategy: Strategy, seed: int, index: int) -> Path:
    """Where a stage of a strategy and seed keeps its files (stage 0 when not shared: ContinualRun.stage_dir)."""
    return Path(out) / results_dir_name(strategy.name) / f"seed{seed}" / f"stage{index}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def _write_json(path: Path, value) -> None:
    write_text(path, json.dumps(value, indent=1, ensure_ascii=False) + "\n")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def _untied_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with one name per storage: T5 ties `shared`, both `embed_tokens` and (often)
    `lm_head` to one tensor, and safetensors refuses to save shared memory twice."""
    state, seen = {}, set()
    for key, value in module.state_dict().items():
        if value.data_ptr() not in seen:
            seen.add(value.data_ptr())
            state[key] = value.detach().contiguous()
    return state


def _atomic_save_file(state: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))


def _copy_tree(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
