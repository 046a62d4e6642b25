"""The measurement protocol the agent enforces: a unit timed while another process loads the
device is flagged and not stored (it goes back to the pool); measured once the device is quiet, its
entry records the conditions it ran under. Real agent, real server, real busy neighbour; SQLite and
PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from profilers.conditions import Limits, Watch, flags, valid_conditions
from tests.server.conftest import BIN, Service, agent_token, register_hardware

SPIN = "import time\nend = time.time() + 120\nwhile time.time() < end: pass"  # one core, bounded


@contextmanager
def busy_neighbour() -> Iterator[None]:
    p = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        time.sleep(0.3)  # let it get going
        yield
    finally:
        p.kill()
        p.wait()


def test_watch_sees_a_busy_neighbour_and_flags_name_the_limit() -> None:
    with busy_neighbour(), Watch() as w:
        end = time.perf_counter() + 0.6
        while time.perf_counter() < end:  # this process: one core busy too
            pass
    assert w.conditions["other_load_cores"] >= 0.5, w.conditions
    assert any(f.startswith("loaded:") for f in flags(w.conditions, Limits()))
    assert flags(w.conditions, Limits(max_other_cores=None)) == []
    assert flags({"freq_mhz": 1000.0, "max_freq_mhz": 3000.0}, Limits(min_clock_ratio=0.8)) == \
        ["throttled: clock 1000 of 3000 MHz"]
    assert flags({"temp_c": 91.0}, Limits(max_temp_c=85)) == ["hot: 91 C (limit 85)"]
    assert flags({}, Limits(min_clock_ratio=0.8, max_temp_c=85)) == []  # nothing exposed: nothing judged
    # uploaded conditions are data: only known finite numbers come back
    assert valid_conditions({"other_load_cores": 0.1, "temp_c": "hot", "x": 1, "wall_s": float("nan")}) == \
        {"other_load_cores": 0.1}
    assert valid_conditions("nope") is None


@pytest.mark.slow
# SQLite only, for the suite's time: the agent's load check is the same whatever the server stores in
# (agent uploads run on both dialects in test_flow and test_api)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_unit_measured_under_load_is_not_stored_then_measured_when_quiet(service: Service, database_url: str,
                                                                           tmp_path: Path) -> None:
    c = service.team(f"protocol-{uuid.uuid4().hex[:8]}")
    hw = register_hardware(c, "quiet-cpu")
    token = agent_token(c, hw["id"])
    args = [str(BIN / "lutnas-agent"), "--server", service.url, "--token", token, "--batch", "1",
            "--min-time", "0.15", "--max-time", "0.3", "--busy-retries", "2", "--busy-wait", "0.2",
            "--lease-seconds", "2"]
    with busy_neighbour():
        try:
            out = subprocess.run([*args, "--max-units", "1"], capture_output=True, text=True, timeout=8,
                                 env=service.env)
            log = out.stderr
        except subprocess.TimeoutExpired as e:  # still finding the device loaded: what we want
            log = (e.stderr or b"").decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
    assert "not stored, loaded: other processes used" in log, log[-2000:]
    assert c.get(f"/v1/hardware/{hw['id']}").json()["coverage"]["measured"] == 0  # nothing stored under load
    # the device is quiet again: the same units are measured and stored with their conditions
    out = subprocess.run([*args, "--max-units", "2"], capture_output=True, text=True, timeout=120, env=service.env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert c.get(f"/v1/hardware/{hw['id']}").json()["coverage"]["measured"] == 2
    entries = c.get(f"/v1/hardware/{hw['id']}/latency-table").json()["items"]
    assert len(entries) == 2
    for e in entries:
        assert e["conditions"]["other_load_cores"] < 0.5 and e["conditions"]["wall_s"] > 0


def test_the_hardware_page_summarises_the_conditions_of_a_tables_entries() -> None:
    from server.ui.views import conditions_summary

    envs = [{"conditions": {"other_load_cores": v, "freq_mhz": f, "temp_c": 50.0 + v}, "governor": "performance"}
            for v, f in ((0.1, 2000.0), (0.3, 2400.0), (0.2, 2200.0))]
    envs += [{"governor": "<script>"}, None, {"conditions": "junk"}]  # old or hostile entries are skipped
    c = conditions_summary(envs)
    assert c == {"n": 3, "load_median": 0.2, "load_max": 0.3, "freq_min": 2000.0, "freq_max": 2400.0,
                 "temp_max": 50.3, "governors": ["performance"]}
    assert conditions_summary([None, {}]) is None
