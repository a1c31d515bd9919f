"""The type checker that `make test` runs sees what it is meant to see.

`make test` runs mypy over proxy/ with ``[tool.mypy]`` of pyproject.toml. This test runs the
same mypy on a copy of the tree with faults added, and shows that it reports a misuse of a
setting (``Settings`` is typed field by field, not ``Any``), a misspelt setting, and an
unannotated function, in the sans-I/O core and outside it alike (strict everywhere)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MYPY = str(Path(sys.executable).parent / "mypy")

FAULTS = {
    "proxy/cli/launcher.py": (
        "def _port_text(settings: Settings) -> str:\n"
        "    return settings.port\n"
        "def _misspelt(settings: Settings) -> float:\n"
        "    return settings.idle_timout\n"
    ),
    "proxy/stream/machine.py": "def _untyped_in_the_core(x):\n    return x\n",
    "proxy/cli/doctor.py": "def _untyped_outside(x):\n    return x\n",
}


def test_mypy_reports_a_settings_misuse_and_an_untyped_function_anywhere(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "proxy", tree / "proxy", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    lines = {}
    for module, text in FAULTS.items():
        path = tree / module
        before = path.read_text()
        lines[module] = before.count("\n") + 2  # the first added line
        path.write_text(before + "\n" + text)
    result = subprocess.run([MYPY], cwd=tree, capture_output=True, text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    launcher = lines["proxy/cli/launcher.py"]
    assert (
        f'proxy/cli/launcher.py:{launcher + 1}: error: Incompatible return value type (got "int", expected "str")'
        in out
    ), out
    assert f'proxy/cli/launcher.py:{launcher + 3}: error: "Settings" has no attribute "idle_timout"' in out, out
    machine = lines["proxy/stream/machine.py"]
    assert f"proxy/stream/machine.py:{machine}: error: Function is missing a type annotation" in out, out
    doctor = lines["proxy/cli/doctor.py"]
    assert f"proxy/cli/doctor.py:{doctor}: error: Function is missing a type annotation" in out, out
