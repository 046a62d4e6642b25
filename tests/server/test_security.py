"""The service's trust boundaries, played by an attacker holding an ordinary team key, against a
real ``lutnas serve`` on loopback (docs/security.md).

Every team client of the server suite also checks that no error body names a server folder
(``Service.team``'s response hook); these tests add the cases built to make the server talk.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import httpx
import pytest
import torch

from tests.server.conftest import ADMIN, Service
from tests.server.test_api import assert_problem, team


class _RunsShell:
    """Unpickling this object runs a shell command (what an attacker's checkpoint carries)."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.sentinel}",))


def _malicious_checkpoints(tmp_path: Path, sentinel: Path) -> dict[str, bytes]:
    """Three ways to smuggle the payload: torch's zip format, the legacy pickle format, and a
    real-looking checkpoint whose meta carries it."""
    out = {}
    zipped = tmp_path / "zip.pt"
    torch.save(_RunsShell(sentinel), zipped)
    out["zip"] = zipped.read_bytes()
    legacy = tmp_path / "legacy.pt"
    torch.save(_RunsShell(sentinel), legacy, _use_new_zipfile_serialization=False)
    out["legacy"] = legacy.read_bytes()
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"format": "lutnas-supernet", "version": 2, "state_dict": {}, "meta": {"x": _RunsShell(sentinel)}},
               wrapped)
    out["wrapped"] = wrapped.read_bytes()
    return out


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, None


def _data_archive(data: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(data, arcname="val")
    return buf.getvalue()


def _uploads(service: Service) -> set[str]:
    folder = Path(service.env["LUTNAS_DATA_DIR"]) / "supernets"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def test_malicious_pickle_upload_runs_nothing(service: Service, artifacts: dict[str, Path], tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    c = team(service)
    before = _uploads(service)
    data = ("val.tar.gz", _data_archive(artifacts["data"]))
    for how, payload in _malicious_checkpoints(tmp_path, sentinel).items():
        r = c.post("/v1/supernets", data={"name": f"evil-{how}"}, files={"checkpoint": ("sn.pt", payload), "data": data})
        body = assert_problem(r, 422, "checkpoint")
        assert "convert" in body["detail"], body  # tells an honest user of an old file what to do
        assert not sentinel.exists(), f"the {how} payload ran on the server"
    assert _uploads(service) == before, "a refused upload left files behind"
    assert c.get("/v1/supernets").json()["items"] == []


def test_path_registration_is_confined_to_the_data_roots(service: Service, artifacts: dict[str, Path],
                                                        tmp_path: Path) -> None:
    c = team(service)
    good = {"name": "ok", "checkpoint_path": str(artifacts["checkpoint"]), "data_path": str(artifacts["data"])}
    assert c.post("/v1/supernets", json=good).status_code == 201  # under a root: allowed
    outside = tmp_path / "outside.pt"  # tmp_path is not under any root
    outside.write_bytes(artifacts["checkpoint"].read_bytes())
    escape = artifacts["root"] / f"escape-{tmp_path.name}.pt"  # a link inside a root that leads out of it
    escape.symlink_to(outside)
    details = set()
    for path in (str(outside), str(tmp_path / "missing.pt"), "/etc/passwd", "/nonexistent/x.pt", str(escape),
                 str(artifacts["root"] / ".." / outside.parent.name / "outside.pt"), "~/.bashrc",
                 str(artifacts["root"] / "missing.pt")):
        body = assert_problem(c.post("/v1/supernets", json={**good, "checkpoint_path": path}), 422, "checkpoint_path")
        details.add(body["detail"])
    # one answer whether the file exists or not, inside a root or out: no existence oracle
    assert len(details) == 1, details
    body = assert_problem(c.post("/v1/supernets", json={**good, "data_path": "/etc"}), 422, "data_path")
    assert "/etc" not in body["detail"]


def test_a_team_cannot_reach_another_teams_upload(service: Service, artifacts: dict[str, Path]) -> None:
    alice, mallory = team(service), team(service)
    before = _uploads(service)
    r = alice.post("/v1/supernets", data={"name": "alice"}, files={
        "checkpoint": ("sn.pt", artifacts["checkpoint"].read_bytes()),
        "data": ("val.tar.gz", _data_archive(artifacts["data"]))})
    assert r.status_code == 201, r.text
    (new,) = _uploads(service) - before
    folder = Path(service.env["LUTNAS_DATA_DIR"]) / "supernets" / new
    # the server's data folder is listed among the roots (conftest): its uploads stay out of reach
    steal = {"name": "stolen", "checkpoint_path": str(folder / "checkpoint.pt"), "data_path": str(folder / "data")}
    missing = {**steal, "checkpoint_path": str(folder.parent / "0000000000000000" / "checkpoint.pt")}
    a = assert_problem(mallory.post("/v1/supernets", json=steal), 422, "checkpoint_path")
    b = assert_problem(mallory.post("/v1/supernets", json=missing), 422, "checkpoint_path")
    assert a["detail"] == b["detail"]
    assert alice.post("/v1/supernets", json=steal).status_code == 422  # not even the owner, by path
    assert mallory.get(f"/v1/supernets/{r.json()['id']}").status_code == 404


def test_admin_registers_server_paths_for_a_team(service: Service, artifacts: dict[str, Path], tmp_path: Path) -> None:
    c = team(service)
    me = c.get("/v1/me").json()
    outside = tmp_path / "outside.pt"
    outside.write_bytes(artifacts["checkpoint"].read_bytes())
    body = {"name": "by-admin", "checkpoint_path": str(outside), "data_path": str(artifacts["data"])}
    assert_problem(c.post(f"/v1/admin/teams/{me['id']}/supernets", json=body), 401)  # a team key is not admin
    with service.admin() as admin:
        r = admin.post(f"/v1/admin/teams/{me['id']}/supernets", json=body)
        assert r.status_code == 201, r.text
        assert admin.post("/v1/admin/teams/999999/supernets", json=body).status_code == 404
    assert [s["name"] for s in c.get("/v1/supernets").json()["items"]] == ["by-admin"]
    assert "checkpoint_path" not in r.json() and str(tmp_path) not in r.text


@pytest.mark.parametrize("case", ["traversal", "absolute", "symlink", "hardlink", "device", "fifo", "members", "bomb",
                                  "not-a-tar"])
def test_hostile_data_archives_are_refused(service: Service, artifacts: dict[str, Path], case: str,
                                           tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    archives = {
        "traversal": [_file("val/../../../../../../" + str(victim).lstrip("/"))],
        "absolute": [_file(str(victim))],
        "symlink": [_special("val/link", tarfile.SYMTYPE, "/etc/passwd")],
        "hardlink": [_file("val/a"), _special("val/b", tarfile.LNKTYPE, "val/a")],
        "device": [_special("val/dev", tarfile.CHRTYPE)],
        "fifo": [_special("val/fifo", tarfile.FIFOTYPE)],
        "members": [_file(f"val/f{i}") for i in range(int(service.env["LUTNAS_MAX_ARCHIVE_MEMBERS"]) + 1)],
        # 9 MB of zeros: ~9 KB compressed, past the 8 MB unpacked limit of this server
        "bomb": [_file("val/zeros.bin", b"\0" * (9 * 2**20))],
    }
    data = b"\x1f\x8b not a tar" if case == "not-a-tar" else _tar(archives[case])
    c = team(service)
    before = _uploads(service)
    r = c.post("/v1/supernets", data={"name": case}, files={
        "checkpoint": ("sn.pt", artifacts["checkpoint"].read_bytes()), "data": ("val.tar.gz", data)})
    assert_problem(r, 422, "data")
    assert not victim.exists()
    assert _uploads(service) == before


def test_error_texts_never_carry_server_paths(tmp_path: Path) -> None:
    """The texts that reach a team from deeper layers (checkpoint errors, a failed search's
    stored error) carry no path, and the last guard scrubs any a library adds."""
    from server.problems import scrub_paths
    from tracking.checkpoint import CheckpointError, load_supernet

    missing = tmp_path / "nope" / "checkpoint.pt"
    with pytest.raises(FileNotFoundError) as e:
        load_supernet(missing)
    assert str(tmp_path) not in str(e.value)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError) as e:
        load_supernet(junk)
    assert str(tmp_path) not in str(e.value)
    text = f"[Errno 2] No such file or directory: '{missing}' (see /v1/searches/3)"
    assert scrub_paths(text) == "[Errno 2] No such file or directory: '<server path>' (see /v1/searches/3)"


def test_admin_token_never_works_as_a_team_key(service: Service) -> None:
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {ADMIN}"}) as admin:
        assert_problem(admin.get("/v1/supernets"), 401)
