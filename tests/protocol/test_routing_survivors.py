"""Which host a session lands on (proxy/protocol/routing.py), for the bodies a mutation run
found unguarded (docs/TESTING.md): a ``metadata.user_id`` that is not a string, a lone
surrogate in the first user message, a model name with a colon before its last slash. Each
request still gets a plan, and every turn of the session the same host."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.protocol.routing import HostSpec, HostTable, session_key

URLS = [f"http://gpu{i}:11434" for i in range(1, 5)]


def table() -> HostTable:
    t = HostTable([HostSpec(u) for u in URLS])
    for host in t.hosts:
        t.observe_tags(host, ["qwen3:8b"], 0.0)
    return t


def turns(first_user: Any, **extra: Any) -> list[dict[str, Any]]:
    """Three turns of one conversation: the system prompt and first user message stay."""
    history: list[dict[str, Any]] = [{"role": "user", "content": first_user}]
    bodies = []
    for n in range(3):
        bodies.append({"model": "qwen3:8b", "system": "You are Claude Code.", "messages": list(history), **extra})
        history += [{"role": "assistant", "content": f"answer {n}"}, {"role": "user", "content": f"more {n}"}]
    return bodies


@pytest.mark.parametrize("user_id", [12345, {"session_id": "s-1"}, ["s-1"], True])
def test_a_user_id_that_is_not_a_string_keys_the_session_by_its_prompt(user_id):
    t = table()
    bodies = turns("fix the bug", metadata={"user_id": user_id})
    keys = [session_key(None, body) for body in bodies]
    assert keys == [session_key(None, turns("fix the bug")[0])] * 3  # as with no metadata at all
    assert keys[0].startswith("prompt:")
    hosts = {t.plan("qwen3:8b", key, 0.0)[0].url for key in keys}
    assert len(hosts) == 1


@pytest.mark.parametrize("content", ["fix \ud800 this", [{"type": "text", "text": "fix \udfff this"}]])
def test_a_lone_surrogate_in_the_first_user_message_still_keys_one_session(content):
    # JSON's "\ud800" parses to a lone surrogate, which UTF-8 cannot encode: it is hashed as "?"
    t = table()
    keys = [session_key(None, body) for body in turns(content)]
    assert keys == [session_key(None, turns("fix ? this")[0])] * 3
    assert keys[0] != session_key(None, turns("fix this")[0])
    hosts = {t.plan("qwen3:8b", key, 0.0)[0].url for key in keys}
    assert len(hosts) == 1


def test_a_colon_before_the_last_slash_is_not_a_tag():
    # Only the last path segment carries a tag: "reg/ns:x/coder" is "reg/ns:x/coder:latest",
    # so the host that has it loaded (as /api/ps lists it) goes first for every session.
    t = HostTable([HostSpec(u) for u in URLS])
    for host in t.hosts:
        t.observe_tags(host, ["reg/ns:x/coder:latest"], 0.0)
    loaded = t.hosts[2]
    t.observe_ps(loaded, ["reg/ns:x/coder:latest"], 0.0)
    for key in (f"session:{i}" for i in range(20)):
        assert t.plan("reg/ns:x/coder", key, 0.0)[0] is loaded
    assert t.snapshot(0.0)[2]["models_loaded"] == ["reg/ns:x/coder:latest"]
    t.succeeded(t.hosts[0], 1.0, model="Reg/NS:x/Coder")  # it just answered for the untagged name
    assert t.snapshot(1.0)[0]["models_loaded"] == ["reg/ns:x/coder:latest"]
