"""Evaluation of one task with the components a strategy chose: batched greedy generation, then metrics."""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass

import torch
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
def generate(model, encoded: EncodedSet, tokenizer, settings: EvalConfig, device: torch.device,
             desc: str = "eval", precision: str = "no") -> tuple[list[str], EvalStats]:
    """Greedy predictions for every example of `encoded`, in its order.

    Inputs go in length-sorted batches (little padding); generation uses the KV cache and stops as
    soon as every sequence of the batch has produced EOS. A HybridModel runs with its active LoRA
    merged into the base weights; precision "bf16"/"fp16" runs under CUDA autocast.
    """
    model.eval()
    reset_peak_memory(device)
    merged = model.lora_merged() if hasattr(model, "lora_merged") else contextlib.nullcontext()
    autocast = precision in ("bf16", "fp16") and device.type == "cuda"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with merged, torch.autocast(device.type, dtype=dtype, enabled=autocast):
        return _generate(model, encoded, tokenizer, settings, device, desc)


def _generate(model, encoded, tokenizer, settings, device, desc):
    collate = Seq2SeqCollator(tokenizer.pad_token_id)
    batches = list(LengthGroupedBatchSampler(encoded.lengths, settings.batch_size, shuffle=False))
    predictions: list[str] = [""] * len(encoded)
    generated = 0
    start = time.perf_counter()
    for indices in tqdm(batches, desc=desc, leave=False, dynamic_ncols=True):
        batch = collate([encoded[i] for i in indices])
        output = model.generate(input_ids=batch["input_ids"].to(device),
                                attention_mask=batch["attention_mask"].to(device),
                                max_new_tokens=settings.max_new_tokens, do_sample=False, num_beams=1)
        generated += int((output[:, 1:] != tokenizer.pad_token_id).sum())
        texts = tokenizer.batch_decode(output, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        for index, text in zip(indices, texts):
            predictions[index] = text
    wall = time.perf_counter() - start
    kind, peak = peak_memory(device)
    return predictions, EvalStats(wall, generated, generated / wall if wall else 0.0, peak, kind)


def evaluate_task(model, records: list[Record], encoded: EncodedSet, tokenizer, *, language: str, direction: str,
                  settings: EvalConfig, device: torch.device, desc: str = "eval",
                  precision: str = "no") -> tuple[dict, list[dict], EvalStats]:
    """Generate and score one task: (corpus scores, per-example prediction rows, cost)."""
    predictions, stats = generate(model, encoded, tokenizer, settings, device, desc, precision)
    sources, references = source_target_texts(records, direction)
    scores = score_predictions(predictions, references, language, direction)
    rows = prediction_rows(records, sources, references, predictions, scores["per_example"])
    return scores, rows, stats


def prediction_rows(records, sources, references, predictions, per_example: dict) -> list[dict]:
    """One jsonl row per example: id, source, reference, prediction and its own scores."""
    rows = []
    for i, record in enumerate(records):
        row = {"id": record.url or f"{record.repo}:{record.path}:{record.func_name}",
               "source": sources[i], "reference": references[i], "prediction": predictions[i]}
        row.update({name: values[i] for name, values in per_example.items() if values is not None})
        rows.append(row)
    return rows
