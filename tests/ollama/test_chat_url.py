"""The chat client's request line and Host header (proxy/ollama/chat.py) are the ones httpx
makes of CHAT_PATH under the Ollama URL: a base path, IPv6, default ports."""

from __future__ import annotations

import httpx
import pytest

from proxy.ollama.chat import OllamaChat
from proxy.ollama.client import CHAT_PATH, open_client


@pytest.mark.parametrize("base", [
    "http://127.0.0.1:11434", "http://ollama.lan:11434/", "http://gw:8080/ollama", "http://[::1]:11434",
    "http://ollama.lan", "https://ollama.example:443/v2/", "https://user:p%40ss@ollama.example/",
])
def test_the_request_line_and_host_are_the_ones_httpx_makes(base):
    expected = open_client(base, connect_timeout=1).build_request("POST", CHAT_PATH, content=b"{}")
    chat = OllamaChat(base, connect_timeout=1)
    headers = dict(chat._headers)
    assert chat.target.decode() == expected.url.raw_path.decode()
    assert headers[b"host"].decode() == expected.headers["host"]
    if "@" in base:
        assert headers[b"authorization"].decode() == httpx.BasicAuth("user", "p@ss")._auth_header
