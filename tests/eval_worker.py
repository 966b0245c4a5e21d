"""Run by test_sharded_eval, as one process or under `torchrun --nproc_per_node N`. Every rank but 0
fails at its first write under the output folder, so a passing run shows that rank 0 wrote every file.

    eval_worker.py evaluate OUT KEY=VALUE...   a seeded model evaluates the python task of configs/smoke.yaml
                                                (with the overrides); rank 0 writes predictions.jsonl, scores.json
    eval_worker.py run OUT ARGS...             `hybridcl run ARGS --out OUT`
"""

import json
import os
import sys
from pathlib import Path

from hybridcl.atomic import write_text
from hybridcl.config import load_config
from hybridcl.data.batching import encode_records
from hybridcl.data.csn import load_task_data
from hybridcl.data.tasks import csn_pairs
from hybridcl.evaluate import evaluate_task
from hybridcl.model.base import load_base
from hybridcl.model.hybrid import HybridModel
from hybridcl.train import make_accelerator
from smoke import SMOKE

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
CHANGES = ("os.rename", "os.mkdir", "os.remove", "os.rmdir", "os.chmod", "shutil.rmtree", "shutil.copytree")


def forbid_writes_under(folder: Path) -> None:
    """An audit hook: opening for writing, renaming, creating or removing anything under `folder` raises."""
    root = os.path.join(os.path.abspath(folder), "")
    inside = lambda path: os.path.join(os.path.abspath(os.fsdecode(path)), "").startswith(root)  # noqa: E731

    def hook(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[2], int) and args[2] & WRITE_FLAGS:
            paths = args[:1]
        elif event in CHANGES:
            paths = args
        else:
            return
        for path in paths:
            if isinstance(path, (str, bytes, os.PathLike)) and inside(path):
                raise PermissionError(f"rank {os.environ['RANK']} wrote {path} ({event})")

    sys.addaudithook(hook)


def evaluate_seeded(cfg, out: Path, accelerator) -> None:
    """The base with a seeded random extra layer, evaluated on the python task's validation examples."""
    base, tokenizer = load_base(cfg.model)
    model = HybridModel(base, cfg.lora, cfg.layer)
    model.add_layer("extra", seed=7)
    model.activate(None, "extra")
    records = load_task_data(cfg.data, "python").valid
    encoded = encode_records(
        records,
        tokenizer,
        direction=cfg.data.direction,
        max_source_tokens=cfg.data.max_source_tokens,
        max_target_tokens=cfg.data.max_target_tokens,
    )
    python = next(task for task in cfg.tasks if task.key == "python")
    result = evaluate_task(
        model,
        csn_pairs(records, cfg.data.direction),
        encoded,
        tokenizer,
        task=python,
        settings=cfg.eval,
        device=accelerator.device,
        accelerator=accelerator,
    )
    if result is not None:
        scores, rows, _ = result
        write_text(out / "predictions.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
        write_text(out / "scores.json", json.dumps(scores["corpus"]))


def main(mode: str, out: str, *args: str) -> None:
    if os.environ.get("RANK", "0") != "0":
        forbid_writes_under(Path(out))
    if mode == "evaluate":
        cfg = load_config(SMOKE, list(args))
        accelerator = make_accelerator(cfg.train)
        evaluate_seeded(cfg, Path(out), accelerator)
        accelerator.wait_for_everyone()  # rank 1 must not exit while rank 0 still scores (SIGABRT)
        accelerator.end_training()
    else:
        from hybridcl.cli import main as cli

        sys.exit(cli(["run", *args, "--out", out]))


if __name__ == "__main__":
    main(*sys.argv[1:])
