"""Streamed chat completions (SSE) through the SDK and raw."""

from __future__ import annotations

import httpx
import openai

from harness import COMPAT_MODEL, Gateway

# Five content chunks, so reassembly is really tested.
PROMPT = "stream this sentence back in pieces [[mock:chunks=5]]"
REPLY = "stream this sentence back in pieces"


def messages() -> list[dict]:
    return [{"role": "user", "content": PROMPT}]


def test_stream_reassembles_to_the_whole_answer_without_usage(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model=COMPAT_MODEL, messages=messages())
    assert whole.choices[0].message.content == REPLY

    chunks = list(client.chat.completions.create(model=COMPAT_MODEL, messages=messages(), stream=True))

    assert chunks, "the stream carried no chunk"
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1, "one id for the whole stream"
    assert all(chunk.usage is None for chunk in chunks), "usage sent without include_usage"
    pieces = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]
    assert len(pieces) >= 2, pieces
    assert "".join(pieces) == whole.choices[0].message.content
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert finishes == ["stop"]


def test_include_usage_adds_a_final_usage_chunk(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model=COMPAT_MODEL, messages=messages())

    chunks = list(
        client.chat.completions.create(
            model=COMPAT_MODEL,
            messages=messages(),
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    final = chunks[-1]
    assert final.choices == []
    assert final.usage is not None
    assert final.usage.prompt_tokens == whole.usage.prompt_tokens
    assert final.usage.completion_tokens == whole.usage.completion_tokens
    assert final.usage.total_tokens == final.usage.prompt_tokens + final.usage.completion_tokens
    assert all(chunk.usage is None for chunk in chunks[:-1])
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == REPLY


def test_raw_stream_is_sse_ending_in_done(gateway: Gateway, api_key: str) -> None:
    with httpx.stream(
        "POST",
        f"{gateway.api_url}/chat/completions",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": COMPAT_MODEL, "messages": messages(), "stream": True},
        timeout=20.0,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers.get("x-request-id")
        data = [line.removeprefix("data:").strip() for line in response.iter_lines() if line.startswith("data:")]
    assert data[-1] == "[DONE]"
    assert data.count("[DONE]") == 1


def test_upstream_is_always_asked_for_usage(client: openai.OpenAI, gateway: Gateway) -> None:
    # The gateway needs the real usage to settle quota even when the client
    # did not ask for it; the client still gets no usage chunk.
    chunks = list(client.chat.completions.create(model=COMPAT_MODEL, messages=messages(), stream=True))
    assert all(chunk.usage is None for chunk in chunks)
    body = gateway.upstream_stats()["last_body"]
    assert body["stream"] is True
    assert body["stream_options"]["include_usage"] is True
