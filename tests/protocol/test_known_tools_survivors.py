"""Recognized tools in the bodies Claude Code really sends (proxy/protocol/known_tools.py): the
survivors of a mutation run (docs/TESTING.md). Claude Code encodes its body with
``JSON.stringify``: no space after a comma or a colon. Its tools must be recognized in that
form too, or every request of a session parses and translates ~30 KB of schemas again.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy.protocol.known_tools import ToolsCache, parse_request_body
from tests.conftest import FIXTURES


@pytest.fixture(params=sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def captured(request) -> dict[str, Any]:
    return json.loads(request.param.read_text(encoding="utf-8"))["body"]


def test_the_tools_of_a_compact_body_as_claude_code_sends_it_are_recognized(captured):
    raw = json.dumps(captured, separators=(",", ":")).encode()  # what JSON.stringify gives
    cache = ToolsCache()
    body, known = parse_request_body(raw, cache)
    assert body == captured and list(body) == list(captured)
    assert known is not None and body["tools"] is known.tools
    again, known_again = parse_request_body(raw, cache)  # the session's next request
    assert again == captured and known_again is known and again["tools"] is known.tools


def test_members_separated_by_a_bare_comma_are_all_read():
    cache = ToolsCache()
    body, known = parse_request_body(b'{"model":"m","max_tokens":5,"tools":[{"name":"t"}],"stream":true}', cache)
    assert body == {"model": "m", "max_tokens": 5, "tools": [{"name": "t"}], "stream": True}
    assert known is not None and known.text == '[{"name":"t"}]' and body["tools"] is known.tools
