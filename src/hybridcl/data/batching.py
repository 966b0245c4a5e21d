"""Records -> token ids (tokenised once, cached) -> length-grouped, dynamically padded batches.

    encoded = encode_records(records, tokenizer, direction="generate", task_prefix=True,
                             max_source_tokens=256, max_target_tokens=256, cache_dir=".cache/hybridcl")
    loader = make_loader(encoded, 8, shuffle=True, seed=0, collator=Seq2SeqCollator(tokenizer.pad_token_id))
    for epoch in range(epochs):
        loader.batch_sampler.set_epoch(epoch)
        for batch in loader: ...  # input_ids, attention_mask, labels (padding = -100)

Batches hold examples of similar length, so little of each batch is padding; each batch is padded
only to its own longest example.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import safetensors.numpy
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from hybridcl.atomic import atomic_path
from hybridcl.data.schema import Record
from hybridcl.model.families import CAUSAL, SEQ2SEQ
from hybridcl.settings import DIRECTIONS, PROMPT_PLACEHOLDER, ConfigError, task_cue

CACHE_FORMAT = 1  # bump when the cached arrays or the key change meaning


# --- token ids --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RaggedIds:
    """Variable-length id sequences as one flat array plus offsets: row i is flat[offsets[i]:offsets[i + 1]]."""

    flat: np.ndarray  # int32
    offsets: np.ndarray  # int64, len(rows) + 1, starts at 0

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]]) -> "RaggedIds":
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(row) for row in rows], out=offsets[1:])
        flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32, count=int(offsets[-1]))
        return cls(flat, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> np.ndarray:
        return self.flat[self.offsets[index] : self.offsets[index + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass(frozen=True)
class EncodedSet(Dataset):
    """Tokenised examples; item i is {"input_ids": source ids, "labels": target ids}."""

    source_ids: RaggedIds
    target_ids: RaggedIds
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.source_ids)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return {"input_ids": self.source_ids[index], "labels": self.target_ids[index]}

    @property
    def lengths(self) -> np.ndarray:
        """Source + target tokens per example: the batching key, since both sides get padded."""
        return self.source_ids.lengths + self.target_ids.lengths


def encode_records(
    records: Sequence[Record],
    tokenizer,
    *,
    direction: str,
    max_source_tokens: int,
    max_target_tokens: int,
    cache_dir: str | Path | None = None,
    task_prefix: bool = False,
) -> EncodedSet:
    """Tokenise (source, target) pairs, truncated to the caps, reading/writing the cache when given.

    generate: source = docstring, target = code; summarize: the reverse; `task_prefix`: each source
    starts with its task's cue (`task_cue`). The tokenizer adds its own special tokens (T5/CodeT5 end
    every sequence with EOS); a target that still lacks EOS gets one, in place of its last token when it
    is at the cap, so the model always learns where to stop.
    """
    sources, targets = source_target_texts(records, direction, task_prefix=task_prefix)
    return encode_texts(sources, targets, tokenizer, direction, max_source_tokens, max_target_tokens, cache_dir)


def encode_texts(
    sources: list[str],
    targets: list[str],
    tokenizer,
    label: str,
    max_source_tokens: int,
    max_target_tokens: int,
    cache_dir: str | Path | None = None,
    prompt: str | None = None,
) -> EncodedSet:
    """Token ids of (source, target) texts as encode_records makes them, cached under `cache_dir` by
    the texts, the tokenizer, the caps, `label` (the direction or task kind) and `prompt`.

    prompt None: a seq2seq base's encoding (encode_pairs); a template: a causal base's, source ids = the
    prompt's, target ids = the completion's (encode_causal_pairs).
    """
    path = None
    if cache_dir is not None:
        key = cache_key(sources, targets, tokenizer, label, max_source_tokens, max_target_tokens, prompt)
        path = Path(cache_dir) / "encoded" / f"{key}.safetensors"
        if path.is_file():
            return _load(path)
    if prompt is None:
        source_rows, target_rows = encode_pairs(sources, targets, tokenizer, max_source_tokens, max_target_tokens)
    else:
        source_rows, target_rows = encode_causal_pairs(
            sources, targets, tokenizer, prompt, max_source_tokens, max_target_tokens
        )
    encoded = EncodedSet(RaggedIds.from_lists(source_rows), RaggedIds.from_lists(target_rows))
    if path is not None:
        _save(encoded, path)
    return encoded


def source_target_texts(
    records: Sequence[Record], direction: str, *, task_prefix: bool = False
) -> tuple[list[str], list[str]]:
    """The texts the model reads and the ones it should write, with each source's cue when `task_prefix`."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} is not one of {list(DIRECTIONS)}")
    docstrings = [record.docstring for record in records]
    codes = [record.code for record in records]
    sources, targets = (docstrings, codes) if direction == "generate" else (codes, docstrings)
    if task_prefix:
        sources = [task_cue(direction, record.language) + source for record, source in zip(records, sources)]
    return sources, targets


def encode_pairs(
    sources: list[str], targets: list[str], tokenizer, max_source_tokens: int, max_target_tokens: int
) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids of (source, target) texts as the experiments feed them: the tokenizer's own special
    tokens, truncated to the caps, every target ending in EOS."""
    source_rows = _tokenize(tokenizer, sources, max_source_tokens)
    target_rows = _tokenize(tokenizer, targets, max_target_tokens)
    return source_rows, _end_with_eos(target_rows, tokenizer.eos_token_id, max_target_tokens)


def encode_causal_pairs(
    sources: list[str], targets: list[str], tokenizer, prompt: str, max_source_tokens: int, max_target_tokens: int
) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids of (source, target) texts for a causal base: (prompt rows, completion rows).

    A prompt is the tokenizer's BOS (when it adds one), the template's text before PROMPT_PLACEHOLDER, the
    source, and the text after it, each piece tokenized without special tokens; only the source is truncated
    so the whole fits max_source_tokens, since the model must always see the template's marker ("Code:").
    No EOS ends a prompt: the model would learn to stop there. A completion is the target's ids, truncated
    to max_target_tokens and ending in EOS, so the model learns where to stop.
    """
    before, after = prompt.split(PROMPT_PLACEHOLDER)
    bos = [tokenizer.bos_token_id] if adds_bos(tokenizer) else []
    prefix = bos + _tokenize(tokenizer, [before], None, special_tokens=False)[0]
    suffix = _tokenize(tokenizer, [after], None, special_tokens=False)[0]
    source_budget = max_source_tokens - len(prefix) - len(suffix)
    if source_budget < 1:
        raise ConfigError(
            f"the prompt template {prompt!r} takes {len(prefix) + len(suffix)} tokens, leaving none of "
            f"data.max_source_tokens={max_source_tokens} for the source; raise it or shorten the template"
        )
    source_rows = _tokenize(tokenizer, sources, source_budget, special_tokens=False)
    target_rows = _tokenize(tokenizer, targets, max_target_tokens, special_tokens=False)
    prompt_rows = [prefix + row + suffix for row in source_rows]
    return prompt_rows, _end_with_eos(target_rows, tokenizer.eos_token_id, max_target_tokens)


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer starts what it encodes with its BOS token (Llama's does, GPT-NeoX's and Qwen2's not)."""
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a", return_attention_mask=False)["input_ids"][:1] == [bos]


def _tokenize(tokenizer, texts: list[str], max_tokens: int | None, *, special_tokens: bool = True) -> list[list[int]]:
    """Ids of each text, cut to max_tokens (None: uncut) on the tokenizer's truncation side."""
    if not texts:
        return []
    encoded = tokenizer(
        texts,
        add_special_tokens=special_tokens,
        truncation=max_tokens is not None,
        max_length=max_tokens,
        return_attention_mask=False,
    )
    return encoded["input_ids"]


def _end_with_eos(rows: list[list[int]], eos_id: int | None, max_tokens: int) -> list[list[int]]:
    """Rows that lack a final EOS get one appended, or in place of their last token when at the cap."""
    if eos_id is None:
        return rows
    return [row if row and row[-1] == eos_id else [*row[: max_tokens - 1], eos_id] for row in rows]


# --- cache ------------------------------------------------------------------------------------


def cache_key(
    sources: list[str],
    targets: list[str],
    tokenizer,
    direction: str,
    max_source_tokens: int,
    max_target_tokens: int,
    prompt: str | None = None,
) -> str:
    """sha256 over everything the ids depend on: tokenizer, texts in order (sources with their cue, if
    any: a prefixed and a bare encoding never share a key), caps, direction and the causal prompt template.

    Only a causal encoding's key holds a "prompt" entry, so seq2seq keys (and their cached files) stay as they were.
    """
    parts = {
        "format": CACHE_FORMAT,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "data": texts_digest(sources, targets),
        "direction": direction,
        "max_source_tokens": max_source_tokens,
        "max_target_tokens": max_target_tokens,
    }
    if prompt is not None:
        parts["prompt"] = prompt
    return _sha256(json.dumps(parts, sort_keys=True))


def tokenizer_fingerprint(tokenizer) -> str:
    """A stable hash of what the tokenizer computes: its backend state (vocab, merges, normalizer,
    pre-tokenizer, post-processor), class, name, special tokens and truncation side.

    The backend's `truncation`/`padding` fields are left out: every call with `max_length` rewrites them.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
    else:  # a tokenizer without a `tokenizers` backend (e.g. sentencepiece): its vocabulary
        state = sorted(tokenizer.get_vocab().items())
    identity = {
        "class": type(tokenizer).__name__,
        "name_or_path": str(getattr(tokenizer, "name_or_path", "")),
        "special_tokens": sorted(zip(tokenizer.all_special_tokens, tokenizer.all_special_ids)),
        "truncation_side": getattr(tokenizer, "truncation_side", "right"),
        "state": _sha256(json.dumps(state, sort_keys=True)),
    }
    return _sha256(json.dumps(identity, sort_keys=True))


def texts_digest(sources: list[str], targets: list[str]) -> str:
    digest = hashlib.sha256()
    for text in itertools.chain(sources, targets):
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))  # length prefix: no two lists hash alike by accident
        digest.update(data)
    digest.update(len(sources).to_bytes(8, "little"))
    return digest.hexdigest()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _save(encoded: EncodedSet, path: Path) -> None:
    """safetensors (no pickle), written to a temp file and renamed, so readers never see half a file."""
    arrays = {
        "source_flat": encoded.source_ids.flat,
        "source_offsets": encoded.source_ids.offsets,
        "target_flat": encoded.target_ids.flat,
        "target_offsets": encoded.target_ids.offsets,
    }
    with atomic_path(path) as tmp:
        tmp.write_bytes(safetensors.numpy.save(arrays))


def _load(path: Path) -> EncodedSet:
    arrays = safetensors.numpy.load_file(str(path))
    return EncodedSet(
        RaggedIds(arrays["source_flat"], arrays["source_offsets"]),
        RaggedIds(arrays["target_flat"], arrays["target_offsets"]),
        from_cache=True,
    )


# --- batches ----------------------------------------------------------------------------------


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of examples of similar length, in random order (training) or sorted (evaluation).

    shuffle=True: shuffle all indices (seeded by seed and epoch), cut them into mega-batches of
    batch_size * mega_batch_factor, sort each mega-batch by length (longest first), split it into
    batches, shuffle the batch order and move the longest batches to the front, so a batch that
    does not fit in memory fails at the first step, not hours in.
    shuffle=False: all indices sorted by length, longest first; the same every epoch.

    Every example is in exactly one batch per epoch; drop_last drops the one short batch.

    Distributed (num_replicas > 1): every rank builds the same global batches (same seed and epoch)
    and takes every num_replicas-th one, starting at its rank. When the batch count does not divide
    evenly, the first batches are repeated at the end until it does, so every rank runs the same
    number of steps (a few examples are then seen twice in that epoch; with drop_last the leftover
    batches are dropped instead). For evaluation, drop the repeats or use a single replica.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        mega_batch_factor: int = 50,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        if batch_size <= 0 or mega_batch_factor <= 0:
            raise ValueError("batch_size and mega_batch_factor must be positive")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.mega_batch_factor = mega_batch_factor
        self.drop_last = drop_last
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._global_batches()
        steps = len(self)
        if batches and len(batches) < steps * self.num_replicas:
            batches = list(itertools.islice(itertools.cycle(batches), steps * self.num_replicas))
        yield from batches[self.rank : steps * self.num_replicas : self.num_replicas]

    def __len__(self) -> int:
        """Batches per rank."""
        divide = operator.floordiv if self.drop_last else _ceil_div
        return divide(divide(len(self.lengths), self.batch_size), self.num_replicas)

    def _global_batches(self) -> list[list[int]]:
        if not self.shuffle or not len(self.lengths):
            return self._split(_longest_first(np.arange(len(self.lengths)), self.lengths))
        rng = np.random.default_rng((self.seed, self.epoch))
        order = rng.permutation(len(self.lengths))
        mega_size = self.batch_size * self.mega_batch_factor
        megas = [order[start : start + mega_size] for start in range(0, len(order), mega_size)]
        batches = self._split(np.concatenate([_longest_first(mega, self.lengths) for mega in megas]))
        batches = [batches[i] for i in rng.permutation(len(batches))]
        return self._move_longest_to_front(batches)

    def _split(self, order: np.ndarray) -> list[list[int]]:
        """Consecutive batches; mega-batches are whole multiples of batch_size, so only the last can be short."""
        batches = [order[start : start + self.batch_size].tolist() for start in range(0, len(order), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    def _move_longest_to_front(self, batches: list[list[int]]) -> list[list[int]]:
        """The num_replicas longest batches first, so every rank's first step is its heaviest."""
        longest = np.argsort([-self.lengths[batch].max() for batch in batches], kind="stable")[: self.num_replicas]
        front = set(longest.tolist())
        return [batches[i] for i in longest] + [batch for i, batch in enumerate(batches) if i not in front]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _longest_first(indices: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return indices[np.argsort(-lengths[indices], kind="stable")]


Collator = Callable[[list[dict[str, Sequence[int]]]], dict[str, torch.Tensor]]


class Seq2SeqCollator:
    """Pads a list of {"input_ids", "labels"} to the longest in the batch (rounded up to a multiple
    of pad_to_multiple_of when given: 8 suits GPU tensor cores). Labels are padded with -100, which
    the loss ignores; T5 models build decoder inputs from the labels themselves.
    """

    def __init__(self, pad_token_id: int, label_pad_id: int = -100, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.label_pad_id = label_pad_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, examples: list[dict[str, Sequence[int]]]) -> dict[str, torch.Tensor]:
        sources = [e["input_ids"] for e in examples]
        input_ids, source_lengths = _pad_rows(sources, self.pad_token_id, self.pad_to_multiple_of)
        labels, _ = _pad_rows([e["labels"] for e in examples], self.label_pad_id, self.pad_to_multiple_of)
        attention_mask = torch.arange(input_ids.shape[1]) < source_lengths[:, None]
        return {"input_ids": input_ids, "attention_mask": attention_mask.long(), "labels": labels}


class CausalCollator:
    """Training batches for a causal base from {"input_ids": prompt, "labels": completion} examples: each
    row is prompt + completion, right-padded (to a multiple of pad_to_multiple_of when given); labels are
    the completion's ids and -100 on the prompt and the padding, so the loss counts the completion alone.
    The model shifts the labels itself (position t predicts token t + 1).
    """

    def __init__(self, pad_token_id: int, label_pad_id: int = -100, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.label_pad_id = label_pad_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, examples: list[dict[str, Sequence[int]]]) -> dict[str, torch.Tensor]:
        prompts = [np.asarray(e["input_ids"], dtype=np.int64) for e in examples]
        completions = [np.asarray(e["labels"], dtype=np.int64) for e in examples]
        rows = [np.concatenate([prompt, completion]) for prompt, completion in zip(prompts, completions)]
        label_rows = [
            np.concatenate([np.full(len(prompt), self.label_pad_id), completion])
            for prompt, completion in zip(prompts, completions)
        ]
        input_ids, lengths = _pad_rows(rows, self.pad_token_id, self.pad_to_multiple_of)
        labels, _ = _pad_rows(label_rows, self.label_pad_id, self.pad_to_multiple_of)
        attention_mask = torch.arange(input_ids.shape[1]) < lengths[:, None]
        return {"input_ids": input_ids, "attention_mask": attention_mask.long(), "labels": labels}


class PromptCollator:
    """Generation batches for a causal base: the prompts alone ("input_ids"), LEFT-padded, with their
    attention mask, so every row's last column is its prompt's last token and generation continues
    all rows from the same column."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, examples: list[dict[str, Sequence[int]]]) -> dict[str, torch.Tensor]:
        prompts = [e["input_ids"] for e in examples]
        input_ids, lengths = _pad_rows(prompts, self.pad_token_id, self.pad_to_multiple_of, left=True)
        attention_mask = torch.arange(input_ids.shape[1]) >= input_ids.shape[1] - lengths[:, None]
        return {"input_ids": input_ids, "attention_mask": attention_mask.long()}


def collator_for(
    kind: str, pad_token_id: int, *, pad_to_multiple_of: int | None = None, generation: bool = False
) -> Collator:
    """The collator for a base of `kind` (hybridcl.model.families.SEQ2SEQ or CAUSAL): a T5 base's batches
    are the same for training and generation; a causal base trains on prompt + completion
    (CausalCollator) and generates from left-padded prompts (PromptCollator)."""
    if kind == SEQ2SEQ:
        return Seq2SeqCollator(pad_token_id, pad_to_multiple_of=pad_to_multiple_of)
    if kind == CAUSAL:
        collator = PromptCollator if generation else CausalCollator
        return collator(pad_token_id, pad_to_multiple_of=pad_to_multiple_of)
    raise ValueError(f"base kind {kind!r} is not one of {[SEQ2SEQ, CAUSAL]}")


def _pad_rows(
    rows: list[Sequence[int]], value: int, multiple: int | None, *, left: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows padded with `value` to the longest (rounded up to a multiple of `multiple`), on the right or
    the left, and their lengths."""
    lengths = torch.tensor([len(row) for row in rows])
    width = int(lengths.max())
    if multiple:
        width = _ceil_div(width, multiple) * multiple
    padded = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        start = width - len(row) if left else 0
        padded[i, start : start + len(row)] = torch.as_tensor(row)
    return padded, lengths


def concat_encoded(sets: Sequence[EncodedSet]) -> EncodedSet:
    """One EncodedSet holding the examples of several, in order (e.g. the `joint` strategy's data)."""

    def join(parts: list[RaggedIds]) -> RaggedIds:
        starts = np.cumsum([0] + [int(p.offsets[-1]) for p in parts[:-1]])
        offsets = np.concatenate([[0]] + [p.offsets[1:] + start for p, start in zip(parts, starts)])
        return RaggedIds(np.concatenate([p.flat for p in parts]), offsets.astype(np.int64))

    return EncodedSet(join([s.source_ids for s in sets]), join([s.target_ids for s in sets]))


def select_encoded(encoded: EncodedSet, indices: Sequence[int]) -> EncodedSet:
    """The examples `indices` of `encoded`, in that order (e.g. a replay buffer's)."""

    def pick(ids: RaggedIds) -> RaggedIds:
        return RaggedIds.from_lists([ids[i] for i in indices])

    return EncodedSet(pick(encoded.source_ids), pick(encoded.target_ids))


def make_loader(
    encoded: EncodedSet,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    collator: Collator,
    num_replicas: int = 1,
    rank: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader over length-grouped batches; call `loader.batch_sampler.set_epoch(epoch)` each epoch."""
    sampler = LengthGroupedBatchSampler(
        encoded.lengths, batch_size, shuffle=shuffle, seed=seed, num_replicas=num_replicas, rank=rank
    )
    return DataLoader(encoded, batch_sampler=sampler, collate_fn=collator, pin_memory=pin_memory)


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of the tokens in the padded batches that are padding (0 = none)."""
    lengths = np.asarray(lengths)
    real = sum(int(lengths[batch].sum()) for batch in batches)
    padded = sum(len(batch) * int(lengths[batch].max()) for batch in batches if len(batch))
    return 1 - real / padded if padded else 0.0
