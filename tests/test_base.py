"""The base model (load_base, CODET5_SMALL) and the offline stand-in base (tokenizer, span corruption, build)."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest
import torch

from hybridcl.data.schema import DataError, Record, write_jsonl_gz
from hybridcl.model import pretrain, pretrain_data, span_corruption, stand_in_tokenizer
from hybridcl.model.base import CODET5_SMALL, CODET5_SMALL_PARAMETERS, ModelError, load_base
from hybridcl.settings import ModelConfig

WORDS = (
    "value",
    "count",
    "items",
    "name",
    "path",
    "size",
    "total",
    "index",
    "result",
    "buffer",
    "node",
    "key",
    "limit",
    "offset",
    "user",
    "token",
    "line",
    "text",
    "data",
    "score",
)

PY_TEMPLATES = (
    ("Return the sum of {a} and {b}.", "def add_{a}({a}, {b}):\n    return {a} + {b}\n"),
    (
        "Return the largest {a} in {b}.",
        "def max_{a}({b}):\n    best = None\n    for {a} in {b}:\n        if best is None or {a} > best:\n            best = {a}\n    return best\n",
    ),
    ("Count how many {a} are in {b}.", "def count_{a}({b}, {a}):\n    return sum(1 for x in {b} if x == {a})\n"),
    ("Read the {a} file at {b}.", "def read_{a}({b}):\n    with open({b}) as handle:\n        return handle.read()\n"),
    ("Check whether {a} is empty.", "def is_empty_{a}({a}):\n    return len({a}) == 0\n"),
)
JS_TEMPLATES = (
    ("Returns the sum of {a} and {b}.", "function add{A}({a}, {b}) {{\n  return {a} + {b};\n}}"),
    (
        "Finds the {a} in {b}.",
        "function find{A}({b}, {a}) {{\n  for (const x of {b}) {{\n    if (x === {a}) {{\n      return x;\n    }}\n  }}\n  return null;\n}}",
    ),
    ("Logs the {a} with the {b}.", "function log{A}({a}, {b}) {{\n  console.log({b}, {a});\n}}"),
    ("Checks whether {a} is empty.", "function isEmpty{A}({a}) {{\n  return {a}.length === 0;\n}}"),
)


def _records(language: str, templates, n: int, rng: random.Random) -> list[Record]:
    records = []
    for i in range(n):
        a, b = rng.sample(WORDS, 2)
        doc, code = rng.choice(templates)
        fields = {"a": a, "b": b, "A": a.capitalize()}
        records.append(
            Record(f"repo{i % 7}", f"f{i}", f"fn{i}", language, code.format(**fields), doc.format(**fields), "train")
        )
    return records


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A few hundred short synthetic python + javascript examples in the corpus layout."""
    root = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    write_jsonl_gz(_records("python", PY_TEMPLATES, 200, rng), root / "python" / "pretrain.jsonl.gz")
    write_jsonl_gz(_records("javascript", JS_TEMPLATES, 200, rng), root / "javascript" / "pretrain.jsonl.gz")
    write_jsonl_gz(_records("python", PY_TEMPLATES, 20, rng), root / "python" / "train.jsonl.gz")  # not read
    return root


@pytest.fixture(scope="module")
def tokenizer(corpus):
    records = [r for lang in ("python", "javascript") for r in pretrain_data.read_pretrain_records(corpus)[lang]]
    return stand_in_tokenizer.train_tokenizer((t for r in records for t in (r.code, r.docstring)), vocab_size=600)


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("built") / "base"
    info = pretrain.build_stand_in_base(corpus, out, size="micro", steps=40, seed=0, progress=False)
    return out, info


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


# ------------------------------------------------------------------------------------------ base


def test_codet5_small_random_init_has_the_real_shape_without_network(offline):
    model, _ = load_base(ModelConfig(name="Salesforce/codet5-small", random_init=True))
    assert type(model).__name__ == "T5ForConditionalGeneration"
    assert len(model.encoder.block) == 6 and len(model.decoder.block) == 6
    assert model.config.d_model == 512 and model.config.vocab_size == 32100
    total = sum(p.numel() for p in model.parameters())  # tied tensors once
    assert total == CODET5_SMALL_PARAMETERS
    assert abs(total - 60.5e6) / 60.5e6 < 0.01
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert CODET5_SMALL.d_model == 512  # the carried config is not mutated


def test_unknown_hub_name_offline_fails_fast_with_the_build_hint(offline):
    started = time.perf_counter()
    with pytest.raises(ModelError) as caught:
        load_base(ModelConfig(name="no-such-owner/no-such-model-xyz"))
    assert time.perf_counter() - started < 5
    message = str(caught.value)
    assert "hybridcl base build --corpus DIR --out DIR" in message
    assert "--set model.name=/path/to/dir" in message


def test_unreachable_hub_without_offline_mode_fails_fast(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    started = time.perf_counter()
    with pytest.raises(ModelError, match="hybridcl base build"):
        load_base(ModelConfig(name="no-such-owner/no-such-model-xyz"))
    assert time.perf_counter() - started < 5


def test_missing_directory_and_directory_without_safetensors(tmp_path):
    with pytest.raises(ModelError, match="no such directory.*hybridcl base build"):
        load_base(ModelConfig(name=str(tmp_path / "absent")))
    (tmp_path / "config.json").write_text(json.dumps(CODET5_SMALL.to_dict()))
    with pytest.raises(ModelError, match="safetensors.*hybridcl base build"):
        load_base(ModelConfig(name=str(tmp_path)))


def _micro_t5(vocab_size: int):
    from transformers import T5ForConditionalGeneration

    torch.manual_seed(123)
    return T5ForConditionalGeneration(pretrain.stand_in_config("micro", vocab_size))


def test_load_a_local_save_pretrained_directory_frozen_in_eval_mode(tmp_path, tokenizer):
    saved = _micro_t5(len(tokenizer))
    saved.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()

    model, loaded_tokenizer = load_base(ModelConfig(name=str(tmp_path)))
    assert type(model).__name__ == "T5ForConditionalGeneration"
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    for (name, a), b in zip(saved.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name
    code = "def f(x):\n    return x\n"
    assert loaded_tokenizer.decode(loaded_tokenizer(code)["input_ids"], skip_special_tokens=True) == code

    # random_init on a directory: its config, its tokenizer, seeded weights (not the saved ones)
    first, tok = load_base(ModelConfig(name=str(tmp_path), random_init=True), seed=0)
    again, _ = load_base(ModelConfig(name=str(tmp_path), random_init=True), seed=0)
    other, _ = load_base(ModelConfig(name=str(tmp_path), random_init=True), seed=1)
    assert tok is not None and first.config.d_model == saved.config.d_model
    weight = "encoder.block.0.layer.0.SelfAttention.q.weight"
    assert torch.equal(first.state_dict()[weight], again.state_dict()[weight])
    assert not torch.equal(first.state_dict()[weight], other.state_dict()[weight])
    assert not torch.equal(first.state_dict()[weight], saved.state_dict()[weight])


def test_model_tokenizer_replaces_the_models_own_and_must_fit_its_embedding(tmp_path, tokenizer):
    model_dir, tokenizer_dir = tmp_path / "model", tmp_path / "tokenizer"
    _micro_t5(len(tokenizer) + 10).save_pretrained(model_dir)  # a model saved without a tokenizer
    tokenizer.save_pretrained(tokenizer_dir)
    model, loaded = load_base(ModelConfig(name=str(model_dir), random_init=True, tokenizer=str(tokenizer_dir)))
    assert loaded is not None and loaded.get_vocab() == tokenizer.get_vocab()
    small = tmp_path / "small"
    _micro_t5(len(tokenizer) - 1).save_pretrained(small)
    with pytest.raises(ModelError, match="embeds only"):
        load_base(ModelConfig(name=str(small), tokenizer=str(tokenizer_dir)))
    with pytest.raises(ModelError, match="model.tokenizer"):
        load_base(ModelConfig(name=str(model_dir), tokenizer=str(tmp_path / "missing")))


# ------------------------------------------------------------------------------------- tokenizer


def test_tokenizer_layout_and_round_trip(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id, loaded.unk_token_id) == (0, 1, 2, 3)
    assert loaded.mask_token_id == 4
    assert stand_in_tokenizer.sentinel_ids(loaded) == list(range(5, 105))
    assert loaded("x <extra_id_7> y")["input_ids"].count(12) == 1  # a sentinel is one token

    samples = [
        "def f(x):\n    if x:\n\t\treturn 'ünïcödé — 日本語 😀'\n    return None\n",
        "function g(a, b) {\r\n  return a  +  b ;  // µ ≠ ∞\r\n}\n\n\n",
        "   leading spaces and trailing   ",
    ]
    for text in samples:
        ids = loaded(text)["input_ids"]
        assert ids[-1] == loaded.eos_token_id and loaded.unk_token_id not in ids
        assert loaded.decode(ids, skip_special_tokens=True) == text
    batch = loaded(samples, padding=True, return_tensors="pt")
    assert batch["input_ids"].shape[0] == 3 and (batch["input_ids"] == 0).any()


def test_tokenizer_training_is_deterministic(corpus):
    records = list(pretrain_data.read_pretrain_records(corpus)["python"])
    texts = [r.code for r in records]
    a = stand_in_tokenizer.train_tokenizer(texts, vocab_size=400)
    b = stand_in_tokenizer.train_tokenizer(texts, vocab_size=400)
    assert a.get_vocab() == b.get_vocab()


# ------------------------------------------------------------------------------- span corruption


def test_span_corruption_sentinels_share_and_reconstruction():
    sentinels = list(range(5, 105))
    rng = np.random.default_rng(0)
    shares, span_lengths = [], []
    for length in list(range(2, 40)) + [100, 284, 500, 1000] * 5:
        tokens = [int(t) for t in rng.integers(200, 1000, size=length)]
        inputs, targets = span_corruption.span_corrupt(tokens, sentinels, rng)
        used = [t for t in inputs if t in sentinels]
        assert used == sentinels[: len(used)] and len(used) >= 1  # in order, no gaps
        assert [t for t in targets if t in sentinels] == used and targets[0] == sentinels[0]
        assert span_corruption.reconstruct(inputs, targets, sentinels) == tokens
        assert (len(inputs) + 1, len(targets) + 1) == span_corruption.corrupted_lengths(length)
        if length >= 100:
            noise = len(targets) - len(used)
            shares.append(noise / length)
            span_lengths.append(noise / len(used))
    assert abs(np.mean(shares) - 0.15) < 0.005
    assert 2.5 < np.mean(span_lengths) < 3.5
    assert (
        span_corruption.corrupted_lengths(span_corruption.raw_length_for(256))[0]
        <= 256
        < span_corruption.corrupted_lengths(span_corruption.raw_length_for(256) + 1)[0]
    )


def test_span_corruption_is_seeded():
    tokens = list(range(300, 600))
    runs = [span_corruption.span_corrupt(tokens, list(range(5, 105)), np.random.default_rng(7)) for _ in range(2)]
    assert runs[0] == runs[1]
    assert runs[0] != span_corruption.span_corrupt(tokens, list(range(5, 105)), np.random.default_rng(8))


# --------------------------------------------------------------------------------------- build


def test_build_stand_in_base_end_to_end(built):
    out, info = built
    assert info["loss_end"] < info["loss_start"] - 0.5, info["loss_curve"]
    assert info["corpus"]["records"] == {"javascript": 200, "python": 200}
    assert info["settings"] == pretrain.build_settings("micro", steps=40, seed=0)
    assert info["command"].endswith("--size micro --steps 40 --seed 0")
    assert json.loads((out / "build_info.json").read_text())["loss_end"] == info["loss_end"]
    assert (out / "model.safetensors").is_file()

    model, tokenizer = load_base(ModelConfig(name=str(out)))
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.config.dropout_rate == 0.1 and model.config.vocab_size == len(tokenizer)
    batch = tokenizer(["Return the sum of value and count.", "function add"], padding=True, return_tensors="pt")
    generated = model.generate(**batch, max_new_tokens=8, do_sample=False)
    assert generated.shape[0] == 2 and 1 < generated.shape[1] <= 9
    assert isinstance(tokenizer.batch_decode(generated, skip_special_tokens=True)[0], str)


def test_build_is_deterministic_and_guards_its_output(corpus, tmp_path):
    a = pretrain.build_stand_in_base(corpus, tmp_path / "a", size="micro", steps=4, seed=3, progress=False)
    b = pretrain.build_stand_in_base(corpus, tmp_path / "a", size="micro", steps=4, seed=3, progress=False)  # replaces
    assert a["loss_curve"] == b["loss_curve"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # no staging or old copies left behind

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not a stand-in base"):
        pretrain.build_stand_in_base(corpus, tmp_path / "other", size="micro", steps=1, progress=False)
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"
    with pytest.raises(DataError, match="no <language>/pretrain"):
        pretrain.build_stand_in_base(tmp_path / "other", tmp_path / "b", size="micro", steps=1, progress=False)


# --------------------------------------------------------------------------------- data stream


def test_stream_gives_every_objective_in_the_experiments_format(corpus, tokenizer):
    from hybridcl.data.batching import encode_pairs

    records = pretrain_data.pretraining_records(corpus, 400, Counter())
    settings = pretrain.build_settings("micro")
    stream = pretrain_data.PretrainingStream(records, tokenizer, settings, seed=1)
    epoch = [stream.example(g) for g in range(len(stream))]
    first = records[0]
    generate = encode_pairs([f"generate {first.language}: {first.docstring}"], [first.code], tokenizer, 32, 64)
    summarize = encode_pairs([f"summarize {first.language}: {first.code}"], [first.docstring], tokenizer, 64, 32)
    assert (generate[0][0], generate[1][0]) in epoch and (summarize[0][0], summarize[1][0]) in epoch
    sentinel = stand_in_tokenizer.sentinel_ids(tokenizer)[0]
    spans = [(i, t) for i, t in epoch if t[0] == sentinel]
    assert len(spans) == len(records) and len(epoch) == 3 * len(records)
    assert all(len(i) <= 64 and len(t) <= 64 for i, t in epoch)
    again = pretrain_data.PretrainingStream(records, tokenizer, settings, seed=1)
    assert [again.example(g) for g in (5, 2 * len(stream) + 3)] == [
        stream.example(5),
        stream.example(2 * len(stream) + 3),
    ]
    assert [stream.example(len(stream) + g) for g in range(4)] != epoch[:4]  # each epoch is reshuffled


# ------------------------------------------------------------------------------- resumable build


def _build_in_subprocess(corpus, out, steps, seed=0, kill_at=None, arch="t5"):
    code = (
        "import sys; from hybridcl.model import pretrain; pretrain.SAVE_EVERY_S = 0; "
        f"pretrain.build_stand_in_base({str(corpus)!r}, {str(out)!r}, size='micro', steps={steps}, seed={seed}, "
        f"arch={arch!r}, progress=False)"
    )
    env = dict(os.environ, HYBRIDCL_KILL_AT=kill_at or "")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.parametrize("arch", ["t5", "causal"])
def test_a_killed_build_continues_where_it_stopped_and_ends_with_the_same_weights(corpus, tmp_path, arch):
    assert _build_in_subprocess(corpus, tmp_path / "whole", 8, arch=arch).returncode == 0  # the same threads as below
    for kill_at in ("pretrain step#4", "pretrain step#2"):  # killed twice, each time after saving its state
        killed = _build_in_subprocess(corpus, tmp_path / "resumed", 8, kill_at=kill_at, arch=arch)
        assert killed.returncode == -signal.SIGKILL
        assert (tmp_path / ".resumed.build" / "state.safetensors").is_file() and not (tmp_path / "resumed").exists()
    assert _build_in_subprocess(corpus, tmp_path / "resumed", 8, arch=arch).returncode == 0
    whole, resumed = (json.loads((tmp_path / name / "build_info.json").read_text()) for name in ("whole", "resumed"))
    assert resumed["resumed"] == [4, 6] and resumed["steps"] == 8 and whole["resumed"] == []
    assert resumed["files"] == whole["files"]  # weights and tokenizer byte for byte
    assert resumed["loss_curve"] == whole["loss_curve"]
    assert not (tmp_path / ".resumed.build").exists()


def test_an_unfinished_build_is_not_continued_with_other_settings(corpus, tmp_path):
    assert _build_in_subprocess(corpus, tmp_path / "base", 6, kill_at="pretrain step#2").returncode == -signal.SIGKILL
    with pytest.raises(DataError, match=r"other settings \(seed: 0 -> 1\).*delete .*\.base\.build"):
        pretrain.build_stand_in_base(corpus, tmp_path / "base", size="micro", steps=6, seed=1, progress=False)
    longer = pretrain.build_stand_in_base(corpus, tmp_path / "base", size="micro", steps=8, progress=False)
    assert longer["resumed"] == [2] and longer["steps"] == 8  # more steps continue the same build


def test_snapshots_are_the_bases_of_shorter_builds(corpus, tmp_path):
    pretrain.build_stand_in_base(corpus, tmp_path / "long", size="micro", steps=5, snapshots=[3], progress=False)
    short = pretrain.build_stand_in_base(corpus, tmp_path / "short", size="micro", steps=3, progress=False)
    snapshot = json.loads((tmp_path / "long-step3" / "build_info.json").read_text())
    assert snapshot["settings"] == short["settings"] and snapshot["loss_curve"] == short["loss_curve"]
    a, b = _weights(tmp_path / "long-step3"), _weights(tmp_path / "short")
    assert all(torch.equal(a[k], b[k]) for k in a)
