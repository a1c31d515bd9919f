"""The documentation names what the code has: every setting, every command, every file it
points to."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from proxy.cli.main import build_parser
from proxy.config import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "HOWTO.md", "AGENTS.md", *(str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").glob("*.md")))]


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.name for s in SETTINGS])
def test_every_setting_is_in_the_cli_reference(setting):
    text = (ROOT / "docs" / "CLI.md").read_text(encoding="utf-8")
    row = next((line for line in text.splitlines() if line.startswith(f"| `{setting.name}` |")), None)
    assert row is not None, f"docs/CLI.md has no row for {setting.name}"
    assert f"`{setting.flag}" in row and f"`{setting.env_var}`" in row


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands, by name, as argparse holds them."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def own_options(parser: argparse.ArgumentParser) -> list[str]:
    """A parser's options that are neither --help nor a setting's flag (those have their
    own test): ``--json``, ``--pid-file``, and its positionals by metavar (``MODEL``)."""
    settings = {s.flag for s in SETTINGS} | {"--no-" + s.flag[2:] for s in SETTINGS}
    options = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if not action.option_strings:
            options.append(action.metavar or action.dest.upper())
        options += [o for o in action.option_strings if o not in settings]
    return options


def test_the_parser_has_the_commands_the_cli_reference_is_checked_for():
    commands = subcommands(build_parser())
    assert {"serve", "claude", "doctor", "models", "pull", "tail"} <= set(commands)
    assert "--json" in own_options(commands["tail"]) and "MODEL" in own_options(commands["pull"])


@pytest.mark.parametrize("command", sorted(subcommands(build_parser())))
def test_every_command_is_in_the_cli_reference(command):
    """A row of the commands table names it, and a line that names it names each of its
    own options: a new subcommand or option in the parser fails here until it is documented."""
    text = (ROOT / "docs" / "CLI.md").read_text(encoding="utf-8")
    assert f"| `{command}" in text, f"docs/CLI.md's commands table has no row for {command}"
    lines = [line for line in text.splitlines() if re.search(rf"(?<![\w-]){command}\b", line)]
    for option in own_options(subcommands(build_parser())[command]):
        shown = re.compile(rf"(?<![\w-]){re.escape(option)}(?![\w-])")
        assert any(shown.search(line) for line in lines), f"docs/CLI.md never shows {command} {option}"


def test_every_option_before_the_command_is_in_the_cli_reference():
    text = (ROOT / "docs" / "CLI.md").read_text(encoding="utf-8")
    for option in own_options(build_parser()):
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), f"docs/CLI.md does not name {option}"


def test_the_command_check_fails_for_an_undocumented_subcommand(monkeypatch):
    """A subcommand added to the parser without a line in docs/CLI.md is caught."""
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            action.add_parser("frobnicate", help="an undocumented command")
    monkeypatch.setattr("tests.test_docs.build_parser", lambda: parser)
    assert "frobnicate" in subcommands(build_parser())
    with pytest.raises(AssertionError, match="no row for frobnicate"):
        test_every_command_is_in_the_cli_reference("frobnicate")


@pytest.mark.parametrize("doc", DOCS)
def test_local_links_point_to_files_that_exist(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
        path = (ROOT / doc).parent.joinpath(target).resolve()
        assert path.is_relative_to(ROOT), f"{doc} links outside the checkout: {target}"
        assert path.exists(), f"{doc} links to missing {target}"


def test_make_targets_in_the_docs_exist():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z]+):", makefile, re.MULTILINE))
    for doc in DOCS:
        for target in re.findall(r"`make ([a-z]+)", (ROOT / doc).read_text(encoding="utf-8")):
            assert target in targets, f"{doc} mentions make {target}"


def architecture_table() -> dict[str, set[str]]:
    """docs/ARCHITECTURE.md's package table: package folder → the modules its row names."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    table: dict[str, set[str]] = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        if len(cells) >= 2 and (m := re.fullmatch(r"`(\w+/)`|(shared)", cells[0])):
            table[m.group(1) or ""] = set(re.findall(r"`([\w.]+/?)`", cells[1]))
    return table


def test_the_architecture_table_names_every_module_and_only_those():
    table = architecture_table()
    assert set(table) >= {"protocol/", "stream/", "ollama/", "live/", "server/", "cli/", ""}
    proxy = ROOT / "proxy"
    for folder, named in table.items():
        here = proxy / folder
        present = {p.name for p in here.iterdir() if p.suffix in (".py", ".html") and p.name not in ("__init__.py", "__main__.py")}
        present |= {p.name + "/" for p in here.iterdir() if (p / "__init__.py").exists()} if folder else set()
        if not folder:  # the shared row: the modules at the top of proxy/ (app.py is drawn in the tree)
            present -= {"app.py"}
        assert named == present, f"docs/ARCHITECTURE.md's row for proxy/{folder}: {sorted(named ^ present)}"
