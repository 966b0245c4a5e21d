"""Tokenise-once caching, length-grouped batching, dynamic padding (offline: a tiny local BPE tokenizer)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import safetensors
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from hybridcl.data.batching import (
    EncodedSet,
    LengthGroupedBatchSampler,
    RaggedIds,
    Seq2SeqCollator,
    encode_records,
    make_loader,
    padding_fraction,
)
from hybridcl.data.schema import Record

CORPUS = [
    "def add(a, b):\n    return a + b",
    "Add two numbers and return the sum.",
    "function greet(name) { return 'hello ' + name; }",
    "Return a greeting for the given name.",
]


def build_tokenizer(vocab_size: int = 300, append_eos: bool = True) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on a few strings; like T5, it ends every sequence with </s> when append_eos."""
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS * 5, trainer)
    if append_eos:
        backend.post_processor = processors.TemplateProcessing(
            single="$A </s>", special_tokens=[("</s>", backend.token_to_id("</s>"))]
        )
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


class CountingTokenizer:
    """Delegates everything to a tokenizer and counts how often it is asked to tokenise."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.tokenizer(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


def make_records(count: int = 6, verb: str = "Add") -> list[Record]:
    return [
        Record(
            repo="r",
            path="p.py",
            func_name=f"f{i}",
            language="python",
            code=f"def f{i}(a, b):\n    return a + b" + " + a" * i,
            docstring=f"{verb} two numbers {i} times.",
        )
        for i in range(count)
    ]


def skewed_lengths(count: int = 4000, seed: int = 0) -> np.ndarray:
    """Log-normal token counts, like CodeSearchNet functions (median ~100, long tail), capped at 512."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(mean=np.log(100), sigma=0.9, size=count).astype(int), 1, 512)


def epoch_batches(sampler: LengthGroupedBatchSampler, epoch: int = 0) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def flatten(batches) -> list[int]:
    return list(itertools.chain.from_iterable(batches))


# --- batch sampler ----------------------------------------------------------------------------


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("count", [0, 1, 7, 100, 257, 1001])
@pytest.mark.parametrize("batch_size", [1, 3, 8, 64])
def test_every_example_exactly_once_per_epoch(shuffle, count, batch_size):
    lengths = skewed_lengths(count, seed=count)
    sampler = LengthGroupedBatchSampler(lengths, batch_size, shuffle=shuffle, seed=1, mega_batch_factor=4)
    for epoch in range(3):
        batches = epoch_batches(sampler, epoch)
        assert sorted(flatten(batches)) == list(range(count))
        assert all(1 <= len(batch) <= batch_size for batch in batches)
        assert len(batches) == len(sampler) == -(-count // batch_size)


@pytest.mark.parametrize("count, batch_size", [(10, 3), (257, 8), (64, 8), (5, 8)])
def test_drop_last_drops_only_the_short_batch(count, batch_size):
    sampler = LengthGroupedBatchSampler(skewed_lengths(count), batch_size, drop_last=True, mega_batch_factor=3)
    batches = epoch_batches(sampler)
    seen = flatten(batches)
    assert len(seen) == len(set(seen)) == count - count % batch_size
    assert all(len(batch) == batch_size for batch in batches)
    assert len(batches) == len(sampler)


def test_order_depends_on_seed_and_epoch_only():
    lengths = skewed_lengths(500)

    def order(seed, epoch):
        return epoch_batches(LengthGroupedBatchSampler(lengths, 8, seed=seed, mega_batch_factor=5), epoch)

    assert order(0, 0) == order(0, 0)
    assert order(0, 1) == order(0, 1)
    assert order(0, 0) != order(0, 1)
    assert order(0, 0) != order(1, 0)


def test_batch_order_is_shuffled_not_sorted():
    lengths = skewed_lengths(1000)
    batches = epoch_batches(LengthGroupedBatchSampler(lengths, 8, mega_batch_factor=1000))  # one mega-batch
    batch_maxima = [lengths[batch].max() for batch in batches]
    assert batch_maxima[0] == max(batch_maxima)
    assert batch_maxima != sorted(batch_maxima, reverse=True)
    assert all(np.all(np.diff(lengths[batch]) <= 0) for batch in batches)  # each batch from one sorted run


def test_longest_batch_comes_first():
    lengths = skewed_lengths(1000)
    for epoch in range(3):
        batches = epoch_batches(LengthGroupedBatchSampler(lengths, 8, mega_batch_factor=10), epoch)
        assert lengths[batches[0]].max() == lengths.max()


def test_grouped_batches_pad_far_less_than_random_batches():
    lengths = skewed_lengths(4000)
    grouped = epoch_batches(LengthGroupedBatchSampler(lengths, 8, seed=0))
    order = np.random.default_rng(0).permutation(len(lengths))
    random_batches = [order[i : i + 8] for i in range(0, len(order), 8)]
    grouped_padding, random_padding = padding_fraction(grouped, lengths), padding_fraction(random_batches, lengths)
    print(f"padding fraction: random {random_padding:.3f}, length-grouped {grouped_padding:.3f}")
    assert random_padding > 0.3
    assert grouped_padding < 0.5 * random_padding


def test_padding_fraction_counts_padded_tokens():
    lengths = [4, 2, 3, 3]
    assert padding_fraction([[0, 1], [2, 3]], lengths) == pytest.approx(2 / 14)
    assert padding_fraction([[2, 3]], lengths) == 0.0


def test_eval_mode_is_sorted_longest_first_and_deterministic():
    lengths = skewed_lengths(301)
    sampler = LengthGroupedBatchSampler(lengths, 8, shuffle=False)
    first = epoch_batches(sampler, 0)
    order = flatten(first)
    assert np.all(np.diff(lengths[order]) <= 0)
    assert epoch_batches(sampler, 5) == first
    assert epoch_batches(LengthGroupedBatchSampler(lengths, 8, shuffle=False, seed=9), 0) == first


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("count, batch_size, replicas", [(100, 8, 2), (96, 8, 2), (50, 8, 3), (3, 2, 4), (1000, 7, 2)])
def test_distributed_ranks_cover_everything_with_equal_step_counts(shuffle, count, batch_size, replicas):
    lengths = skewed_lengths(count)

    def rank_batches(rank):
        sampler = LengthGroupedBatchSampler(lengths, batch_size, shuffle=shuffle, num_replicas=replicas, rank=rank)
        return epoch_batches(sampler, epoch=2), len(sampler)

    per_rank = [rank_batches(rank) for rank in range(replicas)]
    steps = {len(batches) for batches, _ in per_rank} | {length for _, length in per_rank}
    assert len(steps) == 1
    seen = flatten(flatten(batches for batches, _ in per_rank))
    assert set(seen) == set(range(count))
    global_batches = -(-count // batch_size)
    repeated = steps.pop() * replicas - global_batches
    assert 0 <= repeated < replicas or global_batches < replicas
    if repeated == 0:
        assert len(seen) == count  # nothing repeated when the batches divide evenly


def test_distributed_drop_last_keeps_ranks_equal_without_repeats():
    lengths = skewed_lengths(100)
    per_rank = [
        epoch_batches(LengthGroupedBatchSampler(lengths, 8, drop_last=True, num_replicas=3, rank=rank))
        for rank in range(3)
    ]
    assert [len(batches) for batches in per_rank] == [4, 4, 4]  # 12 full batches of 8
    seen = flatten(flatten(per_rank))
    assert len(seen) == len(set(seen)) == 96


def test_rejects_a_rank_outside_the_replicas():
    with pytest.raises(ValueError, match="rank"):
        LengthGroupedBatchSampler([1, 2], 1, num_replicas=2, rank=2)


# --- collator and loader ----------------------------------------------------------------------


def test_collator_pads_to_the_longest_in_the_batch():
    examples = [
        {"input_ids": [5, 6, 7], "labels": [8, 1]},
        {"input_ids": [5], "labels": [9, 9, 9, 1]},
    ]
    batch = Seq2SeqCollator(pad_token_id=0)(examples)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[8, 1, -100, -100], [9, 9, 9, 1]]
    assert all(tensor.dtype == torch.long for tensor in batch.values())


def test_collator_masks_by_length_and_rounds_up_to_a_multiple():
    examples = [{"input_ids": np.array([3, 0, 4], dtype=np.int32), "labels": np.array([1], dtype=np.int32)}]
    batch = Seq2SeqCollator(pad_token_id=0, pad_to_multiple_of=8)(examples)
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (1, 8)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0, 0, 0]]  # an id equal to pad is still real
    assert batch["labels"].tolist() == [[1] + [-100] * 7]


def test_make_loader_yields_every_example_once_with_dynamic_padding():
    rows = [list(range(1, n + 1)) for n in skewed_lengths(203, seed=3) % 40 + 1]
    encoded = EncodedSet(RaggedIds.from_lists(rows), RaggedIds.from_lists([[7, 1]] * len(rows)))
    loader = make_loader(encoded, 16, shuffle=True, seed=0, collator=Seq2SeqCollator(pad_token_id=0))
    loader.batch_sampler.set_epoch(1)
    seen = []
    for batch in loader:
        real = batch["attention_mask"].sum(dim=1)
        assert real.max() == batch["input_ids"].shape[1]  # padded only to this batch's longest
        seen += [tuple(row[:n].tolist()) for row, n in zip(batch["input_ids"], real)]
    assert sorted(seen) == sorted(tuple(row) for row in rows)
    assert len(loader) == 13


# --- encoding and cache -----------------------------------------------------------------------


def test_direction_decides_source_and_target():
    tokenizer = build_tokenizer()
    records = make_records(3)
    kwargs = dict(max_source_tokens=512, max_target_tokens=512)
    generate = encode_records(records, tokenizer, direction="generate", **kwargs)
    summarize = encode_records(records, tokenizer, direction="summarize", **kwargs)
    for i, record in enumerate(records):
        docstring_ids, code_ids = tokenizer(record.docstring)["input_ids"], tokenizer(record.code)["input_ids"]
        assert generate[i]["input_ids"].tolist() == summarize[i]["labels"].tolist() == docstring_ids
        assert generate[i]["labels"].tolist() == summarize[i]["input_ids"].tolist() == code_ids
    with pytest.raises(ValueError, match="direction"):
        encode_records(records, tokenizer, direction="translate", **kwargs)


def test_caps_truncate_and_targets_end_with_eos():
    tokenizer = build_tokenizer()
    encoded = encode_records(make_records(8), tokenizer, direction="generate", max_source_tokens=5, max_target_tokens=7)
    assert len(encoded) == 8
    assert encoded.source_ids.lengths.max() == 5 and encoded.target_ids.lengths.max() == 7
    assert all(encoded[i]["labels"][-1] == tokenizer.eos_token_id for i in range(len(encoded)))
    assert np.array_equal(encoded.lengths, encoded.source_ids.lengths + encoded.target_ids.lengths)


@pytest.mark.parametrize("cap", [6, 200])
def test_eos_is_added_when_the_tokenizer_does_not(cap):
    tokenizer = build_tokenizer(append_eos=False)
    encoded = encode_records(
        make_records(4), tokenizer, direction="generate", max_source_tokens=64, max_target_tokens=cap
    )
    eos = tokenizer.eos_token_id
    for i, record in enumerate(make_records(4)):
        plain = tokenizer(record.code)["input_ids"]
        assert len(plain) > 6
        assert encoded[i]["labels"].tolist() == (plain + [eos] if len(plain) < cap else plain[: cap - 1] + [eos])


def test_second_call_reads_the_cache_without_tokenising(tmp_path: Path):
    records = make_records(6)
    kwargs = dict(direction="generate", max_source_tokens=16, max_target_tokens=16, cache_dir=tmp_path)
    first_tokenizer = CountingTokenizer(build_tokenizer())
    first = encode_records(records, first_tokenizer, **kwargs)
    assert first_tokenizer.calls == 2 and not first.from_cache  # one batched call per side

    again = CountingTokenizer(first_tokenizer.tokenizer)  # its backend's truncation state changed in the first call
    rebuilt = CountingTokenizer(build_tokenizer())  # an identical tokenizer, as in a later process
    for tokenizer in (again, rebuilt):
        cached = encode_records(records, tokenizer, **kwargs)
        assert tokenizer.calls == 0 and cached.from_cache
        for i in range(len(records)):
            assert cached[i]["input_ids"].tolist() == first[i]["input_ids"].tolist()
            assert cached[i]["labels"].tolist() == first[i]["labels"].tolist()


class VocabOnlyTokenizer(CountingTokenizer):
    """A tokenizer without a `tokenizers` backend, like a sentencepiece one."""

    backend_tokenizer = None


def test_tokenizer_without_backend_is_cached_by_its_vocabulary(tmp_path: Path):
    kwargs = dict(direction="generate", max_source_tokens=16, max_target_tokens=16, cache_dir=tmp_path)
    assert not encode_records(make_records(4), VocabOnlyTokenizer(build_tokenizer()), **kwargs).from_cache
    assert encode_records(make_records(4), VocabOnlyTokenizer(build_tokenizer()), **kwargs).from_cache
    other = VocabOnlyTokenizer(build_tokenizer(vocab_size=280))
    assert not encode_records(make_records(4), other, **kwargs).from_cache and other.calls == 2


@pytest.mark.parametrize(
    "change",
    [
        {"max_source_tokens": 8},
        {"max_target_tokens": 8},
        {"direction": "summarize"},
        {"records": make_records(6, verb="Sub")},  # same lengths, other text
        {"records": make_records(6)[::-1]},
        {"records": make_records(5)},
        {"records": make_records(6)[:5] + [make_records(1)[0]]},
        {"tokenizer": "other"},
    ],
    ids=["source cap", "target cap", "direction", "text", "order", "count", "one record", "tokenizer"],
)
def test_cache_misses_when_an_input_changes(tmp_path: Path, change):
    base = dict(records=make_records(6), direction="generate", max_source_tokens=16, max_target_tokens=16)
    encode_records(tokenizer=CountingTokenizer(build_tokenizer()), cache_dir=tmp_path, **base)
    assert encode_records(tokenizer=CountingTokenizer(build_tokenizer()), cache_dir=tmp_path, **base).from_cache
    changed = {**base, **change}
    tokenizer = CountingTokenizer(build_tokenizer(vocab_size=280 if change.get("tokenizer") else 300))
    changed["tokenizer"] = tokenizer
    encoded = encode_records(cache_dir=tmp_path, **changed)
    assert tokenizer.calls == 2 and not encoded.from_cache
    assert len(list((tmp_path / "encoded").iterdir())) == 2


def test_cache_files_are_safetensors_without_pickle(tmp_path: Path):
    encode_records(
        make_records(4),
        build_tokenizer(),
        direction="generate",
        max_source_tokens=16,
        max_target_tokens=16,
        cache_dir=tmp_path,
    )
    files = list(tmp_path.rglob("*"))
    cache_files = [path for path in files if path.is_file()]
    assert len(cache_files) == 1 and cache_files[0].suffix == ".safetensors"  # no temp file left behind
    assert b"\x80" != cache_files[0].read_bytes()[:1]  # not a pickle stream
    with safetensors.safe_open(str(cache_files[0]), framework="np") as stored:
        assert set(stored.keys()) == {"source_flat", "source_offsets", "target_flat", "target_offsets"}
        offsets = stored.get_tensor("source_offsets")
        assert offsets[0] == 0 and len(offsets) == 5


def test_empty_record_list_encodes_and_caches(tmp_path: Path):
    kwargs = dict(direction="generate", max_source_tokens=8, max_target_tokens=8, cache_dir=tmp_path)
    assert len(encode_records([], build_tokenizer(), **kwargs)) == 0
    assert encode_records([], build_tokenizer(), **kwargs).from_cache


def test_concat_encoded_keeps_every_example_in_order():
    from hybridcl.data.batching import concat_encoded

    first = EncodedSet(RaggedIds.from_lists([[1, 2], [3]]), RaggedIds.from_lists([[4], [5, 6, 7]]))
    second = EncodedSet(RaggedIds.from_lists([[8, 9, 10]]), RaggedIds.from_lists([[11, 12]]))
    joined = concat_encoded([first, second])
    assert len(joined) == 3
    assert [joined[i]["input_ids"].tolist() for i in range(3)] == [[1, 2], [3], [8, 9, 10]]
    assert [joined[i]["labels"].tolist() for i in range(3)] == [[4], [5, 6, 7], [11, 12]]
