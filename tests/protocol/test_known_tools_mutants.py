"""Parsing a body with recognized tools (proxy/protocol/known_tools.py): the cases mutation
testing found unguarded (docs/TESTING.md). The error's text is what the client gets in its
400 ("request body is not valid JSON: ..."); the recognized tools are what lets a session's
later requests skip parsing and translating its tools again.
"""

from __future__ import annotations

import json

import httpx
import pytest
import trio

from proxy.protocol.known_tools import ToolsCache, parse_request_body


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"tools": [NaN]}', "NaN is not a JSON number (numbers must be finite)"),
        (b'{"temperature": -Infinity}', "-Infinity is not a JSON number (numbers must be finite)"),
        (b'{"x": 1e999}', "1e999 is out of range (numbers must be finite)"),
        (b'{"x": -2.5e400}', "-2.5e400 is out of range (numbers must be finite)"),
        # a long number is named by its first 40 characters
        (b'{"x": ' + b"9" * 50 + b'e999}', "9" * 40 + " is out of range (numbers must be finite)"),
    ],
)
def test_a_number_json_has_not_is_named_in_the_error(raw, message):
    with pytest.raises(ValueError) as caught:
        parse_request_body(raw, ToolsCache())
    assert str(caught.value) == message


def test_large_finite_numbers_parse():
    body, _ = parse_request_body(b'{"tools": [{"x": 1.5e308, "y": -1e300}], "t": 1e-400}', ToolsCache())
    assert body == {"tools": [{"x": 1.5e308, "y": -1e300}], "t": 0.0}


def test_a_lone_surrogate_escape_or_byte_parses_as_json_loads_parses_it():
    for raw in (b'{"a": "\\ud800", "tools": ["\\udfff"]}', b'{"a": "\xed\xa0\x80"}', '{"a": "\ud800"}'.encode("utf-16", "surrogatepass")):
        assert repr(parse_request_body(raw, ToolsCache())[0]) == repr(json.loads(raw))


@pytest.mark.parametrize("raw", [b'{"tools": [1]}', b' \n{ "tools" : [1] , "a" : 2 }\t', b'{"a": 2, "tools": [1]}'])
def test_tools_are_recognized_wherever_they_are_and_whatever_the_spacing(raw):
    cache = ToolsCache()
    first, known = parse_request_body(raw, cache)
    assert known is not None and known.text == "[1]" and first["tools"] is known.tools
    again, known_again = parse_request_body(b'{"model": "m",  "tools":[1]}', cache)
    assert known_again is known and again == {"model": "m", "tools": [1]}


def test_tools_that_are_not_an_array_are_not_recognized():
    cache = ToolsCache()
    for raw in (b'{"tools": {"a": 1}}', b'{"tools": "x"}', b'{"tools": null}'):
        body, known = parse_request_body(raw, cache)
        assert known is None and body == json.loads(raw)
        assert parse_request_body(raw, cache)[1] is None


def test_a_body_without_tools_has_no_known_tools():
    for raw in (b"{}", b'{"model": "m"}', b"[]", b'{"model": "m", "x": [1]}'):
        assert parse_request_body(raw, ToolsCache())[1] is None


def test_a_session_and_its_subagents_keep_their_tools_recognized():
    # eight distinct tool sets stay recognized; a ninth pushes out the least recently used
    cache = ToolsCache()
    first = [parse_request_body(b'{"tools": [%d]}' % n, cache)[1] for n in range(8)]
    assert [parse_request_body(b'{"tools": [%d]}' % n, cache)[1] for n in range(8)] == first
    parse_request_body(b'{"tools": [8]}', cache)
    assert parse_request_body(b'{"tools": [0]}', cache)[1] is not first[0]
    assert parse_request_body(b'{"tools": [7]}', cache)[1] is first[7]


async def test_tools_nested_too_deeply_are_a_400_the_first_time_and_every_time(proxy):
    # The depth of recognized tools is checked once; tools never checked are not trusted.
    schema = b"{" + b'"a": {' * 200 + b"}" * 200 + b"}"
    body = (b'{"model": "qwen3:8b", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],'
            b' "tools": [{"name": "t", "input_schema": ' + schema + b"}]}")
    async with httpx.AsyncClient(base_url=proxy.url, timeout=20) as client:
        with trio.fail_after(30):
            for _ in range(2):
                response = await client.post("/v1/messages", content=body, headers={"content-type": "application/json"})
                assert response.status_code == 400, response.content[:200]
                assert response.json()["error"]["message"] == "request body is nested too deeply (tools: limit 128)"


@pytest.mark.parametrize("raw", [b"{} x", b"{}}", b" { } ,"])
def test_an_empty_object_followed_by_more_is_not_valid_json(raw):
    with pytest.raises(ValueError) as caught:
        parse_request_body(raw, ToolsCache())
    with pytest.raises(ValueError) as expected:
        json.loads(raw)
    assert str(caught.value) == str(expected.value)
