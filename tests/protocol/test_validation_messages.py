"""The exact 400 messages a client gets for a bad ``model`` or a bad count_tokens body.

Claude Code shows an invalid_request_error's message as it is, so its words are behaviour: the
same field gets the same message on /v1/messages and /v1/messages/count_tokens.
"""

from __future__ import annotations

import pytest

from proxy.errors import RequestError
from proxy.protocol.translate import MODEL_NAME_LIMIT, validate_count_request, validate_request

MESSAGES = [{"role": "user", "content": "hi"}]


def messages_body(model: object) -> dict[str, object]:
    return {"model": model, "max_tokens": 16, "messages": MESSAGES}


def count_body(model: object) -> dict[str, object]:
    return {"model": model, "messages": MESSAGES}


@pytest.mark.parametrize(("validate", "body"), [(validate_request, messages_body), (validate_count_request, count_body)],
                         ids=["messages", "count_tokens"])
@pytest.mark.parametrize(("model", "message"), [
    ("", "model: must be a non-empty string"),
    ("   ", "model: must be a non-empty string"),
    (7, "model: must be a non-empty string"),
    (None, "model: must be a non-empty string"),
    ("m" * (MODEL_NAME_LIMIT + 1), f"model: must be at most {MODEL_NAME_LIMIT} characters (got {MODEL_NAME_LIMIT + 1})"),
    ("é" * (MODEL_NAME_LIMIT + 5), f"model: must be at most {MODEL_NAME_LIMIT} characters (got {MODEL_NAME_LIMIT + 5})"),
    ("qwen\ud800", "model: must be valid Unicode text (it contains a lone surrogate, e.g. \\ud800)"),
    ("é\udfff", "model: must be valid Unicode text (it contains a lone surrogate, e.g. \\ud800)"),
])
def test_a_bad_model_gets_the_same_exact_message_on_both_routes(validate, body, model, message):
    with pytest.raises(RequestError) as caught:
        validate(body(model))
    assert caught.value.message == message
    assert caught.value.status == 400


@pytest.mark.parametrize("model", ["m" * MODEL_NAME_LIMIT, "qwen3:8b", "é" * MODEL_NAME_LIMIT, "hf.co/x/y:Q4_K_M", "模型"])
def test_a_good_model_passes_on_both_routes(model):
    assert validate_request(messages_body(model))["model"] == model
    assert validate_count_request(count_body(model))["model"] == model


@pytest.mark.parametrize(("body", "message"), [
    ([], "request body must be a JSON object"),
    ("text", "request body must be a JSON object"),
    ({"model": "m"}, "messages: field required"),
    ({"model": "m", "messages": {"role": "user"}}, "messages: must be an array"),
    ({"model": "m", "messages": "hi"}, "messages: must be an array"),
])
def test_a_bad_count_tokens_body_gets_its_exact_message(body, message):
    with pytest.raises(RequestError) as caught:
        validate_count_request(body)
    assert caught.value.message == message


def test_count_tokens_needs_no_model_but_checks_one_given():
    assert validate_count_request({"messages": MESSAGES}) == {"messages": MESSAGES}
    body = {"model": "m", "messages": []}
    assert validate_count_request(body) is body
