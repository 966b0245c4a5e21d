"""Evaluation of one task with the components a strategy chose: batched greedy generation, then metrics."""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass

import torch
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from hybridcl.config import EvalConfig
from hybridcl.data.batching import EncodedSet, LengthGroupedBatchSampler, Seq2SeqCollator, source_target_texts
from hybridcl.data.schema import Record
from hybridcl.metrics import score_predictions
from hybridcl.train import peak_memory, reset_peak_memory


@dataclass
class EvalStats:
    wall_time_s: float
    generated_tokens: int
    tokens_per_s: float
    peak_memory_bytes: int
    peak_memory_kind: str

    def to_dict(self) -> dict:
        return asdict(self)


@torch.inference_mode()
def generate(
    model,
    encoded: EncodedSet,
    tokenizer,
    settings: EvalConfig,
    device: torch.device,
    desc: str = "eval",
    precision: str = "no",
    accelerator=None,
) -> tuple[list[str], EvalStats]:
    """Greedy predictions for every example of `encoded`, in its order.

    Inputs go in length-sorted batches (little padding); generation uses the KV cache and stops as
    soon as every sequence of the batch has produced EOS. A HybridModel runs with its active LoRA
    merged into the base weights; precision "bf16"/"fp16" runs under CUDA autocast.

    With an `accelerator` of N processes, process r generates batches r, r+N, r+2N, ... of the same
    batch list a single process forms (so the same predictions, each example once), and every process
    gets all predictions back. Cost: the longest wall time and highest peak memory of the processes, the
    generated tokens of all.
    """
    rank, processes = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    model.eval()
    reset_peak_memory(device)
    merged = model.lora_merged() if hasattr(model, "lora_merged") else contextlib.nullcontext()
    autocast = precision in ("bf16", "fp16") and device.type == "cuda"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with merged, torch.autocast(device.type, dtype=dtype, enabled=autocast):
        shard = _generate_shard(model, encoded, tokenizer, settings, device, desc, rank, processes)
    shards = gather_object([shard]) if processes > 1 else [shard]
    return _combine(shards, len(encoded))


def _generate_shard(
    model, encoded, tokenizer, settings, device, desc, rank, processes
) -> tuple[list[tuple[int, str]], EvalStats]:
    """This process's batches: (index, prediction) pairs and what generating them cost."""
    collate = Seq2SeqCollator(tokenizer.pad_token_id)
    batches = list(LengthGroupedBatchSampler(encoded.lengths, settings.batch_size, shuffle=False))
    pairs: list[tuple[int, str]] = []
    generated = 0
    start = time.perf_counter()
    for indices in tqdm(batches[rank::processes], desc=desc, leave=False, dynamic_ncols=True, disable=rank > 0):
        batch = collate([encoded[i] for i in indices])
        output = model.generate(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            max_new_tokens=settings.max_new_tokens,
            do_sample=False,
            num_beams=1,
        )
        generated += int((output[:, 1:] != tokenizer.pad_token_id).sum())
        texts = tokenizer.batch_decode(output, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        pairs.extend(zip(indices, texts))
    return pairs, _stats(time.perf_counter() - start, generated, *peak_memory(device))


def _stats(wall: float, generated: int, kind: str, peak: int) -> EvalStats:
    return EvalStats(wall, generated, generated / wall if wall else 0.0, peak, kind)


def _combine(shards: list[tuple[list[tuple[int, str]], EvalStats]], size: int) -> tuple[list[str], EvalStats]:
    """All processes' predictions in the set's order; the slowest wall time, all tokens, the highest peak."""
    predictions = [""] * size
    for pairs, _ in shards:
        for index, text in pairs:
            predictions[index] = text
    costs = [cost for _, cost in shards]
    return predictions, _stats(
        max(c.wall_time_s for c in costs),
        sum(c.generated_tokens for c in costs),
        costs[0].peak_memory_kind,
        max(c.peak_memory_bytes for c in costs),
    )


def evaluate_task(
    model,
    records: list[Record],
    encoded: EncodedSet,
    tokenizer,
    *,
    language: str,
    direction: str,
    settings: EvalConfig,
    device: torch.device,
    desc: str = "eval",
    precision: str = "no",
    accelerator=None,
) -> tuple[dict, list[dict], EvalStats] | None:
    """Generate and score one task: (corpus scores, per-example prediction rows, cost).

    With an `accelerator`, every process generates its share and the main process alone scores
    (metrics run once): the others get None.
    """
    predictions, stats = generate(model, encoded, tokenizer, settings, device, desc, precision, accelerator)
    if accelerator is not None and not accelerator.is_main_process:
        return None
    sources, references = source_target_texts(records, direction)
    scores = score_predictions(predictions, references, language, direction)
    rows = prediction_rows(records, sources, references, predictions, scores["per_example"])
    return scores, rows, stats


def prediction_rows(records, sources, references, predictions, per_example: dict) -> list[dict]:
    """One jsonl row per example: id, source, reference, prediction and its own scores."""
    rows = []
    for i, record in enumerate(records):
        row = {
            "id": record.url or f"{record.repo}:{record.path}:{record.func_name}",
            "source": sources[i],
            "reference": references[i],
            "prediction": predictions[i],
        }
        row.update({name: values[i] for name, values in per_example.items() if values is not None})
        rows.append(row)
    return rows
