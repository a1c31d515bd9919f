"""The chat URL made once per client (proxy/upstream.py) is the one httpx makes of CHAT_PATH."""

from __future__ import annotations

import pytest

from proxy.upstream import CHAT_PATH, chat_url, open_client


@pytest.mark.parametrize(
    "base", ["http://127.0.0.1:11434", "http://ollama.lan:11434/", "http://gw:8080/ollama", "http://[::1]:11434"]
)
def test_the_chat_url_is_the_url_httpx_makes_of_the_chat_path(base):
    client = open_client(base, connect_timeout=1)
    made = client.build_request("POST", chat_url(client), content=b"{}")
    expected = client.build_request("POST", CHAT_PATH, content=b"{}")
    assert str(made.url) == str(expected.url)
    assert made.headers.multi_items() == expected.headers.multi_items()
    assert chat_url(client) is chat_url(client)


def test_a_new_base_url_gets_a_new_chat_url():
    client = open_client("http://127.0.0.1:11434", connect_timeout=1)
    assert str(chat_url(client)) == "http://127.0.0.1:11434/api/chat"
    client.base_url = "http://127.0.0.1:9999/v2"
    assert str(chat_url(client)) == "http://127.0.0.1:9999/v2/api/chat"
