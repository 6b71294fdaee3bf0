"""A live ``learnloop serve`` for clients that speak HTTP from another process (the
TypeScript client, the TypeScript example): a real uvicorn server on a free port over this
module's database, with an installation key made by the CLI, as an operator would."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
TS_CLIENT = ROOT / "clients" / "typescript"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(env: dict[str, str], *args: str) -> str:
    p = subprocess.run([sys.executable, "-m", "learnloop.cli.main", *args], env=env, capture_output=True,
                       text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


@pytest.fixture(scope="module")
def live_server(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("serve")
    env = {**os.environ, "LEARNLOOP_DATABASE_URL": db_url, "LEARNLOOP_HOME": str(home),
           "LEARNLOOP_ARCHIVE_INTERVAL": "0"}
    installation_key = cli(env, "keys", "create", "--installation", "--name", "tests")
    port = _free_port()
    log = open(home / "server.log", "w")  # noqa: SIM115 - closed below, after the process
    proc = subprocess.Popen([sys.executable, "-m", "learnloop.cli.main", "serve", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=2) as r:  # noqa: S310 - our own server
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError("learnloop serve did not start:\n" + (home / "server.log").read_text()[-3000:])
            time.sleep(0.3)
        yield {"url": url, "installation_key": installation_key, "env": env, "log": home / "server.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def node_ready(folder: Path) -> None:
    """Skip (or, under CI, fail) when Node or the folder's npm packages are missing; then build."""
    why = None
    if shutil.which("node") is None or shutil.which("npm") is None:
        why = "Node.js 20 and npm are needed"
    elif not (folder / "node_modules").is_dir():
        why = f"run `npm ci` in {folder.relative_to(ROOT)} (make test does)"
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    p = subprocess.run(["npm", "run", "build", "--silent"], cwd=folder, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr


def run_node_tests(folder: Path, env: dict[str, str], *, at_least: int) -> str:
    """``node --test`` over the built tests; asserts none failed and ``at_least`` passed."""
    p = subprocess.run(["node", "--test", "--test-reporter=spec", "dist/test/"], cwd=folder, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-3000:]
    passed = re.search(r"^\S* ?pass (\d+)$", p.stdout, re.M)
    failed = re.search(r"^\S* ?fail (\d+)$", p.stdout, re.M)
    assert passed and failed, p.stdout[-2000:]
    assert int(failed.group(1)) == 0 and int(passed.group(1)) >= at_least, p.stdout[-2000:]
    return p.stdout
