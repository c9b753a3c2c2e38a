"""Fixtures: one mock upstream and one `tollgate all` per test session,
with the accounts and key the tests use; their logs are printed when any
test fails."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from harness import COMPAT_MODEL, Gateway, start_gateway

LOG_TAILS = pytest.StashKey[list]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[LOG_TAILS] = []


@pytest.fixture(scope="session")
def gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    running = start_gateway(tmp_path_factory.mktemp("tollgate"))
    try:
        yield running
    finally:
        # Read the logs after the processes have flushed and exited.
        running.stop()
        request.config.stash[LOG_TAILS] = [service.log_tail() for service in running.services]


@pytest.fixture(scope="session")
def compat_account(gateway: Gateway) -> dict:
    return gateway.create_account("compat", [COMPAT_MODEL])


@pytest.fixture(scope="session")
def api_key(gateway: Gateway, compat_account: dict) -> str:
    return gateway.create_key("compat-suite")


@pytest.fixture
def make_client(gateway: Gateway) -> Iterator[Callable[[str], openai.OpenAI]]:
    """SDK clients for any key, closed after the test. No SDK retries:
    every test sees the gateway's first answer."""
    made: list[openai.OpenAI] = []

    def make(key: str) -> openai.OpenAI:
        sdk = openai.OpenAI(base_url=gateway.api_url, api_key=key, max_retries=0, timeout=20.0)
        made.append(sdk)
        return sdk

    yield make
    for sdk in made:
        sdk.close()


@pytest.fixture
def client(make_client: Callable[[str], openai.OpenAI], api_key: str) -> openai.OpenAI:
    return make_client(api_key)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if exitstatus == 0:
        return
    for tail in config.stash.get(LOG_TAILS, []):
        terminalreporter.write_sep("-", "service log")
        terminalreporter.write_line(tail)
