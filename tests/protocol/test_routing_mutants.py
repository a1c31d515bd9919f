"""The routing core as the operator sees it (/health's host rows, the setting's text) and as
sessions land (proxy/protocol/routing.py), each rule at its boundary."""

from __future__ import annotations

import hashlib
import math

import pytest

from proxy.protocol.routing import (
    BACKOFF_BASE,
    BACKOFF_MAX,
    BUSY_MEMORY,
    Host,
    HostSpec,
    HostState,
    HostTable,
    format_host_list,
    host_urls,
    normalize_model,
    parse_host_list,
    parse_host_spec,
    rendezvous_score,
    session_key,
)

A, B, C = "http://a:11434", "http://b:11434", "http://c:11434"


def test_the_setting_reads_and_writes_back_the_same_list() -> None:
    specs = parse_host_list(" http://a:1 ,, http://b:2=2.5 ,http://c:3=1, ")
    assert specs == [HostSpec("http://a:1"), HostSpec("http://b:2", 2.5), HostSpec("http://c:3")]
    assert format_host_list(specs) == "http://a:1,http://b:2=2.5,http://c:3"
    assert str(HostSpec("http://x", 1.0)) == "http://x"
    assert str(HostSpec("http://x", 3.0)) == "http://x=3"
    assert str(HostSpec("http://x", 0.25)) == "http://x=0.25"
    assert host_urls("http://a:1=2,http://b:2") == ["http://a:1", "http://b:2"]
    assert parse_host_list("") == [] and parse_host_list(" , ") == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("  http://a:1=2  ", ("http://a:1", 2.0)),
        ("=2", ("=2", 1.0)),  # no URL before the "=": all of it is the URL
        ("http://a:1?x=1=3", ("http://a:1?x=1", 3.0)),  # only after the last "="
        ("http://a:1?x=y", ("http://a:1?x=y", 1.0)),
        ("http://a:1", ("http://a:1", 1.0)),
    ],
)
def test_a_weight_is_only_a_number_after_the_last_equals(text: str, expected: tuple[str, float]) -> None:
    assert parse_host_spec(text) == expected


@pytest.mark.parametrize("tail", ["0", "-2", "inf", "nan", "-inf"])
def test_a_weight_not_above_zero_is_refused_naming_it(tail: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_host_spec(f"http://a:1={tail}")
    assert str(caught.value) == f"weight {tail!r} of http://a:1: expected a number > 0"


def test_model_names_as_ollama_reads_them() -> None:
    assert normalize_model(" Qwen3 ") == "qwen3:latest"
    assert normalize_model("qwen3:8B") == "qwen3:8b"
    assert normalize_model("hf.co/org/model") == "hf.co/org/model:latest"
    assert normalize_model("host:5000/org/model") == "host:5000/org/model:latest"  # a port is not a tag
    assert normalize_model("host:5000/org/model:q4") == "host:5000/org/model:q4"


def test_the_session_key_without_header_or_metadata_is_the_prompts_digest() -> None:
    body = {
        "system": [{"type": "text", "text": "sys one"}, {"type": "image"}, {"text": 5}, "odd", {"type": "text", "text": "two"}],
        "messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": [
            {"type": "text", "text": "first"}, {"type": "text", "text": "words"}]}, {"role": "user", "content": "later"}],
    }
    digest = hashlib.blake2b(digest_size=16)
    digest.update(b"sys one\ntwo")
    digest.update(b"\0")
    digest.update(b"first\nwords")
    assert session_key(None, body) == "prompt:" + digest.hexdigest()
    assert session_key("   ", body) == session_key(None, body)  # a blank header is none
    assert session_key("  h  ", body) == "session:h"
    assert session_key(None, {**body, "metadata": {"user_id": '{"session_id": ""}'}}) == session_key(None, body)
    assert session_key(None, {**body, "metadata": "x"}) == session_key(None, body)


def test_the_session_key_of_a_body_without_a_prompt() -> None:
    empty = hashlib.blake2b(b"\0", digest_size=16).hexdigest()
    assert session_key(None, {}) == "prompt:" + empty
    assert session_key(None, {"system": 5, "messages": "x"}) == "prompt:" + empty
    assert session_key(None, {"messages": [{"role": "assistant", "content": "a"}, "junk"]}) == "prompt:" + empty
    assert session_key(None, {"messages": [{"role": "user", "content": 7}]}) == "prompt:" + empty
    lone = hashlib.blake2b(digest_size=16)
    lone.update("\ud800".encode("utf-8", "replace"))
    lone.update(b"\0")
    assert session_key(None, {"system": "\ud800"}) == "prompt:" + lone.hexdigest()


def test_a_weight_scales_the_score() -> None:
    raw = hashlib.blake2b(b"k\0http://a", digest_size=8).digest()
    u = (int.from_bytes(raw, "big") + 0.5) / 2.0**64
    assert rendezvous_score("k", "http://a") == -1.0 / math.log(u)
    assert rendezvous_score("k", "http://a", 2.5) == -2.5 / math.log(u)
    assert rendezvous_score("k", "http://a") > 0


def test_a_host_row_on_health_says_everything_known() -> None:
    t = HostTable([HostSpec(A, 2.0), HostSpec(B)], saturation=0)
    a, b = t.hosts
    assert a.snapshot(0, 0.0) == {
        "url": A, "weight": 2.0, "state": "unknown", "in_flight": 0, "limit": None, "models_installed": None,
        "models_loaded": [], "served": 0, "failures": 0, "last_error": None, "retry_in": None,
    }
    t.observe_tags(a, ["qwen3:8b", "Gemma3"], 1.0)
    t.observe_ps(a, ["qwen3:8b", "gemma3"], 1.0)
    t.started(a)
    t.started(a)
    t.finished(a)
    assert t.snapshot(1.0)[0] == {
        "url": A, "weight": 2.0, "state": "up", "in_flight": 1, "limit": None, "models_installed": 2,
        "models_loaded": ["gemma3:latest", "qwen3:8b"], "served": 1, "failures": 0, "last_error": None, "retry_in": None,
    }
    t.failed(b, 10.0, "connection refused")
    t.failed(b, 10.0, "connection reset")
    row = t.snapshot(10.04)[1]
    assert (row["state"], row["failures"], row["last_error"], row["retry_in"]) == ("down", 2, "connection reset", 2.0)
    assert t.snapshot(10.96)[1]["retry_in"] == 1.0
    assert t.snapshot(10.7)[1]["retry_in"] == 1.3  # seconds to one decimal
    assert t.snapshot(12.0)[1]["state"] == "retrying" and t.snapshot(12.0)[1]["retry_in"] == 0.0
    assert t.snapshot(13.0)[1]["retry_in"] == 0.0
    assert t.snapshot(13.0)[1]["models_installed"] is None


def test_backoff_doubles_from_one_second_up_to_a_minute() -> None:
    assert (BACKOFF_BASE, BACKOFF_MAX, BUSY_MEMORY) == (1.0, 60.0, 30.0)
    t = HostTable([HostSpec(A), HostSpec(B)])
    a = t.hosts[0]
    waits = []
    for _ in range(8):
        t.failed(a, 100.0, "timed out")
        waits.append(a.retry_at - 100.0)
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert a.is_down(159.9) and not a.is_down(160.0)
    assert a.state is HostState.DOWN
    t.succeeded(a, 200.0)
    assert (a.state, a.failures, a.retry_at, a.last_error) == (HostState.UP, 0, 0.0, None)
    t.failed(a, 300.0, "refused")
    assert a.retry_at == 301.0  # a success started the doubling afresh


def test_a_configured_limit_wins_over_a_learned_one() -> None:
    t = HostTable([HostSpec(A), HostSpec(B)], saturation=3)
    a = t.hosts[0]
    for _ in range(5):
        t.started(a)
    t.busy(a, 0.0)
    assert a.busy_limit == 4 and a.busy_until == 30.0
    assert a.limit(3, 1.0) == 3 and a.limit(0, 1.0) == 4
    assert a.limit(0, 29.9) == 4 and a.limit(0, 30.0) is None
    assert a.snapshot(3, 1.0)["limit"] == 3 and a.snapshot(0, 1.0)["limit"] == 4
    assert a.is_saturated(5, 1.0) and not a.is_saturated(6, 1.0)  # full at the limit, not before
    assert not a.is_saturated(0, 30.0)


def test_a_503_with_nothing_else_in_flight_still_allows_one() -> None:
    t = HostTable([HostSpec(A), HostSpec(B)])
    a = t.hosts[0]
    t.started(a)
    t.failed(a, 0.0, "refused")
    t.busy(a, 0.0)  # up again, but full
    assert a.busy_limit == 1 and a.state is HostState.UP and a.failures == 0
    t.finished(a, answered=True)
    assert a.busy_limit == 1 and not a.is_saturated(0, 1.0)


def test_a_request_that_got_no_answer_is_not_counted_as_served() -> None:
    t = HostTable([HostSpec(A)])
    a = t.hosts[0]
    t.started(a)
    t.finished(a, answered=False)
    assert (a.in_flight, a.served) == (0, 0)
    t.started(a)
    t.finished(a)
    assert (a.in_flight, a.served) == (0, 1)


def test_an_answer_for_a_model_marks_it_loaded_there() -> None:
    t = HostTable([HostSpec(A), HostSpec(B)])
    a, b = t.hosts
    t.succeeded(a, 0.0, model="Qwen3")
    t.succeeded(a, 0.0)
    assert a.loaded == frozenset({"qwen3:latest"})
    t.observe_tags(a, ["qwen3"], 0.0)
    t.observe_tags(b, ["qwen3"], 0.0)
    for key in (f"k{i}" for i in range(30)):
        assert t.plan("qwen3", key, 0.0)[0] is a  # loaded there: first, whatever the key
    t.lacks(a, "QWEN3")
    assert a.installed == frozenset() and a.loaded == frozenset()
    assert [h.url for h in t.plan("qwen3", "k", 0.0)] == [B]


def test_a_404_from_a_host_whose_list_is_unknown_unloads_the_model_only() -> None:
    t = HostTable([HostSpec(A), HostSpec(B)])
    a = t.hosts[0]
    t.succeeded(a, 0.0, model="m:1b")
    t.lacks(a, "m:1b")
    assert a.installed is None and a.loaded == frozenset()
    assert a.has_model("m:1b") is None
    assert not t.model_is_nowhere("m:1b")
    t.observe_tags(a, [], 0.0)
    t.observe_tags(t.hosts[1], ["other"], 0.0)
    assert t.model_is_nowhere("m:1b") and t.hosts_with("m:1b") == []
    assert t.hosts_with("OTHER") == [t.hosts[1]]


def test_the_plan_orders_down_then_full_then_not_loaded_then_affinity() -> None:
    t = HostTable([HostSpec(A), HostSpec(B), HostSpec(C)], saturation=1)
    for host in t.hosts:
        t.observe_tags(host, ["m"], 0.0)
    a, b, c = t.hosts
    key = "k"
    affinity = sorted(t.hosts, key=lambda h: -rendezvous_score(key, h.url))
    assert t.plan("m", key, 0.0) == affinity
    best, second, third = affinity
    t.observe_ps(third, ["m"], 0.0)
    assert t.plan("m", key, 0.0) == [third, best, second]  # loaded first
    t.started(third)
    assert t.plan("m", key, 0.0) == [best, second, third]  # full: after those with room
    t.failed(best, 0.0, "refused")
    assert t.plan("m", key, 0.5) == [second, third, best]  # down: last, even after a full one
    assert len(t) == 3 and t.by_url(B) is b


def test_hosts_start_unknown_with_their_weight() -> None:
    t = HostTable([HostSpec(A, 0.5)], saturation=2)
    assert t.hosts == [Host(A, 0.5)]
    assert t.saturation == 2
    assert not t.hosts[0].is_down(0.0)


def test_the_table_refusals_say_why() -> None:
    with pytest.raises(ValueError, match="^at least one Ollama host is needed$"):
        HostTable([])
    with pytest.raises(ValueError, match="^the same Ollama URL is listed twice$"):
        HostTable([HostSpec(A), HostSpec(B, 2.0), HostSpec(A, 3.0)])


def test_a_session_id_with_a_lone_surrogate_still_gets_a_host() -> None:
    # metadata.user_id is JSON inside JSON: "\ud800" parses to a lone surrogate
    key = session_key(None, {"metadata": {"user_id": '{"session_id": "s-\\ud800"}'}})
    assert key == "session:s-\ud800"
    t = HostTable([HostSpec(A), HostSpec(B)])
    assert len(t.plan("m", key, 0.0)) == 2
    assert rendezvous_score(key, A) == rendezvous_score("session:s-?", A)  # the surrogate hashed as "?"


def test_served_counts_every_answer() -> None:
    t = HostTable([HostSpec(A)])
    a = t.hosts[0]
    for _ in range(3):
        t.started(a)
        t.finished(a)
    assert t.snapshot(0.0)[0]["served"] == 3


def test_a_hash_at_the_top_of_the_range_scores_without_dividing_by_zero():
    # (2**64 - 1 + 0.5) / 2**64 rounds to 1.0 in floating point, and ln(1.0) == 0: before the
    # clamp, the (session, host) pair whose hash landed there failed every request with
    # ZeroDivisionError. The clamp keeps u below 1 and leaves every other value as it was.
    from proxy.protocol.routing import unit_interval

    for raw in (b"\xff" * 8, (2**64 - 1024).to_bytes(8, "big"), (2**64 - 2048).to_bytes(8, "big")):
        u = unit_interval(raw)
        assert 0.0 < u < 1.0 and math.log(u) < 0
    assert unit_interval(b"\x00" * 8) == 0.5 / 2.0**64
    assert unit_interval((2**63).to_bytes(8, "big")) == (2**63 + 0.5) / 2.0**64
