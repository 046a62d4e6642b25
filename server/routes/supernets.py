"""Supernets: uploaded (multipart, size-limited, unpacked inert) or registered by server-side paths
(JSON): a team only under the operator's data roots, the admin anywhere (docs/security.md)."""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import io
import re
import secrets
import shutil
import tarfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth import AdminDep, TeamDep
from server.deps import SessionDep, SettingsDep, run_heavy
from server.models import Supernet, Team
from server.pagination import Page, PageSize, PageToken, decode_token, page
from server.problems import Problem, documented, not_found
from server.schemas import NO_CONTROL, IdPath, SupernetCreate, SupernetEnsembleCreate, SupernetOut

router = APIRouter(prefix="/v1/supernets", tags=["supernets"])
admin_router = APIRouter(prefix="/v1/admin", tags=["admin"])

_JSON_BODY = {"content": {"application/json": {"schema": SupernetCreate.model_json_schema()}}, "required": True}
_BODY_SCHEMA = {
    "content": {
        **_JSON_BODY["content"],
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["name", "checkpoint", "data"],
            "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": NO_CONTROL},
                           "checkpoint": {"type": "string", "format": "binary"},
                           "data": {"type": "string", "format": "binary",
                                    "description": ".tar.gz of a GOT-10k-layout folder"}}}},
    },
    "required": True,
}


def get_team_supernet(session: Session, team: Team, supernet_id: int) -> Supernet:
    sn = session.get(Supernet, supernet_id)
    if sn is None or sn.team_id != team.id:
        raise not_found("supernet", supernet_id)
    return sn


def read_checkpoint_space(path: Path, field: str) -> dict[str, Any]:
    """Load the checkpoint once (torch, weights-only) to check it and read its search space."""
    from tracking.checkpoint import load_supernet

    try:
        net, _meta = load_supernet(path)
    except (OSError, ValueError, KeyError) as e:
        # checkpoint errors never name a path; OSError texts may, so they get a fixed sentence
        detail = str(e).splitlines()[0] if isinstance(e, ValueError) and str(e) else "unreadable checkpoint"
        raise Problem(422, f"{field}: {detail}", field) from None
    return net.space.to_dict()


def check_data_dir(path: Path, field: str) -> None:
    from tracking.data import read_dataset

    if not path.is_dir():
        raise Problem(422, f"{field}: not a folder of GOT-10k-layout sequences", field)
    try:
        data = read_dataset(path, on_error="skip")
    except (OSError, ValueError):
        raise Problem(422, f"{field}: unreadable validation data", field) from None
    if len(data) == 0:
        # the reader's issues name files; a team gets a count and the first reason only
        why = f" (first problem: {data.issues[0].reason})" if data.issues else ""
        raise Problem(422, f"{field}: no usable GOT-10k-layout sequences{why}", field)


def _within(path: Path, root: Path) -> bool:
    try:
        return path.is_relative_to(root.resolve())
    except OSError:
        return False


def allowed_server_path(raw: str, field: str, settings: Any, admin: bool) -> Path:
    """``raw`` resolved (links followed), or a 422 that is the same whether or not it exists.

    A team may name only paths under the operator's ``data_roots``, and never the server's own
    folder (uploads of every team, the unit cache); the admin may name any path."""
    refused = Problem(422, f"{field}: no usable file or folder at that path among the server paths this team may "
                           "register (the operator lists them in LUTNAS_DATA_ROOTS); upload the files instead", field)
    if "\x00" in raw:
        raise refused
    try:
        path = Path(raw).expanduser().resolve()  # follows every link before any check
    except (OSError, RuntimeError, ValueError):
        raise refused from None
    if not admin:
        if _within(path, Path(settings.data_dir)) or not any(_within(path, Path(r)) for r in settings.data_roots):
            raise refused
    if not path.exists():
        raise refused
    return path


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, or a 413 problem once it passes ``limit`` bytes. The rest of an oversize body
    is read and dropped (not stored) so the client gets the answer instead of a broken pipe."""
    buf = bytearray()
    over = False
    async for chunk in request.stream():
        if over:
            continue
        buf += chunk
        if len(buf) > limit:
            over = True
            buf = bytearray()
    if over:
        raise Problem(413, f"upload is larger than the limit of {limit / (1024 * 1024):g} MB")
    return bytes(buf)


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Form fields of a multipart body: name -> (filename, bytes). Parts are split on the
    boundary byte-exactly (binary-safe); only the small part headers go through the standard
    library's header parser (python-multipart is not a dependency)."""
    ctype = email.message.Message()
    ctype["content-type"] = content_type
    boundary = ctype.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise Problem(400, "multipart body without a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    out: dict[str, tuple[str | None, bytes]] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # closing delimiter
        head, sep, payload = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise Problem(400, "malformed multipart body")
        headers = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(head.lstrip(b"\r\n"))
        disposition = headers.get("content-disposition")
        if disposition is None:
            continue
        params = dict(disposition.params)
        name = params.get("name")
        if name:
            out[str(name)] = (params.get("filename"), payload.removesuffix(b"\r\n"))
    return out


def _safe_extract(data: bytes, dest: Path, max_members: int, max_bytes: int) -> Path:
    """Unpack a data archive after checking every member: regular files and folders only (no
    links, devices or fifos), relative names without ``..``, at most ``max_members`` entries and
    ``max_bytes`` unpacked (an archive bomb is refused before anything is written)."""
    bad = Problem(422, "data: not a readable .tar.gz archive", "data")
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            members, total = [], 0
            for m in tar:  # streams through the archive; gzip output is never held whole
                members.append(m)
                if len(members) > max_members:
                    raise Problem(422, f"data: the archive has more than {max_members} entries", "data")
                if not (m.isfile() or m.isdir()):
                    raise Problem(422, f"data: archive entry {m.name!r} is a link or special file; "
                                       "only regular files and folders are accepted", "data")
                parts = Path(m.name).parts
                if m.name.startswith(("/", "\\")) or ".." in parts:
                    raise Problem(422, f"data: archive entry {m.name!r} points outside the archive", "data")
                total += max(m.size, 0)
                if total > max_bytes:
                    raise Problem(422, f"data: the archive unpacks to more than {max_bytes / 2**20:g} MB", "data")
            tar.extractall(dest, members=members, filter="data")  # and the standard library checks again
    except Problem:
        raise
    except (tarfile.TarError, OSError, EOFError, ValueError):
        raise bad from None
    entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
    # an archive of one top folder holding the sequences: use that folder
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def _store_upload(fields: dict[str, tuple[str | None, bytes]], settings: Any) -> tuple[Path, Path, dict[str, Any]]:
    folder = Path(settings.data_dir) / "supernets" / secrets.token_hex(8)
    folder.mkdir(parents=True)
    try:
        ckpt = folder / "checkpoint.pt"
        ckpt.write_bytes(fields["checkpoint"][1])
        (folder / "data").mkdir()
        data_dir = _safe_extract(fields["data"][1], folder / "data", settings.max_archive_members,
                                 settings.max_extract_bytes)
        space = read_checkpoint_space(ckpt, "checkpoint")
        check_data_dir(data_dir, "data")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return ckpt, data_dir, space


@router.post("", status_code=201, response_model=SupernetOut, operation_id="register_supernet",
             openapi_extra={"requestBody": _BODY_SCHEMA}, responses=documented(400, 413, 415))
async def register_supernet(request: Request, team: TeamDep, session: SessionDep, settings: SettingsDep,
                            response: Response) -> Supernet:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        body = await _read_limited(request, settings.max_upload_bytes)
        fields = await run_heavy(request, _parse_multipart, ctype, body)
        for f in ("name", "checkpoint", "data"):
            if f not in fields:
                raise Problem(422, f"multipart field {f!r} is required", f)
        name = fields["name"][1].decode("utf-8", "replace").strip()
        if not name or len(name) > 128:
            raise Problem(422, "name must be 1..128 characters", "name")
        if not re.fullmatch(NO_CONTROL, name):
            raise Problem(422, "name must not contain control characters", "name")
        ckpt, data_dir, space = await run_heavy(request, _store_upload, fields, settings)
        sn = Supernet(team_id=team.id, name=name, checkpoint_path=str(ckpt), data_path=str(data_dir), space=space)
    elif ctype.startswith("application/json") or not ctype:
        req = await _read_json_body(request)
        sn = await _register_paths(request, req, team.id, settings, admin=False)
    else:
        raise Problem(415, "send application/json (server-side paths) or multipart/form-data (upload)")
    session.add(sn)
    session.commit()
    response.headers["Location"] = f"/v1/supernets/{sn.id}"
    return sn


async def _read_json_body(request: Request) -> SupernetCreate:
    raw = await _read_limited(request, 1024 * 1024)
    try:
        return SupernetCreate.model_validate_json(raw or b"{}")
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        detail = "request body is not valid JSON" if err["type"] == "json_invalid" else f"{field}: {err['msg']}"
        raise Problem(422, detail, field if err["type"] != "json_invalid" else None) from None


async def _register_paths(request: Request, req: SupernetCreate, team_id: int, settings: Any, admin: bool) -> Supernet:
    ckpt = allowed_server_path(req.checkpoint_path, "checkpoint_path", settings, admin)
    data_dir = allowed_server_path(req.data_path, "data_path", settings, admin)
    space = await run_heavy(request, read_checkpoint_space, ckpt, "checkpoint_path")
    await run_heavy(request, check_data_dir, data_dir, "data_path")
    return Supernet(team_id=team_id, name=req.name, checkpoint_path=str(ckpt), data_path=str(data_dir), space=space)


@admin_router.post("/teams/{team_id}/supernets", status_code=201, response_model=SupernetOut,
                   operation_id="admin_register_supernet", openapi_extra={"requestBody": _JSON_BODY},
                   responses=documented(413))
async def admin_register_supernet(team_id: IdPath, request: Request, _: AdminDep, session: SessionDep,
                                  settings: SettingsDep, response: Response) -> Supernet:
    """The operator registers server-side files for a team, anywhere on the server."""
    if session.get(Team, team_id) is None:
        raise not_found("team", team_id)
    sn = await _register_paths(request, await _read_json_body(request), team_id, settings, admin=True)
    session.add(sn)
    session.commit()
    response.headers["Location"] = f"/v1/supernets/{sn.id}"
    return sn


@router.post("/ensembles", status_code=201, response_model=SupernetOut, operation_id="register_supernet_ensemble")
def register_supernet_ensemble(req: SupernetEnsembleCreate, team: TeamDep, session: SessionDep,
                               response: Response) -> Supernet:
    """An ensemble of the team's supernets: a search on it scores every candidate with the mean of
    the members' scores, which ranks architectures closer to stand-alone training than one
    supernet does (docs/validation.md, "Supernet length and ensembles")."""
    if len(set(req.members)) < len(req.members):
        raise Problem(422, "members: a supernet given twice", "members")
    members = [session.get(Supernet, i) for i in req.members]
    missing = [i for i, m in zip(req.members, members, strict=True) if m is None or m.team_id != team.id]
    if missing:  # named in the body, not the path: a 422 on the field, not a 404
        raise Problem(422, f"members: supernet {missing[0]} not found", "members")
    members = [m for m in members if m is not None]
    if any(m.members for m in members):
        raise Problem(422, "members: an ensemble cannot be a member (list its supernets instead)", "members")
    if any(m.space != members[0].space for m in members):
        raise Problem(422, "members: the supernets were trained on different search spaces", "members")
    first = members[0]
    sn = Supernet(team_id=team.id, name=req.name, checkpoint_path=first.checkpoint_path, data_path=first.data_path,
                  space=first.space, members=list(req.members))
    session.add(sn)
    session.commit()
    response.headers["Location"] = f"/v1/supernets/{sn.id}"
    return sn


@router.get("", response_model=Page[SupernetOut], operation_id="list_supernets")
def list_supernets(team: TeamDep, session: SessionDep, page_size: PageSize = 50,
                   page_token: PageToken = None) -> dict[str, Any]:
    after = decode_token(page_token)
    q = select(Supernet).where(Supernet.team_id == team.id)
    if after is not None:
        q = q.where(Supernet.id > after)
    result = page(list(session.scalars(q.order_by(Supernet.id).limit(page_size + 1))), page_size, lambda s: s.id)
    result["items"] = [SupernetOut.model_validate(s, from_attributes=True) for s in result["items"]]
    return result


@router.get("/{supernet_id}", response_model=SupernetOut, operation_id="get_supernet")
def get_supernet(supernet_id: IdPath, team: TeamDep, session: SessionDep) -> Supernet:
    return get_team_supernet(session, team, supernet_id)
