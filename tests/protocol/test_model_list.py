"""GET /v1/models' list and pages as the client reads them (proxy.protocol.model_list),
at each boundary: the limit's range, the cursors, the order, and the names shown in the
``/model`` picker."""

from __future__ import annotations

import pytest

from proxy.errors import RequestError
from proxy.ollama.admin import InstalledModel
from proxy.protocol.model_list import DEFAULT_LIMIT, EPOCH, MAX_LIMIT, model_entries, paginate, parse_list_query


def test_the_default_page_is_twenty_and_the_largest_a_thousand() -> None:
    assert (DEFAULT_LIMIT, MAX_LIMIT) == (20, 1000)
    assert parse_list_query({}) == (20, None, None)
    assert parse_list_query({"limit": []}) == (20, None, None)
    assert parse_list_query({"limit": ["1"]}) == (1, None, None)
    assert parse_list_query({"limit": ["1000"]}) == (1000, None, None)


@pytest.mark.parametrize(
    "raw, message",
    [
        ("0", "limit: expected a whole number from 1 to 1000, got 0"),
        ("1001", "limit: expected a whole number from 1 to 1000, got 1001"),
        ("-5", "limit: expected a whole number from 1 to 1000, got -5"),
        ("many", "limit: expected a whole number from 1 to 1000, got 'many'"),
        ("2.5", "limit: expected a whole number from 1 to 1000, got '2.5'"),
    ],
)
def test_a_limit_out_of_range_is_refused_naming_the_range_and_the_value(raw: str, message: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_list_query({"limit": [raw]})
    assert str(caught.value) == message


def test_the_last_of_repeated_parameters_counts() -> None:
    assert parse_list_query({"limit": ["abc", "7"], "after_id": ["a", "b"]}) == (7, "b", None)
    assert parse_list_query({"before_id": ["x", "y"]}) == (20, None, "y")


def test_after_and_before_together_are_refused() -> None:
    with pytest.raises(RequestError) as caught:
        parse_list_query({"after_id": ["a"], "before_id": ["b"]})
    assert str(caught.value) == "after_id and before_id cannot be used together"


def test_an_empty_cursor_is_no_cursor() -> None:
    assert parse_list_query({"after_id": [""], "before_id": ["b"]}) == (20, None, "b")
    assert parse_list_query({"after_id": ["a"], "before_id": [""]}) == (20, "a", None)
    assert parse_list_query({"after_id": [""]}) == (20, None, None)


ENTRIES = [{"type": "model", "id": name} for name in "abcde"]


def ids(page: dict) -> list[str]:
    return [entry["id"] for entry in page["data"]]


@pytest.mark.parametrize(
    "limit, expected, more",
    [(1, "a", True), (4, "abcd", True), (5, "abcde", False), (6, "abcde", False)],
)
def test_the_first_page(limit: int, expected: str, more: bool) -> None:
    page = paginate(ENTRIES, limit=limit)
    assert ids(page) == list(expected)
    assert page["has_more"] is more
    assert (page["first_id"], page["last_id"]) == (expected[0], expected[-1])


@pytest.mark.parametrize(
    "after, limit, expected, more",
    [
        ("a", 2, "bc", True),
        ("a", 3, "bcd", True),
        ("a", 4, "bcde", False),  # ends exactly at the last one
        ("c", 5, "de", False),
        ("e", 2, "", False),  # after the last one: an empty page
        ("zz", 2, "", False),  # an unknown id: an empty page, not the first one
    ],
)
def test_pages_after_an_id(after: str, limit: int, expected: str, more: bool) -> None:
    page = paginate(ENTRIES, limit=limit, after_id=after)
    assert ids(page) == list(expected)
    assert page["has_more"] is more
    assert page["first_id"] == (expected[0] if expected else None)
    assert page["last_id"] == (expected[-1] if expected else None)


@pytest.mark.parametrize(
    "before, limit, expected, more",
    [
        ("e", 2, "cd", True),
        ("e", 4, "abcd", False),  # starts exactly at the first one
        ("e", 3, "bcd", True),
        ("c", 5, "ab", False),
        ("a", 2, "", False),  # before the first one: an empty page
        ("zz", 2, "", False),  # an unknown id: an empty page
    ],
)
def test_pages_before_an_id(before: str, limit: int, expected: str, more: bool) -> None:
    page = paginate(ENTRIES, limit=limit, before_id=before)
    assert ids(page) == list(expected)
    assert page["has_more"] is more
    assert page["first_id"] == (expected[0] if expected else None)
    assert page["last_id"] == (expected[-1] if expected else None)


def test_a_page_holds_the_entries_themselves() -> None:
    page = paginate(ENTRIES, limit=2, after_id="b")
    assert page == {"data": ENTRIES[2:4], "has_more": True, "first_id": "c", "last_id": "d"}


def test_map_keys_come_first_with_their_target_then_installed_models_newest_first() -> None:
    installed = [
        InstalledModel("b:1b", modified_at="2024-05-01T00:00:00Z", parameter_size="1B", quantization="Q8_0"),
        InstalledModel("a:1b", modified_at="2024-05-01T00:00:00Z"),  # same date: by name, descending
        InstalledModel("c:7b", modified_at="2025-01-01T00:00:00Z", quantization="Q4_K_M"),
        InstalledModel("undated:3b", modified_at=None),
    ]
    model_map = {"claude-c": "c:7b", "Sonnet": "b:1b", "OPUS": "a:1b", "haiku": "c:7b", "claude-x": "missing:1b"}
    entries = model_entries(installed, model_map)
    assert entries == [
        {"type": "model", "id": "claude-c", "display_name": "claude-c → c:7b (Ollama)",
         "created_at": "2025-01-01T00:00:00Z"},
        {"type": "model", "id": "claude-x", "display_name": "claude-x → missing:1b (Ollama, not installed)",
         "created_at": EPOCH},
        {"type": "model", "id": "c:7b", "display_name": "c:7b (Ollama, Q4_K_M)", "created_at": "2025-01-01T00:00:00Z"},
        {"type": "model", "id": "b:1b", "display_name": "b:1b (Ollama, 1B, Q8_0)", "created_at": "2024-05-01T00:00:00Z"},
        {"type": "model", "id": "a:1b", "display_name": "a:1b (Ollama)", "created_at": "2024-05-01T00:00:00Z"},
        {"type": "model", "id": "undated:3b", "display_name": "undated:3b (Ollama)", "created_at": EPOCH},
    ]


def test_a_map_key_that_names_an_installed_model_is_listed_once_as_that_model() -> None:
    installed = [InstalledModel("qwen3:latest", modified_at="2025-02-02T00:00:00Z", parameter_size="8B")]
    # "qwen3" is "qwen3:latest" to Ollama: the key is the installed model, not a second entry
    entries = model_entries(installed, {"qwen3": "llama3.2", "qwen3:latest": "other", "claude-q": "qwen3"})
    assert entries == [
        {"type": "model", "id": "claude-q", "display_name": "claude-q → qwen3 (Ollama)",
         "created_at": "2025-02-02T00:00:00Z"},
        {"type": "model", "id": "qwen3:latest", "display_name": "qwen3:latest (Ollama, 8B)",
         "created_at": "2025-02-02T00:00:00Z"},
    ]


def test_a_map_key_whose_target_has_no_date_is_dated_at_the_epoch() -> None:
    installed = [InstalledModel("m:1b", modified_at=None)]
    entries = model_entries(iter(installed), {"claude-m": "m:1b"})  # any iterable, read once
    assert [(e["id"], e["created_at"]) for e in entries] == [("claude-m", EPOCH), ("m:1b", EPOCH)]


def test_an_installed_model_named_like_a_listed_map_key_is_not_listed_twice() -> None:
    entries = model_entries([], {"claude-a": "x", "claude-b": "y"})
    assert [e["id"] for e in entries] == ["claude-a", "claude-b"]
    installed = [InstalledModel("x", modified_at="2025-01-01T00:00:00Z"), InstalledModel("x", modified_at=None)]
    assert [e["id"] for e in model_entries(installed, {})] == ["x"]


def test_a_name_listed_twice_is_listed_once_and_the_rest_still_follow() -> None:
    installed = [
        InstalledModel("x:1b", modified_at="2025-01-01T00:00:00Z", parameter_size="1B"),
        InstalledModel("x:1b", modified_at="2025-01-01T00:00:00Z"),
        InstalledModel("a:1b", modified_at="2024-01-01T00:00:00Z"),
    ]
    assert [e["id"] for e in model_entries(installed, {})] == ["x:1b", "a:1b"]
