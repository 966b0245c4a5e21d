"""The causal stand-in base (`hybridcl base build --arch causal`): a micro build end to end, and the (prompt,
completion) examples it pre-trains on. The shipped models/stand-in-causal is checked in tests/test_shipped_base.py,
a killed causal build that continues in tests/test_base.py."""

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from hybridcl.cli import build_parser
from hybridcl.config import load_config
from hybridcl.data.schema import DataError
from hybridcl.model import pretrain, pretrain_causal, pretrain_data, stand_in_tokenizer
from hybridcl.offline_assets import build_offline_assets
from hybridcl.settings import BASE_SIZES, DIRECTIONS, PROMPT_PLACEHOLDER, DataConfig, task_cue
from test_base import corpus  # noqa: F401 (the fixture: a synthetic python + javascript pretrain pool)

STEPS = 40
MICRO = pretrain.build_settings("micro", arch="causal")


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("built") / "causal"
    info = pretrain.build_stand_in_base(corpus, out, size="micro", steps=STEPS, seed=0, arch="causal", progress=False)
    return out, info


@pytest.fixture(scope="module")
def records(corpus):  # noqa: F811
    return pretrain_data.pretraining_records(corpus, MICRO["max_code_chars"], Counter())


@pytest.fixture(scope="module")
def tokenizer(records):
    texts = (text for record in records for text in (record.code, record.docstring))
    return stand_in_tokenizer.train_tokenizer(texts, vocab_size=600, causal=True)


@pytest.fixture(scope="module")
def stream(records, tokenizer):
    return pretrain_causal.CausalPretrainingStream(records, tokenizer, MICRO, seed=1)


# --------------------------------------------------------------------------------------- build


def test_micro_causal_build_end_to_end_loads_with_stock_transformers(built):
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    out, info = built
    assert info["loss_end"] < info["loss_start"] - 0.5, info["loss_curve"]
    assert info["settings"] == pretrain.build_settings("micro", steps=STEPS, seed=0, arch="causal")
    assert info["command"] == (
        f"hybridcl base build --arch causal --corpus data/corpus --out OUT --size micro --steps {STEPS} --seed 0"
    )
    assert json.loads((out / pretrain.BUILD_INFO).read_text())["loss_end"] == info["loss_end"]

    model = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert isinstance(model, LlamaForCausalLM)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert model.config.vocab_size == len(tokenizer)
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    ids = tokenizer("def add(a, b):").input_ids
    assert ids[0] == 1 and 2 not in ids  # BOS first, the prompt left open to be continued (Llama's convention)
    assert tokenizer.padding_side == "left"
    batch = tokenizer(["Return the sum of value.\nCode:\n", "function add"], padding=True, return_tensors="pt")
    width = batch["input_ids"].shape[1]
    generated = model.generate(**batch, max_new_tokens=8, do_sample=False)
    assert generated.shape[0] == 2 and width < generated.shape[1] <= width + 8


def test_the_command_line_asks_for_the_architecture():
    parse = build_parser().parse_args
    args = parse(["base", "build", "--arch", "causal", "--corpus", "c", "--out", "o", "--size", "micro"])
    assert pretrain.build_settings(args.size, args.steps, args.seed, args.arch) == MICRO
    assert parse(["base", "build", "--corpus", "c", "--out", "o"]).arch == "t5"
    assert "arch" not in pretrain.build_settings("micro")  # a T5 build's record stays as it was
    assert set(pretrain_causal.SIZES) == set(BASE_SIZES)  # the command line's --size choices
    with pytest.raises(DataError, match="unknown stand-in architecture"):
        pretrain.build_settings("micro", arch="gpt")


def test_an_offline_run_builds_the_stand_in_of_its_architecture_when_missing(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(
        pretrain, "build_stand_in_base", lambda corpus_dir, base, **kwargs: built.append((base, kwargs))
    )
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "summary.json").write_text("{}")  # a mined corpus
    config = Path(__file__).resolve().parents[1] / "configs" / "local-causal.yaml"
    cfg = load_config(config, [f"data.source={tmp_path / 'corpus'}", f"model.name={tmp_path / 'base'}"])
    build_offline_assets(cfg)
    assert built == [(tmp_path / "base", {"size": "tiny", "arch": "causal"})]


def test_tiny_fits_the_shipping_budget():
    config = pretrain_causal.stand_in_config("tiny", pretrain_causal.SIZES["tiny"]["vocab_size"])
    with torch.device("meta"):
        parameters = sum(p.numel() for p in pretrain_causal.new_model(config).parameters())
    assert parameters == 4_421_376 and parameters * 4 <= 20e6  # model.safetensors in float32


# --------------------------------------------------------------------------------- data stream


def test_docstrings_are_comments_beside_the_code_not_the_experiments_prompts(records, tokenizer, stream):
    def text(ids):
        return tokenizer.decode(ids, skip_special_tokens=True)

    languages = {record.language for record in records}
    assert languages == {"python", "javascript"}
    for i, record in enumerate(records):
        marker = {"python": "# ", "javascript": "// "}[record.language]
        comment = "\n".join(marker + line for line in record.docstring.splitlines())
        prompt, completion = stream.examples["generate"][i]
        assert prompt[0] == 1 and 2 not in prompt and completion[-1] == 2  # BOS opens, EOS ends the completion
        assert (text(prompt), text(completion)) == (comment + "\n", record.code)
        prompt, completion = stream.examples["summarize"][i]
        assert (text(prompt), text(completion)) == (record.code + "\n" + marker, comment.removeprefix(marker))
        code_ids = tokenizer(record.code, add_special_tokens=False).input_ids
        assert stream.examples["code"][i] == ([], [1, *code_ids, 2])  # no prompt: the loss counts every token
    data = DataConfig()
    templates = [data.prompt_generate, data.prompt_summarize]
    markers = [template.replace(PROMPT_PLACEHOLDER, "").strip() for template in templates]  # "Code:", "Summary:"
    cues = [task_cue(direction, language) for direction in DIRECTIONS for language in languages]
    seen = {text(prompt) for objective in ("generate", "summarize") for prompt, _ in stream.examples[objective]}
    assert not any(part in prompt for prompt in seen for part in markers + cues)


def test_an_epoch_is_every_example_once_and_the_stream_is_pure_in_seed_and_index(records, tokenizer, stream):
    def key(example):
        return tuple(map(tuple, example))

    epoch = [stream.example(g) for g in range(len(stream))]
    everything = [example for objective in pretrain_causal.OBJECTIVES for example in stream.examples[objective]]
    assert len(stream) == 3 * len(records) and Counter(map(key, epoch)) == Counter(map(key, everything))
    again = pretrain_causal.CausalPretrainingStream(records, tokenizer, MICRO, seed=1)
    later = 2 * len(stream) + 3
    assert [again.example(g) for g in (5, later)] == [stream.example(5), stream.example(later)]
    assert [stream.example(len(stream) + g) for g in range(8)] != epoch[:8]  # each epoch is reshuffled


def test_batches_count_the_loss_on_completions_only(stream):
    examples = stream.batch(0, 32)
    batch = pretrain_causal.collate(examples, pad_id=0)
    objectives = Counter()
    for row, (prompt, completion) in enumerate(examples):
        ids, labels, mask = (batch[key][row].tolist() for key in ("input_ids", "labels", "attention_mask"))
        end = len(prompt) + len(completion)
        assert ids[:end] == prompt + completion and mask == [1] * end + [0] * (len(ids) - end)
        assert labels == [-100] * len(prompt) + completion + [-100] * (len(ids) - end)
        objectives["code" if not prompt else "pair"] += 1
    assert objectives["code"] and objectives["pair"]  # a mix: the code's every token, the pairs' completions
