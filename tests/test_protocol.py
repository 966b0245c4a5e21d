"""The protocol a run follows and states: the task cue in every source (`data.task_prefix`), the split
scored (`eval.split`), which strategies pick components by the task's identity, and analysis.md's
Protocol section, for new results and for results written before these keys existed."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from hybridcl.config import load_config, load_run_config
from hybridcl.continual import ContinualRun
from hybridcl.continuation import continues_finished_stages
from hybridcl.data import csn
from hybridcl.data.batching import encode_records
from hybridcl.data.schema import Record, dedup_key
from hybridcl.metrics.registry import REGISTRY
from hybridcl.report import load_results, write_report
from hybridcl.settings import ConfigError, DataConfig
from hybridcl.strategies import STRATEGIES
from smoke import smoke_config
from test_batching import build_tokenizer, make_records
from test_csn import csn_row, write_jsonl
from test_report import make_results, section

STORED_OLD_RESULTS = Path(__file__).parent / "data" / "report" / "smoke-7-strategies-3-seeds.json"
ENCODE = {"max_source_tokens": 64, "max_target_tokens": 64}


def javascript_record(i: int) -> Record:
    return Record("r", "p.js", f"f{i}", "javascript", f"function f{i}(a) {{ return a; }}", f"Return a {i}.")


def decoded_sources(encoded, tokenizer) -> list[str]:
    return [tokenizer.decode(encoded.source_ids[i], skip_special_tokens=True) for i in range(len(encoded))]


# ------------------------------------------------------------------------------------ the task cue


@pytest.mark.parametrize(
    "direction, text_of", [("generate", lambda r: r.docstring), ("summarize", lambda r: r.code)], ids=str
)
def test_the_task_cue_starts_every_encoded_source(direction, text_of):
    tokenizer = build_tokenizer()
    records = make_records(3) + [javascript_record(0)]
    encoded = encode_records(records, tokenizer, direction=direction, task_prefix=True, **ENCODE)
    expected = [f"{direction} {r.language}: {text_of(r)}" for r in records]
    assert decoded_sources(encoded, tokenizer) == expected


def test_without_the_prefix_the_source_ids_are_the_bare_text():
    tokenizer = build_tokenizer()
    records = make_records(3)
    encoded = encode_records(records, tokenizer, direction="generate", task_prefix=False, **ENCODE)
    assert decoded_sources(encoded, tokenizer) == [r.docstring for r in records]
    assert encoded.source_ids[0].tolist() == tokenizer(records[0].docstring)["input_ids"]


def test_the_cache_never_gives_a_bare_encoding_for_a_prefixed_one(tmp_path):
    tokenizer, records = build_tokenizer(), make_records(4)

    def encode(prefix: bool):
        return encode_records(
            records, tokenizer, direction="generate", task_prefix=prefix, cache_dir=tmp_path, **ENCODE
        )

    bare = encode(False)
    prefixed = encode(True)
    assert not prefixed.from_cache
    assert decoded_sources(prefixed, tokenizer)[0].startswith("generate python: ")
    again_bare, again_prefixed = encode(False), encode(True)
    assert again_bare.from_cache and again_prefixed.from_cache
    assert decoded_sources(again_bare, tokenizer) == decoded_sources(bare, tokenizer)
    assert decoded_sources(again_prefixed, tokenizer) == decoded_sources(prefixed, tokenizer)


@pytest.mark.parametrize("prefix", [True, False])
def test_a_run_trains_and_evaluates_on_the_sources_its_config_says(smoke_assets, tmp_path, prefix):
    cfg = smoke_config(smoke_assets, f"data.task_prefix={str(prefix).lower()}", "strategies=[lora_only]")
    run = ContinualRun(cfg, tmp_path / "run")
    run.prepare()
    for language, task in run.tasks.items():
        for encoded, pairs in ((task.valid, task.pairs), (task.train, None)):
            first = run.tokenizer.decode(encoded.source_ids[0], skip_special_tokens=True)
            assert first.startswith(f"generate {language}: ") == prefix
            if pairs is not None and not prefix:
                assert first == pairs[0].source[: len(first)]
    assert run.collect()["config"]["data"]["task_prefix"] is prefix


# ---------------------------------------------------------------- continuing a folder from before the key


def test_a_saved_run_config_without_task_prefix_is_read_as_bare_sources(tmp_path):
    saved = tmp_path / "config.yaml"
    saved.write_text("name: old\ndata: {n_train: 10}\n")
    assert load_run_config(saved).data.task_prefix is False
    assert load_config(saved).data.task_prefix is True  # a config file to run from takes the default
    saved.write_text("name: new\ndata: {n_train: 10, task_prefix: true}\n")
    assert load_run_config(saved).data.task_prefix is True
    saved.write_text("name: old\n")  # no data section at all
    assert load_run_config(saved).data.task_prefix is False


def old_run_folder(folder: Path, cfg) -> Path:
    """A folder with a finished stage whose config.yaml was written before data.task_prefix existed."""
    plain = json.loads(json.dumps(cfg.to_dict()))
    del plain["data"]["task_prefix"]
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(plain, sort_keys=False))
    stage = folder / "stage0" / "seed0"
    stage.mkdir(parents=True)
    (stage / "stage.json").write_text("{}")
    return folder


def test_an_old_run_folder_continues_only_with_bare_sources(smoke_assets, tmp_path):
    folder = old_run_folder(tmp_path / "old", smoke_config(smoke_assets))
    with pytest.raises(ConfigError, match="data.task_prefix: False there, True now"):
        continues_finished_stages(smoke_config(smoke_assets), folder)
    assert continues_finished_stages(smoke_config(smoke_assets, "data.task_prefix=false"), folder) is True


# ---------------------------------------------------------------------------------- the split scored


def test_eval_split_test_samples_the_test_split_without_train_records(tmp_path):
    write_jsonl(tmp_path / "python" / "train.jsonl", [csn_row(i) for i in range(10)])
    write_jsonl(tmp_path / "python" / "valid.jsonl", [csn_row(i) for i in range(100, 110)])
    leaked = [csn_row(i, partition="test") for i in range(3)]  # the train split's records again
    write_jsonl(tmp_path / "python" / "test.jsonl", [csn_row(i, partition="test") for i in range(200, 205)] + leaked)
    cfg = DataConfig(source=str(tmp_path), n_train=10, n_valid=20, cache_dir=str(tmp_path / "cache"))
    task = csn.load_task_data(cfg, "python", eval_split="test")
    assert {r.func_name for r in task.valid} == {f"add_{i}" for i in range(200, 205)}
    assert not {dedup_key(r) for r in task.valid} & {dedup_key(r) for r in task.train}
    assert (task.counts["test_read"], task.counts["test"], task.eval_split) == (8, 5, "test")
    assert task.split_skips["test"]["duplicate"] == 3 and "valid" not in task.split_skips
    default = csn.load_task_data(cfg, "python")
    assert {r.func_name for r in default.valid} == {f"add_{i}" for i in range(100, 110)}


def test_eval_split_takes_valid_or_test_only():
    assert load_config().eval.split == "valid"
    assert load_config(None, ["eval.split=test"]).eval.split == "test"
    with pytest.raises(ConfigError, match=r"eval.split must be one of \['valid', 'test'\], got 'train'"):
        load_config(None, ["eval.split=train"])


# --------------------------------------------------------------------------- task identity at inference

USES_TASK_IDENTITY = {
    "task_specific": True,
    "shared_layer": True,  # the shared layer is every task's, but each task runs through its own LoRA adapter
    "shared_layer_frozen": True,
    "lora_only": True,
    "layer_only": True,
    "full_finetune": False,
    "joint": False,
    "replay": True,
    "ewc": True,
    "merge_then_add": False,  # every adapter is merged into the one base that evaluates every task
    "olora": False,
}


def test_every_registered_strategy_says_whether_it_uses_the_task_identity_at_inference():
    assert set(USES_TASK_IDENTITY) == set(STRATEGIES), "give every registered strategy its expected answer"
    tasks = ("python", "javascript", "go")
    answers = {name: strategy.task_identity_at_inference(tasks) for name, strategy in STRATEGIES.items()}
    assert answers == USES_TASK_IDENTITY
    assert not any(strategy.task_identity_at_inference(("python",)) for strategy in STRATEGIES.values())


def test_the_results_record_the_task_identity_per_strategy():
    results = make_results(strategies=("task_specific", "full_finetune", "joint"), seeds=(0,))
    recorded = {name: entry["task_identity_at_inference"] for name, entry in results["strategies"].items()}
    assert recorded == {"task_specific": True, "full_finetune": False, "joint": False}


# ------------------------------------------------------------------------------- the Protocol section


def protocol_of(results: dict, run_dir: Path) -> str:
    write_report(results, run_dir, plots=False)
    text = (run_dir / "analysis.md").read_text()
    assert text.index("## Setup") < text.index("## Protocol") < text.index("## Results at a glance")
    return section(text, "Protocol")


def results_with(prefix: bool, split: str = "valid", init: str = "identity") -> dict:
    results = make_results(strategies=("task_specific", "shared_layer", "full_finetune", "joint"), seeds=(0,))
    config = results["config"]
    config["data"]["task_prefix"] = prefix
    config["eval"] = {"batch_size": 50, "max_new_tokens": 128, "split": split}
    config["layer"]["init"] = init
    for entry in results["data"].values():  # the evaluation sample's counts, under its split's name
        entry["counts"] = {key.replace("valid", split): n for key, n in entry["counts"].items()}
    results["data"]["javascript"]["counts"][split] = 199  # one record fewer than data.n_valid found
    return results


def test_the_protocol_states_split_examples_decoding_cue_units_and_task_identity(tmp_path):
    text = protocol_of(results_with(prefix=True, split="test"), tmp_path)
    assert "CodeSearchNet's `test` split (`eval.split`), 200 python and 199 javascript examples" in text
    assert "greedy decoding, at most 128 new tokens" in text
    assert "`generate python: `, `generate javascript: `" in text and "`data.task_prefix: true`" in text
    assert "**Stage 0** (row 0 of every matrix): the base model itself" in text
    for metric in ("bleu", "meteor", "codebleu", "ast_similarity", "pass_rate", "exact_match", "codexglue_bleu"):
        assert f"  - {REGISTRY[metric].label}: {REGISTRY[metric].unit}\n" in text
    assert "smoothed BLEU (CodeXGLUE)" not in text  # for natural-language targets only
    assert "| `task_specific` | yes | yes |" in text
    assert "| `shared_layer` | yes | no |" in text
    assert "| `full_finetune` | no | no |" in text
    assert "| `joint` | no | n/a (one stage: no F) |" in text


def test_the_protocol_says_when_the_source_is_bare_and_stage_0_is_not_the_base(tmp_path):
    text = protocol_of(results_with(prefix=False, init="random"), tmp_path)
    assert "the bare docstring (`data.task_prefix: false`)" in text
    assert "generate python: " not in text
    assert "its stage 0 is not the base model" in text
    assert "`valid` split (`eval.split`), 200 python and 199 javascript examples" in text


def test_results_from_before_the_keys_say_not_recorded(tmp_path):
    old = load_results(STORED_OLD_RESULTS)
    assert "task_prefix" not in old["config"]["data"] and "split" not in old["config"]["eval"]
    assert all("task_identity_at_inference" not in entry for entry in old["strategies"].values())
    text = protocol_of(copy.deepcopy(old), tmp_path)
    assert "`data.task_prefix` not recorded (results written before it existed; those runs fed the bare" in text
    assert "`valid` split (`eval.split` not recorded; runs before it existed scored `valid`)" in text
    assert "6 python and 6 javascript examples" in text and "at most 24 new tokens" in text
    assert "| `task_specific` | not recorded | yes |" in text
    assert "| `shared_layer` | not recorded | no |" in text
    assert "| `joint` | not recorded | n/a (one stage: no F) |" in text
