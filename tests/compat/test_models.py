"""`GET /v1/models` through the SDK."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import openai
import pytest

from harness import COMPAT_MODEL, Gateway

MakeClient = Callable[[str], openai.OpenAI]


def test_models_list_has_the_builtin_and_the_account_models(client: openai.OpenAI) -> None:
    models = list(client.models.list())
    ids = {model.id for model in models}
    assert "mock-echo" in ids
    assert COMPAT_MODEL in ids
    assert all(model.object == "model" for model in models)
    assert len(ids) == len(models), "each model is listed once"


def test_a_restricted_key_lists_and_uses_only_its_models(gateway: Gateway, make_client: MakeClient) -> None:
    restricted = make_client(gateway.create_key("compat-restricted", models=[COMPAT_MODEL]))

    ids = {model.id for model in restricted.models.list()}
    assert COMPAT_MODEL in ids
    # Provider-qualified names (`openai_compatible/compat-model`) may be
    # listed too, but nothing else.
    assert {model_id.rsplit("/", 1)[-1] for model_id in ids} == {COMPAT_MODEL}, ids

    with pytest.raises(openai.PermissionDeniedError) as caught:
        restricted.chat.completions.create(model="mock-echo", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 403
    assert caught.value.code == "permission_denied"


def test_models_carry_what_the_catalog_knows(client: openai.OpenAI) -> None:
    models = {model.id: model for model in client.models.list()}
    echo = models["mock-echo"]
    assert echo.owned_by == "mock"
    # Fields beyond OpenAI's reach the SDK as extras.
    extra = echo.model_extra or {}
    assert extra.get("context_length") == 128_000, extra
    assert extra.get("max_output_tokens") == 16_384, extra
    # A model the catalog does not know is listed without them.
    unknown = models[COMPAT_MODEL].model_extra or {}
    assert "context_length" not in unknown, unknown


def test_anthropic_clients_get_anthropics_shape_paged(gateway: Gateway, api_key: str) -> None:
    sdk = anthropic.Anthropic(base_url=gateway.root_url, api_key=api_key, max_retries=0, timeout=20.0)
    try:
        everything = [model.id for model in sdk.models.list(limit=1000)]
        assert everything == sorted(everything) and len(set(everything)) == len(everything)
        assert {"mock-echo", COMPAT_MODEL} <= set(everything)

        # Pages of one, followed by the SDK through `last_id` / `has_more`.
        assert [model.id for model in sdk.models.list(limit=1)] == everything

        echo = sdk.models.retrieve("mock-echo")
        assert (echo.type, echo.id, echo.display_name) == ("model", "mock-echo", "mock-echo")
        assert echo.created_at.year == 1970
        assert (echo.max_input_tokens, echo.max_tokens) == (128_000, 16_384)

        with pytest.raises(anthropic.NotFoundError) as missing:
            sdk.models.retrieve("no-such-model")
        assert missing.value.body["error"]["type"] == "not_found_error"
        with pytest.raises(anthropic.BadRequestError) as bad_page:
            sdk.models.list(limit=1, after_id="no-such-model")
        assert bad_page.value.body["type"] == "error"
    finally:
        sdk.close()


def test_openai_clients_retrieve_one_model(client: openai.OpenAI) -> None:
    echo = client.models.retrieve("mock-echo")
    assert (echo.id, echo.object, echo.owned_by) == ("mock-echo", "model", "mock")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
