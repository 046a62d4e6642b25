"""What each dashboard page shows, read through the REST routes' own query functions.

Nothing here queries searches, fronts, results, architectures or coverage by itself: it calls
``server.routes.*`` and ``server.jobs.fronts`` (so a page and the JSON API can never disagree) and
only reshapes their answers for templates and charts. The few facts no REST route serves yet
(agents' last contact, a table's calibration figures, leases in flight) are read here, each in
one small query.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from latency_tables.db import LatencyEntry, LatencyTable
from latency_tables.kinds import OVERHEAD_KEY
from latency_tables.units import Unit, units_of
from profilers.conditions import valid_conditions
from server.jobs.fronts import pareto_payload
from server.jobs.status import TERMINAL_STATUSES, SearchStatus
from server.measurements.lut import predict_for, predictor_for
from server.measurements.workunits import space_of
from server.models import AgentToken, Hardware, Search, Team, WorkUnit, utcnow
from server.problems import Problem, scrub_paths
from server.routes.architectures import get_architecture
from server.routes.hardware import list_hardware
from server.routes.searches import get_team_search, list_searches, result_rows, search_out
from tracking.space import HEAD_KERNELS, MBCONV_CHOICES, SKIP, Architecture, ArchitectureError, SearchSpace

STATUSES = tuple(SearchStatus)
HOVER_LIMIT = 1500  # candidates drawn as hoverable points; more become a backdrop image
ALL_ROWS = 10_000_000  # "every row": result_rows pages by rank, the dashboard wants them all


def team_hardware(session: Session, team: Team) -> list[dict[str, Any]]:
    """Every hardware target of the team with its coverage (``list_hardware``'s items)."""
    out: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = list_hardware(team, session, page_size=1000, page_token=token)
        out += [h.model_dump() for h in page["items"]]
        token = page["next_page_token"]
        if token is None:
            return out


def searches_list(session: Session, team: Team, status: SearchStatus | None,
                  page_token: str | None) -> dict[str, Any]:
    page = list_searches(team, session, page_size=50, page_token=page_token, status=status)
    names = {h["id"]: h["name"] for h in team_hardware(session, team)}
    items = [search_row(s.model_dump(mode="json"), names) for s in page["items"]]
    return {"items": items, "next_page_token": page["next_page_token"]}


def search_row(s: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    """A ``SearchOut`` (as JSON) with the words a table shows."""
    req = s["request"]
    hw_ids = [int(h) for h in req.get("hardware_ids", [])]
    if req.get("objective") == "budget":
        target = names.get(int(req.get("budget_hardware_id") or hw_ids[0]), "?")
        objective = f"best under {req.get('budget_ms'):g} ms on {target}"
    else:
        objective = "Pareto: score vs latency"
    p = s["progress"]
    if s.get("error"):  # the worker scrubs errors already; a page is one more place to be sure
        s = {**s, "error": scrub_paths(s["error"])}
    return {**s, "objective": objective, "targets": [names.get(h, f"#{h}") for h in hw_ids],
            "percent": round(100 * float(p.get("fraction") or 0.0)),
            "active": s["status"] not in TERMINAL_STATUSES,
            "created": s["created_at"][:19].replace("T", " ") + " UTC"}


def search_page(conn: Connection, session: Session, team: Team, search_id: int) -> dict[str, Any]:
    """A search, its fronts per target (with every evaluated candidate) and the ranked rows."""
    s: Search = get_team_search(session, team, search_id)
    hardware = {h["id"]: h for h in team_hardware(session, team)}
    row = search_row(search_out(s).model_dump(mode="json"), {h: v["name"] for h, v in hardware.items()})
    hw_ids = [int(h) for h in s.request.get("hardware_ids", [])]
    results = result_rows(conn, s.id, team.id, 0, ALL_ROWS)
    facts = {r.arch_id: (r.flops, r.params) for r in results}
    targets = []
    for hid in hw_ids:
        front = pareto_payload(conn, [s], hid)
        for p in front["points"]:
            p["flops"], p["params"] = facts.get(p["architecture_id"], (None, None))
        targets.append({"id": hid, "name": hardware.get(hid, {}).get("name", f"#{hid}"), **front})
    on_all = _good_everywhere(targets) if len(targets) > 1 else []
    # Columns rather than one object per candidate. Up to HOVER_LIMIT candidates the chart draws
    # each as a point with its own hover; beyond, only (score, latency) travel and the page paints
    # them as one faded backdrop image (5,000 SVG points cost a browser ~0.4 s to draw).
    lat = [orjson.loads(r.latency_json) for r in results]
    candidates: dict[str, Any] = {"score": [r.score for r in results],
                                  "latency_ms": {str(h): [d.get(str(h)) for d in lat] for h in hw_ids},
                                  "hover": len(results) <= HOVER_LIMIT}
    if candidates["hover"]:
        candidates.update({"id": [r.arch_id for r in results], "lighttrack": [r.lighttrack for r in results],
                           "score_se": [r.score_se for r in results], "flops": [r.flops for r in results],
                           "params": [r.params for r in results]})
    ranked = [{"rank": r.rank, "architecture_id": r.arch_id, "lighttrack": r.lighttrack, "score": r.score,
               "score_se": r.score_se, "latency_ms": lat[i], "flops": r.flops, "params": r.params,
               "feasible": r.feasible} for i, r in enumerate(results[:20])]
    return {"search": row, "supernet_id": s.supernet_id, "targets": targets, "on_all": on_all,
            "candidates": candidates, "ranked": ranked, "n_results": len(results)}


def _good_everywhere(targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Architectures on the front of every target, with their latency on each."""
    fronts = [{p["architecture_id"]: p for p in t["points"]} for t in targets]
    common = set(fronts[0]).intersection(*fronts[1:])
    rows = [{"architecture_id": a, "lighttrack": fronts[0][a]["lighttrack"], "score": fronts[0][a]["score"],
             "latency_ms": [f[a]["latency_ms"] for f in fronts]} for a in common]
    return sorted(rows, key=lambda r: -r["score"])


def results_rows(conn: Connection, team: Team, search_id: int) -> list[dict[str, Any]]:
    """Every ranked result of a search as the REST results pages serve them (downloads)."""
    return [{"rank": r.rank, "architecture_id": r.arch_id, "lighttrack": r.lighttrack, "score": r.score,
             "score_se": r.score_se, "latency_ms": orjson.loads(r.latency_json), "flops": r.flops,
             "params": r.params, "feasible": r.feasible}
            for r in result_rows(conn, search_id, team.id, 0, ALL_ROWS)]


# -- architecture page --------------------------------------------------------------------------

def diagram(arch: Architecture, space: SearchSpace) -> dict[str, Any]:
    """The network as the page draws it: stem, backbone stages (blocks that run and those cut
    off after the output block), the output stage, and both head towers."""
    active = {(s, b) for s, b, _ in arch.active_blocks()}
    stages = []
    for s, blocks in enumerate(arch.backbone):
        row = []
        for b, c in enumerate(blocks):
            k, e = MBCONV_CHOICES[c]
            row.append({"stage": s, "block": b, "kernel": k, "expansion": e, "active": (s, b) in active,
                        "output": (s, b) == (arch.out_stage, arch.out_block)})
        stages.append({"index": s, "channels": space.stage_channels[s], "stride": space.stage_strides[s],
                       "blocks": row})

    def tower(name: str, head: Any) -> dict[str, Any]:
        return {"name": name, "width": space.head_widths[head.width],
                "layers": ["skip" if c == SKIP else f"{HEAD_KERNELS[c]}x{HEAD_KERNELS[c]}" for c in head.layers]}

    return {"stem_channels": space.stem_channels, "stages": stages,
            "output": {"stage": arch.out_stage, "block": arch.out_block,
                       "channels": space.stage_channels[arch.out_stage]},
            "neck_channels": space.neck_channels,
            "towers": [tower("classification", arch.cls), tower("regression", arch.reg)]}


def unit_label(u: Unit, index: dict[str, int]) -> str:
    if u.kind == "mbconv":
        n = index["mbconv"] = index.get("mbconv", 0) + 1
        return f"block {n}: MBConv k{u.kernel} e{u.expansion}" + (f" s{u.stride}" if u.stride > 1 else "")
    if u.kind == "head":  # units_of lists the classification tower, its output, then regression
        tower = "regression" if index.get("cls_done") else "classification"
        n = index[tower] = index.get(tower, 0) + 1
        return f"{tower} layer {n}: {u.kernel}x{u.kernel} ({u.out_ch} ch)"
    if u.kind == "cls":
        index["cls_done"] = 1
    return {"stem": "stem conv", "dsconv": "depthwise-separable conv", "adjust": "adjust (output stage)",
            "neck": "correlation neck", "cls": "classification output", "reg": "regression output"}.get(u.kind, u.kind)


def architecture_page(session: Session, team: Team, arch_id: str, hardware_id: int | None) -> dict[str, Any]:
    info = get_architecture(arch_id, team, session)  # the REST body; 404 problem for others' ids
    arch = Architecture.from_string(info["lighttrack"], SearchSpace.code())
    hardware = team_hardware(session, team)
    rows = session.scalars(select(Hardware).where(Hardware.team_id == team.id).order_by(Hardware.id)).all()
    by_id = {h.id: h for h in rows}
    latencies = []
    for h in hardware:
        entry: dict[str, Any] = {"id": h["id"], "name": h["name"], "kind": h["kind"], "latency_ms": None, "note": None}
        # today's LUT prediction; the latency a search stored differs once the table is re-measured
        # or calibrated after it, and then both are shown
        entry.update(_predict(session, by_id[h["id"]], info["lighttrack"]))
        cached = info["latency_ms"].get(str(h["id"]))
        if cached is not None:
            if entry["latency_ms"] is None:
                entry.update(latency_ms=float(cached), note=f"as a search predicted it; today: {entry['note']}")
            elif abs(entry["latency_ms"] - cached) > 0.005 * cached:
                entry["note"] = f"{cached:.2f} ms when searched"
        latencies.append(entry)
    chosen = hardware_id if hardware_id is not None else next(
        (e["id"] for e in latencies if e["latency_ms"] is not None), None)
    if chosen is not None and chosen not in by_id:
        raise Problem(404, f"hardware {chosen} not found", "hardware_id")
    breakdown = _breakdown(session, by_id[chosen], info["lighttrack"]) if chosen is not None else None
    supernets = sorted({s["supernet_id"] for s in info["scores"]})
    return {"arch": info, "diagram": diagram(arch, SearchSpace.code()), "latencies": latencies,
            "chosen": chosen, "breakdown": breakdown, "supernets": supernets}


def _predict(session: Session, hw: Hardware, lighttrack: str) -> dict[str, Any]:
    """The LUT prediction as ``POST .../latency-table/predict`` computes it, or why there is none."""
    try:
        arch = Architecture.from_string(lighttrack, space_of(hw.space))
    except ArchitectureError:
        return {"note": f"outside this target's search space ({hw.space})"}
    try:
        return {"latency_ms": predict_for(session, hw, [arch])[0]}
    except Problem as e:
        return {"note": e.detail.replace(f" on hardware {hw.id}", "")}


def _breakdown(session: Session, hw: Hardware, lighttrack: str) -> dict[str, Any]:
    """Per-unit latency on ``hw``: each unit's net cost in the graph (its measured median less the
    per-run overhead), the overhead once, and the calibration applied to their sum."""
    try:
        arch = Architecture.from_string(lighttrack, space_of(hw.space))
    except ArchitectureError:
        return {"hardware_id": hw.id, "name": hw.name, "units": [], "note": "outside this target's search space"}
    predictor = predictor_for(session, hw)
    index: dict[str, int] = {}
    units = []
    for u in units_of(arch, predictor.space):
        cost = predictor.net.get(u.key)
        units.append({"label": unit_label(u, index), "key": u.key, "kind": u.kind,
                      "ms": None if cost is None else float(cost)})
    missing = sum(u["ms"] is None for u in units)
    total = None
    if not missing:
        total = float(predictor.predict(arch))
    return {"hardware_id": hw.id, "name": hw.name, "units": units, "overhead_ms": predictor.overhead_ms,
            "missing": missing, "total_ms": total, "calibrated": predictor.calibration is not None,
            "overhead_key": OVERHEAD_KEY}


# -- hardware page --------------------------------------------------------------------------------

def hardware_page(session: Session, team: Team) -> list[dict[str, Any]]:
    hardware = team_hardware(session, team)
    ids = [h["id"] for h in hardware]
    agents: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for a in session.scalars(select(AgentToken).where(AgentToken.hardware_id.in_(ids)).order_by(AgentToken.id)):
        agents[a.hardware_id].append({"name": a.name, "created_at": a.created_at, "last_seen_at": a.last_seen_at})
    now = utcnow()
    leased = dict(session.execute(
        select(WorkUnit.hardware_id, func.count()).where(
            WorkUnit.hardware_id.in_(ids), WorkUnit.done.is_(False), WorkUnit.lease_expires_at > now)
        .group_by(WorkUnit.hardware_id)).all()) if ids else {}
    tables = dict(session.execute(select(Hardware.id, LatencyTable.calibration)
                                  .join(LatencyTable, LatencyTable.id == Hardware.table_id)
                                  .where(Hardware.id.in_(ids))).all()) if ids else {}
    envs: dict[int, list[Any]] = {i: [] for i in ids}
    for hid, env in (session.execute(select(Hardware.id, LatencyEntry.env)
                                     .join(LatencyEntry, LatencyEntry.table_id == Hardware.table_id)
                                     .where(Hardware.id.in_(ids))).all() if ids else []):
        envs[hid].append(env)
    for h in hardware:
        h["agents"] = agents[h["id"]]
        h["leased"] = int(leased.get(h["id"], 0))
        h["fidelity"] = _fidelity(tables.get(h["id"]))
        h["conditions"] = conditions_summary(envs[h["id"]])
    return hardware


def conditions_summary(envs: list[Any]) -> dict[str, Any] | None:
    """What the agents saw while measuring a table's entries (``profilers.conditions``): other
    load, clock and temperature over the entries that recorded them; None when none did."""
    seen = [c for e in envs if isinstance(e, dict) and (c := valid_conditions(e.get("conditions")))]
    if not seen:
        return None

    def values(key: str) -> list[float]:
        return [c[key] for c in seen if key in c]

    load, freq, temp = values("other_load_cores"), values("freq_mhz"), values("temp_c")
    governors = sorted({g for e in envs if isinstance(e, dict) and isinstance(g := e.get("governor"), str)
                        and g.isalnum() and len(g) <= 32})
    return {"n": len(seen), "load_median": float(sorted(load)[len(load) // 2]) if load else None,
            "load_max": max(load) if load else None, "freq_min": min(freq) if freq else None,
            "freq_max": max(freq) if freq else None, "temp_max": max(temp) if temp else None,
            "governors": governors}


def _fidelity(calibration: dict[str, Any] | None) -> dict[str, Any] | None:
    """The agreement figures a validated (calibrated) table keeps: before and after calibration."""
    if not calibration or not isinstance(calibration.get("after"), dict):
        return None
    return {"method": calibration.get("method"), "n": calibration.get("n"),
            "before": calibration.get("before") or {}, "after": calibration["after"],
            "after_cv": calibration.get("after_cv") or {}}


def ago(when: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """'never', 'just now', '42 s ago', '3 min ago', ... for a timestamp."""
    if when is None:
        return "never"
    seconds = ((now or utcnow()) - when).total_seconds()
    if seconds < 2:
        return "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if unit == 'day' and n > 1 else ''} ago"
    return f"{int(seconds)} s ago"
