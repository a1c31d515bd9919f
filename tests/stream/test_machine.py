"""Table tests for the content-block state machine (proxy/stream/machine.py).

Every (state, input) pair is tried: a legal one must land in the expected state and emit
exactly the expected events (compared as the JSON the client receives); an illegal one
must raise MachineError naming the state and the input, emit nothing, leave the block
index alone and put the machine in ERROR, where every later call raises too.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.errors import MachineError
from proxy.stream.events import Event
from proxy.stream.machine import ContentBlockMachine, Input, State

MESSAGE_ID = "msg_0123"
MODEL = "claude-sonnet-4-5"
TOOL_ID = "toolu_000000000000000000000001"
TOOL_NAME = "Write"
#: non-ASCII and nested on purpose: the delta must carry it intact
ARGUMENTS = {"file_path": "/tmp/é.txt", "content": "naïve 🙂 日本\n", "lines": [1, 2], "opts": {"a": None}}
INPUT_TOKENS_ESTIMATE = 12
IN_TOKENS, OUT_TOKENS = 40, 7


def send(machine: ContentBlockMachine, what: Input) -> list[Event]:
    """Give the machine one input, with fixed arguments."""
    if what is Input.START:
        return machine.start(message_id=MESSAGE_ID, model=MODEL, input_tokens=INPUT_TOKENS_ESTIMATE)
    if what is Input.THINKING:
        return machine.thinking("let me think")
    if what is Input.TEXT:
        return machine.text("Hello")
    if what is Input.TOOL_USE:
        return machine.tool_use(tool_id=TOOL_ID, name=TOOL_NAME, arguments=ARGUMENTS)
    if what is Input.FINISH:
        return machine.finish(input_tokens=IN_TOKENS, output_tokens=OUT_TOKENS)
    if what is Input.FAIL:
        return machine.fail(error_type="api_error", message="Ollama went away")
    raise AssertionError(what)


def machine_in(state: State) -> ContentBlockMachine:
    """A machine driven into ``state`` by legal inputs (an illegal one for ERROR).

    In IN_THINKING and IN_TEXT, block 0 is open, so the next block gets index 1.
    """
    machine = ContentBlockMachine()
    if state is State.ERROR:
        with pytest.raises(MachineError):
            machine.text("too early")
        assert machine.state is State.ERROR
        return machine
    if state is State.AWAITING_START:
        return machine
    machine.start(message_id="msg_setup", model=MODEL, input_tokens=1)
    if state is State.IN_THINKING:
        machine.thinking("earlier thought")
    elif state is State.IN_TEXT:
        machine.text("earlier text")
    elif state is State.FINISHED:
        machine.finish(input_tokens=1, output_tokens=1)
    elif state is State.FAILED:
        machine.fail(error_type="api_error", message="setup")
    assert machine.state is state
    return machine


def wire(events: list[Event]) -> list[dict[str, Any]]:
    """Events as the client receives them; an input_json_delta's partial_json is parsed
    (so a fragment that is not JSON fails the test right here)."""
    out = []
    for event in events:
        payload = event.payload()
        assert payload["type"] == event.NAME
        delta = payload.get("delta", {})
        if delta.get("type") == "input_json_delta":
            payload = {**payload, "delta": {**delta, "partial_json": json.loads(delta["partial_json"])}}
        out.append(payload)
    return out


# --- the expected wire shapes -----------------------------------------------------------


def block_start(index: int, kind: str) -> dict[str, Any]:
    blocks = {
        "thinking": {"type": "thinking", "thinking": "", "signature": ""},
        "text": {"type": "text", "text": ""},
        "tool_use": {"type": "tool_use", "id": TOOL_ID, "name": TOOL_NAME, "input": {}},
    }
    return {"type": "content_block_start", "index": index, "content_block": blocks[kind]}


def delta(index: int, kind: str, value: Any) -> dict[str, Any]:
    field = {
        "thinking_delta": "thinking",
        "text_delta": "text",
        "input_json_delta": "partial_json",
        "signature_delta": "signature",
    }[kind]
    return {"type": "content_block_delta", "index": index, "delta": {"type": kind, field: value}}


def block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def close_thinking(index: int) -> list[dict[str, Any]]:
    """A thinking block ends with a non-empty signature_delta (checked apart, since the
    placeholder's value is the machine's choice) and then its stop."""
    return [delta(index, "signature_delta", SIGNATURE), block_stop(index)]


def tool_block(index: int) -> list[dict[str, Any]]:
    return [block_start(index, "tool_use"), delta(index, "input_json_delta", ARGUMENTS), block_stop(index)]


def message_end(stop_reason: str = "end_turn") -> list[dict[str, Any]]:
    return [
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"input_tokens": IN_TOKENS, "output_tokens": OUT_TOKENS},
        },
        {"type": "message_stop"},
    ]


MESSAGE_START = {
    "type": "message_start",
    "message": {
        "id": MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": INPUT_TOKENS_ESTIMATE,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    },
}
ERROR_EVENT = {"type": "error", "error": {"type": "api_error", "message": "Ollama went away"}}
SIGNATURE = object()  # stands for "a non-empty string"; see normalize_signatures


def normalize_signatures(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for event in events:
        d = event.get("delta", {})
        if d.get("type") == "signature_delta":
            assert isinstance(d["signature"], str) and d["signature"], "signature_delta must be non-empty"
            event = {**event, "delta": {**d, "signature": SIGNATURE}}
        out.append(event)
    return out


S, I = State, Input
#: (state, input) → (next state, wire events). Every pair not listed is illegal.
LEGAL: dict[tuple[State, Input], tuple[State, list[dict[str, Any]]]] = {
    (S.AWAITING_START, I.START): (S.BETWEEN_BLOCKS, [MESSAGE_START]),
    (S.AWAITING_START, I.FAIL): (S.FAILED, [ERROR_EVENT]),
    (S.BETWEEN_BLOCKS, I.THINKING): (
        S.IN_THINKING,
        [block_start(0, "thinking"), delta(0, "thinking_delta", "let me think")],
    ),
    (S.BETWEEN_BLOCKS, I.TEXT): (S.IN_TEXT, [block_start(0, "text"), delta(0, "text_delta", "Hello")]),
    (S.BETWEEN_BLOCKS, I.TOOL_USE): (S.BETWEEN_BLOCKS, tool_block(0)),
    (S.BETWEEN_BLOCKS, I.FINISH): (S.FINISHED, message_end()),
    (S.BETWEEN_BLOCKS, I.FAIL): (S.FAILED, [ERROR_EVENT]),
    (S.IN_THINKING, I.THINKING): (S.IN_THINKING, [delta(0, "thinking_delta", "let me think")]),
    (S.IN_THINKING, I.TEXT): (
        S.IN_TEXT,
        close_thinking(0) + [block_start(1, "text"), delta(1, "text_delta", "Hello")],
    ),
    (S.IN_THINKING, I.TOOL_USE): (S.BETWEEN_BLOCKS, close_thinking(0) + tool_block(1)),
    (S.IN_THINKING, I.FINISH): (S.FINISHED, close_thinking(0) + message_end()),
    (S.IN_THINKING, I.FAIL): (S.FAILED, [ERROR_EVENT]),
    (S.IN_TEXT, I.TEXT): (S.IN_TEXT, [delta(0, "text_delta", "Hello")]),
    (S.IN_TEXT, I.THINKING): (
        S.IN_THINKING,
        [block_stop(0), block_start(1, "thinking"), delta(1, "thinking_delta", "let me think")],
    ),
    (S.IN_TEXT, I.TOOL_USE): (S.BETWEEN_BLOCKS, [block_stop(0)] + tool_block(1)),
    (S.IN_TEXT, I.FINISH): (S.FINISHED, [block_stop(0)] + message_end()),
    (S.IN_TEXT, I.FAIL): (S.FAILED, [ERROR_EVENT]),
}
del S, I

ALL_PAIRS = [(state, what) for state in State for what in Input]
ILLEGAL = [pair for pair in ALL_PAIRS if pair not in LEGAL]


def pair_id(pair: tuple[State, Input]) -> str:
    return f"{pair[0].name}-{pair[1].name}"


def test_the_tables_cover_every_pair():
    assert len(LEGAL) + len(ILLEGAL) == len(State) * len(Input)
    # No way out of the end states, and nothing but ERROR from ERROR.
    for state in (State.FINISHED, State.FAILED, State.ERROR):
        assert all((state, what) in ILLEGAL for what in Input)


@pytest.mark.parametrize("pair", list(LEGAL), ids=pair_id)
def test_legal_input(pair):
    state, what = pair
    next_state, expected = LEGAL[pair]
    machine = machine_in(state)
    index_before = machine.next_index
    events = send(machine, what)
    assert machine.state is next_state
    assert normalize_signatures(wire(events)) == expected
    opened = sum(1 for e in expected if e["type"] == "content_block_start")
    assert machine.next_index == index_before + opened


@pytest.mark.parametrize("pair", ILLEGAL, ids=pair_id)
def test_illegal_input_raises_emits_nothing_and_leaves_error(pair):
    state, what = pair
    machine = machine_in(state)
    index_before = machine.next_index
    result: list[Event] | None = None
    with pytest.raises(MachineError) as excinfo:
        result = send(machine, what)
    assert result is None
    message = str(excinfo.value)
    if state is State.ERROR:
        assert "ERROR" in message
    else:
        assert state.name in message and what.name in message
    assert machine.state is State.ERROR
    assert machine.next_index == index_before


@pytest.mark.parametrize("pair", ILLEGAL, ids=pair_id)
def test_after_an_error_every_call_raises_saying_so(pair):
    state, what = pair
    machine = machine_in(state)
    with pytest.raises(MachineError) as first:
        send(machine, what)
    index = machine.next_index
    for later in Input:
        with pytest.raises(MachineError) as excinfo:
            send(machine, later)
        assert "ERROR" in str(excinfo.value)
        if state is not State.ERROR:
            # and it still says what went wrong in the first place
            assert str(first.value) in str(excinfo.value)
        assert machine.state is State.ERROR
        assert machine.next_index == index


@pytest.mark.parametrize("state", [State.BETWEEN_BLOCKS, State.IN_THINKING, State.IN_TEXT], ids=lambda s: s.name)
@pytest.mark.parametrize("method", ["text", "thinking"])
def test_empty_text_or_thinking_never_opens_or_closes_a_block(state, method):
    machine = machine_in(state)
    index = machine.next_index
    assert getattr(machine, method)("") == []
    assert machine.state is state
    assert machine.next_index == index


@pytest.mark.parametrize("state", [State.AWAITING_START, State.FINISHED, State.FAILED], ids=lambda s: s.name)
@pytest.mark.parametrize("method", ["text", "thinking"])
def test_empty_text_is_still_illegal_where_text_is(state, method):
    machine = machine_in(state)
    with pytest.raises(MachineError):
        getattr(machine, method)("")
    assert machine.state is State.ERROR


def test_only_empty_output_gives_a_message_without_blocks():
    machine = machine_in(State.BETWEEN_BLOCKS)
    assert machine.text("") == [] and machine.thinking("") == []
    events = wire(machine.finish(input_tokens=IN_TOKENS, output_tokens=OUT_TOKENS))
    assert events == message_end("end_turn")


@pytest.mark.parametrize(
    ("tool_used", "truncated", "stop_sequence", "expected"),
    [
        (True, True, "END", ("tool_use", None)),
        (True, False, None, ("tool_use", None)),
        (True, False, "END", ("tool_use", None)),
        (True, True, None, ("tool_use", None)),
        (False, True, "END", ("max_tokens", None)),
        (False, True, None, ("max_tokens", None)),
        (False, False, "END", ("stop_sequence", "END")),
        (False, False, None, ("end_turn", None)),
    ],
)
def test_stop_reason(tool_used, truncated, stop_sequence, expected):
    machine = machine_in(State.BETWEEN_BLOCKS)
    machine.text("answer")
    if tool_used:
        machine.tool_use(tool_id=TOOL_ID, name=TOOL_NAME, arguments={})
        machine.text("more after the call")
    events = wire(
        machine.finish(input_tokens=IN_TOKENS, output_tokens=OUT_TOKENS, truncated=truncated, stop_sequence=stop_sequence)
    )
    message_delta = next(e for e in events if e["type"] == "message_delta")
    assert (message_delta["delta"]["stop_reason"], message_delta["delta"]["stop_sequence"]) == expected
    assert message_delta["usage"] == {"input_tokens": IN_TOKENS, "output_tokens": OUT_TOKENS}
    assert events[-1] == {"type": "message_stop"}


def test_a_long_turn_state_by_state():
    """Thinking, text, two tool calls, text, thinking again: the state after every input
    and the block indices 0, 1, 2, … in order."""
    machine = ContentBlockMachine()
    steps: list[tuple[Any, State, list[dict[str, Any]]]] = [
        (lambda: send(machine, Input.START), State.BETWEEN_BLOCKS, [MESSAGE_START]),
        (lambda: machine.thinking("a"), State.IN_THINKING, [block_start(0, "thinking"), delta(0, "thinking_delta", "a")]),
        (lambda: machine.thinking("b"), State.IN_THINKING, [delta(0, "thinking_delta", "b")]),
        (lambda: machine.text(""), State.IN_THINKING, []),
        (lambda: machine.text("c"), State.IN_TEXT, close_thinking(0) + [block_start(1, "text"), delta(1, "text_delta", "c")]),
        (lambda: send(machine, Input.TOOL_USE), State.BETWEEN_BLOCKS, [block_stop(1)] + tool_block(2)),
        (lambda: send(machine, Input.TOOL_USE), State.BETWEEN_BLOCKS, tool_block(3)),
        (lambda: machine.text("d"), State.IN_TEXT, [block_start(4, "text"), delta(4, "text_delta", "d")]),
        (lambda: machine.thinking("e"), State.IN_THINKING, [block_stop(4), block_start(5, "thinking"), delta(5, "thinking_delta", "e")]),
        (lambda: send(machine, Input.FINISH), State.FINISHED, close_thinking(5) + message_end("tool_use")),
    ]
    for i, (step, state, expected) in enumerate(steps):
        assert normalize_signatures(wire(step())) == expected, f"step {i}"
        assert machine.state is state, f"step {i}"
    assert machine.next_index == 6


# --- property: any legal sequence of output gives a stream the SDK reads back -----------

piece = st.one_of(
    st.tuples(st.just("thinking"), st.text(max_size=5)),
    st.tuples(st.just("text"), st.text(max_size=5)),
    st.tuples(
        st.just("tool_use"),
        st.dictionaries(st.text(max_size=4), st.one_of(st.none(), st.integers(), st.text(max_size=4)), max_size=3),
    ),
)


def expected_content(pieces: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """What the client should end up with: consecutive same-kind text merged, empties gone."""
    blocks: list[dict[str, Any]] = []
    for kind, value in pieces:
        if kind == "tool_use":
            blocks.append({"type": "tool_use", "input": value})
        elif value:
            if blocks and blocks[-1]["type"] == kind:
                blocks[-1][kind] += value
            else:
                blocks.append({"type": kind, kind: value})
    return blocks


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(piece, max_size=12), truncated=st.booleans())
def test_any_output_sequence_makes_a_well_formed_stream(pieces, truncated):
    machine = ContentBlockMachine()
    events = send(machine, Input.START)
    for n, (kind, value) in enumerate(pieces):
        if kind == "tool_use":
            events += machine.tool_use(tool_id=f"toolu_{n:024x}", name="T", arguments=value)
        else:
            events += getattr(machine, kind)(value)
    events += machine.finish(input_tokens=IN_TOKENS, output_tokens=OUT_TOKENS, truncated=truncated)
    payloads = [e.payload() for e in events]

    # Block structure: start → deltas of the block's own kind → stop, indices 0, 1, 2, …
    open_index, open_kind, next_index, saw_signature = None, None, 0, False
    delta_kinds = {"thinking": {"thinking_delta", "signature_delta"}, "text": {"text_delta"}, "tool_use": {"input_json_delta"}}
    for p in payloads[1:-2]:
        if p["type"] == "content_block_start":
            assert open_index is None and p["index"] == next_index
            open_index, open_kind, saw_signature = p["index"], p["content_block"]["type"], False
            next_index += 1
        elif p["type"] == "content_block_delta":
            assert p["index"] == open_index and p["delta"]["type"] in delta_kinds[open_kind]
            assert not saw_signature, "nothing may follow a thinking block's signature"
            saw_signature = p["delta"]["type"] == "signature_delta"
        else:
            assert p["type"] == "content_block_stop" and p["index"] == open_index
            if open_kind == "thinking":
                assert saw_signature
            open_index = None
    assert open_index is None
    assert [p["type"] for p in payloads[-2:]] == ["message_delta", "message_stop"]

    # The SDK's own accumulator reads the same content back.
    snapshot, json_bufs = None, {}
    for p in payloads:
        snapshot = accumulate_event(event=p, current_snapshot=snapshot, json_bufs=json_bufs)
    got = []
    for block in snapshot.content:
        if block.type == "tool_use":
            got.append({"type": "tool_use", "input": block.input})
        else:
            assert getattr(block, block.type), "no empty text or thinking block"
            got.append({"type": block.type, block.type: getattr(block, block.type)})
    assert got == expected_content(pieces)
    any_tool = any(kind == "tool_use" for kind, _ in pieces)
    assert snapshot.stop_reason == ("tool_use" if any_tool else "max_tokens" if truncated else "end_turn")
