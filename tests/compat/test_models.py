"""`GET /v1/models` through the SDK."""

from __future__ import annotations

from collections.abc import Callable

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
