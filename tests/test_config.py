from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from hybridcl.config import Config, load_config, parse_override
from hybridcl.settings import BASE_SIZES, ConfigError

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def test_defaults_are_the_seed_preset():
    cfg = load_config()
    assert cfg.model.name == "Salesforce/codet5-small"
    assert cfg.data.languages == ("python", "javascript")
    assert (cfg.data.n_train, cfg.data.n_valid) == (8000, 2000)
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.lr) == (2, 8, 5e-4)
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout) == (16, 32, 0.1)


def test_yaml_and_overrides_layer_on_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: mine\ndata:\n  n_train: 50\n  languages: [go, ruby]\n")
    cfg = load_config(path, ["data.n_valid=7", "train.lr=0.001", "strategies=[lora_only]"])
    assert cfg.name == "mine"
    assert cfg.data.n_train == 50 and cfg.data.n_valid == 7
    assert cfg.data.languages == ("go", "ruby")
    assert cfg.train.lr == 0.001
    assert cfg.strategies == ("lora_only",)
    assert cfg.data.max_source_tokens == 256  # untouched defaults stay


def test_exponent_numbers_without_a_dot_are_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: {lr: 1e-4}\n")  # YAML 1.1 reads this as the string "1e-4"
    assert load_config(path).train.lr == 1e-4
    cfg = load_config(None, ["train.lr=5e-3", "data.n_train=1e3"])
    assert cfg.train.lr == 5e-3 and cfg.data.n_train == 1000 and isinstance(cfg.data.n_train, int)


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.n_trian=5", "unknown key"),
        ("data=3", "expected a mapping"),
        ("data.n_train=abc", "expected a number, got 'abc'"),
        ("model.random_init=maybe", "expected true/false"),
        ("data.source=''", "must be a non-empty string, got ''"),
        ("data.hub_id=''", "non-empty string"),
        ("data.hub_revision=' '", "non-empty string"),
        ("data.cache_dir=''", "non-empty string"),
        ("data.languages=[python, cobol]", "one of ['python', 'javascript', 'java', 'go', 'php', 'ruby'], got"),
        ("data.languages=[]", "got []"),
        ("data.languages=[python, python]", "without repeats, each entry one of"),
        ("data.direction=translate", "must be one of ['generate', 'summarize'], got 'translate'"),
        ("data.n_train=-1", "must be >= 0, got -1"),
        ("data.tasks=[concode_none, concode_none]", "without repeats"),
        ("data.tasks=[refine_tiny]", "has no subtask 'tiny'"),
        ("train.warmup_steps=-5", "must be >= 0, got -5"),
        ("data.n_valid=0", "must be positive, got 0"),
        ("data.max_source_tokens=0", "positive"),
        ("data.max_target_tokens=-5", "positive"),
        ("data.max_record_chars=0", "positive"),
        ("data.sample_seed=-1", "must be >= 0, got -1"),
        ("model.name=''", "non-empty string"),
        ("lora.r=0", "must be positive, got 0"),
        ("lora.alpha=-8", "must be positive, got -8"),
        ("lora.dropout=1.5", "must be in [0, 1), got 1.5"),
        ("lora.dropout=-0.1", "in [0, 1)"),
        (
            "lora.target_modules=[q, q]",
            "a list of module names without repeats (empty: PEFT's default for the base's family), got ['q', 'q']",
        ),
        ("lora.target_modules=[q, '']", "a list of module names"),
        ("lora.target_modules=[q, 3]", "a list of module names"),
        ("layer.init=zeros", "must be one of ['identity', 'random', 'copy', 'fresh'], got 'zeros'"),
        (
            "layer.position=middle",
            "must be one of ['encoder_top', 'decoder_top', 'top', 'after:<i>', 'interleave:<k>'], got 'middle'",
        ),
        ("layer.count=-1", "must be >= 0, got -1"),
        ("layer.count=1.5", "expected a whole number, got 1.5"),
        ("train.epochs=0", "positive"),
        ("train.batch_size=0", "positive"),
        ("train.grad_accum_steps=0", "positive"),
        ("train.lr=0", "must be positive and finite, got 0.0"),
        ("train.lr=.inf", "got inf"),
        ("train.lr=.nan", "got nan"),
        ("train.weight_decay=-1", "must be finite and >= 0, got -1.0"),
        ("train.warmup_ratio=2", "must be in [0, 1), got 2.0"),
        ("train.warmup_ratio=1", "in [0, 1)"),
        ("train.max_grad_norm=-1", "must be finite and >= 0, got -1.0"),
        ("train.mixed_precision=fp8", "must be one of ['auto', 'no', 'bf16', 'fp16'], got 'fp8'"),
        ("train.seed=-1", "must be >= 0, got -1"),
        ("eval.batch_size=0", "positive"),
        ("eval.max_new_tokens=0", "positive"),
        ("offline.base_size=huge", "must be one of ['micro', 'tiny', 'small'], got 'huge'"),
        ("offline.build=true", "data.source to be a local folder"),  # data.source is still "hub"
        ("name=''", "folder name"),
        ("name=runs/x", "folder name"),
        ("name=..", "folder name"),
        (r"name=a\b", "folder name"),
        ("strategies=[]", "got []"),
        ("strategies=[task_specific, magic]", "got ['task_specific', 'magic']"),
        ("strategies=[joint, joint]", "without repeats"),
        ("seeds=0", "must be positive, got 0"),
        ("cl.replay_size=0", "must be positive, got 0"),
        ("cl.replay_policy=fifo", "must be one of ['reservoir', 'per_task', 'ring'], got 'fifo'"),
        ("cl.ewc_lambda=-1", "must be finite and >= 0, got -1.0"),
        ("cl.ewc_fisher_examples=-5", "must be >= 0, got -5"),
        ("cl.olora_lambda=.inf", "must be finite and >= 0, got inf"),
    ],
)
def test_impossible_settings_name_the_key_in_one_line(override, message):
    with pytest.raises(ConfigError) as caught:
        load_config(overrides=[override])
    text = str(caught.value)
    assert override.partition("=")[0] in text and message in text and "\n" not in text, text


def test_every_field_has_a_rule():
    cfg = Config()
    sections = [getattr(cfg, key.name) for key in fields(cfg) if is_dataclass(getattr(cfg, key.name))]
    for section in sections:
        assert set(section.RULES) == {key.name for key in fields(section)}, type(section).__name__
    assert set(Config.RULES) == {key.name for key in fields(cfg)} - {
        key.name for key in fields(cfg) if is_dataclass(getattr(cfg, key.name))
    }


def test_base_sizes_are_the_stand_in_sizes():
    from hybridcl.model import pretrain

    assert set(BASE_SIZES) == set(pretrain.SIZES)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_shipped_configs_load(path):
    assert isinstance(load_config(path), Config)


def test_shipped_configs_are_found():
    assert {path.name for path in CONFIGS} >= {"seed.yaml", "local.yaml", "smoke.yaml"}


def test_missing_file_and_malformed_override_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("data.n_train")


@pytest.mark.parametrize(
    "text, message",
    [
        ("train: {lr: 1.0e-3\n", "is not valid YAML (line 2, column 1)"),
        ("name: seed\n  data: x: y\n", "is not valid YAML (line 2"),
        ("- seed\n- local\n", "the top level must be a mapping of keys and sections, got list"),
        ("just words\n", "got str"),
    ],
)
def test_a_broken_config_file_is_named_in_one_line(tmp_path, text, message):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"config file {path}" in str(caught.value) and message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("override", ["lora.target_modules=[q, v", "name=@x", "data={n_train: 5"])
def test_an_override_that_is_not_yaml_is_named_in_one_line(override):
    with pytest.raises(ConfigError) as caught:
        load_config(overrides=[override])
    assert f"override {override!r} is not valid YAML" in str(caught.value) and "\n" not in str(caught.value)


def test_an_empty_config_file_is_the_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing set\n")
    assert load_config(path) == load_config()


def test_the_cli_reports_user_errors_in_one_line(capsys):
    from hybridcl.cli import main
    from hybridcl.data.schema import DataError
    from hybridcl.errors import UserError
    from hybridcl.metrics import WordNetMissingError
    from hybridcl.model.base import ModelError

    assert all(issubclass(error, UserError) for error in (ConfigError, DataError, ModelError, WordNetMissingError))
    assert main(["params", "--set", "data.n_train=-3"]) == 2
    assert "data.n_train must be >= 0, got -3" in capsys.readouterr().err


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.tasks=[concode_none]", "data.hub_root=/data/csn"], "data.hub_root holds CodeSearchNet"),
        (["data.tasks=[concode_none]", "data.source=/data/corpus", "offline.build=true"], "offline.build mines"),
        (["train.warmup_steps=500", "train.warmup_ratio=0.1"], "both set"),
    ],
)
def test_settings_that_contradict_each_other_are_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(overrides=overrides)
    assert "\n" not in str(caught.value)
