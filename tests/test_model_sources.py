"""Where the base comes from (`resolve_model`) and how the published file set loads: codet5-small's hub
repository ships `pytorch_model.bin` only, read through torch's weights-only unpickler (docs/codet5-small-format.md).

A replica of the published files with a small T5 of codet5-small's vocabulary stands in for the real ones,
placed in a Hugging Face cache so that the hub name itself resolves and loads without a network."""

import dataclasses
import json
import re
import shutil
import threading
import time

import huggingface_hub
import pytest
import torch
from huggingface_hub import HfApi
from safetensors.torch import load_file

from hybridcl.config import load_config
from hybridcl.hf_cache import place_in_cache, repo_folder
from hybridcl.model import base, replica
from hybridcl.model.base import CODET5_SMALL_NAME, ModelError, codet5_small_config, load_base, resolve_model
from hybridcl.settings import ConfigError, ModelConfig

TEXTS = [
    "def add(a, b):\n    return a + b\n",
    "Add two numbers.",
    "function greet(name) {\n  return 'hello ' + name;\n}\n",
    "Greet someone by name.",
] * 10
HUB = ModelConfig(name=CODET5_SMALL_NAME)


def _small_t5():
    """codet5-small's vocabulary and special ids, a few thousand parameters besides the embedding."""
    config = codet5_small_config()
    config.update({"d_model": 16, "d_kv": 4, "d_ff": 32, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 2})
    return config


def _place(folder, cache):
    """`folder` as the cache's snapshot of codet5-small at main (blobs, links, refs/main); returns the snapshot."""
    commit = place_in_cache(folder, cache, CODET5_SMALL_NAME, "model")
    return repo_folder(CODET5_SMALL_NAME, "model", cache) / "snapshots" / commit


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """(the published file set with pytorch_model.bin, the same weights as model.safetensors)."""
    root = tmp_path_factory.mktemp("replicas")
    folders = [
        replica.write_codet5_small_replica(root / form, TEXTS, weights_file=form, architecture=_small_t5(), seed=3)
        for form in ("pytorch_model.bin", "model.safetensors")
    ]
    return tuple(folders)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache that huggingface_hub and load_base use (the constant is read at import)."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def unreachable_hub(monkeypatch):
    """Offline mode unset everywhere; the endpoint is a closed local port, so a connection is refused at once."""
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")


def _outputs(model, tokenizer):
    batch = tokenizer(["def add(a, b):", "Greet someone by name."], padding=True, return_tensors="pt")
    decoder_input_ids = torch.tensor([[0, 1, 5, 9], [0, 1, 7, 2]])
    with torch.no_grad():
        logits = model(**batch, decoder_input_ids=decoder_input_ids).logits
        greedy = model.generate(**batch, max_new_tokens=6, do_sample=False, num_beams=1)
    return logits, greedy


# ------------------------------------------------------------------------------- the published .bin


def test_the_published_bin_loads_by_hub_name_offline_as_its_safetensors_twin(published, hub_cache, offline):
    bin_folder, safetensors_folder = published
    snapshot = _place(bin_folder, hub_cache)

    source = resolve_model(HUB)
    assert (source.kind, source.form, source.revision, source.commit) == (
        "hub",
        "pytorch_model.bin",
        "main",
        snapshot.name,
    )
    assert source.cached and source.download_bytes == 0 and source.fingerprint is None
    assert dict(source.files) == {name: (bin_folder / name).stat().st_size for name in replica.PUBLISHED_FILES}
    assert json.loads(json.dumps(source.as_record())) == source.as_record()
    assert source.identity() == f"{snapshot.name} pytorch_model.bin"

    started = time.perf_counter()
    model, tokenizer = load_base(HUB, source=source)
    print(f"\nload of the .bin replica by hub name: {time.perf_counter() - started:.2f} s")
    twin, twin_tokenizer = load_base(ModelConfig(name=str(safetensors_folder)))

    stored = load_file(safetensors_folder / "model.safetensors")  # the weights are the file's, not a fresh init
    loaded = model.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in stored.items())
    assert model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr()
    assert tokenizer.get_vocab() == twin_tokenizer.get_vocab() and len(tokenizer) == 32100
    (logits, greedy), (twin_logits, twin_greedy) = _outputs(model, tokenizer), _outputs(twin, twin_tokenizer)
    assert torch.equal(logits, twin_logits) and torch.equal(greedy, twin_greedy)
    assert model.name_or_path == tokenizer.name_or_path == CODET5_SMALL_NAME  # as a load by hub id names them
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_a_cached_bin_behind_an_unreachable_hub_loads_without_a_conversion_request(
    published, hub_cache, unreachable_hub, monkeypatch
):
    """Even with DISABLE_SAFETENSORS_CONVERSION unset and offline mode off, transformers' hub branch (the
    safetensors check and the conversion request) is never reached: load_base hands it a local folder."""
    import transformers.modeling_utils as modeling_utils

    def forbidden(*args, **kwargs):
        raise AssertionError("transformers asked the hub about safetensors")

    monkeypatch.delenv("DISABLE_SAFETENSORS_CONVERSION", raising=False)
    monkeypatch.setattr(modeling_utils, "auto_conversion", forbidden)
    monkeypatch.setattr(modeling_utils, "has_file", forbidden)
    snapshot = _place(published[0], hub_cache)

    source = resolve_model(HUB)
    model, _ = load_base(HUB, source=source)
    assert source.commit == snapshot.name and source.form == "pytorch_model.bin"
    assert not any(thread.name == "Thread-auto_conversion" for thread in threading.enumerate())
    assert model.config.d_model == 16


# --------------------------------------------------------------------------- a .bin that would run code


class _RunsCode:
    """Unpickled in full, it creates `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _bin_folder(published, folder):
    folder.mkdir()
    for name in ("config.json", *replica.TOKENIZER_FILES):
        shutil.copy(published[0] / name, folder / name)
    return torch.load(published[0] / "pytorch_model.bin", weights_only=True)


def test_a_bin_whose_pickle_would_run_code_is_refused_before_it_runs(published, tmp_path):
    marker = tmp_path / "code-ran"
    folder = tmp_path / "model"
    state = _bin_folder(published, folder)
    torch.save({**state, "extra": _RunsCode(marker)}, folder / "pytorch_model.bin")

    with pytest.raises(ModelError) as caught:
        load_base(ModelConfig(name=str(folder)))
    message = str(caught.value)
    assert message == (
        f"{folder / 'pytorch_model.bin'}: refused by torch's weights-only unpickler (it would run code: exec); "
        "only plain tensors are read"
    )
    assert not marker.exists()

    torch.load(folder / "pytorch_model.bin", weights_only=False)  # a full unpickle: the file does run code
    assert marker.exists()


def test_a_sharded_bin_names_the_shard_refused(published, tmp_path):
    marker = tmp_path / "code-ran"
    folder = tmp_path / "model"
    state = _bin_folder(published, folder)
    keys = sorted(state)
    first, second = "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"
    torch.save({key: state[key] for key in keys[:3]}, folder / first)
    torch.save({**{key: state[key] for key in keys[3:]}, "extra": _RunsCode(marker)}, folder / second)
    weight_map = {key: first if index < 3 else second for index, key in enumerate(keys)}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))

    source = resolve_model(ModelConfig(name=str(folder)))
    assert source.form == "pytorch_model.bin-sharded"
    assert {"pytorch_model.bin.index.json", first, second} <= {name for name, _ in source.files}
    with pytest.raises(ModelError, match="^" + re.escape(str(folder / second)) + ": refused .*it would run code: exec"):
        load_base(ModelConfig(name=str(folder)), source=source)
    assert not marker.exists()


# ---------------------------------------------------------------------------------- unreachable hub


def test_an_unreachable_hub_without_the_model_cached_fails_in_one_line_within_10_s(hub_cache, unreachable_hub):
    started = time.perf_counter()
    with pytest.raises(ModelError) as caught:
        load_base(HUB)
    elapsed = time.perf_counter() - started
    print(f"\nunreachable hub: ModelError after {elapsed:.3f} s")
    assert elapsed < 10
    message = str(caught.value)
    assert "\n" not in message
    assert "hub http://127.0.0.1:9 unreachable" in message and "not in the local Hugging Face cache" in message
    assert "hybridcl base build" in message


# ------------------------------------------------------------------------------- resolve_model alone


def test_a_directory_is_identified_by_its_content(published, tmp_path):
    folder = shutil.copytree(published[1], tmp_path / "a")
    first = resolve_model(ModelConfig(name=str(folder)))
    assert (first.kind, first.form, first.revision, first.commit) == ("directory", "safetensors", None, None)
    assert first.fingerprint.startswith("sha256:") and len(first.fingerprint) == len("sha256:") + 64
    assert first.cached and first.download_bytes == 0
    assert dict(first.files) == {name: (folder / name).stat().st_size for name in replica.REPLICA_FILES}
    assert first.identity() == f"{first.fingerprint} safetensors"

    assert resolve_model(ModelConfig(name=str(folder))).fingerprint == first.fingerprint
    moved = shutil.copytree(folder, tmp_path / "b")  # the same bytes elsewhere
    assert resolve_model(ModelConfig(name=str(moved))).fingerprint == first.fingerprint

    weights = bytearray((folder / "model.safetensors").read_bytes())
    weights[-1] ^= 1
    (folder / "model.safetensors").write_bytes(bytes(weights))
    changed = resolve_model(ModelConfig(name=str(folder)))
    assert changed.fingerprint != first.fingerprint and changed.files == first.files
    assert changed.identity() != first.identity()


def test_a_commit_revision_is_its_own_commit(published, hub_cache, offline):
    snapshot = _place(published[0], hub_cache)
    (snapshot.parents[1] / "refs" / "main").unlink()  # so the commit cannot come from a ref

    pinned = resolve_model(ModelConfig(name=CODET5_SMALL_NAME, revision=snapshot.name))
    assert pinned.revision == pinned.commit == snapshot.name and pinned.cached
    with pytest.raises(ModelError, match="@ main .*not in the local Hugging Face cache"):
        resolve_model(HUB)
    with pytest.raises(ModelError, match="is a directory"):
        resolve_model(ModelConfig(name=str(published[0]), revision=snapshot.name))
    with pytest.raises(ConfigError, match="model.revision"):
        load_config(None, ["model.revision=main tag"])


def test_random_init_resolves_to_nothing_to_read(offline):
    source = resolve_model(ModelConfig(name=CODET5_SMALL_NAME, random_init=True))
    assert (source.kind, source.form, source.commit, source.fingerprint, source.files) == (
        "random_init",
        "random_init",
        None,
        None,
        (),
    )


def test_online_the_api_gives_commit_and_sizes_and_only_the_missing_files_are_downloaded(
    published, hub_cache, monkeypatch
):
    """The hub's API and download are stubbed with the replica's files (no hub here): what is resolved, what is
    left to download, and that the load downloads exactly that, by revision, into the commit's snapshot."""
    bin_folder = published[0]
    commit = "c0de" * 10
    listing = {".gitattributes": 1_000, "README.md": 2_000}
    listing.update({name: (bin_folder / name).stat().st_size for name in replica.PUBLISHED_FILES})
    asked, downloaded = {}, []

    def model_info(self, name, **options):
        asked.update(name=name, **options)
        return huggingface_hub.hf_api.ModelInfo(  # as HfApi builds it from the API's JSON
            id=name, sha=commit, siblings=[{"rfilename": file, "size": size} for file, size in listing.items()]
        )

    def hf_hub_download(name, filename, *, revision, cache_dir):
        downloaded.append((filename, revision))
        target = hub_cache / f"models--{name.replace('/', '--')}" / "snapshots" / commit / filename
        shutil.copy(bin_folder / filename, target)
        return str(target)

    monkeypatch.setattr(base, "hub_unavailable", lambda: None)
    monkeypatch.setattr(HfApi, "model_info", model_info)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    snapshot = hub_cache / "models--Salesforce--codet5-small" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    shutil.copy(bin_folder / "config.json", snapshot / "config.json")  # cached already

    source = resolve_model(HUB)
    assert asked["revision"] == "main" and asked["files_metadata"] is True
    assert (source.commit, source.form, source.cached) == (commit, "pytorch_model.bin", False)
    assert dict(source.files) == {name: listing[name] for name in replica.PUBLISHED_FILES}  # no README
    assert source.download_bytes == sum(listing[name] for name in replica.PUBLISHED_FILES) - listing["config.json"]

    model, tokenizer = load_base(HUB, source=source)
    assert sorted(downloaded) == sorted((name, "main") for name in replica.PUBLISHED_FILES if name != "config.json")
    assert model.config.d_model == 16 and len(tokenizer) == 32100

    moved = dataclasses.replace(source, commit="f" * 40)  # main moves between resolving and downloading
    with pytest.raises(ModelError, match="moved from commit f{40} to c0de"):
        load_base(HUB, source=moved)
