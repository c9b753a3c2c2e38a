"""Chat completions answered by each provider in turn: an OpenAI-format
account (passed through), an Anthropic, a Gemini and an Ollama account
(translated).
The gateway speaks each provider's own API to the mock upstream's fake of
it, and the SDK sees OpenAI's format throughout."""

from __future__ import annotations

import json
import time

import openai
import pytest

from harness import Gateway

# Each provider's account serves its own model on the mock upstream.
MODELS = {
    "openai_compatible": "passthrough-compat",
    "anthropic": "claude-compat",
    "gemini": "gemini-compat",
    "ollama": "ollama-compat",
}


@pytest.fixture(scope="module")
def native_accounts(gateway: Gateway) -> dict:
    # Ollama's native API lives at the server's root (a `/v1` base URL
    # would select its OpenAI-compatible endpoint).
    base_urls = {"ollama": f"http://127.0.0.1:{gateway.upstream_port}"}
    return {
        provider: gateway.create_account(
            f"compat-{provider}", [model], provider=provider, base_url=base_urls.get(provider, gateway.upstream_url)
        )
        for provider, model in MODELS.items()
    }


@pytest.fixture(params=sorted(MODELS))
def provider(request: pytest.FixtureRequest, native_accounts: dict) -> str:
    return request.param


@pytest.fixture
def model(provider: str) -> str:
    return MODELS[provider]


@pytest.fixture
def sdk(make_client, gateway: Gateway, provider: str) -> openai.OpenAI:
    return make_client(gateway.create_key(f"{provider}-{time.monotonic_ns()}"))


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_a_plain_completion_comes_back_in_openai_shape(sdk: openai.OpenAI, model: str, provider: str, gateway: Gateway) -> None:
    completion = sdk.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "answer briefly"},
            {"role": "user", "content": "hello from a native account"},
        ],
        max_tokens=100,
    )
    assert completion.object == "chat.completion"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "hello from a native account"
    assert choice.finish_reason == "stop"
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens

    sent = gateway.upstream_stats()["last_body"]
    if provider == "openai_compatible":
        assert sent["messages"][1] == {"role": "user", "content": "hello from a native account"}
        assert sent["max_tokens"] == 100
    elif provider == "anthropic":
        assert sent["system"] == [{"type": "text", "text": "answer briefly"}]
        assert sent["max_tokens"] == 100
        assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello from a native account"}]}]
    elif provider == "ollama":
        assert sent["messages"][1] == {"role": "user", "content": "hello from a native account"}
        assert sent["options"]["num_predict"] == 100
        assert sent["stream"] is False
    else:
        assert sent["systemInstruction"] == {"parts": [{"text": "answer briefly"}]}
        assert sent["generationConfig"]["maxOutputTokens"] == 100
        assert sent["contents"] == [{"role": "user", "parts": [{"text": "hello from a native account"}]}]


def test_a_stream_reassembles_and_reports_usage_last(sdk: openai.OpenAI, model: str) -> None:
    prompt = "stream me back in pieces [[mock:chunks=4]]"
    chunks = list(
        sdk.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "stream me back in pieces"
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_tool_calls_go_round_two_turns(sdk: openai.OpenAI, model: str) -> None:
    history = [{"role": "user", "content": '{"city": "Oslo"} [[mock:tool_call=true]]'}]
    first = sdk.chat.completions.create(model=model, messages=history, tools=[WEATHER_TOOL])
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}

    history.append(first.choices[0].message.model_dump(exclude_none=True))
    history.append({"role": "tool", "tool_call_id": call.id, "content": "rain and 4 degrees"})
    second = sdk.chat.completions.create(model=model, messages=history, tools=[WEATHER_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "rain and 4 degrees"


def test_streamed_tool_call_arguments_reassemble(sdk: openai.OpenAI, model: str) -> None:
    stream = sdk.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": '{"city": "Bergen"} [[mock:chunks=3,tool_call=true]]'}],
        tools=[WEATHER_TOOL],
        tool_choice="auto",
        stream=True,
    )
    calls = [call for chunk in stream if chunk.choices for call in chunk.choices[0].delta.tool_calls or []]
    assert calls[0].id and calls[0].function.name == "weather"
    assert json.loads("".join(call.function.arguments or "" for call in calls)) == {"city": "Bergen"}


def test_a_json_schema_answer_is_the_message_content(sdk: openai.OpenAI, model: str) -> None:
    completion = sdk.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": '{"answer": 42}'}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {"answer": {"type": "integer"}}}},
        },
    )
    assert json.loads(completion.choices[0].message.content) == {"answer": 42}


def test_a_field_the_provider_cannot_carry_is_refused_by_name(
    sdk: openai.OpenAI, model: str, provider: str, gateway: Gateway
) -> None:
    if provider == "openai_compatible":
        sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], logprobs=True)
        assert gateway.upstream_stats()["last_body"]["logprobs"] is True, "the same format passes fields through"
        return
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], logprobs=True)
    error = refused.value.body
    assert error["param"] == "logprobs"
    assert provider in error["message"]


def test_upstream_errors_reach_the_sdk_as_its_own_classes(sdk: openai.OpenAI, model: str, provider: str) -> None:
    if provider == "anthropic":
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], temperature=1.5)
        assert "temperature" in refused.value.body["message"]
    with pytest.raises(openai.BadRequestError) as too_long:
        sdk.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "[[mock:error=context_length_exceeded]]"}]
        )
    assert too_long.value.body["code"] == "context_length_exceeded"
