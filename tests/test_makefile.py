"""The Makefile as a newcomer meets it: a too-old Python is refused before pip runs, a
.venv made by one is rebuilt, and CHROMIUM from the environment wins. Stand-in
interpreters (shell scripts around this Python) play the other Pythons; the Makefile is
the real one, run by make in a copy of the checkout's top level."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")


def stand_in(path: Path, version: tuple[int, int], log: Path) -> Path:
    """A "python" that reports ``version`` to ``-c`` code, records each call in ``log``,
    and makes a .venv whose own python is a 3.12 stand-in that records pip's calls."""
    real = sys.executable
    path.write_text(f"""#!/bin/sh
echo "$0 $*" >> {log}
if [ "$1" = "-c" ]; then
  code="$2"; shift 2
  exec {real} -c "import sys; sys.version_info = ({version[0]}, {version[1]}, 0, 'final', 0); sys.executable = '$0'
$code" "$@"
fi
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin" && cp "{path.parent / 'py312'}" "$3/bin/python" && exit 0
fi
exit 0
""")
    path.chmod(0o755)
    return path


@pytest.fixture
def checkout(tmp_path: Path) -> tuple[Path, Path]:
    if MAKE is None:
        pytest.fail("make is needed (make test runs the suite)")
    work = tmp_path / "checkout"
    work.mkdir()
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        shutil.copy(ROOT / name, work / name)
    log = tmp_path / "calls.log"
    log.touch()
    stand_in(tmp_path / "py312", (3, 12), log)
    stand_in(tmp_path / "py310", (3, 10), log)
    return work, log


def make(work: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([MAKE, "-s", *args], cwd=work, capture_output=True, text=True, timeout=60,
                          env=env or dict(os.environ), stdin=subprocess.DEVNULL)


def test_a_too_old_python_is_named_before_pip_runs(checkout, tmp_path):
    work, log = checkout
    result = make(work, "install", f"PYTHON={tmp_path / 'py310'}")
    assert result.returncode != 0
    assert f"needs Python 3.11+, found 3.10 ({tmp_path / 'py310'}); run make with PYTHON=python3.11 (or newer)" \
        in result.stderr
    assert not (work / ".venv").exists()  # no venv made, no pip run
    assert "pip" not in log.read_text()


def test_a_venv_made_by_a_too_old_python_is_rebuilt(checkout, tmp_path):
    work, log = checkout
    old = work / ".venv" / "bin"
    old.mkdir(parents=True)
    shutil.copy(tmp_path / "py310", old / "python")
    (work / ".venv" / "made-by-3.10").touch()
    result = make(work, "install", f"PYTHON={tmp_path / 'py312'}")
    assert result.returncode == 0, result.stderr
    assert ".venv was made by a Python older than 3.11 (or its Python is gone): rebuilding it" in result.stdout
    assert not (work / ".venv" / "made-by-3.10").exists()
    calls = log.read_text().splitlines()
    venv = next(i for i, call in enumerate(calls) if " -m venv .venv" in call)
    pips = [i for i, call in enumerate(calls) if "-m pip install" in call]
    assert pips and all(i > venv for i in pips)  # pip ran in the new venv, after it was made
    assert all(calls[i].startswith(".venv/bin/python ") for i in pips)
    # and the rebuilt one is kept: a second make does nothing
    again = make(work, "install", f"PYTHON={tmp_path / 'py312'}")
    assert (again.returncode, again.stdout) == (0, "")


def test_chromium_from_the_environment_wins(checkout, tmp_path):
    work, _ = checkout
    chromium = tmp_path / "my-chrome"
    chromium.write_text("#!/bin/sh\n")
    env = {**os.environ, "CHROMIUM": str(chromium)}
    result = make(work, "-n", "test", f"PYTHON={tmp_path / 'py312'}", env=env)
    assert result.returncode == 0, result.stderr
    assert "apt-get" not in result.stdout  # nothing to install: the one given exists
    env["CHROMIUM"] = str(tmp_path / "absent-chrome")
    assert "apt-get" in make(work, "-n", "test", f"PYTHON={tmp_path / 'py312'}", env=env).stdout
