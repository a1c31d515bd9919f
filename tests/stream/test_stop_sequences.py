"""The client's stop_sequences, matched by the proxy: which text reaches the client, and
which sequence its answer names (proxy/stream/stop_sequences.py through the translator)."""

from __future__ import annotations

import json

import pytest

from proxy.stream.message import MessageBuilder
from proxy.stream.stop_sequences import StopMatcher
from proxy.stream.translator import ResponseTranslator


def answer(pieces: list[str], sequences: list[str]) -> dict:
    """The non-streaming answer a client gets for these content pieces (then Ollama's end)."""
    t = ResponseTranslator(client_model="m", input_tokens=1, stop_sequences=sequences, message_id="msg_1")
    builder = MessageBuilder()
    builder.add(t.start())
    for piece in pieces:
        if t.done:
            break
        builder.add(t.feed((json.dumps({"message": {"content": piece}, "done": False}) + "\n").encode()))
    if not t.done:
        builder.add(t.feed(b'{"message": {"content": ""}, "done": true, "done_reason": "stop", "eval_count": 3}\n'))
    return builder.message()


def text_of(message: dict) -> str:
    return "".join(b.get("text", "") for b in message["content"])


@pytest.mark.parametrize(
    "pieces, sequences, text, matched",
    [
        (["a STOP b"], ["STOP"], "a ", "STOP"),
        (["a END b END c"], ["END"], "a ", "END"),  # its first occurrence
        # the earliest sequence in the text wins, whatever the order of the list
        (["x ST y END"], ["END", "ST"], "x ", "ST"),
        # two starting at the same place: the first listed
        (["a ENDX"], ["ENDX", "END"], "a ", "ENDX"),
        (["a ENDX"], ["END", "ENDX"], "a ", "END"),
        # across pieces, one character at a time
        (list("ab</severity>cd"), ["</severity>"], "ab", "</severity>"),
        # an empty sequence matches nothing (else every answer would end at once)
        (["hello"], [""], "hello", None),
        (["hello"], ["", "lo"], "hel", "lo"),
        # text that only began like a sequence is sent, in order, when it turns out not to be
        (["a </sev", "en> b"], ["</severity>"], "a </seven> b", None),
        (["a </sev"], ["</severity>"], "a </sev", None),
        (["abc"], ["abcdef"], "abc", None),
        (["", "x"], ["END"], "x", None),
    ],
)
def test_what_the_client_receives_with_stop_sequences(pieces, sequences, text, matched):
    message = answer(pieces, sequences)
    assert text_of(message) == text
    if matched is None:
        assert (message["stop_reason"], message["stop_sequence"]) == ("end_turn", None)
    else:
        assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", matched)


def test_only_what_may_still_begin_a_sequence_is_held():
    matcher = StopMatcher(["abc", "zab"])
    # "za" may begin "zab", and "a" may begin "abc": the longer one is held
    assert matcher.feed("xza") == ("x", None)
    assert matcher.feed("q") == ("zaq", None)
    assert matcher.feed("ab") == ("", None)
    assert matcher.feed("c!") == ("", "abc")
    assert matcher.finish() == ""  # nothing held after a match
    matcher = StopMatcher(["abc"])
    assert matcher.feed("ab") == ("", None)
    assert matcher.finish() == "ab"
    assert matcher.finish() == ""  # given out once
    assert matcher.feed("") == ("", None)
