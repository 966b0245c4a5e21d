"""Block expansion of a causal (decoder-only) base: the hybrid model's full layers, as LLaMA Pro adds them.

A full layer of a causal base is `LayerSettings.count` copies of the family's own decoder block, each inserted
into the stack after a base block (`families.insertion_points`: `top`, `after:<i>`, `interleave:<k>`). Each
added block's residual branches end in zeroed output projections (`CausalFamily.residual_outputs`, weight and
bias), so at initialisation it computes the identity and the model is unchanged; its other weights are the
block below's (`copy`) or the architecture's own initialisation (`fresh`).

The base's module names stay the stock ones, so a LoRA adapter saved from the hybrid model loads with stock
PEFT. Instead of editing the stack, a `BlockExpansion` module is attached to the base's inner model
(`base.base_model.block_expansion`) and a forward hook on each base block that has an insertion point runs,
when a layer is active, that layer's blocks for that point on the block's output, with the very keyword
arguments the base block got (masks, positions, rotary embeddings, cache). Added block j of a layer keeps its
keys and values in cache slot `depth + j`, after the base's own slots; the cache, built for the base's depth,
is grown before the added blocks run.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.cache_utils import Cache, DynamicLayer, DynamicSlidingWindowLayer

from hybridcl.model.families import CAUSAL_FAMILIES, CausalFamily, insertion_points
from hybridcl.settings import LayerSettings

# Attribute holding the named layers (of `BlockExpansion` here, of the T5 `ExtraLayers` in hybridcl.model.hybrid);
# the LoRA config excludes every module under it.
EXTRA_ATTR = "extra_layers"
# Where the expansion is attached on the base's inner model (module names `<inner>.block_expansion.extra_layers...`).
EXPANSION_ATTR = "block_expansion"


class BlockExpansion(nn.Module):
    """Named layers of a causal base, each a list of added decoder blocks, one per insertion point (`points[j]`:
    the base block that added block j follows); the `active` one runs (None: the base runs as it is).

    Not called itself: `attach` hooks it onto the base blocks at its insertion points.
    """

    def __init__(self, points: tuple[int, ...], depth: int) -> None:
        super().__init__()
        setattr(self, EXTRA_ATTR, nn.ModuleDict())
        self.points = points
        self.depth = depth  # the base's blocks: the added blocks' cache slots follow
        self.active: str | None = None

    @property
    def layers(self) -> nn.ModuleDict:
        return getattr(self, EXTRA_ATTR)

    @classmethod
    def attach(cls, base: PreTrainedModel, layer: LayerSettings) -> BlockExpansion:
        """A new, empty expansion of `base` for `layer`'s position and count, attached and hooked."""
        inner = base.base_model
        depth = len(inner.layers)
        expansion = cls(insertion_points(layer.position, layer.count, depth), depth)
        setattr(inner, EXPANSION_ATTR, expansion)
        for point in sorted(set(expansion.points)):
            # A bound method (in a partial): `copy.deepcopy(base)` then hooks the copy's blocks to the copy's expansion.
            hook = functools.partial(expansion._run_added_blocks, point)
            inner.layers[point].register_forward_hook(hook, with_kwargs=True)
        return expansion

    def new_layer(self, base: PreTrainedModel, init: str) -> nn.ModuleList:
        """The blocks of a new layer, one per insertion point (not yet registered under a name)."""
        family = CAUSAL_FAMILIES[base.config.model_type]
        return nn.ModuleList(
            new_block(base, point, init, family, self.depth + j) for j, point in enumerate(self.points)
        )

    def _run_added_blocks(self, point: int, block: nn.Module, args: tuple, kwargs: dict, output: torch.Tensor):
        """Forward hook of base block `point`: the active layer's blocks at `point`, in order, on its output."""
        if self.active is None:
            return None
        slots = [j for j, at in enumerate(self.points) if at == point]
        added = self.layers[self.active]
        cache = kwargs.get("past_key_values", kwargs.get("layer_past"))  # GPT-NeoX calls its cache layer_past
        if cache is not None:
            _make_cache_room(cache, self.depth + slots[-1] + 1, like=point)
        hidden_states = output
        for j in slots:
            hidden_states = added[j](hidden_states, *args[1:], **kwargs)
        return hidden_states


def _make_cache_room(cache: Cache, size: int, like: int) -> None:
    """A cache built from the base's config has one layer per base block: append empty layers of the kind of
    layer `like` (full, or sliding with its window) until it has `size`."""
    source = cache.layers[like]
    while len(cache.layers) < size:
        if isinstance(source, DynamicSlidingWindowLayer):
            cache.layers.append(DynamicSlidingWindowLayer(sliding_window=source.sliding_window))
        elif type(source) is DynamicLayer:
            cache.layers.append(DynamicLayer())
        else:
            raise TypeError(
                f"block expansion needs a dynamic KV cache; cache layers of type {type(source).__name__} "
                "(e.g. a static cache) cannot grow"
            )


def new_block(base: PreTrainedModel, point: int, init: str, family: CausalFamily, index: int) -> nn.Module:
    """A decoder block like base block `point` (its class, and its attention type or sliding window), keeping
    its keys and values in cache slot `index`, computing the identity: its residual outputs are zero.

    init "copy": block `point`'s weights (as they are now, without LoRA); "fresh": the architecture's own
    initialisation (the model's `_init_weights`, not torch's defaults). Same dtype and device as block `point`.
    """
    source_weights = _own_weights(base.base_model.layers[point])
    block = type(base.base_model.layers[point])(base.config, layer_idx=point)
    if init == "copy":
        block.load_state_dict(source_weights, strict=True)
    else:
        block.apply(base._init_weights)
    for module in block.modules():
        if hasattr(module, "layer_idx"):
            module.layer_idx = index
    with torch.no_grad():
        for name, module in block.named_modules():
            if name.endswith(family.residual_outputs):
                module.weight.zero_()
                if module.bias is not None:
                    module.bias.zero_()
    reference = next(iter(source_weights.values()))
    return block.to(device=reference.device, dtype=reference.dtype)


def _own_weights(block: nn.Module) -> dict[str, torch.Tensor]:
    """`block`'s state dict under its stock keys: without LoRA's weights, where PEFT has wrapped a projection
    (`<name>.base_layer.weight` next to `<name>.lora_A.<adapter>.weight`)."""
    return {key.replace(".base_layer.", "."): value for key, value in block.state_dict().items() if ".lora_" not in key}
