"""Request translation (proxy/protocol/translate.py): Anthropic Messages → Ollama /api/chat.

First on every request Claude Code really sent (tests/data/claude-code/, read in
place), then on small targeted requests for each kind of content.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from proxy.errors import RequestError
from proxy.protocol.translate import BILLING_HEADER_PREFIX, encode_ollama_body, translate_request, validate_request
from tests.conftest import FIXTURES

FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))
OLLAMA_MODEL = "qwen3:8b"


def test_the_fixtures_are_there():
    assert len(FIXTURE_FILES) >= 2, f"no captured requests found in {FIXTURES}"


@pytest.fixture(params=FIXTURE_FILES, ids=lambda p: p.stem)
def captured(request) -> dict[str, Any]:
    return json.loads(request.param.read_text(encoding="utf-8"))["body"]


def translated(body: dict[str, Any], **options: Any) -> dict[str, Any]:
    return translate_request(validate_request(body), ollama_model=OLLAMA_MODEL, **options).ollama


def blocks(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Every content block of ``kind`` in the request's messages."""
    return [
        block
        for message in body["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block["type"] == kind
    ]


def text_of(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    return "\n\n".join(b["text"] for b in content if b["type"] == "text")


# --- every captured request ------------------------------------------------------------


def test_captured_request_is_valid(captured):
    assert validate_request(captured) is captured


def test_billing_header_is_dropped_and_the_rest_of_system_leads(captured):
    messages = translated(captured)["messages"]
    assert any(b["text"].startswith(BILLING_HEADER_PREFIX) for b in captured["system"]), "fixture lost its header"
    assert all("x-anthropic-billing-header" not in m["content"] for m in messages)
    assert messages[0]["role"] == "system"
    kept = [b["text"] for b in captured["system"] if not b["text"].startswith(BILLING_HEADER_PREFIX)]
    assert all(text in messages[0]["content"] for text in kept)


def test_mid_conversation_system_messages_become_reminders_in_a_user_turn(captured):
    messages = translated(captured)["messages"]
    inline = [m for m in captured["messages"] if m["role"] == "system"]
    assert inline, "fixture has no mid-conversation system message"
    assert [m["role"] for m in messages].count("system") == 1
    for system in inline:
        reminder = f"<system-reminder>\n{text_of(system['content'])}\n</system-reminder>"
        holders = [m for m in messages if reminder in m["content"]]
        assert [m["role"] for m in holders] == ["user"]


def test_reminder_is_merged_with_the_neighbouring_user_turn(captured):
    """The user message holding a reminder also holds the text of the user turn next to
    the system message (before or after it), in the original order."""
    messages = translated(captured)["messages"]
    source = captured["messages"]
    checked = 0
    for i, system in enumerate(source):
        if system["role"] != "system":
            continue
        reminder = f"<system-reminder>\n{text_of(system['content'])}\n</system-reminder>"
        holder = next(m["content"] for m in messages if reminder in m["content"])
        for j in (i - 1, i + 1):
            if 0 <= j < len(source) and source[j]["role"] == "user" and text_of(source[j]["content"]):
                neighbour = text_of(source[j]["content"])
                assert neighbour in holder
                assert (holder.index(neighbour) < holder.index(reminder)) == (j < i)
                checked += 1
    assert checked, "fixture has no system message next to a user turn with text"


def test_tool_use_becomes_assistant_tool_calls(captured):
    messages = translated(captured)["messages"]
    calls = [c for m in messages if m["role"] == "assistant" for c in m.get("tool_calls", [])]
    expected = [{"id": b["id"], "function": {"name": b["name"], "arguments": b["input"]}} for b in blocks(captured, "tool_use")]
    assert calls == expected
    assert all(isinstance(c["function"]["arguments"], dict) for c in calls)


def test_tool_results_become_tool_messages_right_after_their_call(captured):
    messages = translated(captured)["messages"]
    names = {b["id"]: b["name"] for b in blocks(captured, "tool_use")}
    results = blocks(captured, "tool_result")
    tool_messages = [m for m in messages if m["role"] == "tool"]
    assert len(tool_messages) == len(results)
    for result, message in zip(results, tool_messages):
        assert message["tool_call_id"] == result["tool_use_id"]
        assert message["tool_name"] == names[result["tool_use_id"]]
        assert text_of(result["content"]) in message["content"]
    # Each tool message follows the assistant message that made the call (other tool
    # messages of the same turn may come between, nothing else).
    for i, message in enumerate(messages):
        if message["role"] != "tool":
            continue
        j = i - 1
        while messages[j]["role"] == "tool":
            j -= 1
        assert messages[j]["role"] == "assistant"
        assert message["tool_call_id"] in [c["id"] for c in messages[j]["tool_calls"]]


def test_thinking_is_kept_as_assistant_thinking(captured):
    messages = translated(captured)["messages"]
    thoughts = [b["thinking"] for b in blocks(captured, "thinking")]
    kept = [m["thinking"] for m in messages if m["role"] == "assistant" and "thinking" in m]
    assert kept == thoughts


def test_every_content_is_a_string(captured):
    for message in translated(captured)["messages"]:
        assert isinstance(message["content"], str), message


def test_user_and_assistant_turns_alternate(captured):
    roles = [m["role"] for m in translated(captured)["messages"]]
    for a, b in zip(roles, roles[1:]):
        assert not (a == b and a in ("user", "assistant")), roles


def test_tools_become_function_tools(captured):
    ollama = translated(captured)
    # Deferred tools (Claude Code's DeferredToolPlaceholder) wait for a tool_reference.
    client_tools = [t for t in captured["tools"] if t.get("type") in (None, "custom") and not t.get("defer_loading")]
    assert "DeferredToolPlaceholder" not in {t["function"]["name"] for t in ollama["tools"]}
    assert len(ollama["tools"]) == len(client_tools)
    for ours, theirs in zip(ollama["tools"], client_tools):
        assert ours == {
            "type": "function",
            "function": {"name": theirs["name"], "description": theirs["description"], "parameters": theirs["input_schema"]},
        }


def test_max_tokens_thinking_and_model(captured):
    request = translate_request(validate_request(captured), ollama_model=OLLAMA_MODEL)
    assert request.ollama["options"]["num_predict"] == captured["max_tokens"]
    assert request.ollama["model"] == OLLAMA_MODEL
    assert request.client_model == captured["model"]
    assert request.ollama["think"] is True  # the captures ask for adaptive thinking
    assert request.ollama["stream"] is True
    assert request.stream is captured["stream"]
    assert set(request.tools) == {t["name"] for t in captured["tools"] if not t.get("defer_loading")}


def test_result_is_json_and_the_request_is_untouched(captured):
    before = copy.deepcopy(captured)
    ollama = translated(captured)
    assert json.loads(json.dumps(ollama)) == ollama
    assert captured == before


# --- targeted cases ---------------------------------------------------------------------

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def body(messages: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": messages if messages is not None else [{"role": "user", "content": "hi"}],
        **extra,
    }


def user(*content: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(content)}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(tool_id: str, name: str, input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": input}


def request_error(b: dict[str, Any]) -> RequestError:
    with pytest.raises(RequestError) as excinfo:
        translated(b)
    assert excinfo.value.status == 400 and excinfo.value.error_type == "invalid_request_error"
    return excinfo.value


def test_string_system_and_plain_string_content():
    assert translated(body(system="Be brief.")) ["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]


def test_system_of_only_the_billing_header_gives_no_system_message():
    b = body(system=[{"type": "text", "text": "x-anthropic-billing-header: cc_version=1; cch=2;"}])
    assert [m["role"] for m in translated(b)["messages"]] == ["user"]


def test_base64_image_goes_to_images():
    b = body([user(text("what is this?"), {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}})])
    assert translated(b)["messages"] == [{"role": "user", "content": "what is this?", "images": [PNG]}]


def test_image_url_is_a_clear_400():
    b = body([user(text("look"), {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}})])
    error = request_error(b)
    assert "messages.0.content.1.source" in error.message
    assert "URL" in error.message and "base64" in error.message


def test_text_document_becomes_text():
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "line one\nline two"}, "title": "notes.txt"}
    content = translated(body([user(document, text("summarise"))]))["messages"][0]["content"]
    assert "line one\nline two" in content and "notes.txt" in content and content.endswith("summarise")


def test_pdf_document_is_a_clear_400():
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}}
    error = request_error(body([user(pdf, text("summarise"))]))
    assert "messages.0.content.0.source" in error.message
    assert "'base64'" in error.message and "text documents" in error.message


def tool_round(result: dict[str, Any]) -> list[dict[str, Any]]:
    return translated(
        body(
            [
                {"role": "user", "content": "read it"},
                {"role": "assistant", "content": [tool_use("toolu_1", "Read", {"file_path": "/a"})]},
                user(result),
            ]
        )
    )["messages"]


def test_tool_result_error_is_visible():
    messages = tool_round({"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True, "content": "File does not exist."})
    assert messages[-1] == {"role": "tool", "content": "Error: File does not exist.", "tool_name": "Read", "tool_call_id": "toolu_1"}


def test_tool_result_error_without_text_still_says_it_failed():
    messages = tool_round({"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True})
    assert messages[-1]["content"].startswith("Error:")


def test_tool_result_not_an_error_is_plain():
    messages = tool_round({"type": "tool_result", "tool_use_id": "toolu_1", "is_error": False, "content": "ok"})
    assert messages[-1]["content"] == "ok"


def test_tool_result_with_text_and_image_blocks():
    result = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [text("a screenshot:"), {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}, text("done")],
    }
    messages = tool_round(result)
    assert messages[-1] == {
        "role": "tool",
        "content": "a screenshot:\n\ndone",
        "images": [PNG],
        "tool_name": "Read",
        "tool_call_id": "toolu_1",
    }


def test_tool_results_come_before_the_rest_of_their_user_turn():
    messages = translated(
        body(
            [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [tool_use("toolu_a", "Read", {"file_path": "/a"}), tool_use("toolu_b", "Bash", {"command": "ls"})]},
                user(text("also, hurry"), {"type": "tool_result", "tool_use_id": "toolu_a", "content": "A"}, {"type": "tool_result", "tool_use_id": "toolu_b", "content": "B"}),
            ]
        ),
        sequential_tools=False,
    )["messages"]
    assert [(m["role"], m.get("tool_call_id"), m["content"]) for m in messages[1:]] == [
        ("assistant", None, ""),
        ("tool", "toolu_a", "A"),
        ("tool", "toolu_b", "B"),
        ("user", None, "also, hurry"),
    ]
    assert messages[1]["tool_calls"] == [
        {"id": "toolu_a", "function": {"name": "Read", "arguments": {"file_path": "/a"}}},
        {"id": "toolu_b", "function": {"name": "Bash", "arguments": {"command": "ls"}}},
    ]


def test_a_system_message_between_a_call_and_its_result_does_not_separate_them():
    """The reminder joins the next user turn, and tool results go first in that turn."""
    messages = translated(
        body(
            [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [tool_use("toolu_a", "Read", {"file_path": "/a"})]},
                {"role": "system", "content": "The date changed."},
                user({"type": "tool_result", "tool_use_id": "toolu_a", "content": "A"}, text("continue")),
            ]
        )
    )["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "user"]
    assert messages[3]["content"] == "<system-reminder>\nThe date changed.\n</system-reminder>\n\ncontinue"


def test_a_system_message_between_two_assistant_turns_is_its_own_user_turn():
    messages = translated(
        body(
            [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": "step one"},
                {"role": "system", "content": [text("Note this.")]},
                {"role": "assistant", "content": "step two"},
            ]
        )
    )["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "go"),
        ("assistant", "step one"),
        ("user", "<system-reminder>\nNote this.\n</system-reminder>"),
        ("assistant", "step two"),
    ]


def test_system_messages_after_the_last_assistant_turn_are_kept_in_order():
    messages = translated(
        body(
            [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": "done"},
                {"role": "system", "content": "first"},
                {"role": "system", "content": "second"},
            ]
        )
    )["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "go"),
        ("assistant", "done"),
        ("user", "<system-reminder>\nfirst\n</system-reminder>\n\n<system-reminder>\nsecond\n</system-reminder>"),
    ]


def test_consecutive_user_turns_are_merged():
    messages = translated(body([{"role": "user", "content": "one"}, user(text("two"), text("three"))]))["messages"]
    assert messages == [{"role": "user", "content": "one\n\ntwo\n\nthree"}]


def test_assistant_thinking_text_and_redacted_thinking():
    messages = translated(
        body(
            [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "c2ln"},
                        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
                        text("answer"),
                    ],
                },
                {"role": "user", "content": "and?"},
            ]
        )
    )["messages"]
    assert messages[1] == {"role": "assistant", "content": "answer", "thinking": "hmm"}
    assert "EmwKAhgBEgy3va3pzix" not in json.dumps(messages)


CUSTOM_TOOL = {"name": "Read", "description": "Read a file", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}


def test_server_tools_are_left_out():
    b = body(tools=[CUSTOM_TOOL, {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}])
    request = translate_request(validate_request(b), ollama_model=OLLAMA_MODEL)
    assert [t["function"]["name"] for t in request.ollama["tools"]] == ["Read"]
    assert set(request.tools) == {"Read"}


def test_tool_type_custom_is_a_client_tool():
    b = body(tools=[{**CUSTOM_TOOL, "type": "custom"}])
    assert [t["function"]["name"] for t in translated(b)["tools"]] == ["Read"]


def test_tool_choice_none_sends_no_tools():
    b = body(tools=[CUSTOM_TOOL], tool_choice={"type": "none"})
    request = translate_request(validate_request(b), ollama_model=OLLAMA_MODEL)
    assert "tools" not in request.ollama


@pytest.mark.parametrize("choice", [{"type": "auto"}, {"type": "any"}, {"type": "tool", "name": "Read"}])
def test_other_tool_choices_keep_the_tools(choice):
    assert len(translated(body(tools=[CUSTOM_TOOL], tool_choice=choice))["tools"]) == 1


def test_no_tools_means_no_tools_key():
    assert "tools" not in translated(body())


def test_sampling_options():
    b = body(stop_sequences=["</answer>", "\n\nHuman:"], temperature=0.2, top_p=0.9, top_k=40)
    # stop_sequences are matched by the proxy, so that the answer can say which one matched
    assert translated(b)["options"] == {"num_predict": 1024, "temperature": 0.2, "top_p": 0.9, "top_k": 40}


def test_only_max_tokens_when_nothing_else_is_given():
    assert translated(body())["options"] == {"num_predict": 1024}


@pytest.mark.parametrize(
    ("thinking", "think"),
    [
        ({"type": "enabled", "budget_tokens": 4000}, True),
        ({"type": "adaptive"}, True),
        ({"type": "disabled"}, False),
        (None, False),  # newer Ollama turns thinking on when the field is absent
    ],
    ids=["enabled", "adaptive", "disabled", "absent"],
)
def test_thinking_to_think(thinking, think):
    b = body() if thinking is None else body(thinking=thinking)
    assert translated(b).get("think", "absent") == think


def test_json_schema_output_format():
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    b = body(output_config={"effort": "low", "format": {"type": "json_schema", "schema": schema}})
    assert translated(b)["format"] == schema


def test_effort_alone_sets_no_format():
    assert "format" not in translated(body(output_config={"effort": "high"}))


def test_unknown_top_level_fields_are_ignored():
    b = body(
        metadata={"user_id": "u"},
        context_management={"edits": [{"type": "clear_tool_uses_20250919"}]},
        service_tier="auto",
        some_future_field={"x": [1, 2]},
    )
    ollama = translated(b)
    assert ollama["messages"] == [{"role": "user", "content": "hi"}]
    assert not {"metadata", "context_management", "service_tier", "some_future_field"} & set(ollama)


def test_unknown_block_types_are_dropped():
    b = body(
        [
            user(text("hello"), {"type": "search_result", "source": "s", "title": "t", "content": []}, {"type": "container_upload", "file_id": "f"}),
            {"role": "assistant", "content": [text("hi"), {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}]},
        ]
    )
    assert translated(b)["messages"] == [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]


# --- validate_request -------------------------------------------------------------------


@pytest.mark.parametrize("raw", [[], "hello", None, 42], ids=["array", "string", "null", "number"])
def test_body_must_be_an_object(raw):
    with pytest.raises(RequestError, match="JSON object"):
        validate_request(raw)


def without(key: str) -> dict[str, Any]:
    b = body()
    del b[key]
    return b


@pytest.mark.parametrize(
    ("b", "field"),
    [
        (without("model"), "model"),
        (body(model=5), "model"),
        (body(model=""), "model"),
        (body(model=None), "model"),
        (without("messages"), "messages"),
        (body(messages="hi"), "messages"),
        (body(messages=[]), "messages"),
        (body(messages={"role": "user"}), "messages"),
        (without("max_tokens"), "max_tokens"),
        (body(max_tokens="1024"), "max_tokens"),
        (body(max_tokens=0), "max_tokens"),
        (body(max_tokens=1.5), "max_tokens"),
        (body(max_tokens=True), "max_tokens"),
        (body(messages=[{"role": "human", "content": "hi"}]), "messages.0.role"),
        (body(messages=[{"role": "user"}]), "messages.0.content"),
        (body(messages=[{"role": "user", "content": [{"text": "no type"}]}]), "messages.0.content.0"),
        (body(stream="yes"), "stream"),
        (body(tools={"name": "x"}), "tools"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_invalid_fields_are_named(b, field):
    with pytest.raises(RequestError) as excinfo:
        validate_request(b)
    assert excinfo.value.status == 400
    assert excinfo.value.message.startswith(f"{field}:")


# --- deferred tools (ToolSearch) ----------------------------------------------------------

WEB_FETCH = {"name": "WebFetch", "description": "Fetch a URL", "defer_loading": True,
             "input_schema": {"type": "object", "properties": {"url": {"type": "string"}}}}
TOOL_SEARCH = {"name": "ToolSearch", "description": "Load deferred tools",
               "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}


def _search_round(references: list[dict]) -> list[dict]:
    return [
        {"role": "user", "content": "fetch example.com"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "ToolSearch",
                                           "input": {"query": "select:WebFetch"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": references}]},
    ]


def test_a_deferred_tool_is_offered_once_a_tool_reference_loaded_it():
    before = {"model": "claude-x", "max_tokens": 100, "tools": [TOOL_SEARCH, WEB_FETCH],
              "messages": [{"role": "user", "content": "fetch example.com"}]}
    offered = [t["function"]["name"] for t in translate_request(validate_request(before), ollama_model="m").ollama["tools"]]
    assert offered == ["ToolSearch"]
    after = {**before, "messages": _search_round([{"type": "tool_reference", "tool_name": "WebFetch"}])}
    request = translate_request(validate_request(after), ollama_model="m")
    assert [t["function"]["name"] for t in request.ollama["tools"]] == ["ToolSearch", "WebFetch"]
    assert "WebFetch" in request.tools
    tool_message = next(m for m in request.ollama["messages"] if m["role"] == "tool")
    assert tool_message["content"] == "Loaded the tool WebFetch: now in your tool list; call them directly."
    assert tool_message["tool_name"] == "ToolSearch"


def test_tool_references_with_text_name_every_loaded_tool():
    body = {"model": "claude-x", "max_tokens": 100, "tools": [TOOL_SEARCH, WEB_FETCH],
            "messages": _search_round([{"type": "text", "text": "2 matches"},
                                       {"type": "tool_reference", "tool_name": "WebFetch"},
                                       {"type": "tool_reference", "tool_name": "WebSearch"}])}
    tool_message = next(m for m in translated(body)["messages"] if m["role"] == "tool")
    assert tool_message["content"] == (
        "2 matches\n\nLoaded the tools WebFetch, WebSearch: now in your tool list; call them directly."
    )


def test_cached_tools_follow_what_each_request_loaded():
    from proxy.protocol.known_tools import ToolsCache, parse_request_body

    cache = ToolsCache()
    loaded = {"model": "claude-x", "max_tokens": 100, "tools": [TOOL_SEARCH, WEB_FETCH],
              "messages": _search_round([{"type": "tool_reference", "tool_name": "WebFetch"}])}
    fresh = {**loaded, "messages": [{"role": "user", "content": "hi"}]}
    for body, expected in ((fresh, ["ToolSearch"]), (loaded, ["ToolSearch", "WebFetch"]), (fresh, ["ToolSearch"])):
        parsed, known = parse_request_body(json.dumps(body).encode(), cache)
        request = translate_request(validate_request(parsed), ollama_model="m", known_tools=known)
        assert [t["function"]["name"] for t in request.ollama["tools"]] == expected
        assert json.loads(encode_ollama_body(request))["tools"] == request.ollama["tools"]
