"""The sans-I/O routing core: plans for (model, session), rendezvous hashing, health, load."""

from __future__ import annotations

import collections
import json

import pytest

from proxy.config import load_settings
from proxy.errors import ConfigError
from proxy.protocol.routing import (
    BACKOFF_MAX,
    HostSpec,
    HostTable,
    parse_host_list,
    parse_host_spec,
    rendezvous_score,
    session_key,
)

A, B, C, D = (f"http://gpu{i}:11434" for i in range(1, 5))
KEYS = [f"session:{i:04d}" for i in range(2000)]


def table(*urls: str, weights: dict[str, float] | None = None, saturation: int = 0, models=("qwen3:8b",)) -> HostTable:
    t = HostTable([HostSpec(u, (weights or {}).get(u, 1.0)) for u in urls], saturation=saturation)
    for host in t.hosts:
        t.observe_tags(host, models, 0.0)
    return t


def owners(t: HostTable, model: str = "qwen3:8b", now: float = 0.0) -> dict[str, str]:
    return {key: t.plan(model, key, now)[0].url for key in KEYS}


# -- settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("http://a:11434", ("http://a:11434", 1.0)),
        ("http://a:11434=2", ("http://a:11434", 2.0)),
        ("http://a:11434=0.5", ("http://a:11434", 0.5)),
        ("http://a:11434/x?k=v", ("http://a:11434/x?k=v", 1.0)),  # not a number: part of the URL
    ],
)
def test_host_spec(text, expected):
    assert parse_host_spec(text) == expected


@pytest.mark.parametrize("text", ["http://a:11434=0", "http://a:11434=-1", "http://a:11434=inf"])
def test_host_spec_rejects_a_weight_that_is_not_positive(text):
    with pytest.raises(ValueError):
        parse_host_spec(text)


def test_one_url_is_the_setting_it_always_was():
    assert load_settings({"ollama_url": "http://x:1/"}, environ={}, read_config_file=False).ollama_url == "http://x:1"
    assert load_settings({"ollama_url": ["http://x:1"]}, environ={}, read_config_file=False).ollama_url == "http://x:1"


def test_several_urls_from_flags_env_and_file(tmp_path):
    flags = load_settings({"ollama_url": ["http://a:1", "http://b:2=3"]}, environ={}, read_config_file=False)
    assert parse_host_list(flags.ollama_url) == [HostSpec("http://a:1"), HostSpec("http://b:2", 3.0)]
    env = load_settings(environ={"PROXY_OLLAMA_URL": "http://a:1, http://b:2=3"}, read_config_file=False)
    assert env.ollama_url == flags.ollama_url
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"ollama_url": ["http://a:1", {"url": "http://b:2", "weight": 3}]}))
    assert load_settings(environ={}, config_path=path).ollama_url == flags.ollama_url


@pytest.mark.parametrize(
    "value, message",
    [
        (["http://a:1", "http://a:1"], "listed twice"),
        (["http://a:1", "ftp://b"], "http://"),
        (["http://a:1=0"], "> 0"),
        ([{"url": "http://a:1", "weight": "x"}], "> 0"),
        ([], "URL"),
    ],
)
def test_bad_url_lists_are_configuration_errors(value, message):
    with pytest.raises(ConfigError, match="--ollama-url") as info:
        load_settings({"ollama_url": value}, environ={}, read_config_file=False)
    assert message in str(info.value)


def test_the_cli_takes_the_flag_several_times():
    from proxy.cli.main import build_parser, flag_values

    args = build_parser().parse_args(["--ollama-url", "http://a:1", "--ollama-url", "http://b:2=2"])
    settings = load_settings(flag_values(args), environ={}, read_config_file=False)
    assert settings.ollama_url == "http://a:1,http://b:2=2"
    args = build_parser().parse_args(["--ollama-url", "http://a:1,http://b:2=2"])
    assert load_settings(flag_values(args), environ={}, read_config_file=False).ollama_url == "http://a:1,http://b:2=2"


# -- sessions ---------------------------------------------------------------------------


def test_session_key_prefers_the_header_then_metadata_then_the_prompt():
    body = {
        "system": [{"type": "text", "text": "You are Claude Code"}],
        "messages": [{"role": "user", "content": "fix the bug"}],
        "metadata": {"user_id": json.dumps({"device_id": "d", "session_id": "s-1"})},
    }
    assert session_key("h-1", body) == "session:h-1"
    assert session_key(None, body) == "session:s-1"
    del body["metadata"]
    by_prompt = session_key(None, body)
    assert by_prompt.startswith("prompt:")
    # later turns of the same conversation keep the key; another first message does not
    later = {**body, "messages": [*body["messages"], {"role": "assistant", "content": "ok"},
                                  {"role": "user", "content": "thanks"}]}
    assert session_key(None, later) == by_prompt
    other = {**body, "messages": [{"role": "user", "content": "another task"}]}
    assert session_key(None, other) != by_prompt


@pytest.mark.parametrize("user_id", ["not json", json.dumps({"session_id": 5}), json.dumps([1]), ""])
def test_session_key_survives_odd_metadata(user_id):
    body = {"messages": [{"role": "user", "content": "x"}], "metadata": {"user_id": user_id}}
    assert session_key(None, body).startswith("prompt:")


def test_the_real_claude_code_request_carries_its_session():
    from tests.conftest import FIXTURES

    capture = json.loads((FIXTURES / "01-first-turn-streaming.json").read_text())
    body, header = capture["body"], capture["headers"]["X-Claude-Code-Session-Id"]
    # the header and metadata.user_id name the same session: one key with or without it
    assert session_key(header, body) == session_key(None, body) == f"session:{header}"


# -- rendezvous hashing -----------------------------------------------------------------


def test_scores_are_stable_across_processes():
    # BLAKE2b, not Python's salted hash: a fixed value any replica computes
    assert rendezvous_score("session:x", A) == pytest.approx(rendezvous_score("session:x", A))
    assert round(rendezvous_score("session:abc", "http://gpu1:11434"), 9) == round(
        -1.0 / __import__("math").log(
            (int.from_bytes(__import__("hashlib").blake2b(b"session:abc\0http://gpu1:11434", digest_size=8).digest(), "big") + 0.5)
            / 2.0**64
        ),
        9,
    )


def test_sessions_spread_evenly_and_by_weight():
    even = collections.Counter(owners(table(A, B, C, D)).values())
    assert all(400 <= even[u] <= 600 for u in (A, B, C, D)), even
    weighted = collections.Counter(owners(table(A, B, weights={A: 3.0})).values())
    assert 0.7 <= weighted[A] / len(KEYS) <= 0.8, weighted


def test_removing_a_host_moves_only_its_sessions():
    four = table(A, B, C, D)
    before = owners(four)
    four.failed(four.by_url(C), 0.0, "refused")
    after = owners(four, now=0.5)
    moved = {k for k in KEYS if before[k] != after[k]}
    assert moved == {k for k in KEYS if before[k] == C}
    assert all(after[k] != C for k in moved)
    # it comes back when its backoff is over (and a success clears it): the same owners
    four.succeeded(four.by_url(C), 2.0)
    assert owners(four, now=2.0) == before


def test_adding_a_host_takes_sessions_only_from_the_others_proportionally():
    three, four = table(A, B, C), table(A, B, C, D)
    before, after = owners(three), owners(four)
    moved = [k for k in KEYS if before[k] != after[k]]
    assert all(after[k] == D for k in moved)
    assert 400 <= len(moved) <= 600


def test_two_tables_built_apart_agree():
    """Two proxy replicas: same URLs, no shared state, the same plans."""
    assert owners(table(A, B, C, D)) == owners(table(D, C, B, A))


# -- model, load, health ----------------------------------------------------------------


def test_only_hosts_with_the_model_and_loaded_ones_first():
    t = HostTable([HostSpec(A), HostSpec(B), HostSpec(C)])
    t.observe_tags(t.by_url(A), ["qwen3:8b", "gemma3:4b"], 0)
    t.observe_tags(t.by_url(B), ["qwen3"], 0)  # qwen3:latest, not qwen3:8b
    t.observe_tags(t.by_url(C), ["qwen3:8b"], 0)
    assert [h.url for h in t.plan("gemma3:4b", "k", 0)] == [A]
    assert {h.url for h in t.plan("qwen3:8b", "k", 0)} == {A, C}
    assert [h.url for h in t.plan("QWEN3", "k", 0)] == [B]
    assert t.plan("mistral", "k", 0) == [] and t.model_is_nowhere("mistral")
    for key in KEYS[:50]:
        t.observe_ps(t.by_url(A), [], 0)
        t.observe_ps(t.by_url(C), ["qwen3:8b"], 0)
        assert t.plan("qwen3:8b", key, 0)[0].url == C
        t.observe_ps(t.by_url(A), ["qwen3:8b"], 0)  # both loaded: affinity decides again
    assert {t.plan("qwen3:8b", k, 0)[0].url for k in KEYS[:50]} == {A, C}


def test_a_host_whose_models_are_unknown_may_be_tried():
    t = HostTable([HostSpec(A), HostSpec(B)])
    t.observe_tags(t.by_url(A), ["other"], 0)
    assert [h.url for h in t.plan("qwen3:8b", "k", 0)] == [B]
    assert not t.model_is_nowhere("qwen3:8b")


def test_one_host_is_always_planned():
    t = HostTable([HostSpec(A)])
    t.observe_tags(t.hosts[0], ["other"], 0)
    t.failed(t.hosts[0], 0, "refused")
    assert [h.url for h in t.plan("qwen3:8b", "k", 0)] == [A]


def test_a_saturated_host_goes_after_those_with_room():
    t = table(A, B, saturation=2)
    key = next(k for k in KEYS if t.plan("qwen3:8b", k, 0)[0].url == A)
    t.started(t.by_url(A))
    assert t.plan("qwen3:8b", key, 0)[0].url == A
    t.started(t.by_url(A))
    assert [h.url for h in t.plan("qwen3:8b", key, 0)] == [B, A]
    t.finished(t.by_url(A))
    assert t.plan("qwen3:8b", key, 0)[0].url == A


def test_a_503_teaches_a_limit_for_a_while():
    t = table(A, B)
    key = next(k for k in KEYS if t.plan("qwen3:8b", k, 0)[0].url == A)
    a = t.by_url(A)
    for _ in range(3):
        t.started(a)
    t.busy(a, 10.0)  # the third got a 503: it takes two
    t.finished(a)
    assert a.limit(0, 10.0) == 2 and a.in_flight == 2
    assert [h.url for h in t.plan("qwen3:8b", key, 10.0)] == [B, A]
    t.finished(a)
    assert t.plan("qwen3:8b", key, 10.0)[0].url == A
    t.started(a), t.started(a)
    assert t.plan("qwen3:8b", key, 10.0 + 31)[0].url == A  # forgotten after BUSY_MEMORY


def test_a_down_host_backs_off_doubling_and_comes_back():
    t = table(A, B)
    key = next(k for k in KEYS if t.plan("qwen3:8b", k, 0)[0].url == A)
    a = t.by_url(A)
    t.observe_ps(a, ["qwen3:8b"], 0)
    t.failed(a, 0.0, "connection refused")
    assert a.loaded == frozenset()  # a restarted Ollama has nothing in memory
    assert [h.url for h in t.plan("qwen3:8b", key, 0.5)] == [B, A]  # last, not gone
    assert t.plan("qwen3:8b", key, 1.0)[0].url == A  # backoff over: tried again
    t.failed(a, 1.0, "connection refused")
    assert a.snapshot(0, 2.0)["state"] == "down" and a.retry_at == 3.0
    for _ in range(20):
        t.failed(a, 100.0, "connection refused")
    assert a.retry_at == 100.0 + BACKOFF_MAX
    t.succeeded(a, 200.0)
    assert a.failures == 0 and t.plan("qwen3:8b", key, 200.0)[0].url == A
    assert a.snapshot(0, 200.0)["state"] == "up"


def test_a_404_removes_the_model_from_that_host():
    t = table(A, B)
    t.lacks(t.by_url(A), "qwen3:8b")
    assert [h.url for h in t.plan("qwen3:8b", "k", 0)] == [B]


def test_in_flight_never_goes_negative_and_counts_served():
    t = table(A)
    t.finished(t.hosts[0])
    assert t.hosts[0].in_flight == 0 and t.hosts[0].served == 1


def test_the_table_refuses_nonsense():
    with pytest.raises(ValueError):
        HostTable([])
    with pytest.raises(ValueError):
        HostTable([HostSpec(A), HostSpec(A)])
