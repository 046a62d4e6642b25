"""The lutnas Python SDK entry point: :class:`Client`.

    from client import Client

    with Client() as c:                      # LUTNAS_SERVER, LUTNAS_API_KEY
        hw = c.hardware.register("pixel7-cpu", kind="cpu")
        token = c.agent_tokens.create(hw.id).token
        search = c.searches.submit(supernet_id=1, hardware_ids=[hw.id], population=16, generations=4)
        search.wait(progress=lambda s: print(s.progress.fraction))
        front = search.pareto_df(hw.id)
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import httpx

from client.errors import LutnasAPIError, LutnasConnectionError, LutnasTimeoutError
from client.http import DEFAULT_SERVER, Transport
from client.models import Me, ParetoFront
from client.resources import (
    AgentTokens,
    Architectures,
    Fronts,
    HardwareTargets,
    LatencyTables,
    Search,
    Searches,
    Supernets,
    Teams,
)

if TYPE_CHECKING:
    import pandas as pd


class Client:
    """A connection to one lutnas server with one key (team API key, or the admin token).

    ``server`` defaults to ``$LUTNAS_SERVER`` (else http://127.0.0.1:8000), ``api_key`` to
    ``$LUTNAS_API_KEY``. Connection errors and 503 answers are retried ``retries`` times with
    exponential backoff (``backoff * 2**n`` seconds, plus up to ``jitter`` of that drawn from a
    ``seed``-ed RNG), and beyond that until ``retry_for`` seconds have passed, so a server restart
    of a minute is ridden out (each retry is logged on the ``lutnas.client`` logger; ``retries=0``
    never retries). Server errors raise :class:`client.errors.LutnasAPIError`.
    """

    def __init__(
        self,
        server: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        jitter: float = 0.0,
        seed: int = 0,
        http: httpx.Client | None = None,
        retry_for: float = 60.0,
    ) -> None:
        server = server or os.environ.get("LUTNAS_SERVER") or DEFAULT_SERVER
        api_key = api_key or os.environ.get("LUTNAS_API_KEY") or None
        self._t = Transport(
            server, api_key, timeout=timeout, retries=retries, backoff=backoff, jitter=jitter, seed=seed, http=http,
            retry_for=retry_for,
        )
        self.teams = Teams(self._t)
        self.hardware = HardwareTargets(self._t)
        self.agent_tokens = AgentTokens(self._t)
        self.latency = LatencyTables(self._t)
        self.supernets = Supernets(self._t)
        self.searches = Searches(self._t)
        self.architectures = Architectures(self._t)
        self.fronts = Fronts(self._t)

    @property
    def server(self) -> str:
        return self._t.server

    @property
    def api_key(self) -> str | None:
        return self._t.api_key

    def __repr__(self) -> str:
        return f"Client(server={self.server!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._t.close()

    def health(self) -> dict[str, Any]:
        """``GET /healthz`` (no key needed)."""
        return self._t.json("GET", "/healthz", auth=False)

    def wait_until_ready(self, timeout: float = 60.0, poll: float = 0.25) -> dict[str, Any]:
        """Poll ``/healthz`` until the server answers with database ok (e.g. right after start)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                health = self._t.json("GET", "/healthz", auth=False, retry=False)
                if health.get("database") == "ok":
                    return health
                last = f"database {health.get('database')}"
            except (LutnasConnectionError, LutnasAPIError) as e:
                last = str(e)
            if time.monotonic() >= deadline:
                raise LutnasTimeoutError(f"server {self.server} not ready after {timeout:g}s: {last}")
            time.sleep(poll)

    def me(self) -> Me:
        """The team the key belongs to."""
        return Me.model_validate(self._t.json("GET", "/v1/me"))

    def search(self, search_id: int) -> Search:
        """Shorthand for ``client.searches.get(search_id)``."""
        return self.searches.get(search_id)

    def pareto(self, supernet_id: int, hardware_id: int) -> ParetoFront:
        """The team's front across all its finished searches for (supernet, hardware)."""
        return self.fronts.get(supernet_id, hardware_id)

    def pareto_df(self, supernet_id: int, hardware_id: int) -> pd.DataFrame:
        """The team's front as a DataFrame (architecture_id, lighttrack, score, latency_ms)."""
        return self.fronts.get_df(supernet_id, hardware_id)
