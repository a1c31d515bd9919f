"""The layering rules of docs/ARCHITECTURE.md are enforced, not just written down.

`make test` runs ``lint-imports`` over the contracts in pyproject.toml before pytest. These
tests show the contracts hold on the tree as it is, and that each kind of rule breaks when an
import that crosses it is added to a copy of the tree.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = str(Path(sys.executable).parent / "lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [LINT, "--no-cache", "--no-logo"], cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )


def copy_of_tree(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "proxy", tmp_path / "proxy", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_contract():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # a lower layer reaching up
        ("proxy/ollama/admin.py", "from ..server import relay", "layers:"),
        # two siblings of one layer reaching across
        ("proxy/live/broadcast.py", "from ..ollama import chat", "layers:"),
        # the pure core importing an I/O library, even lazily inside a function
        ("proxy/protocol/history.py", "def _sneaky():\n    import trio", "sans-I/O core:"),
        # the pure core importing the settings
        ("proxy/stream/machine.py", "from .. import config", "sans-I/O core:"),
        # the server importing the command line
        ("proxy/server/runner.py", "from ..cli import doctor", "nothing imports cli"),
    ],
)
def test_an_import_across_a_rule_breaks_its_contract(tmp_path, module, line, contract):
    tree = copy_of_tree(tmp_path)
    target = tree / module
    target.write_text(target.read_text() + "\n" + line + "\n")
    result = lint(tree)
    assert result.returncode != 0, result.stdout
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(contract in row for row in broken), result.stdout
