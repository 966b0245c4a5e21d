"""The causal stand-in base (`hybridcl base build --arch causal`): a small Llama pre-trained on the same pretrain
records as the T5 stand-in (model.pretrain, which runs the build; this module holds what differs).

Objectives, per record: CodeT5's bimodal dual generation, written in the layout a code LLM meets docstrings in
its pre-training data, as comments beside code, plus plain language modelling of the code:
- generate: the docstring as line comments (`# ` in Python, `// ` in JavaScript), then the code;
- summarize: the code, then a line comment whose text is the docstring;
  both encoded as the experiments encode a causal base's pairs (data.batching.encode_causal_pairs, the same
  token caps as the T5 stand-in's pairs), with the loss on the completion only;
- code: `<s>` + the code + `</s>`, with the loss on every token.

Not the experiments' prompt templates (`generate python: ...` then `Code:`): a published base has never seen
hybridcl's templates either, so learning them is part of what a stage teaches. Pre-trained on the templates
themselves, the base did the task at stage 0 about as well as the stages could teach it (docs/causal-bases.md).

Optimiser: AdamW, linear warm-up, then a constant rate. Constant for the T5 stand-in's reasons: the base after
N steps of a longer build is the base of an N-step build (snapshots give a budget curve from one run), and
`--steps` can extend a killed build without changing the steps already taken. Dropout is 0
(Llama has none but attention dropout, which stays 0 in the saved config too, as Llama's own).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import torch

from hybridcl.data.schema import Record
from hybridcl.model.pretrain_data import SeededStream
from hybridcl.settings import PROMPT_PLACEHOLDER

OBJECTIVES = ("code", "generate", "summarize")
ARCHITECTURE_KEYS = ("hidden_size", "intermediate_size", "num_layers", "num_heads")
# How each language writes a line comment: the docstring's layout in the generate and summarize examples.
COMMENT_MARKERS = {"python": "# ", "ruby": "# ", "javascript": "// ", "java": "// ", "go": "// ", "php": "// "}
MAX_POSITIONS = 512  # the tokenizer's model_max_length; rotary positions, so no parameters depend on it

# Model sizes and their build settings, as model.pretrain.SIZES for the T5 stand-in. intermediate_size is
# Llama's 8/3 * hidden_size rounded up to a multiple of 16. `tiny` (the shipped models/stand-in-causal):
# 8,000 x 256 tied embedding (2,048,000) + 3 blocks of 791,040 (attention 4 x 256^2, gated MLP 3 x 256 x 688,
# two norms) + the final norm = 4,421,376 parameters, 17.7 MB in float32. Its steps were chosen on a budget curve
# (2,000 / 3,000 steps) and build in about 37 minutes on 2 CPU cores (docs/stand-in-base.md).
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
        steps=3000,
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
    """The settings a causal build records besides its size's: the objectives and the docstrings' layout."""
    return dict(
        arch="causal", objectives=list(OBJECTIVES), docstring_layout="comments", comment_markers=COMMENT_MARKERS
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
        super().__init__(len(records), seed)
        caps = settings["max_source_tokens"], settings["max_target_tokens"]
        self.examples = {
            "code": [([], row) for row in code_rows([r.code for r in records], tokenizer, caps[1])],
            **commented_pairs(records, tokenizer, *caps),
        }

    def make(self, objective: str, i: int, g: int) -> tuple[list[int], list[int]]:
        return self.examples[objective][i]


def commented_pairs(records: Sequence[Record], tokenizer, max_doc_tokens: int, max_code_tokens: int) -> dict:
    """Each record's generate and summarize examples, (prompt ids, completion ids), in the records' order:
    `# docstring` lines then the code, and the code then `# docstring`, with the language's comment marker."""
    from hybridcl.data.batching import encode_causal_pairs

    rows_of = defaultdict(list)
    for i, record in enumerate(records):
        rows_of[record.language].append(i)
    examples = {"generate": [None] * len(records), "summarize": [None] * len(records)}
    for language, rows in rows_of.items():
        marker = COMMENT_MARKERS[language]
        docs = [commented(records[i].docstring, marker) for i in rows]
        codes = [records[i].code for i in rows]
        generate = encode_causal_pairs(
            docs, codes, tokenizer, PROMPT_PLACEHOLDER + "\n", max_doc_tokens, max_code_tokens
        )
        summaries = [doc.removeprefix(marker) for doc in docs]  # the prompt ends in the first line's marker
        summarize = encode_causal_pairs(
            codes, summaries, tokenizer, PROMPT_PLACEHOLDER + "\n" + marker, max_code_tokens, max_doc_tokens
        )
        for objective, (prompts, completions) in (("generate", generate), ("summarize", summarize)):
            for i, prompt, completion in zip(rows, prompts, completions):
                examples[objective][i] = (prompt, completion)
    return examples


def commented(text: str, marker: str) -> str:
    """`text` as line comments: each of its lines after `marker`."""
    return "\n".join(marker + line for line in text.splitlines())


def code_rows(codes: list[str], tokenizer, max_tokens: int) -> list[list[int]]:
    """`<s>` + each code's ids + `</s>`: at most `max_tokens` ids after `<s>` (the code cut to make room)."""
    encoded = tokenizer(codes, add_special_tokens=False, truncation=True, max_length=max_tokens - 1)["input_ids"]
    return [[tokenizer.bos_token_id, *ids, tokenizer.eos_token_id] for ids in encoded]


def collate(pairs: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded prompt + completion rows, labels -100 on the prompts and the padding (as the experiments)."""
    from hybridcl.data.batching import CausalCollator

    return CausalCollator(pad_id)([{"input_ids": prompt, "labels": completion} for prompt, completion in pairs])
