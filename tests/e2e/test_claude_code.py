"""Claude Code itself, through the real proxy, against the fake Ollama.

The fake answers the first agent turn with a ``Write`` tool call; Claude Code writes the
file and sends the tool_result back; the fake answers with text; Claude Code reports
success. Side requests Claude Code makes on its own (titles, quota checks, …) get a short
text answer.
"""

from __future__ import annotations

import json
import subprocess

import trio

from tests.claude_code import claude_code_env, run_watching_feed
from tests.fake_ollama import Recorded, text_stream


def _has_tool_result(body: dict) -> bool:
    return any(m.get("role") == "tool" for m in body.get("messages", []))


def _offers_write(body: dict) -> bool:
    return any(t["function"]["name"] == "Write" for t in body.get("tools", []))




async def test_claude_code_writes_a_file_through_the_proxy(fake_ollama, proxy, claude_bin, tmp_path):
    work = tmp_path / "project"
    work.mkdir()
    target = work / "hello.txt"

    def answer(record: Recorded, index: int):
        body = record.body
        if _has_tool_result(body):
            return text_stream("I wrote hello.txt.", prompt_eval_count=900, eval_count=6)
        if _offers_write(body):
            call = {"function": {"name": "Write", "arguments": {"file_path": str(target), "content": "hello\n"}}}
            return text_stream("Writing the file.", tool_calls=[call], prompt_eval_count=800, eval_count=20)
        return text_stream("Hello file", prompt_eval_count=50, eval_count=3)  # a side request

    fake_ollama.on_chat = answer
    command = [str(claude_bin), "-p", "write hello to hello.txt", "--output-format", "json",
               "--allowedTools", "Write,Bash,Read"]
    result, feed = await run_watching_feed(
        command, cwd=work, env=claude_code_env(proxy.url, tmp_path / "home"), proxy_url=proxy.url, timeout=180
    )
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    requests = [r.body for r in fake_ollama.chat_requests]
    diagnostics = f"exit {result.returncode}\nstdout: {stdout[-3000:]}\nstderr: {stderr[-3000:]}\n" + "\n".join(
        f"ollama request {i}: stream={b.get('stream')} tools={len(b.get('tools', []))} "
        f"last={json.dumps(b['messages'][-1])[:300]}" for i, b in enumerate(requests))
    print(diagnostics)
    assert result.returncode == 0, diagnostics
    output = json.loads(stdout)
    assert output["is_error"] is False, diagnostics
    assert "I wrote hello.txt." in output["result"]
    assert target.read_text() == "hello\n"
    # The second agent turn carried the tool result back to the model, tied to its call.
    agent_turns = [b for b in requests if _offers_write(b)]
    assert len(agent_turns) >= 2
    tool_messages = [m for m in agent_turns[-1]["messages"] if m["role"] == "tool"]
    assert tool_messages and tool_messages[-1]["tool_name"] == "Write"
    call_ids = [c["id"] for m in agent_turns[-1]["messages"] if m["role"] == "assistant" for c in m.get("tool_calls", [])]
    assert tool_messages[-1]["tool_call_id"] in call_ids
    # The live feed showed every one of Claude Code's requests, start to finish.
    started = [e for e in feed if e["type"] == "started"]
    finished = {e["request_id"]: e for e in feed if e["type"] == "finished"}
    assert len(started) == len(requests)
    assert all(finished[e["request_id"]]["status"] == 200 for e in started)
    assert any(finished[e["request_id"]]["stop_reason"] == "tool_use" for e in started)
    assert {e["ollama_model"] for e in started} == {"qwen3:8b"}


async def test_claude_code_loads_a_deferred_tool_through_tool_search(fake_ollama, proxy, claude_bin, tmp_path):
    """ToolSearch's answer (tool_reference blocks) reaches the model as words naming the
    tools, and a deferred tool is offered to the model only once it was loaded."""
    work = tmp_path / "project"
    work.mkdir()

    def offered(body: dict) -> set[str]:
        return {t["function"]["name"] for t in body.get("tools", [])}

    def answer(record: Recorded, index: int):
        body = record.body
        if "ToolSearch" not in offered(body):
            return text_stream("Side answer", prompt_eval_count=50, eval_count=3)
        if "WebFetch" in offered(body):
            return text_stream("WebFetch is ready to use.", prompt_eval_count=900, eval_count=6)
        call = {"function": {"name": "ToolSearch", "arguments": {"query": "select:WebFetch", "max_results": 5}}}
        return text_stream("Loading the fetch tool.", tool_calls=[call], prompt_eval_count=800, eval_count=20)

    fake_ollama.on_chat = answer
    command = [str(claude_bin), "-p", "load the web fetch tool", "--output-format", "json"]
    with trio.fail_after(120):
        result = await trio.run_process(
            command, cwd=work, env=claude_code_env(proxy.url, tmp_path / "home"),
            capture_stdout=True, capture_stderr=True, check=False, stdin=subprocess.DEVNULL,
        )
    stdout = result.stdout.decode()
    agent_turns = [r.body for r in fake_ollama.chat_requests if "ToolSearch" in offered(r.body)]
    diagnostics = f"exit {result.returncode}\nstdout: {stdout[-3000:]}\n" + "\n".join(
        f"turn {i}: tools={sorted(offered(b))} last={json.dumps(b['messages'][-1])[:300]}" for i, b in enumerate(agent_turns))
    print(diagnostics)
    output = json.loads(stdout)
    assert output["is_error"] is False, diagnostics
    assert "WebFetch is ready to use." in output["result"]
    first, second = agent_turns[0], agent_turns[-1]
    # Claude Code sends a deferred placeholder from the start; the model never sees it.
    assert "DeferredToolPlaceholder" not in offered(first) | offered(second)
    assert "WebFetch" not in offered(first) and "WebFetch" in offered(second)
    (search_result,) = [m for m in second["messages"] if m["role"] == "tool"]
    assert search_result["tool_name"] == "ToolSearch"
    assert "Loaded the tool WebFetch" in search_result["content"], diagnostics


async def _run_claude(fake_ollama, proxy, claude_bin, tmp_path, work, agent_answer, final_text):
    """Claude Code -p against the fake: agent turns get ``agent_answer`` (a text the model
    prints), the turn after a tool result ``final_text``; side requests a short text."""

    def answer(record: Recorded, index: int):
        body = record.body
        if _has_tool_result(body):
            return text_stream(final_text, prompt_eval_count=900, eval_count=6)
        if _offers_write(body):
            return text_stream(agent_answer, prompt_eval_count=800, eval_count=20)
        return text_stream("Title", prompt_eval_count=50, eval_count=3)

    fake_ollama.on_chat = answer
    command = [str(claude_bin), "-p", "go", "--output-format", "json", "--allowedTools", "Write,Bash,Read"]
    with trio.fail_after(180):
        result = await trio.run_process(
            command, cwd=work, env=claude_code_env(proxy.url, tmp_path / "home"),
            capture_stdout=True, capture_stderr=True, check=False, stdin=subprocess.DEVNULL,
        )
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, f"stdout: {stdout[-3000:]}\nstderr: {stderr[-3000:]}"
    return json.loads(stdout), [r.body for r in fake_ollama.chat_requests if _offers_write(r.body)]


async def test_claude_code_does_not_run_a_call_shown_as_an_example(fake_ollama, proxy, claude_bin, tmp_path):
    work = tmp_path / "project"
    work.mkdir()
    example = ('To call a tool, a model prints `{"name": "Bash", "arguments": {"command": "touch pwned.txt"}}` '
               "in its answer.")
    output, agent_turns = await _run_claude(fake_ollama, proxy, claude_bin, tmp_path, work, example, "unused")
    assert not (work / "pwned.txt").exists()
    assert output["result"] == example  # byte for byte
    assert len(agent_turns) == 1 and not any(_has_tool_result(b) for b in agent_turns)


async def test_claude_code_runs_a_call_printed_in_a_models_own_dialect(fake_ollama, proxy, claude_bin, tmp_path):
    work = tmp_path / "project"
    work.mkdir()
    target = work / "hello.txt"
    arguments = json.dumps({"file_path": str(target), "content": "héllo\n"}, ensure_ascii=False)
    printed = f"I will write it.[TOOL_CALLS]Write[ARGS]{arguments}</s>"
    output, agent_turns = await _run_claude(fake_ollama, proxy, claude_bin, tmp_path, work, printed, "I wrote hello.txt.")
    assert target.read_text() == "héllo\n"
    assert "I wrote hello.txt." in output["result"]
    assert any(_has_tool_result(b) for b in agent_turns)
