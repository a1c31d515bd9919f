"""scripts/mutation_report.py: the score table `make mutate` writes into docs/TESTING.md.

The report decides what "≥ 90 % per module" means, so it is tested on a small tree laid out
as mutmut lays out its copy: a module, its trampolined copy in ``mutants/`` and the verdicts
in ``<module>.py.meta``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "mutation_report.py"

MUTATED = '''\
def x_size__mutmut_orig(text):
    return len(text) + 1


def x_size__mutmut_1(text):
    return len(text) - 1


def x_size__mutmut_2(text):
    return len(None) + 1


def x_size__mutmut_3(text):
    return len(text) + 2


def x_size__mutmut_4(text):
    return len(text) + 0


def x_size__mutmut_5(text):
    return len(text) * 1
'''

DOC = """# Testing

<!-- mutation-table:begin -->
old table
<!-- mutation-table:end -->

## Accepted equivalent mutants

{accepted}

## Next section
"""


@pytest.fixture
def report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_report", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_tree(root: Path, codes: dict[str, int | None], accepted: str) -> Path:
    (root / "proxy" / "protocol").mkdir(parents=True)
    (root / "proxy" / "stream").mkdir(parents=True)
    (root / "proxy" / "protocol" / "size.py").write_text("def size(text):\n    return len(text) + 1\n")
    copy = root / "mutants" / "proxy" / "protocol"
    copy.mkdir(parents=True)
    (copy / "size.py").write_text(MUTATED)
    meta = {"exit_code_by_key": {f"proxy.protocol.size.x_size__mutmut_{n}": code for n, code in codes.items()}}
    (copy / "size.py.meta").write_text(json.dumps(meta))
    doc = root / "TESTING.md"
    doc.write_text(DOC.format(accepted=accepted))
    return doc


def run(report: ModuleType, root: Path, doc: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setattr(report, "REPO", root)
    monkeypatch.setattr(report, "DOC", doc)
    monkeypatch.setattr(sys, "argv", ["mutation_report.py"])
    code = report.main()
    return code, doc.read_text()


def row(text: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith("| `proxy.protocol.size`"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_a_mutant_mypy_rejects_counts_as_killed_in_a_column_of_its_own(
    report: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1 killed by a test, 2 rejected by mypy (code 37), 3 an accepted equivalent, 4 a timeout,
    # 5 a survivor: 3 of 4 judged mutants are killed.
    accepted = "- `proxy.protocol.size.x_size__mutmut_3` — `return len(text) + 2` — why"
    doc = make_tree(tmp_path, {"1": 1, "2": 37, "3": 0, "4": 36, "5": 0}, accepted)
    code, text = run(report, tmp_path, doc, monkeypatch)
    assert row(text) == ["`proxy.protocol.size`", "5", "1", "1", "1", "1", "0", "0", "1", "**75.0 %**"]
    assert "- `proxy.protocol.size.x_size__mutmut_5`" in text
    assert "old table" not in text and "## Next section" in text
    assert code == 1  # under 90 %


def test_every_mutant_killed_or_accepted_passes(
    report: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    accepted = "- `proxy.protocol.size.x_size__mutmut_5` — `return len(text) * 1` — times one is the same"
    doc = make_tree(tmp_path, {"1": 1, "2": 37, "5": 0}, accepted)
    code, text = run(report, tmp_path, doc, monkeypatch)
    assert row(text)[-1] == "**100.0 %**"
    assert "No surviving mutants." in text
    assert code == 0


def test_an_accepted_equivalent_that_is_killed_now_is_stale(
    report: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # mypy rejects mutant 2 now: the entry saying nobody can tell it apart is wrong.
    accepted = "- `proxy.protocol.size.x_size__mutmut_2` — `return len(None) + 1` — why"
    doc = make_tree(tmp_path, {"1": 1, "2": 37}, accepted)
    code, text = run(report, tmp_path, doc, monkeypatch)
    stale = text.partition("Stale accepted equivalents")[2]
    assert "- `proxy.protocol.size.x_size__mutmut_2`" in stale
    assert row(text)[-1] == "**100.0 %**"  # still counted as what its verdict says: killed
    assert code == 1


def test_an_accepted_line_that_no_longer_matches_the_mutant_is_stale(
    report: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The code moved: mutant 4 now mutates another line than the entry names.
    accepted = "- `proxy.protocol.size.x_size__mutmut_4` — `return len(text) * 1` — why"
    doc = make_tree(tmp_path, {"1": 1, "4": 0}, accepted)
    code, text = run(report, tmp_path, doc, monkeypatch)
    assert "- `proxy.protocol.size.x_size__mutmut_4`" in text.partition("Stale accepted equivalents")[2]
    assert row(text)[5] == "1"  # survived
    assert code == 1


def test_mutants_not_run_fail_the_report(
    report: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = make_tree(tmp_path, {"1": 1, "2": None}, "")
    code, text = run(report, tmp_path, doc, monkeypatch)
    assert row(text)[-1] == "100.0 % of those run"
    assert row(text)[7] == "1"
    assert code == 1
