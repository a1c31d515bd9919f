"""The documentation names what the code has: every setting, every command, every file it
points to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from proxy.cli.main import COMMANDS
from proxy.config import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "HOWTO.md", "AGENTS.md", *(str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").glob("*.md")))]


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.name for s in SETTINGS])
def test_every_setting_is_in_the_cli_reference(setting):
    text = (ROOT / "docs" / "CLI.md").read_text(encoding="utf-8")
    row = next((line for line in text.splitlines() if line.startswith(f"| `{setting.name}` |")), None)
    assert row is not None, f"docs/CLI.md has no row for {setting.name}"
    assert f"`{setting.flag}" in row and f"`{setting.env_var}`" in row


def test_every_command_is_in_the_cli_reference():
    text = (ROOT / "docs" / "CLI.md").read_text(encoding="utf-8")
    for command in COMMANDS:
        assert f"| `{command}" in text, command


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
