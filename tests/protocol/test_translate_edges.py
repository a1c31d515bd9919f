"""What Ollama receives at the edges mutation testing found unguarded (docs/TESTING.md).

Context sizing at its boundaries and under ``max_num_ctx``, ``tool_choice: any``, tool
emulation keeping the user's own words and images, and merged assistant turns keeping
their thinking.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
import trio

from proxy.errors import PromptTooLong, RequestError
from proxy.protocol.context import OUTPUT_HEADROOM, ContextPolicy, choose_num_ctx, looks_truncated
from proxy.protocol.translate import translate_request, validate_request
from tests.fake_ollama import text_stream

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
BASH = {"name": "Bash", "description": "Run a command",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}


def ollama_messages(messages: list[dict[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    options = {k: extra.pop(k) for k in ("native_tools",) if k in extra}
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": messages, **extra}
    return translate_request(validate_request(body), ollama_model="m", **options).ollama["messages"]


def num_ctx(estimate: int, *, max_tokens: int = 64000, model_max: int | None = 131072,
            maximum: int = 0, pinned: int = 0, high_water: int = 0) -> int:
    return choose_num_ctx(estimate=estimate, max_tokens=max_tokens, model_max=model_max,
                          policy=ContextPolicy(pinned=pinned, maximum=maximum), high_water=high_water)


# --- num_ctx ------------------------------------------------------------------------------


async def test_max_num_ctx_caps_what_ollama_receives(fake_ollama, start_proxy):
    # ~8.3k tokens of prompt + 8k headroom → 32k uncapped; the operator's cap is 16k, and
    # the prompt still leaves a quarter of that for the answer.
    body = {"model": "claude-opus-5-5", "max_tokens": 64000,
            "messages": [{"role": "user", "content": "word " * 6000}]}
    for settings, expected in (({}, 32768), ({"max_num_ctx": 16384}, 16384)):
        proxy = await start_proxy(**settings)
        fake_ollama.script_chat(text_stream("ok"))
        async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
            with trio.fail_after(10):
                response = await client.post("/v1/messages", json=body)
        assert response.status_code == 200
        assert fake_ollama.chat_requests[-1].body["options"]["num_ctx"] == expected


async def test_max_num_ctx_refuses_a_prompt_the_cap_cannot_hold(fake_ollama, start_proxy):
    proxy = await start_proxy(max_num_ctx=16384)
    body = {"model": "claude-opus-5-5", "max_tokens": 64000,
            "messages": [{"role": "user", "content": "word " * 12000}]}  # ~16.7k tokens
    async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
        with trio.fail_after(10):
            response = await client.post("/v1/messages", json=body)
    assert response.status_code == 400
    # a quarter of the 16k cap is kept for the answer
    assert response.json()["error"]["message"].endswith(" tokens > 12288 maximum")
    assert fake_ollama.chat_requests == []


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        # the need exactly fills a step: that step, not the next
        ({"estimate": 16384 - OUTPUT_HEADROOM}, 16384),
        ({"estimate": 16384 - OUTPUT_HEADROOM + 1}, 32768),
        ({"estimate": 8192 - 100, "max_tokens": 100}, 8192),
        ({"estimate": 8192 - 99, "max_tokens": 100}, 16384),
        # the smaller of the model's maximum and max_num_ctx wins, whichever it is
        ({"estimate": 12000, "model_max": 24576, "maximum": 65536}, 24576),
        ({"estimate": 12000, "model_max": 65536, "maximum": 24576}, 24576),
        ({"estimate": 12000, "model_max": None, "maximum": 24576}, 24576),
        # an earlier, larger window is kept, but never beyond the cap
        ({"estimate": 100, "high_water": 65536, "model_max": 40960}, 40960),
        ({"estimate": 100, "high_water": 65536, "model_max": None}, 65536),
        # pinned wins over sizing, but a prompt over the cap is still refused (below)
        ({"estimate": 100, "pinned": 4096, "high_water": 65536}, 4096),
    ],
)
def test_num_ctx_at_its_boundaries(kwargs, expected):
    assert num_ctx(**kwargs) == expected


def test_a_prompt_that_exactly_leaves_room_for_the_answer_fits():
    # room = min(max_tokens, headroom, limit / 4) = 8192 of the 32768 window
    assert num_ctx(32768 - 8192, model_max=32768) == 32768
    with pytest.raises(PromptTooLong) as caught:
        num_ctx(32768 - 8192 + 1, model_max=32768)
    assert caught.value.message == "prompt is too long: 24577 tokens > 24576 maximum"
    # a small max_tokens needs less room; a small window keeps a quarter of itself
    assert num_ctx(32768 - 10, max_tokens=10, model_max=32768) == 32768
    with pytest.raises(PromptTooLong) as caught:
        num_ctx(8192 - 2047, model_max=8192)
    assert caught.value.message == "prompt is too long: 6145 tokens > 6144 maximum"
    with pytest.raises(PromptTooLong):
        num_ctx(30000, pinned=8192, maximum=16384)


def test_truncation_threshold_is_95_percent():
    assert looks_truncated(950, 1000) and not looks_truncated(949, 1000)
    assert not looks_truncated(10, 0)


# --- tool_choice ----------------------------------------------------------------------------


def test_tool_choice_any_tells_the_model_to_call_a_tool():
    messages = [{"role": "user", "content": "x"}]
    system = ollama_messages(messages, system="Be brief.", tools=[BASH], tool_choice={"type": "any"})[0]
    assert system == {"role": "system", "content": "Be brief.\n\nIn this reply you must call one of the available tools."}
    # without a system prompt of its own the instruction is the system prompt
    first = ollama_messages(messages, tools=[BASH], tool_choice={"type": "any"})[0]
    assert first == {"role": "system", "content": "In this reply you must call one of the available tools."}
    # auto, or a named tool without a name, adds nothing; nor does any without tools
    for choice in ({"type": "auto"}, {"type": "tool"}):
        assert ollama_messages(messages, tools=[BASH], tool_choice=choice)[0]["role"] == "user"
    assert ollama_messages(messages, tool_choice={"type": "any"})[0]["role"] == "user"


# --- tool emulation -------------------------------------------------------------------------


def emulated_round(*after: dict[str, Any]) -> list[dict[str, Any]]:
    messages = [
        {"role": "user", "content": "look at the screenshot"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "text", "text": "a.png"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}, *after]},
    ]
    return ollama_messages(messages, system="Be brief.", tools=[BASH], native_tools=False)


def test_emulated_tools_keep_the_users_words_and_images_after_the_results():
    sent = emulated_round(
        {"type": "text", "text": "now fix it"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG[::-1]}},
    )
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[0]["content"].startswith("Be brief.\n\n# Tools\n")
    assert sent[2]["content"] == '<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>'
    assert sent[3] == {
        "role": "user",
        "content": '<tool_response name="Bash">\na.png\n</tool_response>\n\nnow fix it',
        "images": [PNG, PNG[::-1]],
    }


def test_emulated_tools_without_a_system_prompt_describe_the_tools_first():
    messages = [{"role": "user", "content": "hi"}]
    sent = ollama_messages(messages, tools=[BASH], native_tools=False)
    assert sent[0]["role"] == "system" and sent[0]["content"].startswith("# Tools\n")
    assert sent[0]["content"].endswith(
        '{"name":"Bash","description":"Run a command","parameters":{"type":"object",'
        '"properties":{"command":{"type":"string"}}}}')
    assert sent[1:] == [{"role": "user", "content": "hi"}]


def test_emulated_tool_result_without_images_has_no_images_key():
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "text", "text": "Listing."},
                                          {"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]},
    ]
    sent = ollama_messages(messages, tools=[BASH], native_tools=False)
    assert sent[2]["content"] == 'Listing.\n<tool_call>{"name": "Bash", "arguments": {}}</tool_call>'
    assert "tool_calls" not in sent[2]
    assert sent[3] == {"role": "user", "content": '<tool_response name="Bash">\nx\n</tool_response>'}


# --- merged turns ---------------------------------------------------------------------------


def test_consecutive_assistant_turns_keep_both_thinking_texts_and_calls():
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "first thought", "signature": ""},
                                          {"type": "text", "text": "One."}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "second thought", "signature": ""},
                                          {"type": "text", "text": "Two."},
                                          {"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
    ]
    sent = ollama_messages(messages, tools=[BASH])
    assert sent[1] == {"role": "assistant", "content": "One.Two.", "thinking": "first thought\n\nsecond thought",
                       "tool_calls": [{"id": "t1", "function": {"name": "Bash", "arguments": {}}}]}
    # an empty first turn takes the second's content and thinking as they are
    messages[1] = {"role": "assistant", "content": ""}
    sent = ollama_messages(messages, tools=[BASH])
    assert sent[1]["content"] == "Two." and sent[1]["thinking"] == "second thought"


def test_consecutive_user_turns_join_text_and_images():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "one"}, image]},
                {"role": "user", "content": [{"type": "text", "text": "two"}, image]}]
    assert ollama_messages(messages) == [{"role": "user", "content": "one\n\ntwo", "images": [PNG, PNG]}]


# --- content blocks: what Ollama gets, and the 400 the client gets -------------------------


def image(source: Any) -> dict[str, Any]:
    return {"type": "image", "source": source}


@pytest.mark.parametrize(
    "block, message",
    [
        ({"type": "text", "text": 5}, "messages.0.content.1.text: must be a string"),
        (image("x"), "messages.0.content.1.source: must be an object"),
        (image({"type": "base64"}), "messages.0.content.1.source: expected a base64 image source with string 'data'"),
        (image({"type": "file", "data": PNG}),
         "messages.0.content.1.source: expected a base64 image source with string 'data'"),
        (image({"type": "url", "url": "https://x/y.png"}),
         "messages.0.content.1.source: image URLs are not supported by the local model; send the image as base64 data"),
        ({"type": "document", "source": []}, "messages.0.content.1.source: must be an object"),
        ({"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": None}]}},
         "messages.0.content.1.source.content.0.text: must be a string"),
        ({"type": "document", "source": {"type": "text", "data": 5}},
         "messages.0.content.1.source: documents of source type 'text' are not supported by the local model;"
         " only text documents are"),
        ({"type": "document", "source": {"type": "url", "content": "x"}},
         "messages.0.content.1.source: documents of source type 'url' are not supported by the local model;"
         " only text documents are"),
    ],
)
def test_a_bad_content_block_is_a_400_naming_it(block, message):
    with pytest.raises(RequestError) as caught:
        ollama_messages([{"role": "user", "content": [{"type": "text", "text": "hi"}, block]}])
    assert caught.value.message == message and caught.value.status == 400


def test_a_bad_block_in_a_system_message_is_a_400_naming_it():
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"},
                {"role": "system", "content": [{"type": "text", "text": 1}]}]
    with pytest.raises(RequestError) as caught:
        ollama_messages(messages)
    assert caught.value.message == "messages.2.content.0.text: must be a string"
    call = {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {}}]}
    result = {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": 1}]}
    with pytest.raises(RequestError) as caught:
        ollama_messages([{"role": "user", "content": "go"}, call, {"role": "user", "content": [result]}])
    assert caught.value.message == "messages.2.content.0.content.0.text: must be a string"


def test_text_documents_reach_ollama_in_document_tags():
    def sent(document: dict[str, Any]) -> str:
        return ollama_messages([{"role": "user", "content": [document]}])[0]["content"]

    assert sent({"type": "document", "source": {"type": "text", "data": "plain"}}) == "<document>\nplain\n</document>"
    assert sent({"type": "document", "title": 'a "b"', "source": {"type": "content", "content": "inline"}}) == (
        '<document title="a \\"b\\"">\ninline\n</document>')
    assert sent({"type": "document", "source": {"type": "content", "content": [
        {"type": "text", "text": "one"}, {"type": "image", "source": {}}, "junk", {"type": "text", "text": "two"}]}}) == (
        "<document>\none\n\ntwo\n</document>")


def test_system_blocks_and_inline_system_messages_are_joined_by_blank_lines():
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"},
                {"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "image", "source": {}},
                                               {"type": "text", "text": "b"}]},
                {"role": "user", "content": "next"}]
    system = [{"type": "text", "text": "x-anthropic-billing-header: cc_version=1"},
              {"type": "text", "text": "first"}, {"type": "text", "text": "second"}]
    sent = ollama_messages(messages, system=system)
    assert sent[0] == {"role": "system", "content": "first\n\nsecond"}
    assert sent[3] == {"role": "user", "content": "<system-reminder>\na\n\nb\n</system-reminder>\n\nnext"}


def test_unknown_blocks_are_dropped_with_a_log_line_and_known_ones_are_not(caplog):
    caplog.set_level(logging.INFO, logger="proxy")
    messages = [{"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {}}]},
                {"role": "user", "content": [
        {"type": "text", "text": "hi"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "document", "source": {"type": "text", "data": "d"}},
        {"type": "search_result", "content": []},
        {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "r"},
                                                                {"type": "audio"}]},
    ]}]
    ollama_messages(messages)
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert sorted(dropped) == ["dropped a 'audio' block inside a tool_result at messages.2.content.4.content.1",
                       "dropped a 'search_result' block at messages.2.content.3: the local model cannot use it"]


# --- tool results and assistant turns ----------------------------------------------------------


CALL = {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {}}]}


def result_turn(**result: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": "go"}, CALL,
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", **result}]}]


@pytest.mark.parametrize(
    "result, content",
    [
        ({}, ""),
        ({"content": None}, ""),
        ({"is_error": True}, "Error: the tool failed"),
        ({"is_error": True, "content": []}, "Error: the tool failed"),
        ({"is_error": True, "content": "boom"}, "Error: boom"),
        ({"content": ["junk", {"type": "text", "text": "a"}, 7, {"type": "text", "text": "b"}]}, "a\n\nb"),
    ],
)
def test_a_tool_result_reaches_ollama_as_a_tool_message(result, content):
    sent = ollama_messages(result_turn(**result))
    assert sent[2] == {"role": "tool", "content": content, "tool_name": "Bash", "tool_call_id": "t"}


def test_a_tool_result_with_content_of_the_wrong_type_is_a_400():
    with pytest.raises(RequestError) as caught:
        ollama_messages(result_turn(content=5))
    assert caught.value.message == "messages.2.content.0.content: must be a string or an array of content blocks"


@pytest.mark.parametrize(
    "block, message",
    [
        ({"type": "tool_use", "id": 5, "name": "Bash", "input": {}}, "messages.1.content.0: tool_use needs a string 'id' and 'name'"),
        ({"type": "tool_use", "id": "t", "name": None, "input": {}}, "messages.1.content.0: tool_use needs a string 'id' and 'name'"),
        ({"type": "tool_use", "id": "t", "name": "Bash", "input": []}, "messages.1.content.0.input: must be an object"),
        ({"type": "text", "text": None}, "messages.1.content.0.text: must be a string"),
    ],
)
def test_a_bad_assistant_block_is_a_400_naming_it(block, message):
    with pytest.raises(RequestError) as caught:
        ollama_messages([{"role": "user", "content": "go"}, {"role": "assistant", "content": [block]}])
    assert caught.value.message == message


def test_a_tool_use_without_input_is_called_with_no_arguments_and_redacted_thinking_is_left_out(caplog):
    caplog.set_level(logging.INFO, logger="proxy")
    messages = [{"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "opaque"},
                                                  {"type": "thinking", "thinking": None},
                                                  {"type": "tool_use", "id": "t", "name": "Bash"}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]}]
    sent = ollama_messages(messages)
    assert sent[1] == {"role": "assistant", "content": "",
                       "tool_calls": [{"id": "t", "function": {"name": "Bash", "arguments": {}}}]}
    assert not [r for r in caplog.records if "dropped" in r.getMessage()]


# --- validation: the 400 a client gets, word for word ------------------------------------------


def request(**fields: Any) -> dict[str, Any]:
    b = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    b.update(fields)
    return {k: v for k, v in b.items() if v is not ...}


@pytest.mark.parametrize(
    "b, message",
    [
        ([], "request body must be a JSON object"),
        (request(model=...), "model: field required"),
        (request(model=" "), "model: must be a non-empty string"),
        (request(max_tokens=...), "max_tokens: field required"),
        (request(max_tokens=0), "max_tokens: must be an integer >= 1"),
        (request(max_tokens=False), "max_tokens: must be an integer >= 1"),
        (request(messages=...), "messages: field required"),
        (request(messages={}), "messages: must be an array"),
        (request(messages=[]), "messages: at least one message is required"),
        (request(messages=["hi"]), "messages.0: must be an object"),
        (request(messages=[{"role": "tool", "content": "x"}]), "messages.0.role: must be one of 'user', 'assistant', 'system'"),
        (request(messages=[{"role": "user", "content": 5}]), "messages.0.content: must be a string or an array of content blocks"),
        (request(messages=[{"role": "user", "content": ["x"]}]), "messages.0.content.0: must be an object with a 'type'"),
        (request(messages=[{"role": "user", "content": [{"type": 1}]}]), "messages.0.content.0: must be an object with a 'type'"),
        (request(stream=1), "stream: must be a boolean"),
        (request(system=5), "system: must be a string or an array of text blocks"),
        (request(system=[{"type": "text", "text": "a"}, {"type": "text"}]), "system.1: must be a text block with a string 'text'"),
        (request(system=["a"]), "system.0: must be a text block with a string 'text'"),
        (request(tools={}), "tools: must be an array"),
        (request(tools=[{"name": "a"}, "b"]), "tools.1: must be an object with a string 'name'"),
        (request(tools=[{"name": 5}]), "tools.0: must be an object with a string 'name'"),
        (request(tools=[{"name": "a", "input_schema": "x"}]), "tools.0.input_schema: must be an object"),
        (request(tools=[{"name": "a", "type": "custom", "input_schema": []}]), "tools.0.input_schema: must be an object"),
        (request(temperature="0.5"), "temperature: must be a number"),
        (request(top_p=True), "top_p: must be a number"),
        (request(top_k=1.5), "top_k: must be an integer"),
        (request(top_k=True), "top_k: must be an integer"),
        (request(stop_sequences="END"), "stop_sequences: must be an array of strings"),
        (request(stop_sequences=["END", 5]), "stop_sequences: must be an array of strings"),
    ],
)
def test_an_invalid_request_is_a_400_saying_what_is_wrong(b, message):
    with pytest.raises(RequestError) as caught:
        validate_request(b)
    assert caught.value.message == message and caught.value.status == 400


@pytest.mark.parametrize(
    "b",
    [
        request(max_tokens=1),
        request(messages=[{"role": "system", "content": []}, {"role": "assistant", "content": ""}]),
        request(system=None, stream=False, temperature=None, top_p=None, top_k=None, stop_sequences=None),
        request(system="", temperature=0, top_p=1, top_k=0, stop_sequences=[]),
        request(tools=[{"name": "web", "type": "web_search_20250305", "input_schema": "server-defined"}]),
        request(tools=[{"name": "a", "input_schema": None}], temperature=0.5),
    ],
)
def test_a_valid_request_passes(b):
    assert validate_request(b) is b


def test_options_and_tools_as_ollama_gets_them(caplog):
    caplog.set_level(logging.INFO, logger="proxy")
    b = request(temperature=0, top_p=0.5, top_k=3, stop_sequences=[],
                tools=[{"name": "a", "input_schema": None, "description": 5},
                       {"name": "web", "type": "web_search_20250305"},
                       {"name": "b", "type": "custom", "description": "B", "input_schema": {"type": "object"}}])
    ollama = translate_request(validate_request(b), ollama_model="m").ollama
    assert ollama["options"] == {"num_predict": 100, "temperature": 0, "top_p": 0.5, "top_k": 3}
    assert ollama["tools"] == [
        {"type": "function", "function": {"name": "a", "description": "", "parameters": {"type": "object", "properties": {}}}},
        {"type": "function", "function": {"name": "b", "description": "B", "parameters": {"type": "object"}}},
    ]
    assert [r.getMessage() for r in caplog.records] == [
        "left out server tool 'web' (type 'web_search_20250305'): Ollama cannot run it"]
    assert ollama["stream"] is True and ollama["model"] == "m"


def test_tool_choice_none_sends_neither_tools_nor_an_instruction():
    sent = translate_request(validate_request(request(tools=[BASH], tool_choice={"type": "none"})),
                             ollama_model="m").ollama
    assert "tools" not in sent and sent["messages"] == [{"role": "user", "content": "hi"}]


# --- history rewrites as Ollama gets them ---------------------------------------------------


def use(tool_id: str, name: str = "Bash") -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": {"n": tool_id}}


def result(tool_id: str, content: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tool_id, "content": content}


def shape(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(m["role"], m.get("tool_call_id") or [c["id"] for c in m.get("tool_calls", [])] or m["content"])
            for m in messages]


def test_three_parallel_calls_become_three_rounds_in_call_order():
    messages = [{"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "text", "text": "all"}, use("a"), use("b"), use("c")]},
                {"role": "user", "content": [result("c", "C"), result("a", "A"), result("b", "B"),
                                             {"type": "text", "text": "next"}]}]
    assert shape(ollama_messages(messages, tools=[BASH])) == [
        ("user", "go"), ("assistant", ["a"]), ("tool", "a"), ("assistant", ["b"]), ("tool", "b"),
        ("assistant", ["c"]), ("tool", "c"), ("user", "next")]


def test_parallel_calls_stay_together_when_sequential_rounds_are_off():
    messages = [{"role": "user", "content": "go"},
                {"role": "assistant", "content": [use("a"), use("b")]},
                {"role": "user", "content": [result("a", "A"), result("b", "B")]}]
    body = {"model": "c", "max_tokens": 5, "messages": messages, "tools": [BASH]}
    sent = translate_request(validate_request(body), ollama_model="m", sequential_tools=False).ollama["messages"]
    assert shape(sent) == [("user", "go"), ("assistant", ["a", "b"]), ("tool", "a"), ("tool", "b")]


def test_a_call_answered_only_after_a_system_message_keeps_its_result():
    messages = [{"role": "user", "content": "go"}, {"role": "assistant", "content": [use("a")]},
                {"role": "system", "content": "note"}, {"role": "user", "content": [result("a", "A")]}]
    sent = ollama_messages(messages, tools=[BASH])
    assert ("tool", "a") in shape(sent)
    assert next(m for m in sent if m["role"] == "tool")["content"] == "A"


def test_calls_followed_by_another_assistant_turn_get_interrupted_results():
    messages = [{"role": "user", "content": "go"}, {"role": "assistant", "content": [use("a"), use("b")]},
                {"role": "assistant", "content": "never mind"}, {"role": "user", "content": "ok"}]
    sent = ollama_messages(messages, tools=[BASH])
    assert shape(sent) == [("user", "go"), ("assistant", ["a"]), ("tool", "a"), ("assistant", ["b"]), ("tool", "b"),
                           ("assistant", "never mind"), ("user", "ok")]
    assert [m["content"] for m in sent if m["role"] == "tool"] == [
        "Error: The tool call was interrupted before it returned a result (the user stopped it)."] * 2


def test_a_repeated_result_for_one_call_is_dropped_with_a_log_line(caplog):
    caplog.set_level(logging.INFO, logger="proxy")
    messages = [{"role": "user", "content": "go"}, {"role": "assistant", "content": [use("a")]},
                {"role": "user", "content": [result("a", "first"), result("a", "again")]}]
    sent = ollama_messages(messages, tools=[BASH])
    assert [m["content"] for m in sent if m["role"] == "tool"] == ["first"]
    assert any("dropped a tool_result for a (messages.2)" in r.getMessage() for r in caplog.records)


def test_emulated_tools_keep_an_image_the_user_sends_after_a_text_result():
    sent = ollama_messages([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [use("t1")]},
        {"role": "user", "content": [result("t1", "done"), {"type": "text", "text": "see this"},
                                     {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]},
    ], tools=[BASH], native_tools=False)
    assert sent[-1] == {"role": "user", "content": '<tool_response name="Bash">\ndone\n</tool_response>\n\nsee this',
                        "images": [PNG]}


def test_emulated_tool_descriptions_keep_their_characters():
    tool = {"name": "Lire", "description": "Lit un fichier — «ä»", "input_schema": {"type": "object"}}
    system = ollama_messages([{"role": "user", "content": "x"}], tools=[tool], native_tools=False)[0]["content"]
    assert system.endswith('{"name":"Lire","description":"Lit un fichier — «ä»","parameters":{"type":"object"}}')


def test_emulated_tools_are_listed_one_per_line_and_past_calls_keep_their_characters():
    other = {"name": "Read", "input_schema": {"type": "object"}}
    messages = [{"role": "user", "content": "go"},
                {"role": "assistant", "content": "Sure."},
                {"role": "user", "content": "write it"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash",
                                                   "input": {"command": "echo «ä»"}}]},
                {"role": "user", "content": [result("t1", "«ä»")]}]
    sent = ollama_messages(messages, tools=[BASH, other], native_tools=False)
    assert sent[0]["content"].endswith(
        'Available tools (JSON Schema of their arguments):\n\n'
        '{"name":"Bash","description":"Run a command","parameters":{"type":"object","properties":{"command":{"type":"string"}}}}\n'
        '{"name":"Read","description":"","parameters":{"type":"object"}}')
    assert sent[1:] == [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": "write it"},
        {"role": "assistant", "content": '<tool_call>{"name": "Bash", "arguments": {"command": "echo «ä»"}}</tool_call>'},
        {"role": "user", "content": '<tool_response name="Bash">\n«ä»\n</tool_response>'},
    ]


def test_an_assistant_turn_of_several_blocks_reaches_ollama_joined():
    messages = [{"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "a", "signature": ""},
                                                  {"type": "text", "text": "One "},
                                                  {"type": "thinking", "thinking": "b", "signature": ""},
                                                  {"type": "text", "text": "two."}]}]
    assert ollama_messages(messages)[1] == {"role": "assistant", "content": "One two.", "thinking": "a\n\nb"}


def test_recognized_tools_with_tool_choice_none_encode_as_json_dumps_does():
    from proxy.protocol.known_tools import ToolsCache, parse_request_body
    from proxy.protocol.translate import encode_ollama_body

    raw = json.dumps(request(tools=[BASH], tool_choice={"type": "none"})).encode()
    body, known = parse_request_body(raw, ToolsCache())
    assert known is not None
    translated = translate_request(validate_request(body), ollama_model="m", known_tools=known)
    assert "tools" not in translated.ollama
    assert encode_ollama_body(translated) == json.dumps(translated.ollama, allow_nan=False).encode()


def test_the_turns_after_a_parallel_round_are_kept():
    messages = [{"role": "user", "content": "go"},
                {"role": "assistant", "content": [use("a"), use("b")]},
                {"role": "user", "content": [result("a", "A"), result("b", "B")]},
                {"role": "assistant", "content": "Both done."},
                {"role": "user", "content": "thanks"}]
    assert shape(ollama_messages(messages, tools=[BASH])) == [
        ("user", "go"), ("assistant", ["a"]), ("tool", "a"), ("assistant", ["b"]), ("tool", "b"),
        ("assistant", "Both done."), ("user", "thanks")]


def test_a_conversation_ending_in_parallel_calls_keeps_them():
    messages = [{"role": "user", "content": "go"}, {"role": "assistant", "content": [use("a"), use("b")]}]
    assert shape(ollama_messages(messages, tools=[BASH])) == [("user", "go"), ("assistant", ["a", "b"])]


def test_an_image_only_turn_merged_with_text_adds_no_blank_lines():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    messages = [{"role": "user", "content": [image]}, {"role": "user", "content": "what is it?"}]
    assert ollama_messages(messages) == [{"role": "user", "content": "what is it?", "images": [PNG]}]


def test_a_window_of_one_token_filled_is_truncated():
    assert looks_truncated(1, 1)


def test_images_beside_tool_results_reach_ollama():
    messages = [{"role": "user", "content": "go"}, CALL,
                {"role": "user", "content": [result("t", "ok"),
                                             {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]
    sent = ollama_messages(messages, tools=[BASH])
    assert sent[-2:] == [{"role": "tool", "content": "ok", "tool_name": "Bash", "tool_call_id": "t"},
                         {"role": "user", "content": "", "images": [PNG]}]


def test_a_text_turn_merged_with_an_image_turn_keeps_the_image():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    messages = [{"role": "user", "content": "look"}, {"role": "user", "content": [image]}]
    assert ollama_messages(messages) == [{"role": "user", "content": "look", "images": [PNG]}]


def test_system_messages_first_or_last_become_reminders():
    assert ollama_messages([{"role": "system", "content": "note"}, {"role": "user", "content": "go"}]) == [
        {"role": "user", "content": "<system-reminder>\nnote\n</system-reminder>\n\ngo"}]
    assert ollama_messages([{"role": "user", "content": "go"}, {"role": "system", "content": "note"}]) == [
        {"role": "user", "content": "go\n\n<system-reminder>\nnote\n</system-reminder>"}]
    with pytest.raises(RequestError) as caught:
        ollama_messages([{"role": "user", "content": "go"}, {"role": "system", "content": [{"type": "text"}]}])
    assert caught.value.message == "messages.1.content.0.text: must be a string"


@pytest.mark.parametrize("known", [False, True])
def test_a_nan_is_never_sent_to_ollama(known):
    # The server's parser refuses NaN anywhere in the body (a 400, below); a NaN that gets
    # past a parser (json.loads, or put in after validation) is refused by the encoder too.
    from proxy.protocol.known_tools import ToolsCache, parse_request_body
    from proxy.protocol.translate import encode_ollama_body

    nan_tool = {"name": "N", "input_schema": {"type": "object", "default": float("nan")}}
    raw = json.dumps(request(tools=[nan_tool])).encode()
    if known:
        with pytest.raises(ValueError, match="NaN is not a JSON number"):
            parse_request_body(raw, ToolsCache())
    body, tools = json.loads(raw), None
    translated = translate_request(validate_request(body), ollama_model="m", known_tools=tools)
    with pytest.raises(ValueError):
        encode_ollama_body(translated)
    # a NaN among the other members (here put there after validation) is refused on both paths too
    raw = json.dumps(request(tools=[BASH])).encode()
    body, tools = parse_request_body(raw, ToolsCache()) if known else (json.loads(raw), None)
    translated = translate_request(validate_request(body), ollama_model="m", known_tools=tools)
    translated.ollama["options"]["temperature"] = float("inf")
    with pytest.raises(ValueError):
        encode_ollama_body(translated)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_temperature_of_nan_or_infinity_is_refused_by_validation_too(value):
    # the parser refuses them first; validation still does not let one through to Ollama
    with pytest.raises(RequestError, match="^temperature: must be a number$"):
        validate_request(request(temperature=value))


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"-Infinity"])
async def test_a_temperature_of_nan_or_infinity_is_a_400_not_a_500(fake_ollama, proxy, raw):
    body = (b'{"model": "claude-opus-5-5", "max_tokens": 5, "temperature": ' + raw
            + b', "messages": [{"role": "user", "content": "hi"}]}')
    async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
        with trio.fail_after(10):
            response = await client.post("/v1/messages", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 400
            # refused as it is parsed: JSON has no such number
            assert response.json()["error"] == {
                "type": "invalid_request_error",
                "message": f"request body is not valid JSON: {raw.decode()} is not a JSON number (numbers must be finite)"}
            # and the server keeps serving
            ok = await client.post("/v1/messages", json=request(temperature=0.5))
    assert ok.status_code == 200
    assert [r.body["options"]["temperature"] for r in fake_ollama.chat_requests] == [0.5]


def test_text_typed_after_an_interrupted_call_reaches_ollama():
    messages = [{"role": "user", "content": "go"}, CALL, {"role": "user", "content": "stop, do X instead"}]
    sent = ollama_messages(messages, tools=[BASH])
    assert sent[2:] == [
        {"role": "tool", "content": "Error: The tool call was interrupted before it returned a result (the user stopped it).",
         "tool_name": "Bash", "tool_call_id": "t"},
        {"role": "user", "content": "stop, do X instead"}]


def test_a_server_tool_block_with_an_id_is_no_call_awaiting_a_result():
    messages = [{"role": "user", "content": "search"},
                {"role": "assistant", "content": [{"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
                                                   "input": {}}, {"type": "text", "text": "Found it."}]},
                {"role": "user", "content": "thanks"}]
    assert ollama_messages(messages, tools=[BASH]) == [
        {"role": "user", "content": "search"}, {"role": "assistant", "content": "Found it."},
        {"role": "user", "content": "thanks"}]


def test_tool_choice_any_with_only_server_tools_adds_no_instruction():
    web = {"name": "web", "type": "web_search_20250305"}
    sent = translate_request(validate_request(request(tools=[web], tool_choice={"type": "any"})), ollama_model="m").ollama
    assert "tools" not in sent and sent["messages"] == [{"role": "user", "content": "hi"}]


def test_only_a_json_schema_output_format_becomes_ollamas_format():
    schema = {"type": "object"}
    for fmt, expected in (({"type": "json_schema", "schema": schema}, schema),
                          ({"type": "text", "schema": schema}, None),
                          ({"type": "json_schema", "schema": "x"}, None)):
        sent = translate_request(validate_request(request(output_config={"format": fmt})), ollama_model="m").ollama
        assert sent.get("format") == expected


def test_an_empty_turn_after_an_interrupted_call_adds_no_empty_message():
    sent = ollama_messages([{"role": "user", "content": "go"}, CALL, {"role": "user", "content": ""}], tools=[BASH])
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
