"""The packages are layers, and imports only run down.

``dsp`` ← ``device`` ← ``firmware_sim`` ← ``recordings`` and ``bus`` (peers: neither imports the
other) ← ``server`` ← ``stridecue``. Every import of every module is read with ``ast``, at the
top of the module or inside a function, so a lazy import counts as much as any other.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYER = {
    "dsp": 0,
    "device": 1,
    "firmware_sim": 2,
    "recordings": 3,
    "bus": 3,
    "server": 4,
    "stridecue": 5,
}


def imports(source: str) -> Iterator[tuple[int, str]]:
    """(line, module) of every absolute import in ``source``, however deep in the module."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            yield node.lineno, node.module


def imports_of(package: str) -> Iterator[tuple[str, str]]:
    """(``path:line``, module) of every import in every module of ``package``."""
    for path in sorted((REPO / package).rglob("*.py")):
        for line, module in imports(path.read_text()):
            yield f"{path.relative_to(REPO)}:{line}", module


def test_every_package_has_a_layer() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert set(pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]) == set(LAYER)
    assert set(pyproject["tool"]["mypy"]["packages"]) == set(LAYER)


def test_imports_are_found_inside_functions_too() -> None:
    source = "import os\ndef run():\n    from stridecue.cli import app\n    from . import cli\n"
    assert list(imports(source)) == [(1, "os"), (3, "stridecue.cli")]


@pytest.mark.parametrize("package", list(LAYER))
def test_a_package_imports_no_package_of_its_layer_or_above(package: str) -> None:
    upward = [
        f"{where} imports {module}"
        for where, module in imports_of(package)
        if (top := module.partition(".")[0]) != package and LAYER.get(top, -1) >= LAYER[package]
    ]
    assert not upward, "\n".join(upward)


def test_the_signal_core_needs_only_numpy_and_scipy() -> None:
    allowed = sys.stdlib_module_names | {"dsp", "numpy", "scipy"}
    others = [
        f"{where} imports {module}"
        for where, module in imports_of("dsp")
        if module.partition(".")[0] not in allowed
    ]
    assert not others, "\n".join(others)
