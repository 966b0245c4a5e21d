"""hybridcl: continual learning with LoRA adapters + full transformer layers on code models."""

import platform
from importlib import metadata

__version__ = "0.1.0"

VERSIONED_PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "datasets",
    "tokenizers",
    "sacrebleu",
    "nltk",
    "codebleu",
    "tree-sitter",
)


def versions() -> dict:
    """Versions of Python, hybridcl and the packages that shape results, for result files."""
    found = {"hybridcl": __version__, "python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found
