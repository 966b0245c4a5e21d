"""Parameter counting: trainable parameters per stage and parameters stored, per strategy.

Every count comes from real modules: a `HybridModel` is built on (a copy of) the base with the
strategy's components, `set_trainable` is applied for each stage, and the parameters with
requires_grad are summed. Percentages are of the base model's own parameters (tied weights counted
once), except the layer's headline figure, which docs/design.md states as % of base + layer.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from transformers import T5ForConditionalGeneration

from hybridcl.config import Config
from hybridcl.model.hybrid import HybridModel
from hybridcl.settings import LayerSettings, LoraSettings
from hybridcl.strategies import Components, Strategy, get_strategy


def _numel(params) -> int:
    return sum(p.numel() for p in params)


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def _build(base_model: T5ForConditionalGeneration, lora: LoraSettings, layer: LayerSettings) -> HybridModel:
    # A copy: HybridModel modifies its base in place (LoRA injection, the extra layers slot).
    return HybridModel(copy.deepcopy(base_model), lora, layer)


def component_sizes(base_model: T5ForConditionalGeneration, lora: LoraSettings, layer: LayerSettings) -> dict[str, Any]:
    """Sizes of one LoRA adapter, one full layer (`layer.count` blocks) and the base, measured on real modules."""
    model = _build(base_model, lora, layer)
    model.add_task_lora("probe")
    model.add_layer("probe")
    base = _numel(model.base_parameters())
    lora_n = _numel(model.lora_parameters("probe"))
    layer_n = _numel(model.layer_parameters("probe"))
    return {
        "base": base,
        "lora_per_adapter": lora_n,
        "lora_modules": len(model.lora_modules("probe")),
        "lora_pct_of_base": _pct(lora_n, base),
        "layer": layer_n,
        "layer_pct_of_base": _pct(layer_n, base),
        "layer_pct_of_base_plus_layer": _pct(layer_n, base + layer_n),
    }


def count_params(
    strategy: Strategy | str,
    tasks: Sequence[str],
    base_model: T5ForConditionalGeneration,
    lora: LoraSettings = LoraSettings(),
    layer: LayerSettings = LayerSettings(),
) -> dict[str, Any]:
    """Trainable parameters per stage and parameters stored at the end, for `strategy` on `tasks`.

    Returns {"strategy", "tasks", "base", "lora_per_adapter", "lora_modules", "layer",
    "per_stage": [{"stage", "tasks", "trainable", "trainable_pct_of_base"}], "stored",
    "stored_pct_of_base"}. Stored = every LoRA adapter and layer the strategy keeps for all tasks
    (or the whole base for full_finetune). `base_model` is not modified.
    """
    strategy = get_strategy(strategy) if isinstance(strategy, str) else strategy
    tasks = tuple(tasks)
    model = _build(base_model, lora, layer)
    components = strategy.components(tasks)
    for name in components.loras:
        model.add_task_lora(name)
    for name in components.layers:
        model.add_layer(name)
    base = _numel(model.base_parameters())

    stages = []
    for stage in strategy.stages(tasks):
        t = stage.trainable
        model.set_trainable(loras=t.loras, layers=t.layers, base=t.base)
        trainable = _numel(model.trainable_parameters())
        stages.append(
            {
                "stage": stage.index,
                "tasks": list(stage.tasks),
                "trainable": trainable,
                "trainable_pct_of_base": _pct(trainable, base),
            }
        )
    model.set_trainable(loras=components.loras, layers=components.layers, base=components.base)
    stored = _numel(model.trainable_parameters())  # everything the strategy owns
    lora_sizes = {_numel(model.lora_parameters(n)) for n in components.loras}
    layer_sizes = {_numel(model.layer_parameters(n)) for n in components.layers}
    return {
        "strategy": strategy.name,
        "tasks": list(tasks),
        "base": base,
        "lora_per_adapter": lora_sizes.pop() if len(lora_sizes) == 1 else None,
        "lora_modules": len(model.lora_modules(components.loras[0])) if components.loras else 0,
        "layer": layer_sizes.pop() if len(layer_sizes) == 1 else None,
        "num_loras": len(components.loras),
        "num_layers": len(components.layers),
        "per_stage": stages,
        "stored": stored,
        "stored_what": _stored_what(components, layer),
        "stored_pct_of_base": _pct(stored, base),
    }


def _stored_what(components: Components, layer: LayerSettings) -> str:
    if components.base:
        return "whole base"
    layers = f"{len(components.layers)} layer(s)" if layer.count else "no layer (layer.count=0)"
    return f"{len(components.loras)} LoRA + {layers}"


def format_params_table(
    sizes: dict[str, Any],
    counts: Sequence[dict[str, Any]],
    lora: LoraSettings | None = None,
    layer: LayerSettings | None = None,
) -> str:
    """A plain-text report: component sizes, then one row per strategy."""
    lines = ["Components", ""]
    rank = f", r={lora.r}" if lora is not None else ""
    blocks = f"{layer.count} block(s) at {layer.position}; " if layer is not None else ""
    lines.append(f"  base model           {sizes['base']:>12,}")
    lines.append(
        f"  LoRA adapter         {sizes['lora_per_adapter']:>12,}  ({sizes['lora_modules']} modules{rank}; "
        f"{sizes['lora_pct_of_base']:.2f}% of base)"
    )
    lines.append(
        f"  full layer           {sizes['layer']:>12,}  ({blocks}{sizes['layer_pct_of_base_plus_layer']:.2f}% of base + layer; "
        f"{sizes['layer_pct_of_base']:.2f}% of base)"
    )
    lines += ["", "Strategies (trainable per stage; stored for all tasks at the end; % of base)", ""]
    header = f"  {'strategy':<20} {'stage':>6}  {'tasks':<24} {'trainable':>12} {'%':>8}"
    lines += [header, "  " + "-" * (len(header) - 2)]
    for count in counts:
        for i, stage in enumerate(count["per_stage"]):
            name = count["strategy"] if i == 0 else ""
            lines.append(
                f"  {name:<20} {stage['stage']:>6}  {'+'.join(stage['tasks']):<24} "
                f"{stage['trainable']:>12,} {stage['trainable_pct_of_base']:>7.2f}%"
            )
        lines.append(
            f"  {'':<20} {'stored':>6}  {count['stored_what']:<24} {count['stored']:>12,} {count['stored_pct_of_base']:>7.2f}%"
        )
    return "\n".join(lines)


def params_report(cfg: Config, base_model: T5ForConditionalGeneration) -> str:
    """The `hybridcl params` table for the config's tasks (in training order) and strategies."""
    tasks = cfg.task_keys
    strategies = [get_strategy(name) for name in cfg.strategies]
    sizes = component_sizes(base_model, cfg.lora, cfg.layer)
    counts = [count_params(s, tasks, base_model, cfg.lora, cfg.layer) for s in strategies]
    return format_params_table(sizes, counts, cfg.lora, cfg.layer)
