"""The hybrid model (LoRA adapters + extra full layers on a T5) and parameter counting, offline."""

from __future__ import annotations

import copy
import json
import struct

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from peft.tuners.tuners_utils import check_target_module_exists
from safetensors import safe_open
from transformers import T5ForConditionalGeneration

from hybridcl.config import Config
from hybridcl.model.base import codet5_small_config
from hybridcl.model.hybrid import ExtraLayers, HybridModel, check_target_modules
from hybridcl.params import component_sizes, count_params, format_params_table, params_report
from hybridcl.settings import ConfigError, LayerSettings, LoraSettings
from tiny_models import TINY, tiny_t5

RANDOM = LayerSettings(init="random")


@pytest.fixture(scope="module")
def tiny_base() -> T5ForConditionalGeneration:
    return tiny_t5()


@pytest.fixture
def base(tiny_base) -> T5ForConditionalGeneration:
    """A fresh copy (HybridModel modifies its base in place)."""
    return copy.deepcopy(tiny_base)


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, TINY.vocab_size, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # padding, so the attention mask matters
    ids[1, 6:] = 0
    dec = torch.randint(2, TINY.vocab_size, (3, 5), generator=g)
    return {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": dec}


@torch.no_grad()
def logits(model, batch) -> torch.Tensor:
    model.eval()
    return model(**batch).logits


def randomise_lora(model: HybridModel, name: str, seed: int = 0) -> None:
    """Give adapter `name` a non-zero B (as if trained)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.lora_parameters(name):
            param.copy_(torch.randn(param.shape, generator=g) * 0.5)


def randomise_layer(model: HybridModel, name: str, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.layer_parameters(name):
            param.copy_(torch.randn(param.shape, generator=g) * 0.2)


# ------------------------------------------------------------------------------ stage-0 identity


@pytest.mark.parametrize("layer_first", [True, False])
def test_fresh_lora_and_identity_layer_compute_the_base(base, batch, layer_first):
    expected = logits(base, batch)
    model = HybridModel(base, LoraSettings(), LayerSettings())
    if layer_first:
        model.add_layer("python")
        model.add_task_lora("python")
    else:
        model.add_task_lora("python")
        model.add_layer("python")
    model.activate("python", "python")
    assert len(base.encoder.block) == TINY.num_layers + 1
    assert isinstance(base.encoder.block[-1], ExtraLayers)
    torch.testing.assert_close(logits(model, batch), expected, rtol=0, atol=1e-6)


def test_random_layer_init_changes_the_output(base, batch):
    expected = logits(base, batch)
    model = HybridModel(base, LoraSettings(), RANDOM)
    model.add_layer("python")
    model.activate(None, "python")
    block = model._layer("python")
    assert block.layer[0].SelfAttention.o.weight.abs().sum() > 0
    assert block.layer[-1].DenseReluDense.wo.weight.abs().sum() > 0
    assert not torch.allclose(logits(model, batch), expected, atol=1e-4)


def test_active_layer_is_a_stock_t5_encoder_block_on_top_of_the_stack(tiny_base, batch):
    """Hybrid with layer L == a stock T5 with one more encoder block holding L's weights (same mask,
    same relative position bias, before the final layer norm)."""
    model = HybridModel(copy.deepcopy(tiny_base), LoraSettings(), RANDOM)
    model.add_layer("t1")
    model.activate(None, "t1")
    deeper = T5ForConditionalGeneration(TINY.__class__(**{**TINY.to_dict(), "num_layers": TINY.num_layers + 1}))
    missing, unexpected = deeper.load_state_dict(tiny_base.state_dict(), strict=False)
    assert all(k.startswith(f"encoder.block.{TINY.num_layers}.") for k in missing) and not unexpected
    deeper.encoder.block[TINY.num_layers].load_state_dict(model.layer_state("t1"))
    torch.testing.assert_close(logits(model, batch), logits(deeper, batch), rtol=0, atol=1e-5)


def test_identity_layer_has_zero_o_and_wo_and_t5_init_elsewhere(base):
    model = HybridModel(base, LoraSettings(), LayerSettings())
    model.add_layer("t1")
    block = model._layer("t1")
    assert torch.count_nonzero(block.layer[0].SelfAttention.o.weight) == 0
    assert torch.count_nonzero(block.layer[-1].DenseReluDense.wo.weight) == 0
    # T5's init (normal, std (d_model * d_kv) ** -0.5 for q), not torch's default uniform init.
    q = block.layer[0].SelfAttention.q.weight
    assert q.std().item() == pytest.approx((TINY.d_model * TINY.d_kv) ** -0.5, rel=0.25)
    assert torch.equal(block.layer[0].layer_norm.weight, torch.ones(TINY.d_model))


def test_seeded_components_are_reproducible_and_leave_the_global_rng_alone(tiny_base):
    states = []
    for _ in range(2):
        model = HybridModel(copy.deepcopy(tiny_base), LoraSettings(), RANDOM)
        torch.manual_seed(123)
        model.add_layer("t1", seed=7)
        model.add_task_lora("t1", seed=8)
        after = torch.rand(1)
        states.append((model.layer_state("t1"), model.lora_state("t1"), after))
    torch.manual_seed(123)
    assert torch.equal(states[0][2], torch.rand(1))  # global RNG untouched by the seeded inits
    for key, value in states[0][0].items():
        assert torch.equal(value, states[1][0][key])
    for key, value in states[0][1].items():
        assert torch.equal(value, states[1][1][key])


# ------------------------------------------------------------------------------ LoRA placement


def test_lora_wraps_base_q_v_only_never_the_extra_layer(base, tmp_path):
    model = HybridModel(base, LoraSettings(), LayerSettings())
    model.add_layer("first")  # exists before the adapters are injected
    model.add_task_lora("python")
    model.add_task_lora("javascript")
    model.add_layer("second")  # added after
    for name in ("python", "javascript"):
        wrapped = model.lora_modules(name)
        assert len(wrapped) == 2 * TINY.num_layers + 4 * TINY.num_decoder_layers  # enc self; dec self + cross
        assert all(n.endswith((".q", ".v")) for n in wrapped)
        assert not any("extra_layers" in n for n in wrapped)
    extra = base.encoder.block[-1]
    assert not any(isinstance(m, LoraLayer) for m in extra.modules())
    assert isinstance(model._layer("first").layer[0].SelfAttention.q, torch.nn.Linear)
    model.save_task("python", tmp_path)
    saved = json.loads((tmp_path / "lora" / "python" / "adapter_config.json").read_text())
    assert saved["r"] == 16 and saved["lora_alpha"] == 32 and saved["lora_dropout"] == 0.1
    assert sorted(saved["target_modules"]) == ["q", "v"]
    assert saved["task_type"] == "SEQ_2_SEQ_LM"


@pytest.mark.parametrize(
    "entry",
    [
        "q",
        "lm_head",
        "SelfAttention.q",
        "encoder.block.0.layer.0.SelfAttention.q",
        "block",
        "qq",
        "elfAttention.q",
        "Q",
        "encoder.block.9.layer.0.SelfAttention.q",
    ],
)
def test_check_target_modules_matches_like_peft(tiny_base, entry):
    peft_matches = any(
        check_target_module_exists(LoraConfig(target_modules=[entry]), name) for name, _ in tiny_base.named_modules()
    )
    if peft_matches:
        check_target_modules(tiny_base, ["v", entry])
    else:
        with pytest.raises(ConfigError):
            check_target_modules(tiny_base, ["v", entry])


def test_check_target_modules_names_the_missing_and_the_linear_layers(tiny_base):
    with pytest.raises(ConfigError) as caught:
        check_target_modules(tiny_base, ["q", "qq", "v", "query"])
    message = str(caught.value)
    assert "lora.target_modules" in message and "['qq', 'query']" in message and "\n" not in message
    assert message.endswith("k, lm_head, o, q, v, wi, wo")


# ------------------------------------------------------------------------------ switching


def test_activate_switches_layers_and_lora_none_runs_the_bare_base(base, batch):
    expected = logits(base, batch)
    model = HybridModel(base, LoraSettings(), RANDOM)
    model.add_task_lora("t1")
    model.add_task_lora("t2")
    randomise_lora(model, "t1", seed=1)
    randomise_lora(model, "t2", seed=2)
    model.add_layer("t1")
    model.add_layer("t2")

    model.activate(None, None)
    torch.testing.assert_close(logits(model, batch), expected, rtol=0, atol=1e-6)

    model.activate(None, "t1")
    layer_a = logits(model, batch)
    model.activate(None, "t2")
    layer_b = logits(model, batch)
    assert not torch.allclose(layer_a, layer_b, atol=1e-4)
    assert not torch.allclose(layer_a, expected, atol=1e-4)

    model.activate("t1", None)
    lora_a = logits(model, batch)
    model.activate("t2", None)
    lora_b = logits(model, batch)
    assert not torch.allclose(lora_a, lora_b, atol=1e-4)
    assert not torch.allclose(lora_a, expected, atol=1e-4)

    model.activate("t1", "t1")
    both = logits(model, batch)
    assert not torch.allclose(both, lora_a, atol=1e-4) and not torch.allclose(both, layer_a, atol=1e-4)

    # switching back reproduces, and lora=None still is the bare base after adapters were used
    model.activate(None, "t1")
    torch.testing.assert_close(logits(model, batch), layer_a, rtol=0, atol=0)
    model.activate(None, None)
    torch.testing.assert_close(logits(model, batch), expected, rtol=0, atol=1e-6)
    assert model.active == (None, None)

    with pytest.raises(KeyError, match="unknown LoRA adapter 't3'"):
        model.activate("t3", None)
    with pytest.raises(KeyError, match="unknown layer 't3'"):
        model.activate(None, "t3")
    with pytest.raises(ValueError, match="already exists"):
        model.add_layer("t1")
    with pytest.raises(ValueError, match="component name"):
        model.add_task_lora("ora")  # PEFT mis-loads adapter names contained in its prefix "lora_"


# ------------------------------------------------------------------------------ trainable set


def _trainable_ids(model):
    return {id(p) for p in model.parameters() if p.requires_grad}


def _ids(params):
    return {id(p) for p in params}


def test_set_trainable_is_exact_and_survives_peft_calls(base):
    model = HybridModel(base, LoraSettings(), LayerSettings())
    assert _trainable_ids(model) == set()  # the base is frozen
    model.add_task_lora("t1")
    assert _trainable_ids(model) == set()  # PEFT's add marks the adapter trainable; we undo it
    model.add_task_lora("t2")
    model.add_layer("t1")
    model.add_layer("t2")

    model.set_trainable(loras=["t1"], layers=["t2"])
    want = _ids(model.lora_parameters("t1")) | _ids(model.layer_parameters("t2"))
    assert len(want) > 0 and _trainable_ids(model) == want

    model.train()
    model.activate("t2", "t1")  # PEFT's set_adapter would make "t2" trainable
    assert _trainable_ids(model) == want
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    model.activate("t1", None)
    assert not any(m.training for m in model.modules())
    model.activate(None, None)  # disabling adapters must not change the trainable set either
    assert _trainable_ids(model) == want

    model.set_trainable(base=True)
    base_ids = _ids(model.base_parameters())
    assert _trainable_ids(model) == base_ids
    assert not base_ids & (_ids(model.lora_parameters("t1")) | _ids(model.layer_parameters("t1")))
    assert sum(p.numel() for p in model.base_parameters()) == sum(
        p.numel() for p in T5ForConditionalGeneration(TINY).parameters()
    )

    model.freeze()
    assert _trainable_ids(model) == set()
    with pytest.raises(KeyError):
        model.set_trainable(loras=["nope"])


def test_only_the_trainable_components_get_gradients(base, batch):
    model = HybridModel(base, LoraSettings(), LayerSettings())
    model.add_task_lora("t1")
    model.add_layer("t1")
    model.activate("t1", "t1")
    model.set_trainable(loras=["t1"], layers=["t1"])
    model.train()
    labels = batch["decoder_input_ids"]
    loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss
    loss.backward()
    block = model._layer("t1")
    # an identity layer still learns: its zero output projections receive gradients
    assert block.layer[0].SelfAttention.o.weight.grad.abs().sum() > 0
    assert block.layer[-1].DenseReluDense.wo.weight.grad.abs().sum() > 0
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora_b)
    assert all(p.grad is None for p in model.base_parameters())


# ------------------------------------------------------------------------------ save / load


@pytest.mark.filterwarnings("ignore:You have passed exclude_modules")  # stock base: nothing to exclude
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated")  # PEFT 0.21 on transformers 5
def test_save_load_round_trip_and_plain_peft_loading(tiny_base, batch, tmp_path):
    model = HybridModel(copy.deepcopy(tiny_base), LoraSettings(), LayerSettings())
    model.add_task_lora("python")
    model.add_layer("python")
    model.add_task_lora("javascript")
    randomise_lora(model, "python", seed=3)
    randomise_layer(model, "python", seed=4)
    model.activate("python", "python")
    expected = logits(model, batch)

    written = model.save_task("python", tmp_path)
    assert tmp_path / "lora" / "python" in written
    assert (tmp_path / "lora" / "python" / "adapter_config.json").is_file()
    assert (tmp_path / "lora" / "python" / "adapter_model.safetensors").is_file()
    layer_file = tmp_path / "layers" / "python.safetensors"
    assert layer_file.is_file()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
    assert not [p for p in tmp_path.rglob(".*")]  # no temp files left behind
    # safetensors: 8-byte little-endian header length, then a JSON header
    raw = layer_file.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    assert header["__metadata__"]["hybridcl_layer"] == "python"
    with safe_open(str(layer_file), "pt") as f:
        assert set(f.keys()) == set(model.layer_state("python"))

    # round trip into a fresh hybrid model on the same base
    fresh = HybridModel(copy.deepcopy(tiny_base), LoraSettings(), LayerSettings())
    fresh.load_task("python", tmp_path)
    fresh.activate("python", "python")
    torch.testing.assert_close(logits(fresh, batch), expected, rtol=0, atol=0)
    assert _trainable_ids(fresh) == set()
    # saving again replaces the old files
    model.save_task("python", tmp_path)

    # plain PEFT on a stock base (no extra layer) loads the adapter
    saved_lora = model.lora_state("python")
    stock = copy.deepcopy(tiny_base)
    peft_model = PeftModel.from_pretrained(stock, str(tmp_path / "lora" / "python"))
    loaded = get_peft_model_state_dict(peft_model)
    assert set(loaded) == set(saved_lora) and len(loaded) == 2 * (
        2 * TINY.num_layers + 4 * TINY.num_decoder_layers
    )  # lora_A + lora_B
    for key, value in saved_lora.items():
        assert torch.equal(loaded[key], value)
    model.activate("python", None)
    torch.testing.assert_close(logits(peft_model, batch), logits(model, batch), rtol=0, atol=1e-6)


def test_load_refuses_an_adapter_with_other_settings(tiny_base, tmp_path):
    model = HybridModel(copy.deepcopy(tiny_base), LoraSettings(r=8), LayerSettings())
    model.add_task_lora("python")
    model.save_task("python", tmp_path)
    other = HybridModel(copy.deepcopy(tiny_base), LoraSettings(), LayerSettings())
    with pytest.raises(ValueError, match="r=8"):
        other.load_task("python", tmp_path)
    with pytest.raises(FileNotFoundError):
        other.load_task("java", tmp_path)


# ------------------------------------------------------------------------------ generate


def test_lora_merged_computes_the_same_and_puts_the_exact_weights_back(base, batch):
    model = HybridModel(base, LoraSettings(r=4, alpha=8, dropout=0.1))
    for name, seed in (("python", 1), ("js", 2)):
        model.add_task_lora(name)
        randomise_lora(model, name, seed)
    model.add_layer("python")
    model.activate("python", "python")
    model.set_trainable(loras=["python"])
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    grads = {name: p.requires_grad for name, p in model.named_parameters()}
    expected = logits(model, batch)
    with model.lora_merged():
        merged = logits(model, batch)
        moved = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert moved and all(name.endswith("base_layer.weight") for name in moved)  # merged into the base weights
    assert torch.allclose(merged, expected, atol=1e-4)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) and p.requires_grad == grads[name], name
    assert torch.equal(logits(model, batch), expected)
    model.activate("js", None)  # another adapter merges and computes as itself afterwards
    with model.lora_merged():
        merged_js = logits(model, batch)
    assert torch.allclose(merged_js, logits(model, batch), atol=1e-4)
    assert not torch.allclose(merged_js, expected, atol=1e-3)


def test_generate_with_the_extra_layer_matches_greedy_decoding_without_cache(base, batch):
    model = HybridModel(base, LoraSettings(), RANDOM)
    model.add_task_lora("t1")
    randomise_lora(model, "t1", seed=5)
    model.add_layer("t1")
    model.activate("t1", "t1")
    model.eval()
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    out = model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, do_sample=False, num_beams=1)
    assert out.shape == (3, 7)
    # reference: greedy decoding by full forward passes (no cache), same components
    dec = torch.full((3, 1), TINY.decoder_start_token_id)
    with torch.no_grad():
        for _ in range(6):
            step = model(**inputs, decoder_input_ids=dec).logits[:, -1]
            step[:, TINY.eos_token_id] = -float("inf")  # min_new_tokens
            dec = torch.cat([dec, step.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, dec)
    # the extra layer is used by generate: without it the continuation is different
    model.activate("t1", None)
    without = model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, do_sample=False, num_beams=1)
    assert not torch.equal(without, out)


# ------------------------------------------------------------------------------ parameter counts


@pytest.fixture(scope="module")
def codet5_small_arch() -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    return T5ForConditionalGeneration(codet5_small_config())


def test_codet5_small_component_sizes(codet5_small_arch):
    sizes = component_sizes(codet5_small_arch, LoraSettings(), LayerSettings())
    assert sizes["lora_modules"] == 36
    assert sizes["lora_per_adapter"] == 589_824
    assert sizes["layer"] == 3_146_752
    assert round(sizes["layer_pct_of_base_plus_layer"], 2) == 4.94
    assert sizes["base"] == sum(p.numel() for p in codet5_small_arch.parameters())
    assert len(codet5_small_arch.encoder.block) == 6  # the caller's base is not modified
    table = format_params_table(sizes, [])
    assert "589,824" in table and "3,146,752" in table and "4.94% of base + layer" in table
    assert "36 modules" in table


def test_count_params_per_strategy_on_codet5_small(codet5_small_arch):
    tasks = ("python", "javascript")
    base = sum(p.numel() for p in codet5_small_arch.parameters())
    lora, layer = 589_824, 3_146_752
    expected = {  # strategy: (trainable at each stage, stored)
        "task_specific": ([lora + layer, lora + layer], 2 * lora + 2 * layer),
        "shared_layer_frozen": ([lora + layer, lora], 2 * lora + layer),
        "layer_only": ([layer, layer], 2 * layer),
        "full_finetune": ([base, base], base),
        "joint": ([lora + layer], lora + layer),
    }
    for name, (stages, stored) in expected.items():
        counts = count_params(name, tasks, codet5_small_arch)
        assert [s["trainable"] for s in counts["per_stage"]] == stages, name
        assert counts["stored"] == stored, name
        assert counts["stored_pct_of_base"] == pytest.approx(100 * stored / base)
    assert len(codet5_small_arch.encoder.block) == 6


def test_params_report_table():
    torch.manual_seed(0)
    tiny = T5ForConditionalGeneration(TINY)
    report = params_report(Config(strategies=("task_specific", "lora_only")), tiny)
    assert "task_specific" in report and "lora_only" in report and "shared_layer" not in report
    sizes = component_sizes(tiny, LoraSettings(), LayerSettings())
    assert f"{sizes['lora_per_adapter']:,}" in report and f"{sizes['layer']:,}" in report
    counts = [count_params("lora_only", ("python", "javascript"), tiny)]
    table = format_params_table(sizes, counts)
    assert f"{2 * sizes['lora_per_adapter']:,}" in table  # stored: two adapters
