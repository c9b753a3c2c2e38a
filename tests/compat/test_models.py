"""`GET /v1/models` through the SDK."""

from __future__ import annotations

import openai

from harness import COMPAT_MODEL


def test_models_list_has_the_builtin_and_the_account_models(client: openai.OpenAI) -> None:
    models = list(client.models.list())
    ids = {model.id for model in models}
    assert "mock-echo" in ids
    assert COMPAT_MODEL in ids
    assert all(model.object == "model" for model in models)
    assert len(ids) == len(models), "each model is listed once"
