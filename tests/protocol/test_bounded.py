"""proxy.protocol.bounded: the caps that keep a client's input from growing memory, logs or
the stack without bound — each at its exact boundary, as the operator's log and the client's
error see them."""

from __future__ import annotations

import json

import pytest

from proxy.protocol import bounded
from proxy.protocol.bounded import DEPTH_LIMIT, ECHO_LIMIT, MODEL_TABLE_SIZE, BoundedDict, clip, too_deep, utf8, valid_text


def test_a_table_keeps_exactly_its_size_and_forgets_the_oldest_set_entry() -> None:
    table: BoundedDict[str, int] = BoundedDict(3)
    for i, name in enumerate(["a", "b", "c"]):
        table[name] = i
    assert list(table.items()) == [("a", 0), ("b", 1), ("c", 2)]  # at the size: nothing lost
    table["d"] = 3
    assert list(table) == ["b", "c", "d"]
    table["b"] = 10  # set again: now the most recent, "c" is the oldest
    table["e"] = 4
    assert list(table.items()) == [("d", 3), ("b", 10), ("e", 4)]
    assert len(table) == 3


def test_a_table_of_one_keeps_only_the_last_entry() -> None:
    table: BoundedDict[str, int] = BoundedDict(1)
    table["a"] = 1
    table["b"] = 2
    assert dict(table) == {"b": 2}


def test_the_default_size_is_the_model_table_size_read_when_the_table_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MODEL_TABLE_SIZE == 256
    table: BoundedDict[int, int] = BoundedDict()
    assert table.size == 256
    for i in range(257):
        table[i] = i
    assert len(table) == 256 and 0 not in table and 1 in table and 256 in table
    monkeypatch.setattr(bounded, "MODEL_TABLE_SIZE", 2)
    small: BoundedDict[int, int] = BoundedDict()
    for i in range(3):
        small[i] = i
    assert list(small) == [1, 2]
    assert table.size == 256  # a table made before keeps its size


def test_clip_keeps_a_value_up_to_the_limit_and_says_how_much_it_cut() -> None:
    assert ECHO_LIMIT == 200
    assert clip("x" * 200) == "x" * 200
    assert clip("x" * 201) == "x" * 200 + "… (1 more characters)"
    assert clip("abcdef", 4) == "abcd… (2 more characters)"
    assert clip("abcd", 4) == "abcd"
    assert clip("") == ""


def test_clip_shows_a_value_that_is_not_text_as_its_repr() -> None:
    assert clip(["a", 1]) == "['a', 1]"
    assert clip(None) == "None"
    assert clip({"k": "v" * 300}).startswith("{'k': 'vvv")
    assert clip({"k": "v" * 300}).endswith(f"… ({len(repr({'k': 'v' * 300})) - 200} more characters)")


def test_clip_replaces_a_lone_surrogate_so_the_log_line_can_be_written() -> None:
    clipped = clip("model\ud800name")
    assert clipped == "model\ufffdname"
    clipped.encode("utf-8")
    assert clip("\ud800" * 5, 2) == "\ufffd\ufffd… (3 more characters)"


def test_valid_text_leaves_good_text_alone_and_mends_lone_surrogates() -> None:
    assert valid_text("plain") == "plain"
    assert valid_text("héllo 😀") == "héllo 😀"
    assert valid_text("\ud800") == "\ufffd"
    assert valid_text("é\udfffx") == "é\ufffdx"
    assert valid_text("😀\ud83d") == "😀\ufffd"  # a real pair kept, the lone half mended
    parsed = json.loads('"a\\ud800b"')  # what Python's JSON parser lets through
    assert valid_text(parsed) == "a\ufffdb"


def test_utf8_encodes_anything_a_client_sent() -> None:
    assert utf8("héllo") == "héllo".encode()
    assert utf8("a\ud800b") == b"a\xef\xbf\xbdb"
    assert utf8("") == b""


def _nested(depth: int, kind: str = "list") -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_too_deep_refuses_one_level_past_the_limit(kind: str) -> None:
    assert DEPTH_LIMIT == 128
    assert not too_deep(_nested(128, kind))
    assert too_deep(_nested(129, kind))
    assert not too_deep(_nested(3, kind), 3)
    assert too_deep(_nested(4, kind), 3)


def test_too_deep_looks_at_every_branch_and_both_kinds_mixed() -> None:
    mixed = {"a": 1, "b": [{"c": [{"d": "x"}]}]}  # 5 levels of arrays and objects
    assert not too_deep(mixed, 5)
    assert too_deep(mixed, 4)
    wide = [1, "two", None, {"shallow": True}, [[["deep"]]]]  # the deep one comes last
    assert not too_deep(wide, 4)
    assert too_deep(wide, 3)
    first_deep = [[[["deep"]]], {"shallow": True}]
    assert too_deep(first_deep, 3)


def test_too_deep_counts_no_level_for_scalars_and_strings() -> None:
    assert not too_deep("text", 0)
    assert not too_deep(7, 0)
    assert not too_deep(None, 0)
    assert too_deep([], 0)
    assert not too_deep([], 1)
    assert not too_deep(["a", 1, 2.5, True, None], 1)
    assert not too_deep({"k": "v", "n": 1}, 1)
    assert too_deep({"k": {}}, 1)
