"""Logs people can read (server/logs.py): polling stays out of the INFO access log, a waiting
search is logged when its wait changes rather than at every re-check, and LUTNAS_LOG_FORMAT=json
writes one JSON object per line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from server.db import create_engine_for, make_sessionmaker
from server.migrate import upgrade
from server.settings import Settings
from tests.server.conftest import BIN, Service

EMIT = """
import logging
from server.logs import configure
configure()
access = logging.getLogger("uvicorn.access")
for method, path, status in [("GET", "/v1/searches/3", 200), ("GET", "/healthz", 200),
                             ("POST", "/v1/agent/leases", 200), ("POST", "/v1/agent/heartbeat", 200),
                             ("POST", "/v1/searches", 202), ("GET", "/v1/searches/99", 404)]:
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", method, path, "1.1", status)
logging.getLogger("lutnas.worker").info("worker w took search %s", 3)
"""


def _emit(**env: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", EMIT], env={"PATH": "/usr/bin:/bin", **env},
                         capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    return out.stderr.strip().splitlines()


def test_polling_is_debug_and_json_lines() -> None:
    lines = [json.loads(line) for line in _emit(LUTNAS_LOG_FORMAT="json")]
    access = [(r["method"], r["path"], r["status"]) for r in lines if r["logger"] == "uvicorn.access"]
    # reads that succeed and agent polls are not at INFO; writes and errors are
    assert access == [("POST", "/v1/searches", 202), ("GET", "/v1/searches/99", 404)]
    assert all({"time", "level", "logger", "message"} <= set(r) and r["level"] == "INFO" for r in lines)
    assert any(r["logger"] == "lutnas.worker" and r["message"] == "worker w took search 3" for r in lines)

    debug = _emit(LUTNAS_LOG_FORMAT="text", LUTNAS_LOG_LEVEL="debug")
    assert sum("uvicorn.access" in line for line in debug) == 6  # all of it, the polling marked DEBUG
    assert any("DEBUG uvicorn.access" in line and "GET /healthz" in line for line in debug)


def test_bad_log_format_is_one_line(tmp_path: Path) -> None:
    out = subprocess.run([str(BIN / "lutnas"), "serve", "--port", "1"], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "LUTNAS_LOG_FORMAT": "xml",
                              "LUTNAS_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == "error: bad configuration: LUTNAS_LOG_FORMAT: 'xml' is not one of text, json"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_live_access_log_has_no_polling(service: Service) -> None:
    """The session's server was polled on /healthz until it answered, and teams were created
    since: its INFO log names the writes, not the polling."""
    with service.admin() as a:
        assert a.post("/v1/teams", json={"name": "log-check"}).status_code == 201
        for _ in range(3):
            assert a.get("/healthz").status_code == 200
    time.sleep(0.5)
    text = (service.logs / "server-0.log").read_text()
    assert '"POST /v1/teams HTTP/1.1" 201' in text
    assert "GET /healthz" not in text


def test_waiting_search_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A search waiting for latency units is re-checked every retry interval: 'took' and the
    wait are logged once, not at every re-check."""
    import server.models as m
    from latency_tables.db import LatencyTable
    from server.jobs.worker import Worker

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'w.db'}", data_dir=tmp_path,
                        missing_units_retry_seconds=0.05, poll_seconds=0.05)
    engine = create_engine_for(settings.database_url)
    upgrade(engine)
    with Session(engine) as s:
        team = m.Team(name="t")
        table = LatencyTable(name="t/cpu", hardware={}, runtime={})
        s.add_all([team, table])
        s.flush()
        hw = m.Hardware(team_id=team.id, name="cpu", kind="cpu", runtime={}, space="paper", table_id=table.id)
        sn = m.Supernet(team_id=team.id, name="sn", checkpoint_path="-", data_path="-",
                        space={"output_stages": [2, 3]})
        s.add_all([hw, sn])
        s.flush()
        s.add(m.Search(team_id=team.id, supernet_id=sn.id, status="queued", progress={}, summary={},
                       request={"supernet_id": sn.id, "hardware_ids": [hw.id], "population": 4, "generations": 1}))
        s.commit()
    worker = Worker(make_sessionmaker(engine), settings, name="log-test")
    caplog.set_level(logging.INFO, logger="lutnas")
    took = 0
    for _ in range(40):
        took += worker.run_once()
        if took >= 4:
            break
        time.sleep(0.06)
    engine.dispose()
    assert took >= 4  # re-checked at least four times
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert sum("took search" in msg for msg in infos) == 1, infos
    assert sum("not measured yet" in msg for msg in infos) == 1, infos
