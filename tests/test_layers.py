"""The layout is the architecture: the layers written once in pyproject.toml
([tool.importlinter]), checked here with import-linter (imports inside functions and under
TYPE_CHECKING count), and no private name (``_x``) imported from another module."""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
LINT = ("import sys; from importlinter.cli import lint_imports_command; "
        "sys.argv[0] = 'lint-imports'; sys.exit(lint_imports_command())")

needs_linter = pytest.mark.skipif(
    importlib.util.find_spec("importlinter") is None and not os.environ.get("CI"),
    reason="import-linter not installed (pip install -e '.[test]')")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the checkout (or a copy of it) at ``root``, without a cache."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", LINT, "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def copy_of_package(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    shutil.copytree(ROOT / "pbx_bridge", root / "pbx_bridge",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


@needs_linter
def test_the_layers_are_kept():
    r = lint_imports(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 kept, 0 broken" in r.stdout


@needs_linter
@pytest.mark.parametrize("module,planted,broken", [
    # a door reaching up into a feature, lazily inside a function
    ("asterisk/ami.py", "def _planted() -> None:\n    from ..status.report import worst\n",
     "pbx_bridge.asterisk.ami -> pbx_bridge.status.report"),
    # a feature reaching up into a command, only for the type checker
    ("generate/blocks.py", "TYPE_CHECKING = False\nif TYPE_CHECKING:\n"
     "    from ..commands.common import Context\n",
     "pbx_bridge.generate.blocks -> pbx_bridge.commands.common"),
    # a leaf importing a feature: the circle that settings -> commands.common once made
    ("settings.py", "def _planted() -> None:\n    from .commands.common import context\n",
     "pbx_bridge.settings -> pbx_bridge.commands.common"),
])
def test_an_upward_import_breaks_the_contract(tmp_path, module, planted, broken):
    root = copy_of_package(tmp_path)
    target = root / "pbx_bridge" / module
    target.write_text(target.read_text() + "\n\n" + planted)
    r = lint_imports(root)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "each layer imports only the layers below it BROKEN" in r.stdout
    assert broken in r.stdout


@needs_linter
def test_a_module_without_a_layer_is_refused(tmp_path):
    root = copy_of_package(tmp_path)
    (root / "pbx_bridge" / "newthing.py").write_text("from .commands import common\n")
    r = lint_imports(root)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "must be declared as a layer" in " ".join(r.stdout.split())
    assert "pbx_bridge.newthing" in r.stdout


@needs_linter
def test_a_command_importing_another_is_refused(tmp_path):
    root = copy_of_package(tmp_path)
    target = root / "pbx_bridge" / "commands" / "status.py"
    target.write_text(target.read_text() + "\n\ndef _planted() -> None:\n"
                      "    from .trunk import desired\n")
    r = lint_imports(root)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "pbx_bridge.commands.status -> pbx_bridge.commands.trunk" in r.stdout


def test_modules_are_imported_by_name_only_where_the_contract_expects():
    """import-linter cannot see ``importlib.import_module("...")``: the one such import is
    cli.py's, of the command modules named in commands.MODULES (a layer below it)."""
    from pbx_bridge.commands import MODULES
    by_name = []
    for path in sorted((ROOT / "pbx_bridge").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and (
                    getattr(node.func, "attr", None) == "import_module" or
                    getattr(node.func, "id", None) in ("import_module", "__import__")):
                by_name.append(str(path.relative_to(ROOT)))
    assert by_name == ["pbx_bridge/cli.py"]
    assert all(m.startswith("pbx_bridge.commands.") for m in MODULES.values())


def private_imports(package: Path) -> list[str]:
    """Every ``from X import _name`` (and ``import X._name``) of one of our modules from
    another, as 'file:line name'."""
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent)
        parts = list(rel.with_suffix("").parts)
        package_parts = parts if parts[-1] == "__init__" else parts[:-1]
        package_parts = [p for p in package_parts if p != "__init__"]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package_parts[:len(package_parts) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                if module.split(".")[0] != package.name:
                    continue
                names = [module + "." + a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.split(".")[0] == package.name]
            else:
                continue
            for name in names:
                if any(p.startswith("_") and not p.startswith("__") for p in name.split(".")):
                    found.append(f"{rel}:{node.lineno} {name}")
    return found


def test_no_private_name_is_imported_from_another_module():
    assert private_imports(ROOT / "pbx_bridge") == []


def test_a_private_import_is_found(tmp_path):
    root = copy_of_package(tmp_path)
    target = root / "pbx_bridge" / "commands" / "generate.py"
    target.write_text(target.read_text() + "\n\ndef _planted() -> None:\n"
                      "    from ..generate.transaction import _changes\n")
    found = private_imports(root / "pbx_bridge")
    assert len(found) == 1 and "pbx_bridge.generate.transaction._changes" in found[0], found
