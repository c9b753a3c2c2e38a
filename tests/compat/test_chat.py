"""Non-streamed chat completions through the official SDK."""

from __future__ import annotations

import httpx
import openai

from harness import COMPAT_MODEL, Gateway, completion_tokens, estimated_prompt_tokens


def test_completion_echoes_the_prompt_with_consistent_usage(client: openai.OpenAI) -> None:
    messages = [
        {"role": "system", "content": "answer briefly"},
        {"role": "user", "content": "hello from the compatibility suite"},
    ]
    completion = client.chat.completions.create(model=COMPAT_MODEL, messages=messages)

    assert completion.object == "chat.completion"
    assert completion.id
    assert completion.model == COMPAT_MODEL
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == "hello from the compatibility suite"
    assert choice.finish_reason == "stop"

    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == estimated_prompt_tokens(messages)
    assert usage.completion_tokens == completion_tokens("hello from the compatibility suite")
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_builtin_mock_echo_model_needs_no_account(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="mock-echo",
        messages=[{"role": "user", "content": "ping the built-in mock"}],
    )
    assert completion.choices[0].message.content == "ping the built-in mock"
    assert completion.usage is not None
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_content_parts_and_max_tokens_pass_through(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=COMPAT_MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "first part"},
                    {"type": "text", "text": "second part"},
                ],
            }
        ],
        max_tokens=64,
        temperature=0.2,
        user="compat-suite",
    )
    assert completion.choices[0].message.content == "first part\nsecond part"


def test_gateway_headers_name_the_route(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=COMPAT_MODEL,
        messages=[{"role": "user", "content": "which route?"}],
    )
    assert raw.status_code == 200
    assert raw.headers.get("x-request-id")
    assert raw.headers.get("x-tollgate-provider") == "openai_compatible"
    assert raw.headers.get("x-tollgate-model") == COMPAT_MODEL
    assert raw.headers.get("x-tollgate-attempts") == "1"
    assert raw.parse().choices[0].message.content == "which route?"

    again = client.chat.completions.with_raw_response.create(
        model=COMPAT_MODEL,
        messages=[{"role": "user", "content": "which route?"}],
    )
    assert again.headers.get("x-request-id") != raw.headers.get("x-request-id")


def test_x_api_key_header_authenticates_too(gateway: Gateway, api_key: str) -> None:
    response = httpx.post(
        f"{gateway.api_url}/chat/completions",
        headers={"x-api-key": api_key},
        json={"model": COMPAT_MODEL, "messages": [{"role": "user", "content": "via x-api-key"}]},
        timeout=20.0,
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "via x-api-key"


def test_health_endpoints(gateway: Gateway) -> None:
    for path in ("/healthz", "/readyz"):
        response = httpx.get(f"{gateway.root_url}{path}", timeout=5.0)
        assert response.status_code == 200, (path, response.text)


def test_upstream_receives_the_account_credential_and_the_request(client: openai.OpenAI, gateway: Gateway) -> None:
    messages = [{"role": "user", "content": "what reaches the upstream?"}]
    client.chat.completions.create(model=COMPAT_MODEL, messages=messages, seed=7)

    seen = gateway.upstream_stats()
    assert seen["last_authorization"] == f"Bearer {gateway.upstream_secret}"
    body = seen["last_body"]
    assert body["model"] == COMPAT_MODEL
    assert body["messages"] == messages
    assert body["seed"] == 7
