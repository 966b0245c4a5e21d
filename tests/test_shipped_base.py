"""The stand-in bases shipped in models/ (T5: stand-in-base; causal: stand-in-causal): stock transformers loads
each, its files are the ones its build record names, and the record's settings are those `hybridcl base build`
uses."""

import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hybridcl.cli import build_parser
from hybridcl.config import load_config
from hybridcl.logs import BUILD_LOG
from hybridcl.model import pretrain

ROOT = Path(__file__).resolve().parents[1]
# arch -> (folder, the offline config that runs on it, stock Auto class, most bytes its model.safetensors may take)
SHIPPED = {
    "t5": (ROOT / "models" / "stand-in-base", "local.yaml", "AutoModelForSeq2SeqLM", 40 * 2**20),
    "causal": (ROOT / "models" / "stand-in-causal", "local-causal.yaml", "AutoModelForCausalLM", 20 * 10**6),
}


@pytest.fixture(params=list(SHIPPED))
def shipped(request) -> tuple[str, Path, dict]:
    """(arch, folder, build record) of a shipped stand-in."""
    arch, folder = request.param, SHIPPED[request.param][0]
    return arch, folder, json.loads((folder / pretrain.BUILD_INFO).read_text())


def test_stock_transformers_loads_it_without_hybridcl(shipped):
    arch, folder, record = shipped
    code = f"""
import json, sys
from transformers import {SHIPPED[arch][2]} as Model, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained({str(folder)!r})
model = Model.from_pretrained({str(folder)!r}, use_safetensors=True)
batch = tokenizer(["Return the sum of a and b."], return_tensors="pt")
generated = model.generate(**batch, max_new_tokens=6, do_sample=False)
print(json.dumps({{"hybridcl": sorted(m for m in sys.modules if m.startswith("hybridcl")),
                  "parameters": sum(p.numel() for p in model.parameters()), "vocab": len(tokenizer),
                  "generated": generated.shape[1], "prompt": batch["input_ids"].shape[1],
                  "ids": tokenizer("a b").input_ids}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["hybridcl"] == []
    assert loaded["parameters"] == record["parameters"] and loaded["vocab"] == record["settings"]["vocab_size"]
    if arch == "causal":  # the output continues the prompt; encoding starts with <s> and leaves the text open
        assert loaded["prompt"] < loaded["generated"] <= loaded["prompt"] + 6 and loaded["ids"][0] == 1
        assert 2 not in loaded["ids"]
    else:  # the output starts with the decoder start token; encoding ends with </s>, as CodeT5's
        assert 1 < loaded["generated"] <= 7 and loaded["ids"][-1] == 2


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_files_are_the_ones_the_build_record_names(shipped):
    arch, folder, record = shipped
    on_disk = {path.name for path in folder.iterdir()} - {pretrain.BUILD_INFO, BUILD_LOG}  # a rebuild's log
    assert on_disk == set(record["files"])
    assert {name: _sha256(folder / name) for name in sorted(on_disk)} == record["files"]
    assert (folder / "model.safetensors").stat().st_size <= SHIPPED[arch][3]


def test_the_record_is_what_base_build_makes(shipped):
    arch, _, record = shipped
    settings = record["settings"]
    args = build_parser().parse_args(shlex.split(record["command"].replace("hybridcl ", "", 1)))
    assert args.arch == arch
    assert pretrain.build_settings(args.size, args.steps, args.seed, args.arch) == settings
    assert pretrain.build_settings(settings["size"], arch=arch) == settings  # the size's defaults rebuild it
    assert record["steps"] == settings["steps"] and len(record["loss_curve"]) > 1
    assert record["input_tokens"] > 0 and record["time_s"]["pretrain"] > 0 and record["corpus"]["fingerprint"]


@pytest.mark.parametrize("arch", list(SHIPPED))
def test_the_offline_config_uses_it(arch):
    folder, config = SHIPPED[arch][:2]
    cfg = load_config(ROOT / "configs" / config)
    assert (ROOT / cfg.model.name).resolve() == folder and cfg.offline.base_arch == arch
