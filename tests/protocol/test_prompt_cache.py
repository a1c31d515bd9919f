"""Prompt-cache stability: each request of a session extends the previous one's Ollama prefix.

Ollama reuses its KV cache only for the longest common prefix with the previous request.
The sessions under tests/data/sessions were recorded from Claude Code itself through the
proxy (tests/data/record_session.py); the captures in tests/data/claude-code/ add a captured pair.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from proxy.protocol.translate import translate_request, validate_request
from tests.conftest import FIXTURES

SESSIONS = sorted((Path(__file__).resolve().parents[1] / "data" / "sessions").glob("*.json"))


def ollama_messages(body: dict, **options) -> list[str]:
    request = translate_request(validate_request(copy.deepcopy(body)), ollama_model="qwen3:8b", **options)
    return [json.dumps(m, sort_keys=True) for m in request.ollama["messages"]]


def agent_turns(path: Path) -> list[dict]:
    """The main agent's requests (the ones offering tools), in order. The recordings ran with
    CLAUDE_CODE_ATTRIBUTION_HEADER=0; the billing block Claude Code sends otherwise, different
    in every request, is put back."""
    requests = json.loads(path.read_text())["requests"]
    turns = [r for r in requests if r.get("tools")]
    for n, turn in enumerate(turns):
        header = {"type": "text", "text": f"x-anthropic-billing-header: cc_version=2.1.328.a8f; cch={n:05x};"}
        turn["system"] = [header, *turn["system"]]
    return turns


@pytest.mark.parametrize("session", SESSIONS, ids=[p.stem for p in SESSIONS])
@pytest.mark.parametrize("sequential", [True, False], ids=["sequential", "parallel"])
def test_each_turn_extends_the_previous_prefix(session, sequential):
    turns = agent_turns(session)
    assert len(turns) >= 3, "a multi-turn recording"
    for earlier, later in zip(turns, turns[1:]):
        before = ollama_messages(earlier, sequential_tools=sequential)
        after = ollama_messages(later, sequential_tools=sequential)
        assert len(after) > len(before)
        for i, (a, b) in enumerate(zip(before, after)):
            assert a == b, f"message {i} changed between turns:\n{a[:300]}\n{b[:300]}"


def test_the_captured_pair_shares_its_prefix():
    first = json.loads((FIXTURES / "01-first-turn-streaming.json").read_text())["body"]
    second = json.loads((FIXTURES / "02-parallel-tool-results-with-thinking.json").read_text())["body"]
    before, after = ollama_messages(first), ollama_messages(second)
    assert after[: len(before)] == before
