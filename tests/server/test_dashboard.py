"""The web dashboard (``/ui``) against a real ``lutnas serve`` on loopback.

HTTP checks (both databases): sign-in with team keys only, the session cookie's attributes,
sign-out ending the session, CSRF on cancel and sign-out, one team never seeing another's
pages, and bad input answered with a friendly HTML page (never a 500 or a server path).

Browser checks (SQLite; headless Chromium driven by Playwright): a finished search's front with
the right number of points, hover and click on a point, its architecture page, coverage on the
hardware page, cancel from the list, sign out and be refused; no console error on any page; a
wrong key refused. Screenshots go to ``$LUTNAS_TEST_OUTPUT/dashboard`` (default
``test-output/dashboard`` in the repository).

The latency tables are filled through the agent protocol (lease, upload) with synthetic timings,
and a real ``lutnas worker`` runs a tiny search (population 4, one generation, 4 validation
pairs on the untrained test supernet): the pages need a finished search, not real figures.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import signal
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import BIN, Service, agent_token, register_hardware, wait_for

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("LUTNAS_TEST_OUTPUT", ROOT / "test-output")) / "dashboard"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# -- helpers ------------------------------------------------------------------------------------

def key_of(c: httpx.Client) -> str:
    return c.headers["Authorization"].split(" ", 1)[1]


def synthetic_ms(key: str) -> float:
    """A fixed, plausible median per unit (the empty model's below every real unit's)."""
    if key == "overhead:empty":
        return 0.02
    return 0.05 + int(hashlib.sha256(key.encode()).hexdigest()[:6], 16) / 0xFFFFFF


def upload(url: str, token: str, lease_id: str, keys: list[str]) -> int:
    """Upload results for ``keys`` as an agent does (synthetic timings); how many were stored."""
    results = [{"unit_key": k, "median_ms": (m := synthetic_ms(k)), "p10_ms": m * 0.95, "p90_ms": m * 1.05,
                "iqr_ms": m * 0.05, "count": 20, "env": {"note": "synthetic (tests)"}} for k in keys]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as a:
        r = a.post("/v1/agent/results", json={"lease_id": lease_id, "results": results})
    assert r.status_code == 200, r.text
    return r.json()["stored"]


def measure(url: str, token: str, share: float = 1.0) -> tuple[int, str, list[str]]:
    """Lease every unit of a target and upload ``share`` of them: (stored, lease id, units left)."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as a:
        lease = a.post("/v1/agent/leases", json={"max_units": 256}).json()
    keys = [u["key"] for u in lease["units"]]
    n = max(1, round(len(keys) * share))
    return upload(url, token, lease["lease_id"], keys[:n]), lease["lease_id"], keys[n:]


def ui_client(service: Service, key: str | None = None) -> httpx.Client:
    """A browser-like client; signed in when ``key`` is given."""
    c = httpx.Client(base_url=service.url, timeout=60)
    if key is not None:
        r = c.post("/ui/signin", data={"api_key": key}, follow_redirects=False)
        assert r.status_code == 303, r.text
    return c


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def assert_friendly(r: httpx.Response, status: int, service: Service) -> None:
    """An HTML error page with the status, no traceback and no server path."""
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("text/html")
    body = r.text
    assert "Traceback" not in body and 'role="alert"' in body
    assert not [p for p in service.server_paths() if p in body]


# -- HTTP: sign-in, sessions, CSRF, isolation, bad input (SQLite and PostgreSQL) -----------------

def test_signin_session_csrf_isolation(service: Service, artifacts: dict[str, Path]) -> None:
    a, b = service.team("ui-http-a"), service.team("ui-http-b")
    hid = register_hardware(a, "a-cpu")["id"]
    token = agent_token(a, hid)
    sn = a.post("/v1/supernets", json={"name": "tiny", "checkpoint_path": str(artifacts["checkpoint"]),
                                        "data_path": str(artifacts["data"])}).json()
    # no worker runs here: it stays queued, so it can be cancelled from the page
    sid = a.post("/v1/searches", json={"supernet_id": sn["id"], "hardware_ids": [hid], "population": 4,
                                        "generations": 1}).json()["id"]

    anon = ui_client(service)
    assert anon.get("/", follow_redirects=False).headers["location"] == "/ui"
    r = anon.get("/ui/searches", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/signin")
    for wrong in (token, "lnt_" + "x" * 43, "test-admin-token", ""):  # agent token, unknown key, admin token
        r = anon.post("/ui/signin", data={"api_key": wrong}, follow_redirects=False)
        assert r.status_code == 200 and "set-cookie" not in r.headers, wrong  # the form again, with why
        assert 'role="alert"' in r.text
    assert anon.post("/ui/signin", content=b"{}", headers={"content-type": "application/json"}).status_code == 415

    ua = ui_client(service)
    r = ua.post("/ui/signin", data={"api_key": key_of(a), "next": "https://evil.example/"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/searches"  # no open redirect
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    page = ua.get("/ui/searches")
    assert page.status_code == 200 and f'data-search="{sid}"' in page.text
    assert page.headers["x-frame-options"] == "DENY" and "script-src 'self'" in page.headers["content-security-policy"]
    csrf = csrf_of(page.text)

    # CSRF: a cancel without the form's token, or from another origin, changes nothing
    assert_friendly(ua.post(f"/ui/searches/{sid}/cancel", data={"csrf": "0" * 32}), 403, service)
    assert_friendly(ua.post(f"/ui/searches/{sid}/cancel", data={"csrf": csrf},
                            headers={"origin": "https://evil.example"}), 403, service)
    assert a.get(f"/v1/searches/{sid}").json()["status"] == "queued"

    # another team sees none of it, on pages and on the JSON the pages poll
    ub = ui_client(service, key_of(b))
    assert f'data-search="{sid}"' not in ub.get("/ui/searches").text
    assert_friendly(ub.get(f"/ui/searches/{sid}"), 404, service)
    assert ub.get(f"/ui/api/searches/{sid}").status_code == 404
    assert_friendly(ub.post(f"/ui/searches/{sid}/cancel", data={"csrf": csrf_of(ub.get("/ui/searches").text)}),
                    404, service)
    assert_friendly(ub.get("/ui/architectures/0123456789abcdef"), 404, service)

    # bad input: friendly pages with 4xx, JSON endpoints keep problem+json
    assert_friendly(ua.get("/ui/searches/not-a-number"), 422, service)
    assert_friendly(ua.get("/ui/searches?status=exploded"), 422, service)
    assert_friendly(ua.get("/ui/architectures/..%2F..%2Fetc%2Fpasswd"), 404, service)
    assert_friendly(ua.get("/ui/architectures/zz"), 404, service)
    assert_friendly(ua.get("/ui/no/such/page"), 404, service)
    assert_friendly(ua.get("/ui/export?arch=0123456789abcdef&supernet_id=x"), 422, service)
    assert ua.get("/ui/static/../../server/app.py").status_code == 404
    r = ua.get("/ui/api/searches?status=nope")
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    # the REST list filters by status with the same query
    assert [s["id"] for s in a.get("/v1/searches", params={"status": "queued"}).json()["items"]] == [sid]
    assert a.get("/v1/searches", params={"status": "succeeded"}).json()["items"] == []
    assert a.get("/v1/searches", params={"status": "nope"}).status_code == 422

    # cancel with the token works
    r = ua.post(f"/ui/searches/{sid}/cancel", data={"csrf": csrf, "back": "/ui/searches"}, follow_redirects=False)
    assert r.status_code == 303 and a.get(f"/v1/searches/{sid}").json()["status"] == "cancelled"

    # sign out ends the session: the old cookie opens nothing any more
    old = ua.cookies.get("lutnas_session")
    assert_friendly(ua.post("/ui/signout", data={"csrf": "bad"}), 403, service)
    r = ua.post("/ui/signout", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and "max-age=0" in r.headers["set-cookie"].lower()
    replay = httpx.Client(base_url=service.url, cookies={"lutnas_session": old})
    r = replay.get("/ui/searches", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/signin")
    assert replay.get("/ui/api/searches").status_code == 401
    for c in (anon, ua, ub, replay, a, b):
        c.close()


# -- browser ------------------------------------------------------------------------------------

def _chromium() -> str | None:
    return os.environ.get("LUTNAS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Finished:
    service: Service
    key: str
    agent_tokens: list[str]
    search: dict[str, Any]
    hardware: list[dict[str, Any]]  # two fully measured targets, then one measured in part
    partial: int  # units measured on the third
    leftover: tuple[str, list[str]]  # its lease and the units still to upload
    fronts: dict[int, dict[str, Any]]  # REST pareto payload per searched target
    results: list[dict[str, Any]]


# The browser checks run on SQLite only (the HTTP checks above cover PostgreSQL): a second
# finished search would double their time for no page the other database could render differently.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def finished(service: Service, artifacts: dict[str, Path]) -> Iterator[Finished]:
    if _chromium() is None:
        pytest.skip("no Chromium to drive (apt-get install chromium, or set LUTNAS_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    c = service.team("ui-browser")
    hws = [register_hardware(c, name, **body) for name, body in (
        ("pixel7-cpu", {"runtime": {"threads": 4}}), ("jetson-nano", {"kind": "jetson"}), ("edge-tpu", {}))]
    tokens = [agent_token(c, h["id"], f"{h['name']}-agent") for h in hws]
    for h, t in zip(hws[:2], tokens[:2], strict=True):
        assert measure(service.url, t)[0] == h["coverage"]["total"]
    partial, lease_id, left = measure(service.url, tokens[2], share=0.4)
    sn = c.post("/v1/supernets", json={"name": "tiny", "checkpoint_path": str(artifacts["checkpoint"]),
                                        "data_path": str(artifacts["data"])}).json()
    search = c.post("/v1/searches", json={"supernet_id": sn["id"], "hardware_ids": [hws[0]["id"], hws[1]["id"]],
                                          "population": 4, "generations": 1, "seed": 3}).json()
    worker = service.spawn([str(BIN / "lutnas"), "worker"], "ui-worker", LUTNAS_SCORER_PAIRS="4",
                           LUTNAS_SCORER_BN_BATCHES="0", LUTNAS_POLL_SECONDS="0.2")

    def done() -> dict[str, Any] | None:
        s = c.get(f"/v1/searches/{search['id']}").json()
        return s if s["status"] in ("succeeded", "failed", "cancelled") else None

    try:
        search = wait_for(done, 300, 0.3, "the search to finish")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    assert search["status"] == "succeeded", search["error"]
    fronts = {h["id"]: c.get(f"/v1/searches/{search['id']}/pareto", params={"hardware_id": h["id"]}).json()
              for h in hws[:2]}
    results = c.get(f"/v1/searches/{search['id']}/results", params={"page_size": 1000}).json()["items"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield Finished(service, key_of(c), tokens, search, hws, partial, (lease_id, left), fronts, results)
    c.close()


@pytest.fixture(scope="module")
def browser(finished: Finished) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) at 1280x800 that fails the test on any console error."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(f"{pg.url}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(f"{pg.url}: {e}"))
    yield pg
    context.close()
    assert errors == [], errors


def sign_in(page: Any, url: str, key: str) -> None:
    page.goto(url + "/ui/searches")
    assert "/ui/signin" in page.url  # not signed in yet: the form, and back here after
    page.get_by_label("Team API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/searches")


@SQLITE_ONLY
def test_wrong_key_is_refused(finished: Finished, page: Any) -> None:
    url = finished.service.url
    page.goto(url + "/ui/signin")
    for wrong in ("lnt_not-a-key-this-server-issued", finished.agent_tokens[0]):
        page.get_by_label("Team API key").fill(wrong)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("#signin-error")
        assert "not a team API key" in page.inner_text("#signin-error")
        assert "/ui/signin" in page.url
    page.screenshot(path=str(SHOTS / "signin-refused.png"))
    page.goto(url + "/ui/hardware")
    assert "/ui/signin" in page.url  # still nothing without a session


@SQLITE_ONLY
def test_front_architecture_hardware_signout(finished: Finished, page: Any) -> None:
    url, sid = finished.service.url, finished.search["id"]
    sign_in(page, url, finished.key)
    row = page.locator(f'tr[data-search="{sid}"]')
    assert row.locator("[data-field=status]").inner_text() == "succeeded"
    assert "pixel7-cpu, jetson-nano" in row.inner_text()
    page.get_by_label("Status").select_option("failed")  # the filter submits on change
    page.wait_for_url(re.compile(r".*/ui/searches\?status=failed$"))
    assert "No failed searches" in page.inner_text("main")
    page.screenshot(path=str(SHOTS / "searches-filtered.png"))

    # the search: front on the first target, then the other through the switch
    page.goto(f"{url}/ui/searches/{sid}")
    page.wait_for_selector("#front-plot[data-ready]")
    page.screenshot(path=str(SHOTS / "search.png"), full_page=True)
    first, second = finished.hardware[0]["id"], finished.hardware[1]["id"]
    traces = page.evaluate("() => document.getElementById('front-plot').data.map(t => "
                           "({role: t.meta && t.meta.role, n: t.x.length, hw: t.meta && t.meta.hardware_id}))")
    roles = {t["role"]: t for t in traces}
    assert roles["front"]["n"] == len(finished.fronts[first]["points"]) >= 1
    assert roles["candidates"]["n"] == len(finished.results)  # every evaluated candidate, faded
    assert ("reference" in roles) == (finished.fronts[first]["reference"] is not None)
    hv = page.locator('#hypervolumes li[data-target="0"] .hv-value').inner_text()
    assert float(hv) == pytest.approx(finished.fronts[first]["hypervolume"], rel=1e-3)  # normalised, as REST
    area = finished.fronts[first]["hypervolume_score_ms"]
    assert f"(normalised; {area:.4g} score·ms;" in page.locator('#hypervolumes li[data-target="0"]').inner_text()
    page.get_by_label("Hardware target").select_option(label="jetson-nano")
    page.wait_for_selector("#front-plot[data-ready]")
    front = page.evaluate("() => document.getElementById('front-plot').data.find(t => t.meta.role === 'front')")
    assert front["meta"]["hardware_id"] == second and len(front["x"]) == len(finished.fronts[second]["points"])
    page.get_by_label("Hardware target").select_option(label="all targets overlaid")
    page.wait_for_selector("#front-plot[data-ready]")
    overlaid = page.evaluate("() => document.getElementById('front-plot').data"
                             ".filter(t => t.meta.role === 'front').map(t => t.meta.hardware_id)")
    assert overlaid == [first, second]
    page.get_by_label("Hardware target").select_option(label="pixel7-cpu")
    page.wait_for_selector("#front-plot[data-ready]")

    # hover the fastest front point: its architecture, score ± se, latency, MACs and params
    point = finished.fronts[first]["points"][0]
    xy = page.evaluate("""() => {
        const gd = document.getElementById('front-plot');
        const i = gd.data.findIndex(t => t.meta.role === 'front');
        const el = gd.querySelectorAll('.scatterlayer .trace')[i].querySelector('.points path');
        const r = el.getBoundingClientRect();
        return [r.x + r.width / 2, r.y + r.height / 2]; }""")
    page.mouse.move(xy[0] - 30, xy[1] - 30)
    page.mouse.move(*xy, steps=4)
    hover = page.locator(".hoverlayer .hovertext").first
    hover.wait_for()
    text = hover.text_content() or ""  # SVG: no inner_text
    assert point["lighttrack"] in text and f"{point['score']:.4f}" in text and "MACs" in text and "params" in text
    if point["score_se"] is not None:
        assert f"± {point['score_se']:.4f}" in text
    page.screenshot(path=str(SHOTS / "search-hover.png"))
    page.mouse.click(*xy)
    page.wait_for_url(re.compile(re.escape(f"/ui/architectures/{point['architecture_id']}?search={sid}&hardware_id={first}")))

    # the architecture page: string (and its copy button), diagram, latency on every target, breakdown
    assert page.locator("#lighttrack").input_value() == point["lighttrack"]
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy").click()
    page.wait_for_function("() => document.getElementById('copy-status').textContent === 'Copied.'")
    assert page.evaluate("() => navigator.clipboard.readText()") == point["lighttrack"]
    assert page.locator(".diagram .stage").count() == 4 and page.locator(".diagram .tower").count() == 2
    if point["score_se"] is not None:  # its score in this search, with the standard error
        assert f"{point['score']:.4f} ± {point['score_se']:.4f}" in page.inner_text(".facts-inline")
    rows = page.locator("#latencies tbody tr")
    assert rows.count() == 3
    assert f"{point['latency_ms']:.2f} ms" in rows.nth(0).inner_text()
    assert "not measured yet" in rows.nth(2).inner_text()  # the partly measured target says why
    page.wait_for_selector("#breakdown-plot[data-ready]")
    bars = page.evaluate("() => document.getElementById('breakdown-plot').data[0].x.length")
    assert bars >= 10
    page.screenshot(path=str(SHOTS / "architecture.png"), full_page=True)

    # the keyboard way to a point: a front table's link, focused and opened with Enter
    page.go_back()
    page.wait_for_selector("#front-plot[data-ready]")
    link = page.locator('.front-table[data-target="0"] tbody a').first
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/ui/architectures/[0-9a-f]{16}\?search="))

    # hardware: runtime, coverage (full, full, partial), agents with their last contact
    page.get_by_role("link", name="Hardware").click()
    page.wait_for_url("**/ui/hardware")
    for h, measured in zip(finished.hardware, (finished.hardware[0]["coverage"]["total"],
                                               finished.hardware[1]["coverage"]["total"], finished.partial),
                           strict=True):
        card = page.locator(f'[data-hardware="{h["id"]}"]')
        assert f"{measured} / {h['coverage']['total']} units measured" in card.inner_text()
        assert "last heartbeat" in card.inner_text() and "never" not in card.inner_text()
    third = finished.hardware[2]
    bar = page.locator(f'[data-hardware="{third["id"]}"] .bar')
    assert int(bar.get_attribute("aria-valuenow")) == round(100 * finished.partial / third["coverage"]["total"])
    page.screenshot(path=str(SHOTS / "hardware.png"), full_page=True)
    # the coverage bar moves while an agent works, without a reload
    lease_id, left = finished.leftover
    more = upload(url, finished.agent_tokens[2], lease_id, left[:7])
    now = finished.partial + more
    page.wait_for_function(f"() => document.querySelector('[data-hardware=\"{third['id']}\"] .bar')"
                           f".getAttribute('aria-valuenow') === '{round(100 * now / third['coverage']['total'])}'",
                           timeout=15_000)
    assert f"{now} / {third['coverage']['total']} units measured" in page.locator(f'[data-hardware="{third["id"]}"]').inner_text()

    # sign out, and be refused
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/ui/signin\?signed_out=1$"))
    page.goto(f"{url}/ui/searches/{sid}")
    assert "/ui/signin" in page.url and page.locator("#api_key").count() == 1
    page.screenshot(path=str(SHOTS / "signed-out.png"))


@SQLITE_ONLY
def test_live_status_and_cancel(finished: Finished, page: Any) -> None:
    """Queued searches (no worker runs now): one cancelled through the API shows it in the open
    list without a reload; the other is cancelled from its button."""
    with httpx.Client(base_url=finished.service.url, headers={"Authorization": f"Bearer {finished.key}"}) as c:
        body = {"supernet_id": finished.search["request"]["supernet_id"], "hardware_ids": [finished.hardware[2]["id"]],
                "population": 4, "generations": 1}
        elsewhere, queued = (c.post("/v1/searches", json=body).json()["id"] for _ in range(2))
        sign_in(page, finished.service.url, finished.key)
        assert page.locator(f'tr[data-search="{elsewhere}"] [data-field=status]').inner_text() == "queued"
        assert c.post(f"/v1/searches/{elsewhere}/cancel").json()["status"] == "cancelled"
        page.wait_for_function(f"() => document.querySelector('tr[data-search=\"{elsewhere}\"] [data-field=status]')"
                               ".textContent === 'cancelled'", timeout=15_000)
        assert page.locator(f'tr[data-search="{elsewhere}"] form[data-cancel]').count() == 0  # nothing to cancel
        row = page.locator(f'tr[data-search="{queued}"]')
        assert row.locator("[data-field=status]").inner_text() == "queued"
        row.get_by_role("button", name=f"Cancel search {queued}").click()
        page.wait_for_url("**/ui/searches")
        assert page.locator(f'tr[data-search="{queued}"] [data-field=status]').inner_text() == "cancelled"
        assert c.get(f"/v1/searches/{queued}").json()["status"] == "cancelled"


@SQLITE_ONLY
def test_downloads(finished: Finished) -> None:
    """Ranked CSV/JSON as the REST results, the LUT as CSV, and a chosen point's ONNX export."""
    sid = finished.search["id"]
    ui = ui_client(finished.service, finished.key)
    try:
        as_json = ui.get(f"/ui/searches/{sid}/results.json")
        assert as_json.status_code == 200 and as_json.json() == finished.results
        lines = ui.get(f"/ui/searches/{sid}/results.csv").text.splitlines()
        first, second = (h["id"] for h in finished.hardware[:2])
        assert lines[0].startswith(f"rank,architecture_id,lighttrack,score,score_se,latency_ms_{first},latency_ms_{second}")
        assert len(lines) == 1 + len(finished.results)
        lut = ui.get(f"/ui/hardware/{first}/lut.csv").text.splitlines()
        assert lut[0].startswith("unit_key,median_ms") and len(lut) == 1 + finished.hardware[0]["coverage"]["total"]
        point = finished.fronts[first]["points"][0]
        r = ui.get("/ui/export", params={"arch": point["architecture_id"],
                                         "supernet_id": finished.search["request"]["supernet_id"]},
                   follow_redirects=True)
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
            names = zf.namelist()
            assert "architecture.txt" in names and any(n.endswith(".onnx") for n in names)
            assert zf.read("architecture.txt").decode().strip() == point["lighttrack"]
    finally:
        ui.close()
