"""Claude Code, the real agent, end to end against the gateway: installed
pinned from the npm registry into `.cache/agents` (skipped only when npm
is missing), run in print mode (`claude -p`) with `ANTHROPIC_BASE_URL` at
the gateway and a Tollgate key as `ANTHROPIC_API_KEY`, answered by an
Anthropic account (the Messages fake) and by an OpenAI-format account
(Chat Completions, the request translated and the answer streamed back
as Messages events). The fakes echo the last user message, whose last
text block is the prompt, so the agent must print the prompt back (and,
asked for its Read tool, the file it read); the key's usage must then be
recorded."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from agents import installed
from harness import Gateway

CLAUDE_CODE_VERSION = "2.1.328"
RUN_TIMEOUT_S = 120
USAGE_TIMEOUT_S = 10.0

MODELS = {"anthropic": "claude-code-anthropic", "openai_compatible": "claude-code-chat"}


@pytest.fixture(scope="module")
def claude() -> Path:
    return installed("@anthropic-ai/claude-code", CLAUDE_CODE_VERSION, "claude")


@pytest.fixture(scope="module")
def agent_accounts(gateway: Gateway) -> dict[str, dict]:
    return {
        provider: gateway.create_account(f"claude-code-{provider}", [model], provider=provider)
        for provider, model in MODELS.items()
    }


def agent_env(gateway: Gateway, key: str, model: str, home: Path) -> dict[str, str]:
    """Claude Code pointed at the gateway, every model it may pick set to
    one the accounts serve, and its calls elsewhere (telemetry, error
    reports, updates) turned off: nothing here reaches the internet."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.root_url,
        "ANTHROPIC_API_KEY": key,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": model,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
    }


def create_key(gateway: Gateway, name: str) -> tuple[str, str]:
    """A fresh key: its id and plaintext."""
    response = gateway.admin.post("/admin/v1/keys", json={"name": name})
    assert response.status_code in (200, 201), response.text
    created = response.json()
    return created["id"], created["key"]


def usage_row(gateway: Gateway, path: str, group: str, requests: int) -> dict | None:
    """The usage report's row for `group`, once it counts `requests` (the
    usage events are written a moment after the answers)."""
    deadline = time.monotonic() + USAGE_TIMEOUT_S
    while True:
        response = gateway.admin.get(path)
        assert response.status_code == 200, response.text
        row = next((row for row in response.json()["rows"] if row["group"] == group), None)
        if (row and row["requests"] >= requests) or time.monotonic() > deadline:
            return row
        time.sleep(0.1)


def run_claude(
    claude: Path, gateway: Gateway, key: str, model: str, tmp_path: Path, prompt: str, *flags: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """`claude -p prompt flags…` in a fresh home and working folder."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    run = subprocess.run(
        [str(claude), "-p", prompt, *flags],
        cwd=work,
        env={**agent_env(gateway, key, model, home), **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert run.returncode == 0, f"claude exited {run.returncode}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    assert "[[mock:" not in run.stdout
    return run


def assert_usage_recorded(gateway: Gateway, key_id: str, model: str, account_id: str, requests: int) -> None:
    """The key's, the model's and the account's usage show the agent's
    requests, each a success with tokens both ways."""
    by_key = usage_row(gateway, "/admin/v1/usage?group_by=key", key_id, requests)
    assert by_key is not None, f"no usage recorded for the key {key_id}"
    assert by_key["requests"] == requests and by_key["errors"] == 0, by_key
    assert by_key["prompt_tokens"] > 0 and by_key["completion_tokens"] > 0, by_key
    by_model = usage_row(gateway, "/admin/v1/usage?group_by=model", model, requests)
    assert by_model is not None and by_model["requests"] >= requests, f"no usage recorded for {model}"
    served = gateway.admin.get(f"/admin/v1/accounts/{account_id}/usage")
    assert served.status_code == 200, served.text
    assert sum(row["requests"] for row in served.json()["rows"]) >= requests, served.text


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_claude_code_prints_the_upstreams_answer_and_its_usage_is_recorded(
    provider: str, claude: Path, gateway: Gateway, agent_accounts: dict, tmp_path: Path
) -> None:
    model = MODELS[provider]
    key_id, key = create_key(gateway, f"claude-code-{provider}")
    prompt = f"repeat after me: the toll for {provider} is paid"

    run = run_claude(claude, gateway, key, model, tmp_path, f"{prompt} [[mock:chunks=3]]")

    assert run.stdout.rstrip().endswith(prompt), run.stdout
    assert_usage_recorded(gateway, key_id, model, agent_accounts[provider]["id"], requests=1)


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_claude_code_uses_a_tool_over_two_turns(
    provider: str, claude: Path, gateway: Gateway, agent_accounts: dict, tmp_path: Path
) -> None:
    """The upstream asks for the agent's Read tool (the mock calls the
    request's first tool with the prompt's JSON as its input); Claude Code
    reads the file, sends the result back in a second request, and prints
    the upstream's answer to it (the mock echoes the tool result). Tool
    search is off so that Read is the only tool offered."""
    model = MODELS[provider]
    key_id, key = create_key(gateway, f"claude-code-tools-{provider}")
    note = tmp_path / "work" / "note.txt"
    note.parent.mkdir(parents=True)
    content = f"read through the gateway by {provider}"
    note.write_text(content + "\n")

    run = run_claude(
        claude,
        gateway,
        key,
        model,
        tmp_path,
        json.dumps({"file_path": str(note)}) + " [[mock:tool_call=true]]",
        "--tools=Read",
        "--allowedTools=Read",
        ENABLE_TOOL_SEARCH="false",
    )

    assert content in run.stdout, run.stdout
    assert_usage_recorded(gateway, key_id, model, agent_accounts[provider]["id"], requests=2)
