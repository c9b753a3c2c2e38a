"""Real processes for the SDK compatibility tests.

Starts the mock upstream (`tollgate mock-upstream`) and the whole gateway
(`tollgate all`) from the binary named by TOLLGATE_BIN (default
target/debug/tollgate), each on a free loopback port, with a clean
environment: no provider keys and no TOLLGATE_* settings from the caller,
so only what a test creates through the admin API can serve requests.
"""

from __future__ import annotations

import math
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]

# The model the suite's main account serves on the mock upstream.
COMPAT_MODEL = "compat-model"

# Variables a child may inherit; everything else (provider keys, TOLLGATE_*
# flags, proxies) is left out.
PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "RUST_BACKTRACE", "RUST_LOG")

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def tollgate_bin() -> Path:
    """The binary under test; a missing one is an error, never a skip."""
    configured = os.environ.get("TOLLGATE_BIN")
    path = Path(configured) if configured else REPO / "target" / "debug" / "tollgate"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise RuntimeError(f"tollgate binary not found at {path}: run `cargo build --bin tollgate` or set TOLLGATE_BIN")
    return path


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASSTHROUGH if name in os.environ}
    env.update(extra)
    return env


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Service:
    """One child process whose output goes to a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check_alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise RuntimeError(
                f"{self.name} exited with status {code}\ncommand: {' '.join(self.argv)}\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 200) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as error:
            return f"(no log: {error})"
        tail = text.splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        self._log.close()


def wait_until(
    ready: Callable[[], bool],
    what: str,
    services: Iterable[Service],
    timeout: float = STARTUP_TIMEOUT_S,
) -> None:
    """Polls `ready` until it holds; fails early when a service dies."""
    services = list(services)
    deadline = time.monotonic() + timeout
    while True:
        for service in services:
            service.check_alive()
        try:
            if ready():
                return
        except (httpx.HTTPError, OSError):
            pass
        if time.monotonic() > deadline:
            logs = "\n".join(service.log_tail(50) for service in services)
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s\n{logs}")
        time.sleep(0.05)


def healthy(url: str) -> bool:
    return httpx.get(url, timeout=1.0).status_code == 200


@dataclass
class Gateway:
    """A running mock upstream plus `tollgate all`, and an admin client."""

    api_port: int
    admin_port: int
    upstream_port: int
    admin_token: str
    # The key the mock upstream demands; accounts get it as their secret.
    upstream_secret: str
    services: list[Service]
    admin: httpx.Client = field(repr=False)

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def api_url(self) -> str:
        """The base URL an OpenAI SDK is given."""
        return f"{self.root_url}/v1"

    @property
    def upstream_url(self) -> str:
        return f"http://127.0.0.1:{self.upstream_port}/v1"

    def create_account(self, name: str, models: list[str], **fields: object) -> dict:
        """An `openai_compatible` account on the mock upstream, holding the
        upstream's key unless `secret` says otherwise."""
        body = {
            "provider": "openai_compatible",
            "name": name,
            "secret": self.upstream_secret,
            "base_url": self.upstream_url,
            "models": models,
            **fields,
        }
        response = self.admin.post("/admin/v1/accounts", json=body)
        assert response.status_code in (200, 201), response.text
        created = response.json()
        assert "secret" not in created, "account reads must not return the secret"
        return {**created, "secret": body["secret"]}

    def create_key(self, name: str, **fields: object) -> str:
        """A client key; returns its plaintext."""
        response = self.admin.post("/admin/v1/keys", json={"name": name, **fields})
        assert response.status_code in (200, 201), response.text
        key = response.json()["key"]
        assert isinstance(key, str) and key.startswith("tg-"), key
        return key

    def upstream_stats(self) -> dict:
        """The mock upstream's counters and its last chat request."""
        response = httpx.get(f"http://127.0.0.1:{self.upstream_port}/_mock/stats", timeout=5.0)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        self.admin.close()
        for service in reversed(self.services):
            service.stop()


def start_gateway(work_dir: Path) -> Gateway:
    """Starts the mock upstream and `tollgate all`; waits until both serve."""
    binary = str(tollgate_bin())
    log_dir = work_dir / "logs"
    data_dir = work_dir / "data"
    log_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    upstream_port, api_port, admin_port = free_port(), free_port(), free_port()
    while len({upstream_port, api_port, admin_port}) < 3:
        api_port, admin_port = free_port(), free_port()
    token = secrets.token_urlsafe(32)
    upstream_secret = f"sk-upstream-{secrets.token_hex(16)}"
    services: list[Service] = []
    try:
        upstream = Service(
            "mock-upstream",
            [binary, "mock-upstream", "--listen", f"127.0.0.1:{upstream_port}", "--api-key", upstream_secret],
            clean_env(),
            log_dir,
        )
        services.append(upstream)
        wait_until(lambda: port_accepts(upstream_port), "mock upstream", services)

        gateway = Service(
            "tollgate-all",
            [
                binary,
                "all",
                "--listen",
                f"127.0.0.1:{api_port}",
                "--admin-listen",
                f"127.0.0.1:{admin_port}",
                "--data-dir",
                str(data_dir),
            ],
            clean_env(TOLLGATE_ADMIN_TOKEN=token),
            log_dir,
        )
        services.append(gateway)
        wait_until(
            lambda: (
                healthy(f"http://127.0.0.1:{api_port}/healthz") and healthy(f"http://127.0.0.1:{admin_port}/healthz")
            ),
            "tollgate all",
            services,
        )
    except BaseException:
        for service in reversed(services):
            service.stop()
        raise
    admin = httpx.Client(
        base_url=f"http://127.0.0.1:{admin_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10.0,
    )
    return Gateway(api_port, admin_port, upstream_port, token, upstream_secret, services, admin)


def estimated_prompt_tokens(messages: list[dict]) -> int:
    """The mock's documented prompt count (the gateway's own estimate):
    3, plus for each message 4 + ceil(text bytes / 4)."""
    total = 3
    for message in messages:
        total += 4 + math.ceil(len(message["content"].encode()) / 4)
    return total


def completion_tokens(reply: str) -> int:
    """The mock's documented completion count: max(1, ceil(bytes / 4))."""
    return max(1, math.ceil(len(reply.encode()) / 4))
