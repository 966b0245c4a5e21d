"""The hybrid model on causal (decoder-only) bases: block expansion with identity init, LoRA, cache, stock rebuild."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from hybridcl.model.families import CAUSAL_FAMILIES, insertion_points
from hybridcl.model.hybrid import HybridModel, check_target_modules
from hybridcl.settings import ConfigError, LayerSettings, LoraSettings
from tiny_models import tiny_t5

DEPTH = 4
SIZES = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=DEPTH, num_attention_heads=4)
TOKENS = dict(pad_token_id=0, eos_token_id=1, bos_token_id=2)
# Sliding windows shorter than prompt + generation, so that the sliding caches matter; Qwen2's last two blocks
# slide and its first two do not (a cache of two kinds of layers).
FAMILIES = {
    "llama": (LlamaForCausalLM, LlamaConfig(**SIZES, **TOKENS, num_key_value_heads=2)),
    "qwen2": (
        Qwen2ForCausalLM,
        Qwen2Config(
            **SIZES, **TOKENS, num_key_value_heads=2, use_sliding_window=True, sliding_window=6, max_window_layers=2
        ),
    ),
    "mistral": (MistralForCausalLM, MistralConfig(**SIZES, **TOKENS, num_key_value_heads=2, sliding_window=6)),
    "gpt_neox": (GPTNeoXForCausalLM, GPTNeoXConfig(**SIZES, **TOKENS)),
}
NEW_TOKENS = 8


@functools.cache
def pristine(family: str) -> PreTrainedModel:
    """A trained-looking base: random weights, with non-zero biases and norms other than 1 (built once)."""
    model_class, config = FAMILIES[family]
    torch.manual_seed(0)
    model = model_class(config).eval()
    perturb(model.parameters(), seed=0, scale=0.02)
    return model


def stock_base(family: str) -> PreTrainedModel:
    """A fresh copy (HybridModel modifies its base in place)."""
    return copy.deepcopy(pristine(family))


def hybrid(family: str, position: str = "top", init: str = "copy", count: int = 2) -> HybridModel:
    layer = LayerSettings(position=position, init=init, count=count)
    return HybridModel(stock_base(family), LoraSettings(r=4, alpha=8), layer).eval()


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    """Two prompts of 7 tokens, the first left-padded by 3."""
    ids = torch.randint(3, 128, (2, 7), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    ids[0, :3], mask[0, :3] = 0, 0
    return {"input_ids": ids, "attention_mask": mask}


@torch.no_grad()
def logits(model, batch) -> torch.Tensor:
    return model(**batch).logits


def greedy(model, batch, **kwargs):
    return model.generate(
        **batch, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0, **kwargs
    )


def perturb(params, seed: int, scale: float = 0.1) -> None:
    """As if trained: noise on every parameter (the added blocks' zero output projections become non-zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in params:
            param.add_(torch.randn(param.shape, generator=g) * scale)


def added_blocks(model: HybridModel, name: str) -> list[torch.nn.Module]:
    return list(model._blocks(name))


# ------------------------------------------------------------------------------ identity at initialisation


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("position", ["top", "after:0", "interleave:1"])
@pytest.mark.parametrize("init", ["copy", "fresh"])
def test_an_added_layer_computes_the_base(family, position, init, batch):
    model = hybrid(family, position, init)
    model.add_layer("t1")
    model.activate(None, "t1")
    torch.testing.assert_close(logits(model, batch), logits(pristine(family), batch), rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("position", ["top", "after:0", "interleave:1"])
def test_greedy_generation_with_the_cache_is_the_base(family, position, batch):
    model = hybrid(family, position)
    model.add_layer("t1")
    model.activate(None, "t1")
    assert torch.equal(greedy(model, batch), greedy(pristine(family), batch))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("init", ["copy", "fresh"])
def test_new_blocks_zero_the_residual_outputs_and_copy_or_initialise_the_rest(family, init):
    model = hybrid(family, "interleave:2", init)
    model.add_layer("t1")
    outputs = CAUSAL_FAMILIES[pristine(family).config.model_type].residual_outputs
    for block, point in zip(added_blocks(model, "t1"), (1, 3)):
        source = model.base.base_model.layers[point]
        # attends as block `point` does (Qwen2: block 1 full, block 3 sliding)
        for mine, theirs in zip(block.modules(), source.modules()):
            assert getattr(mine, "sliding_window", None) == getattr(theirs, "sliding_window", None)
        below = dict(source.named_parameters())
        for pname, param in block.named_parameters():
            if pname.rsplit(".", 1)[0] in outputs:
                assert torch.count_nonzero(param) == 0, pname  # weight and bias (GPT-NeoX)
            elif init == "copy":
                assert torch.equal(param, below[pname]), pname
        linear = next(m for n, m in block.named_modules() if isinstance(m, torch.nn.Linear) and n not in outputs)
        if init == "fresh":  # the architecture's N(0, initializer_range), not torch's default uniform init
            assert linear.weight.std().item() == pytest.approx(pristine(family).config.initializer_range, rel=0.25)


# ------------------------------------------------------------------------------ cache and indices


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("position, count", [("top", 1), ("after:1", 2), ("interleave:1", 3)])
def test_cache_slots_follow_the_base_and_decoding_with_the_cache_matches_without(family, position, count, batch):
    model = hybrid(family, position, count=count)
    model.add_layer("t1")
    perturb(model.layer_parameters("t1"), seed=3)
    model.activate(None, "t1")
    cached = greedy(model, batch, return_dict_in_generate=True)
    assert torch.equal(cached.sequences, greedy(model, batch, use_cache=False))
    assert not torch.equal(cached.sequences, greedy(pristine(family), batch))  # the perturbed blocks matter
    assert len(cached.past_key_values.layers) == DEPTH + count
    slots = [{m.layer_idx for m in block.modules() if hasattr(m, "layer_idx")} for block in added_blocks(model, "t1")]
    assert slots == [{DEPTH + j} for j in range(count)]
    base_slots = {m.layer_idx for m in model.base.base_model.layers.modules() if hasattr(m, "layer_idx")}
    assert base_slots == set(range(DEPTH))


def test_a_deep_copy_of_the_base_carries_its_own_expansion(batch):
    model = hybrid("llama")
    model.add_layer("t1")
    perturb(model.layer_parameters("t1"), seed=4)
    model.activate(None, "t1")
    expected = logits(model, batch)
    copied = copy.deepcopy(model.base)
    torch.testing.assert_close(logits(copied, batch), expected, rtol=0, atol=0)
    model.activate(None, None)  # the original's switch does not reach the copy
    torch.testing.assert_close(logits(copied, batch), expected, rtol=0, atol=0)
    copied.base_model.block_expansion.active = None  # and the copy's switch reaches the copy
    torch.testing.assert_close(logits(copied, batch), logits(pristine("llama"), batch), rtol=0, atol=1e-6)
    assert torch.equal(greedy(copied, batch), greedy(pristine("llama"), batch))


def test_only_the_trainable_components_get_gradients(batch):
    model = hybrid("llama", "after:1")
    model.add_task_lora("t1")
    model.add_layer("t1")
    model.activate("t1", "t1")
    model.set_trainable(loras=["t1"], layers=["t1"])
    model.train()
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    model(**batch, labels=labels).loss.backward()
    for block in added_blocks(model, "t1"):  # an identity block still learns through its zero output projections
        assert block.self_attn.o_proj.weight.grad.abs().sum() > 0
        assert block.mlp.down_proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.base_parameters())


# ------------------------------------------------------------------------------ LoRA


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_wraps_the_family_default_targets_of_the_base_only(family, tmp_path):
    model = hybrid(family)
    model.add_layer("first")  # before the adapter is injected
    model.add_task_lora("t1")
    model.add_layer("second")  # after
    defaults = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[model.config.model_type]
    wrapped = model.lora_modules("t1")
    assert len(wrapped) == DEPTH * len(defaults)
    assert {name.rsplit(".", 1)[-1] for name in wrapped} == set(defaults)
    assert not any("extra_layers" in name for name in wrapped)
    assert not any(isinstance(m, LoraLayer) for name in ("first", "second") for m in model._blocks(name).modules())
    check_target_modules(pristine(family), ())  # the empty default is checked against the family's targets
    saved = json.loads((model.save_lora("t1", tmp_path) / "adapter_config.json").read_text())
    assert sorted(saved["target_modules"]) == sorted(defaults) and saved["task_type"] == "CAUSAL_LM"
    prefix = f"{model.base.base_model_prefix}.block_expansion.extra_layers.first.0."
    assert any(name.startswith(prefix) for name, _ in model.base.named_parameters())


@pytest.mark.filterwarnings("ignore:You have passed exclude_modules")  # stock base: nothing to exclude
@pytest.mark.parametrize("family", FAMILIES)
def test_a_saved_adapter_loads_with_stock_peft(family, batch, tmp_path):
    model = hybrid(family)
    model.add_layer("t1")
    model.add_task_lora("t1")
    perturb(model.lora_parameters("t1"), seed=5, scale=0.5)
    model.activate("t1", None)
    stock = PeftModel.from_pretrained(stock_base(family), str(model.save_lora("t1", tmp_path))).eval()
    expected = logits(model, batch)
    assert not torch.allclose(expected, logits(pristine(family), batch), atol=1e-3)
    torch.testing.assert_close(logits(stock, batch), expected, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------ stock rebuild


def stock_expanded(stock: PreTrainedModel, adapter: Path, layer_file: Path, points: tuple[int, ...]):
    """What a user writes with stock libraries: the base with the adapter merged, and a model of the same class,
    deeper by the added blocks, holding the base's blocks and the saved ones at their places in the stack."""
    merged = PeftModel.from_pretrained(stock, str(adapter)).merge_and_unload()
    config, base_state = merged.config, merged.state_dict()
    order = []  # each block of the deeper stack: ("base", i) or ("added", j)
    for i in range(config.num_hidden_layers):
        order += [("base", i)] + [("added", j) for j, point in enumerate(points) if point == i]
    fields = {**config.to_dict(), "num_hidden_layers": len(order)}
    if getattr(config, "layer_types", None):  # an added block attends as the block below it does
        fields["layer_types"] = [config.layer_types[i if kind == "base" else points[i]] for kind, i in order]
    deeper = type(merged)(type(config)(**fields)).eval()
    added = load_file(str(layer_file))
    if len(points) == 1:  # a layer of one block is saved under the block's own keys
        added = {f"0.{key}": value for key, value in added.items()}
    prefix = f"{merged.base_model_prefix}.layers."
    state = {key: value for key, value in base_state.items() if not key.startswith(prefix)}
    for index, (kind, i) in enumerate(order):
        source, start = (base_state, f"{prefix}{i}.") if kind == "base" else (added, f"{i}.")
        state |= {f"{prefix}{index}.{k.removeprefix(start)}": v for k, v in source.items() if k.startswith(start)}
    deeper.load_state_dict(state, strict=True)
    return deeper


@pytest.mark.filterwarnings("ignore:You have passed exclude_modules")
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("position, count", [("top", 1), ("interleave:1", 2), ("after:2", 2)])
def test_a_stock_model_rebuilt_from_the_saved_files_generates_the_same(family, position, count, batch, tmp_path):
    model = hybrid(family, position, count=count)
    model.add_task_lora("t1")
    model.add_layer("t1")
    perturb(model.lora_parameters("t1"), seed=6, scale=0.3)
    perturb(model.layer_parameters("t1"), seed=7)
    model.activate("t1", "t1")
    expected = greedy(model, batch)
    assert not torch.equal(expected, greedy(pristine(family), batch))
    model.save_task("t1", tmp_path)
    layer_file = tmp_path / "layers" / "t1.safetensors"
    with safe_open(str(layer_file), "pt") as saved:
        assert saved.metadata()["d_model"] == str(model.config.hidden_size)
    points = insertion_points(position, count, DEPTH)
    deeper = stock_expanded(stock_base(family), tmp_path / "lora" / "t1", layer_file, points)
    torch.testing.assert_close(logits(deeper, batch), logits(model, batch), rtol=0, atol=1e-4)
    assert torch.equal(greedy(deeper, batch), expected)
    reloaded = hybrid(family, position, count=count)  # and the files load back into a hybrid model
    reloaded.load_task("t1", tmp_path)
    reloaded.activate("t1", "t1")
    assert torch.equal(greedy(reloaded, batch), expected)


# ------------------------------------------------------------------------------ refusals


def test_an_unsupported_family_is_refused_in_one_line_naming_the_supported():
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=128, n_embd=32, n_layer=2, n_head=4))
    with pytest.raises(ConfigError) as caught:
        HybridModel(gpt2, LoraSettings(), LayerSettings(position="top", init="copy"))
    message = str(caught.value)
    assert "'gpt2'" in message and "\n" not in message
    assert all(family in message for family in ("t5", *CAUSAL_FAMILIES))


@pytest.mark.parametrize(
    "layer, match",
    [
        (LayerSettings(position="after:4", init="copy"), "beyond the base's depth"),
        (LayerSettings(position="interleave:2", init="copy", count=3), "needs 6 blocks"),
        (LayerSettings(position="encoder_top", init="copy"), "does not fit a causal base"),
        (LayerSettings(position="top", init="identity"), "does not fit a causal base"),
    ],
)
def test_layer_settings_that_do_not_fit_a_causal_base_are_refused(layer, match):
    with pytest.raises(ConfigError, match=match):
        HybridModel(stock_base("llama"), LoraSettings(), layer)


def test_a_causal_position_on_a_t5_base_is_refused():
    with pytest.raises(ConfigError, match="does not fit a seq2seq base"):
        HybridModel(tiny_t5(), LoraSettings(), LayerSettings(position="top"))


def test_a_causal_base_without_its_head_is_refused():
    with pytest.raises(TypeError, match="ForCausalLM"):
        HybridModel(stock_base("llama").model, LoraSettings(), LayerSettings(position="top", init="copy"))
