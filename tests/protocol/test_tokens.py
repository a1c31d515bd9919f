"""The input-token estimate (message_start's input_tokens, /v1/messages/count_tokens) and its
per-model calibration: exact numbers, since the client shows them and the context size and
the prompt-too-long 400 are decided on them."""

from __future__ import annotations

import json

import pytest

from proxy.protocol.known_tools import ToolsCache, parse_request_body
from proxy.protocol.tokens import IMAGE_TOKENS, Calibration, estimate_tokens


def user(content):
    return {"role": "user", "content": content}


def test_text_counts_its_bytes_plus_four_per_message_plus_one():
    # "user" (4) + 68 bytes = 72 bytes = 20 tokens at 3.6, + 4 for the message, + 1
    assert estimate_tokens({"messages": [user("x" * 68)]}) == 25
    # two messages: 2 × 4 overhead
    assert estimate_tokens({"messages": [user("x" * 32), user("x" * 32)]}) == 20 + 8 + 1
    # no messages at all: only the system prompt and the final 1
    assert estimate_tokens({"system": "x" * 72}) == 21
    assert estimate_tokens({}) == 1
    # a messages value that is not a list adds no per-message overhead
    assert estimate_tokens({"messages": "x" * 72}) == 21


def test_non_ascii_text_counts_its_utf8_bytes():
    # 24 CJK characters are 72 bytes: 20 tokens, not the 6 their length would give
    assert estimate_tokens({"system": "中" * 24}) == 21
    assert estimate_tokens({"system": "é" * 36}) == 21  # 2 bytes each
    # a lone surrogate (it parses from JSON) is counted, not an error
    assert estimate_tokens({"system": "\ud800" * 24}) == 21


def test_system_blocks_and_nested_content_are_all_counted():
    body = {"system": [{"type": "text", "text": "x" * 36}],
            "messages": [user([{"type": "text", "text": "y" * 28},
                               {"type": "tool_result", "content": [{"type": "text", "text": "z" * 36}]}])]}
    # 36 + "user" 4 + 28 + 36 = 104 bytes → 28 tokens; + 4 + 1
    assert estimate_tokens(body) == 33


def test_an_image_costs_a_fixed_number_of_tokens_whatever_its_data():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 100_000}}
    assert estimate_tokens({"messages": [user([image])]}) == IMAGE_TOKENS + 1 + 4 + 1  # "user": 4 bytes → 1
    assert estimate_tokens({"messages": [user([image, image])]}) == 2 * IMAGE_TOKENS + 1 + 4 + 1


def test_ids_signatures_types_and_cache_control_are_not_counted():
    call = {"type": "tool_use", "id": "toolu_" + "a" * 200, "name": "Bash", "input": {"command": "ls"}}
    thinking = {"type": "thinking", "thinking": "t" * 8, "signature": "s" * 5000}
    result = {"type": "tool_result", "tool_use_id": "toolu_" + "a" * 200, "content": "r" * 10,
              "cache_control": {"type": "ephemeral", "ttl": "x" * 500}}
    body = {"messages": [{"role": "assistant", "content": [thinking, call]}, user([result])]}
    # "assistant" 9 + "t"×8 + "Bash" 4 + "ls" 2 + "user" 4 + "r"×10 = 37 bytes → 10; + 8 + 1
    assert estimate_tokens(body) == 19


def test_tools_count_their_compact_json():
    tools = [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}}]
    length = len(json.dumps(tools, separators=(",", ":")))
    assert estimate_tokens({"tools": tools}) == int(length / 3.6) + 1
    # tools that are not a list are not counted (validation refuses them before)
    assert estimate_tokens({"tools": {"name": "x" * 100}}) == 1


def test_recognized_tools_give_the_same_estimate_as_parsing_them_afresh():
    tools = [{"name": "Bash", "description": "Run ☃ a command " * 20, "input_schema": {"type": "object"}}]
    raw = json.dumps({"messages": [user("hi")], "tools": tools}).encode()
    cache = ToolsCache()
    expected = estimate_tokens(json.loads(raw))
    for _ in range(2):  # measured on the first request, reused on the second
        body, known = parse_request_body(raw, cache)
        assert known is not None
        assert estimate_tokens(body, known_tools=known) == expected
        assert known.json_length == len(json.dumps(tools, separators=(",", ":")))
    # KnownTools for other tools are not used for this body's tools
    other = json.dumps({"tools": [{"name": "Other"}]}).encode()
    _, other_known = parse_request_body(other, cache)
    assert estimate_tokens(json.loads(raw), known_tools=other_known) == expected


def test_chars_per_token_is_the_divisor():
    assert estimate_tokens({"system": "x" * 72}, chars_per_token=2.0) == 37
    assert estimate_tokens({"system": "x" * 72}, chars_per_token=7.2) == 11


def test_calibration_learns_a_moving_average_per_model():
    calibration = Calibration()
    assert calibration.factor("m") == 1.0
    assert calibration.apply("m", 200) == 200
    assert calibration.observe("m", 100, 200) is True
    assert calibration.factor("m") == 2.0  # the first observation is taken as it is
    assert calibration.apply("m", 30) == 60
    assert calibration.observe("m", 100, 100) is True
    assert calibration.factor("m") == 1.5  # then halfway towards each new ratio
    assert calibration.apply("m", 30) == 45
    assert calibration.observe("m", 100, 250) is True
    assert calibration.factor("m") == 2.0
    # other models keep their own factor
    assert calibration.factor("other") == 1.0
    assert calibration.apply("other", 30) == 30


def test_calibration_never_estimates_below_one_token():
    calibration = Calibration()
    assert calibration.apply("m", 0) == 1
    calibration.observe("m", 100, 40)
    assert calibration.apply("m", 1) == 1


@pytest.mark.parametrize(
    "estimate, actual, used",
    [
        (100, 40, True),  # 0.4 and 3.0 are plausible, the bounds included
        (100, 300, True),
        (100, 39, False),  # a KV-cache hit counts only the new part: far off, ignored
        (100, 301, False),
        (0, 100, False),
        (-5, 100, False),
        (100, 0, False),
        (100, -1, False),
    ],
)
def test_calibration_ignores_implausible_observations(estimate, actual, used):
    calibration = Calibration()
    assert calibration.observe("m", estimate, actual) is used
    assert calibration.factor("m") == (actual / estimate if used else 1.0)


def test_calibration_moves_halfway_whatever_the_distance():
    calibration = Calibration()
    assert calibration.observe("m", 1000, 1000) is True
    assert calibration.observe("m", 1000, 1500) is True
    assert calibration.factor("m") == 1.25  # halfway from 1.0 to 1.5
    assert calibration.apply("m", 400) == 500
    assert calibration.observe("m", 1000, 3000) is True
    assert calibration.factor("m") == 2.125


def test_calibration_learns_from_a_one_token_prompt():
    calibration = Calibration()
    assert calibration.observe("m", 1, 1) is True
    assert calibration.observe("m", 1, 2) is True
    assert calibration.factor("m") == 1.5
