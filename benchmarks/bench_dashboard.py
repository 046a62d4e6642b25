"""Dashboard page render time with a search of 5,000 evaluated candidates.

Starts a real ``lutnas serve --no-worker`` (uvicorn), stores one finished search with ``--n``
evaluated architectures on two hardware targets directly in the database (bulk insert, as
bench_api.py does; scores with standard errors, fronts, LightTrack-Mobile's point) and a full
latency table for each target, signs in through the dashboard's form, then prints:

* server time per page (request sent to the last byte of HTML), median and max of ``--repeat``;
* in headless Chromium (when one is installed): time from navigation to the page fully drawn
  (``load``; for chart pages, until plotly has drawn every trace), median of ``--repeat``.

    python benchmarks/bench_dashboard.py [--n 5000] [--repeat 7] [--databases sqlite,postgresql] [--screenshots DIR]

PostgreSQL: a throwaway database on $LUTNAS_BENCH_PG (default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres), dropped afterwards.

``--screenshots`` saves a PNG of each page at 1280x800 (docs/dashboard.md uses them). Writes what
it prints to benchmarks/results/bench_dashboard/DATE.txt (and the run's variant to DATE.json).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness  # same folder: where results are written
import httpx
import numpy as np
from bench_api import bench_database  # same folder: a throwaway SQLite or PostgreSQL database per run
from sqlalchemy import insert, select, update

from latency_tables.calibrate import fit_calibration
from latency_tables.db import LatencyEntry, LatencyTable
from latency_tables.predict import LatencyPredictor
from search.pareto import front_2d
from server.db import create_engine_for
from server.measurements.workunits import OVERHEAD_KEY
from server.migrate import upgrade
from server.models import (
    ArchitectureRow,
    FrontPoint,
    Hardware,
    LatencyCache,
    Search,
    SearchResult,
    Supernet,
    WorkUnit,
)
from tracking.space import SearchSpace, lighttrack_mobile, sample_many

ADMIN = "bench-admin-token"  # this benchmark server's only
PG = os.environ.get("LUTNAS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium() -> str | None:
    return os.environ.get("LUTNAS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def fill(url: str, team_id: int, hw_ids: list[int], n: int, seed: int = 0) -> int:
    """A full LUT per target and one succeeded search over ``hw_ids`` with ``n`` results."""
    engine = create_engine_for(url)
    rng = np.random.default_rng(seed)
    archs = sample_many(n, seed)
    ids = [a.canonical_id() for a in archs]
    strings = {cid: a.to_string() for cid, a in zip(ids, archs, strict=True)}
    n = len(ids)
    se = rng.uniform(0.005, 0.03, n)
    macs = rng.integers(200_000_000, 800_000_000, n)
    params = rng.integers(1_000_000, 4_000_000, n)
    mobile = lighttrack_mobile()
    lat: dict[int, np.ndarray] = {}
    mobile_ms: dict[str, float] = {}
    with engine.begin() as conn:
        for k, h in enumerate(hw_ids):  # every unit measured (synthetic medians), as after an agent's full pass
            table_id = conn.execute(select(Hardware.table_id).where(Hardware.id == h)).scalar_one()
            keys = list(conn.execute(select(WorkUnit.unit_key).where(WorkUnit.hardware_id == h)).scalars())
            # the empty model's time (per-run overhead) is below every real unit's
            medians = {key: 0.03 if key == OVERHEAD_KEY else float(x) * (1 + 1.5 * k)
                       for key, x in zip(keys, rng.uniform(0.05, 1.5, len(keys)), strict=True)}
            conn.execute(insert(LatencyEntry), [
                {"table_id": table_id, "unit_key": key, "median_ms": m, "p10_ms": m * 0.95, "p90_ms": m * 1.05,
                 "iqr_ms": m * 0.05, "count": 50, "env": {}} for key, m in medians.items()])
            conn.execute(update(WorkUnit).where(WorkUnit.hardware_id == h).values(done=True))
            overhead = medians.pop(OVERHEAD_KEY)
            predictor = LatencyPredictor(medians, SearchSpace.paper(), overhead_ms=overhead)
            calibration = None
            if k == 0:
                # a validated first target (its fidelity figures on the hardware page): the real
                # calibration fit over 12 sampled subnets "measured" at the unit sum plus 8% and noise
                sampled = sample_many(12, seed + 1, SearchSpace.paper())
                measured = [predictor.raw_sum(a) * 1.08 * float(rng.normal(1.0, 0.03)) for a in sampled]
                calibration = fit_calibration(predictor, sampled, measured)
                predictor = predictor.with_calibration(calibration)
            conn.execute(update(LatencyTable).where(LatencyTable.id == table_id).values(
                overhead_ms=overhead, calibration=calibration))
            # the search's latencies are the table's own predictions, as the worker stores them
            lat[h] = np.asarray(predictor.predict_batch(archs), dtype=float)
            mobile_ms[str(h)] = float(predictor.predict(mobile))
        # scores that trade off against latency (slower networks score higher, with noise)
        x = (lat[hw_ids[0]] - lat[hw_ids[0]].min()) / np.ptp(lat[hw_ids[0]])
        scores = np.clip(0.32 + 0.3 * np.sqrt(x) + rng.normal(0.0, 0.045, n), 0.05, 0.95)
        sn = conn.execute(insert(Supernet).values(team_id=team_id, name="bench", checkpoint_path="-", data_path="-",
                                                  space={"output_stages": [2, 3]}).returning(Supernet.id)).scalar_one()
        ref = {"name": "LightTrack-Mobile", "canonical_id": mobile.canonical_id(), "arch": mobile.to_string(),
               "score": 0.55, "score_se": 0.012, "latency_ms": mobile_ms}
        sid = conn.execute(insert(Search).values(
            team_id=team_id, supernet_id=sn, status="succeeded",
            request={"supernet_id": sn, "hardware_ids": hw_ids, "objective": "pareto", "population": 500,
                     "generations": 10, "seed": 0},
            progress={"generation": 10, "generations": 10, "evaluated": n, "fraction": 1.0},
            summary={"reference_ms": {str(h): float(lat[h].max()) * 1.1 for h in hw_ids}, "reference_arch": ref}
        ).returning(Search.id)).scalar_one()
        rows = [{"id": k, "lighttrack": v, "flops": int(macs[i]), "params": int(params[i])}
                for i, (k, v) in enumerate(strings.items())]
        rows.append({"id": mobile.canonical_id(), "lighttrack": mobile.to_string(), "flops": 530_000_000,
                     "params": 1_970_000})
        conn.execute(insert(ArchitectureRow), rows)
        order = np.argsort(-scores, kind="stable")
        conn.execute(insert(SearchResult), [
            {"search_id": sid, "rank": r + 1, "arch_id": ids[j], "score": float(scores[j]), "score_se": float(se[j]),
             "latency_ms": {str(h): float(lat[h][j]) for h in hw_ids}, "feasible": True}
            for r, j in enumerate(order)])
        for h in hw_ids:
            conn.execute(insert(LatencyCache), [{"hardware_id": h, "arch_id": ids[j], "latency_ms": float(lat[h][j])}
                                                for j in range(n)])
            front = front_2d([(ids[j], float(scores[j]), float(lat[h][j])) for j in range(n)])
            se_of = dict(zip(ids, se, strict=True))
            conn.execute(insert(FrontPoint), [{"search_id": sid, "hardware_id": h, "arch_id": a, "score": s,
                                               "score_se": float(se_of[a]), "latency_ms": m} for a, s, m in front])
        # and two searches still in the queue / under way, as a list usually shows
        for status, fraction in (("running", 0.4), ("queued", 0.0)):
            conn.execute(insert(Search).values(
                team_id=team_id, supernet_id=sn, status=status,
                request={"supernet_id": sn, "hardware_ids": hw_ids[:1], "objective": "budget", "budget_ms": 12.0,
                         "budget_hardware_id": hw_ids[0], "population": 64, "generations": 20, "seed": 1},
                progress={"generation": int(20 * fraction), "generations": 20, "evaluated": int(1280 * fraction),
                          "fraction": fraction}, summary={}))
    engine.dispose()
    return sid


def server_times(client: httpx.Client, path: str, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(path)
        r.read()
        out.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return out


def browser_times(base: str, key: str, pages: dict[str, str], repeat: int, shots: Path | None) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/ui/signin")
        if shots:
            page.screenshot(path=str(shots / "signin.png"))
        page.fill("#api_key", key)
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/searches")
        for label, path in pages.items():
            times = []
            for _ in range(repeat + 1):
                t0 = time.perf_counter()
                page.goto(base + path, wait_until="load")
                for sel in ("#front-plot", "#breakdown-plot"):
                    if page.locator(sel).count():
                        page.wait_for_selector(f"{sel}[data-ready]", timeout=30_000)
                times.append((time.perf_counter() - t0) * 1000)
            out[label] = times
            if shots:
                page.screenshot(path=str(shots / f"{label}.png"), full_page=label != "search")
        if shots:  # the same pages on a phone-sized window
            narrow = browser.new_page(viewport={"width": 390, "height": 844})
            narrow.context.add_cookies(page.context.cookies())
            narrow.goto(base + pages["search"])
            narrow.wait_for_selector("#front-plot[data-ready]")
            narrow.screenshot(path=str(shots / "search-narrow.png"))
        browser.close()
    if errors:
        print("console errors:", *errors, sep="\n  ")
    return out


def bench(label: str, url: str, n: int, repeat: int, shots: Path | None) -> None:
    upgrade_engine = create_engine_for(url)
    upgrade(upgrade_engine)
    upgrade_engine.dispose()
    data_dir = Path(tempfile.mkdtemp(prefix="lutnas-bench-ui-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUTNAS_")}
    env.update({"LUTNAS_DATABASE_URL": url, "LUTNAS_ADMIN_TOKEN": ADMIN, "LUTNAS_DATA_DIR": str(data_dir)})
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen([str(Path(sys.executable).parent / "lutnas"), "serve", "--no-worker", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}) as admin:
            key = admin.post("/v1/teams", json={"name": f"bench-{secrets.token_hex(3)}"}).json()["api_key"]
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        hws = [api.post("/v1/hardware", json={"name": name, "kind": kind, "runtime": {"threads": t}}).json()
               for name, kind, t in (("pixel7-cpu", "cpu", 4), ("jetson-nano", "jetson", 1))]
        api.post(f"/v1/hardware/{hws[0]['id']}/agent-tokens", json={"name": "pixel7-agent"})
        engine = create_engine_for(url)
        with engine.connect() as conn:
            team_id = conn.execute(select(Hardware.team_id).where(Hardware.id == hws[0]["id"])).scalar_one()
        engine.dispose()
        t0 = time.perf_counter()
        sid = fill(url, team_id, [h["id"] for h in hws], n)
        print(f"[{label}] stored a search with {n} evaluated candidates on 2 targets in {time.perf_counter() - t0:.1f} s")
        arch = api.get(f"/v1/searches/{sid}/pareto", params={"hardware_id": hws[0]["id"]}).json()["points"][0]
        api.close()
        pages = {"searches": "/ui/searches", "search": f"/ui/searches/{sid}",
                 "architecture": f"/ui/architectures/{arch['architecture_id']}?search={sid}",
                 "hardware": "/ui/hardware"}
        ui = httpx.Client(base_url=base, timeout=60)
        r = ui.post("/ui/signin", data={"api_key": key}, follow_redirects=False)
        assert r.status_code == 303, r.text
        print(f"[{label}] server time per page: request to last byte of HTML (ms, {repeat} requests after a warm-up)")
        for name, path in pages.items():
            size = len(ui.get(path).content)
            ms = server_times(ui, path, repeat)
            print(f"[{label}]   {name:13s} median {statistics.median(ms):7.1f}  max {max(ms):7.1f}  "
                  f"({size / 1024:.0f} KiB HTML)")
        ui.close()
        if chromium() is None:
            print(f"[{label}] browser: no Chromium found (apt-get install chromium); skipped")
            return
        if shots:
            shots.mkdir(parents=True, exist_ok=True)
        times = browser_times(base, key, pages, repeat, shots)
        print(f"[{label}] headless Chromium at 1280x800, navigation to fully drawn (ms; charts: until plotly has "
              "drawn every trace). first: the page's first visit in a new browser (for the search page, plotly.js "
              f"downloaded and compiled); then median/max of {repeat} more")
        for name, ms in times.items():
            print(f"[{label}]   {name:13s} first {ms[0]:7.1f}  median {statistics.median(ms[1:]):7.1f}  max {max(ms[1:]):7.1f}")
    finally:
        server.terminate()
        server.wait(30)
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000, help="evaluated candidates in the search")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--databases", default="sqlite,postgresql")
    ap.add_argument("--screenshots", type=Path, default=None, help="save a PNG of each page here (first database)")
    harness.add_arguments(ap)
    args = ap.parse_args()
    printed = harness.keep_stdout()
    print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for i, db in enumerate(args.databases.split(",")):
        shots = args.screenshots if i == 0 else None
        with bench_database(db, "lutnas_bench_ui") as url:
            if url is not None:
                bench(db, url, args.n, args.repeat, shots)
    harness.write_result("bench_dashboard", {},
                         printed.getvalue(), harness.variant(ap, args), args.results_dir)


if __name__ == "__main__":
    main()
