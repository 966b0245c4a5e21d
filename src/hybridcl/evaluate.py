"""Evaluation of one task with the components a strategy chose: batched greedy generation, then metrics."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import asdict, dataclass

import torch
from accelerate.utils import gather_object

from hybridcl.data.batching import EncodedSet, LengthGroupedBatchSampler, collator_for
from hybridcl.data.schema import Pair
from hybridcl.data.tasks import Task, task_texts
from hybridcl.logs import FILE_ONLY, duration
from hybridcl.metrics import Generation, score_predictions
from hybridcl.model.families import CAUSAL, base_kind
from hybridcl.progress import track
from hybridcl.settings import EvalConfig
from hybridcl.train import (
    NEW_VALUES_NEED_A_FRESH_OUT,
    AcceleratorOutOfMemory,
    free_cached_memory,
    is_out_of_memory,
    peak_memory,
    reset_peak_memory,
)

logger = logging.getLogger(__name__)


@dataclass
class EvalStats:
    wall_time_s: float
    generated_tokens: int
    tokens_per_s: float
    peak_memory_bytes: int
    peak_memory_kind: str
    batch_size_used: int  # eval.batch_size, or less where generation ran out of memory and halved it

    def to_dict(self) -> dict:
        return asdict(self)


@torch.inference_mode()
def generate_outputs(
    model,
    encoded: EncodedSet,
    tokenizer,
    settings: EvalConfig,
    device: torch.device,
    desc: str = "eval",
    precision: str = "no",
    accelerator=None,
) -> tuple[list[str], list[Generation], EvalStats]:
    """Greedy predictions for every example of `encoded`, in its order, with the ids each generated
    (for the output checks) and what generating them cost.

    Inputs go in length-sorted batches (little padding); generation uses the KV cache and stops as
    soon as every sequence of the batch has produced EOS. A causal base's batches are its prompts,
    left-padded, and its predictions the completions alone. A HybridModel runs with its active LoRA
    merged into the base weights; precision "bf16"/"fp16" runs under autocast (CUDA or CPU).

    With an `accelerator` of N processes, process r generates batches r, r+N, r+2N, ... of the same
    batch list a single process forms (so the same predictions, each example once), and every process
    gets all predictions and ids back. Cost: the longest wall time and highest peak memory of the processes, the
    generated tokens of all, the smallest batch size any of them used.

    A batch that runs out of accelerator memory is generated in halves (and every later batch in pieces
    of that size), down to one example; one example that does not fit is an AcceleratorOutOfMemory.
    Each process halves on its own: the batch list, and so each process's share, stays the same. A greedy
    prediction depends on its own example alone (source padding is masked), so halving changes none,
    up to the last-bit differences other batch shapes can make on a GPU in bf16.
    """
    rank, processes = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    model.eval()
    reset_peak_memory(device)
    merged = model.lora_merged() if hasattr(model, "lora_merged") else contextlib.nullcontext()
    autocast = precision in ("bf16", "fp16") and device.type in ("cuda", "cpu")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with merged, torch.autocast(device.type, dtype=dtype, enabled=autocast):
        shard = _generate_shard(model, encoded, tokenizer, settings, device, desc, rank, processes)
    shards = gather_object([shard]) if processes > 1 else [shard]
    return _combine(shards, len(encoded))


Shard = tuple[list[tuple[int, str, Generation]], EvalStats]


def _generate_shard(model, encoded, tokenizer, settings, device, desc, rank, processes) -> Shard:
    """This process's batches: (index, prediction, generation) triples and what generating them cost."""
    kind = base_kind(model.config)
    collate = collator_for(kind, tokenizer.pad_token_id, generation=True)
    batches = list(LengthGroupedBatchSampler(encoded.lengths, settings.batch_size, shuffle=False))
    outputs: list[tuple[int, str, Generation]] = []
    generated = 0
    limit = settings.batch_size  # halved on out-of-memory, for this batch and every later one
    start = time.perf_counter()
    for indices in track(batches[rank::processes], f"eval {desc}", "batch", enabled=rank == 0):
        done = 0
        while done < len(indices):
            piece = indices[done : done + limit]
            steps = _generate_batch(model, collate([encoded[i] for i in piece]), settings, device, kind, tokenizer)
            if steps is None:
                limit = _halved(limit, desc, settings)
                continue
            generated += generated_tokens(steps, tokenizer.eos_token_id)
            texts = tokenizer.batch_decode(steps, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            outputs.extend(zip(piece, texts, generations(steps, tokenizer.eos_token_id)))
            done += len(piece)
    return outputs, _stats(time.perf_counter() - start, generated, *peak_memory(device), limit)


def _until_eos(steps: torch.Tensor, eos_token_id: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sequence of the generated steps, the steps before its first EOS (all of them when it has none)
    and whether it has one."""
    if eos_token_id is None:
        return torch.full((len(steps),), steps.shape[1]), torch.zeros(len(steps), dtype=torch.bool)
    is_eos = steps == eos_token_id
    ended = is_eos.any(dim=1)
    return torch.where(ended, is_eos.int().argmax(dim=1), steps.shape[1]), ended


def generated_tokens(steps: torch.Tensor, eos_token_id: int | None) -> int:
    """The tokens the batch's sequences generated (`steps`: _generate_batch's): each up to and including
    its first EOS, or all its steps when it never ends (a model with random weights, say, which repeats
    the pad token)."""
    before_eos, ended = _until_eos(steps, eos_token_id)
    return int((before_eos + ended.int()).sum())


def generations(steps: torch.Tensor, eos_token_id: int | None) -> list[Generation]:
    """Per sequence of the batch's generated `steps`: its ids before the first EOS, and whether it reached
    one (a sequence without one ran every step, to eval.max_new_tokens)."""
    before_eos, ended = _until_eos(steps, eos_token_id)
    return [Generation(tuple(row[:length].tolist()), bool(done)) for row, length, done in zip(steps, before_eos, ended)]


def _generate_batch(
    model, batch: dict, settings: EvalConfig, device: torch.device, kind: str, tokenizer
) -> torch.Tensor | None:
    """The greedy generated steps of one batch, or None when it ran out of accelerator memory.

    Steps are what the model wrote: a T5 output after its decoder start token; a causal output after the
    (left-padded) prompts, which it repeats first. A causal base gets the pad and EOS ids (Llama's
    generation config has no pad id; load_base gives a tokenizer without a pad token its EOS as one), so
    finished rows pad and the batch stops when all have ended.
    """
    special_ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    try:
        output = model.generate(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            max_new_tokens=settings.max_new_tokens,
            do_sample=False,
            num_beams=1,
            **(special_ids if kind == CAUSAL else {}),
        )
        return output[:, batch["input_ids"].shape[1] :] if kind == CAUSAL else output[:, 1:]
    except RuntimeError as error:
        if not is_out_of_memory(error):
            raise
    free_cached_memory(device)  # here, not in the except block: the error's frames hold the batch's tensors
    return None


def _halved(limit: int, desc: str, settings: EvalConfig) -> int:
    if limit == 1:
        raise AcceleratorOutOfMemory(
            f"out of accelerator memory generating {desc} one example at a time "
            f"(eval.max_new_tokens={settings.max_new_tokens}); lower eval.max_new_tokens or data.max_source_tokens "
            f"({NEW_VALUES_NEED_A_FRESH_OUT})"
        )
    logger.warning("%s: out of accelerator memory at generation batch %d; retrying at %d", desc, limit, limit // 2)
    return limit // 2


def _stats(wall: float, generated: int, kind: str, peak: int, batch_size: int) -> EvalStats:
    return EvalStats(wall, generated, generated / wall if wall else 0.0, peak, kind, batch_size)


def _combine(shards: list[Shard], size: int) -> tuple[list[str], list[Generation], EvalStats]:
    """All processes' predictions and generations in the set's order; the slowest wall time, all tokens,
    the highest peak, the smallest batch."""
    predictions, produced = [""] * size, [Generation((), False)] * size
    for outputs, _ in shards:
        for index, text, generation in outputs:
            predictions[index], produced[index] = text, generation
    costs = [cost for _, cost in shards]
    combined = _stats(
        max(c.wall_time_s for c in costs),
        sum(c.generated_tokens for c in costs),
        costs[0].peak_memory_kind,
        max(c.peak_memory_bytes for c in costs),
        min(c.batch_size_used for c in costs),
    )
    return predictions, produced, combined


def evaluate_task(
    model,
    pairs: list[Pair],
    encoded: EncodedSet,
    tokenizer,
    *,
    task: Task,
    settings: EvalConfig,
    device: torch.device,
    desc: str = "eval",
    precision: str = "no",
    accelerator=None,
    task_prefix: bool = False,
) -> tuple[dict, list[dict], EvalStats] | None:
    """Generate and score one task: (corpus scores, per-example prediction rows, cost).

    With an `accelerator`, every process generates its share and the main process alone scores
    (metrics run once): the others get None. `task_prefix`: the sources were encoded with their cue
    (data.task_prefix), and the prediction rows show them as the model read them.
    """
    predictions, produced, stats = generate_outputs(
        model, encoded, tokenizer, settings, device, desc, precision, accelerator
    )
    if accelerator is not None and not accelerator.is_main_process:
        return None
    sources, references = task_texts(task, pairs, task_prefix)
    start = time.perf_counter()
    scores = score_predictions(predictions, references, task.target_language, generations=produced)
    logger.info("eval %s: scored in %s", desc, duration(time.perf_counter() - start), extra=FILE_ONLY)
    rows = prediction_rows(pairs, sources, references, predictions, scores["per_example"])
    return scores, rows, stats


def prediction_rows(pairs: list[Pair], sources, references, predictions, per_example: dict) -> list[dict]:
    """One jsonl row per example: id, source, reference, prediction and its own scores."""
    rows = []
    for i, pair in enumerate(pairs):
        row = {"id": pair.id, "source": sources[i], "reference": references[i], "prediction": predictions[i]}
        row.update({name: values[i] for name, values in per_example.items() if values is not None})
        rows.append(row)
    return rows
