"""Write the mutation score of the sans-I/O core into docs/TESTING.md (``make mutate`` runs it).

Reads the verdicts mutmut left in ``mutants/<path>.meta`` (one JSON file per module) and
the accepted equivalent mutants listed in docs/TESTING.md, and rewrites the block between
``<!-- mutation-table:begin -->`` and ``<!-- mutation-table:end -->``: one row per module,
then every surviving mutant by name (``make mutate-show NAME=...`` prints its diff).
Every module of the core gets a row: one whose mutants were never run says "not run".

An accepted equivalent is a line ``- `NAME` — `MUTATED LINE` — why`` in the
"Accepted equivalent mutants" section. It leaves the score's denominator only while that
mutant still mutates that line (read from the trampolined copy in ``mutants/``, the same
``+`` lines ``mutmut show NAME`` prints): when the code moves and the number now names
another mutant, or no longer exists, the entry is listed as stale under the table and the
mutant counts as a survivor again.

    python scripts/mutation_report.py [--min-score 90]

Exit 0 when every module of the core was run and reaches ``--min-score`` and no accepted
equivalent is stale; 1 otherwise (the table is written either way).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "TESTING.md"
CORE = ("proxy/protocol", "proxy/stream")
BEGIN, END = "<!-- mutation-table:begin -->", "<!-- mutation-table:end -->"
ACCEPTED_HEADING = "## Accepted equivalent mutants"
# The mutated line as a code span: `line`, or ``line`` when it holds a backtick itself; a
# mutant that only deletes code names the deleted line as `deleted: line`.
ACCEPTED_LINE = re.compile(
    r"^- `(?P<name>[^`]+)` — (?:`` (?P<spaced>.*?) ``|`(?P<line>[^`]*)`) — (?P<why>.+)$"
)

# mutmut's exit codes (mutmut/stats.py): a failing test run or a timeout is a kill, and so is
# 37, "caught by type check": mypy (strict, part of `make test`) rejects the mutated code,
# so `make test` fails on it (pyproject.toml's type_check_command). It has its own column.
KILLED = {1, 3}
TYPE_CHECKED = {37}
TIMEOUT = {36, -24, 24, 152, 255}
SURVIVED = {0}
NO_TESTS = {5, 33}


def module_name(path: Path) -> str:
    return ".".join(path.with_suffix("").parts)


def load_results(root: Path) -> dict[str, dict[str, int | None]]:
    """``{module: {mutant name: exit code}}`` for every module of the core, sub-packages too.

    A module with a ``.meta`` file but no mutants (an ``__init__`` that only re-exports) is
    left out; a module without a ``.meta`` file (mutmut never reached it) maps to ``{}``.
    """
    results: dict[str, dict[str, int | None]] = {}
    for package in CORE:
        for source in sorted((root / package).rglob("*.py")):  # stream/dialects/ too
            relative = source.relative_to(root)
            meta = root / "mutants" / relative.with_name(relative.name + ".meta")
            if not meta.exists():
                results[module_name(relative)] = {}
                continue
            codes = json.loads(meta.read_text())["exit_code_by_key"]
            if codes:
                results[module_name(relative)] = codes
    return results


def accepted_equivalents(doc: str) -> dict[str, tuple[str, str]]:
    """``{mutant name: (mutated line, why)}`` from the doc's accepted-equivalents section."""
    accepted = {}
    section = doc.partition(ACCEPTED_HEADING)[2].split("\n## ", 1)[0]
    for line in section.splitlines():
        match = ACCEPTED_LINE.match(line.strip())
        if match:
            line = match["line"] if match["line"] is not None else match["spaced"]
            accepted[match["name"]] = (line, match["why"])
    return accepted


class MutatedSource:
    """The mutated lines of a mutant, read from the trampolined copy of its module in ``mutants/``.

    mutmut writes every mutant of a function next to an unmutated copy
    (``x_name__mutmut_orig``, ``x_name__mutmut_3``; methods as ``xǁClassǁname__...``). The
    ``+`` lines of a diff between the two are what ``mutmut show NAME`` prints; reading them
    here parses each module once instead of starting mutmut once per accepted equivalent.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._functions: dict[str, dict[str, str]] = {}

    def _module(self, module: str) -> dict[str, str]:
        if module not in self._functions:
            path = self.root / "mutants" / Path(*module.split(".")).with_suffix(".py")
            source = path.read_text() if path.exists() else ""
            lines = source.splitlines()
            functions: dict[str, str] = {}
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.FunctionDef) and "__mutmut_" in node.name and node.end_lineno:
                    functions[node.name] = "\n".join(lines[node.lineno - 1:node.end_lineno])
            self._functions[module] = functions
        return self._functions[module]

    def lines(self, module: str, name: str) -> list[str]:
        """The ``+`` lines of mutant ``name`` (``module.function__mutmut_N``), stripped."""
        mutant = name.removeprefix(module + ".")
        functions = self._module(module)
        original = functions.get(mutant.rpartition("__mutmut_")[0] + "__mutmut_orig")
        mutated = functions.get(mutant)
        if original is None or mutated is None:
            return []
        # Both copies named alike, as mutmut show does, so the def line is no difference.
        mutated = mutated.replace(mutant, mutant.rpartition("__mutmut_")[0] + "__mutmut_orig", 1)
        diff = difflib.unified_diff(original.splitlines(), mutated.splitlines(), lineterm="")
        changed = [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]
        added = [line[1:].strip() for line in changed if line.startswith("+")]
        return added or [f"deleted: {line[1:].strip()}" for line in changed]


def table(
    results: dict[str, dict[str, int | None]], equivalent: set[str], stale: list[str], min_score: float
) -> tuple[str, bool]:
    rows = ["| module | mutants | killed | mypy | timeout | survived | no tests | not run | equivalent | score |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    survivors: list[str] = []
    ok = True
    for module, codes in sorted(results.items()):
        counts = dict.fromkeys(("killed", "mypy", "timeout", "survived", "no tests", "not run", "equivalent", "other"), 0)
        for name, code in codes.items():
            if name in equivalent and code in SURVIVED | NO_TESTS:
                counts["equivalent"] += 1
            elif code in KILLED:
                counts["killed"] += 1
            elif code in TYPE_CHECKED:
                counts["mypy"] += 1
            elif code in TIMEOUT:
                counts["timeout"] += 1
            elif code is None:
                counts["not run"] += 1
            else:
                counts["survived" if code in SURVIVED else "no tests" if code in NO_TESTS else "other"] += 1
                survivors.append(name)
        if not codes:  # no mutants generated: mutmut never reached this module
            ok = False
            rows.append(f"| `{module}` | ? | | | | | | | | not run |")
            continue
        judged = len(codes) - counts["equivalent"] - counts["not run"]
        score = 100.0 * (counts["killed"] + counts["mypy"] + counts["timeout"]) / judged if judged else 0.0
        if counts["not run"] or score < min_score:
            ok = False
        shown = ("not run" if not judged else f"**{score:.1f} %**" if not counts["not run"]
                 else f"{score:.1f} % of those run")
        rows.append(f"| `{module}` | {len(codes)} | {counts['killed']} | {counts['mypy']} | {counts['timeout']} | "
                    f"{counts['survived'] + counts['other']} | {counts['no tests']} | {counts['not run']} | "
                    f"{counts['equivalent']} | {shown} |")
    text = "\n".join(rows)
    if survivors:
        text += "\n\nSurviving mutants (`make mutate-show NAME=...` prints the diff):\n\n"
        text += "\n".join(f"- `{name}`" for name in sorted(survivors))
    else:
        text += "\n\nNo surviving mutants."
    if stale:
        ok = False
        text += ("\n\nStale accepted equivalents (the name no longer mutates the line given, or a "
                 "test or mypy kills it now; until the entry is checked and fixed, the mutant "
                 "counts as what its verdict says):\n\n")
        text += "\n".join(f"- `{name}`" for name in sorted(stale))
    return text, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutmut", help="ignored (kept for old command lines): mutants/ is read directly")
    parser.add_argument("--min-score", type=float, default=90.0)
    args = parser.parse_args()

    results = load_results(REPO)
    if not any(results.values()):
        print("no mutation results under mutants/: run `make mutate` first", file=sys.stderr)
        return 1
    doc = DOC.read_text()
    accepted = accepted_equivalents(doc)
    module_of = {name: module for module, codes in results.items() for name in codes}
    source = MutatedSource(REPO)
    equivalent, stale = set(), []
    for name, (line, _why) in accepted.items():
        module = module_of.get(name) or next(
            (m for m in results if name.startswith(m + ".") and results[m]), None)
        if module is None:
            continue  # a module without results: nothing to check against
        if name in module_of and line.strip() in source.lines(module, name):
            if results[module][name] in KILLED | TYPE_CHECKED | TIMEOUT:
                # A test (or mypy) now tells it apart: not equivalent after all.
                stale.append(name)
                print(f"accepted equivalent {name} is killed now; remove its entry from docs/TESTING.md",
                      file=sys.stderr)
            else:
                equivalent.add(name)
        else:
            stale.append(name)
            print(f"stale equivalent: {name} no longer mutates `{line}`; check it and update docs/TESTING.md",
                  file=sys.stderr)

    text, ok = table(results, equivalent, stale, args.min_score)
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    print(text)
    print(f"\nwritten to {DOC.relative_to(REPO)}", file=sys.stderr)
    if not ok:
        print(f"a module is below {args.min_score:.0f} %, has mutants not run, or an accepted equivalent is stale",
              file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
