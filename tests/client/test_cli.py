"""The remote CLI groups, run as a user runs them (the installed ``lutnas`` in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(300)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUTNAS_")}
    env.update(extra)
    return env


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


def test_unreachable_server_is_one_line_and_exit_2(lutnas, dead_url: str) -> None:
    line = _one_error_line(lutnas("hardware", "list", "--server", dead_url, "--api-key", "lnt_x"))
    assert "cannot reach the lutnas server" in line and dead_url in line


def test_server_and_key_come_from_the_environment(lutnas, dead_url: str) -> None:
    line = _one_error_line(lutnas("agents", "token", "1", env=_env(LUTNAS_SERVER=dead_url, LUTNAS_API_KEY="lnt_x")))
    assert dead_url in line
    # --server overrides the environment
    line = _one_error_line(
        lutnas("hardware", "show", "1", "--server", "ftp://nowhere", env=_env(LUTNAS_SERVER=dead_url))
    )
    assert "http://" in line and "ftp://nowhere" in line


def test_missing_key_is_one_line_and_exit_2(lutnas, dead_url: str) -> None:
    line = _one_error_line(lutnas("hardware", "list", "--server", dead_url))
    assert "no API key" in line and "LUTNAS_API_KEY" in line


def test_remote_commands_never_import_torch(dead_url: str) -> None:
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('HEAVY', [m for m in ('torch', 'sqlalchemy', 'fastapi') if m in sys.modules]))\n"
        "from lutnas.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    remote = ["--server", dead_url, "--api-key", "lnt_x"]
    cases = [(["--help"], 0), (["hardware", "list", *remote], 2), (["agents", "--help"], 0),
             (["search", "status", "1", *remote], 2)]
    for args, expected in cases:
        proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=_env(),
                              timeout=120)
        assert "HEAVY []" in proc.stdout, (args, proc.stdout, proc.stderr)
        assert proc.returncode == expected and "Traceback" not in proc.stderr, (args, proc.returncode, proc.stderr)


def test_hardware_and_agent_commands_against_a_live_server(lutnas, live_server) -> None:
    with live_server.admin() as admin:
        key = admin.teams.create("cli-team").api_key
    env = _env(LUTNAS_SERVER=live_server.url, LUTNAS_API_KEY=key)

    reg = lutnas("hardware", "register", "cli-cpu", "--threads", "2", "--json", env=env)
    assert reg.returncode == 0, reg.stderr
    hw = json.loads(reg.stdout)
    assert hw["name"] == "cli-cpu" and hw["runtime"]["threads"] == 2

    table = lutnas("hardware", "list", env=env)
    assert table.returncode == 0 and "cli-cpu" in table.stdout
    listed = json.loads(lutnas("hardware", "list", "--json", env=env).stdout)
    assert [h["id"] for h in listed] == [hw["id"]]

    show = lutnas("hardware", "show", str(hw["id"]), env=env)
    assert show.returncode == 0 and "coverage" in show.stdout and "CPUExecutionProvider" in show.stdout

    token = lutnas("agents", "token", str(hw["id"]), "--name", "bench", env=env)
    assert token.returncode == 0, token.stderr
    assert token.stdout.strip().startswith("lna_") and len(token.stdout.strip().splitlines()) == 1

    # A bad value and another team's resource: the server's problem, on one line.
    line = _one_error_line(lutnas("hardware", "register", "x", "--kind", "toaster", env=env))
    assert "422" in line and "field: kind" in line
    with live_server.admin() as admin:
        other = admin.teams.create("cli-other").api_key
    line = _one_error_line(lutnas("hardware", "show", str(hw["id"]), "--api-key", other, env=env))
    assert "404" in line
