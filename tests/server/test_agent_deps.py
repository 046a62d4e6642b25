"""The profiler agent runs on devices without torch, fastapi or sqlalchemy."""

from __future__ import annotations

import subprocess
import sys

from tests.server.conftest import BIN, Service


def test_agent_imports_only_device_dependencies() -> None:
    code = ("import sys, profilers.agent; heavy = [m for m in ('torch', 'fastapi', 'sqlalchemy', 'server', "
            "'latency_tables', 'tracking') if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_agent_bad_arguments_exit_2_with_one_line() -> None:
    out = subprocess.run([str(BIN / "lutnas-agent"), "--server", "http://127.0.0.1:9", "--token", "lna_x",
                          "--batch", "0"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--batch must be in 1..256" in out.stderr
    out = subprocess.run([str(BIN / "lutnas-agent"), "--server", "http://127.0.0.1:9", "--token", "lna_x",
                          "--provider", "NoSuchExecutionProvider"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "not available" in out.stderr


def test_agent_refuses_a_runtime_other_than_the_targets(service: Service) -> None:
    from tests.server.conftest import agent_token, register_hardware

    c = service.team("runtime-check")
    hw = register_hardware(c, "two-threads", runtime={"threads": 2})
    agent = service.agent(agent_token(c, hw["id"]), "--threads", "1", "--exit-when-done")
    assert agent.wait(120) == 2
    assert c.get(f"/v1/hardware/{hw['id']}").json()["coverage"]["measured"] == 0
    log = (service.logs / f"agent-{len(service.procs) - 1}.log").read_text()
    assert "registered with threads 2" in log and "--threads 2" in log
