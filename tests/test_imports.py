"""The house has no import loops, every module sits in a layer of docs/design.md section 5 and imports
nothing above it, and no module outgrows one purpose (600 lines)."""

import re
from pathlib import Path

import pytest

from import_graph import SOURCE, cycles, import_graph, module_files

DESIGN = Path(__file__).parents[1] / "docs" / "design.md"
MAX_LINES = 600


def documented_layers(text: str) -> dict[str, int]:
    """`module` or `package.*` -> its layer, from the table of the design's section 5."""
    section = text.split("## 5. Layers of the code", 1)[1].split("\n## ", 1)[0]
    layers = {}
    for number, modules in re.findall(r"^\| (\d+) \|[^|]*\| (.*) \|$", section, re.M):
        for name in re.findall(r"`([\w.*]+)`", modules):
            layers[name] = int(number)
    return layers


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    name = module.removeprefix("hybridcl.") if module != "hybridcl" else "hybridcl"
    if name in layers:
        return layers[name]
    parts = name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:end]) + ".*" in layers:
            return layers[".".join(parts[:end]) + ".*"]
    return None


def test_the_package_has_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in found)


def test_the_cycle_finder_finds_a_loop_and_names_it():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]


def test_imports_inside_functions_and_for_type_checking_count(tmp_path):
    package = tmp_path / "hybridcl"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from hybridcl.high import g\n")
    (package / "high.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hybridcl import low\nfrom .sub import leaf\n"
    )
    (package / "sub" / "leaf.py").write_text("from .. import low\n")
    graph = import_graph(package)
    assert graph["hybridcl.low"] == {"hybridcl.high"}
    assert graph["hybridcl.high"] == {"hybridcl.low", "hybridcl.sub.leaf"}
    assert graph["hybridcl.sub.leaf"] == {"hybridcl.low"}
    assert cycles(graph)


def test_every_module_has_a_layer_and_imports_nothing_above_it():
    layers = documented_layers(DESIGN.read_text())
    graph = import_graph()
    unplaced = sorted(module for module in graph if layer_of(module, layers) is None)
    assert not unplaced, f"modules docs/design.md section 5 does not place: {unplaced}"
    upward = [
        f"{module} (layer {layer_of(module, layers)}) imports {target} (layer {layer_of(target, layers)})"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if layer_of(target, layers) > layer_of(module, layers)
    ]
    assert not upward, "imports that go up a layer: " + "; ".join(upward)


def test_the_layer_table_is_read_as_written():
    layers = documented_layers(DESIGN.read_text())
    assert layers["cli"] > layers["continual"] > layers["report"] > layers["config"] > layers["strategies.*"]
    assert layers["strategies.*"] > layers["model.*"] > layers["settings"]
    assert layer_of("hybridcl.model.hybrid", layers) == layers["model.*"]


@pytest.mark.parametrize("path", sorted(module_files().values()), ids=lambda path: str(path.relative_to(SOURCE)))
def test_no_module_is_over_600_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, (
        f"{path.relative_to(SOURCE)} has {lines} lines (at most {MAX_LINES}: split it by concern)"
    )
