"""What Ollama receives for consecutive assistant turns (proxy/protocol/translate.py): a
survivor of a mutation run (docs/TESTING.md). Two turns in a row become one message, built
from the first; an empty thinking block in the later turn adds no empty ``thinking``."""

from __future__ import annotations

from typing import Any

from proxy.protocol.translate import translate_request, validate_request


def ollama_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": messages}
    return translate_request(validate_request(body), ollama_model="m").ollama["messages"]


def test_an_empty_thinking_block_in_the_later_of_two_assistant_turns_adds_no_thinking():
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "text", "text": "One."}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "", "signature": ""},
                                          {"type": "text", "text": "Two."}]},
        {"role": "user", "content": "next"},
    ]
    assert ollama_messages(messages) == [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "One.Two."},
        {"role": "user", "content": "next"},
    ]
