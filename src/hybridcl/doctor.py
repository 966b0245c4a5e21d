"""`hybridcl doctor [CONFIG]` / `python test_setup.py [CONFIG]`: is this machine ready to run an experiment?

Each check returns (ok, what it found or how to fix it); nothing here downloads anything. With a config,
the model and data it names are resolved as the run would resolve them (where from, revision, form,
files, download size, cached or not) and the run's plan is printed: stages, optimizer steps and
evaluations. Any failing check makes the exit code 2.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module, metadata

Check = Callable[[], tuple[bool, str]]  # () -> (ok, what was found or how to fix it)

REQUIRED = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "datasets",
    "sacrebleu",
    "nltk",
    "codebleu",
    "tree_sitter",
    "tree_sitter_python",
    "tree_sitter_javascript",
    "tree_sitter_java",
    "tree_sitter_c_sharp",
    "matplotlib",
    "tqdm",
    "yaml",
    "safetensors",
)


def check_imports() -> tuple[bool, str]:
    missing = []
    for module in REQUIRED:
        try:
            import_module(module)
        except ImportError as error:
            missing.append(f"{module} ({error})")
    if missing:
        return False, f"cannot import {', '.join(missing)}; run `make install` (or `pip install -e .`)"
    return True, "all dependencies import"


def check_wordnet() -> tuple[bool, str]:
    from hybridcl.metrics import WordNetMissingError, require_wordnet

    try:
        require_wordnet()
    except WordNetMissingError as error:
        return False, str(error)
    return True, "WordNet found (METEOR)"


GRAMMAR_PACKAGES = ("tree-sitter-python", "tree-sitter-javascript", "tree-sitter-java", "tree-sitter-c-sharp")


def check_grammars() -> tuple[bool, str]:
    from hybridcl.metrics.syntax import parse_flags

    valid = {
        "python": "def f(x):\n    return x\n",
        "javascript": "function f(x) { return x; }",
        "java": "int f(int x) { return x; }",
        "c_sharp": "public int F(int x) { return x; }",
    }
    failed = [language for language, code in valid.items() if parse_flags([code], language) != [True]]
    if failed:
        return (
            False,
            f"tree-sitter grammars {failed} do not parse valid code; reinstall the pinned tree-sitter packages",
        )
    versions = {name: metadata.version(name) for name in ("tree-sitter", *GRAMMAR_PACKAGES)}
    return True, f"tree-sitter parses {', '.join(valid)} " + str(versions)


def check_hybrid_pass() -> tuple[bool, str]:
    """A forward and backward pass of a small hybrid model (random T5, LoRA + one full layer)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from hybridcl.model.hybrid import HybridModel
    from hybridcl.settings import LayerSettings, LoraSettings

    config = T5Config(
        vocab_size=128,
        d_model=64,
        d_kv=16,
        d_ff=128,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    model = HybridModel(T5ForConditionalGeneration(config), LoraSettings(), LayerSettings())
    model.add_task_lora("check")
    model.add_layer("check")
    model.activate("check", "check")
    model.set_trainable(loras=["check"], layers=["check"])
    ids = torch.randint(2, 128, (2, 8))
    loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss
    loss.backward()
    with_grad = sum(p.grad is not None for p in model.trainable_parameters())
    if not with_grad:
        return False, "backward pass reached no trainable parameter"
    return (
        True,
        f"forward + backward pass of LoRA + full layer (loss {loss.item():.2f}, {with_grad} tensors with gradients)",
    )


def check_device() -> tuple[bool, str]:
    import torch

    if torch.cuda.is_available():
        return True, f"CUDA: {torch.cuda.get_device_name(0)} (bf16: {torch.cuda.is_bf16_supported()})"
    if torch.backends.mps.is_available():
        return True, "Apple MPS"
    return True, (
        "CPU only (slow for codet5-small: ~13 s per step of 8 on 2 cores); for a GPU install a CUDA torch, see README"
    )


CHECKS = {
    "imports": check_imports,
    "wordnet": check_wordnet,
    "tree-sitter": check_grammars,
    "hybrid model": check_hybrid_pass,
    "device": check_device,
}


def config_checks(config: str, overrides: list[str]) -> dict[str, Check]:
    """The checks of one config: its model and data resolve as the run resolves them, and its plan.
    A config that does not build raises its ConfigError."""
    from hybridcl.config import load_config
    from hybridcl.model.base import resolve_model
    from hybridcl.plan import plan_run
    from hybridcl.sources import describe, resolve_data_sources

    cfg = load_config(config, overrides)
    return {
        "config": lambda: (True, f"{config}: {', '.join(cfg.strategies)}; {cfg.seeds} seed(s)"),
        "model": lambda: (True, describe(resolve_model(cfg.model).as_record())),
        "data": lambda: (True, "; ".join(describe(s.as_record()) for s in resolve_data_sources(cfg).values())),
        "plan": lambda: (True, plan_run(cfg).describe()),
    }


def run_checks(config: str | None = None, overrides: list[str] = ()) -> int:
    """Print one line per check; 0 when every check passes, else 2."""
    failed = sum(not _report(name, check) for name, check in CHECKS.items())
    if config is not None:
        try:
            checks = config_checks(config, list(overrides))
        except Exception as error:
            message = _first_line(error)
            checks = {"config": lambda: (False, message)}
        failed += sum(not _report(name, check) for name, check in checks.items())
    print("ready" if not failed else f"not ready: {failed} problem(s); fix the FAIL lines above")
    return 2 if failed else 0


def _report(name: str, check: Check) -> bool:
    try:
        ok, message = check()
    except Exception as error:  # a doctor reports every failure, it does not stop at the first
        ok, message = False, _first_line(error)
    print(f"[{'ok' if ok else 'FAIL'}] {name}: {message}")
    return ok


def _first_line(error: Exception) -> str:
    """A user error's own words; anything else with its type."""
    from hybridcl.errors import UserError

    text = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
    return "; ".join(line.strip() for line in text.splitlines() if line.strip()) or type(error).__name__
