"""GET /v1/models in Anthropic's shape, through the real server and the official SDK."""

from __future__ import annotations

import re

import httpx
import pytest
import trio

from proxy.ollama.admin import InstalledModel
from proxy.protocol.model_list import EPOCH, model_entries, paginate

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


async def get(proxy, path: str, **kwargs) -> httpx.Response:
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            return await client.get(path, **kwargs)


async def test_the_shape_claude_codes_gateway_discovery_reads(start_proxy):
    proxy = await start_proxy(model_map=["claude-qwen-coder=qwen3:8b", "sonnet=llama3.2:3b"])
    response = await get(proxy, "/v1/models?limit=1000")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "has_more", "first_id", "last_id"}
    assert body["has_more"] is False
    ids = [m["id"] for m in body["data"]]
    # the named map key first (a claude-* id the picker shows), then Ollama's models; no tier keys
    assert ids[0] == "claude-qwen-coder"
    assert sorted(ids[1:]) == ["gemma3:4b", "llama3.2:3b", "qwen3:8b"]
    assert "sonnet" not in ids
    assert (body["first_id"], body["last_id"]) == (ids[0], ids[-1])
    for model in body["data"]:
        assert set(model) == {"type", "id", "display_name", "created_at"}
        assert model["type"] == "model"
        assert RFC3339.match(model["created_at"]), model["created_at"]
    assert body["data"][0]["display_name"] == "claude-qwen-coder → qwen3:8b (Ollama)"
    by_id = {m["id"]: m for m in body["data"]}
    assert by_id["qwen3:8b"]["display_name"] == "qwen3:8b (Ollama, 8B, Q4_K_M)"


async def test_the_sdk_lists_and_pages(start_proxy):
    proxy = await start_proxy()
    with trio.fail_after(20):
        page = await trio.to_thread.run_sync(lambda: proxy.client().models.list(limit=2))
        assert [m.type for m in page.data] == ["model", "model"]
        assert page.has_more is True
        everything = await trio.to_thread.run_sync(lambda: [m.id for m in proxy.client().models.list(limit=2)])
    assert sorted(everything) == ["gemma3:4b", "llama3.2:3b", "qwen3:8b"]  # the SDK followed after_id
    assert page.data[0].created_at.tzinfo is not None


async def test_pagination_after_and_before(start_proxy):
    proxy = await start_proxy()
    ids = [m["id"] for m in (await get(proxy, "/v1/models")).json()["data"]]
    first = (await get(proxy, "/v1/models", params={"limit": 1})).json()
    assert [m["id"] for m in first["data"]] == ids[:1] and first["has_more"] is True
    after = (await get(proxy, "/v1/models", params={"after_id": ids[0]})).json()
    assert [m["id"] for m in after["data"]] == ids[1:] and after["has_more"] is False
    before = (await get(proxy, "/v1/models", params={"before_id": ids[-1], "limit": 1})).json()
    assert [m["id"] for m in before["data"]] == ids[-2:-1] and before["has_more"] is True


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=many", f"after_id=a&before_id=b"])
async def test_bad_queries_are_400(proxy, query):
    response = await get(proxy, f"/v1/models?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_the_api_key_guards_it(start_proxy):
    proxy = await start_proxy(api_key="k")
    assert (await get(proxy, "/v1/models")).status_code == 401
    assert (await get(proxy, "/v1/models", headers={"x-api-key": "k"})).status_code == 200
    assert (await get(proxy, "/v1/models", headers={"authorization": "Bearer k"})).status_code == 200


async def test_ollama_down_is_502(start_proxy):
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()
    proxy = await start_proxy(ollama_url=f"http://127.0.0.1:{port}")
    response = await get(proxy, "/v1/models")
    assert response.status_code == 502
    assert "Cannot reach Ollama" in response.json()["error"]["message"]


def test_entries_order_names_and_missing_targets():
    installed = [
        InstalledModel("old:1b", modified_at="2024-01-01T00:00:00Z"),
        InstalledModel("new:1b", modified_at="2025-01-01T00:00:00Z", parameter_size="1B"),
        InstalledModel("qwen3:latest", modified_at=None),
    ]
    entries = model_entries(installed, {"haiku": "new:1b", "claude-a": "qwen3", "claude-b": "gone:7b", "old:1b": "new:1b"})
    assert [e["id"] for e in entries] == ["claude-a", "claude-b", "new:1b", "old:1b", "qwen3:latest"]
    assert entries[0]["created_at"] == EPOCH  # its target has no date
    assert entries[1]["display_name"] == "claude-b → gone:7b (Ollama, not installed)"
    assert entries[2]["display_name"] == "new:1b (Ollama, 1B)"
    page = paginate(entries, limit=10)
    assert page == {"data": entries, "has_more": False, "first_id": "claude-a", "last_id": "qwen3:latest"}
    assert paginate([], limit=5) == {"data": [], "has_more": False, "first_id": None, "last_id": None}
