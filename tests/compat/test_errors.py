"""Failures as the SDK sees them: the right exception class, status, OpenAI
error body, and headers; never a secret."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable

import httpx
import openai
import pytest

from harness import COMPAT_MODEL, Gateway

MakeClient = Callable[[str], openai.OpenAI]

HELLO = [{"role": "user", "content": "hello"}]


def assert_openai_error_body(body: dict, code: str, error_type: str) -> dict:
    error = body["error"]
    assert set(error) >= {"message", "type", "param", "code"}, error
    assert error["type"] == error_type
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error


def seconds_to_utc_midnight() -> float:
    now = dt.datetime.now(dt.UTC)
    midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()


@pytest.mark.parametrize("bad_key", ["tg-" + secrets.token_urlsafe(32), "not-a-key"])
def test_wrong_key_is_an_authentication_error(make_client: MakeClient, bad_key: str) -> None:
    sdk = make_client(bad_key)
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk.chat.completions.create(model=COMPAT_MODEL, messages=HELLO)
    error = caught.value
    assert error.status_code == 401
    assert error.code == "invalid_api_key"
    assert error.type == "authentication_error"
    assert error.response.headers.get("x-request-id")
    assert bad_key not in error.response.text


def test_missing_key_is_401_with_the_openai_shape(gateway: Gateway) -> None:
    response = httpx.post(f"{gateway.api_url}/chat/completions", json={"model": COMPAT_MODEL, "messages": HELLO})
    assert response.status_code == 401
    assert_openai_error_body(response.json(), "invalid_api_key", "authentication_error")
    assert response.headers.get("x-request-id")


def test_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model-anywhere", messages=HELLO)
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"
    assert caught.value.response.headers.get("x-request-id")


def test_exhausted_daily_cap_is_a_rate_limit_error_with_retry_after(gateway: Gateway, client: openai.OpenAI) -> None:
    # An account of its own with a tiny daily cap: the first request fits
    # its reservation and spends it (the mock would write 500 tokens, the
    # client's cap stops it at 60), so the next one finds no room.
    gateway.create_account("tiny-cap", ["tiny-model"], daily_token_limit=100)
    sdk = client
    spend = [{"role": "user", "content": "spend it all [[mock:completion_tokens=500]]"}]

    first = sdk.chat.completions.create(model="tiny-model", messages=spend, max_tokens=60)
    assert first.usage is not None and first.usage.completion_tokens == 60
    assert first.choices[0].finish_reason == "length"

    # Settling the first request's usage happens just after its answer; a
    # request racing it may still fit, and then spends more.
    refused = None
    for _ in range(20):
        try:
            sdk.chat.completions.with_raw_response.create(model="tiny-model", messages=spend, max_tokens=60)
        except openai.RateLimitError as error:
            refused = error
            break
        time.sleep(0.05)
    assert refused is not None, "the exhausted account kept serving"

    assert refused.status_code == 429
    assert refused.code == "quota_exhausted"
    assert refused.type == "rate_limit_error"
    retry_after = int(refused.response.headers["retry-after"])
    # The cap resets at the next 00:00 UTC.
    assert abs(retry_after - seconds_to_utc_midnight()) <= 5, retry_after
    assert refused.response.headers.get("x-request-id")


def test_upstream_5xx_is_an_internal_server_error_without_secrets(gateway: Gateway, client: openai.OpenAI) -> None:
    # Its own account: failures cool an account down.
    account = gateway.create_account("failing", ["failing-model"])
    sdk = client
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(
            model="failing-model",
            messages=[{"role": "user", "content": "break [[mock:status=503]]"}],
        )
    error = caught.value
    # The gateway answers 502 upstream_error for an upstream 5xx.
    assert error.status_code == 502
    assert error.code == "upstream_error"
    assert error.type == "api_error"
    assert account["secret"] not in error.response.text
    assert error.response.headers.get("x-request-id")


def test_upstream_refusing_the_credential_is_a_502_without_secrets(gateway: Gateway, client: openai.OpenAI) -> None:
    wrong = f"sk-wrong-{secrets.token_hex(16)}"
    gateway.create_account("wrong-secret", ["wrong-secret-model"], secret=wrong)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="wrong-secret-model", messages=HELLO)
    error = caught.value
    assert error.status_code == 502
    assert error.code == "upstream_auth_failed"
    # The upstream's 401 echoes part of the key; none of it may reach the client.
    for secret in (wrong, gateway.upstream_secret):
        assert secret not in error.response.text
        assert secret[-8:] not in error.response.text


def test_upstream_429_is_a_rate_limit_error_carrying_its_retry_after(gateway: Gateway, client: openai.OpenAI) -> None:
    gateway.create_account("throttled", ["throttled-model"])
    sdk = client
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(
            model="throttled-model",
            messages=[{"role": "user", "content": "slow down [[mock:status=429,retry_after=7]]"}],
        )
    error = caught.value
    assert error.status_code == 429
    assert error.code == "upstream_rate_limited"
    assert 1 <= int(error.response.headers["retry-after"]) <= 7


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HELLO}, "model"),
        ({"model": COMPAT_MODEL}, "messages"),
        ({"model": COMPAT_MODEL, "messages": []}, "messages"),
        ({"model": COMPAT_MODEL, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": COMPAT_MODEL, "messages": HELLO, "stream": "yes"}, "stream"),
        ({"model": COMPAT_MODEL, "messages": HELLO, "max_tokens": 0}, "max_tokens"),
    ],
)
def test_invalid_fields_are_400_naming_the_param(gateway: Gateway, api_key: str, body: dict, param: str) -> None:
    response = httpx.post(
        f"{gateway.api_url}/chat/completions",
        headers={"Authorization": f"Bearer {api_key}"},
        json=body,
        timeout=20.0,
    )
    assert response.status_code == 400, response.text
    error = assert_openai_error_body(response.json(), "invalid_request", "invalid_request_error")
    assert error["param"] == param
    assert response.headers.get("x-request-id")


def test_malformed_json_is_400_with_the_openai_shape(gateway: Gateway, api_key: str) -> None:
    response = httpx.post(
        f"{gateway.api_url}/chat/completions",
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        content=b'{"model": "compat-model", "messages": [',
        timeout=20.0,
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert_openai_error_body(response.json(), "invalid_request", "invalid_request_error")
    assert response.headers.get("x-request-id")


def test_sdk_sees_bad_parameters_as_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=COMPAT_MODEL, messages=HELLO, temperature=5)
    assert caught.value.status_code == 400
    assert caught.value.param == "temperature"
