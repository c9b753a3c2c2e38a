"""Anthropic's Messages API at the gateway (`POST /v1/messages`), through
the official `anthropic` SDK, answered by an Anthropic account and by an
OpenAI-format account (the request translated to Chat and the answer
back)."""

from __future__ import annotations

import time

import anthropic
import httpx
import pytest

from harness import Gateway, estimated_prompt_tokens

MODELS = {"anthropic": "claude-ingress", "openai_compatible": "chat-ingress"}


@pytest.fixture(scope="module")
def ingress_accounts(gateway: Gateway) -> dict:
    return {
        provider: gateway.create_account(f"ingress-{provider}", [model], provider=provider)
        for provider, model in MODELS.items()
    }


@pytest.fixture(params=sorted(MODELS))
def model(request: pytest.FixtureRequest, ingress_accounts: dict) -> str:
    return MODELS[request.param]


@pytest.fixture
def client(gateway: Gateway) -> anthropic.Anthropic:
    key = gateway.create_key(f"messages-{time.monotonic_ns()}")
    sdk = anthropic.Anthropic(base_url=gateway.root_url, api_key=key, max_retries=0, timeout=20.0)
    yield sdk
    sdk.close()


WEATHER = {
    "name": "weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def test_messages_create_answers_in_anthropic_shape(client: anthropic.Anthropic, model: str) -> None:
    message = client.messages.create(
        model=model,
        max_tokens=100,
        system="answer briefly",
        messages=[{"role": "user", "content": "hello through the messages api"}],
    )
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == model
    assert message.id.startswith("msg_")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "hello through the messages api"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_messages_stream_yields_text_and_a_final_message(client: anthropic.Anthropic, model: str) -> None:
    with client.messages.stream(
        model=model,
        max_tokens=100,
        messages=[{"role": "user", "content": "stream me in pieces [[mock:chunks=4]]"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "stream me in pieces"
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_tool_use_goes_round_two_turns(client: anthropic.Anthropic, model: str) -> None:
    history = [{"role": "user", "content": '{"city": "Oslo"} [[mock:tool_call=true]]'}]
    first = client.messages.create(model=model, max_tokens=200, tools=[WEATHER], messages=history)
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "weather"
    assert call.input == {"city": "Oslo"}

    history.append({"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]})
    history.append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "rain and 4 degrees"}]}
    )
    second = client.messages.create(model=model, max_tokens=200, tools=[WEATHER], messages=history)
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "rain and 4 degrees"


def test_streamed_tool_use_reassembles(client: anthropic.Anthropic, model: str) -> None:
    with client.messages.stream(
        model=model,
        max_tokens=200,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "weather"},
        messages=[{"role": "user", "content": '{"city": "Bergen"} [[mock:chunks=3]]'}],
    ) as stream:
        final = stream.get_final_message()
    call = next(block for block in final.content if block.type == "tool_use")
    assert call.input == {"city": "Bergen"}
    assert final.stop_reason == "tool_use"


def test_errors_raise_the_sdks_own_classes(client: anthropic.Anthropic, gateway: Gateway) -> None:
    bad_key = anthropic.Anthropic(base_url=gateway.root_url, api_key="tg-not-a-real-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as refused:
        bad_key.messages.create(model=MODELS["anthropic"], max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert refused.value.body["type"] == "error"
    assert refused.value.body["error"]["type"] == "authentication_error"
    bad_key.close()

    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.BadRequestError) as invalid:
        client.messages.create(
            model=MODELS["openai_compatible"],
            max_tokens=5,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"top_k": 3},
        )
    assert invalid.value.body["error"]["type"] == "invalid_request_error"


def test_raw_stream_is_anthropics_event_sequence(gateway: Gateway) -> None:
    key = gateway.create_key(f"raw-{time.monotonic_ns()}")
    body = {"model": MODELS["openai_compatible"], "max_tokens": 50, "stream": True,
            "messages": [{"role": "user", "content": "abc [[mock:chunks=2]]"}]}
    with httpx.stream(
        "POST", f"{gateway.root_url}/v1/messages?beta=true", json=body,
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"}, timeout=20.0,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        names = [line.removeprefix("event: ") for line in response.iter_lines() if line.startswith("event: ")]
    assert names[0] == "message_start"
    assert names[1] == "content_block_start"
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[2:-3]) == {"content_block_delta"}


def test_count_tokens_is_the_gateways_marked_estimate(client: anthropic.Anthropic, model: str) -> None:
    count = client.messages.count_tokens(
        model=model,
        system="answer briefly",
        messages=[{"role": "user", "content": "how many tokens is this"}],
    )
    # The gateway's documented estimate of the request as Chat (harness).
    assert count.input_tokens == estimated_prompt_tokens(
        [{"role": "system", "content": "answer briefly"}, {"role": "user", "content": "how many tokens is this"}]
    )
    raw = client.messages.with_raw_response.count_tokens(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-tollgate-token-count"] == "estimate"

    with pytest.raises(anthropic.NotFoundError) as unknown:
        client.messages.count_tokens(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError):
        client.messages.count_tokens(model=model, messages=[{"role": "user", "content": "hi"}], extra_body={"top_k": 3})
