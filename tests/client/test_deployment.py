"""docker-compose.yml, Dockerfile and docs/deployment.md, checked without a Docker engine.

The compose file must parse and wire its services as documented; every command a service runs
must be a real console script / ``lutnas`` command of this package, with the options it passes;
every ``LUTNAS_*`` variable the code reads must be documented in docs/deployment.md.
"""

from __future__ import annotations

import itertools
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["lutnas", "tracking", "profilers", "latency_tables", "search", "server", "client"]
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _command(service: dict) -> list[list[str]]:
    """The programs a service runs: a list of argv lists (``sh -c "a && exec b"`` gives two)."""
    cmd = service["command"]
    argv = cmd if isinstance(cmd, list) else shlex.split(cmd)
    argv = [INTERPOLATION.sub("TOKEN", a) for a in argv]  # compose fills ${VAR:-default}
    if argv[:2] == ["sh", "-c"]:
        parts = [shlex.split(p) for p in argv[2].split("&&")]
        return [p[1:] if p[0] == "exec" else p for p in parts]
    return [argv]


def test_compose_services_and_wiring(compose: dict) -> None:
    services = compose["services"]
    assert {"postgres", "server", "worker", "agent"} <= set(services)

    pg = services["postgres"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    volume, mount = pg["volumes"][0].split(":", 1)
    assert mount == "/var/lib/postgresql/data" and volume in compose["volumes"]  # named, survives restarts

    for name in ("server", "worker"):
        s = services[name]
        assert s["depends_on"]["postgres"]["condition"] == "service_healthy"
        url = s["environment"]["LUTNAS_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://") and "@postgres:5432/" in url
        assert s["environment"]["LUTNAS_DATA_DIR"] == "/data"
        assert any(v.split(":")[0] in compose["volumes"] and v.endswith(":/data") for v in s["volumes"])
    assert services["worker"]["depends_on"]["server"]["condition"] == "service_healthy"
    assert "/healthz" in " ".join(services["server"]["healthcheck"]["test"])

    server_cmds = _command(services["server"])
    assert server_cmds[0] == ["lutnas", "admin", "migrate"]  # migrate, then serve
    assert server_cmds[1][:2] == ["lutnas", "serve"] and "--no-worker" in server_cmds[1]
    assert server_cmds[1][server_cmds[1].index("--host") + 1] == "0.0.0.0"
    assert _command(services["worker"]) == [["lutnas", "worker"]]

    agent = services["agent"]
    [argv] = _command(agent)
    assert argv[0] == "lutnas-agent" and argv[argv.index("--server") + 1] == "http://server:8000"
    assert "LUTNAS_AGENT_TOKEN" in " ".join(agent["command"])  # the token comes from the environment
    assert agent["depends_on"]["server"]["condition"] == "service_healthy"


def _help(argv: list[str]) -> str:
    """``--help`` of the command in argv (its leading words, options dropped), via the installed script."""
    exe = shutil.which(argv[0], path=str(Path(sys.executable).parent))
    assert exe, f"{argv[0]} is not installed next to {sys.executable}"
    words = list(itertools.takewhile(lambda a: not a.startswith("-"), argv[1:]))  # the command path
    proc = subprocess.run([exe, *words, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
    return proc.stdout


def test_every_service_command_is_an_installed_command_with_those_options(compose: dict, pyproject: dict) -> None:
    scripts = pyproject["project"]["scripts"]
    for name, service in compose["services"].items():
        if "command" not in service:
            continue
        for argv in _command(service):
            # the ray profile's services also run Ray's own CLI (installed with the ray extra)
            ray_cli = argv[0] == "ray" and "ray" in service.get("profiles", [])
            assert ray_cli or argv[0] in scripts, f"{name}: {argv[0]} is not a console script of this package"
            text = _help(argv)
            for option in (a.split("=")[0] for a in argv if a.startswith("--")):
                assert option in text, f"{name}: {' '.join(argv)}: {option} not in its --help"


def test_compose_ray_profile(compose: dict, pyproject: dict) -> None:
    """Profile ``ray``: a Ray head, Ray workers, and a lutnas worker joined to that cluster and
    pointed at it; all from the image built with the ray extra, sharing /data and one token."""
    services = compose["services"]
    ray = {n for n, s in services.items() if "ray" in s.get("profiles", [])}
    assert {"ray-head", "ray-worker", "worker-ray"} <= ray
    assert not any("ray" in s.get("profiles", []) for n, s in services.items() if n in ("server", "worker"))
    extras = pyproject["project"]["optional-dependencies"]
    assert any(d.startswith("ray") for d in extras["ray"]) and any(d.startswith("ray") for d in extras["dev"])
    for name in ray:
        s = services[name]
        assert s["build"]["args"]["LUTNAS_EXTRAS"] == "ray" and s["image"] != "lutnas:latest"
        assert any(v.endswith(":/data") for v in s["volumes"])
        assert s["environment"]["RAY_AUTH_MODE"] == "token" and "RAY_AUTH_TOKEN" in s["environment"]
    head = _command(services["ray-head"])[0]
    assert head[:3] == ["ray", "start", "--head"] and "--block" in head and "--port=6379" in head
    assert "--address=ray-head:6379" in _command(services["ray-worker"])[0]
    join, run = _command(services["worker-ray"])
    assert join[:2] == ["ray", "start"] and "--address=ray-head:6379" in join and run == ["lutnas", "worker"]
    env = services["worker-ray"]["environment"]
    assert env["LUTNAS_RAY_ADDRESS"] == "ray-head:6379" and "LUTNAS_EVAL_WORKERS" in env
    assert env["LUTNAS_DATABASE_URL"] == services["worker"]["environment"]["LUTNAS_DATABASE_URL"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ARG LUTNAS_EXTRAS=""' in dockerfile and '${LUTNAS_EXTRAS:+"[$LUTNAS_EXTRAS]"}' in dockerfile


def test_dockerfile_installs_cpu_torch_then_the_package(pyproject: dict) -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\s*$", text, re.M)
    torch_pin = next(d for d in pyproject["project"]["dependencies"] if d.startswith("torch"))
    version = torch_pin.split("==")[1]
    assert f"TORCH_VERSION={version}" in text and '"torch==${TORCH_VERSION}"' in text
    assert "--index-url https://download.pytorch.org/whl/cpu" in text
    torch_step = re.search(r"^RUN pip install --index-url https://download.pytorch.org/whl/cpu", text, re.M)
    package_step = re.search(r"^RUN pip install \.", text, re.M)
    assert torch_step and package_step and torch_step.start() < package_step.start()  # torch first
    for package in PACKAGES:  # everything setuptools packages is copied into the image
        assert f"COPY {package} ./{package}" in text, package
    included = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert included <= set(PACKAGES)
    assert re.search(r"^USER \w+", text, re.M)  # not root


def test_every_environment_variable_is_documented(compose: dict) -> None:
    doc = (ROOT / "docs" / "deployment.md").read_text()
    used = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            used |= set(re.findall(r"\bLUTNAS_[A-Z0-9_]+\b", path.read_text()))
    used |= set(INTERPOLATION.findall((ROOT / "docker-compose.yml").read_text()))
    for service in compose["services"].values():
        env = service.get("environment", {})
        used |= {k for k in (env if isinstance(env, dict) else [e.split("=")[0] for e in env])}
    documented = set(re.findall(r"`(LUTNAS_[A-Z0-9_]+|POSTGRES_[A-Z_]+)`", doc))
    missing = sorted(v for v in used if v.startswith(("LUTNAS_", "POSTGRES_PASSWORD")) and v not in documented)
    assert not missing, f"not documented in docs/deployment.md: {missing}"
    assert {"LUTNAS_DATABASE_URL", "LUTNAS_ADMIN_TOKEN", "LUTNAS_MAX_UPLOAD_MB", "LUTNAS_SERVER",
            "LUTNAS_API_KEY", "LUTNAS_AGENT_TOKEN"} <= documented


def test_the_image_install_ships_every_module_and_migration(tmp_path: Path) -> None:
    """Build the wheel from exactly what the Dockerfile copies: nothing the service needs at run
    time (modules, Alembic migrations and templates, package data) may be left behind."""
    text = (ROOT / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (\S+(?: \S+)*) \S+$", text, re.M)
    src = tmp_path / "src"
    for line in copied:
        for name in line.split():
            path = ROOT / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                (src / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, src / name)
    out = tmp_path / "wheel"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    [wheel] = out.glob("lutnas-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    needed = {
        str(p.relative_to(ROOT))
        for package in PACKAGES
        for p in (ROOT / package).rglob("*")
        if p.suffix in {".py", ".mako", ".ini", ".json"} and "__pycache__" not in p.parts
    }
    assert any(n.startswith("server/migrations/versions/") for n in needed)
    assert not needed - shipped, f"left out of the installed package: {sorted(needed - shipped)}"
    entry_points = next(n for n in shipped if n.endswith(".dist-info/entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "lutnas = lutnas.cli:main" in scripts and "lutnas-agent = profilers.agent:main" in scripts
