"""Resources of the lutnas REST API (docs/api.md), one class per collection.

Collections are returned as lazy iterators that follow ``next_page_token``; DataFrame helpers
import pandas only when called, so importing the SDK stays light.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from client.errors import LutnasAPIError, LutnasConfigError, LutnasTimeoutError
from client.http import Transport
from client.models import (
    TERMINAL_STATUSES,
    AgentToken,
    ArchitectureInfo,
    Coverage,
    ExportFormat,
    Hardware,
    LatencyEntry,
    ParetoFront,
    Prediction,
    Runtime,
    SearchInfo,
    SearchProgress,
    SearchResult,
    Supernet,
    Team,
)

if TYPE_CHECKING:  # pandas is imported lazily, in the *_df helpers only
    import pandas as pd

EXPORT_TIMEOUT_S = 600.0  # ONNX export of a subnet with inherited weights can take a while
UPLOAD_TIMEOUT_S = 600.0


class Resource:
    def __init__(self, transport: Transport) -> None:
        self._t = transport


class Teams(Resource):
    """Team administration; needs the server's admin token as the client's key."""

    def create(self, name: str) -> Team:
        return Team.model_validate(self._t.json("POST", "/v1/teams", json={"name": name}))


class HardwareTargets(Resource):
    def register(
        self,
        name: str,
        kind: str = "cpu",
        runtime: Runtime | dict[str, Any] | None = None,
        space: str = "paper",
        exist_ok: bool = False,
    ) -> Hardware:
        """Register a hardware target; ``runtime`` defaults to onnxruntime CPU, 1 thread, fp32.

        ``exist_ok=True`` returns the team's target of that name when it exists already with the
        same kind, runtime and space (so a script can be re-run); a target of that name that
        differs is still an error, since its latency table measures something else."""
        rt = runtime if isinstance(runtime, Runtime) else Runtime.model_validate(runtime or {})
        body = {"name": name, "kind": kind, "runtime": rt.model_dump(), "space": space}
        try:
            return Hardware.model_validate(self._t.json("POST", "/v1/hardware", json=body))
        except LutnasAPIError as e:
            if not exist_ok or e.status != 409:
                raise
        found = self.find(name)
        if found is None:  # deleted between the two requests: a plain conflict is the honest answer
            raise LutnasConfigError(f"hardware {name!r} could not be registered and is not listed")
        wanted = (kind, rt.model_dump(include=set(Runtime.model_fields)), space)
        have = (found.kind, found.runtime.model_dump(include=set(Runtime.model_fields)), found.space)
        if wanted != have:
            raise LutnasConfigError(f"hardware {name!r} exists (id {found.id}) with another kind, runtime or space "
                                    f"({found.kind}, {found.runtime.backend} {found.runtime.provider} "
                                    f"x{found.runtime.threads} {found.runtime.precision}, {found.space}); "
                                    "choose another name")
        return found

    def find(self, name: str) -> Hardware | None:
        """The team's hardware target called ``name``, or None."""
        return next((h for h in self.list(page_size=200) if h.name == name), None)

    def list(self, page_size: int = 50) -> Iterator[Hardware]:
        for item in self._t.paginate("/v1/hardware", page_size=page_size):
            yield Hardware.model_validate(item)

    def get(self, hardware_id: int) -> Hardware:
        return Hardware.model_validate(self._t.json("GET", f"/v1/hardware/{int(hardware_id)}"))

    def create_agent_token(self, hardware_id: int, name: str = "agent") -> AgentToken:
        """A new profiler-agent token scoped to this target (the secret is shown only here)."""
        data = self._t.json("POST", f"/v1/hardware/{int(hardware_id)}/agent-tokens", json={"name": name})
        return AgentToken.model_validate(data)


class AgentTokens(Resource):
    def create(self, hardware_id: int, name: str = "agent") -> AgentToken:
        return HardwareTargets(self._t).create_agent_token(hardware_id, name)


class LatencyTables(Resource):
    def _base(self, hardware_id: int) -> str:
        return f"/v1/hardware/{int(hardware_id)}/latency-table"

    def entries(self, hardware_id: int, page_size: int = 500) -> Iterator[LatencyEntry]:
        for item in self._t.paginate(self._base(hardware_id), page_size=page_size):
            yield LatencyEntry.model_validate(item)

    def entries_df(self, hardware_id: int) -> pd.DataFrame:
        import pandas as pd

        columns = list(LatencyEntry.model_fields)
        rows = [e.model_dump(include=set(columns)) for e in self.entries(hardware_id)]
        return pd.DataFrame(rows, columns=columns)

    def coverage(self, hardware_id: int) -> Coverage:
        return Coverage.model_validate(self._t.json("GET", f"{self._base(hardware_id)}/coverage"))

    @overload
    def export_csv(self, hardware_id: int, path: None = None) -> str: ...
    @overload
    def export_csv(self, hardware_id: int, path: str | Path) -> Path: ...
    def export_csv(self, hardware_id: int, path: str | Path | None = None) -> str | Path:
        """The table as CSV text, or written to ``path`` (returned)."""
        text = self._t.request("GET", f"{self._base(hardware_id)}/export.csv").text
        if path is None:
            return text
        out = Path(path)
        out.write_text(text)
        return out

    def predict(self, hardware_id: int, architectures: Sequence[str | dict[str, Any]]) -> list[Prediction]:
        """Predicted latency (ms) of each architecture (LightTrack string or JSON dict)."""
        if isinstance(architectures, str | dict):
            raise LutnasConfigError("architectures must be a list of LightTrack strings or JSON objects")
        data = self._t.json(
            "POST", f"{self._base(hardware_id)}/predict", json={"architectures": list(architectures)}
        )
        return [Prediction.model_validate(p) for p in data["predictions"]]


class Supernets(Resource):
    def register(self, name: str, checkpoint_path: str, data_path: str, exist_ok: bool = False) -> Supernet:
        """Register a checkpoint and validation set by paths *on the server*: only paths under the
        operator's data roots (``LUTNAS_DATA_ROOTS``) are accepted; otherwise use :meth:`upload`.
        ``exist_ok=True`` returns the team's supernet of that name if there is one."""
        if exist_ok and (found := self.find(name)) is not None:
            return found
        body = {"name": name, "checkpoint_path": str(checkpoint_path), "data_path": str(data_path)}
        return Supernet.model_validate(self._t.json("POST", "/v1/supernets", json=body))

    def ensemble(self, name: str, members: Sequence[int], exist_ok: bool = False) -> Supernet:
        """Register an ensemble of the team's supernets (ids; the first lends its weights to exports
        and its validation data to every member): a search on it ranks candidates with the mean of
        the members' scores. ``exist_ok=True`` returns the team's supernet of that name if there is one."""
        if exist_ok and (found := self.find(name)) is not None:
            return found
        body = {"name": name, "members": [int(m) for m in members]}
        return Supernet.model_validate(self._t.json("POST", "/v1/supernets/ensembles", json=body))

    def find(self, name: str) -> Supernet | None:
        """The team's first supernet called ``name`` (names need not be unique), or None."""
        return next((s for s in self.list(page_size=200) if s.name == name), None)

    def upload(self, name: str, checkpoint: str | Path, data: str | Path, exist_ok: bool = False) -> Supernet:
        """Upload a local checkpoint and validation data.

        ``data`` is a ``.tar.gz`` of a GOT-10k-layout folder, or the folder itself (packed into a
        temporary ``.tar.gz`` here). ``exist_ok=True`` returns the team's supernet of that name,
        uploading nothing, if there is one (so a script can be re-run).
        """
        if exist_ok and (found := self.find(name)) is not None:
            return found
        checkpoint, data = Path(checkpoint), Path(data)
        if not checkpoint.is_file():
            raise LutnasConfigError(f"checkpoint {checkpoint} is not a file")
        if not data.exists():
            raise LutnasConfigError(f"validation data {data} does not exist")
        with ExitStack() as stack:
            if data.is_dir():
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lutnas-upload-")))
                archive = tmp / f"{data.name or 'data'}.tar.gz"
                with tarfile.open(archive, "w:gz") as tar:
                    tar.add(data, arcname=data.name or "data")
                data = archive

            def files() -> dict[str, Any]:
                ck = stack.enter_context(checkpoint.open("rb"))
                dt = stack.enter_context(data.open("rb"))
                return {
                    "checkpoint": (checkpoint.name, ck, "application/octet-stream"),
                    "data": (data.name, dt, "application/gzip"),
                }

            result = self._t.json(
                "POST", "/v1/supernets", data={"name": name}, files=files, timeout=UPLOAD_TIMEOUT_S
            )
        return Supernet.model_validate(result)

    def list(self, page_size: int = 50) -> Iterator[Supernet]:
        for item in self._t.paginate("/v1/supernets", page_size=page_size):
            yield Supernet.model_validate(item)

    def get(self, supernet_id: int) -> Supernet:
        return Supernet.model_validate(self._t.json("GET", f"/v1/supernets/{int(supernet_id)}"))


def _front_df(front: ParetoFront) -> pd.DataFrame:
    import pandas as pd

    columns = ["architecture_id", "lighttrack", "score", "score_se", "latency_ms", "predicted_ms", "measured_ms",
               "over_budget"]
    df = pd.DataFrame([p.model_dump(include=set(columns)) for p in front.points], columns=columns)
    df = df.sort_values("latency_ms", kind="stable").reset_index(drop=True)
    df.attrs.update(
        hardware_id=front.hardware_id, hypervolume=front.hypervolume,
        hypervolume_score_ms=front.hypervolume_score_ms, reference_point=front.reference_point,
        budget_ms=front.budget_ms, measured=front.measured,
        reference=front.reference.model_dump(mode="json") if front.reference is not None else None,
    )
    return df


class Architectures(Resource):
    def get(self, architecture_id: str) -> ArchitectureInfo:
        return ArchitectureInfo.model_validate(self._t.json("GET", f"/v1/architectures/{architecture_id}"))

    @overload
    def export(
        self,
        architecture_id: str,
        format: ExportFormat = "onnx",
        supernet_id: int | None = None,
        out_dir: None = None,
    ) -> bytes: ...
    @overload
    def export(
        self,
        architecture_id: str,
        format: ExportFormat,
        supernet_id: int | None,
        out_dir: str | Path,
    ) -> dict[str, Path]: ...
    def export(
        self,
        architecture_id: str,
        format: ExportFormat = "onnx",  # the API's parameter name
        supernet_id: int | None = None,
        out_dir: str | Path | None = None,
    ) -> bytes | dict[str, Path]:
        """Export an architecture as a LightTrack string, JSON, or ONNX (zip of template/search).

        Without ``out_dir`` returns the raw bytes. With it, writes ``<id>.txt`` / ``<id>.json`` or
        extracts ``template.onnx`` and ``search.onnx``, and returns ``{name: path}``.
        """
        if format not in ("lighttrack", "json", "onnx"):
            raise LutnasConfigError(f"format must be lighttrack, json or onnx, got {format!r}")
        if format == "onnx" and supernet_id is None:
            raise LutnasConfigError("ONNX export needs supernet_id (weights are inherited from it)")
        response = self._t.request(
            "GET",
            f"/v1/architectures/{architecture_id}/export",
            params={"format": format, "supernet_id": supernet_id},
            timeout=EXPORT_TIMEOUT_S if format == "onnx" else None,
        )
        if out_dir is None:
            return response.content
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if format == "lighttrack":
            path = out / f"{architecture_id}.txt"
            path.write_text(response.text.strip() + "\n")
            return {"lighttrack": path}
        if format == "json":
            path = out / f"{architecture_id}.json"
            path.write_text(json.dumps(response.json(), indent=2) + "\n")
            return {"json": path}
        return _extract_onnx_zip(response.content, out)


def _extract_onnx_zip(content: bytes, out: Path) -> dict[str, Path]:
    written: dict[str, Path] = {}
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile:
        raise LutnasConfigError("the server's ONNX export is not a zip archive") from None
    with archive:
        for info in archive.infolist():
            name = Path(info.filename).name  # never trust paths inside an archive
            if info.is_dir() or not name:
                continue
            path = out / name
            path.write_bytes(archive.read(info))
            written[Path(name).stem] = path
    return written


class Search:
    """A handle on one search job: status, progress, waiting, results and fronts."""

    def __init__(self, transport: Transport, info: SearchInfo) -> None:
        self._t = transport
        self.info = info

    def __repr__(self) -> str:
        return f"Search(id={self.id}, status={self.status!r})"

    @property
    def id(self) -> int:
        return self.info.id

    @property
    def status(self) -> str:
        return self.info.status

    @property
    def progress(self) -> SearchProgress:
        return self.info.progress

    @property
    def request(self) -> dict[str, Any]:
        return self.info.request

    @property
    def error(self) -> str | None:
        return self.info.error

    @property
    def done(self) -> bool:
        return self.info.status in TERMINAL_STATUSES

    @property
    def hardware_ids(self) -> list[int]:
        return [int(h) for h in self.info.request.get("hardware_ids", [])]

    @property
    def supernet_id(self) -> int | None:
        value = self.info.request.get("supernet_id")
        return None if value is None else int(value)

    def refresh(self) -> Search:
        self.info = SearchInfo.model_validate(self._t.json("GET", f"/v1/searches/{self.id}"))
        return self

    def cancel(self) -> Search:
        self.info = SearchInfo.model_validate(self._t.json("POST", f"/v1/searches/{self.id}/cancel"))
        return self

    def wait(
        self,
        progress: Callable[[Search], None] | None = None,
        poll: float = 1.0,
        timeout: float | None = None,
    ) -> Search:
        """Poll until the job ends (succeeded, failed or cancelled) and return self.

        ``progress(search)`` is called after every poll. Raises :class:`LutnasTimeoutError` after
        ``timeout`` seconds (the job keeps running on the server).
        """
        if poll <= 0:
            raise LutnasConfigError("poll must be > 0 seconds")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.refresh()
            if progress is not None:
                progress(self)
            if self.done:
                return self
            if deadline is not None and time.monotonic() >= deadline:
                raise LutnasTimeoutError(
                    f"search {self.id} still {self.status} after {timeout:g}s "
                    f"(generation {self.progress.generation}/{self.progress.generations})"
                )
            sleep = poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic()))
            time.sleep(sleep)

    def results(self, page_size: int = 100) -> Iterator[SearchResult]:
        """Ranked architectures (best first)."""
        for item in self._t.paginate(f"/v1/searches/{self.id}/results", page_size=page_size):
            yield SearchResult.model_validate(item)

    def results_df(self) -> pd.DataFrame:
        """Ranked results, one row per architecture; ``latency_ms_<hardware id>`` per target."""
        import pandas as pd

        rows = []
        for r in self.results():
            row = r.model_dump(exclude={"latency_ms"})
            row.update({f"latency_ms_{hw}": ms for hw, ms in r.latency_ms.items()})
            rows.append(row)
        base = ["rank", "architecture_id", "lighttrack", "score", "score_se", "flops", "params", "feasible"]
        latency_cols = sorted({c for row in rows for c in row if c.startswith("latency_ms_")})
        extra = sorted({c for row in rows for c in row} - set(base) - set(latency_cols))
        return pd.DataFrame(rows, columns=base + latency_cols + extra)

    def _hardware(self, hardware_id: int | None) -> int:
        if hardware_id is not None:
            return int(hardware_id)
        if not self.hardware_ids:
            self.refresh()
        if not self.hardware_ids:
            raise LutnasConfigError(f"search {self.id} names no hardware; pass hardware_id")
        return self.hardware_ids[0]

    def pareto(self, hardware_id: int | None = None) -> ParetoFront:
        """The search's front of score vs latency on ``hardware_id`` (default: its first target)."""
        hw = self._hardware(hardware_id)
        data = self._t.json("GET", f"/v1/searches/{self.id}/pareto", params={"hardware_id": hw})
        return ParetoFront.model_validate(data)

    def pareto_df(self, hardware_id: int | None = None) -> pd.DataFrame:
        """The front as a DataFrame sorted by latency (``score_se``: each score's standard error);
        ``df.attrs`` holds the hypervolume and ``reference``, LightTrack-Mobile's point (a dict)."""
        return _front_df(self.pareto(hardware_id))

    def best(self) -> SearchResult | None:
        """The top-ranked architecture, or None when the search has no results."""
        return next(iter(self.results(page_size=1)), None)

    def export(
        self,
        architecture_id: str | None = None,
        format: ExportFormat = "onnx",  # the API's parameter name
        out_dir: str | Path | None = None,
    ) -> bytes | dict[str, Path]:
        """Export one of this search's architectures (default: the best) with the search's supernet.

        Same return values as :meth:`Architectures.export`.
        """
        if architecture_id is None:
            best = self.best()
            if best is None:
                raise LutnasConfigError(f"search {self.id} has no results yet (status {self.status})")
            architecture_id = best.architecture_id
        return Architectures(self._t).export(architecture_id, format, self.supernet_id, out_dir)  # type: ignore[call-overload]


class Searches(Resource):
    def submit(
        self,
        supernet_id: int,
        hardware_ids: Sequence[int],
        objective: str = "pareto",
        *,
        budget_ms: float | None = None,
        budget_hardware_id: int | None = None,
        population: int | None = None,
        generations: int | None = None,
        seed: int | None = None,
        mode: str | None = None,
        use_predictor: bool | None = None,
        missing_units: str | None = None,
        latency_stat: str | None = None,
        **extra: Any,
    ) -> Search:
        """Submit a search job; options left as None take the server's defaults.

        The server validates the request; bad values raise :class:`LutnasAPIError` (422) naming
        the field.
        """
        body: dict[str, Any] = {
            "supernet_id": supernet_id,
            "hardware_ids": [int(h) for h in hardware_ids],
            "objective": objective,
            "budget_ms": budget_ms,
            "budget_hardware_id": budget_hardware_id,
            "population": population,
            "generations": generations,
            "seed": seed,
            "mode": mode,
            "use_predictor": use_predictor,
            "missing_units": missing_units,
            "latency_stat": latency_stat,
            **extra,
        }
        body = {k: v for k, v in body.items() if v is not None}
        response = self._t.request("POST", "/v1/searches", json=body)
        try:
            data = response.json()
            info = SearchInfo.model_validate(data)
        except ValueError:  # no body: follow Location
            location = response.headers.get("Location")
            if not location:
                raise
            info = SearchInfo.model_validate(self._t.json("GET", location))
        return Search(self._t, info)

    def get(self, search_id: int) -> Search:
        return Search(self._t, SearchInfo.model_validate(self._t.json("GET", f"/v1/searches/{int(search_id)}")))

    def list(self, page_size: int = 50) -> Iterator[Search]:
        """The team's searches, newest first."""
        for item in self._t.paginate("/v1/searches", page_size=page_size):
            yield Search(self._t, SearchInfo.model_validate(item))

    def cancel(self, search_id: int) -> Search:
        return Search(
            self._t, SearchInfo.model_validate(self._t.json("POST", f"/v1/searches/{int(search_id)}/cancel"))
        )


class Fronts(Resource):
    def get(self, supernet_id: int, hardware_id: int) -> ParetoFront:
        params = {"supernet_id": int(supernet_id), "hardware_id": int(hardware_id)}
        return ParetoFront.model_validate(self._t.json("GET", "/v1/pareto", params=params))

    def get_df(self, supernet_id: int, hardware_id: int) -> pd.DataFrame:
        return _front_df(self.get(supernet_id, hardware_id))
