"""Recognized tools (proxy/protocol/known_tools.py): parsing a body and reusing the tools
of an earlier request must give exactly what json.loads and the uncached translation give.

On every request Claude Code really sent (tests/data/claude-code/), then on
malformed and unusual bodies.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from proxy.protocol.known_tools import ToolsCache, parse_request_body
from proxy.protocol.tokens import estimate_tokens
from proxy.protocol.translate import encode_ollama_body, translate_request, validate_request
from tests.conftest import FIXTURES

FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))


@pytest.fixture(params=FIXTURE_FILES, ids=lambda p: p.stem)
def captured(request) -> dict[str, Any]:
    return json.loads(request.param.read_text(encoding="utf-8"))["body"]


def encodings(body: dict[str, Any]) -> list[bytes]:
    """The body as compact ASCII, pretty UTF-8 and UTF-16 (json.loads takes all three)."""
    return [
        json.dumps(body).encode(),
        json.dumps(body, indent=2, ensure_ascii=False).encode("utf-8"),
        json.dumps(body, ensure_ascii=False).encode("utf-16"),
    ]


def outcome(parse) -> tuple:
    try:
        return ("value", parse())
    except ValueError as exc:
        return ("error", type(exc), str(exc))


@pytest.mark.parametrize("native_tools", [True, False])
def test_a_captured_request_translates_exactly_as_without_the_cache(captured, native_tools):
    cache = ToolsCache()
    for raw in encodings(captured):
        for turn in range(2):  # the first parse adds the tools, the second reuses them
            expected = json.loads(raw)
            body, known = parse_request_body(raw, cache)
            assert body == expected and list(body) == list(expected)
            assert known is not None and body["tools"] is known.tools
            plain = translate_request(validate_request(copy.deepcopy(expected)), ollama_model="qwen3:8b",
                                      native_tools=native_tools)
            cached = translate_request(validate_request(body), ollama_model="qwen3:8b",
                                       native_tools=native_tools, known_tools=known)
            assert cached.ollama == plain.ollama and cached.tools == plain.tools
            assert encode_ollama_body(cached) == json.dumps(plain.ollama, allow_nan=False).encode()
            assert estimate_tokens(body, known_tools=known) == estimate_tokens(expected)


def test_the_same_tools_are_parsed_once(captured):
    cache = ToolsCache()
    raw = json.dumps(captured).encode()
    first, known = parse_request_body(raw, cache)
    changed = {**captured, "messages": captured["messages"] + [{"role": "user", "content": "and then?"}]}
    second, known_again = parse_request_body(json.dumps(changed).encode(), cache)
    assert known_again is known and second["tools"] is first["tools"]
    assert second["messages"][-1] == {"role": "user", "content": "and then?"}


def test_tools_that_differ_only_in_json_are_not_mistaken_for_each_other():
    # 1 == True and {"a", "b"} == {"b", "a"} in Python, but not in the JSON Ollama gets.
    cache = ToolsCache()
    variants = [
        '{"tools": [{"name": "t", "input_schema": {"type": "object", "x": 1, "y": 2}}]}',
        '{"tools": [{"name": "t", "input_schema": {"type": "object", "x": true, "y": 2}}]}',
        '{"tools": [{"name": "t", "input_schema": {"type": "object", "y": 2, "x": true}}]}',
        '{"tools": [{"name": "t", "input_schema": {"type": "object", "y": 2, "x": 1.0}}]}',
    ]
    for _ in range(2):
        for text in variants:
            body, known = parse_request_body(text.encode(), cache)
            assert json.dumps(body) == json.dumps(json.loads(text))
            assert known.text == json.dumps(json.loads(text)["tools"])


@pytest.mark.parametrize(
    "raw",
    [
        b"", b"{", b"}", b"[1, 2]", b'"text"', b"null", b"{}", b" {} ", b'{"a": 1,}', b'{"a" 1}', b'{a: 1}',
        b'{"tools": [1, 2}', b'{"tools": [1]} extra', b'{"a": 1}}', b"\xef\xbb\xbf{\"a\": 1}", b"\xff\xfe\xfd",
        b'{"tools": [1], "tools": 2}', b'{"tools": 2, "tools": [3]}', b'{"tools": "[1]"}',
        b' {\n "tools" :\t[ {"a": 1.5e3} ] } ', b'{"tools": [{"a": "\x01"}]}',
    ],
)
def test_a_body_parses_or_fails_exactly_as_json_loads(raw):
    cache = ToolsCache()
    for _ in range(2):  # also once the tools are cached
        assert repr(outcome(lambda: parse_request_body(raw, cache)[0])) == repr(outcome(lambda: json.loads(raw)))


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400"])
@pytest.mark.parametrize("where", [b'{"tools": [{"a": %s}]}', b'{"temperature": %s}', b"[%s]"])
def test_numbers_json_has_not_are_refused_where_json_loads_would_take_them(number, where):
    # Python's parser accepts NaN and Infinity and reads 1e999 as inf; JSON has none of
    # them and Ollama's body could not carry them.
    raw = where % number
    with pytest.raises(ValueError, match="finite"):
        parse_request_body(raw, ToolsCache())


def test_a_repeated_tools_key_recognizes_the_last_one():
    cache = ToolsCache()
    parse_request_body(b'{"tools": [1]}', cache)
    body, known = parse_request_body(b'{"tools": [1], "tools": [2]}', cache)
    assert body == {"tools": [2]} and known.tools is body["tools"]
    body, known = parse_request_body(b'{"tools": [1], "tools": null}', cache)
    assert body == {"tools": None} and known is None


def test_the_cache_keeps_the_most_recent_tool_sets():
    cache = ToolsCache(size=2)
    a, _ = parse_request_body(b'{"tools": ["a"]}', cache)
    b, _ = parse_request_body(b'{"tools": ["b"]}', cache)
    assert parse_request_body(b'{"tools": ["a"]}', cache)[0]["tools"] is a["tools"]  # a is now the newest
    parse_request_body(b'{"tools": ["c"]}', cache)  # pushes out b
    assert parse_request_body(b'{"tools": ["a"]}', cache)[0]["tools"] is a["tools"]
    assert parse_request_body(b'{"tools": ["b"]}', cache)[0]["tools"] is not b["tools"]


def test_tools_that_cannot_be_encoded_fail_as_before():
    cache = ToolsCache()
    raw = b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],' \
          b' "tools": [{"name": "t", "input_schema": {"type": "object", "x": NaN}}]}'
    # parse_request_body refuses NaN now; the encoder must still refuse it on its own.
    body = json.loads(raw)
    known = cache.add(json.dumps(body["tools"]), body["tools"])
    for _ in range(2):
        request = translate_request(validate_request(body), ollama_model="m", known_tools=known)
        with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
            encode_ollama_body(request)
