"""Which files of a source tree are mined (by extension; not tests, bundles or minified files), and the
package each file belongs to: the unit a corpus is split by."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

EXTENSIONS = {".py": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript"}
TEST_DIRS = {"test", "tests", "testing", "__tests__", "spec"}
BUNDLE_DIRS = {"dist", "build", "umd"}
MAX_JS_BYTES = 1_000_000


@dataclass(frozen=True)
class SourceFile:
    path: Path
    language: str
    repo: str
    rel_path: str  # relative to the package root
    url_path: str  # relative to the source root


@dataclass(frozen=True)
class Source:
    """A tree to mine; `loose_repo` names the package of files directly under `root` (None: the file
    stem); folders named in `skip_dirs` are not entered."""

    root: Path
    loose_repo: str | None = None
    skip_dirs: frozenset[str] = frozenset()


def discover_files(source: Source, language: str, skipped: Counter) -> list[SourceFile]:
    """The source's files of `language`, sorted by path; skipped files are counted by reason."""
    files = []
    npm_names: dict[Path, str | None] = {}
    for directory, dirnames, filenames in os.walk(source.root):
        dirnames[:] = [d for d in dirnames if not (d.startswith(".") or d == "__pycache__" or d in source.skip_dirs)]
        for filename in filenames:
            path = Path(directory, filename)
            if EXTENSIONS.get(path.suffix) != language or path.is_symlink():
                continue
            parts = path.relative_to(source.root).parts
            reason = _path_skip_reason(parts, language, path)
            if reason:
                skipped[reason] += 1
            else:
                repo, depth = package_of(source.root, parts, source.loose_repo, npm_names)
                files.append(SourceFile(path, language, repo, "/".join(parts[depth:]), "/".join(parts)))
    return sorted(files, key=lambda file: file.url_path)


def _path_skip_reason(parts: tuple[str, ...], language: str, path: Path) -> str | None:
    folders = set(parts[:-1])
    if folders & TEST_DIRS:
        return "test_folder"
    if language != "javascript":
        return None
    name = parts[-1]
    if ".min." in name or name.endswith("-min.js"):
        return "minified"
    if folders & BUNDLE_DIRS or "bundle" in name.lower() or path.stat().st_size > MAX_JS_BYTES:
        return "bundle"
    return None


PACKAGE_FOLDERS = {"site-packages", "dist-packages", "node_modules", "nodejs"}  # one package per child folder

Package = tuple[str, int]  # (name, number of leading path parts that lead to the package root)


def package_of(
    root: Path, parts: tuple[str, ...], loose_repo: str | None = None, npm_names: dict[Path, str | None] | None = None
) -> Package:
    """The package of the file `root/parts`, by the first rule that holds, in this order:

    - Python: the top-level import package: from the file's folder up, the last folder in a row with an
      `__init__.py` (named by the folder);
    - the folder right under the innermost site-packages, dist-packages, node_modules or nodejs
      folder (`@scope/name` for scoped npm packages); a file directly inside one is its own module;
    - JavaScript: the nearest folder with a package.json that gives a "name" (that name);
    - a file directly under `root`: `loose_repo` (default: the module name); any other file: its
      folder (the folder's relative path).

    Installed packages come before package.json files because a package may hold package.json files
    that name its subpath entry points (preact's `hooks/` is "preact-hooks"). `npm_names` caches
    package.json names by folder across calls.
    """
    language = EXTENSIONS.get(Path(parts[-1]).suffix)
    if language == "python" and (package := _python_package(root, parts)):
        return package
    if package := _installed_package(root.name, parts):
        return package
    if language == "javascript" and (package := _npm_package(root, parts, {} if npm_names is None else npm_names)):
        return package
    return _folder_package(parts, loose_repo)


def _python_package(root: Path, parts: tuple[str, ...]) -> Package | None:
    depth = len(parts) - 1  # of the file's folder
    while depth >= 0 and root.joinpath(*parts[:depth], "__init__.py").is_file():
        depth -= 1
    if depth == len(parts) - 1:
        return None
    return root.joinpath(*parts[: depth + 1]).name, depth + 1


def _installed_package(root_name: str, parts: tuple[str, ...]) -> Package | None:
    folders = (root_name, *parts[:-1])  # folders[i + 1] is parts[i]
    inside = [i for i, folder in enumerate(folders) if folder in PACKAGE_FOLDERS]
    if not inside:
        return None
    start = inside[-1]  # parts[start] is right under the innermost package folder
    if start == len(parts) - 1:
        return Path(parts[start]).stem, start
    width = 2 if parts[start].startswith("@") and start + 2 < len(parts) else 1
    return "/".join(parts[start : start + width]), start + width


def _npm_package(root: Path, parts: tuple[str, ...], names: dict[Path, str | None]) -> Package | None:
    for depth in range(len(parts) - 1, -1, -1):
        folder = root.joinpath(*parts[:depth])
        if folder not in names:
            names[folder] = _package_json_name(folder / "package.json")
        if names[folder]:
            return names[folder], depth
    return None


def _package_json_name(path: Path) -> str | None:
    """The "name" of a package.json; None when it has none (`{"type": "module"}` markers) or is unreadable."""
    try:
        manifest = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    name = manifest.get("name") if isinstance(manifest, dict) else None
    return name if isinstance(name, str) and name else None


def _folder_package(parts: tuple[str, ...], loose_repo: str | None) -> Package:
    if len(parts) == 1:
        return loose_repo or Path(parts[0]).stem, 0
    return "/".join(parts[:-1]), len(parts) - 1
