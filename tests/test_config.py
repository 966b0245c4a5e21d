import pytest

from hybridcl.config import ConfigError, load_config, parse_override


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
        ("data.n_trian=5", "n_trian"),
        ("data.languages=[python, cobol]", "cobol"),
        ("data.direction=translate", "translate"),
        ("data.n_train=-1", "n_train"),
        ("data.n_train=abc", "n_train"),
        ("model.random_init=maybe", "random_init"),
        ("data=3", "data"),
        ("strategies=[task_specific, magic]", "magic"),
        ("train.epochs=0", "train.epochs"),
        ("lora.dropout=1.5", "lora.dropout"),
        ("train.mixed_precision=fp8", "mixed_precision"),
        ("seeds=0", "seeds"),
    ],
)
def test_impossible_settings_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_missing_file_and_malformed_override_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("data.n_train")


def test_the_cli_reports_user_errors_in_one_line(capsys):
    from hybridcl.cli import main
    from hybridcl.data.schema import DataError
    from hybridcl.errors import UserError
    from hybridcl.metrics import WordNetMissingError
    from hybridcl.model.base import ModelError

    assert all(issubclass(error, UserError) for error in (ConfigError, DataError, ModelError, WordNetMissingError))
    assert main(["params", "--set", "data.n_train=0"]) == 2
    assert "data.n_train must be positive" in capsys.readouterr().err
