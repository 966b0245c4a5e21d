"""The hybrid model: a frozen base (T5 or a causal LM, hybridcl.model.families) + named LoRA adapters + full layers.

Components (docs/design.md section 1):

- *LoRA adapters*, through PEFT, one per name (a task key such as "python", or "joint"): `LoraConfig` from
  `LoraSettings`, on the base's modules only (default: PEFT's targets for the family, T5's `q`/`v`); the
  config excludes every module under `extra_layers` (`exclude_modules`), so an adapter added after a layer
  does not reach into it.
- *Full layers* of a causal base: LLaMA Pro's block expansion (hybridcl.model.expansion).
- *Full layers* of a T5 base: one per name, each `LayerSettings.count` T5 blocks of the base's sizes (none with
  count 0: the layer is then the identity, without parameters). They live in one `ExtraLayers` module
  appended to the block list of the stack that `LayerSettings.position` names (`encoder_top`:
  `base.encoder.block`, `decoder_top`: `base.decoder.block`; after the last block, before the final
  layer norm), so the T5 stack calls it like any block, with the same attention masks, relative
  position biases and (decoder) cache. At most one layer runs in a forward pass (`activate`); with
  none active the slot passes its input through. With `LayerSettings.init == "identity"` every
  residual branch's output projection (attention `o`, feed-forward `wo`) of a new block is zero, so
  each block computes the identity.

`activate(lora, layer)` chooses what a forward pass uses (None = that component is not used; with
lora=None the PEFT adapters are disabled and the base runs bare). `set_trainable` says exactly which
parameters get gradients. PEFT's own calls (`add_adapter`, `set_adapter`, enabling adapters) mark
adapters trainable as a side effect; this class re-applies the declared trainable set after each of
them, and keeps the module's train/eval mode.

Usage::

    model = HybridModel(base, LoraSettings(), LayerSettings())     # freezes the base
    model.add_task_lora("python"); model.add_layer("python")
    model.activate(lora="python", layer="python")
    model.set_trainable(loras=["python"], layers=["python"])
    loss = model(input_ids=..., attention_mask=..., labels=...).loss
    model.save_task("python", "out/")    # out/lora/python/ (PEFT format), out/layers/python.safetensors
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedModel, T5ForConditionalGeneration
from transformers.cache_utils import DynamicLayer, EncoderDecoderCache
from transformers.models.t5.modeling_t5 import T5Block

from hybridcl.atomic import atomic_path
from hybridcl.model.expansion import EXTRA_ATTR, BlockExpansion
from hybridcl.model.families import CAUSAL, base_kind, check_layer_settings, depth, lora_targets
from hybridcl.settings import ConfigError, LayerSettings, LoraSettings

LORA_EXCLUDE = rf".*\.{EXTRA_ATTR}\..*"
# Each sublayer of a T5 block adds its branch to the residual stream through one of these projections:
# zero, the block computes the identity.
RESIDUAL_OUTPUTS = ("SelfAttention.o", "EncDecAttention.o", "DenseReluDense.wo")

_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


class ExtraLayers(nn.Module):
    """Named layers, each a list of T5 blocks run in order, in one slot of a T5 stack (encoder or decoder);
    the `active` one runs (None: identity).

    Called by `T5Stack` exactly like a `T5Block` (transformers 5.x): positional `(hidden_states,
    attention_mask, position_bias, encoder_hidden_states, encoder_attention_mask,
    encoder_decoder_position_bias)` plus keyword arguments (`past_key_values`, ...), returning
    `(hidden_states, self_attention_position_bias, cross_attention_position_bias)`.
    """

    def __init__(self, base_blocks: int) -> None:
        super().__init__()
        setattr(self, EXTRA_ATTR, nn.ModuleDict())
        self.base_blocks = base_blocks  # the stack's own blocks: the extra blocks' indices (cache slots) follow
        self.active: str | None = None

    @property
    def layers(self) -> nn.ModuleDict:
        return getattr(self, EXTRA_ATTR)

    def forward(
        self,
        hidden_states,
        attention_mask=None,
        position_bias=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        encoder_decoder_position_bias=None,
        past_key_values=None,
        **kwargs,
    ):
        blocks = self.layers[self.active] if self.active is not None else ()
        _make_cache_room(past_key_values, self.base_blocks + len(blocks))
        for block in blocks:
            hidden_states, position_bias, cross_bias = block(
                hidden_states,
                attention_mask,
                position_bias,
                encoder_hidden_states,
                encoder_attention_mask,
                encoder_decoder_position_bias,
                past_key_values=past_key_values,
                **kwargs,
            )
            encoder_decoder_position_bias = cross_bias if cross_bias is not None else encoder_decoder_position_bias
        return hidden_states, position_bias, encoder_decoder_position_bias


def _make_cache_room(cache, size: int) -> None:
    """The decoder's cache holds one slot per block of the base's config; the extra blocks' slots come after."""
    if isinstance(cache, EncoderDecoderCache):
        for part in (cache.self_attention_cache, cache.cross_attention_cache):
            while len(part.layers) < size:
                part.layers.append(DynamicLayer())


def lora_config(settings: LoraSettings, kind: str):
    """The PEFT `LoraConfig` of every task adapter of a base of `kind` (families.SEQ2SEQ or CAUSAL), base only;
    empty `settings.target_modules`: PEFT's default targets for the base's family (`target_modules=None`)."""
    from peft import LoraConfig, TaskType

    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules) or None,
        exclude_modules=LORA_EXCLUDE,
        task_type=TaskType.CAUSAL_LM if kind == CAUSAL else TaskType.SEQ_2_SEQ_LM,
    )


def check_target_modules(model: PreTrainedModel, target_modules: Iterable[str]) -> None:
    """Raise ConfigError when an entry of lora.target_modules (empty: PEFT's default for the base's family)
    matches no module of `model` (the base).

    PEFT's rule for a list of names (`check_target_module_exists`): a module matches an entry when its
    full name equals it or ends with "." + entry.
    """
    names = [name for name, _ in model.named_modules()]
    targets = lora_targets(tuple(target_modules), model.config)
    missing = [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in names)]
    if missing:
        linear = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ConfigError(
            f"lora.target_modules entries {missing} match no module of the base model; "
            f"its Linear layers, which LoRA can target: {', '.join(linear)}"
        )


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Run the block with the torch RNG seeded to `seed`, leaving the global RNG state untouched.

    New components are initialised on the CPU (PEFT moves LoRA weights to the base's device after),
    so forking the CPU generator is enough.
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class HybridModel(nn.Module):
    """A T5 or causal LM base with named LoRA adapters and named extra layers (see the module docstring).

    `base` is modified in place (PEFT injects LoRA layers into it; on the first `add_layer` the extra layers
    slot is appended to the block list of a T5 position's stack, or a causal base's block expansion is
    attached), and all its parameters are frozen here.
    """

    def __init__(
        self,
        base: PreTrainedModel,
        lora: LoraSettings = LoraSettings(),
        layer: LayerSettings = LayerSettings(),
    ) -> None:
        super().__init__()
        if layer.count < 0:
            raise ValueError(f"layer.count must be >= 0, got {layer.count}")
        kind = base_kind(getattr(base, "config", None))  # ConfigError naming the supported families
        check_layer_settings(base.config, layer)
        if base.base_model is base if kind == CAUSAL else not isinstance(base, T5ForConditionalGeneration):
            raise TypeError(
                f"HybridModel needs T5ForConditionalGeneration or ...ForCausalLM, got {type(base).__name__}"
            )
        if any(isinstance(module, (ExtraLayers, BlockExpansion)) for module in base.modules()):
            raise ValueError("this base already carries extra layers (it belongs to another HybridModel)")
        if any(hasattr(module, "lora_A") for module in base.modules()):
            raise ValueError(f"this base already carries LoRA layers; pass a plain {type(base).__name__}")
        self.base = base
        self.lora_settings = lora
        self.layer_settings = layer
        # Where the layers go: the T5 stack their position names; a causal base's inner model (its decoder stack).
        self.stack = base.base_model if kind == CAUSAL else getattr(base, layer.position.removesuffix("_top"))
        self.num_base_layers = depth(base.config, layer.position)
        # The PeftModel wrapping `base` (created on the first add_task_lora). Not registered as a
        # submodule: its parameters are `base`'s own, already registered.
        self.__dict__["peft"] = None
        self._extra: ExtraLayers | BlockExpansion | None = None
        self._active: tuple[str | None, str | None] = (None, None)
        self._trainable: tuple[tuple[str, ...], tuple[str, ...], bool] = ((), (), False)
        self._apply_trainable()

    # ----------------------------------------------------------------------------- components

    @property
    def config(self):
        return self.base.config

    @property
    def kind(self) -> str:
        """families.SEQ2SEQ (T5) or families.CAUSAL."""
        return base_kind(self.config)

    @property
    def lora_names(self) -> tuple[str, ...]:
        return tuple(self.peft.peft_config) if self.peft is not None else ()

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(self._extra.layers) if self._extra is not None else ()

    @property
    def active(self) -> tuple[str | None, str | None]:
        """(lora, layer) used by forward; None = not used."""
        return self._active

    def add_task_lora(self, name: str, *, seed: int | None = None) -> None:
        """Add a fresh LoRA adapter `name` (B = 0, so it starts as a no-op). Does not activate it.

        `seed` makes its initialisation independent of the global RNG state (e.g. so that two
        strategies branching from a shared stage start from the same A matrices).
        """
        _check_name(name)
        if name in self.lora_names:
            raise ValueError(f"LoRA adapter {name!r} already exists")
        config = lora_config(self.lora_settings, self.kind)
        with self._keeping_state(), _seeded(seed), warnings.catch_warnings():
            # Before any extra layer exists, PEFT warns that exclude_modules excluded nothing.
            warnings.filterwarnings("ignore", message=".*exclude_modules.*no modules were excluded.*")
            # PEFT 0.21 reads transformers' deprecated `is_gradient_checkpointing` property.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            if self.peft is None:
                from peft import get_peft_model

                self.__dict__["peft"] = get_peft_model(self.base, config, adapter_name=name)
            else:
                self.peft.add_adapter(name, config)

    def add_layer(self, name: str, *, seed: int | None = None) -> None:
        """Add a full layer `name`: `layer_settings.count` blocks of the base's own kind (T5: identity or T5-random
        init; causal: hybridcl.model.expansion). Does not activate it."""
        _check_name(name)
        if name in self.layer_names:
            raise ValueError(f"layer {name!r} already exists")
        if self._extra is None and self.kind == CAUSAL:
            self._extra = BlockExpansion.attach(self.base, self.layer_settings)
        elif self._extra is None:
            self._extra = ExtraLayers(self.num_base_layers)
            self.stack.block.append(self._extra)
        with _seeded(seed):
            if self.kind == CAUSAL:
                blocks = self._extra.new_layer(self.base, self.layer_settings.init)
            else:
                blocks = nn.ModuleList(self._new_block(j) for j in range(self.layer_settings.count))
        self._extra.layers[name] = blocks
        self._apply_trainable()

    def _new_block(self, j: int) -> T5Block:
        """Block j of a new T5 layer; its cache slot follows the stack's own blocks."""
        block = T5Block(self.stack.config, has_relative_attention_bias=False, layer_idx=self.num_base_layers + j)
        block.apply(self.base._init_weights)  # T5's own initialisation, not torch's defaults
        if self.layer_settings.init == "identity":
            with torch.no_grad():
                for module_name, module in block.named_modules():
                    if module_name.endswith(RESIDUAL_OUTPUTS):
                        module.weight.zero_()
        # Same dtype/device as the base's blocks, parameter by parameter (T5 keeps `wo` in fp32).
        reference = dict(self.stack.block[self.num_base_layers - 1].named_parameters())
        for pname, param in block.named_parameters():
            ref = reference.get(pname, next(iter(reference.values())))
            param.data = param.data.to(device=ref.device, dtype=ref.dtype)
        return block

    # ------------------------------------------------------------------------------- switching

    def activate(self, lora: str | None, layer: str | None) -> None:
        """Use adapter `lora` and layer `layer` in forward/generate; None = that component is not used."""
        if lora is not None:
            _require("LoRA adapter", lora, self.lora_names)
        if layer is not None:
            _require("layer", layer, self.layer_names)
        if self.peft is not None:
            with self._keeping_state():
                if lora is None:
                    self.peft.base_model.disable_adapter_layers()
                else:
                    self.peft.base_model.enable_adapter_layers()
                    self.peft.set_adapter(lora)
        if self._extra is not None:
            self._extra.active = layer
        self._active = (lora, layer)

    def set_trainable(self, *, loras: Iterable[str] = (), layers: Iterable[str] = (), base: bool = False) -> None:
        """Exactly these parameters get requires_grad=True, every other one False.

        `base=True` means every parameter of the base model itself (not LoRA, not the extra layers).
        """
        loras, layers = tuple(loras), tuple(layers)
        for name in loras:
            _require("LoRA adapter", name, self.lora_names)
        for name in layers:
            _require("layer", name, self.layer_names)
        self._trainable = (loras, layers, bool(base))
        self._apply_trainable()

    def freeze(self) -> None:
        """Nothing trainable (evaluation)."""
        self.set_trainable()

    def _apply_trainable(self) -> None:
        loras, layers, base = self._trainable
        lora_ids = {id(p) for name in self.lora_names for p in self.lora_parameters(name)}
        layer_ids = {id(p) for name in self.layer_names for p in self.layer_parameters(name)}
        for param in self.base.parameters():
            param.requires_grad_(base and id(param) not in lora_ids and id(param) not in layer_ids)
        for name in loras:
            for param in self.lora_parameters(name):
                param.requires_grad_(True)
        for name in layers:
            for param in self.layer_parameters(name):
                param.requires_grad_(True)

    @contextlib.contextmanager
    def _keeping_state(self) -> Iterator[None]:
        """Around PEFT calls: restore train/eval mode and the declared trainable set afterwards."""
        training = self.training
        try:
            yield
        finally:
            self.train(training)
            self._apply_trainable()

    # ------------------------------------------------------------------------------ parameters

    def lora_parameters(self, name: str) -> list[nn.Parameter]:
        """The parameters of LoRA adapter `name` (every wrapped module's lora_A/lora_B, ...)."""
        from peft.tuners.lora import LoraLayer

        params = []
        for module in self.base.modules():
            if isinstance(module, LoraLayer):
                for attr in module.adapter_layer_names:
                    container = getattr(module, attr)
                    if name in container:
                        item = container[name]
                        params.extend(item.parameters() if isinstance(item, nn.Module) else [item])
        return params

    def lora_modules(self, name: str) -> list[str]:
        """Names (in the base) of the modules adapter `name` wraps."""
        from peft.tuners.lora import LoraLayer

        return [
            module_name
            for module_name, module in self.base.named_modules()
            if isinstance(module, LoraLayer) and name in module.lora_A
        ]

    def layer_parameters(self, name: str) -> list[nn.Parameter]:
        return list(self._blocks(name).parameters())

    def base_parameters(self) -> list[nn.Parameter]:
        """The base model's own parameters (tied weights once), without LoRA and extra layers."""
        skip = {id(p) for n in self.lora_names for p in self.lora_parameters(n)}
        skip |= {id(p) for n in self.layer_names for p in self.layer_parameters(n)}
        return [p for p in self.base.parameters() if id(p) not in skip]

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.base.parameters() if p.requires_grad]

    def _blocks(self, name: str) -> nn.ModuleList:
        _require("layer", name, self.layer_names)
        return self._extra.layers[name]

    def _layer(self, name: str, index: int = 0) -> nn.Module:
        """Block `index` of layer `name`."""
        return self._blocks(name)[index]

    # ------------------------------------------------------------------------------- running

    def forward(self, **batch):
        """The base's forward, with the active adapter and layer."""
        return self.base(**batch)

    @torch.no_grad()
    def generate(self, **kwargs):
        return self.base.generate(**kwargs)

    @contextlib.contextmanager
    def lora_merged(self) -> Iterator[None]:
        """For inference: the active adapter folded into the base weights (no LoRA matmuls per token);
        afterwards the base's exact original weights are put back (unmerging alone leaves rounding)."""
        lora = self._active[0]
        if lora is None:
            yield
            return
        from peft.tuners.lora import LoraLayer

        wrapped = [m for m in self.base.modules() if isinstance(m, LoraLayer) and lora in m.lora_A]
        originals = [m.get_base_layer().weight.detach().clone() for m in wrapped]
        with self._keeping_state():
            self.peft.merge_adapter([lora])
        try:
            yield
        finally:
            with self._keeping_state():
                self.peft.unmerge_adapter()
            with torch.no_grad():
                for module, weight in zip(wrapped, originals):
                    module.get_base_layer().weight.copy_(weight)

    def merge_lora(self, name: str) -> None:
        """Fold adapter `name` into the base weights for good (W <- W + alpha/r * B A in every module it
        wraps) and delete it: PEFT's `merge_and_unload` for one adapter, the others stay."""
        from peft.tuners.lora import LoraLayer

        _require("LoRA adapter", name, self.lora_names)
        with torch.no_grad():
            for module in self.base.modules():
                if isinstance(module, LoraLayer) and name in module.lora_A:
                    module.get_base_layer().weight += module.get_delta_weight(name)
        if self._active[0] == name:
            self.activate(None, self._active[1])
        loras, layers, base = self._trainable
        self._trainable = (tuple(n for n in loras if n != name), layers, base)
        with self._keeping_state():
            self.peft.delete_adapter(name)

    # ---------------------------------------------------------------------------- state / io

    def lora_state(self, name: str) -> dict[str, torch.Tensor]:
        """Adapter `name`'s weights as PEFT saves them (keys without the adapter name), detached copies."""
        from peft import get_peft_model_state_dict

        _require("LoRA adapter", name, self.lora_names)
        state = get_peft_model_state_dict(self.peft, adapter_name=name)
        return {key: value.detach().clone() for key, value in state.items()}

    def layer_state(self, name: str) -> dict[str, torch.Tensor]:
        """Layer `name`'s weights, detached copies: block i's under "i.<T5Block key>", except that a layer of
        one block keeps T5Block's own keys (it loads into a stock T5 block, as files from before layer.count do)."""
        blocks = self._blocks(name)
        state = blocks.state_dict()
        if len(blocks) == 1:
            state = {key.removeprefix("0."): value for key, value in state.items()}
        return {key: value.detach().clone() for key, value in state.items()}

    def save_lora(self, name: str, out_dir: str | os.PathLike) -> Path:
        """Write adapter `name` in PEFT format to out_dir/lora/<name>/ (atomically); return that folder.

        The folder loads with plain `PeftModel.from_pretrained(stock_base, folder)`.
        """
        _require("LoRA adapter", name, self.lora_names)
        final = Path(out_dir) / "lora" / name
        final.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{name}.tmp") as tmp:
            saved = Path(tmp) / "peft"
            # The base is frozen and never resized, so no embedding is saved; PEFT's "auto" would ask the hub
            # for the base's config.json at every save to find out.
            self.peft.save_pretrained(str(saved), selected_adapters=[name], save_embedding_layers=False)
            # PEFT writes adapter "default" into the folder itself and any other into a sub-folder.
            _replace_dir(saved if name == "default" else saved / name, final)
        return final

    def save_layer(self, name: str, out_dir: str | os.PathLike) -> Path:
        """Write layer `name` as safetensors to out_dir/layers/<name>.safetensors (atomically)."""
        state = {key: value.contiguous() for key, value in self.layer_state(name).items()}
        final = Path(out_dir) / "layers" / f"{name}.safetensors"
        metadata = {
            "format": "pt",
            "hybridcl_layer": name,
            "position": self.layer_settings.position,
            "count": str(self.layer_settings.count),
            "init": self.layer_settings.init,
            "d_model": str(self.config.hidden_size),  # T5's d_model
        }
        with atomic_path(final) as tmp:
            save_file(state, str(tmp), metadata=metadata)
        return final

    def save_task(self, name: str, out_dir: str | os.PathLike) -> list[Path]:
        """Save every component called `name` (LoRA adapter and/or layer); weights only, no pickle."""
        written = []
        if name in self.lora_names:
            written.append(self.save_lora(name, out_dir))
        if name in self.layer_names:
            written.append(self.save_layer(name, out_dir))
        if not written:
            raise KeyError(f"no LoRA adapter or layer named {name!r}")
        return written

    def load_lora(self, name: str, out_dir: str | os.PathLike) -> None:
        """Load out_dir/lora/<name>/ into adapter `name` (created if missing, with this model's settings)."""
        folder = Path(out_dir) / "lora" / name
        saved = json.loads((folder / "adapter_config.json").read_text())
        targets = sorted(lora_targets(self.lora_settings.target_modules, self.config))
        expected = {"r": self.lora_settings.r, "lora_alpha": self.lora_settings.alpha, "target_modules": targets}
        for key, mine in expected.items():
            theirs = sorted(saved.get(key) or []) if key == "target_modules" else saved.get(key)
            if mine != theirs:
                raise ValueError(f"{folder}: adapter {key}={theirs!r} does not match this model's {mine!r}")
        self.set_lora_state(name, load_file(str(folder / "adapter_model.safetensors")), source=str(folder))

    def set_lora_state(self, name: str, state: dict[str, torch.Tensor], source: str = "state") -> None:
        """Put PEFT-format weights (keys without adapter name) into adapter `name` (created if missing)."""
        from peft import set_peft_model_state_dict

        if name not in self.lora_names:
            self.add_task_lora(name)
        expected_keys = set(self.lora_state(name))
        if set(state) != expected_keys:
            missing, extra = sorted(expected_keys - set(state)), sorted(set(state) - expected_keys)
            raise ValueError(
                f"{source}: adapter weights do not fit: missing {missing[:3]}..., unexpected {extra[:3]}..."
            )
        with self._keeping_state():
            set_peft_model_state_dict(self.peft, state, adapter_name=name)

    def load_layer(self, name: str, out_dir: str | os.PathLike) -> None:
        """Load out_dir/layers/<name>.safetensors into layer `name` (created if missing); a file saved with
        another position or block count is refused."""
        path = Path(out_dir) / "layers" / f"{name}.safetensors"
        with safe_open(str(path), "pt") as saved:
            metadata = saved.metadata() or {}
        mine = {"position": self.layer_settings.position, "count": str(self.layer_settings.count)}
        for key, value in mine.items():
            theirs = metadata.get(key, "1" if key == "count" else None)  # files from before layer.count: one block
            if theirs != value:
                raise ValueError(f"{path}: layer {key}={theirs} does not match this model's {key}={value}")
        self.set_layer_state(name, load_file(str(path)))

    def set_layer_state(self, name: str, state: dict[str, torch.Tensor]) -> None:
        """Put weights as `layer_state` gives them into layer `name` (created if missing)."""
        if name not in self.layer_names:
            self.add_layer(name)
        blocks = self._blocks(name)
        if len(blocks) == 1:
            state = {f"0.{key}": value for key, value in state.items()}
        blocks.load_state_dict(state, strict=True)

    def load_task(self, name: str, out_dir: str | os.PathLike) -> None:
        """Load every saved component called `name` from out_dir (what `save_task` wrote)."""
        found = False
        if (Path(out_dir) / "lora" / name / "adapter_config.json").is_file():
            self.load_lora(name, out_dir)
            found = True
        if (Path(out_dir) / "layers" / f"{name}.safetensors").is_file():
            self.load_layer(name, out_dir)
            found = True
        if not found:
            raise FileNotFoundError(f"{out_dir}: no saved LoRA adapter or layer named {name!r}")


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"component name {name!r}: use letters, digits, '_' or '-'")
    if name in "lora_":  # PEFT warns that such adapter names may be re-initialised on loading
        raise ValueError(f"component name {name!r} is part of PEFT's parameter prefix 'lora_'; choose another")


def _require(kind: str, name: str, known: tuple[str, ...]) -> None:
    if name not in known:
        raise KeyError(f"unknown {kind} {name!r}; known: {list(known)}")


def _replace_dir(src: Path, dst: Path) -> None:
    """Move folder `src` to `dst`, replacing an existing `dst` (old one removed only after the move)."""
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old)
    else:
        os.replace(src, dst)
