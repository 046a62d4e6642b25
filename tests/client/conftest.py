"""A real lutnas server on loopback for the SDK and CLI tests.

The server runs in a subprocess (uvicorn via ``lutnas serve``, no embedded worker) with an admin
token so the tests can create teams through the REST API. Its database is a throwaway PostgreSQL
database when a server answers at ``LUTNAS_TEST_PG`` (CI: always), else a temporary SQLite file
(the service tests in tests/server cover both either way).
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from client import Client

ADMIN_TOKEN = "test-admin-token"  # only this test server's; never a real secret
PG_ADMIN_URL = os.environ.get("LUTNAS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
_names = itertools.count(1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lutnas_bin() -> str:
    return str(Path(sys.executable).parent / "lutnas")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for subprocesses: no ambient LUTNAS_* settings leak into a test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUTNAS_")}
    env.update(extra)
    return env


@dataclass
class LiveServer:
    url: str
    admin_token: str
    log: Path
    env: dict[str, str]  # the server's environment (database, data dir): a worker shares it

    def admin(self) -> Client:
        return Client(self.url, self.admin_token, retries=0)

    def new_team(self, prefix: str = "team") -> Client:
        """A fresh team and a client holding its key."""
        with self.admin() as admin:
            team = admin.teams.create(f"{prefix}-{next(_names)}")
        assert team.api_key and team.api_key.startswith("lnt_")
        paths = [str(Path(p).resolve()) for p in (self.env["LUTNAS_DATA_DIR"], self.env["LUTNAS_DATA_ROOTS"],
                                                  Path.home(), sys.prefix, Path(__file__).parents[2])]

        def no_server_path(resp: httpx.Response) -> None:
            # every error body a team receives in the client suite: no server folder named in it
            if resp.status_code >= 400:
                body = resp.read().decode("utf-8", "replace")
                leaked = [p for p in paths if p in body]
                assert not leaked, f"{resp.request.method} {resp.request.url.path} -> {resp.status_code} names {leaked}"

        http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(30.0, connect=10.0),
                            headers={"User-Agent": "lutnas-client", "Accept": "application/json"},
                            event_hooks={"response": [no_server_path]})
        return Client(self.url, team.api_key, retries=0, http=http)


@pytest.fixture(scope="session")
def client_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway PostgreSQL database when one is reachable, else a SQLite file."""
    try:
        import psycopg

        dsn = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
            name = f"lutnas_client_{secrets.token_hex(4)}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as e:  # noqa: BLE001 - unreachable: the embedded default, said out loud
        why = f"PostgreSQL at {PG_ADMIN_URL.rsplit('@', 1)[-1]} is not reachable ({type(e).__name__})"
        if os.environ.get("CI", "").lower() == "true":  # .ci/run starts PostgreSQL: no quiet fallback there
            pytest.fail(f"{why}; CI=true needs it for the client suite", pytrace=False)
        warnings.warn(f"{why}: the client suite falls back to SQLite", stacklevel=1)
        print(f"\nnote: {why}: the client suite falls back to SQLite", file=sys.stderr)
        yield f"sqlite:///{tmp_path_factory.mktemp('client-db') / 'lutnas.db'}"
        return
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, client_database: str) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("lutnas-server")
    port = free_port()
    log = root / "server.log"
    env = clean_env(
        LUTNAS_DATABASE_URL=client_database,
        LUTNAS_ADMIN_TOKEN=ADMIN_TOKEN,
        LUTNAS_DATA_DIR=str(root / "data"),
        # the suite's supernet files live in other folders of the same base
        LUTNAS_DATA_ROOTS=str(tmp_path_factory.getbasetemp()),
        # One request thread: a request that blocked it (e.g. an ONNX export) would show.
        LUTNAS_API_THREADS="1",
    )
    cmd = [lutnas_bin(), "serve", "--host", "127.0.0.1", "--port", str(port), "--no-worker"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not answer /healthz within 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield LiveServer(url=url, admin_token=ADMIN_TOKEN, log=log, env=env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def supernet_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An (untrained, seeded) paper-space supernet checkpoint and a tiny synthetic validation set."""
    import torch

    from tracking.checkpoint import save_checkpoint
    from tracking.data.synth import generate_synthetic
    from tracking.space import SearchSpace
    from tracking.supernet import Supernet

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("supernet")
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "supernet.pt", Supernet(SearchSpace.paper()), {"epoch": 0})
    data = generate_synthetic(root / "val", sequences=1, frames=3, seed=0, progress=False)
    return ckpt, data


@pytest.fixture()
def dead_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture()
def team(live_server: LiveServer) -> Iterator[Client]:
    with live_server.new_team() as c:
        yield c


def run_lutnas(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [lutnas_bin(), *args], env=env if env is not None else clean_env(), capture_output=True, text=True,
        timeout=timeout,
    )


@pytest.fixture()
def lutnas():
    """Run the installed ``lutnas`` command: ``lutnas("hardware", "list", env=...)``."""
    return run_lutnas
