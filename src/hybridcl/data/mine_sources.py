"""The trees a corpus build mines: the paths given, or by default the running interpreter's standard
library and site-packages (Python) and the npm packages pinned in `resources/js_packages.txt`, installed
into the cache dir (JavaScript)."""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sysconfig
from importlib import resources
from pathlib import Path

from hybridcl.data.schema import DataError
from hybridcl.data.source_trees import Source

NPM_PACKAGE_LIST = "js_packages.txt"
NPM_BEFORE = "2026-11-24T00:00:00Z"  # dependencies resolve as on this date (move it when the list changes)

logger = logging.getLogger(__name__)


def given_sources(paths: list[str | Path]) -> list[Source]:
    """The trees at `paths` (`--source`); files directly under one belong to a package named by its folder."""
    sources = []
    for path in map(Path, paths):
        if not path.exists():
            raise DataError(f"source path does not exist: {path}")
        if not path.is_dir():
            raise DataError(f"source path is not a directory (give the tree that holds it): {path}")
        root = path.resolve()
        sources.append(Source(root, root.name))
    return sources


def default_sources(language: str, cache_dir: str | Path) -> list[Source]:
    """The trees mined for `language` when no path is given (npm packages are installed into `cache_dir`)."""
    if language == "python":
        return default_python_sources()
    return [Source(install_npm_packages(cache_dir, npm_package_list()))]


def default_python_sources() -> list[Source]:
    """The running interpreter's standard library (without its site-packages) and site-packages."""
    paths = sysconfig.get_paths()
    stdlib = Source(Path(paths["stdlib"]), skip_dirs=frozenset({"site-packages", "dist-packages"}))
    site = [Source(root) for root in dict.fromkeys(Path(paths[key]) for key in ("purelib", "platlib"))]
    return [source for source in [stdlib, *site] if source.root.is_dir()]


def npm_package_list() -> list[str]:
    text = resources.files("hybridcl").joinpath("resources", NPM_PACKAGE_LIST).read_text(encoding="utf-8")
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def install_npm_packages(cache_dir: str | Path, packages: list[str]) -> Path:
    """Install `packages` under `cache_dir/npm`, skipped when the same list is already there."""
    cache_dir = Path(cache_dir)
    prefix = cache_dir / "npm"
    stamp = prefix / ".hybridcl-packages.sha256"
    digest = hashlib.sha256("\n".join([NPM_BEFORE, *packages]).encode()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest:
        return prefix
    shutil.rmtree(prefix, ignore_errors=True)
    prefix.mkdir(parents=True)
    logger.info(f"installing {len(packages)} npm packages and their dependencies into {prefix} ...")
    command = [
        "npm",
        "install",
        "--prefix",
        str(prefix),
        "--cache",
        str(cache_dir / "npm-cache"),
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",
        "--no-package-lock",
        "--legacy-peer-deps",
        f"--before={NPM_BEFORE}",
        "--loglevel=error",
        *packages,
    ]
    hint = "pass --source PATH to mine local JavaScript trees instead"
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError:
        raise DataError(f"npm is not installed; it fetches the default JavaScript sources; {hint}") from None
    if result.returncode != 0:
        raise DataError(f"npm install failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}\n{hint}")
    stamp.write_text(digest)
    return prefix
