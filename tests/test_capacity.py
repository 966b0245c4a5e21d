"""Capacity knobs (RQ3): `layer.count` blocks at `layer.position` (encoder_top, decoder_top), offline."""

from __future__ import annotations

import copy

import pytest
import torch
from peft.tuners.lora import LoraLayer
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import T5Config, T5ForConditionalGeneration

from hybridcl.cli import build_parser, main
from hybridcl.config import load_config
from hybridcl.model.base import codet5_small_config
from hybridcl.model.hybrid import ExtraLayers, HybridModel
from hybridcl.params import component_sizes, count_params
from hybridcl.settings import ConfigError, LayerSettings, LoraSettings
from smoke import SMOKE
from test_hybrid import logits, randomise_layer, randomise_lora
from tiny_models import TINY, tiny_t5

POSITIONS = ("encoder_top", "decoder_top")
# Every parameter of a block that identity init zeroes: the residual branches' output projections.
ZEROED = {
    "encoder_top": {"layer.0.SelfAttention.o.weight", "layer.1.DenseReluDense.wo.weight"},
    "decoder_top": {
        "layer.0.SelfAttention.o.weight",
        "layer.1.EncDecAttention.o.weight",
        "layer.2.DenseReluDense.wo.weight",
    },
}
# codet5-small's blocks: an encoder block (self-attention 4 x 512^2 + FF 2 x 512 x 2048 + 2 layer norms), and a
# decoder block, which adds cross-attention (4 x 512^2) and its layer norm.
CODET5_ENCODER_BLOCK = 3_146_752
CODET5_DECODER_BLOCK = CODET5_ENCODER_BLOCK + 4 * 512 * 512 + 512
CODET5_LORA = 589_824


@pytest.fixture(scope="module")
def tiny_base() -> T5ForConditionalGeneration:
    return tiny_t5()


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, TINY.vocab_size, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    ids[1, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": torch.randint(2, TINY.vocab_size, (3, 5))}


def hybrid(tiny_base, position="encoder_top", count=1, init="identity") -> HybridModel:
    return HybridModel(copy.deepcopy(tiny_base), LoraSettings(), LayerSettings(position, init, count))


def stack(t5: T5ForConditionalGeneration, position: str):
    return t5.encoder if position == "encoder_top" else t5.decoder


# ------------------------------------------------------------------------------ identity at init


@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize("position", POSITIONS)
def test_identity_blocks_compute_the_bare_base(tiny_base, batch, position, count):
    expected = logits(tiny_base, batch)
    model = hybrid(tiny_base, position, count)
    model.add_task_lora("python")
    model.add_layer("python")
    model.activate("python", "python")
    slot = stack(model.base, position).block[-1]
    assert isinstance(slot, ExtraLayers) and len(slot.layers["python"]) == count
    for block in slot.layers["python"]:
        zero = {name for name, param in block.named_parameters() if torch.count_nonzero(param) == 0}
        assert zero == ZEROED[position]
    torch.testing.assert_close(logits(model, batch), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("position", POSITIONS)
def test_random_blocks_change_the_output(tiny_base, batch, position):
    model = hybrid(tiny_base, position, count=2, init="random")
    model.add_layer("python")
    model.activate(None, "python")
    assert not torch.allclose(logits(model, batch), logits(tiny_base, batch), atol=1e-4)


@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize("position", POSITIONS)
def test_an_active_layer_is_a_stock_t5_with_more_blocks_on_top(tiny_base, batch, position, count):
    """Hybrid with layer L == a stock T5 whose stack has `count` more blocks holding L's weights, in order."""
    model = hybrid(tiny_base, position, count, init="random")
    model.add_layer("t1")
    model.activate(None, "t1")
    key = "num_layers" if position == "encoder_top" else "num_decoder_layers"
    n_base = getattr(TINY, key)
    deeper = T5ForConditionalGeneration(T5Config(**{**TINY.to_dict(), key: n_base + count})).eval()
    deeper.load_state_dict(tiny_base.state_dict(), strict=False)
    extra = torch.nn.ModuleList(stack(deeper, position).block[n_base:])
    state = model.layer_state("t1")
    extra.load_state_dict(state if count > 1 else {f"0.{k}": v for k, v in state.items()})
    torch.testing.assert_close(logits(model, batch), logits(deeper, batch), rtol=0, atol=1e-5)


def test_decoder_blocks_generate_with_the_cache_as_without(tiny_base, batch):
    model = hybrid(tiny_base, "decoder_top", count=2, init="random")
    model.add_layer("t1")
    model.activate(None, "t1")
    model.eval()
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    out = model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, do_sample=False, num_beams=1)
    dec = torch.full((3, 1), TINY.decoder_start_token_id)
    with torch.no_grad():
        for _ in range(6):
            step = model(**inputs, decoder_input_ids=dec).logits[:, -1]
            step[:, TINY.eos_token_id] = -float("inf")
            dec = torch.cat([dec, step.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, dec)
    model.activate(None, None)
    assert not torch.equal(model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, do_sample=False), out)


# ------------------------------------------------------------------------------ layer.count = 0


def test_count_0_layers_are_empty_and_compute_what_lora_alone_does(tiny_base, batch, tmp_path):
    model = hybrid(tiny_base, count=0)
    model.add_task_lora("python")
    randomise_lora(model, "python")
    model.add_layer("python")
    model.activate("python", None)
    lora_alone = logits(model, batch)
    model.activate("python", "python")
    assert model.layer_parameters("python") == []
    torch.testing.assert_close(logits(model, batch), lora_alone, rtol=0, atol=0)
    model.save_layer("python", tmp_path)
    fresh = hybrid(tiny_base, count=0)
    fresh.load_layer("python", tmp_path)
    assert fresh.layer_names == ("python",)


def test_count_0_refuses_a_strategy_that_trains_only_layers():
    with pytest.raises(ConfigError) as caught:
        load_config(overrides=["layer.count=0", "strategies=[task_specific, layer_only]"])
    assert "layer.count=0 leaves strategy 'layer_only' nothing to train" in str(caught.value)


def test_count_0_accepts_strategies_that_also_train_lora_or_the_base():
    strategies = "[task_specific, shared_layer, shared_layer_frozen, lora_only, full_finetune, joint]"
    assert load_config(overrides=["layer.count=0", f"strategies={strategies}"]).layer.count == 0


# ------------------------------------------------------------------------------ LoRA placement


@pytest.mark.parametrize("position", POSITIONS)
def test_lora_never_wraps_the_extra_blocks(tiny_base, position):
    model = hybrid(tiny_base, position, count=2)
    model.add_layer("first")  # before the adapters are injected
    model.add_task_lora("python")
    model.add_layer("second")  # after
    model.add_task_lora("javascript")
    for name in ("python", "javascript"):
        wrapped = model.lora_modules(name)
        assert len(wrapped) == 2 * TINY.num_layers + 4 * TINY.num_decoder_layers
        assert not any("extra_layers" in module for module in wrapped)
    slot = stack(model.base, position).block[-1]
    assert not any(isinstance(module, LoraLayer) for module in slot.modules())
    assert sum(isinstance(module, LoraLayer) for module in model.base.modules()) == len(wrapped)


# ------------------------------------------------------------------------------ save / load


@pytest.mark.parametrize("position", POSITIONS)
def test_a_saved_layer_of_two_blocks_loads_back(tiny_base, batch, tmp_path, position):
    model = hybrid(tiny_base, position, count=2)
    model.add_layer("python")
    randomise_layer(model, "python", seed=4)
    model.activate(None, "python")
    expected = logits(model, batch)
    path = model.save_layer("python", tmp_path)
    with safe_open(str(path), "pt") as saved:
        assert saved.metadata()["count"] == "2" and saved.metadata()["position"] == position
        assert {key.split(".")[0] for key in saved.keys()} == {"0", "1"}
    fresh = hybrid(tiny_base, position, count=2)
    fresh.load_layer("python", tmp_path)
    fresh.activate(None, "python")
    torch.testing.assert_close(logits(fresh, batch), expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    "saved, loading, message",
    [
        (("decoder_top", 2), ("decoder_top", 1), "layer count=2 does not match this model's count=1"),
        (("encoder_top", 1), ("encoder_top", 2), "layer count=1 does not match this model's count=2"),
        (
            ("encoder_top", 1),
            ("decoder_top", 1),
            "position=encoder_top does not match this model's position=decoder_top",
        ),
    ],
)
def test_a_layer_saved_with_other_settings_is_refused(tiny_base, tmp_path, saved, loading, message):
    model = hybrid(tiny_base, *saved)
    model.add_layer("python")
    model.save_layer("python", tmp_path)
    other = hybrid(tiny_base, *loading)
    with pytest.raises(ValueError, match=message):
        other.load_layer("python", tmp_path)
    assert other.layer_names == ()


def test_a_layer_file_from_before_layer_count_loads_as_one_block(tiny_base, batch, tmp_path):
    model = hybrid(tiny_base)
    model.add_layer("python")
    randomise_layer(model, "python", seed=5)
    path = model.save_layer("python", tmp_path)
    save_file(load_file(str(path)), str(path), metadata={"format": "pt", "position": "encoder_top"})  # no "count"
    fresh = hybrid(tiny_base, count=1)
    fresh.load_layer("python", tmp_path)
    expected = model.layer_state("python")
    assert all(torch.equal(value, expected[key]) for key, value in fresh.layer_state("python").items())
    with pytest.raises(ValueError, match="layer count=1 does not match"):
        hybrid(tiny_base, count=2).load_layer("python", tmp_path)


# ------------------------------------------------------------------------------ exact counts


@pytest.fixture(scope="module")
def codet5_small_arch() -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    return T5ForConditionalGeneration(codet5_small_config())


@pytest.mark.parametrize(
    "position, count, block",
    [
        ("encoder_top", 0, 0),
        ("encoder_top", 2, CODET5_ENCODER_BLOCK),
        ("decoder_top", 1, CODET5_DECODER_BLOCK),
        ("decoder_top", 2, CODET5_DECODER_BLOCK),
    ],
)
def test_codet5_small_counts_per_strategy(codet5_small_arch, position, count, block):
    layer_settings = LayerSettings(position=position, count=count)
    sizes = component_sizes(codet5_small_arch, LoraSettings(), layer_settings)
    layer = count * block
    assert sizes["layer"] == layer and sizes["lora_per_adapter"] == CODET5_LORA and sizes["lora_modules"] == 36
    lora = CODET5_LORA
    expected = {  # strategy: (trainable at each stage, stored)
        "task_specific": ([lora + layer, lora + layer], 2 * lora + 2 * layer),
        "shared_layer": ([lora + layer, lora + layer], 2 * lora + layer),
        "shared_layer_frozen": ([lora + layer, lora], 2 * lora + layer),
        "lora_only": ([lora, lora], 2 * lora),
        "joint": ([lora + layer], lora + layer),
    }
    for name, (stages, stored) in expected.items():
        counts = count_params(name, ("python", "javascript"), codet5_small_arch, LoraSettings(), layer_settings)
        assert [s["trainable"] for s in counts["per_stage"]] == stages, name
        assert counts["stored"] == stored, name
    assert len(codet5_small_arch.encoder.block) == len(codet5_small_arch.decoder.block) == 6  # not modified


def test_the_params_command_prints_the_counts_of_any_point(smoke_assets, capsys):
    overrides = [f"model.name={smoke_assets['base']}", "layer.count=2", "layer.position=decoder_top"]
    args = ["params", "--config", str(SMOKE)] + [arg for o in overrides for arg in ("--set", o)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    base = T5ForConditionalGeneration.from_pretrained(smoke_assets["base"])
    cfg = load_config(SMOKE, overrides)
    sizes = component_sizes(base, cfg.lora, cfg.layer)
    one_block = component_sizes(base, cfg.lora, LayerSettings("decoder_top", count=1))["layer"]
    assert sizes["layer"] == 2 * one_block > 0
    assert f"full layer           {sizes['layer']:>12,}  (2 block(s) at decoder_top; " in printed
    stored = count_params("task_specific", cfg.data.languages, base, cfg.lora, cfg.layer)["stored"]
    assert stored == 2 * sizes["lora_per_adapter"] + 2 * sizes["layer"] and f"{stored:>12,}" in printed


def test_every_command_that_takes_a_config_takes_set():
    commands = build_parser()._subparsers._group_actions[0].choices
    taking_config = []
    for name, parser in commands.items():
        destinations = {action.dest for action in parser._actions}
        if "config" in destinations:
            taking_config.append(name)
            assert "set" in destinations, name
    assert set(taking_config) == {"doctor", "params", "run", "sweep"}
