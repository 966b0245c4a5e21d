"""The stand-in base shipped in models/stand-in-base: stock transformers loads it, its files are the ones its
build record names, and the record's settings are those `hybridcl base build` uses."""

import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path

from hybridcl.cli import build_parser
from hybridcl.config import load_config
from hybridcl.logs import BUILD_LOG
from hybridcl.model import pretrain

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "stand-in-base"
RECORD = json.loads((SHIPPED / pretrain.BUILD_INFO).read_text())


def test_stock_transformers_loads_it_without_hybridcl():
    code = f"""
import json, sys
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained({str(SHIPPED)!r})
model = AutoModelForSeq2SeqLM.from_pretrained({str(SHIPPED)!r}, use_safetensors=True)
batch = tokenizer(["Return the sum of a and b."], return_tensors="pt")
generated = model.generate(**batch, max_new_tokens=6, do_sample=False)
print(json.dumps({{"hybridcl": sorted(m for m in sys.modules if m.startswith("hybridcl")),
                  "parameters": sum(p.numel() for p in model.parameters()), "vocab": len(tokenizer),
                  "generated": generated.shape[1], "ids": tokenizer("a b").input_ids}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["hybridcl"] == []
    assert loaded["parameters"] == RECORD["parameters"] and loaded["vocab"] == RECORD["settings"]["vocab_size"]
    assert 1 < loaded["generated"] <= 7 and loaded["ids"][-1] == 2  # encoding ends with </s>, as CodeT5's


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_files_are_the_ones_the_build_record_names():
    on_disk = {path.name for path in SHIPPED.iterdir()} - {pretrain.BUILD_INFO, BUILD_LOG}  # a rebuild's log
    assert on_disk == set(RECORD["files"])
    assert {name: _sha256(SHIPPED / name) for name in sorted(on_disk)} == RECORD["files"]
    assert (SHIPPED / "model.safetensors").stat().st_size <= 40 * 2**20


def test_the_record_is_what_base_build_makes():
    settings = RECORD["settings"]
    args = build_parser().parse_args(shlex.split(RECORD["command"].replace("hybridcl ", "", 1)))
    assert pretrain.build_settings(args.size, args.steps, args.seed) == settings
    assert pretrain.build_settings(settings["size"]) == settings  # the size's defaults rebuild it
    assert RECORD["steps"] == settings["steps"] and len(RECORD["loss_curve"]) > 1
    assert RECORD["input_tokens"] > 0 and RECORD["time_s"]["pretrain"] > 0 and RECORD["corpus"]["fingerprint"]


def test_the_offline_default_uses_it():
    cfg = load_config(ROOT / "configs" / "local.yaml")
    assert (ROOT / cfg.model.name).resolve() == SHIPPED
