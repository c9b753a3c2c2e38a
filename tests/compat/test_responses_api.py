"""OpenAI's Responses API at the gateway (`POST /v1/responses`), through the
official `openai` SDK, answered by an OpenAI-format, an Anthropic and a
Gemini account (the request translated to Chat, then to each provider)."""

from __future__ import annotations

import json
import time

import openai
import pytest

from harness import Gateway

MODELS = {"openai_compatible": "responses-chat", "anthropic": "responses-claude", "gemini": "responses-gemini"}

WEATHER = {
    "type": "function",
    "name": "weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def responses_accounts(gateway: Gateway) -> dict:
    return {
        provider: gateway.create_account(f"responses-{provider}", [model], provider=provider)
        for provider, model in MODELS.items()
    }


@pytest.fixture(params=sorted(MODELS))
def model(request: pytest.FixtureRequest, responses_accounts: dict) -> str:
    return MODELS[request.param]


@pytest.fixture
def sdk(make_client, gateway: Gateway) -> openai.OpenAI:
    return make_client(gateway.create_key(f"responses-{time.monotonic_ns()}"))


def test_responses_create_returns_output_text(sdk: openai.OpenAI, model: str) -> None:
    response = sdk.responses.create(
        model=model, instructions="answer briefly", input="hello through the responses api", max_output_tokens=100
    )
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == "hello through the responses api"
    assert response.usage.input_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens


def test_responses_stream_ends_with_the_completed_response(sdk: openai.OpenAI, model: str) -> None:
    with sdk.responses.stream(model=model, input="stream me in pieces [[mock:chunks=4]]") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "stream me in pieces"
    assert final.output_text == "stream me in pieces"
    assert final.usage.output_tokens > 0


def test_function_tools_go_round_two_turns(sdk: openai.OpenAI, model: str) -> None:
    history: list = [{"role": "user", "content": '{"city": "Oslo"} [[mock:tool_call=true]]'}]
    first = sdk.responses.create(model=model, input=history, tools=[WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "weather"
    assert json.loads(call.arguments) == {"city": "Oslo"}

    history += [item.model_dump(exclude_none=True) for item in first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "rain and 4 degrees"})
    second = sdk.responses.create(model=model, input=history, tools=[WEATHER])
    assert second.output_text == "rain and 4 degrees"


def test_streamed_function_call_arguments(sdk: openai.OpenAI, model: str) -> None:
    with sdk.responses.stream(
        model=model,
        input='{"city": "Bergen"} [[mock:chunks=3,tool_call=true]]',
        tools=[WEATHER],
    ) as stream:
        final = stream.get_final_response()
    call = next(item for item in final.output if item.type == "function_call")
    assert json.loads(call.arguments) == {"city": "Bergen"}


def test_previous_response_id_is_refused_clearly(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(model=MODELS["openai_compatible"], input="hi", previous_response_id="resp_123")
    assert refused.value.body["param"] == "previous_response_id"
