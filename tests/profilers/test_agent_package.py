"""The device install: one ordinary ``pip install ./profilers`` in a fresh virtual environment brings
the agent with numpy, onnxruntime and httpx only (no torch, fastapi, sqlalchemy or pydantic), and
``lutnas-agent --help`` works there.

The packages come from the configured index (PyPI in CI; pip's cache makes repeats quick). The
build runs on a copy of ``profilers/`` (the package, with its own pyproject) in a temporary folder, so the working tree
gets no build output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"torch", "fastapi", "sqlalchemy", "pydantic", "lutnas", "uvicorn", "alembic"}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_pip_install_agent_in_a_fresh_venv(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "profilers", src / "profilers",
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    env_dir = tmp_path / "device"
    venv.create(env_dir, with_pip=False)  # this interpreter's pip installs into it (--python): no ensurepip
    py = env_dir / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(py)]

    out = subprocess.run([*pip, "install", "-q", str(src / "profilers")], capture_output=True, text=True, timeout=540)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    listed = subprocess.run([*pip, "list", "--format", "json"], capture_output=True, text=True, timeout=120)
    names = {p["name"].lower().replace("_", "-") for p in json.loads(listed.stdout)}
    assert {"lutnas-agent", "numpy", "onnxruntime", "httpx"} <= names
    assert not names & HEAVY, names & HEAVY

    helped = subprocess.run([str(env_dir / "bin" / "lutnas-agent"), "--help"], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "--exit-when-done" in helped.stdout and "--retry-for" in helped.stdout
    # the whole agent, measurement included, imports on the device (not only its --help)
    code = ("import profilers.agent, profilers.measure, onnxruntime, pathlib; import profilers.runners as r; "
            "assert (pathlib.Path(r.__file__).parent / 'litert_adb.sh').is_file(); print(profilers.agent.__file__)")
    imported = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert imported.returncode == 0 and str(env_dir) in imported.stdout, imported.stderr
