"""The dashboard's pages (``/ui``): server-rendered Jinja2 templates and a little JavaScript.

Every page resolves the signed-in team from its session cookie (``server.ui.session``) and reads
through ``server.ui.views``, which calls the REST routes' own functions. Errors on pages answer
a friendly HTML page with the same status the API would give (never a traceback or a server
path); the JSON endpoints the pages poll answer problem+json like the rest of the API.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, quote

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.deps import SessionDep, run_heavy
from server.jobs.status import SearchStatus
from server.problems import Problem, problem_response, scrub_paths
from server.routes.architectures import _export
from server.routes.latency import export_latency_table
from server.routes.searches import cancel_search, get_team_search, search_out
from server.ui import session as ui_session
from server.ui import views
from server.ui.session import COOKIE, COOKIE_PATH, LIFETIME, NotSignedIn, SignInError, UiUser

log = logging.getLogger("lutnas.server")

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["ago"] = views.ago
templates.env.filters["ms"] = lambda v: "–" if v is None else f"{v:.2f} ms"
templates.env.filters["count"] = lambda v: "–" if v is None else (
    f"{v / 1e9:.2f} G" if v >= 1e9 else f"{v / 1e6:.2f} M" if v >= 1e6 else f"{v / 1e3:.1f} k" if v >= 1e3 else str(v))
templates.env.filters["pct"] = lambda v: "–" if v is None else f"{100 * v:.0f}%"

# No inline script and no eval (plotly's SVG traces need neither); inline styles: plotly sets them.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def _static_files() -> dict[str, tuple[Path, str]]:
    import plotly

    files = {name: (HERE / "static" / name, media) for name, media in (
        ("dashboard.css", "text/css"), ("dashboard.js", "text/javascript"), ("charts.js", "text/javascript"))}
    # plotly.js as the plotly wheel ships it: no CDN, no Node build
    files["plotly.min.js"] = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js", "text/javascript")
    return files


STATIC = _static_files()


def render_error(request: Request, status: int, detail: str) -> HTMLResponse:
    title = {400: "Bad request", 401: "Sign in needed", 403: "Not allowed", 404: "Not found",
             409: "Not possible right now", 422: "Invalid input"}.get(status, "Something went wrong")
    return templates.TemplateResponse(request, "error.html", {"title": title, "status": status,
                                                              "detail": scrub_paths(detail), "user": None},
                                      status_code=status)


def _signin_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/signin?next={quote(target, safe='')}", status_code=303)


class UiRoute(APIRoute):
    """Routes whose errors are pages: a problem becomes a friendly HTML page (JSON endpoints under
    ``/ui/api`` keep problem+json), a missing session sends the browser to the sign-in form."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        is_api = self.path.startswith("/ui/api/")

        async def wrapped(request: Request) -> Response:
            try:
                response = await handler(request)
            except NotSignedIn:
                if is_api:
                    response = problem_response(401, "not signed in (or the session ended)")
                else:
                    response = _signin_redirect(request)
            except Problem as e:
                response = (problem_response(e.status, e.detail, e.field, e.kind, e.title, None, e.extra) if is_api
                            else render_error(request, e.status, e.detail))
            except RequestValidationError as e:
                errors = list(e.errors())
                first = errors[0] if errors else {}
                where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "input"
                detail = f"{where}: {first.get('msg', 'invalid value')}"
                response = problem_response(422, detail, where) if is_api else render_error(request, 422, detail)
            except StarletteHTTPException as e:
                detail = e.detail if isinstance(e.detail, str) else "error"
                response = (problem_response(e.status_code, detail) if is_api
                            else render_error(request, e.status_code, detail))
            except Exception:  # noqa: BLE001 - a bug: logged, and the user still gets a page
                log.exception("unhandled error on %s %s", request.method, request.url.path)
                response = (problem_response(500, "internal error; the server log has the details") if is_api
                            else render_error(request, 500, "The server hit an error; its log has the details."))
            for k, v in SECURITY_HEADERS.items():
                response.headers.setdefault(k, v)
            if not request.url.path.startswith("/ui/static/"):
                response.headers.setdefault("Cache-Control", "no-store")
            return response

        return wrapped


router = APIRouter(route_class=UiRoute, include_in_schema=False)


def _user(request: Request, session: Session) -> UiUser:
    return ui_session.current_user(request, session)


def get_user(request: Request, session: SessionDep) -> UiUser:
    return _user(request, session)


UserDep = Annotated[UiUser, Depends(get_user)]


def _script_json(data: Any) -> str:
    """JSON to embed in a ``<script type="application/json">``: no ``<`` can end the element."""
    return orjson.dumps(data).decode().replace("<", "\\u003c")


def page(request: Request, name: str, user: UiUser | None, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"user": user, **context})


# -- entry, sign in / out ------------------------------------------------------------------------

@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=307)


@router.get("/ui")
def home() -> RedirectResponse:
    return RedirectResponse("/ui/searches", status_code=303)


def _safe_next(target: str | None) -> str:
    # only our own pages: an open redirect would let a link send a signed-in user anywhere
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/searches"


@router.get("/ui/signin")
def signin_form(request: Request, session: SessionDep, next: str | None = None) -> Response:
    try:
        _user(request, session)
        return RedirectResponse(_safe_next(next), status_code=303)
    except NotSignedIn:
        return page(request, "signin.html", None, next=_safe_next(next), error=None)


async def form_data(request: Request) -> dict[str, str]:
    """A small urlencoded form (the dashboard's own forms post a few short fields). Parsed here
    rather than through python-multipart: nothing else of the service needs it."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise Problem(415, "expected a form (application/x-www-form-urlencoded)")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > 16_384:
            raise Problem(413, "form too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise Problem(400, "malformed form") from None
    return {k: v for k, v in pairs}


FormDep = Annotated[dict[str, str], Depends(form_data)]


@router.post("/ui/signin")
def signin(request: Request, session: SessionDep, form: FormDep) -> Response:
    next = form.get("next", "")
    try:
        _, token = ui_session.sign_in(session, form.get("api_key", "")[:256])
    except SignInError as e:
        # 200 with the form and its error, as form frameworks answer a failed sign-in: a 4xx
        # document is a console error in every browser, and nothing was signed in either way
        return templates.TemplateResponse(request, "signin.html", {"user": None, "next": _safe_next(next),
                                                                   "error": str(e)})
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(COOKIE, token, max_age=int(LIFETIME.total_seconds()), path=COOKIE_PATH, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/ui/signout")
def signout(request: Request, session: SessionDep, user: UserDep, form: FormDep) -> Response:
    if not ui_session.check_csrf(request, user, form.get("csrf", "")):
        raise Problem(403, "this form has expired; reload the page and try again")
    ui_session.sign_out(session, request)
    response = RedirectResponse("/ui/signin?signed_out=1", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


# -- searches ---------------------------------------------------------------------------------


@router.get("/ui/searches")
def searches_page(request: Request, session: SessionDep, user: UserDep, status: SearchStatus | None = None,
                  page_token: Annotated[str | None, Query(max_length=256)] = None) -> HTMLResponse:
    data = views.searches_list(session, user.team, status, page_token)
    has_hardware = bool(views.team_hardware(session, user.team))
    return page(request, "searches.html", user, data=data, status=status, statuses=views.STATUSES,
                has_hardware=has_hardware, active="searches")


@router.get("/ui/api/searches")
def searches_json(session: SessionDep, user: UserDep, status: SearchStatus | None = None) -> Response:
    """What the searches page polls while a search is queued or running."""
    return Response(orjson.dumps(views.searches_list(session, user.team, status, None)),
                    media_type="application/json")


@router.get("/ui/api/searches/{search_id}")
def search_json(search_id: int, session: SessionDep, user: UserDep) -> Response:
    names = {h["id"]: h["name"] for h in views.team_hardware(session, user.team)}
    row = views.search_row(search_out(get_team_search(session, user.team, search_id)).model_dump(mode="json"), names)
    return Response(orjson.dumps(row), media_type="application/json")


@router.post("/ui/searches/{search_id}/cancel")
def cancel(request: Request, search_id: int, session: SessionDep, user: UserDep, form: FormDep) -> Response:
    back = form.get("back", "")
    if not ui_session.check_csrf(request, user, form.get("csrf", "")):
        raise Problem(403, "this form has expired; reload the page and try again")
    cancel_search(search_id, user.team, session)
    return RedirectResponse(_safe_next(back) if back else f"/ui/searches/{search_id}", status_code=303)


@router.get("/ui/searches/{search_id}")
def search_detail(request: Request, search_id: int, session: SessionDep, user: UserDep) -> HTMLResponse:
    with request.app.state.read_engine.connect() as conn:
        data = views.search_page(conn, session, user.team, search_id)
    chart = {"targets": data["targets"], "candidates": data["candidates"], "search_id": search_id}
    return page(request, "search.html", user, data=data, chart=_script_json(chart), active="searches")


@router.get("/ui/searches/{search_id}/results.{fmt}")
def download_results(request: Request, search_id: int, fmt: Literal["csv", "json"], session: SessionDep,
                     user: UserDep) -> Response:
    with request.app.state.read_engine.connect() as conn:
        rows = views.results_rows(conn, user.team, search_id)
    name = f"search-{search_id}-ranked.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "json":
        return Response(orjson.dumps(rows), media_type="application/json", headers=headers)
    hw_ids = sorted({h for r in rows for h in r["latency_ms"]}, key=int)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "architecture_id", "lighttrack", "score", "score_se",
                *[f"latency_ms_{h}" for h in hw_ids], "flops", "params", "feasible"])
    for r in rows:
        w.writerow([r["rank"], r["architecture_id"], r["lighttrack"], r["score"], r["score_se"],
                    *[r["latency_ms"].get(h) for h in hw_ids], r["flops"], r["params"], r["feasible"]])
    return Response(buf.getvalue(), media_type="text/csv", headers=headers)


# -- architectures ------------------------------------------------------------------------------

@router.get("/ui/architectures/{arch_id}")
def architecture_detail(request: Request, arch_id: str, session: SessionDep, user: UserDep, hardware_id: int | None = None,
                        search: int | None = None) -> HTMLResponse:
    data = views.architecture_page(session, user.team, arch_id, hardware_id)
    chart = {"breakdown": data["breakdown"]}
    return page(request, "architecture.html", user, data=data, chart=_script_json(chart),
                from_search=search, active="searches")


@router.get("/ui/architectures/{arch_id}/onnx")
async def architecture_onnx(request: Request, arch_id: str, session: SessionDep, user: UserDep,
                            supernet_id: int) -> Response:
    # torch export for seconds: on the heavy pool, exactly as GET /v1/architectures/{id}/export
    return await run_heavy(request, _export, session, user.team, arch_id, "onnx", supernet_id)


@router.get("/ui/export")
def export_choice(arch: Annotated[str, Query(min_length=1, max_length=64)], supernet_id: int,
                  user: UserDep) -> RedirectResponse:
    """The search page's 'ONNX of a chosen point' form (a GET form cannot put the id in the path)."""
    return RedirectResponse(f"/ui/architectures/{quote(arch, safe='')}/onnx?supernet_id={supernet_id}",
                            status_code=303)


# -- hardware -----------------------------------------------------------------------------------

@router.get("/ui/hardware")
def hardware_list(request: Request, session: SessionDep, user: UserDep) -> HTMLResponse:
    return page(request, "hardware.html", user, hardware=views.hardware_page(session, user.team),
                active="hardware")


@router.get("/ui/hardware/{hardware_id}/lut.csv")
def hardware_lut(hardware_id: int, session: SessionDep, user: UserDep) -> Response:
    return export_latency_table(hardware_id, user.team, session)


@router.get("/ui/api/hardware")
def hardware_json(session: SessionDep, user: UserDep) -> Response:
    """What the hardware page polls while agents measure: coverage, leases, agents' last contact."""
    items = [{"id": h["id"], "coverage": h["coverage"], "leased": h["leased"],
              "agents": [{"name": a["name"], "last_seen": views.ago(a["last_seen_at"])} for a in h["agents"]]}
             for h in views.hardware_page(session, user.team)]
    return Response(orjson.dumps({"items": items}), media_type="application/json")


# -- assets and unknown pages -----------------------------------------------------------------------

_GZIPPED: dict[str, bytes] = {}


@router.get("/ui/static/{name}")
def static(request: Request, name: str) -> Response:
    found = STATIC.get(name)
    if found is None:
        raise Problem(404, f"no asset {name!r}")
    path, media = found
    headers = {"Cache-Control": "public, max-age=3600", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        # plotly.js is 4.8 MB, 1.4 MB gzipped: compressed once per process, kept in memory
        body = _GZIPPED.get(name)
        if body is None:
            body = _GZIPPED[name] = gzip.compress(path.read_bytes(), compresslevel=6, mtime=0)
        return Response(body, media_type=media, headers={**headers, "Content-Encoding": "gzip"})
    return FileResponse(path, media_type=media, headers=headers)


@router.api_route("/ui/{rest:path}", methods=["GET", "POST"])
def unknown_page(rest: str) -> Response:
    if rest == "":  # /ui/
        return RedirectResponse("/ui/searches", status_code=303)
    raise Problem(404, "there is no such page")
