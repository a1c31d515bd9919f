"""Write the mutation score of the sans-I/O core into docs/TESTING.md (``make mutate`` runs it).

Reads the verdicts mutmut left in ``mutants/<path>.meta`` (one JSON file per module) and
the accepted equivalent mutants listed in docs/TESTING.md, and rewrites the block between
``<!-- mutation-table:begin -->`` and ``<!-- mutation-table:end -->``: one row per module,
then every surviving mutant by name (``mutants/.venv/bin/mutmut show NAME`` prints its diff).

An accepted equivalent is a line ``- `NAME` — `MUTATED LINE` — why`` in the
"Accepted equivalent mutants" section. It leaves the score's denominator only while mutmut
still shows that mutated line for that name: when the code moves and the number now names
another mutant, the entry is reported as stale and the mutant counts as a survivor again.

    python scripts/mutation_report.py [--mutmut PATH] [--min-score 90]

Exit 0 when every module that has results reaches ``--min-score``, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "TESTING.md"
CORE = ("proxy/protocol", "proxy/stream")
BEGIN, END = "<!-- mutation-table:begin -->", "<!-- mutation-table:end -->"
ACCEPTED_HEADING = "## Accepted equivalent mutants"
ACCEPTED_LINE = re.compile(r"^- `(?P<name>[^`]+)` — `(?P<line>[^`]*)` — (?P<why>.+)$")

# mutmut's exit codes (mutmut/stats.py): a failing test run or a timeout is a kill.
KILLED = {1, 3}
TIMEOUT = {36, -24, 24, 152, 255}
SURVIVED = {0}
NO_TESTS = {5, 33}


def module_name(path: Path) -> str:
    return ".".join(path.with_suffix("").parts)


def load_results(root: Path) -> dict[str, dict[str, int | None]]:
    """``{module: {mutant name: exit code}}`` for every core module mutmut has results for."""
    results = {}
    for package in CORE:
        for meta in sorted((root / "mutants" / package).rglob("*.py.meta")):  # dialects/ too
            source = meta.relative_to(root / "mutants").with_name(meta.name.removesuffix(".meta"))
            codes = json.loads(meta.read_text())["exit_code_by_key"]
            if codes:
                results[module_name(source)] = codes
    return results


def accepted_equivalents(doc: str) -> dict[str, tuple[str, str]]:
    """``{mutant name: (mutated line, why)}`` from the doc's accepted-equivalents section."""
    accepted = {}
    section = doc.partition(ACCEPTED_HEADING)[2].split("\n## ", 1)[0]
    for line in section.splitlines():
        match = ACCEPTED_LINE.match(line.strip())
        if match:
            accepted[match["name"]] = (match["line"], match["why"])
    return accepted


def mutated_lines(mutmut: str, name: str) -> list[str]:
    """The ``+`` lines of ``mutmut show NAME`` (the mutated code), stripped."""
    shown = subprocess.run([mutmut, "show", name], cwd=REPO, capture_output=True, text=True, check=False)
    return [line[1:].strip() for line in shown.stdout.splitlines() if line.startswith("+") and not line.startswith("+++")]


def table(results: dict[str, dict[str, int | None]], equivalent: set[str], min_score: float) -> tuple[str, bool]:
    rows = ["| module | mutants | killed | timeout | survived | no tests | not run | equivalent | score |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    survivors: list[str] = []
    ok = True
    for module, codes in sorted(results.items()):
        counts = dict.fromkeys(("killed", "timeout", "survived", "no tests", "not run", "equivalent", "other"), 0)
        for name, code in codes.items():
            if name in equivalent and code in SURVIVED | NO_TESTS:
                counts["equivalent"] += 1
            elif code in KILLED:
                counts["killed"] += 1
            elif code in TIMEOUT:
                counts["timeout"] += 1
            elif code is None:
                counts["not run"] += 1
            else:
                counts["survived" if code in SURVIVED else "no tests" if code in NO_TESTS else "other"] += 1
                survivors.append(name)
        judged = len(codes) - counts["equivalent"] - counts["not run"]
        score = 100.0 * (counts["killed"] + counts["timeout"]) / judged if judged else 0.0
        if counts["not run"] or score < min_score:
            ok = False
        shown = ("not run" if not judged else f"**{score:.1f} %**" if not counts["not run"]
                 else f"{score:.1f} % of those run")
        rows.append(f"| `{module}` | {len(codes)} | {counts['killed']} | {counts['timeout']} | "
                    f"{counts['survived'] + counts['other']} | {counts['no tests']} | {counts['not run']} | "
                    f"{counts['equivalent']} | {shown} |")
    text = "\n".join(rows)
    if survivors:
        text += "\n\nSurviving mutants (`make mutate-show NAME=...` prints the diff):\n\n"
        text += "\n".join(f"- `{name}`" for name in sorted(survivors))
    else:
        text += "\n\nNo surviving mutants."
    return text, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutmut", default=str(REPO / ".cache" / "mutate" / "bin" / "mutmut"))
    parser.add_argument("--min-score", type=float, default=90.0)
    args = parser.parse_args()

    results = load_results(REPO)
    if not results:
        print("no mutation results under mutants/: run `make mutate` first", file=sys.stderr)
        return 1
    doc = DOC.read_text()
    accepted = accepted_equivalents(doc)
    all_names = {name for codes in results.values() for name in codes}
    equivalent = set()
    for name, (line, _why) in accepted.items():
        if name not in all_names:
            continue  # a module not mutated in this run
        if line.strip() in mutated_lines(args.mutmut, name):
            equivalent.add(name)
        else:
            print(f"stale equivalent: {name} no longer mutates `{line}`; check it and update docs/TESTING.md",
                  file=sys.stderr)

    text, ok = table(results, equivalent, args.min_score)
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    print(text)
    print(f"\nwritten to {DOC.relative_to(REPO)}", file=sys.stderr)
    if not ok:
        print(f"a module is below {args.min_score:.0f} % (or has mutants not run)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
