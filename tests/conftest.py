import os
from pathlib import Path

from hybridcl.cli import LIBRARY_ENVIRONMENT

os.environ.update(LIBRARY_ENVIRONMENT)  # as `hybridcl` does, before the libraries are imported

import pytest
import torch

from smoke import build_smoke_assets


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and OpenMP spinning on a busy 2-core box costs seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def smoke_assets(tmp_path_factory):
    """Corpus, micro base and cache folder of configs/smoke.yaml (built once per session)."""
    return build_smoke_assets(tmp_path_factory.mktemp("smoke"))


@pytest.fixture
def offline_cache(monkeypatch, tmp_path) -> Path:
    """An empty Hugging Face cache, with the hub switched off."""
    import huggingface_hub.constants

    folder = tmp_path / "hf"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(folder))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return folder
