"""Real coding agents for the end-to-end tests: each installed from the npm
registry, pinned, into the repository's `.cache/agents/<package>@<version>`
on first use (later runs reuse it). A machine without `npm` skips these
tests, saying why; any other failure to install is an error."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness import REPO

CACHE = REPO / ".cache" / "agents"
INSTALL_TIMEOUT_S = 600


def installed(package: str, version: str, binary: str) -> Path:
    """The path of `binary` from `package@version`, installing it if needed."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(f"npm is not installed, so {package} cannot be installed for this test")
    prefix = CACHE / f"{package.replace('/', '+')}@{version}"
    path = prefix / "node_modules" / ".bin" / binary
    if not path.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), f"{package}@{version}"],
            check=True,
            capture_output=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    return path
