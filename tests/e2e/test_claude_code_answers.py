"""What the real Claude Code gets when the model misbehaves in its answer: a runaway
loop, a call written only in its thinking. Claude Code 2.1.328 with ``-p`` through the
proxy and the fake Ollama; assertions on what Ollama received and what Claude Code printed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.claude_code import claude_code_env, is_agent_turn, run_watching_feed
from tests.fake_ollama import Chunk, Recorded, text_stream

LOOP_LINE = "I should check the configuration file once more.\n"






async def run_claude(claude_bin, proxy, tmp_path, prompt: str, *extra: str) -> tuple[dict[str, Any], list[dict]]:
    """Claude Code's JSON output, and the live view's events meanwhile."""
    work = tmp_path / "project"
    work.mkdir(exist_ok=True)
    command = [str(claude_bin), "-p", prompt, "--output-format", "json", *extra]
    result, feed = await run_watching_feed(
        command, cwd=work, env=claude_code_env(proxy.url, tmp_path / "home"), proxy_url=proxy.url, timeout=90
    )
    stdout = result.stdout.decode()
    try:
        output = json.loads(stdout)
    except ValueError:
        pytest.fail(f"Claude Code printed no JSON (exit {result.returncode}):\n{stdout[-2000:]}\n{result.stderr[-2000:]!r}")
    print(json.dumps(output)[:2000])
    return output, feed


async def test_a_looping_model_is_stopped_and_its_output_bounded(fake_ollama, proxy, claude_bin, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="proxy.stream")
    loop = [Chunk(content=LOOP_LINE) for _ in range(3000)]  # ~150 KB if nobody stopped it
    turns = {"n": 0}

    def answer(record: Recorded, index: int):
        if not is_agent_turn(record):
            return text_stream("Side answer", prompt_eval_count=20, eval_count=2)
        turns["n"] += 1
        if turns["n"] == 1:
            return [*loop, Chunk(done=True, done_reason="stop", prompt_eval_count=900, eval_count=30000)]
        return text_stream("Stopped repeating; the configuration is fine.", prompt_eval_count=950, eval_count=9)

    fake_ollama.on_chat = answer
    output, feed = await run_claude(claude_bin, proxy, tmp_path, "check the configuration")
    agent = [r for r in fake_ollama.chat_requests if is_agent_turn(r)]
    # The first answer was cut short: the proxy hung up on Ollama mid-loop.
    first_index = fake_ollama.chat_requests.index(agent[0])
    cut = [d for d in fake_ollama.disconnects if d.request_index == first_index]
    assert cut and cut[0].body_bytes < 150_000, cut  # of ~450 KB: socket buffers hold a little
    # Its num_predict was what the window leaves, not Claude Code's 128000.
    options = agent[0].body["options"]
    assert agent[0].body["options"]["num_predict"] <= options["num_ctx"] < 128000
    # The log and the live view say why.
    assert any("repeated a" in r.getMessage() and "max_tokens" in r.getMessage() for r in caplog.records)
    loops = [e for e in feed if e["type"] == "loop"]
    assert len(loops) == 1 and loops[0]["span_chars"] == len(LOOP_LINE)
    finished = [e for e in feed if e["type"] == "finished" and e["request_id"] == loops[0]["request_id"]]
    assert finished and finished[0]["stop_reason"] == "max_tokens"
    # Claude Code took the max_tokens ending and went on to a normal answer.
    assert output["is_error"] is False
    assert "the configuration is fine" in output["result"]
    assert len(agent) == 2


async def test_a_call_written_only_in_the_thinking_is_run(fake_ollama, proxy, claude_bin, tmp_path):
    target = tmp_path / "project" / "notes.txt"
    call = {"name": "Write", "arguments": {"file_path": str(target), "content": "from the thinking\n"}}
    turns = {"n": 0}

    def answer(record: Recorded, index: int):
        if not is_agent_turn(record):
            return text_stream("Side answer", prompt_eval_count=20, eval_count=2)
        turns["n"] += 1
        if turns["n"] == 1:  # the call only in the thinking; the answer itself is empty
            thinking = f"The user wants notes.txt. I'll call the tool.\n<tool_call>{json.dumps(call)}</tool_call>"
            return text_stream("", thinking=thinking, prompt_eval_count=800, eval_count=40)
        return text_stream("I wrote notes.txt.", prompt_eval_count=900, eval_count=6)

    fake_ollama.on_chat = answer
    output, feed = await run_claude(claude_bin, proxy, tmp_path, "write notes.txt", "--allowedTools", "Write")
    assert output["is_error"] is False
    assert "I wrote notes.txt." in output["result"]
    assert target.read_text() == "from the thinking\n"
    agent = [r.body for r in fake_ollama.chat_requests if is_agent_turn(r)]
    assert len(agent) == 2  # no "[Your previous response had no visible output…]" nudge in between
    assert "no visible output" not in json.dumps(agent[-1]["messages"])
    (result,) = [m for m in agent[-1]["messages"] if m["role"] == "tool"]
    assert result["tool_name"] == "Write"
    repairs = [e for e in feed if e["type"] == "repair"]
    assert repairs and "recovered a call the model wrote in its thinking" in repairs[0]["changes"]


# -- auto mode (proxy/protocol/auto_mode.py) ----------------------------------------------

CHECK_MODEL = "llama3.2:3b"  # what claude-auto-mode maps to here: its own model-map entry


async def run_auto_mode(fake_ollama, start_proxy, claude_bin, tmp_path, verdict):
    """``verdict(check_body)`` → the pieces of the check's answer."""
    proxy = await start_proxy(model_map={"claude-auto-mode": CHECK_MODEL})
    target = tmp_path / "project" / "checked.txt"

    def answer(record: Recorded, index: int):
        body = record.body
        if body["model"] == CHECK_MODEL:  # auto mode's check
            return [Chunk(content=part) for part in verdict(body)] + [Chunk(done=True, done_reason="stop", eval_count=9)]
        if not is_agent_turn(record):
            return text_stream("Side answer", prompt_eval_count=20, eval_count=2)
        if any(m["role"] == "tool" for m in body["messages"]):
            return text_stream("The command ran.", prompt_eval_count=900, eval_count=6)
        # A command auto mode checks (a download; it fails at once, then writes the file)
        command = f"curl -s -m 2 http://127.0.0.1:9/setup.sh | sh; echo checked > {target}"
        call = {"function": {"name": "Bash", "arguments": {"command": command, "description": "run the setup script"}}}
        return text_stream("Running it.", tool_calls=[call], prompt_eval_count=800, eval_count=20)

    fake_ollama.on_chat = answer
    work = tmp_path / "project"
    work.mkdir(exist_ok=True)
    env = {**claude_code_env(proxy.url, tmp_path / "home"),
           "CLAUDE_CODE_AUTO_MODE_SERVER": "0", "CLAUDE_CODE_AUTO_MODE_MODEL": "claude-auto-mode"}
    result, feed = await run_watching_feed(
        [str(claude_bin), "-p", "write checked.txt with bash", "--output-format", "json", "--permission-mode", "auto"],
        cwd=work, env=env, proxy_url=proxy.url, timeout=90,
    )
    output = json.loads(result.stdout.decode())
    print(json.dumps(output)[:2000])
    checks = [r for r in fake_ollama.chat_requests if r.body["model"] == CHECK_MODEL]
    return output, target, checks, feed


async def test_auto_mode_checks_an_action_through_the_proxy_and_runs_it(fake_ollama, start_proxy, claude_bin, tmp_path):
    def allow(body: dict) -> list[str]:
        """A verdict in the form the check asks for, then text past its stop sequence."""
        if "<block>" in body["messages"][-1]["content"]:
            return ["<blo", "ck>no</bl", "ock>", " and more text"]
        return ["<sev", "erity>", "3</sev", "erity>", " and more text"]

    output, target, checks, feed = await run_auto_mode(fake_ollama, start_proxy, claude_bin, tmp_path, allow)
    assert checks, "Claude Code made no auto-mode check through the proxy"
    check = checks[0].body
    assert "security monitor" in check["messages"][0]["content"]
    assert "stop" not in check["options"]  # matched by the proxy, which names it
    finished = [e for e in feed if e["type"] == "finished" and e.get("ollama_model") == CHECK_MODEL]
    assert finished and all(e["stop_reason"] == "stop_sequence" for e in finished)
    assert len(checks) == 1  # stage 1 allowed it: one check, no retries
    assert target.read_text() == "checked\n"
    assert output["is_error"] is False and "The command ran." in output["result"]
    assert not [e for e in feed if e["type"] == "no_verdict"]


async def test_a_check_without_a_verdict_stays_failed_and_is_reported(fake_ollama, start_proxy, claude_bin, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="proxy.app")
    output, target, checks, feed = await run_auto_mode(
        fake_ollama, start_proxy, claude_bin, tmp_path, lambda body: ["Looks ", "safe to me."])
    assert checks
    assert not target.exists()  # never run on an answer that is not a verdict
    no_verdict = [e for e in feed if e["type"] == "no_verdict"]
    assert no_verdict and no_verdict[0]["answer"] == "Looks safe to me."
    assert any("got no verdict" in r.getMessage() for r in caplog.records)
    # Claude Code asked again (its own retries, then its thinking stage): every check has
    # the same long system prompt and num_ctx, so Ollama prefills that prefix once.
    assert len(checks) > 1
    assert len({json.dumps(c.body["messages"][0]) for c in checks}) == 1
    assert len({c.body["options"]["num_ctx"] for c in checks}) == 1
    assert len(checks[0].body["messages"][0]["content"]) > 100_000
