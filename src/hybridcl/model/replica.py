"""A replica of the Salesforce/codet5-small model folder: the same files, token ids and config, other weights.

`write_codet5_small_replica(out_dir, texts)` writes a folder laid out as the hub repository
(https://huggingface.co/Salesforce/codet5-small/tree/main) lays out its model, so that the very
`load_base(ModelConfig(name=out_dir))` call, the stock `AutoTokenizer` and `AutoModelForSeq2SeqLM` read it
the way they would read the real model:

- `config.json`: codet5-small's values (`CODET5_SMALL`: vocab 32,100, d_model 512, 6+6 layers, pad 0,
  eos 2, bos 1, decoder_start_token_id 0, tied embeddings, ...), `architectures` T5ForConditionalGeneration,
  written flat with sorted keys as the hub file is;
- the RoBERTa-style tokenizer files of the hub repository: `vocab.json` (32,000 byte-level BPE entries,
  `<pad>`=0, `<s>`=1, `</s>`=2, `<unk>`=3, `<mask>`=4, the 256 byte symbols from 5), `merges.txt`,
  `added_tokens.json` (the 100 sentinels `<extra_id_N>` at 32,000..32,099, numbered downwards as T5 does:
  `<extra_id_0>`=32,099), `special_tokens_map.json` and `tokenizer_config.json`
  (`tokenizer_class` RobertaTokenizer); no `tokenizer.json` (none in the hub file list);
- the weights, seeded and random, of codet5-small's shape (60,492,288 parameters; `architecture=` gives
  another T5 of the same vocabulary): `model.safetensors` by default, or with `weights_file="pytorch_model.bin"` the hub's own file set, whose weights are a
  `torch.save`d state dict (which `load_base` reads through torch's weights-only unpickler).

`hybridcl.hf_cache.place_in_cache(folder, cache_dir, CODET5_SMALL_REPO, "model")` puts such a folder into a
Hugging Face cache as the snapshot of `Salesforce/codet5-small` at `main`, so that the hub name itself loads
offline.

The BPE is trained on `texts` the way CodeT5 trained its own (a byte-level BPE, the five special tokens
first); a corpus too small to yield 32,000 entries is topped up with two-symbol merges of byte symbols,
in a fixed order, so the files always have the published sizes. Everything is deterministic: the same
texts and seed give the same folder, byte for byte.

Only the standard library, `tokenizers`, `transformers` and `torch` (with `safetensors`) are used.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    import torch
    from transformers import T5Config

CODET5_SMALL_REPO = "Salesforce/codet5-small"
CODET5_SMALL_URL = f"https://huggingface.co/{CODET5_SMALL_REPO}/tree/main"

BPE_SIZE = 32_000  # entries of vocab.json, special tokens and byte symbols included
N_SENTINELS = 100
VOCAB_SIZE = BPE_SIZE + N_SENTINELS  # 32,100 ids, = config.json's vocab_size
SPECIAL = ("<pad>", "<s>", "</s>", "<unk>", "<mask>")  # ids 0..4, CodeT5's order
SENTINELS = tuple(f"<extra_id_{i}>" for i in range(N_SENTINELS))
MODEL_MAX_LENGTH = 512

# The folder's files, exactly: the hub repository's model and tokenizer files (its README.md and .gitattributes
# are not part of the model), by default with model.safetensors in place of the hub's pytorch_model.bin.
TOKENIZER_FILES = ("vocab.json", "merges.txt", "added_tokens.json", "special_tokens_map.json", "tokenizer_config.json")
WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")
REPLICA_FILES = ("config.json", *TOKENIZER_FILES, "model.safetensors")
PUBLISHED_FILES = ("config.json", *TOKENIZER_FILES, "pytorch_model.bin")

WEIGHTS = ("random",)


def sentinel_id(index: int) -> int:
    """The id of `<extra_id_{index}>`: T5's numbering, downwards from the last id (32,099 for index 0)."""
    if not 0 <= index < N_SENTINELS:
        raise ValueError(f"sentinel index {index} is not in [0, {N_SENTINELS})")
    return VOCAB_SIZE - 1 - index


def write_codet5_small_replica(
    out_dir: str | Path,
    texts: Iterable[str],
    *,
    weights: str = "random",
    seed: int = 0,
    min_frequency: int = 2,
    overwrite: bool = False,
    weights_file: str = "model.safetensors",
    architecture: T5Config | None = None,
) -> Path:
    """Write a codet5-small-format model folder into `out_dir` (absent or empty) and return its path.

    texts: what the BPE is trained on (code and docstrings, e.g. a corpus's pretrain pool).
    weights: "random" — codet5-small's architecture initialised as transformers initialises a T5,
      seeded by `seed` (the global torch RNG is left as it was).
    min_frequency: the BPE trainer's minimum pair count (CodeT5 used 3 on its full corpus).
    overwrite: replace an existing non-empty folder that holds a replica (exactly its files).
    weights_file: "model.safetensors", or "pytorch_model.bin" for the hub's own file set (`PUBLISHED_FILES`).
    architecture: codet5-small's (`CODET5_SMALL`) unless given; any T5 of its 32,100-id vocabulary (tests
      use a smaller one).

    The folder is written next to its final place and renamed into it at the end, so a reader never sees
    half a replica.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights={weights!r}: choose from {list(WEIGHTS)}")
    if weights_file not in WEIGHTS_FILES:
        raise ValueError(f"weights_file={weights_file!r}: choose from {list(WEIGHTS_FILES)}")
    if architecture is None:
        from hybridcl.model.base import codet5_small_config

        architecture = codet5_small_config()
    if architecture.vocab_size != VOCAB_SIZE:
        raise ValueError(
            f"the architecture's vocab_size is {architecture.vocab_size}, not the tokenizer's {VOCAB_SIZE}"
        )
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise FileExistsError(f"{out_dir} is a file")
        present = sorted(p.name for p in out_dir.iterdir())
        if present and not (overwrite and present == sorted(("config.json", *TOKENIZER_FILES, weights_file))):
            raise FileExistsError(
                f"{out_dir} is not empty ({len(present)} entries); "
                "choose another folder (overwrite=True replaces only an earlier replica)"
            )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        vocab, merges = train_bpe(texts, min_frequency=min_frequency)
        write_tokenizer_files(staging, vocab, merges)
        write_config(staging, architecture)
        write_random_weights(staging / weights_file, architecture, seed=seed)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def corpus_texts(corpus_dir: str | Path) -> list[str]:
    """The code and docstring of every record of a corpus folder's pretrain pool (`<language>/pretrain.jsonl.gz`),
    in language order: the texts to train the replica's BPE on (as CodeT5 trained its own on code and docstrings)."""
    from hybridcl.model.pretrain_data import read_pretrain_records

    per_language = read_pretrain_records(corpus_dir)
    return [
        text
        for language in sorted(per_language)
        for record in per_language[language]
        for text in (record.code, record.docstring)
    ]


# ------------------------------------------------------------------------------------------ tokenizer


def train_bpe(texts: Iterable[str], *, min_frequency: int = 2) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab, merges) of a byte-level BPE of exactly `BPE_SIZE` entries trained on `texts`.

    As CodeT5's tokenizer: `tokenizers`' ByteLevelBPETokenizer (no prefix space), the special tokens
    `<pad> <s> </s> <unk> <mask>` at ids 0..4, the 256 byte symbols next, then the learned merges. When
    `texts` run out of pairs before `BPE_SIZE`, merges of two byte symbols not yet in the vocabulary are
    appended in the alphabet's order (they are valid merges; text only reaches them after every learned one).
    """
    from tokenizers import ByteLevelBPETokenizer, pre_tokenizers

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(
        texts, vocab_size=BPE_SIZE, min_frequency=min_frequency, special_tokens=list(SPECIAL), show_progress=False
    )
    model = json.loads(bpe.to_str())["model"]
    vocab: dict[str, int] = dict(model["vocab"])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    if [vocab.get(token) for token in SPECIAL] != list(range(len(SPECIAL))):
        raise RuntimeError(f"special tokens out of place: {[vocab.get(t) for t in SPECIAL]}")
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    missing = [symbol for symbol in alphabet if symbol not in vocab]
    if missing:
        raise RuntimeError(f"{len(missing)} byte symbols missing from the trained vocabulary")
    if len(vocab) > BPE_SIZE:
        raise RuntimeError(f"the trainer gave {len(vocab)} entries, more than {BPE_SIZE}")
    if len(vocab) < BPE_SIZE:
        _top_up(vocab, merges, alphabet)
    if sorted(vocab.values()) != list(range(BPE_SIZE)):
        raise RuntimeError("vocabulary ids are not 0..BPE_SIZE-1")
    return vocab, merges


def _top_up(vocab: dict[str, int], merges: list[tuple[str, str]], alphabet: list[str]) -> None:
    """Append two-byte-symbol merges (in `alphabet` order) until the vocabulary has `BPE_SIZE` entries."""
    for first in alphabet:
        for second in alphabet:
            if len(vocab) == BPE_SIZE:
                return
            token = first + second
            if token not in vocab:
                vocab[token] = len(vocab)
                merges.append((first, second))
    if len(vocab) < BPE_SIZE:  # 256 * 256 pairs always suffice for 32,000 entries
        raise RuntimeError(f"could not top the vocabulary up to {BPE_SIZE}")


def write_tokenizer_files(folder: Path, vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
    """The five tokenizer files of the hub repository (no tokenizer.json), RobertaTokenizer's format."""
    if len(vocab) != BPE_SIZE:
        raise ValueError(f"vocab has {len(vocab)} entries, not {BPE_SIZE}")
    ordered = dict(sorted(vocab.items(), key=lambda item: item[1]))
    _write_json(folder / "vocab.json", ordered, compact=True)
    with open(folder / "merges.txt", "w", encoding="utf-8", newline="\n") as handle:
        handle.write("#version: 0.2\n")
        handle.writelines(f"{a} {b}\n" for a, b in merges)
    # sentinel ids in increasing order: <extra_id_99>=32000 ... <extra_id_0>=32099
    added = {SENTINELS[i]: sentinel_id(i) for i in reversed(range(N_SENTINELS))}
    _write_json(folder / "added_tokens.json", added)
    special_map = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "sep_token": "</s>",
        "pad_token": "<pad>",
        "cls_token": "<s>",
        "mask_token": "<mask>",
        "additional_special_tokens": list(SENTINELS),
    }
    _write_json(folder / "special_tokens_map.json", special_map)
    tokenizer_config = {
        "tokenizer_class": "RobertaTokenizer",
        "errors": "replace",
        "do_lower_case": False,
        "add_prefix_space": False,
        "model_max_length": MODEL_MAX_LENGTH,
        **special_map,
    }
    _write_json(folder / "tokenizer_config.json", tokenizer_config)


# -------------------------------------------------------------------------------------- config, weights


def config_dict(c: T5Config) -> dict:
    """config.json's content: the T5's values (`CODET5_SMALL`'s for the replica) with the architecture, flat,
    keys sorted."""
    values = {
        "architectures": ["T5ForConditionalGeneration"],
        "model_type": "t5",
        "vocab_size": c.vocab_size,
        "d_model": c.d_model,
        "d_kv": c.d_kv,
        "d_ff": c.d_ff,
        "num_layers": c.num_layers,
        "num_decoder_layers": c.num_decoder_layers,
        "num_heads": c.num_heads,
        "relative_attention_num_buckets": c.relative_attention_num_buckets,
        "relative_attention_max_distance": c.relative_attention_max_distance,
        "dropout_rate": c.dropout_rate,
        "layer_norm_epsilon": c.layer_norm_epsilon,
        "initializer_factor": c.initializer_factor,
        "feed_forward_proj": c.feed_forward_proj,
        "is_encoder_decoder": c.is_encoder_decoder,
        "use_cache": c.use_cache,
        "pad_token_id": c.pad_token_id,
        "eos_token_id": c.eos_token_id,
        "bos_token_id": c.bos_token_id,
        "decoder_start_token_id": c.decoder_start_token_id,
        "tie_word_embeddings": c.tie_word_embeddings,
    }
    return dict(sorted(values.items()))


def write_config(folder: Path, architecture: T5Config) -> None:
    _write_json(folder / "config.json", config_dict(architecture))


def write_random_weights(path: Path, architecture: T5Config, *, seed: int = 0) -> int:
    """`architecture` with transformers' T5 initialisation, seeded, saved at `path`; returns the parameter count.

    A `.safetensors` path stores the tied embedding once, as `shared.weight` (as save_pretrained stores a tied
    T5). A `.bin` path is `torch.save(state_dict)`, every key included, as the hub's pytorch_model.bin.
    """
    import torch
    from transformers import T5ForConditionalGeneration

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(copy.deepcopy(architecture))
    if path.suffix == ".bin":
        torch.save(model.state_dict(), path)
    else:
        _save_safetensors(model, path)
    return sum(p.numel() for p in model.parameters())


def _save_safetensors(model, path: Path) -> None:
    from safetensors.torch import save_file

    seen: set[int] = set()
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        key = tensor.data_ptr()
        if key in seen:  # encoder/decoder embed_tokens and lm_head: the same storage as shared.weight
            continue
        seen.add(key)
        tensors[name] = tensor.contiguous()
    if "shared.weight" not in tensors:
        raise RuntimeError("the tied embedding is not stored as shared.weight")
    save_file(tensors, str(path), metadata={"format": "pt"})


def _write_json(path: Path, value, *, compact: bool = False) -> None:
    text = (
        json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if compact
        else json.dumps(value, ensure_ascii=False, indent=2)
    )
    path.write_text(text + ("" if compact else "\n"), encoding="utf-8")
