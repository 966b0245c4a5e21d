"""codet5-small's own folder format: a replica (same files, ids and config; random weights) loads through
`load_base` as the hub name would, and its tokenizer behaves as the experiment needs (docs/codet5-small-format.md)."""

import json
import shutil

import huggingface_hub
import pytest
import torch
from safetensors.torch import load_file
from tokenizers import pre_tokenizers

from hybridcl.data.batching import Seq2SeqCollator, encode_records
from hybridcl.data.schema import Record
from hybridcl.hf_cache import place_in_cache, snapshot_folder
from hybridcl.model import replica
from hybridcl.model.base import CODET5_SMALL_NAME, CODET5_SMALL_PARAMETERS, ModelError, load_base
from hybridcl.settings import ModelConfig
from smoke import NOUNS, VERBS, javascript_record, python_record

EXPECTED_FILES = {
    "config.json",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
    "model.safetensors",
}
PAD, BOS, EOS, UNK, MASK = 0, 1, 2, 3, 4


def _texts() -> list[str]:
    """Code and docstrings of the smoke corpus's train split, both languages."""
    pairs = [(verb, noun) for verb in VERBS for noun in NOUNS][:60]
    records = [
        make(verb, noun, i, "train")
        for make in (python_record, javascript_record)
        for i, (verb, noun) in enumerate(pairs)
    ]
    return [text for record in records for text in (record.code, record.docstring)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return replica.write_codet5_small_replica(tmp_path_factory.mktemp("codet5") / "codet5-small", _texts(), seed=0)


@pytest.fixture(scope="module")
def loaded(folder):
    return load_base(ModelConfig(name=str(folder)))


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a folder never needs the hub; make sure nothing asks it


# ------------------------------------------------------------------------------------------- files


def test_the_folder_holds_exactly_codet5_smalls_files(folder):
    assert {p.name for p in folder.iterdir()} == EXPECTED_FILES
    assert set(replica.REPLICA_FILES) == EXPECTED_FILES


def test_config_json_carries_codet5_smalls_values(folder):
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["T5ForConditionalGeneration"] and config["model_type"] == "t5"
    assert {
        k: config[k]
        for k in (
            "vocab_size",
            "d_model",
            "d_kv",
            "d_ff",
            "num_layers",
            "num_decoder_layers",
            "num_heads",
            "relative_attention_num_buckets",
            "feed_forward_proj",
        )
    } == {
        "vocab_size": 32100,
        "d_model": 512,
        "d_kv": 64,
        "d_ff": 2048,
        "num_layers": 6,
        "num_decoder_layers": 6,
        "num_heads": 8,
        "relative_attention_num_buckets": 32,
        "feed_forward_proj": "relu",
    }
    assert (
        config["pad_token_id"],
        config["bos_token_id"],
        config["eos_token_id"],
        config["decoder_start_token_id"],
    ) == (PAD, BOS, EOS, PAD)
    assert config["tie_word_embeddings"] is True
    assert list(config) == sorted(config)


def test_tokenizer_files_have_32100_ids_in_codet5s_layout(folder):
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 32000 and sorted(vocab.values()) == list(range(32000))
    assert [vocab[t] for t in ("<pad>", "<s>", "</s>", "<unk>", "<mask>")] == [0, 1, 2, 3, 4]
    # the 256 byte symbols follow at 5..260 in code-point order ("!"=5 ... "Ń"=260), as in CodeT5's vocab.json
    by_id = sorted(vocab, key=vocab.get)
    assert by_id[5:261] == sorted(pre_tokenizers.ByteLevel.alphabet()) and by_id[5] == "!" and by_id[260] == "Ń"
    merges = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert merges[0] == "#version: 0.2" and len(merges) - 1 == 32000 - 5 - 256
    added = json.loads((folder / "added_tokens.json").read_text())
    assert sorted(added.values()) == list(range(32000, 32100))
    assert added["<extra_id_0>"] == 32099 and added["<extra_id_99>"] == 32000
    special = json.loads((folder / "special_tokens_map.json").read_text())
    assert special["additional_special_tokens"] == [f"<extra_id_{i}>" for i in range(100)]
    assert (
        special["bos_token"],
        special["eos_token"],
        special["pad_token"],
        special["cls_token"],
        special["sep_token"],
    ) == ("<s>", "</s>", "<pad>", "<s>", "</s>")
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "RobertaTokenizer"
    assert tokenizer_config["model_max_length"] == 512 and tokenizer_config["add_prefix_space"] is False


def test_the_bpe_files_are_deterministic(folder, tmp_path):
    vocab, merges = replica.train_bpe(_texts())
    replica.write_tokenizer_files(tmp_path, vocab, merges)
    for name in replica.TOKENIZER_FILES:
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes(), name


def test_refuses_a_non_empty_folder(folder):
    with pytest.raises(FileExistsError):
        replica.write_codet5_small_replica(folder, ["x"])
    with pytest.raises(ValueError, match="weights"):
        replica.write_codet5_small_replica(folder.parent / "other", ["x"], weights="pretrained")


# ------------------------------------------------------------------------------------ load_base


def test_load_base_reads_the_folder_as_codet5_small(loaded, folder):
    model, tokenizer = loaded
    assert type(model).__name__ == "T5ForConditionalGeneration"
    assert sum(p.numel() for p in model.parameters()) == CODET5_SMALL_PARAMETERS == 60_492_288  # tied once
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert type(tokenizer).__name__.startswith("Roberta")
    assert len(tokenizer) == 32100 == model.get_input_embeddings().num_embeddings
    assert (
        tokenizer.pad_token_id,
        tokenizer.eos_token_id,
        tokenizer.bos_token_id,
        tokenizer.unk_token_id,
        tokenizer.mask_token_id,
    ) == (PAD, EOS, BOS, UNK, MASK)
    stored = load_file(str(folder / "model.safetensors"))  # the file's weights, not a fresh initialisation
    assert torch.equal(model.shared.weight, stored["shared.weight"])
    assert model.lm_head.weight is model.shared.weight  # tied, as in codet5-small
    name = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
    assert torch.equal(model.state_dict()[name], stored[name])


def test_decoder_start_is_pad_and_comes_from_config_json(loaded):
    model, tokenizer = loaded
    assert model.config.decoder_start_token_id == 0 == tokenizer.pad_token_id
    # no generation_config.json in the folder: generate() takes its ids from config.json
    assert model.generation_config.decoder_start_token_id == 0
    assert model.generation_config.eos_token_id == EOS and model.generation_config.pad_token_id == PAD
    labels = torch.tensor([[BOS, 500, 600, EOS]])
    assert model._shift_right(labels).tolist() == [[PAD, BOS, 500, 600]]  # training's decoder inputs
    batch = tokenizer(["def f(): pass"], return_tensors="pt")
    output = model.generate(**batch, max_new_tokens=2, do_sample=False, num_beams=1)
    assert output[0, 0].item() == PAD  # generation's first decoder token


def test_inputs_and_targets_are_wrapped_in_bos_and_eos(loaded):
    _, tokenizer = loaded
    ids = tokenizer("def f(): pass").input_ids
    assert ids[0] == BOS and ids[-1] == EOS and ids.count(EOS) == 1 and ids.count(BOS) == 1
    assert tokenizer("def f(): pass " * 50, truncation=True, max_length=8).input_ids[::7] == [BOS, EOS]
    record = Record("repo", "f.py", "f", "python", "def f(): pass", "Do nothing.", "train")
    encoded = encode_records([record], tokenizer, direction="generate", max_source_tokens=16, max_target_tokens=16)
    source, target = encoded[0]["input_ids"].tolist(), encoded[0]["labels"].tolist()
    assert source[0] == target[0] == BOS and source[-1] == target[-1] == EOS
    batch = Seq2SeqCollator(tokenizer.pad_token_id)([encoded[0], {"input_ids": [BOS, EOS], "labels": [BOS, EOS]}])
    assert batch["input_ids"][1].tolist()[2:] == [PAD] * (len(source) - 2)


def test_decoding_strips_pad_bos_eos_and_sentinels(loaded):
    _, tokenizer = loaded
    text = "def add(a, b):\n    return a + b"
    body = tokenizer(text, add_special_tokens=False).input_ids
    generated = [PAD, BOS, *body[:3], 32099, 32000, *body[3:], EOS, PAD, PAD]
    decoded = tokenizer.batch_decode([generated], skip_special_tokens=True, clean_up_tokenization_spaces=False)
    assert decoded == [text]  # as src/hybridcl/evaluate.py decodes
    kept = tokenizer.decode(generated, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    assert kept.startswith("<pad><s>") and "<extra_id_0><extra_id_99>" in kept and kept.endswith("</s><pad><pad>")


def test_stock_transformers_reads_the_folder(folder):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    assert type(tokenizer).__name__ == "RobertaTokenizer" and len(tokenizer) == 32100
    model, info = AutoModelForSeq2SeqLM.from_pretrained(str(folder), use_safetensors=True, output_loading_info=True)
    assert type(model).__name__ == "T5ForConditionalGeneration"
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert sum(p.numel() for p in model.parameters()) == 60_492_288


def test_the_hub_name_with_a_pytorch_model_bin_that_is_no_pickle_fails_in_one_line(folder, tmp_path, monkeypatch):
    """The hub repository ships only pytorch_model.bin, which load_base reads through torch's weights-only
    unpickler (tests/test_model_sources.py loads one). Here the cached .bin is not even a pickle: the unpickler
    refuses it and the error is one line naming the file."""
    published = tmp_path / "published"
    published.mkdir()
    for name in ("config.json", *replica.TOKENIZER_FILES):
        shutil.copy(folder / name, published / name)
    (published / "pytorch_model.bin").write_bytes(b"never unpickled")
    commit = place_in_cache(published, tmp_path / "hub", CODET5_SMALL_NAME, "model")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot = snapshot_folder(CODET5_SMALL_NAME, "model", commit)
    with pytest.raises(ModelError) as caught:
        load_base(ModelConfig(name=CODET5_SMALL_NAME))
    assert str(caught.value) == (
        f"{snapshot / 'pytorch_model.bin'}: refused by torch's weights-only unpickler (Unsupported operand 110); "
        "only plain tensors are read"
    )
