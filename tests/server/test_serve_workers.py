"""``lutnas serve --workers N``: several API processes over one database, one job worker beside
them, a clean stop on SIGTERM (real processes, SQLite and PostgreSQL)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx

from tests.server.conftest import ADMIN, BIN, free_port, service_env, wait_for


def test_serve_with_two_api_processes(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN / "lutnas"), "serve", "--workers", "2", "--no-access-log", "--port", str(port)],
                                env=service_env(database_url, tmp_path / "data"), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def up() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                return httpx.get(url + "/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 120, what="lutnas serve --workers 2")
        wait_for(lambda: log.read_text().count("Application startup complete") >= 2, 60,
                 what="both API processes")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30) as admin:
            r = admin.post("/v1/teams", json={"name": "workers-team"})
        assert r.status_code == 201, r.text
        key = r.json()["api_key"]
        # a key created through one process works on every process (no per-process state)
        for _ in range(3):
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
                assert c.get("/v1/me").json()["name"] == "workers-team"
                r = c.post("/v1/hardware", json={"name": "cpu-a", "kind": "cpu"})
                assert r.status_code in (201, 409), r.text
                assert [h["name"] for h in c.get("/v1/hardware").json()["items"]] == ["cpu-a"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert rc == 0, log.read_text()[-3000:]
