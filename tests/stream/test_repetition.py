"""The loop guard (proxy/stream/repetition.py) and what the translator does when it fires."""

from __future__ import annotations

import json

import pytest

from proxy.stream.repetition import RepetitionGuard
from proxy.stream.translator import ResponseTranslator


def feed_all(guard: RepetitionGuard, text: str, piece: int = 7):
    for i in range(0, len(text), piece):
        hit = guard.feed(text[i:i + piece])
        if hit is not None:
            return hit, i + piece
    return None, len(text)


@pytest.mark.parametrize(
    "text, span",
    [
        ("I will read the file again.\n" * 300, 28),
        ("ha" * 3000, 2),
        ("Let me think about this. " * 5 + "Wait, " * 2000, 6),
        (("x" * 900 + "\n") * 10, 901),
    ],
    ids=["line", "two-chars", "word-after-prose", "long-span"],
)
def test_a_loop_is_stopped_soon_after_it_fills_the_window(text, span):
    guard = RepetitionGuard(4000)
    hit, at = feed_all(guard, text)
    assert hit is not None and hit.span == span and hit.repeats >= 4
    assert at <= text.index(text[-span * 4:]) + 4000 + 200  # within a check of filling the window


@pytest.mark.parametrize(
    "text",
    [
        "".join(f"line {i}: value {i * i}\n" for i in range(600)),  # similar lines, not the same
        "=" * 80 + "\n" + "| a | b |\n" * 30 + "".join(f"word{i} " for i in range(1000)),  # a short run only
        json.dumps([{"id": i, "name": f"item {i}", "ok": True} for i in range(300)]),
    ],
    ids=["numbered-lines", "short-runs", "json-array"],
)
def test_varied_output_is_never_stopped(text):
    assert feed_all(RepetitionGuard(4000), text)[0] is None


def test_off_when_the_window_is_zero():
    assert feed_all(RepetitionGuard(0), "ha" * 10000)[0] is None


def test_the_translator_ends_a_looping_answer_as_max_tokens():
    translator = ResponseTranslator(client_model="claude-x", input_tokens=10, loop_guard_chars=2000)
    events = translator.start()
    line = json.dumps({"message": {"role": "assistant", "content": "again and again\n"}, "done": False})
    for _ in range(400):
        events += translator.feed((line + "\n").encode())
        if translator.done:
            break
    assert translator.loop is not None and translator.loop.span == 16
    names = [type(e).__name__ for e in events]
    assert names[-2:] == ["MessageDelta", "MessageStop"]
    assert events[-2].stop_reason == "max_tokens"
    assert translator.feed((line + "\n").encode()) == []  # what Ollama still sends is ignored


@pytest.mark.parametrize("cap", [True, False])
async def test_num_predict_is_what_the_window_leaves(fake_ollama, start_proxy, cap):
    import httpx
    import trio

    from tests.fake_ollama import text_stream

    proxy = await start_proxy(cap_num_predict=cap)
    fake_ollama.script_chat(text_stream("ok"))
    body = {"model": "claude-x", "max_tokens": 128000, "stream": False, "messages": [{"role": "user", "content": "hi"}]}
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.post("/v1/messages", json=body)
    assert response.status_code == 200
    options = fake_ollama.chat_requests[-1].body["options"]
    if cap:
        assert 256 <= options["num_predict"] < options["num_ctx"]
    else:
        assert options["num_predict"] == 128000


# -- a call written only in the thinking (proxy/stream/thinking_calls.py) -------------------

WRITE_SCHEMA = {"Write": {"type": "object", "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}}}}
CALL_TEXT = '<tool_call>{"name": "Write", "arguments": {"file_path": "/tmp/a.txt", "content": "hi"}}</tool_call>'


def _answer(thinking: str, content: str) -> list:
    translator = ResponseTranslator(client_model="claude-x", input_tokens=10, tools=WRITE_SCHEMA)
    events = translator.start()
    lines = [{"message": {"role": "assistant", "content": "", "thinking": thinking}, "done": False},
             {"message": {"role": "assistant", "content": content}, "done": True, "done_reason": "stop"}]
    for line in lines:
        events += translator.feed((json.dumps(line) + "\n").encode())
    return events


def test_an_empty_answer_takes_the_call_its_thinking_wrote():
    events = _answer("I need to create the file. " + CALL_TEXT, "")
    starts = [e for e in events if type(e).__name__ == "ContentBlockStart"]
    assert [s.content_block["type"] for s in starts] == ["thinking", "tool_use"]
    assert starts[-1].content_block["name"] == "Write"
    assert events[-2].stop_reason == "tool_use"


@pytest.mark.parametrize("content", ["Done: nothing to write.", CALL_TEXT.replace("a.txt", "b.txt")])
def test_a_call_in_the_thinking_beside_a_real_answer_is_never_run(content):
    events = _answer("For example I could write " + CALL_TEXT, content)
    calls = [e.content_block for e in events if type(e).__name__ == "ContentBlockStart" and e.content_block["type"] == "tool_use"]
    deltas = "".join(e.delta.get("partial_json", "") for e in events if type(e).__name__ == "ContentBlockDelta")
    assert "/tmp/a.txt" not in deltas
    assert len(calls) == (1 if "b.txt" in content else 0)


# -- stop sequences, matched by the proxy (proxy/stream/stop_sequences.py) -----------------

from proxy.stream.stop_sequences import StopMatcher  # noqa: E402


@pytest.mark.parametrize("pieces", [["<severity>5</severity>junk"], ["<severity>5</sev", "erity>junk"],
                                    list("<severity>5</severity>junk")])
def test_the_stop_sequence_is_found_across_pieces_and_left_out(pieces):
    matcher = StopMatcher(["</severity>"])
    sent, matched = "", None
    for piece in pieces:
        text, matched = matcher.feed(piece)
        sent += text
        if matched:
            break
    assert (sent, matched) == ("<severity>5", "</severity>")


def test_text_that_only_looked_like_a_sequence_is_sent_at_the_end():
    matcher = StopMatcher(["</severity>"])
    assert matcher.feed("a </sev") == ("a ", None)
    assert matcher.finish() == "</sev"


def test_the_translator_answers_stop_sequence_and_names_it():
    translator = ResponseTranslator(client_model="claude-x", input_tokens=10, stop_sequences=["</severity>"])
    events = translator.start()
    for content in ["<severity>", "7</sev", "erity><category>x</category>"]:
        events += translator.feed((json.dumps({"message": {"role": "assistant", "content": content}, "done": False}) + "\n").encode())
    assert translator.done and translator.ended_early
    text = "".join(e.delta.get("text", "") for e in events if type(e).__name__ == "ContentBlockDelta")
    assert text == "<severity>7"
    assert (events[-2].stop_reason, events[-2].stop_sequence) == ("stop_sequence", "</severity>")


# -- the guard's exact verdicts (proxy/stream/repetition.py) ---------------------------------

from proxy.stream.repetition import CHECK_EVERY, MIN_REPEATS, Repetition, RepetitionGuard  # noqa: E402


def test_the_guard_names_the_shortest_repeated_span():
    guard = RepetitionGuard(400)
    assert guard.feed("abc" * 200) == Repetition(span=3, repeats=133, sample="abc")
    guard = RepetitionGuard(400)
    assert guard.feed("x" * 400) == Repetition(span=1, repeats=400, sample="x")


def test_the_sample_is_cut_to_80_characters():
    span = "".join(chr(0x41 + i % 26) + str(i) for i in range(40))[:100]
    assert len(span) == 100
    assert RepetitionGuard(400).feed(span * 4) == Repetition(span=100, repeats=4, sample=span[:80])


def test_a_span_must_fill_the_window_four_times():
    assert MIN_REPEATS == 4
    span = "abcdefghijklmnopq"  # 17 characters: 64 holds it fewer than 4 times
    assert RepetitionGuard(64).feed((span * 8)[:64 + 128]) is None
    span = span[:16]  # 16: exactly 4 times
    assert RepetitionGuard(64).feed(span * 12) == Repetition(span=16, repeats=4, sample=span)


def test_the_guard_checks_every_128_characters_once_the_window_is_full():
    assert CHECK_EVERY == 128
    guard = RepetitionGuard(64)
    assert guard.feed("ab" * 32) is None  # the window is full, but only 64 characters came
    assert guard.feed("ab" * 31) is None  # 126
    assert guard.feed("ab") == Repetition(span=2, repeats=32, sample="ab")  # 128: checked
    guard = RepetitionGuard(200)
    assert guard.feed("ab" * 99) is None  # 198 characters: the window is not full yet
    assert guard.feed("a") is None
    assert guard.feed("b") == Repetition(span=2, repeats=100, sample="ab")


def test_varied_text_and_a_guard_turned_off_never_stop_an_answer():
    prose = "".join(f"line {i}: value {i * i}\n" for i in range(400))
    guard = RepetitionGuard(400)
    assert all(guard.feed(prose[i:i + 50]) is None for i in range(0, len(prose), 50))
    for window in (0, -1):
        guard = RepetitionGuard(window)
        assert guard.feed("x" * 10_000) is None
    assert RepetitionGuard(64).feed("") is None
