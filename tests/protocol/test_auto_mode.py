"""Auto mode's safety check as the proxy recognizes it, and when its answer holds a verdict
Claude Code can read (else the proxy warns: the action will not run)."""

from __future__ import annotations

import pytest

from proxy.protocol.auto_mode import has_verdict, is_auto_mode_check


@pytest.mark.parametrize(
    "stops, form",
    [
        (["</severity>"], "</severity>"),
        (["</block>"], "</block>"),
        (["\n\nHuman:", "</block>"], "</block>"),
        (["</other>"], None),
        ([], None),
        (None, None),
    ],
)
def test_the_check_is_known_by_its_stop_sequence(stops, form):
    body = {"model": "claude-auto-mode", "messages": []}
    if stops is not None:
        body["stop_sequences"] = stops
    assert is_auto_mode_check(body) == form


@pytest.mark.parametrize(
    "text, form, readable",
    [
        ("<severity>80", "</severity>", True),
        ("<severity> 12.5", "</severity>", True),
        ("Reasoning... <severity>0", "</severity>", True),
        ("<severity>high", "</severity>", False),
        ("severity: 80", "</severity>", False),
        ("<block>yes", "</block>", True),
        ("<block> No", "</block>", True),
        ("<block>maybe", "</block>", False),
        ("<block>yesterday", "</block>", False),  # a word boundary: not a yes
        ("<thinking>draft <block>yes</thinking>", "</block>", False),  # a verdict in its thinking is none
        ("<thinking>draft <severity>5</thinking> <severity>90", "</severity>", True),
        ("<thinking>\n<block>no\n</thinking>\n<block>no", "</block>", True),
    ],
)
def test_a_verdict_is_found_only_where_claude_code_reads_it(text, form, readable):
    assert has_verdict(text, form) is readable


@pytest.mark.parametrize(
    "text, form",
    [
        ("<block>no<thinking>on second thought</thinking>", "</block>"),
        ("<severity><thinking>weigh it</thinking>70", "</severity>"),
    ],
)
def test_a_thinking_span_is_cut_out_whole_around_a_verdict(text, form):
    # the span leaves nothing behind: the verdict around it reads as if it were not there
    assert has_verdict(text, form) is True
