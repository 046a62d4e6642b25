"""HTTP plumbing of the SDK: auth header, bounded retries, problem+json errors, pagination.

Retries: a request that never reached the server (connection refused/reset before sending,
connect timeout) is retried for any method; a 503 is retried for any method (the server
refused the work); other transport errors only for idempotent methods. Delays grow
exponentially (``backoff * 2**attempt``, capped) plus optional jitter from a seeded RNG, so the
schedule is reproducible.

``retries`` is the number of retries at least; a server that is away (connection refused, 503,
a dropped connection on an idempotent request) is further waited for until ``retry_for`` seconds
have passed since the first attempt, polling at most every ``RESTART_POLL_S``: a server restart
of a minute is ridden out, each retry logged. ``retries=0`` never retries.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from client.errors import LutnasAPIError, LutnasConfigError, LutnasConnectionError

log = logging.getLogger("lutnas.client")
log.addHandler(logging.NullHandler())  # a library logs only where the application asks

DEFAULT_SERVER = "http://127.0.0.1:8000"
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
MAX_DELAY_S = 30.0
RESTART_POLL_S = 5.0  # while riding out a restart: poll at least this often, so it is noticed soon

FilesFactory = Callable[[], dict[str, Any]]


def normalise_server(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise LutnasConfigError(f"server URL must start with http:// or https://, got {url!r}")
    try:
        httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as e:
        raise LutnasConfigError(f"malformed server URL {url!r}: {e}") from None
    return url


class Transport:
    """An ``httpx.Client`` bound to one server and key, with retries and error mapping."""

    def __init__(
        self,
        server: str,
        api_key: str | None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        jitter: float = 0.0,
        seed: int = 0,
        http: httpx.Client | None = None,
        retry_for: float = 0.0,
    ) -> None:
        if retries < 0:
            raise LutnasConfigError("retries must be >= 0")
        if retry_for < 0:
            raise LutnasConfigError("retry_for must be >= 0 seconds")
        self.retry_for = retry_for if retries else 0.0
        self.server = normalise_server(server)
        self.api_key = api_key
        self.retries = retries
        self.backoff = backoff
        self.jitter = jitter
        self._rng = random.Random(seed)  # retry jitter, not a secret  # nosec B311
        self._owns_http = http is None  # a caller's httpx.Client is the caller's to close
        self._http = http or httpx.Client(
            base_url=self.server,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"User-Agent": "lutnas-client", "Accept": "application/json"},
        )

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    # -- requests --------------------------------------------------------------------------

    def _delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), MAX_DELAY_S)
            except ValueError:
                pass  # an HTTP-date: fall back to our own schedule
        delay = min(self.backoff * (2**attempt), MAX_DELAY_S)
        if self.jitter:
            delay += self._rng.uniform(0.0, self.jitter * delay)
        return delay

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: dict[str, Any] | None = None,
        files: FilesFactory | None = None,
        auth: bool = True,
        timeout: float | None = None,
        retry: bool = True,
    ) -> httpx.Response:
        """Send one request (with retries) and return the response; raise on error statuses.

        ``files`` is a factory returning httpx's ``files=`` mapping, called once per attempt so
        that file objects are fresh (rewound) for every retry.
        """
        method = method.upper()
        headers = self._headers(auth)
        if params:
            params = {k: v for k, v in params.items() if v is not None}
        send = {"params": params, "json": json, "data": data, "headers": headers}
        if timeout is not None:
            send["timeout"] = timeout
        url = f"{self.server}{path}"
        retries = self.retries if retry else 0
        window = self.retry_for if retry else 0.0
        attempt, start = 0, time.monotonic()
        while True:
            response, error, retry_after = self._attempt(method, path, url, send, files)
            if response is not None:
                if response.status_code != 503 or not self._again(attempt, retries, start, window):
                    if response.status_code >= 400:
                        raise _api_error(response, method, url)
                    if attempt:
                        log.warning("%s %s: the server answered again after %d retr%s", method, url, attempt,
                                    "y" if attempt == 1 else "ies")
                    return response
                error, retry_after = _api_error(response, method, url), response.headers.get("Retry-After")
            if not self._again(attempt, retries, start, window):
                raise self._gave_up(error, method, url, attempt)
            self._wait(error, method, url, attempt, retries, start, window, retry_after)
            attempt += 1

    def _headers(self, auth: bool) -> dict[str, str]:
        if not auth:
            return {}
        if not self.api_key:
            raise LutnasConfigError("no API key: set LUTNAS_API_KEY or pass --api-key / api_key=")
        return {"Authorization": f"Bearer {self.api_key}"}

    def _attempt(self, method: str, path: str, url: str, send: dict[str, Any],
                 files: FilesFactory | None) -> tuple[httpx.Response | None, Exception | None, str | None]:
        """One try: ``(response, None, None)``, or ``(None, error, None)`` for a transport error
        that may be retried; raises for one that must not be (a non-idempotent request that may
        have reached the server, a malformed URL)."""
        try:
            return self._http.request(method, path, files=files() if files else None, **send), None, None
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            return None, e, None
        except httpx.TransportError as e:
            if method not in IDEMPOTENT:
                raise LutnasConnectionError(
                    f"{method} {url} failed: {_reason(e)} (not retried: the request may have been received)"
                ) from None
            return None, e, None
        except httpx.InvalidURL as e:
            raise LutnasConfigError(f"malformed request URL {url!r}: {e}") from None

    def _gave_up(self, error: Exception | None, method: str, url: str, attempt: int) -> LutnasConnectionError:
        what = (
            f"cannot reach the lutnas server at {self.server}"
            if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
            else f"{method} {url} failed"
        )
        return LutnasConnectionError(f"{what}: {_reason(error)} (after {attempt + 1} attempt{'s' if attempt else ''})")

    def _wait(self, error: Exception | None, method: str, url: str, attempt: int, retries: int, start: float,
              window: float, retry_after: str | None) -> None:
        """Sleep before retry ``attempt + 1``: the backoff (or the server's Retry-After), capped by
        the restart poll once past the counted retries (waiting for the server to come back)."""
        delay = self._delay(attempt, retry_after)
        attempt += 1
        if attempt > retries:
            elapsed = time.monotonic() - start
            delay = max(min(delay, RESTART_POLL_S, window - elapsed), 0.0)
            log.warning("%s %s: %s; retry %d in %.2fs (retrying for up to %gs, %.0fs so far)",
                        method, url, _reason(error), attempt, delay, window, elapsed)
        else:
            log.warning("%s %s: %s; retry %d/%d in %.2fs", method, url, _reason(error), attempt, retries, delay)
        time.sleep(delay)

    @staticmethod
    def _again(attempt: int, retries: int, start: float, window: float) -> bool:
        """Whether a failed attempt is retried: within the counted retries, or the time window."""
        return attempt < retries or time.monotonic() - start < window

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise LutnasAPIError(
                status=response.status_code,
                title="Invalid response",
                detail=f"expected JSON from {method} {path}, got {response.headers.get('content-type')}",
            ) from None

    def paginate(
        self, path: str, *, params: dict[str, Any] | None = None, page_size: int = 50
    ) -> Iterator[dict[str, Any]]:
        """Yield the items of a paginated collection, following ``next_page_token``."""
        query = dict(params or {}, page_size=page_size)
        while True:
            page = self.json("GET", path, params=query)
            yield from page.get("items", [])
            token = page.get("next_page_token")
            if not token:
                return
            query["page_token"] = token


def _reason(error: Exception) -> str:
    if isinstance(error, LutnasAPIError):
        return str(error)
    text = str(error) or type(error).__name__
    return " ".join(text.split())


def _api_error(response: httpx.Response, method: str, url: str) -> LutnasAPIError:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return LutnasAPIError.from_body(response.status_code, response.reason_phrase, body, method=method, url=url)
