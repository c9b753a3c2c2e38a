"""Codex CLI end to end: `codex exec` with a custom model provider whose
base URL is the gateway's `/v1` and `wire_api = "responses"`, answered by
an OpenAI-format account (the same wire format) and by an Anthropic account
(translated), both on the mock upstream. The agent must exit 0 with the
upstream's answer (the mock echoes the prompt), and the key's usage must be
recorded."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from agents import installed
from harness import Gateway, clean_env, wait_until

CODEX_VERSION = "0.169.0"
MODELS = {"openai_compatible": "codex-chat", "anthropic": "codex-claude"}
RUN_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def codex() -> Path:
    return installed("@openai/codex", CODEX_VERSION, "codex")


@pytest.fixture(scope="module")
def codex_accounts(gateway: Gateway) -> dict:
    return {
        provider: gateway.create_account(f"codex-{provider}", [model], provider=provider)
        for provider, model in MODELS.items()
    }


def codex_home(root: Path, gateway: Gateway) -> Path:
    home = root / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        "\n".join(
            [
                'model_provider = "tollgate"',
                "",
                "[model_providers.tollgate]",
                'name = "Tollgate"',
                f'base_url = "{gateway.api_url}"',
                'env_key = "TOLLGATE_API_KEY"',
                'wire_api = "responses"',
                "",
            ]
        )
    )
    return home


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_codex_exec_is_answered_through_the_gateway(
    codex: Path, gateway: Gateway, codex_accounts: dict, provider: str, tmp_path: Path
) -> None:
    key = gateway.create_key(f"codex-{provider}-{time.monotonic_ns()}")
    home = codex_home(tmp_path, gateway)
    work = tmp_path / "work"
    work.mkdir()
    env = clean_env(HOME=str(tmp_path), CODEX_HOME=str(home), TOLLGATE_API_KEY=key)
    prompt = f"Reply with the words: answered for {provider}"
    run = subprocess.run(
        [str(codex), "exec", "--skip-git-repo-check", "-m", MODELS[provider], prompt],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert run.returncode == 0, f"codex failed:\n{run.stdout}\n{run.stderr}"
    assert f"answered for {provider}" in run.stdout, run.stdout

    keys = gateway.admin.get("/admin/v1/keys").json()["data"]
    key_id = next(entry["id"] for entry in keys if entry["name"].startswith(f"codex-{provider}-"))

    def recorded() -> bool:
        rows = gateway.admin.get("/admin/v1/usage", params={"group_by": "key"}).json()["rows"]
        return any(row["group"] == key_id and row["requests"] >= 1 and row["prompt_tokens"] > 0 for row in rows)

    wait_until(recorded, "the key's usage", gateway.services)
