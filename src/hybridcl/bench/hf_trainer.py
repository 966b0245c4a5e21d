"""The baseline: what a researcher writes with the Hugging Face trainer for the same stage.

`Seq2SeqTrainer` with `DataCollatorForSeq2Seq` (dynamic padding) on the same PEFT model, at its
defaults except the stage's hyper-parameters (epochs, batch size, learning rate, weight decay,
warm-up, clipping, seed) and the precision, which comes resolved (`train.mixed_precision` "no", "bf16"
or "fp16", the same as hybridcl's side). No saving, no logging integrations.
"""

from __future__ import annotations

import contextlib
import tempfile
import time

import transformers
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

from hybridcl.data.batching import EncodedSet
from hybridcl.settings import EvalConfig, TrainConfig


@contextlib.contextmanager
def _quiet_transformers():
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)


def as_hf_dataset(encoded: EncodedSet):
    """The token ids as a `datasets.Dataset` with input_ids / labels columns, as `dataset.map(tokenize)` gives."""
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "input_ids": [encoded.source_ids[i].tolist() for i in range(len(encoded))],
            "labels": [encoded.target_ids[i].tolist() for i in range(len(encoded))],
        }
    )


def trainer_for(
    model, tokenizer, train: TrainConfig, *, device: str, output_dir: str, train_dataset=None
) -> Seq2SeqTrainer:
    args = Seq2SeqTrainingArguments(
        output_dir=output_dir,
        num_train_epochs=train.epochs,
        per_device_train_batch_size=train.batch_size,
        gradient_accumulation_steps=train.grad_accum_steps,
        learning_rate=train.lr,
        weight_decay=train.weight_decay,
        warmup_steps=train.warmup_ratio,  # transformers 5 reads a float below 1 as a ratio
        max_grad_norm=train.max_grad_norm,
        seed=train.seed,
        bf16=train.mixed_precision == "bf16",
        fp16=train.mixed_precision == "fp16",
        tf32=False if device == "cuda" else None,  # torch's default; hybridcl turns TF32 on, the trainer does not
        use_cpu=device == "cpu",
        predict_with_generate=True,
        save_strategy="no",
        report_to=[],
        logging_strategy="no",
    )
    return Seq2SeqTrainer(
        model=model,
        args=args,
        data_collator=DataCollatorForSeq2Seq(tokenizer),
        train_dataset=train_dataset,
        processing_class=tokenizer,
    )


def train_with_trainer(model, tokenizer, encoded: EncodedSet, train: TrainConfig, *, device: str) -> dict:
    """Train `model`'s trainable parameters on `encoded` with `Seq2SeqTrainer`; wall time and counts."""
    dataset = as_hf_dataset(encoded)
    with tempfile.TemporaryDirectory(prefix="hf-trainer-") as output_dir:
        start = time.perf_counter()  # set-up included, as on hybridcl's side
        trainer = trainer_for(model, tokenizer, train, device=device, output_dir=output_dir, train_dataset=dataset)
        trainer.train()
        wall = time.perf_counter() - start
    model.eval()
    return {"wall_time_s": wall, "steps": trainer.state.global_step}


def predict_with_trainer(
    model, tokenizer, encoded: EncodedSet, train: TrainConfig, settings: EvalConfig, *, device: str
) -> list[str]:
    """Greedy predictions with `Seq2SeqTrainer.predict(predict_with_generate=True)`, decoded, at the
    trainer's default evaluation batch size (8)."""
    dataset = as_hf_dataset(encoded)
    with tempfile.TemporaryDirectory(prefix="hf-trainer-") as output_dir:
        trainer = trainer_for(model, tokenizer, train, device=device, output_dir=output_dir)
        with _quiet_transformers():  # one max_length warning per batch otherwise
            output = trainer.predict(dataset, max_new_tokens=settings.max_new_tokens, num_beams=1, do_sample=False)
        ids = output.predictions
        ids[ids == -100] = tokenizer.pad_token_id
    return tokenizer.batch_decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
