"""A causal base through the whole protocol: every strategy of the registry, the memory switches, the refusals
before any work, and `hybridcl params` at Qwen2.5-Coder-0.5B's real shape."""

from __future__ import annotations

import json
import re

import pytest
import torch
from peft import LoraConfig, TaskType, get_peft_model
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from hybridcl.cli import main
from hybridcl.continual import ContinualRun
from hybridcl.model.base import QWEN25_CODER_05B, QWEN25_CODER_05B_PARAMETERS, load_base
from hybridcl.model.hybrid import HybridModel
from hybridcl.model.pretrain import build_stand_in_base
from hybridcl.settings import LayerSettings, LoraSettings, ModelConfig
from hybridcl.strategies import STRATEGIES
from hybridcl.train import checkpoint_gradients
from smoke import smoke_config
from test_cli_errors import assert_one_line_error, smoke_args
from tiny_models import tiny_t5

CAUSAL_LAYER = ("layer.position=top", "layer.init=copy")


@pytest.fixture(scope="module")
def causal_assets(smoke_assets, tmp_path_factory):
    """The smoke corpus with a micro causal stand-in in place of the T5 one."""
    base = tmp_path_factory.mktemp("causal") / "base"
    build_stand_in_base(smoke_assets["corpus"], base, size="micro", steps=20, arch="causal", progress=False)
    return {**smoke_assets, "base": base}


def test_every_strategy_of_the_registry_runs_on_a_causal_base(causal_assets, tmp_path):
    cfg = smoke_config(causal_assets, *CAUSAL_LAYER, f"strategies=[{', '.join(STRATEGIES)}]")
    results = ContinualRun(cfg, tmp_path / "run").run()
    assert results["finished"]
    lines = (tmp_path / "run" / "analysis.md").read_text()
    for name in STRATEGIES:
        assert f"`{name}`" in lines
    predictions = [json.loads(line) for path in (tmp_path / "run").rglob("*.jsonl") for line in path.open()]
    assert predictions and all(isinstance(row["prediction"], str) for row in predictions)
    # the completion only: no prediction repeats its prompt's cue
    assert not any(row["prediction"].startswith("generate ") for row in predictions)


def _loss_and_grads(model: HybridModel, batch: dict) -> tuple[float, list[torch.Tensor]]:
    model.zero_grad()
    torch.manual_seed(0)  # the same dropout masks in both passes
    loss = model(**batch).loss
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.trainable_parameters()]


def _tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
    )
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("kind", ["seq2seq", "causal"])
def test_gradient_checkpointing_leaves_loss_and_gradients_unchanged(kind):
    torch.manual_seed(1)
    ids = torch.randint(3, 64, (2, 10))
    if kind == "seq2seq":
        base, layer = tiny_t5(), LayerSettings()
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids[:, :6].contiguous()}
    else:
        base, layer = _tiny_llama(), LayerSettings(position="top", init="copy")
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    model = HybridModel(base, LoraSettings(r=4, alpha=8), layer)
    model.add_task_lora("task")
    model.add_layer("task")
    model.activate("task", "task")
    model.set_trainable(loras=["task"], layers=["task"])
    with torch.no_grad():  # a trained-looking layer, so that it matters
        for param in model.layer_parameters("task"):
            param.add_(0.05 * torch.randn_like(param))
    model.train()
    plain_loss, plain_grads = _loss_and_grads(model, batch)
    checkpoint_gradients(model)
    checkpointed_loss, checkpointed_grads = _loss_and_grads(model, batch)
    assert checkpointed_loss == pytest.approx(plain_loss, abs=1e-4)
    for plain, checkpointed in zip(plain_grads, checkpointed_grads):
        torch.testing.assert_close(checkpointed, plain, atol=1e-4, rtol=1e-4)
    assert any(grad.abs().sum() > 0 for grad in plain_grads)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_model_dtype_sets_the_base_weights(causal_assets, dtype):
    base, tokenizer = load_base(ModelConfig(name=str(causal_assets["base"]), dtype=dtype))
    assert {param.dtype for param in base.parameters()} == {getattr(torch, dtype)}
    assert tokenizer.pad_token_id is not None


def test_an_unsupported_family_is_refused_in_one_line(smoke_assets, tmp_path, capsys):
    folder = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64)).save_pretrained(folder)
    out = tmp_path / "run"
    status = main(smoke_args({**smoke_assets, "base": folder}, out))
    line = assert_one_line_error(capsys, status, "base model type 'gpt2' is not supported")
    assert "llama, qwen2, mistral, gpt_neox" in line
    assert not out.exists()


# (layer.position for a base of `depth` blocks, text the error line must hold)
POSITIONS_BEYOND = {
    "after the last block": (lambda depth: f"after:{depth}", "is beyond the base's depth"),
    "interleave past the depth": (lambda depth: f"interleave:{depth + 1}", "with layer.count=1 needs"),
    "a T5 position": (lambda depth: "encoder_top", "does not fit a causal base"),
}


@pytest.mark.parametrize("position, expected", POSITIONS_BEYOND.values(), ids=POSITIONS_BEYOND.keys())
def test_a_layer_position_the_causal_base_cannot_take_is_refused_before_work(
    causal_assets, tmp_path, capsys, position, expected
):
    out = tmp_path / "run"
    depth = json.loads((causal_assets["base"] / "config.json").read_text())["num_hidden_layers"]
    overrides = ["--set", "layer.init=copy", "--set", f"layer.position={position(depth)}"]
    assert_one_line_error(capsys, main(smoke_args(causal_assets, out) + overrides), expected)
    assert not out.exists()


def _count(report: str, label: str) -> int:
    return int(re.search(rf"{label}\s+([\d,]+)", report)[1].replace(",", ""))


def test_params_prints_qwen25_coder_05b_counts_that_a_stock_model_confirms(capsys):
    assert main(["params", "--config", "configs/seed-random-init-causal.yaml"]) == 0
    report = capsys.readouterr().out
    with torch.device("meta"):
        stock = AutoModelForCausalLM.from_config(QWEN25_CODER_05B)
        block = sum(p.numel() for p in stock.model.layers[-1].parameters())
        base = sum(p.numel() for p in {id(p): p for p in stock.parameters()}.values())
        peft = get_peft_model(stock, LoraConfig(r=16, lora_alpha=32, task_type=TaskType.CAUSAL_LM))
        lora = sum(p.numel() for name, p in peft.named_parameters() if "lora_" in name)
    assert _count(report, "base model") == base == QWEN25_CODER_05B_PARAMETERS
    assert _count(report, "LoRA adapter") == lora
    assert _count(report, "full layer") == block
    share = f"{100 * block / (base + block):.2f}% of base + layer"
    assert share in report
