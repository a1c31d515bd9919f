"""History rewrites for small models: sequential tools, orphan results, tool_choice, emulation."""

from __future__ import annotations

import copy
import json
import logging

import httpx
import trio

from proxy.protocol.history import INTERRUPTED, pair_tool_results, sequentialize
from proxy.protocol.translate import translate_request, validate_request
from tests.conftest import FIXTURES
from tests.fake_ollama import Status, text_stream


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())["body"]


def test_parallel_calls_become_rounds_on_the_captured_request():
    body = fixture("02-parallel-tool-results-with-thinking.json")
    ollama = translate_request(validate_request(body), ollama_model="qwen3:8b").ollama["messages"]
    rounds = [(m["role"], m.get("tool_call_id") or [c["id"] for c in m.get("tool_calls", [])]) for m in ollama
              if m["role"] in ("assistant", "tool")]
    assert rounds == [("assistant", ["toolu_01A"]), ("tool", "toolu_01A"), ("assistant", ["toolu_01B"]), ("tool", "toolu_01B")]
    first, second = [m for m in ollama if m["role"] == "assistant"]
    assert first["thinking"] == "I will write two files." and first["content"] == "Writing both files."
    assert "thinking" not in second and second["content"] == ""
    assert [m["tool_name"] for m in ollama if m["role"] == "tool"] == ["Write", "Bash"]


def test_other_blocks_of_the_result_turn_come_after_the_last_round():
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "text", "text": "both"},
                                          {"type": "tool_use", "id": "a", "name": "Read", "input": {}},
                                          {"type": "tool_use", "id": "b", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "b", "content": "B"},
                                     {"type": "text", "text": "reminder"},
                                     {"type": "tool_result", "tool_use_id": "a", "content": "A"}]},
    ]
    out = sequentialize(messages)
    assert [m["role"] for m in out] == ["user", "assistant", "user", "assistant", "user"]
    assert out[1]["content"][0] == {"type": "text", "text": "both"}
    assert out[2]["content"] == [{"type": "tool_result", "tool_use_id": "a", "content": "A"}]
    assert out[4]["content"] == [{"type": "tool_result", "tool_use_id": "b", "content": "B"},
                                 {"type": "text", "text": "reminder"}]


def test_interrupted_calls_get_a_result_and_orphans_are_dropped(caplog):
    caplog.set_level(logging.INFO, logger="proxy")
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "zzz", "content": "stray"},
                                     {"type": "text", "text": "stop, do something else"}]},
    ]
    out = pair_tool_results(messages)
    assert out[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "a", "content": INTERRUPTED, "is_error": True},
        {"type": "text", "text": "stop, do something else"},
    ]
    assert any("zzz" in r.getMessage() for r in caplog.records)
    assert any("interrupted" in r.getMessage() for r in caplog.records)


def test_rewrites_keep_the_prefix_of_a_growing_conversation():
    body = fixture("02-parallel-tool-results-with-thinking.json")
    earlier = copy.deepcopy(body)
    earlier["messages"] = body["messages"][:-1]  # before the results came back
    later = copy.deepcopy(body)
    later["messages"] += [{"role": "assistant", "content": [{"type": "text", "text": "Both written."}]},
                          {"role": "user", "content": "thanks"}]
    short = translate_request(validate_request(body), ollama_model="m").ollama["messages"]
    longer = translate_request(validate_request(later), ollama_model="m").ollama["messages"]
    assert [json.dumps(m) for m in longer[: len(short)]] == [json.dumps(m) for m in short]


def test_tool_choice_becomes_an_instruction():
    body = {"model": "m", "max_tokens": 5, "system": "Be brief.", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": "Grep", "input_schema": {"type": "object"}}], "tool_choice": {"type": "tool", "name": "Grep"}}
    system = translate_request(validate_request(body), ollama_model="m").ollama["messages"][0]
    assert system == {"role": "system", "content": "Be brief.\n\nIn this reply you must call the tool Grep."}


async def test_tool_emulation_end_to_end(fake_ollama, start_proxy):
    # gemma3:4b in the fake has no "tools" capability (the fake answers 400 if tools are sent)
    proxy = await start_proxy(default_model="gemma3:4b")
    tool = {"name": "Bash", "description": "Run a command",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}
    fake_ollama.script_chat(text_stream('<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>'))
    fake_ollama.script_chat(text_stream("Two files."))
    client = proxy.client()
    history = [{"role": "user", "content": "what is here?"}]
    with trio.fail_after(20):
        first = await trio.to_thread.run_sync(lambda: client.messages.create(
            model="claude-opus-5-5", max_tokens=50, tools=[tool], messages=history))
    assert [b.type for b in first.content] == ["tool_use"] and first.content[0].input == {"command": "ls"}
    assert first.stop_reason == "tool_use"
    sent = fake_ollama.chat_requests[0].body
    assert "tools" not in sent and '"name":"Bash"' in sent["messages"][0]["content"]
    history += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": first.content[0].id,
                                              "content": "a.txt b.txt"}]}]
    with trio.fail_after(20):
        second = await trio.to_thread.run_sync(lambda: client.messages.create(
            model="claude-opus-5-5", max_tokens=50, tools=[tool], messages=history))
    assert second.content[0].text == "Two files."
    sent = fake_ollama.chat_requests[1].body["messages"]
    assert sent[-2]["role"] == "assistant" and "<tool_call>" in sent[-2]["content"]
    assert sent[-1] == {"role": "user", "content": '<tool_response name="Bash">\na.txt b.txt\n</tool_response>'}


async def test_no_tool_emulation_is_a_400_listing_models_with_tools(fake_ollama, start_proxy):
    proxy = await start_proxy(default_model="gemma3:4b", tool_emulation=False)
    tool = {"name": "Bash", "input_schema": {"type": "object"}}
    async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
        with trio.fail_after(10):
            response = await client.post("/v1/messages", json={
                "model": "claude-opus-5-5", "max_tokens": 5, "tools": [tool],
                "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "gemma3:4b cannot call tools" in message and "qwen3:8b" in message and "llama3.2:3b" in message
    assert fake_ollama.chat_requests == []


async def test_a_model_ollama_says_cannot_call_tools_is_retried_with_emulation(fake_ollama, start_proxy):
    # /api/show said qwen3:8b has tools (cached); this Ollama refuses them at chat time
    # (an older server, a re-pulled model). The client must get its tool call anyway.
    proxy = await start_proxy(keep_alive="30m")
    tool = {"name": "Bash", "description": "Run a command",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}
    refusal = {"error": "registry.ollama.ai/library/qwen3:8b does not support tools"}
    fake_ollama.script_chat([Status(400, body=refusal)])
    fake_ollama.script_chat(text_stream('<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>'))
    client = proxy.client()
    with trio.fail_after(20):
        message = await trio.to_thread.run_sync(lambda: client.messages.create(
            model="claude-sonnet-5-5", max_tokens=50, tools=[tool],
            messages=[{"role": "user", "content": "what is here?"}]))
    assert [b.type for b in message.content] == ["tool_use"] and message.content[0].input == {"command": "ls"}
    native, emulated = (r.body for r in fake_ollama.chat_requests)
    assert native["tools"] and "tools" not in emulated
    assert '"name":"Bash"' in emulated["messages"][0]["content"]
    # what was decided for the request is kept: the context window, keep_alive, think
    assert emulated["options"] == native["options"] and emulated["keep_alive"] == "30m"
    assert emulated.get("think") == native.get("think")
    # Ollama was believed: the next request with tools is emulated at once, not refused first
    fake_ollama.script_chat(text_stream("ok"))
    with trio.fail_after(20):
        again = await trio.to_thread.run_sync(lambda: client.messages.create(
            model="claude-sonnet-5-5", max_tokens=50, tools=[tool], messages=[{"role": "user", "content": "x"}]))
    assert again.content[0].text == "ok"
    assert len(fake_ollama.chat_requests) == 3 and "tools" not in fake_ollama.chat_requests[2].body


async def test_a_tools_refusal_is_the_clients_400_when_emulation_is_off(fake_ollama, start_proxy):
    proxy = await start_proxy(tool_emulation=False)
    fake_ollama.script_chat([Status(400, body={"error": "registry.ollama.ai/library/qwen3:8b does not support tools"})])
    async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
        with trio.fail_after(10):
            response = await client.post("/v1/messages", json={
                "model": "claude-opus-5-5", "max_tokens": 5, "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
                "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 400 and "does not support tools" in response.json()["error"]["message"]
    assert len(fake_ollama.chat_requests) == 1
