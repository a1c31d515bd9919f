"""Any JSON body: either a valid Ollama request or a clear 4xx, never another exception."""

from __future__ import annotations

import json

import httpx
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.conftest import SERVER_EXAMPLES, running_proxy
from proxy.errors import ProxyError
from proxy.protocol.translate import translate_request, validate_request

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.one_of(st.text(max_size=20), json_values)}),
    st.fixed_dictionaries({"type": st.just("image"), "source": st.one_of(
        st.fixed_dictionaries({"type": st.just("base64"), "media_type": st.just("image/png"), "data": st.text(max_size=8)}),
        st.fixed_dictionaries({"type": st.just("url"), "url": st.text(max_size=8)}), json_values)}),
    st.fixed_dictionaries({"type": st.just("tool_use"), "id": st.one_of(st.sampled_from(["toolu_1", "toolu_2"]), json_values),
                           "name": st.one_of(st.sampled_from(["Bash", "Write"]), json_values),
                           "input": st.one_of(st.dictionaries(st.text(max_size=5), json_values, max_size=3), json_values)}),
    st.fixed_dictionaries({"type": st.just("tool_result"), "tool_use_id": st.one_of(st.sampled_from(["toolu_1", "toolu_2"]), json_values),
                           "content": st.one_of(st.text(max_size=10), st.lists(json_values, max_size=2), json_values)},
                          optional={"is_error": json_values}),
    st.fixed_dictionaries({"type": st.sampled_from(["thinking", "redacted_thinking", "document", "server_tool_use", "x"])},
                          optional={"thinking": json_values, "source": json_values, "data": json_values}),
    json_values,
)
message = st.fixed_dictionaries({
    "role": st.one_of(st.sampled_from(["user", "assistant", "system"]), json_values),
    "content": st.one_of(st.text(max_size=20), st.lists(block, max_size=4), json_values),
})
bodies = st.one_of(
    st.fixed_dictionaries(
        {"model": st.one_of(st.sampled_from(["claude-opus-5-5", "qwen3:8b"]), json_values),
         "max_tokens": st.one_of(st.integers(-5, 200000), json_values),
         "messages": st.one_of(st.lists(message, max_size=6), json_values)},
        optional={
            "system": st.one_of(st.text(max_size=20), st.lists(st.one_of(
                st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=20)}), json_values), max_size=3), json_values),
            "tools": st.one_of(st.lists(st.one_of(st.fixed_dictionaries(
                {"name": st.sampled_from(["Bash", "Write"]), "input_schema": st.one_of(
                    st.just({"type": "object", "properties": {"command": {"type": "string"}}}), json_values)},
                optional={"type": st.sampled_from(["custom", "web_search_20250305"]), "description": json_values}),
                json_values), max_size=3), json_values),
            "tool_choice": st.one_of(st.fixed_dictionaries({"type": st.sampled_from(["auto", "any", "none", "tool"])},
                                                           optional={"name": json_values}), json_values),
            "thinking": st.one_of(st.fixed_dictionaries({"type": st.sampled_from(["enabled", "adaptive", "disabled"])},
                                                        optional={"budget_tokens": json_values}), json_values),
            "stream": json_values, "temperature": json_values, "top_p": json_values, "top_k": json_values,
            "stop_sequences": json_values, "output_config": json_values, "metadata": json_values,
        },
    ),
    json_values,
)


def assert_valid_ollama(ollama: dict) -> None:
    json.dumps(ollama)  # serializable
    assert isinstance(ollama["model"], str) and ollama["stream"] is True
    for m in ollama["messages"]:
        assert m["role"] in ("system", "user", "assistant", "tool")
        assert isinstance(m["content"], str)
        for call in m.get("tool_calls", []):
            assert isinstance(call["function"]["name"], str)
            assert isinstance(call["function"]["arguments"], dict)
        assert all(isinstance(i, str) for i in m.get("images", []))
    assert isinstance(ollama["options"]["num_predict"], int) and ollama["options"]["num_predict"] >= 1


@given(bodies, st.booleans(), st.booleans(), st.booleans())
def test_any_body_translates_or_is_a_4xx(body, can_think, sequential, native_tools):
    try:
        validated = validate_request(body)
        request = translate_request(validated, ollama_model="qwen3:8b", can_think=can_think,
                                    sequential_tools=sequential, native_tools=native_tools)
    except ProxyError as exc:
        assert 400 <= exc.status < 500, exc
        assert exc.message
        return
    assert_valid_ollama(request.ollama)


@settings(max_examples=SERVER_EXAMPLES)
@given(body=bodies)
def test_through_the_server_never_a_500(body):
    async def scenario() -> httpx.Response:
        async with running_proxy() as (fake, url):
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                return await client.post("/v1/messages", json={**body, "stream": False} if isinstance(body, dict) else body)

    response = trio.run(scenario)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["type"] == "error"
