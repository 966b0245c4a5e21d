"""Run by test_train under `torchrun --nproc_per_node 2`: one stage on gloo, then each rank saves its weights."""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from hybridcl.model.hybrid import HybridModel
from hybridcl.settings import LoraSettings, TrainConfig
from hybridcl.strategies import get_strategy
from hybridcl.train import make_accelerator, prepare_stage, train_stage
from test_train import DATA, TASKS, loader
from tiny_models import tiny_t5

out = Path(sys.argv[1])
train = TrainConfig(epochs=1, batch_size=4, lr=5e-3, seed=0)
accelerator = make_accelerator(train)
model = HybridModel(tiny_t5(), LoraSettings(r=4, alpha=8))
prepare_stage(model, get_strategy("task_specific"), TASKS, 1, seed=0)
before = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
stats = train_stage(
    model, loader(DATA["t1"], 4, accelerator.num_processes, accelerator.process_index), train, accelerator
)
params = {name: p.detach().contiguous() for name, p in model.named_parameters() if name in before}
changed = any(not torch.equal(before[name], params[name]) for name in params)
metadata = {"world_size": str(accelerator.num_processes), "examples": str(stats.examples), "changed": str(changed)}
save_file(params, str(out / f"rank{accelerator.process_index}.safetensors"), metadata=metadata)
