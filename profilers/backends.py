"""Measurement backends, registered by name.

Running is separate from parsing (after nn-Meter's ``builder/backends/interface.py``): a
backend loads a model and returns raw per-run timings in nanoseconds; turning those into
statistics is ``profilers.measure``'s job. This module imports only numpy, onnxruntime (lazily)
and the standard library, so it runs on a device without torch, fastapi or sqlalchemy.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ModelSource = str | Path | bytes

_REGISTRY: dict[str, type[Backend]] = {}
CLOCKS: dict[str, Callable[[], int]] = {"wall": time.perf_counter_ns, "cpu": time.process_time_ns}


def register_backend(name: str) -> Callable[[type[Backend]], type[Backend]]:
    """Class decorator: make a backend available to :func:`get_backend` under ``name``."""

    def deco(cls: type[Backend]) -> type[Backend]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available_backends() -> list[str]:
    return sorted(_REGISTRY)


def get_backend(name: str, **config: Any) -> Backend:
    """A configured backend by name (``onnxruntime``, ``torch``, ``command``, ``litert``, ``tensorrt``); unknown
    names raise ValueError."""
    if name == "litert" and name not in _REGISTRY:
        import profilers.litert  # noqa: F401 - registers itself; ai_edge_litert stays lazy inside it
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(available_backends())}") from None
    return cls(**config)


class LoadedModel(ABC):
    """A model ready to run on fixed, seeded random inputs."""

    @abstractmethod
    def run(self) -> None:
        """One inference."""

    def time_runs(self, n: int, clock: str = "wall", flush: np.ndarray | None = None,
                  warm_inputs: bool = False) -> np.ndarray:
        """Time of each of ``n`` consecutive runs in nanoseconds (raw, unparsed).

        ``clock``: ``wall`` (latency as a user sees it) or ``cpu`` (CPU time of this process:
        immune to preemption by other processes on a shared machine, equal to wall time on a
        quiet one for single-threaded runs). ``flush``: a buffer read (untimed) before every run
        to evict the private caches, as a unit inside a whole network finds its weights (last
        used a frame ago); with ``warm_inputs`` the inputs are then read again, since there the
        previous unit has just written them (and activations are most of a unit's bytes).
        """
        out = np.empty(n, dtype=np.int64)
        clock_fn = CLOCKS[clock]
        run = self.run
        inputs = self.input_arrays() if warm_inputs else []
        for i in range(n):
            if flush is not None:
                flush.sum()  # read only: no dirty lines left to write back during the run
                for a in inputs:
                    a.sum()
            t0 = clock_fn()
            run()
            out[i] = clock_fn() - t0
        return out

    def input_arrays(self) -> list[np.ndarray]:
        """Host arrays holding the model's inputs (their memory is what the model reads)."""
        return []

    def timed_batch(self) -> np.ndarray | None:
        """All of a measurement's run times (ns) at once, for models timed by something else (a
        device's own benchmark tool, which warms up itself); None: the protocol times the runs."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (optional)."""


class Backend(ABC):
    """A runtime configuration on this device (runtime, provider, threads, precision)."""

    name: str = "?"
    # What the models it runs are: ``onnx`` (onnxruntime, the command backend's default) or
    # ``tflite`` (LiteRT); the exporting side converts units and subnets to it.
    model_format: str = "onnx"

    @abstractmethod
    def load(self, model: ModelSource, seed: int = 0) -> LoadedModel:
        """Load a model and build its random inputs from ``seed``."""

    @abstractmethod
    def runtime_info(self) -> dict[str, Any]:
        """Runtime name/version and configuration, recorded with every measurement."""

    def node_trace(self, model: ModelSource, runs: int = 20, seed: int = 0,
                   flush: np.ndarray | None = None) -> dict[str, Any] | None:
        """Per-node timings of ``runs`` inferences (raw, unparsed; ``profilers.layout`` parses
        them), each after reading ``flush`` as timed runs do, or None where the runtime cannot
        trace nodes."""
        return None

    def config(self) -> dict[str, Any]:
        """The configuration a LUT is keyed by (backend, provider, threads, precision, ...)."""
        info = self.runtime_info()
        return {k: info[k] for k in ("backend", "provider", "threads", "precision", "graph_optimization")
                if k in info}


# -- onnxruntime ------------------------------------------------------------------------------

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}

GRAPH_OPT_LEVELS = ("disable", "basic", "extended", "all")
# What the models a backend is given were exported as: int8 models arrive quantized (QDQ, by
# ``latency_tables.quantize`` on the exporting side); the backend runs them as they are, and the
# precision keys the table.
PRECISIONS = ("fp32", "int8")


def concrete_shape(shape: Sequence[Any]) -> list[int]:
    """A model's declared shape with symbolic or unknown dims as 1 (batch 1)."""
    return [d if isinstance(d, int) and d > 0 else 1 for d in shape]


def random_inputs(specs: Sequence[tuple[str, Sequence[Any], Any]], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random arrays for ``(name, shape, dtype)`` specs; symbolic dims become 1."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, shape, dtype in specs:
        dims = concrete_shape(shape)
        dtype = np.dtype(dtype)
        if dtype.kind == "f":
            arr = rng.standard_normal(dims, dtype=np.float32).astype(dtype)
        elif dtype.kind == "b":
            arr = rng.integers(0, 2, dims).astype(dtype)
        else:
            arr = rng.integers(0, 8, dims).astype(dtype)
        feeds[name] = np.ascontiguousarray(arr)
    return feeds


class _OrtModel(LoadedModel):
    def __init__(self, session: Any, feeds: dict[str, np.ndarray], device: str) -> None:
        import onnxruntime as ort

        self.session = session
        self.feeds = feeds
        self.device = device
        # IO binding: inputs bound once, outputs bound once to device-allocated buffers, so a run
        # measures the graph, not numpy conversions (the same for unit and end-to-end models).
        self.binding = session.io_binding()
        for name, arr in feeds.items():
            self.binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(arr, device, 0))
        for out in session.get_outputs():
            self.binding.bind_output(out.name, device)
        self.session.run_with_iobinding(self.binding)  # allocates the bound outputs once
        outputs = self.binding.get_outputs()
        self.binding.clear_binding_outputs()
        for out, val in zip(session.get_outputs(), outputs, strict=True):
            self.binding.bind_ortvalue_output(out.name, val)

    def run(self) -> None:
        self.session.run_with_iobinding(self.binding)

    def input_arrays(self) -> list[np.ndarray]:
        # A CPU OrtValue made from a numpy array shares its memory; device inputs have no host copy.
        return list(self.feeds.values()) if self.device == "cpu" else []

    def outputs(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.binding.get_outputs()]


@register_backend("onnxruntime")
class OnnxRuntimeBackend(Backend):
    """onnxruntime with any execution provider, ``threads`` intra-op threads, inter-op 1,
    sequential execution and a chosen graph optimisation level."""

    def __init__(self, provider: str = "CPUExecutionProvider", threads: int = 1,
                 graph_optimization: str = "all", precision: str = "fp32",
                 provider_options: dict[str, Any] | None = None) -> None:
        import onnxruntime as ort

        if provider not in ort.get_available_providers():
            raise ValueError(f"execution provider {provider!r} is not available here; available: "
                             f"{', '.join(ort.get_available_providers())}")
        if graph_optimization not in GRAPH_OPT_LEVELS:
            raise ValueError(f"graph_optimization must be one of {', '.join(GRAPH_OPT_LEVELS)}")
        if int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.provider = provider
        self.threads = int(threads)
        self.graph_optimization = graph_optimization
        self.precision = precision
        self.provider_options = provider_options or {}

    def session_options(self) -> Any:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.graph_optimization]
        so.log_severity_level = 3
        return so

    def _session(self, model: ModelSource, so: Any) -> tuple[Any, list[tuple[str, Any, Any]]]:
        """An inference session with options ``so`` and its inputs' (name, shape, dtype) specs."""
        import onnxruntime as ort

        if not isinstance(model, bytes) and not Path(model).is_file():
            raise FileNotFoundError(f"no such model file: {model}")
        src = model if isinstance(model, bytes) else str(model)
        session = ort.InferenceSession(src, sess_options=so, providers=[(self.provider, self.provider_options)])
        specs = []
        for inp in session.get_inputs():
            if inp.type not in _ORT_TYPES:
                raise ValueError(f"input {inp.name!r} has unsupported type {inp.type}")
            specs.append((inp.name, inp.shape, _ORT_TYPES[inp.type]))
        return session, specs

    def load(self, model: ModelSource, seed: int = 0) -> LoadedModel:
        session, specs = self._session(model, self.session_options())
        device = "cuda" if self.provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else "cpu"
        return _OrtModel(session, random_inputs(specs, seed), device)

    def node_trace(self, model: ModelSource, runs: int = 20, seed: int = 0,
                   flush: np.ndarray | None = None) -> dict[str, Any] | None:
        """onnxruntime's own profiler over ``runs`` inferences: its Chrome-trace events plus the
        model's input and output shapes (what ``profilers.layout`` needs to find boundary
        reorders). A separate session, so timed sessions never carry the profiler."""
        import json
        import tempfile

        so = self.session_options()
        with tempfile.TemporaryDirectory(prefix="lutnas-trace-") as tmp:
            so.enable_profiling = True
            so.profile_file_prefix = str(Path(tmp) / "trace")
            session, specs = self._session(model, so)
            feeds = random_inputs(specs, seed)
            for _ in range(runs):
                if flush is not None:
                    flush.sum()
                session.run(None, feeds)
            events = json.loads(Path(session.end_profiling()).read_text())
        return {"events": events, "inputs": [list(a.shape) for a in feeds.values()],
                "outputs": [concrete_shape(o.shape) for o in session.get_outputs()]}

    def runtime_info(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {
            "backend": self.name,
            "runtime": "onnxruntime",
            "runtime_version": ort.__version__,
            "provider": self.provider,
            "threads": self.threads,
            "inter_op_threads": 1,
            "execution_mode": "sequential",
            "graph_optimization": self.graph_optimization,
            "precision": self.precision,
        }


# -- torch (CPU) --------------------------------------------------------------------------------

class _TorchModel(LoadedModel):
    def __init__(self, module: Any, inputs: tuple[Any, ...]) -> None:
        self.module = module
        self.inputs = inputs
        import torch

        self._torch = torch

    def run(self) -> None:
        with self._torch.inference_mode():
            self.module(*self.inputs)

    def input_arrays(self) -> list[np.ndarray]:
        return [t.numpy() for t in self.inputs]  # from_numpy tensors: the same memory


@register_backend("torch")
class TorchBackend(Backend):
    """PyTorch on CPU. Loads a TorchScript file/bytes, or an ``nn.Module`` directly; inputs are
    seeded random tensors of ``input_shapes`` (list of shapes, one per positional input)."""

    model_format = "torch"  # TorchScript or an nn.Module, never an exported file format

    def __init__(self, threads: int = 1, input_shapes: Sequence[Sequence[int]] | None = None,
                 precision: str = "fp32") -> None:
        if int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if precision != "fp32":
            raise ValueError("only fp32 is supported by the torch backend")
        self.threads = int(threads)
        self.input_shapes = [tuple(s) for s in input_shapes] if input_shapes else None
        self.precision = precision

    def load(self, model: ModelSource | Any, seed: int = 0) -> LoadedModel:
        import io

        import torch

        torch.set_num_threads(self.threads)
        if isinstance(model, bytes):
            module = torch.jit.load(io.BytesIO(model), map_location="cpu")
        elif isinstance(model, str | Path):
            module = torch.jit.load(str(model), map_location="cpu")
        else:
            module = model
        module.eval()
        if not self.input_shapes:
            raise ValueError("the torch backend needs input_shapes (one shape per model input)")
        feeds = random_inputs([(f"in{i}", s, np.float32) for i, s in enumerate(self.input_shapes)], seed)
        return _TorchModel(module, tuple(torch.from_numpy(a) for a in feeds.values()))

    def runtime_info(self) -> dict[str, Any]:
        import torch

        return {
            "backend": self.name,
            "runtime": "torch",
            "runtime_version": torch.__version__,
            "provider": "cpu",
            "threads": self.threads,
            "graph_optimization": "none",
            "precision": self.precision,
        }


# -- a device's own tool, run by command ------------------------------------------------------

TIME_UNITS = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0}
COMMAND_PLACEHOLDERS = ("model", "runs", "warmup", "threads")
# What profilers/runners/ort_runner.py prints: one line per timed run, ``run 3: 1.2345 ms``.
DEFAULT_PATTERN = r"^run \d+: ([0-9.eE+-]+) ms$"
# LiteRT's ``benchmark_model`` (on a phone over adb: profilers/runners/litert_adb.sh) ends with one
# summary line, e.g. ``Inference timings in us: Init: 5685, First inference: 18535, Warmup (avg):
# 14462.3, Inference (avg): 14575.2``: the mean of its --num_runs timed runs, in microseconds (use
# time_unit "us"). It prints no per-run times, so one call gives one figure (the run mean).
BENCHMARK_MODEL_PATTERN = r"Inference timings in us:.*?Inference \(avg\): ([0-9.eE+-]+)"
MODEL_FORMATS = ("onnx", "tflite")


class CommandError(OSError):
    """The configured command failed, timed out, or printed no timing the pattern matches (an
    OSError: like a missing file, something outside this process; CLIs print it as one line)."""


class _CommandModel(LoadedModel):
    """A model file that a command times: one invocation gives all of a measurement's runs."""

    def __init__(self, backend: CommandBackend, path: Path, tmp: Any) -> None:
        self.backend = backend
        self.path = path
        self._tmp = tmp  # owns the file when the model came as bytes

    def run(self) -> None:
        self.backend.invoke(self.path, 1, 0)

    def time_runs(self, n: int, clock: str = "wall", flush: np.ndarray | None = None,
                  warm_inputs: bool = False) -> np.ndarray:
        """``n`` runs timed by the device's tool (``clock``, ``flush``: the device's business)."""
        return self.backend.invoke(self.path, n, 0)

    def timed_batch(self) -> np.ndarray:
        return self.backend.invoke(self.path, self.backend.runs, self.backend.warmup)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


@register_backend("command")
class CommandBackend(Backend):
    """Runs each model through a command the user configures, for devices that cannot run Python:
    e.g. ``adb push`` then the phone's benchmark binary (wrapped in a small script), or ``ssh board
    ...``. ``command`` is one command line with placeholders ``{model}`` (the model file on this
    host), ``{runs}``, ``{warmup}`` and ``{threads}``; it is split like a shell would (``shlex``)
    but never run through a shell, so a pipeline or ``&&`` needs a script. Each match of
    ``pattern`` (a regex with one group, multiline) in its standard output is one run's time in
    ``time_unit``; a tool that prints only a summary (one average) gives one figure per call.
    ``provider`` names the device and runtime in the table's key (e.g. ``pixel7-ort-nnapi``).
    ``model_format``: what the command runs, ``onnx`` or ``tflite`` (LiteRT's ``benchmark_model``:
    ``BENCHMARK_MODEL_PATTERN``, ``time_unit="us"``, e.g. ``command="profilers/runners/litert_adb.sh
    {model} {runs} {warmup} {threads}"``); the exporting side converts units to it."""

    def __init__(self, command: str, pattern: str = DEFAULT_PATTERN, time_unit: str = "ms", runs: int = 50,
                 warmup: int = 5, threads: int = 1, provider: str | None = None, precision: str = "fp32",
                 graph_optimization: str = "device", timeout_s: float = 600.0, model_format: str = "onnx") -> None:
        import re
        import shlex
        import string

        try:
            argv = shlex.split(command)
        except ValueError as e:
            raise ValueError(f"command: {e}") from None
        if not argv:
            raise ValueError("command is empty")
        fields = set()
        for arg in argv:
            try:
                fields |= {f for _, f, _, _ in string.Formatter().parse(arg) if f is not None}
            except ValueError as e:
                raise ValueError(f"command argument {arg!r}: {e}") from None
        unknown = fields - set(COMMAND_PLACEHOLDERS)
        if unknown:
            raise ValueError(f"command has unknown placeholder(s) {', '.join(sorted(unknown))}; "
                             f"use {', '.join('{' + p + '}' for p in COMMAND_PLACEHOLDERS)}")
        if "model" not in fields:
            raise ValueError("command must contain {model} (the model file to run)")
        try:
            regex = re.compile(pattern, re.MULTILINE)
        except re.error as e:
            raise ValueError(f"pattern {pattern!r}: {e}") from None
        if regex.groups != 1:
            raise ValueError(f"pattern must have exactly one group (the time), it has {regex.groups}")
        if time_unit not in TIME_UNITS:
            raise ValueError(f"time_unit must be one of {', '.join(TIME_UNITS)}")
        if int(runs) < 1 or int(warmup) < 0 or int(threads) < 1:
            raise ValueError("need runs >= 1, warmup >= 0, threads >= 1")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if model_format not in MODEL_FORMATS:
            raise ValueError(f"model_format must be one of {', '.join(MODEL_FORMATS)}, got {model_format!r}")
        self.model_format = model_format
        self.command, self.argv, self.regex = command, argv, regex
        self.pattern, self.time_unit = pattern, time_unit
        self.runs, self.warmup, self.threads = int(runs), int(warmup), int(threads)
        self.provider = provider or Path(argv[0]).name
        self.precision, self.graph_optimization = precision, graph_optimization
        self.timeout_s = float(timeout_s)

    def argv_for(self, model: Path, runs: int, warmup: int) -> list[str]:
        values = {"model": str(model), "runs": runs, "warmup": warmup, "threads": self.threads}
        return [arg.format(**values) for arg in self.argv]

    def invoke(self, model: Path, runs: int, warmup: int) -> np.ndarray:
        """Run the command once; the run times it printed, in nanoseconds."""
        stdout = self.run_command(self.argv_for(model, runs, warmup))
        try:
            times = [float(m) for m in self.regex.findall(stdout)]
        except ValueError as e:
            raise CommandError(f"pattern matched a non-number in the command's output ({e})") from None
        if not times:
            head = stdout.strip()[:200] or "nothing"
            raise CommandError(f"pattern {self.pattern!r} matched nothing in the command's output: {head}")
        return np.asarray(times, dtype=np.float64) * TIME_UNITS[self.time_unit]

    def run_command(self, argv: list[str]) -> str:
        """Run ``argv`` (no shell); its standard output, or CommandError naming what went wrong."""
        import subprocess  # the user's own configured command, run as an argument list  # nosec B404

        try:
            # No shell: placeholders cannot inject commands; the program is the user's choice.
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s, check=False)  # nosec B603
        except FileNotFoundError:
            raise CommandError(f"command not found: {argv[0]}") from None
        except subprocess.TimeoutExpired:
            raise CommandError(f"command timed out after {self.timeout_s:.0f} s: {argv[0]}") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise CommandError(f"command exited with {done.returncode}: {' | '.join(tail) or 'no output'}")
        return done.stdout

    def load(self, model: ModelSource, seed: int = 0) -> LoadedModel:
        import tempfile

        if isinstance(model, bytes):
            tmp = tempfile.TemporaryDirectory(prefix="lutnas-cmd-")
            path = Path(tmp.name) / f"model.{self.model_format}"
            path.write_bytes(model)
            return _CommandModel(self, path, tmp)
        if not Path(model).is_file():
            raise FileNotFoundError(f"no such model file: {model}")
        return _CommandModel(self, Path(model), None)

    def runtime_info(self) -> dict[str, Any]:
        return {"backend": self.name, "runtime": "command", "provider": self.provider, "threads": self.threads,
                "graph_optimization": self.graph_optimization, "precision": self.precision,
                **self.command_config()}

    def command_config(self) -> dict[str, Any]:
        """What re-creates this backend (kept in a table's runtime, so validate times subnets the same way)."""
        cfg = {"command": self.command, "pattern": self.pattern, "time_unit": self.time_unit, "runs": self.runs,
               "warmup": self.warmup}
        if self.model_format != "onnx":  # onnx tables keep their old runtime (and table names)
            cfg["model_format"] = self.model_format
        return cfg

    def config(self) -> dict[str, Any]:
        return {**super().config(), **self.command_config()}
