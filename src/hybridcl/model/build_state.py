"""A stand-in base build's progress on disk, so a killed `hybridcl base build` continues where it stopped.

The progress lives in `.<out>.build/` beside the output folder:
- `identity.json`: the settings and corpus fingerprint the build is for; another build for the same
  `--out` with other settings is refused rather than mixed in (a longer `--steps` is the same build);
- `tokenizer.json`: the trained tokenizer (saved once; training it again would give the same one);
- `state.safetensors`: model parameters, the optimizer's state tensors and, in its metadata, the step,
  the loss of every step, tokens seen and time spent. One atomic write, so the parameters and the step
  always agree.
The folder is removed when the build has saved its output.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import torch
from safetensors.torch import load_file, save_file

from hybridcl.atomic import atomic_path, write_text
from hybridcl.data.schema import DataError

STATE = "state.safetensors"
IDENTITY = "identity.json"
TOKENIZER = "tokenizer.json"
RESUMABLE_KEYS = ("steps",)  # settings a build may change when it continues

logger = logging.getLogger(__name__)


class BuildState:
    def __init__(self, folder: Path, identity: dict):
        self.folder, self.identity = folder, identity
        self.step, self.tokens = 0, 0
        self.losses: list[float] = []
        self.train_s = self.tokenizer_s = 0.0
        self.resumed: list[int] = []  # the steps at which a build continued
        self._optimizer_scalars: dict = {}

    @classmethod
    def open(cls, out_dir: Path, identity: dict, progress: bool = True) -> "BuildState":
        folder = out_dir.with_name(f".{out_dir.name}.build")
        state = cls(folder, identity)
        if (folder / IDENTITY).is_file():
            state._check_identity(json.loads((folder / IDENTITY).read_text()))
            state._load_progress()
            if progress and state.step:
                logger.info(f"continuing the build in {folder} at step {state.step:,}")
        else:
            folder.mkdir(parents=True, exist_ok=True)
            write_text(folder / IDENTITY, json.dumps(identity, indent=2) + "\n")
        return state

    def _check_identity(self, saved: dict) -> None:
        keys = sorted((set(saved) | set(self.identity)) - set(RESUMABLE_KEYS))
        differ = [key for key in keys if saved.get(key) != self.identity.get(key)]
        if differ:
            changes = ", ".join(f"{key}: {saved.get(key)!r} -> {self.identity.get(key)!r}" for key in differ)
            raise DataError(
                f"{self.folder} holds an unfinished build with other settings ({changes}); "
                f"build with those settings to continue it, or delete {self.folder} to start over"
            )

    def _load_progress(self) -> None:
        if not (self.folder / STATE).is_file():
            return
        from safetensors import safe_open

        with safe_open(str(self.folder / STATE), framework="pt") as file:
            progress = json.loads(file.metadata()["progress"])
        self.step, self.tokens, self.losses = progress["step"], progress["tokens"], progress["losses"]
        self.train_s, self.tokenizer_s = progress["train_s"], progress["tokenizer_s"]
        self.resumed = progress["resumed"] + [self.step]
        self._optimizer_scalars = progress["optimizer"]

    # ------------------------------------------------------------------------------------ tokenizer

    def saved_tokenizer(self) -> str | None:
        """The tokenizer (`tokenizers` JSON) an earlier attempt of this build trained, if any."""
        if not (self.folder / TOKENIZER).is_file():
            return None
        self.tokenizer_s = float((self.folder / "tokenizer.seconds").read_text())
        return (self.folder / TOKENIZER).read_text()

    def save_tokenizer(self, backend_json: str, seconds: float) -> None:
        """The trained tokenizer (`tokenizers` JSON), saved once: training it again gives the same one."""
        self.tokenizer_s = seconds
        write_text(self.folder / "tokenizer.seconds", repr(seconds))
        write_text(self.folder / TOKENIZER, backend_json)

    # ------------------------------------------------------------------------------------- training

    def advance(self, loss: float, tokens: int, seconds: float) -> None:
        self.step += 1
        self.losses.append(loss)
        self.tokens += tokens
        self.train_s += seconds

    def save(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        tensors = {f"model.{name}": p.detach().contiguous() for name, p in model.named_parameters()}
        scalars: dict[str, dict] = {}
        for index, values in optimizer.state_dict()["state"].items():
            for key, value in values.items():
                if torch.is_tensor(value):
                    tensors[f"optimizer.{index}.{key}"] = value.detach().contiguous()
                else:
                    scalars.setdefault(str(index), {})[key] = value
        progress = {
            "step": self.step,
            "tokens": self.tokens,
            "losses": self.losses,
            "train_s": self.train_s,
            "tokenizer_s": self.tokenizer_s,
            "resumed": self.resumed,
            "optimizer": scalars,
        }
        with atomic_path(self.folder / STATE) as tmp:
            save_file(tensors, str(tmp), metadata={"progress": json.dumps(progress)})

    def restore(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Put the saved parameters and optimizer state into a freshly built model and optimizer."""
        if not (self.folder / STATE).is_file():
            return
        tensors = load_file(str(self.folder / STATE))
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                parameter.copy_(tensors[f"model.{name}"])
        state: dict[int, dict] = {int(i): dict(values) for i, values in self._optimizer_scalars.items()}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def replace_folder(folder: Path, write: Callable[[Path], None], keep: Sequence[str] = ()) -> None:
    """`write` fills a temporary sibling of `folder`, which then replaces `folder` (readers never see half).
    The files of `folder` named in `keep` move into the new folder (renamed: a log being written goes on)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        write(staging)
        for name in keep:
            if (folder / name).is_file():
                os.replace(folder / name, staging / name)
        os.chmod(staging, 0o755)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, old)
            os.replace(staging, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
