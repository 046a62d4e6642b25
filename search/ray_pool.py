"""Candidate scoring on a Ray cluster: a pool of actors behind the accuracy-evaluator protocol.

Each actor loads the supernet checkpoint and the validation data ONCE (a
:class:`search.evaluators.SupernetAccuracy`) and scores one architecture per task; the pool hands
a batch's candidates to whichever actor is free and returns the scores in the batch's order. The
pool is an :class:`~search.evaluators.AccuracyEvaluator`, so it sits where the in-process scorer
sits: the engine still calls ``executor.map_batches(accuracy.evaluate, ...)`` in the driver (its
batches are where a stop lands), and whatever wraps the evaluator there (the engine's records,
the service's ``score_cache``) stays in the driver too, together with the LUT and the database:
only uncached candidates ever reach an actor. (An executor could not ship the driver's
``evaluate`` to the cluster: it closes over the database session and the cache.)

* One GPU per actor when the cluster has GPUs (``device="auto"``), else ``threads`` CPU threads per
  actor (``torch.set_num_threads``; the actor reserves as many Ray CPUs).
* No address: a local Ray is started on demand (quiet, no dashboard) and kept for the process's
  later pools; an address (``HOST:PORT`` of a cluster this machine is a node of, or
  ``ray://HOST:10001`` for Ray Client) connects to a running cluster.
* Faults: a task whose actor died (killed, out of memory, its node gone) is re-run on a fresh actor
  in the same slot; scores depend only on (supernet, data, settings, architecture), so the search's
  result does not change. A cluster that goes away (its GCS no longer answers) raises
  :class:`RayClusterError` (a ``ConnectionError``: one line in the CLI; the service's job goes back
  to the queue with it as its note); the search state saved after the last finished generation
  resumes it later. On a cluster (an address) the Ray driver runs in a child process
  (:class:`ClusterPool`, via :func:`open_pool`): Ray ends a driver whose raylet died, and that must
  not be the CLI or the service's worker.

``ray`` is imported only when a pool is built: ``lutnas --help``, the client and the agent never
import it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from search.evaluators import Score
from tracking.space import Architecture

log = logging.getLogger("lutnas.ray")

# The process's Ray connection: (address asked for, or None for the local on-demand Ray). Guarded
# by _LOCK so the service's worker threads never race two ray.init calls.
_LOCK = threading.Lock()
_CONNECTED: list[str | None] = []
_STALE = threading.Event()  # set when the cluster went away: the next connect() starts a new session


class RayClusterError(ConnectionError):
    """The Ray cluster cannot be reached, or went away during a search."""


@dataclass(frozen=True)
class ScorerSpec:
    """What every actor needs to build its scorer: paths readable on every node, and the
    ``ValidationScorer`` settings (scores are only comparable for equal settings)."""

    supernet_path: str
    data_dir: str
    mode: str = "pairs"
    scorer_kwargs: dict[str, Any] = field(default_factory=dict)
    ensemble: tuple[str, ...] = ()  # further supernets: each actor scores with the mean of them all


class _ScorerActor:
    """Runs in a Ray worker process: one scorer, built once, then one architecture per call."""

    def __init__(self, spec: ScorerSpec, threads: int, device: str) -> None:
        import torch

        torch.set_num_threads(threads)
        from search.evaluators import supernet_accuracy

        self.accuracy = supernet_accuracy([spec.supernet_path, *spec.ensemble], spec.data_dir, mode=spec.mode,
                                          device=device, **spec.scorer_kwargs)

    def ready(self) -> int:
        return os.getpid()

    def score(self, arch: Architecture) -> tuple[float, float | None, float]:
        t0 = time.perf_counter()
        s = self.accuracy.evaluate([arch])[0]
        return s.value, s.se, time.perf_counter() - t0


def gcs_reachable(address: str, timeout: float = 2.0) -> bool:
    """Whether the cluster's GCS accepts a TCP connection (cheap; no Ray call can hang here)."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
        return True
    except (OSError, ValueError):
        return False


def _where(address: str | None) -> str:
    return f"the Ray cluster at {address}" if address else "the local Ray"


def connect(address: str | None = None, num_cpus: int | None = None) -> str:
    """Connect this process to Ray (once; again after the cluster it knew went away or when
    another address is asked for). Returns the GCS address to probe."""
    try:
        import ray
    except ImportError:
        raise ValueError("scoring on Ray needs the ray package: pip install 'lutnas[ray]'") from None

    if address is not None and "://" not in address and not gcs_reachable(address):
        raise RayClusterError(f"cannot connect to {_where(address)}: nothing answers there")
    with _LOCK:
        if ray.is_initialized():
            gcs = ray.get_runtime_context().gcs_address
            if _CONNECTED and _CONNECTED[0] == address and not _STALE.is_set() and gcs_reachable(gcs):
                return gcs
            ray.shutdown()  # a cluster that went away, or a different one asked for
            _CONNECTED.clear()
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home
        if address is None:
            # Ray starts its workers at niceness 15: on a machine shared with other work, the actors
            # that do the search's scoring would then wait on everything else while the driver waits on them
            os.environ.setdefault("RAY_worker_niceness", "0")
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "logging_level": logging.ERROR}
        # Ray gives a starting raylet a fixed 30 s to register: a busy machine can miss that, so
        # the local Ray gets three tries (a cluster is already up: one)
        for attempt in range(3 if address is None else 1):
            try:
                if address is None:
                    # "local": a new Ray of our own, never a cluster some `ray start` left on this machine
                    ray.init(address="local", num_cpus=num_cpus, **kwargs)
                else:
                    ray.init(address=address, **kwargs)
                break
            except Exception as e:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, AuthenticationError...
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                with contextlib.suppress(Exception):  # nothing to stop
                    ray.shutdown()  # whatever half of a local Ray started
                if attempt == (2 if address is None else 0):
                    raise RayClusterError(f"cannot connect to {_where(address)}: {reason}") from None
                log.warning("starting a local Ray failed (%s); trying again", reason)
        _CONNECTED.append(address)
        _STALE.clear()
        return ray.get_runtime_context().gcs_address


class RayScoringPool:
    """``workers`` Ray actors scoring architectures; ``evaluate(archs) -> list[Score]``.

    ``device``: auto (one GPU per actor when the cluster has GPUs, else CPU), cpu, or cuda
    (one GPU per actor). ``threads``: torch threads per CPU actor. ``max_task_retries``: how many
    dead actors one candidate may cost before the search fails (a candidate that kills every actor
    it touches is a bug, not bad luck). ``on_dispatch(slot, pid)``: called after a task is handed
    to an actor (tests kill actors there). Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, spec: ScorerSpec, workers: int, address: str | None = None, *, threads: int = 1,
                 device: str = "auto", max_task_retries: int = 3, poll_seconds: float = 1.0,
                 start_timeout: float = 600.0,
                 on_dispatch: Callable[[int, int], None] | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if threads < 1:
            raise ValueError(f"threads per worker must be >= 1, got {threads}")
        self.spec, self.workers, self.address, self.threads = spec, workers, address, threads
        self.max_task_retries, self.poll_seconds, self.on_dispatch = max_task_retries, poll_seconds, on_dispatch
        self.start_timeout = start_timeout
        self.restarts = 0  # actors replaced after dying
        self.scored = 0
        self.busy_seconds = 0.0  # actors' own scoring time (the rest of the wall time is Ray's)
        self.wall_seconds = 0.0  # time spent in evaluate()
        self._gcs = connect(address, num_cpus=workers * threads if address is None else None)
        import ray

        gpus = float(ray.cluster_resources().get("GPU", 0.0))
        self.use_gpu = device.startswith("cuda") or (device == "auto" and gpus >= 1)
        self.device = "cuda" if self.use_gpu else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES per actor
        self._remote = ray.remote(_ScorerActor)
        self._actors: list[Any] = [None] * workers
        self.pids: list[int] = [0] * workers
        try:
            pending = {self._start(i): i for i in range(workers)}
            self._await_ready(pending)
        except BaseException:
            self.close()
            raise

    # -- actors -------------------------------------------------------------------------------
    def _start(self, slot: int) -> Any:
        opts: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1} if self.use_gpu else {"num_cpus": self.threads}
        actor = self._remote.options(max_restarts=0, max_task_retries=0, **opts).remote(
            self.spec, self.threads, self.device)
        self._actors[slot] = actor
        return actor.ready.remote()

    def _await_ready(self, pending: dict[Any, int]) -> None:
        """Wait for new actors to load their scorer; an error building one (bad checkpoint) is the
        user's, raised as such."""
        import ray

        deadline = time.monotonic() + self.start_timeout
        while pending:
            done = self._wait(list(pending), deadline)
            for ref in done:
                slot = pending.pop(ref)
                try:
                    self.pids[slot] = int(ray.get(ref))
                except ray.exceptions.RayTaskError as e:
                    raise _cause(e) from None
                except ray.exceptions.RayActorError as e:
                    self._check_cluster()
                    if getattr(e, "actor_init_failed", False):  # e.g. an unreadable checkpoint on that node
                        raise ValueError(f"a scoring worker could not load the supernet: {_last_error_line(e)}") from None
                    raise RuntimeError(f"a scoring worker died while loading the supernet: {_last_error_line(e)}") from None

    def _replace(self, slot: int) -> None:
        import ray

        self._check_cluster()
        with contextlib.suppress(Exception):  # it is already gone
            ray.kill(self._actors[slot], no_restart=True)
        self.restarts += 1
        log.warning("scoring worker %d died; starting a new one", slot)
        self._await_ready({self._start(slot): slot})

    def _check_cluster(self) -> None:
        if not gcs_reachable(self._gcs):
            _STALE.set()
            raise RayClusterError(f"{_where(self.address)} went away (its GCS at {self._gcs} does not answer); "
                                  "the search resumes from its last finished generation once it is back")

    def _wait(self, refs: list[Any], deadline: float | None = None) -> list[Any]:
        """Ready refs; polls the cluster while none is, so a cluster gone never hangs the search."""
        import ray

        while True:
            done, _ = ray.wait(refs, num_returns=1, timeout=self.poll_seconds)
            if done:
                return done
            self._check_cluster()
            if deadline is not None and time.monotonic() > deadline:
                need = "one GPU" if self.use_gpu else f"{self.threads} CPU(s)"
                raise RayClusterError(f"{len(refs)} scoring worker(s) needing {need} each did not start within "
                                      f"{self.start_timeout:g} s on {_where(self.address)}: too few free resources?")

    # -- scoring ------------------------------------------------------------------------------
    def evaluate(self, archs: Sequence[Architecture]) -> list[Score]:
        """Scores in the order of ``archs``; each actor holds one task at a time (a free actor
        takes the next candidate), so uneven candidates balance themselves."""
        import ray

        if any(a is None for a in self._actors):
            raise RuntimeError("the scoring pool is closed")
        # actors of a lost head can outlive it for a while and still answer: a generation is only
        # started on a cluster whose GCS answers, so a lost head fails the search the same way each time
        self._check_cluster()
        t0 = time.perf_counter()
        out: list[Score | None] = [None] * len(archs)
        todo = deque(range(len(archs)))
        tries = [0] * len(archs)
        running: dict[Any, tuple[int, int]] = {}  # ref -> (slot, candidate index)
        free = deque(range(self.workers))
        while todo or running:
            while todo and free:
                slot, i = free.popleft(), todo.popleft()
                running[self._actors[slot].score.remote(archs[i])] = (slot, i)
                if self.on_dispatch is not None:
                    self.on_dispatch(slot, self.pids[slot])
            for ref in self._wait(list(running)):
                slot, i = running.pop(ref)
                try:
                    value, se, seconds = ray.get(ref)
                except ray.exceptions.RayTaskError as e:  # the scorer itself raised: not a fault of Ray's
                    raise _cause(e) from None
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                    tries[i] += 1
                    if tries[i] > self.max_task_retries:
                        raise RuntimeError(f"{archs[i].to_string()} killed {tries[i]} scoring workers") from None
                    todo.appendleft(i)  # first again: the order of the results never depends on faults
                    self._replace(slot)
                    free.append(slot)
                    continue
                out[i] = Score(float(value), None if se is None else float(se))
                self.busy_seconds += float(seconds)
                self.scored += 1
                free.append(slot)
        self.wall_seconds += time.perf_counter() - t0
        return [s for s in out if s is not None]

    def close(self) -> None:
        """Kill the actors (the Ray connection stays for the next pool of this process)."""
        import ray

        actors, self._actors = getattr(self, "_actors", []), [None] * self.workers
        for a in actors:
            if a is not None:
                with contextlib.suppress(Exception):  # a cluster gone took it already
                    ray.kill(a, no_restart=True)

    def __enter__(self) -> RayScoringPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cause(e: Any) -> BaseException:
    """The exception the actor's code raised (a ValueError stays a ValueError for the CLI)."""
    cause = getattr(e, "cause", None)
    return cause if isinstance(cause, BaseException) else RuntimeError(str(e).splitlines()[0])


def _last_error_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if "Error:" in ln or "Exception:" in ln]
    return lines[-1] if lines else type(e).__name__


def shutdown() -> None:
    """Disconnect from Ray (stops the local Ray this process started)."""
    import ray

    with _LOCK:
        if ray.is_initialized():
            ray.shutdown()
        _CONNECTED.clear()


class ClusterPool:
    """A :class:`RayScoringPool` on a remote cluster, driven from a child process.

    Ray ends a driver process whose node's raylet died the moment it next talks to it (a
    ``QuickExit``, no exception): for a cluster that goes away, that would take the service's
    worker or the CLI down with it instead of failing the job with an error. The child process is
    the Ray driver; this process only sends it architectures over a pipe, so a cluster gone costs
    the child, and :meth:`evaluate` raises :class:`RayClusterError`. Each pool is a fresh driver,
    so a cluster that came back is simply joined again.
    """

    def __init__(self, spec: ScorerSpec, workers: int, address: str, *, threads: int = 1, device: str = "auto",
                 start_timeout: float = 600.0, poll_seconds: float = 1.0) -> None:
        import multiprocessing as mp

        if address is not None and "://" not in address and not gcs_reachable(address):
            raise RayClusterError(f"cannot connect to {_where(address)}: nothing answers there")
        self.address, self.workers, self.poll_seconds = address, workers, poll_seconds
        self.restarts = self.scored = 0
        self.busy_seconds = self.wall_seconds = 0.0
        ctx = mp.get_context("spawn")  # never fork a process holding torch and Ray threads
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_drive, name="lutnas-ray-driver", daemon=True,
                                 args=(child, spec, workers, address, threads, device, start_timeout, poll_seconds))
        self._proc.start()
        child.close()
        try:
            self.pids, self.use_gpu = self._reply(start_timeout + 120)
        except BaseException:
            self.close()
            raise

    def _reply(self, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._conn.poll(self.poll_seconds):
            if not self._proc.is_alive():
                break
            if deadline is not None and time.monotonic() > deadline:
                raise RayClusterError(f"{_where(self.address)} did not answer within {timeout:g} s")
        try:
            kind, payload = self._conn.recv()
        except (EOFError, OSError):
            raise RayClusterError(f"{_where(self.address)} went away (its Ray driver process ended); the search "
                                  "resumes from its last finished generation once it is back") from None
        if kind == "ok":
            return payload
        cls = {"cluster": RayClusterError, "value": ValueError}.get(kind, RuntimeError)
        raise cls(payload)

    def evaluate(self, archs: Sequence[Architecture]) -> list[Score]:
        if self._proc is None:
            raise RuntimeError("the scoring pool is closed")
        try:
            self._conn.send(("evaluate", list(archs)))
        except (BrokenPipeError, OSError):
            raise RayClusterError(f"{_where(self.address)} went away (its Ray driver process ended)") from None
        scores, stats = self._reply()
        self.restarts, self.scored, self.busy_seconds, self.wall_seconds = stats
        return scores

    def close(self) -> None:
        proc, self._proc = getattr(self, "_proc", None), None
        if proc is None:
            return
        try:
            self._conn.send(("close", None))
        except (BrokenPipeError, OSError):
            pass
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        self._conn.close()

    def __enter__(self) -> ClusterPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drive(conn: Any, spec: ScorerSpec, workers: int, address: str, threads: int, device: str,
           start_timeout: float, poll_seconds: float) -> None:
    """The child of :class:`ClusterPool`: a Ray driver answering ``evaluate`` requests."""

    def fail(e: BaseException) -> None:
        kind = "cluster" if isinstance(e, RayClusterError) else "value" if isinstance(e, ValueError) else "error"
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        conn.send((kind, msg))

    try:
        pool = RayScoringPool(spec, workers, address, threads=threads, device=device,
                              start_timeout=start_timeout, poll_seconds=poll_seconds)
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises it
        fail(e)
        os._exit(0)  # no ray.shutdown(): against a dead cluster Ray itself would end the process
    conn.send(("ok", (pool.pids, pool.use_gpu)))
    while True:
        try:
            what, archs = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            what, archs = "close", None
        if what == "close":
            pool.close()
            os._exit(0)
        try:
            scores = pool.evaluate(archs)
        except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises it
            fail(e)
            os._exit(0)
        conn.send(("ok", (scores, (pool.restarts, pool.scored, pool.busy_seconds, pool.wall_seconds))))


def open_pool(spec: ScorerSpec, workers: int, address: str | None = None, **kwargs: Any) -> Any:
    """The scoring pool for ``address``: in this process on a local Ray (started on demand), behind
    a child-process driver (:class:`ClusterPool`) on a cluster that may go away."""
    if address is None:
        return RayScoringPool(spec, workers, None, **kwargs)
    kwargs.pop("on_dispatch", None)
    kwargs.pop("max_task_retries", None)
    return ClusterPool(spec, workers, address, **kwargs)


__all__ = ["ClusterPool", "RayClusterError", "RayScoringPool", "ScorerSpec", "connect", "gcs_reachable",
           "open_pool", "shutdown"]
