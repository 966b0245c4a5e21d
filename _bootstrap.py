"""Lets the seed's entry points run with any `python`: where hybridcl is not importable, the script
runs again with the project's `.venv` (made by `make install`), or says how to make it."""

import os
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent / ".venv"


def ensure_hybridcl() -> None:
    try:
        import hybridcl  # noqa: F401
    except ModuleNotFoundError:
        python = VENV / "bin" / "python"
        if python.is_file() and Path(sys.prefix).resolve() != VENV:
            os.execv(python, [str(python), *sys.argv])
        sys.exit(
            f"{Path(sys.argv[0]).name}: hybridcl is not installed for {sys.executable}; run `make install` "
            "(it installs everything into .venv), then run this again"
        )
