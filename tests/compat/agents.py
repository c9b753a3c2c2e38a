"""Real coding agents for the end-to-end tests: each installed from the npm
registry, pinned, into the repository's `.cache/agents/<package>@<version>`
on first use (later runs reuse it once it reports its version). A machine
without `npm` skips these tests, saying why; any other failure to install
is an error."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness import REPO

CACHE = REPO / ".cache" / "agents"
INSTALL_TIMEOUT_S = 600


def reports_version(binary: Path, version: str) -> bool:
    """Whether `binary` runs and its `--version` names `version`."""
    if not binary.exists():
        return False
    try:
        run = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except OSError:
        return False
    return run.returncode == 0 and version in run.stdout


def installed(package: str, version: str, binary: str) -> Path:
    """The path of `binary` from `package@version`, installing it if needed."""
    prefix = CACHE / f"{package.replace('/', '+')}@{version}"
    path = prefix / "node_modules" / ".bin" / binary
    if not reports_version(path, version):
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip(f"npm is not installed, so {package} cannot be installed for this test")
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), f"{package}@{version}"],
            check=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    assert reports_version(path, version), f"{package}@{version} installed into {prefix} but does not report it"
    return path
