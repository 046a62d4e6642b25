"""The README's service walkthrough, run as written, so the two cannot drift apart.

The blocks are read from README.md by their markers: the server block (``lutnas admin
create-team``, ``lutnas serve``), the shell walkthrough (hardware, agent, supernet, search, front,
export) and the Python snippet. Only what the README itself calls a placeholder is substituted:
the server's address (a free loopback port instead of 8000) and ``lnt_...`` (the key
``create-team`` printed). The walkthrough's inputs are what ``lutnas demo`` leaves in
./lutnas-demo/ (a seeded untrained supernet and a tiny synthetic validation set here), and the
server scores with few validation pairs (its LUTNAS_SCORER_* settings) to stay quick.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.client.conftest import clean_env, free_port

pytestmark = pytest.mark.timeout(1500)  # minutes on an idle laptop; a loaded CI host is slower

README = Path(__file__).resolve().parents[2] / "README.md"


def block(marker: str, lang: str) -> str:
    """The fenced ``lang`` block right after ``<!-- marker`` in the README."""
    text = README.read_text()
    m = re.search(rf"<!-- {re.escape(marker)}[ :>].*?-->\s*```{lang}\n(.*?)```", text, re.S)
    assert m, f"README.md has no ```{lang} block marked <!-- {marker} -->"
    return m.group(1)


def commands(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    """A folder holding what `lutnas demo` leaves behind: lutnas-demo/supernet.pt, data/val."""
    import torch

    from tracking.checkpoint import save_checkpoint
    from tracking.data.synth import generate_synthetic
    from tracking.space import SearchSpace
    from tracking.supernet import Supernet

    torch.set_num_threads(1)
    demo = tmp_path / "lutnas-demo"
    torch.manual_seed(0)
    save_checkpoint(demo / "supernet.pt", Supernet(SearchSpace.paper()), {"note": "untrained (test)"})
    generate_synthetic(demo / "data" / "val", sequences=1, frames=4, seed=0, progress=False)
    return tmp_path


def test_readme_service_walkthrough_runs_as_written(workdir: Path) -> None:
    env = clean_env(
        LUTNAS_DATABASE_URL=f"sqlite:///{workdir / 'lutnas.db'}", LUTNAS_DATA_DIR=str(workdir / "server-data"),
        LUTNAS_SCORER_PAIRS="8", LUTNAS_SCORER_BN_BATCHES="1", LUTNAS_SCORER_BN_BATCH_SIZE="4",
        LUTNAS_TORCH_THREADS="1", LUTNAS_POLL_SECONDS="0.3", LUTNAS_MISSING_UNITS_RETRY_SECONDS="1",
        OMP_NUM_THREADS="1", PATH=f"{Path(sys.executable).parent}:{clean_env().get('PATH', '')}",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    server_cmds = commands(block("walkthrough-server", "bash"))
    create, serve = server_cmds[0], server_cmds[1]
    assert create.startswith("lutnas admin create-team ") and serve.startswith("lutnas serve ")
    made = subprocess.run(create.split("#")[0].split(), cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=120)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("lnt_")

    serve_args = serve.split("#")[0].replace("--port 8000", f"--port {port}").split()
    log = (workdir / "server.log").open("wb")
    server = subprocess.Popen(serve_args, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (workdir / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.25)

        shell = block("walkthrough", "bash")
        assert "lnt_..." in shell and "http://127.0.0.1:8000" in shell  # the two placeholders substituted
        script = shell.replace("http://127.0.0.1:8000", url).replace("lnt_...", key)
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=workdir, env=env,
                             capture_output=True, text=True, timeout=1200)
        assert run.returncode == 0, f"stdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"
        assert "Traceback" not in run.stderr
        assert (workdir / "front.png").stat().st_size > 0
        assert sorted(p.name for p in (workdir / "best").iterdir() if p.suffix == ".onnx") == [
            "search.onnx", "template.onnx"]
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
            assert c.get("/v1/searches/1").json()["status"] == "succeeded"
            assert c.get("/v1/hardware/1/latency-table/coverage").json()["fraction"] == 1.0

        # re-running the idempotent steps changes nothing (--exist-ok)
        again = [line for line in commands(script) if "--exist-ok" in line or line.startswith("export ")]
        rerun = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(again)], cwd=workdir, env=env,
                               capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
            assert len(c.get("/v1/hardware").json()["items"]) == 1
            assert len(c.get("/v1/supernets").json()["items"]) == 1
        remote = {**env, "LUTNAS_SERVER": url, "LUTNAS_API_KEY": key}
        shown = subprocess.run(["lutnas", "supernets", "show", "1", "--json"], env=remote, capture_output=True,
                               text=True, timeout=120)
        assert shown.returncode == 0 and json.loads(shown.stdout)["name"] == "synth", shown.stderr
        for args, why in ((["supernets", "show", "99"], "supernet 99 not found"),
                          (["hardware", "register", "laptop-cpu", "--threads", "2", "--exist-ok"], "exists (id 1)")):
            bad = subprocess.run(["lutnas", *args], env=remote, capture_output=True, text=True, timeout=120)
            assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
            assert len(bad.stderr.strip().splitlines()) == 1 and why in bad.stderr, bad.stderr

        # the Python snippet, run after the shell (and so a re-run of the same steps)
        snippet = block("walkthrough-python", "python")
        py = subprocess.run([sys.executable, "-c", snippet], cwd=workdir,
                            env={**env, "LUTNAS_SERVER": url, "LUTNAS_API_KEY": key},
                            capture_output=True, text=True, timeout=300)
        assert py.returncode == 0, py.stderr[-4000:]
        assert "latency_ms" in py.stdout  # the printed front
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
            assert len(c.get("/v1/hardware").json()["items"]) == 1  # reused, not a 409
            assert len(c.get("/v1/supernets").json()["items"]) == 1
            assert c.get("/v1/searches/2").json()["status"] == "succeeded"
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
