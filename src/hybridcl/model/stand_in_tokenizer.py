"""The stand-in base's tokenizer: byte-level BPE with CodeT5's special tokens, as a transformers fast tokenizer.

Special tokens follow CodeT5's layout: `<pad>`=0, `<s>`=1, `</s>`=2, `<unk>`=3, `<mask>`=4, then the
sentinels `<extra_id_0..99>`=5..104. Encoding appends `</s>` (T5's convention), or for a causal base starts
with `<s>` and ends open (Llama's: a prompt is continued, not closed); the causal tokenizer also pads on the
left, as a batch of prompts to continue needs. Decoding with `skip_special_tokens=True` gives the text back
byte for byte (no normaliser, byte-level pre-tokenizer and decoder).
"""

from __future__ import annotations

from typing import Iterable

PAD, BOS, EOS, UNK, MASK = "<pad>", "<s>", "</s>", "<unk>", "<mask>"
N_SENTINELS = 100
SENTINELS = tuple(f"<extra_id_{i}>" for i in range(N_SENTINELS))
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, MASK) + SENTINELS  # ids 0..104, in this order


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2, causal: bool = False):
    """A byte-level BPE tokenizer trained on `texts`, wrapped as a transformers fast tokenizer (a causal
    base's special-token convention when `causal`; the vocabulary does not depend on it)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    backend = Tokenizer(models.BPE(unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    marker, single, pair = (
        (BOS, f"{BOS} $A", f"{BOS} $A {BOS} $B") if causal else (EOS, f"$A {EOS}", f"$A {EOS} $B {EOS}")
    )
    backend.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(marker, backend.token_to_id(marker))]
    )
    return wrap_tokenizer(backend.to_str(), causal)


def wrap_tokenizer(backend_json: str, causal: bool = False):
    """A trained `tokenizers` tokenizer (its JSON) as the transformers fast tokenizer the base ships."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(backend_json),
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        mask_token=MASK,
        extra_special_tokens=list(SENTINELS),
        clean_up_tokenization_spaces=False,
        model_max_length=512,
        **({"padding_side": "left"} if causal else {}),  # the T5 tokenizer's files stay as they were
    )
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    assert ids == list(range(len(SPECIAL_TOKENS))), f"special token ids out of place: {ids[:6]}..."
    return tokenizer


def sentinel_ids(tokenizer) -> list[int]:
    """Ids of `<extra_id_0>`, `<extra_id_1>`, ... in order."""
    return tokenizer.convert_tokens_to_ids(list(SENTINELS))
