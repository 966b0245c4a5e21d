"""The base models hybridcl supports, by the `model_type` of their config, and where added blocks go in each.

- seq2seq: T5 (CodeT5 is one). The added blocks are T5 blocks at the top of the encoder or decoder stack
  (`encoder_top`, `decoder_top`; hybridcl.model.hybrid).
- causal: the decoder-only families below. The added blocks are copies of the family's own decoder block,
  inserted into the stack as LLaMA Pro's block expansion does (Wu et al. 2024): `top` above the last block,
  `after:<i>` after block i, `interleave:<k>` one after every k blocks. Each block's output projections
  (`residual_outputs`: what each residual branch adds through) are zero, so it computes the identity until
  it trains (hybridcl.model.expansion).

Everything here reads a config alone, so a base that cannot work is refused before its weights load.
"""

from __future__ import annotations

from dataclasses import dataclass

from hybridcl.settings import (
    CAUSAL_INITS,
    CAUSAL_POSITIONS,
    SEQ2SEQ_INITS,
    SEQ2SEQ_POSITIONS,
    ConfigError,
    LayerSettings,
)

SEQ2SEQ = "seq2seq"
CAUSAL = "causal"
SEQ2SEQ_FAMILIES = ("t5",)


@dataclass(frozen=True)
class CausalFamily:
    residual_outputs: tuple[str, ...]  # names, within a decoder block, of the projections each residual branch ends in


_LLAMA_LIKE = CausalFamily(("self_attn.o_proj", "mlp.down_proj"))
CAUSAL_FAMILIES: dict[str, CausalFamily] = {
    "llama": _LLAMA_LIKE,  # CodeLlama, DeepSeek-Coder
    "qwen2": _LLAMA_LIKE,  # Qwen2.5-Coder
    "mistral": _LLAMA_LIKE,
    "gpt_neox": CausalFamily(("attention.dense", "mlp.dense_4h_to_h")),  # Pythia; attention and MLP named otherwise
}


def supported_families() -> str:
    return f"{', '.join(SEQ2SEQ_FAMILIES)} (encoder-decoder); {', '.join(CAUSAL_FAMILIES)} (causal LM)"


def base_kind(config) -> str:
    """SEQ2SEQ or CAUSAL for a base's config; ConfigError, in one line listing the supported families, otherwise."""
    model_type = getattr(config, "model_type", None)
    if model_type in SEQ2SEQ_FAMILIES and getattr(config, "is_encoder_decoder", False):
        return SEQ2SEQ
    if model_type in CAUSAL_FAMILIES:
        return CAUSAL
    raise ConfigError(f"base model type {model_type!r} is not supported; supported: {supported_families()}")


def depth(config, position: str) -> int:
    """The blocks of the stack the added blocks go into."""
    if base_kind(config) == CAUSAL:
        return config.num_hidden_layers
    if position == "decoder_top":
        return config.num_decoder_layers
    return config.num_layers


def insertion_points(position: str, count: int, base_depth: int) -> tuple[int, ...]:
    """For each of `count` added blocks of a causal base, the base block it goes after (0-based), in stack order.

    top: all after the last block; after:<i>: all after block i; interleave:<k>: block j after block (j+1)k-1,
    so `count` blocks need count * k <= the base's depth. ConfigError for a point beyond the base's depth.
    """
    blocks = f"the base has {base_depth} blocks, 0..{base_depth - 1}"
    if position == "top":
        return (base_depth - 1,) * count
    kind, _, number = position.partition(":")
    if kind == "after":
        after = int(number)
        if after >= base_depth:
            raise ConfigError(f"layer.position {position} is beyond the base's depth: {blocks}")
        return (after,) * count
    if kind == "interleave":
        every = int(number)
        if count * every > base_depth:
            raise ConfigError(
                f"layer.position {position} with layer.count={count} needs {count * every} blocks: {blocks}"
            )
        return tuple((j + 1) * every - 1 for j in range(count))
    raise ConfigError(f"layer.position {position!r} is not a causal base's; choose from {list(CAUSAL_POSITIONS)}")


def check_layer_settings(config, layer: LayerSettings) -> None:
    """Refuse, in one line, layer settings that do not fit the base (kind, position, init, depth)."""
    kind = base_kind(config)
    positions, inits = (CAUSAL_POSITIONS, CAUSAL_INITS) if kind == CAUSAL else (SEQ2SEQ_POSITIONS, SEQ2SEQ_INITS)
    name = f"a {kind} base ({config.model_type})"
    if (
        kind == SEQ2SEQ
        and layer.position not in SEQ2SEQ_POSITIONS
        or kind == CAUSAL
        and layer.position in SEQ2SEQ_POSITIONS
    ):
        raise ConfigError(f"layer.position {layer.position!r} does not fit {name}; choose from {list(positions)}")
    if layer.init not in inits:
        raise ConfigError(f"layer.init {layer.init!r} does not fit {name}; choose from {list(inits)}")
    if kind == CAUSAL:
        insertion_points(layer.position, layer.count, depth(config, layer.position))


def lora_default_targets(config) -> tuple[str, ...]:
    """PEFT's own default LoRA targets for the base's family (what `target_modules=None` makes PEFT use)."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    return tuple(TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[config.model_type])


def lora_targets(target_modules: tuple[str, ...], config) -> tuple[str, ...]:
    """The modules LoRA wraps: lora.target_modules, or PEFT's default for the base's family when it is empty."""
    return tuple(target_modules) or lora_default_targets(config)
