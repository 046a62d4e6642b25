"""Retries: bounded on connection refused, 503 retried (honouring Retry-After), other errors not.

The 503 cases need a server that is overloaded on demand; a tiny stdlib HTTP server on loopback
plays the reverse proxy in front of lutnas that answers 503 while the service restarts.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from client import Client, LutnasAPIError, LutnasConnectionError, LutnasTimeoutError
from client.http import Transport

pytestmark = pytest.mark.timeout(120)


class FlakyProxy(BaseHTTPRequestHandler):
    """Answers 503 (problem+json, Retry-After: 0) ``fail_first`` times, then 200 {"status": "ok"}."""

    fail_first = 0
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).seen.append(self.path)
        if len(type(self).seen) <= type(self).fail_first:
            body = {"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": "restarting"}
            self._send(503, body, {"Retry-After": "0", "Content-Type": "application/problem+json"})
        else:
            self._send(200, {"status": "ok", "database": "ok"}, {"Content-Type": "application/json"})

    do_POST = do_GET

    def _send(self, status: int, body: dict, headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def flaky() -> Iterator[tuple[str, type[FlakyProxy]]]:
    handler = type("Handler", (FlakyProxy,), {"seen": [], "fail_first": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_connection_refused_is_retried_a_bounded_number_of_times(
    dead_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = dead_url
    caplog.set_level(logging.WARNING, logger="lutnas.client")
    with Client(url, "lnt_x", retries=3, backoff=0.01, retry_for=0) as c, pytest.raises(LutnasConnectionError) as err:
        c.hardware.get(1)
    retries = [r for r in caplog.records if r.name == "lutnas.client" and "retry" in r.getMessage()]
    assert [r.getMessage().split("retry ")[1].split(" ")[0] for r in retries] == ["1/3", "2/3", "3/3"]
    assert "after 4 attempts" in str(err.value) and url in str(err.value)
    assert isinstance(err.value, ConnectionError)  # callers may catch the builtin

    caplog.clear()
    with Client(url, "lnt_x", retries=0) as c, pytest.raises(LutnasConnectionError, match="after 1 attempt"):
        c.me()
    assert not [r for r in caplog.records if r.name == "lutnas.client"]


def test_503_is_retried_then_succeeds(flaky) -> None:
    url, handler = flaky
    handler.fail_first = 2
    with Client(url, retries=3, backoff=5.0) as c:  # Retry-After: 0 overrides the 5 s backoff
        assert c.health() == {"status": "ok", "database": "ok"}
    assert handler.seen == ["/healthz"] * 3


def test_503_past_the_retry_budget_surfaces_the_problem(flaky) -> None:
    url, handler = flaky
    handler.fail_first = 100
    with Client(url, "lnt_x", retries=2, backoff=0.0, retry_for=0) as c, pytest.raises(LutnasAPIError) as err:
        c.searches.submit(supernet_id=1, hardware_ids=[1])
    assert (err.value.status, err.value.title, err.value.detail) == (503, "Service Unavailable", "restarting")
    assert len(handler.seen) == 3  # the first try and two retries, then it gives up


def test_backoff_schedule_is_exponential_capped_and_seeded() -> None:
    plain = Transport("http://127.0.0.1:1", None, backoff=0.5)
    assert [plain._delay(n) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert plain._delay(20) == 30.0  # capped
    assert plain._delay(0, retry_after="2") == 2.0
    a = Transport("http://127.0.0.1:1", None, backoff=1.0, jitter=0.5, seed=7)
    b = Transport("http://127.0.0.1:1", None, backoff=1.0, jitter=0.5, seed=7)
    da, db = [a._delay(n) for n in range(5)], [b._delay(n) for n in range(5)]
    assert da == db  # same seed, same schedule
    assert all(2**n <= d <= 1.5 * 2**n for n, d in enumerate(da)) and da != [2.0**n for n in range(5)]


def test_importing_the_sdk_stays_light() -> None:
    code = (
        "import sys, client; from client import Client; Client('http://127.0.0.1:1');"
        "heavy = [m for m in ('torch', 'fastapi', 'sqlalchemy', 'pandas', 'matplotlib', 'server', 'tracking',"
        " 'search', 'latency_tables', 'profilers') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_wait_until_ready_polls_health(flaky, dead_url: str) -> None:
    url, handler = flaky
    handler.fail_first = 3
    with Client(url, retries=0) as c:
        assert c.wait_until_ready(timeout=30, poll=0.01) == {"status": "ok", "database": "ok"}
    assert len(handler.seen) == 4
    with Client(dead_url) as c, pytest.raises(LutnasTimeoutError, match="not ready after 0.3s"):
        c.wait_until_ready(timeout=0.3, poll=0.05)
