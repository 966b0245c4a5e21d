"""The causal stand-in base (`hybridcl base build --arch causal`): a small Llama pre-trained on the same pretrain
records as the T5 stand-in (model.pretrain, which runs the build; this module holds what differs).

Objectives, per record: CodeT5's bimodal dual generation, written as a causal base reads the experiments'
tasks, plus plain language modelling of the code:
- generate: the prompt `DataConfig().prompt_generate` around `generate <language>: <docstring>`, then the code;
- summarize: the prompt `DataConfig().prompt_summarize` around `summarize <language>: <code>`, then the docstring;
  both encoded exactly as the experiments encode a causal base's pairs (data.batching.encode_causal_pairs, the
  same token caps as the T5 stand-in's pairs), with the loss on the completion only;
- code: `<s>` + the code + `</s>`, with the loss on every token.

Optimiser: AdamW, linear warm-up, then a constant rate. Constant for the T5 stand-in's reasons: the base after
N steps of a longer build is the base of an N-step build (snapshots give a budget curve from one run), and
`--steps` can extend a killed build without changing the steps already taken. Dropout is 0
(Llama has none but attention dropout, which stays 0 in the saved config too, as Llama's own).
"""

from __future__ import annotations

from typing import Sequence

import torch

from hybridcl.data.schema import Record
from hybridcl.model.pretrain_data import SeededStream, dual_generation_texts
from hybridcl.settings import DataConfig

OBJECTIVES = ("code", "generate", "summarize")
ARCHITECTURE_KEYS = ("hidden_size", "intermediate_size", "num_layers", "num_heads")
MAX_POSITIONS = 512  # the tokenizer's model_max_length; rotary positions, so no parameters depend on it

# Model sizes and their build settings, as model.pretrain.SIZES for the T5 stand-in. intermediate_size is
# Llama's 8/3 * hidden_size rounded up to a multiple of 16. `tiny` (the shipped models/stand-in-causal):
# 8,000 x 256 tied embedding (2,048,000) + 3 blocks of 791,040 (attention 4 x 256^2, gated MLP 3 x 256 x 688,
# two norms) + the final norm = 4,421,376 parameters, 17.7 MB in float32. Its steps were chosen to build in
# about 40 minutes on 2 CPU cores (docs/stand-in-base.md).
SIZES: dict[str, dict] = {
    "micro": dict(
        vocab_size=1000,
        hidden_size=64,
        intermediate_size=176,
        num_layers=2,
        num_heads=4,
        batch_size=8,
        lr=3e-3,
        warmup_steps=10,
        steps=60,
        max_source_tokens=32,
        max_target_tokens=64,
        max_code_chars=400,
    ),
    "tiny": dict(
        vocab_size=8000,
        hidden_size=256,
        intermediate_size=688,
        num_layers=3,
        num_heads=4,
        batch_size=16,
        lr=2e-3,
        warmup_steps=200,
        steps=3200,
        max_source_tokens=64,
        max_target_tokens=128,
        max_code_chars=600,
    ),
    "small": dict(
        vocab_size=16000,
        hidden_size=384,
        intermediate_size=1024,
        num_layers=4,
        num_heads=6,
        batch_size=16,
        lr=1e-3,
        warmup_steps=200,
        steps=2000,
        max_source_tokens=64,
        max_target_tokens=128,
        max_code_chars=600,
    ),
}


def build_settings() -> dict:
    """The settings a causal build records besides its size's: the objectives and the prompt templates."""
    data = DataConfig()
    return dict(
        arch="causal",
        objectives=list(OBJECTIVES),
        prompt_generate=data.prompt_generate,
        prompt_summarize=data.prompt_summarize,
    )


def stand_in_config(size: str, vocab_size: int):
    """A Llama config at a stand-in size, in the stand-in tokenizer's ids (pad 0, bos 1, eos 2), tied embeddings."""
    from transformers import LlamaConfig

    spec = SIZES[size]
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=spec["hidden_size"],
        intermediate_size=spec["intermediate_size"],
        num_hidden_layers=spec["num_layers"],
        num_attention_heads=spec["num_heads"],
        num_key_value_heads=spec["num_heads"],
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )


def new_model(config):
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM(config)


def optimizer(model, settings: dict) -> torch.optim.Optimizer:
    """AdamW (betas of GPT-style pre-training); no weight decay: a few epochs of the pool do not overfit a 4M model."""
    return torch.optim.AdamW(model.parameters(), lr=settings["lr"], betas=(0.9, 0.95), weight_decay=0.0)


class CausalPretrainingStream(SeededStream):
    """The causal stand-in's (prompt, completion) examples: code LM, docstring->code, code->docstring.
    The loss counts the completion; a code example's prompt is empty, so it counts every token."""

    objectives = OBJECTIVES

    def __init__(self, records: Sequence[Record], tokenizer, settings: dict, seed: int):
        from hybridcl.data.batching import encode_causal_pairs

        super().__init__(len(records), seed)
        source_cap, target_cap = settings["max_source_tokens"], settings["max_target_tokens"]
        generate, summarize = dual_generation_texts(records)
        prompts = settings["prompt_generate"], settings["prompt_summarize"]
        self.examples = {
            "code": [([], row) for row in code_rows([r.code for r in records], tokenizer, target_cap)],
            "generate": list(zip(*encode_causal_pairs(*generate, tokenizer, prompts[0], source_cap, target_cap))),
            "summarize": list(zip(*encode_causal_pairs(*summarize, tokenizer, prompts[1], target_cap, source_cap))),
        }

    def make(self, objective: str, i: int, g: int) -> tuple[list[int], list[int]]:
        return self.examples[objective][i]


def code_rows(codes: list[str], tokenizer, max_tokens: int) -> list[list[int]]:
    """`<s>` + each code's ids + `</s>`: at most `max_tokens` ids after `<s>` (the code cut to make room)."""
    encoded = tokenizer(codes, add_special_tokens=False, truncation=True, max_length=max_tokens - 1)["input_ids"]
    return [[tokenizer.bos_token_id, *ids, tokenizer.eos_token_id] for ids in encoded]


def collate(pairs: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded prompt + completion rows, labels -100 on the prompts and the padding (as the experiments)."""
    from hybridcl.data.batching import CausalCollator

    return CausalCollator(pad_id)([{"input_ids": prompt, "labels": completion} for prompt, completion in pairs])
