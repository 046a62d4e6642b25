"""``lutnas-agent``: the on-device profiler agent (numpy + onnxruntime + httpx only; LiteRT targets
add ai-edge-litert: ``pip install "lutnas-agent[litert]"``, ``--backend litert``).

Loop: lease up to ``--batch`` units from the server, download each unit's model (ONNX, or .tflite), measure
it with :mod:`profilers.measure`, upload the result at once (so a crash loses at most the unit
being measured), heartbeat the lease from a background thread while measuring (leases are
short, 30 s by default, renewed every quarter of it, so a dead agent's units go back to the pool
quickly). SIGTERM/SIGINT
finish the unit in hand, upload it, and leave; the other leased units go back to the pool when
the lease expires. Uploads are idempotent on the server, so a retried upload is harmless.

A server that goes away (restart, network) is waited for with exponential backoff for up to
``--retry-for`` seconds, each retry logged. Once the target's table is complete the agent says so
once and keeps asking for new work every ``--idle-wait`` seconds, or exits with
``--exit-when-done``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from profilers.backends import get_backend
from profilers.conditions import Limits, flags
from profilers.layout import with_layout
from profilers.measure import Protocol, measure

RETRY_STATUSES = {502, 503, 504}


class AgentError(Exception):
    """A problem the agent cannot fix by retrying (bad token, bad configuration)."""


@dataclass
class AgentConfig:
    server: str
    token: str
    provider: str = "CPUExecutionProvider"  # litert: the delegate (xnnpack, none, gpu, external); tensorrt: the device
    threads: int = 1
    graph_optimization: str = "all"
    batch: int = 8
    lease_seconds: float = 30.0
    exit_when_done: bool = False
    idle_wait: float = 10.0
    protocol: Protocol = Protocol()
    max_units: int | None = None
    retry_for: float = 300.0
    precision: str = "fp32"  # int8 targets: the server hands out quantized units
    limits: Limits = Limits()  # a measurement that breaks them is measured again, not uploaded
    busy_retries: int = 3  # measurements of a unit under load before it is left for later
    busy_wait: float = 2.0  # seconds between them
    backend: str = "onnxruntime"  # or litert (.tflite units; the server converts them), or tensorrt
    delegate_library: str | None = None  # litert gpu/external delegates: the shared library to load
    trtexec: str | None = None  # tensorrt: trtexec's path (default: on PATH, else JetPack's)
    engine_cache: str | None = None  # tensorrt: where built engines are kept (default ~/.cache/lutnas)


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.stop = threading.Event()
        self.client = httpx.Client(base_url=config.server.rstrip("/"), timeout=120.0,
                                   headers={"Authorization": f"Bearer {config.token}"})
        if config.backend == "litert":
            self.backend = get_backend("litert", delegate=config.provider, delegate_library=config.delegate_library,
                                       threads=config.threads, precision=config.precision,
                                       graph_optimization=config.graph_optimization)
        elif config.backend == "tensorrt":
            self.backend = get_backend("tensorrt", provider=config.provider, threads=config.threads,
                                       precision=config.precision, trtexec_path=config.trtexec,
                                       cache_dir=config.engine_cache, graph_optimization=config.graph_optimization)
        else:
            self.backend = get_backend(config.backend, provider=config.provider, threads=config.threads,
                                       graph_optimization=config.graph_optimization, precision=config.precision)
        self.measured = 0
        self.flagged = 0  # measurements not stored because the device was loaded or throttled
        self.left_for_later = 0  # units given back after busy_retries such measurements
        self._idle_state: str | None = None  # what the last idle message said (logged on change only)

    # -- HTTP with retries --------------------------------------------------------------
    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request; a server that is away (connection refused, 502/503/504) is retried with
        exponential backoff (0.5 s doubling to 10 s) for up to ``retry_for`` seconds."""
        delay, start, attempt = 0.5, time.monotonic(), 0
        while True:
            try:
                r = self.client.request(method, url, **kwargs)
            except httpx.TransportError as e:
                why = f"server unreachable ({' '.join(str(e).split()) or type(e).__name__})"
            else:
                if r.status_code not in RETRY_STATUSES:
                    if r.status_code in (401, 403):
                        raise AgentError(f"server refused the token (revoked or rotated?): {_detail(r)}")
                    if attempt:
                        _log(f"server is back after {time.monotonic() - start:.0f} s")
                    return r
                why = f"server answered {r.status_code}"
            attempt += 1
            waited = time.monotonic() - start
            if waited + delay > self.config.retry_for or self.stop.is_set():
                raise AgentError(f"{why}; gave up after {attempt} attempts in {waited:.0f} s "
                                 f"(--retry-for {self.config.retry_for:g})")
            _log(f"{method} {url}: {why}; retry {attempt} in {delay:.1f} s")
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        r = self._request(method, url, **kwargs)
        if r.status_code >= 400:
            raise AgentError(f"{method} {url}: {r.status_code} {_detail(r)}")
        return r.json()

    # -- protocol -----------------------------------------------------------------------
    def lease(self) -> dict[str, Any]:
        n = self.config.batch
        if self.config.max_units is not None:
            n = min(n, self.config.max_units - self.measured)
        return self._json("POST", "/v1/agent/leases",
                          json={"max_units": n, "lease_seconds": self.config.lease_seconds})

    def check_runtime(self, runtime: dict[str, Any]) -> None:
        """Refuse to measure under another configuration than the target's (the server would
        reject the results anyway); say which flag to change."""
        mine = self.backend.runtime_info()
        for key, flag in (("backend", "--backend"), ("provider", "--provider"), ("threads", "--threads"),
                          ("graph_optimization", "--graph-optimization"), ("precision", "--precision")):
            want = runtime.get(key)
            if want is None or (key == "threads" and not want) or mine.get(key) == want:
                continue
            hint = f"; run with {flag} {want}" if flag else ""
            raise AgentError(f"this hardware target is registered with {key} {want!r}, this agent uses "
                             f"{mine.get(key)!r}{hint}")

    def _heartbeat_loop(self, lease_id: str, done: threading.Event) -> None:
        interval = max(0.5, self.config.lease_seconds / 4)  # a late or retried beat still lands in time
        while not done.wait(interval):
            try:
                r = self._request("POST", "/v1/agent/heartbeat", json={"lease_id": lease_id})
            except AgentError:
                return
            if r.status_code == 404:  # the lease ran out (e.g. the server was away): results still count
                _log("lease expired; finishing the units in hand (uploads are accepted after a lease ends)")
                return

    def measure_unit(self, unit: dict[str, Any]) -> dict[str, Any] | None:
        """The unit's result, or None when every one of ``busy_retries`` measurements broke the
        protocol's limits (other load, throttling): the unit is left unmeasured and returns to the
        pool with the lease, so another agent, or this one once the device is quiet, measures it."""
        fmt = unit.get("format", "onnx")
        if fmt != self.backend.model_format:
            raise AgentError(f"the server hands out {fmt} units, this agent's {self.backend.name} backend runs "
                             f"{self.backend.model_format}; run with --backend "
                             f"{'litert' if fmt == 'tflite' else 'onnxruntime'}")
        r = self._request("GET", unit["onnx_url"])
        if r.status_code >= 400:
            raise AgentError(f"download of {unit['key']}: {r.status_code} {_detail(r)}")
        for attempt in range(1, self.config.busy_retries + 1):
            m = measure(self.backend, r.content, self.config.protocol)
            bad = flags(m.env.get("conditions", {}), self.config.limits)
            if not bad:
                m = with_layout(m, self.backend, r.content, self.config.protocol.flush_bytes)
                return {"unit_key": unit["key"], **m.to_dict()}
            self.flagged += 1
            _log(f"{unit['key']}: not stored, {'; '.join(bad)} (attempt {attempt} of {self.config.busy_retries})")
            if self.stop.wait(self.config.busy_wait):
                break
        self.left_for_later += 1
        return None

    def upload(self, lease_id: str, results: list[dict[str, Any]]) -> dict[str, Any]:
        return self._json("POST", "/v1/agent/results", json={"lease_id": lease_id, "results": results})

    def run(self) -> int:
        """Work until stopped (or until no work is left with ``exit_when_done``); units measured."""
        while not self.stop.is_set():
            if self.config.max_units is not None and self.measured >= self.config.max_units:
                break
            lease = self.lease()
            self.check_runtime(lease.get("runtime") or {})
            units = lease["units"]
            if not units:
                # nothing free; units leased by other (perhaps dead) agents may come back
                remaining = int(lease.get("remaining") or 0)
                if not remaining and self.config.exit_when_done:
                    _log(f"the table of this target is complete ({self.measured} units measured by this agent); "
                         "exiting (--exit-when-done)")
                    break
                self._idle(remaining)
                self.stop.wait(self.config.idle_wait)
                continue
            self._idle_state = None
            done = threading.Event()
            beat = threading.Thread(target=self._heartbeat_loop, args=(lease["lease_id"], done), daemon=True)
            beat.start()
            try:
                for unit in units:
                    if self.stop.is_set():
                        break  # the rest of the lease returns to the pool when it expires
                    result = self.measure_unit(unit)
                    if result is None:
                        continue  # disturbed every time: back to the pool with the lease
                    self.upload(lease["lease_id"], [result])
                    self.measured += 1
                    _log(f"measured {unit['key']}: {result['median_ms']:.3f} ms "
                         f"({self.measured} so far)")
            finally:
                done.set()
        self.client.close()
        return self.measured


    def _idle(self, remaining: int) -> None:
        """Say once (not every poll) why there is nothing to do and what the agent waits for."""
        state = "complete" if not remaining else "leased"
        if state == self._idle_state:
            return
        self._idle_state = state
        if not remaining:
            _log("the table of this target is complete; waiting for new units of its work (checking every "
                 f"{self.config.idle_wait:g} s; run with --exit-when-done to exit instead)")
        else:
            _log(f"{remaining} unit{'s' if remaining != 1 else ''} left, all leased by other agents; waiting "
                 f"for them to finish or for their leases to run out (checking every {self.config.idle_wait:g} s)")


def _detail(r: httpx.Response) -> str:
    try:
        body = r.json()
        return str(body.get("detail") or body)
    except ValueError:
        return r.text[:200]


def _log(msg: str) -> None:
    print(f"lutnas-agent: {msg}", file=sys.stderr, flush=True)


def _add_backend_args(p: argparse.ArgumentParser) -> None:
    """The runtime's own flags: which backend, and what each needs to find its runtime."""
    p.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "litert", "tensorrt"],
                   help="the target's runtime: onnxruntime (ONNX units), litert (.tflite units; needs "
                   "pip install \"lutnas-agent[litert]\") or tensorrt (ONNX units built and timed by trtexec)")
    p.add_argument("--provider", default=None, help="onnxruntime execution provider (default CPUExecutionProvider); "
                   "litert: the delegate, xnnpack (default), none, gpu or external")
    p.add_argument("--delegate-library", default=None, help="litert gpu/external delegates: the delegate's shared "
                   "library (e.g. libtensorflowlite_gpu_delegate.so, a vendor's QNN/NeuroPilot delegate)")
    p.add_argument("--trtexec", default=None, help="tensorrt: trtexec's path (default: trtexec on PATH, else "
                   "/usr/src/tensorrt/bin/trtexec as JetPack installs it)")
    p.add_argument("--engine-cache", default=None, help="tensorrt: directory of built engines, kept between runs "
                   "(default ~/.cache/lutnas/trt-engines)")


def _add_runtime_args(p: argparse.ArgumentParser) -> None:
    """How the runtime runs each unit: threads, graph optimisation, the target's precision."""
    p.add_argument("--threads", type=int, default=1, help="intra-op threads")
    p.add_argument("--graph-optimization", default="all", choices=["disable", "basic", "extended", "all"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"],
                   help="the target's precision (int8: units arrive quantized; fp16: tensorrt only)")


def _add_work_args(p: argparse.ArgumentParser) -> None:
    """How the agent takes work from the server: leases, retries, idling, when to stop."""
    p.add_argument("--batch", type=int, default=8, help="units per lease")
    p.add_argument("--lease-seconds", type=float, default=30.0,
                   help="lease length; the agent renews it every quarter of it while measuring, so a dead "
                   "agent's units go back to the pool within this long")
    p.add_argument("--exit-when-done", action="store_true",
                   help="exit (code 0) once every unit of the target is measured, instead of waiting for new work")
    p.add_argument("--retry-for", type=float, default=300.0,
                   help="seconds to keep retrying, with backoff, while the server is unreachable")
    p.add_argument("--idle-wait", type=float, default=10.0, help="seconds to wait when there is no work")
    p.add_argument("--max-units", type=int, default=None, help="stop after measuring this many units")


def _add_measure_args(p: argparse.ArgumentParser) -> None:
    """How long each unit is timed, and which device conditions void a measurement."""
    p.add_argument("--min-time", type=float, default=Protocol.min_time_s, help="seconds per unit, at least")
    p.add_argument("--max-time", type=float, default=Protocol.max_time_s, help="seconds per unit, at most")
    p.add_argument("--max-other-load", type=_limit, default=Limits.max_other_cores, metavar="CORES|off",
                   help="a measurement during which other processes (or hypervisor steal) used this many cores "
                   "is measured again, not stored (default 0.5; off: no check)")
    p.add_argument("--min-clock-ratio", type=_limit, default=None, metavar="RATIO|off",
                   help="also refuse measurements while cpu0's clock is under this share of its maximum "
                   "(throttling; default off)")
    p.add_argument("--max-temp", type=_limit, default=None, metavar="CELSIUS|off",
                   help="also refuse measurements while the hottest thermal zone is at or above this (default off)")
    p.add_argument("--busy-retries", type=int, default=3, help="measurements of a unit under load before it is "
                   "left for later (it returns to the pool with the lease)")
    p.add_argument("--busy-wait", type=float, default=2.0, help="seconds to wait before measuring a disturbed unit again")


def _check_args(p: argparse.ArgumentParser, a: argparse.Namespace) -> Protocol:
    """Refuse what argparse cannot see alone (ranges, flags of another backend); the timing protocol."""
    if a.busy_retries < 1 or a.busy_wait < 0:
        p.error("--busy-retries must be >= 1 and --busy-wait >= 0")
    if a.batch < 1 or a.batch > 256:
        p.error("--batch must be in 1..256")
    if a.lease_seconds <= 0:
        p.error("--lease-seconds must be > 0")
    if a.retry_for < 0:
        p.error("--retry-for must be >= 0")
    if a.delegate_library and a.backend != "litert":
        p.error("--delegate-library needs --backend litert")
    if (a.trtexec or a.engine_cache or a.precision == "fp16") and a.backend != "tensorrt":
        p.error("--trtexec, --engine-cache and --precision fp16 need --backend tensorrt")
    try:
        return Protocol(min_time_s=min(a.min_time, a.max_time), max_time_s=a.max_time)
    except ValueError as e:
        p.error(str(e))


def parse_args(argv: list[str] | None = None) -> AgentConfig:
    p = argparse.ArgumentParser(prog="lutnas-agent", description="Measure latency-table units for a lutnas server.")
    p.add_argument("--server", required=True, help="server URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--token", required=True, help="agent token (lna_...) of one hardware target")
    _add_backend_args(p)  # the --help order is the order the groups are added in
    _add_runtime_args(p)
    _add_work_args(p)
    _add_measure_args(p)
    a = p.parse_args(argv)
    protocol = _check_args(p, a)
    provider = a.provider or {"litert": "xnnpack", "tensorrt": "tensorrt"}.get(a.backend, "CPUExecutionProvider")
    return AgentConfig(server=a.server, token=a.token, provider=provider, threads=a.threads,
                       graph_optimization=a.graph_optimization, batch=a.batch,
                       lease_seconds=a.lease_seconds, exit_when_done=a.exit_when_done,
                       idle_wait=a.idle_wait, protocol=protocol, max_units=a.max_units, retry_for=a.retry_for,
                       precision=a.precision, limits=Limits(a.max_other_load, a.min_clock_ratio, a.max_temp),
                       busy_retries=a.busy_retries, busy_wait=a.busy_wait, backend=a.backend,
                       delegate_library=a.delegate_library, trtexec=a.trtexec, engine_cache=a.engine_cache)


def _limit(text: str) -> float | None:
    """A limit option: a non-negative number, or ``off``."""
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'off', got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    try:
        agent = Agent(config)
    except (ValueError, ImportError, OSError) as e:  # a bad configuration, the litert extra or trtexec missing
        _log(f"error: {e}")
        sys.exit(2)

    def _stop(signum: int, _frame: Any) -> None:
        _log(f"signal {signum}: finishing the current unit, then stopping")
        agent.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        n = agent.run()
    except AgentError as e:
        _log(f"error: {e}")
        sys.exit(2)
    left = f"; {agent.left_for_later} left for later after {agent.flagged} disturbed measurements" \
        if agent.flagged else ""
    _log(f"stopped after measuring {n} units{left}")


if __name__ == "__main__":
    main()
