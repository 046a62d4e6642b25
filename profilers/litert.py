"""The LiteRT (TensorFlow Lite) backend: ``.tflite`` models run by the ``ai_edge_litert`` interpreter.

What a phone's GPU or a vendor NPU actually runs (onnxruntime has no Android GPU provider), and on
a CPU the XNNPACK kernels LiteRT uses by default. The delegate comes from the target's runtime:

* ``xnnpack`` (default): the interpreter's built-in resolver, which applies the XNNPACK delegate
  with ``threads`` threads;
* ``none``: LiteRT's own builtin kernels, no default delegate (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``);
* ``gpu``: the GPU delegate, loaded from ``delegate_library`` (default
  ``libtensorflowlite_gpu_delegate.so``, as on Android; the Linux wheel ships none);
* ``external``: a vendor delegate (QNN, NeuroPilot, ...) loaded from ``delegate_library`` with
  ``delegate_options``.

``ai_edge_litert`` is imported lazily and only here, so a device installs it only when it measures
LiteRT targets (``pip install "lutnas-agent[litert]"``). Inputs are seeded random arrays of the
model's input shapes, set once; a run is one ``invoke()`` (inputs and outputs stay in the
interpreter's buffers, as onnxruntime's IO binding keeps them), so a run times the graph only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from profilers.backends import PRECISIONS, Backend, LoadedModel, ModelSource, random_inputs, register_backend

DELEGATES = ("xnnpack", "none", "gpu", "external")
GPU_DELEGATE_LIBRARY = "libtensorflowlite_gpu_delegate.so"  # the name Android builds ship
INSTALL_HINT = 'install the LiteRT extra: pip install "lutnas-agent[litert]" (or "lutnas[litert]")'


def litert_interpreter_module() -> Any:
    """``ai_edge_litert.interpreter``, or an ImportError that says what to install."""
    try:
        from ai_edge_litert import interpreter
    except ImportError as e:
        raise ImportError(f"the litert backend needs ai-edge-litert ({e}); {INSTALL_HINT}") from None
    return interpreter


def litert_version() -> str:
    import ai_edge_litert

    return str(getattr(ai_edge_litert, "__version__", "unknown"))


class _LiteRTModel(LoadedModel):
    def __init__(self, interpreter: Any, feeds: dict[int, np.ndarray], content: bytes | None) -> None:
        self.interpreter = interpreter
        self.feeds = feeds
        self._content = content  # model_content must outlive the interpreter
        for index, arr in feeds.items():
            interpreter.set_tensor(index, arr)
        self._invoke = interpreter.invoke

    def run(self) -> None:
        self._invoke()

    # input_arrays: none. set_tensor copies into the interpreter's own buffers, and a numpy view of
    # them held across invoke() makes LiteRT refuse to run, so warm_inputs re-reads nothing here.

    def outputs(self) -> list[np.ndarray]:
        return [self.interpreter.get_tensor(d["index"]) for d in self.interpreter.get_output_details()]


@register_backend("litert")
class LiteRTBackend(Backend):
    """LiteRT's interpreter with a delegate (``DELEGATES``), ``threads`` threads and fp32 or int8
    models (int8 ones arrive quantized, as ``latency_tables.litert`` converts them)."""

    model_format = "tflite"

    def __init__(self, delegate: str | None = None, threads: int = 1, precision: str = "fp32",
                 delegate_library: str | None = None, delegate_options: dict[str, Any] | None = None,
                 provider: str | None = None, graph_optimization: str = "all") -> None:
        # ``provider``: what a table's runtime calls the delegate (the key every backend shares)
        delegate = (delegate or provider or "xnnpack").lower()
        if delegate not in DELEGATES:
            raise ValueError(f"unknown LiteRT delegate {delegate!r}; use one of {', '.join(DELEGATES)}")
        if delegate == "external" and not delegate_library:
            raise ValueError("the external delegate needs delegate_library (the delegate's shared library path)")
        if delegate in ("xnnpack", "none") and delegate_library:
            raise ValueError(f"delegate {delegate!r} takes no delegate_library (use gpu or external)")
        if int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if graph_optimization != "all":  # the converter optimises the graph; the interpreter has no levels
            raise ValueError(f"LiteRT has no graph optimisation levels: graph_optimization must be 'all', "
                             f"got {graph_optimization!r}")
        self.delegate = delegate
        self.threads = int(threads)
        self.precision = precision
        self.delegate_library = delegate_library or (GPU_DELEGATE_LIBRARY if delegate == "gpu" else None)
        self.delegate_options = dict(delegate_options or {})
        litert_interpreter_module()  # a missing install fails here, not at the first unit

    def _delegates(self, lite: Any) -> list[Any]:
        if self.delegate_library is None:
            return []
        try:
            return [lite.load_delegate(self.delegate_library, self.delegate_options)]
        except (OSError, ValueError, RuntimeError) as e:
            raise ValueError(f"cannot load the {self.delegate} delegate from {self.delegate_library!r}: "
                             f"{' '.join(str(e).split())[:200]}") from None

    def interpreter(self, model: ModelSource) -> tuple[Any, bytes | None]:
        """An allocated interpreter for ``model`` (path or bytes) and the bytes it runs from."""
        lite = litert_interpreter_module()
        if not isinstance(model, bytes) and not Path(model).is_file():
            raise FileNotFoundError(f"no such model file: {model}")
        content = model if isinstance(model, bytes) else None
        resolver = (lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if self.delegate == "none"
                    else lite.OpResolverType.AUTO)
        source = {"model_content": content} if content is not None else {"model_path": str(model)}
        try:
            interp = lite.Interpreter(**source, num_threads=self.threads, experimental_delegates=self._delegates(lite),
                                      experimental_op_resolver_type=resolver)
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:  # not a flatbuffer, or ops the runtime lacks
            raise ValueError(f"LiteRT cannot load this model: {' '.join(str(e).split())[:300]}") from None
        return interp, content

    def load(self, model: ModelSource, seed: int = 0) -> LoadedModel:
        interp, content = self.interpreter(model)
        details = interp.get_input_details()
        arrays = random_inputs([(str(d["index"]), d["shape"].tolist(), d["dtype"]) for d in details], seed)
        return _LiteRTModel(interp, {int(k): v for k, v in arrays.items()}, content)

    def runtime_info(self) -> dict[str, Any]:
        info = {
            "backend": self.name,
            "runtime": "litert",
            "runtime_version": litert_version(),
            "provider": self.delegate,
            "delegate": self.delegate,
            "threads": self.threads,
            "graph_optimization": "all",
            "precision": self.precision,
        }
        if self.delegate_library:
            info["delegate_library"] = Path(self.delegate_library).name  # the name, not this host's path
        return info

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        if self.delegate_library:  # a gpu or vendor delegate: which library keys the table too
            cfg["delegate_library"] = Path(self.delegate_library).name
        return cfg
