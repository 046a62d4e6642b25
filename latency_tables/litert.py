"""LiteRT targets: units and whole search graphs converted to ``.tflite`` from the PyTorch modules.

Converter: ``litert-torch`` (torch.export -> StableHLO -> TFLite) from the very ``tracking.ops``
modules the ONNX units come from, not ``onnx2tf`` from the ONNX files: one graph source for both
runtimes, no TensorFlow install (litert-torch brings only its converter and jax), and the
converter folds BN into the convs as the ONNX exporter does. It installs with
``pip install "lutnas[litert]"`` on the exporting side (a profiler agent only runs the files).

Layout: torch modules are NCHW, LiteRT kernels NHWC. Converted as they are, every unit would
start and end with a TRANSPOSE that the whole graph does not have (its inner transposes cancel),
the same bias as onnxruntime's boundary reorders. Units and whole graphs are therefore converted
with channels-last inputs and outputs (``litert_torch.to_channel_last_io``): a unit alone then has
no boundary op, and a whole graph takes an NHWC search image, as a phone camera pipeline gives.

Int8: full-integer static quantization (int8 weights and activations, ``static_wi8_ai8``) with
``ai-edge-quantizer``, calibrated on a representative dataset: synthetic search crops for the stem
and whole graphs, seeded normal activations for deeper units (``latency_tables.quantize``'s
calibration data; ranges set scales, not kernels). The overhead model is a one-op graph
(``x + x`` on one float), since an identity graph converts to no op at all.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latency_tables.quantize import check_precision

INSTALL_HINT = 'converting to .tflite needs the LiteRT extra: pip install "lutnas[litert]"'


def _litert_torch() -> Any:
    # the converter's own progress lines and TF C++ logs would tear through progress bars
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import litert_torch
    except ImportError as e:
        raise ImportError(f"{INSTALL_HINT} ({e})") from None
    return litert_torch


def _nhwc(t: Any) -> Any:
    return t.permute(0, 2, 3, 1).contiguous() if t.dim() == 4 else t


def convert_module(module: Any, args: Sequence[Any], path: str | Path, n_outputs: int = 1) -> Path:
    """``module`` (eval mode, NCHW ``args``) converted to ``path`` with channels-last 4-D inputs and
    outputs (module docstring)."""
    import torch

    lt = _litert_torch()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    four_d = [i for i, a in enumerate(args) if a.dim() == 4]
    wrapped = lt.to_channel_last_io(module.eval(), args=four_d, outputs=list(range(n_outputs)))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecation notes, per model
        lt.convert(wrapped.eval(), tuple(_nhwc(a) for a in args)).export(str(path))
    return path


def signature_inputs(path: str | Path) -> list[str]:
    """Input names of a model's default signature, in positional order (``args_0``, ``args_1``, ...)."""
    from ai_edge_litert.interpreter import Interpreter

    sig = Interpreter(model_path=str(path)).get_signature_list()
    names = next(iter(sig.values()))["inputs"]
    return sorted(names, key=lambda n: (len(n), n))


def quantize_tflite(src: str | Path, dst: str | Path, feeds: Sequence[Sequence[np.ndarray]]) -> Path:
    """``src`` quantized to full integer (int8 weights and activations) into ``dst``, calibrated on
    ``feeds`` (one list of positional NHWC inputs per sample)."""
    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError as e:
        raise ImportError(f"int8 LiteRT models need ai-edge-quantizer: pip install \"lutnas[litert]\" ({e})") from None
    names = signature_inputs(src)
    q = quantizer.Quantizer(str(src))
    q.load_quantization_recipe(recipe.static_wi8_ai8())
    samples = [{n: np.ascontiguousarray(a, dtype=np.float32) for n, a in zip(names, f, strict=True)} for f in feeds]
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    # the quantizer prints a size summary and warns about its own calibration settings per model
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calibration = q.calibrate({"serving_default": samples})
        q.quantize(calibration).export_model(str(dst), overwrite=True)
    return dst


def _nhwc_np(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)) if a.ndim == 4 else a


def export_unit_tflite(unit: Any, path: str | Path, seed: int = 0, precision: str = "fp32") -> Path:
    """``unit`` (a ``latency_tables.units.Unit``) alone as ``.tflite``: the same seeded module as its
    ONNX export, channels-last IO; ``precision="int8"``: then quantized (module docstring)."""
    import torch

    from latency_tables.quantize import unit_feeds
    from latency_tables.units import build_unit_module

    module = build_unit_module(unit, seed)
    gen = torch.Generator().manual_seed(seed)
    args = tuple(torch.randn(*shape, generator=gen) for _, shape in unit.inputs())
    if check_precision(precision) == "fp32":
        return convert_module(module, args, path)
    with tempfile.TemporaryDirectory(prefix="lutnas-tflite-fp32-") as tmp:
        fp32 = convert_module(module, args, Path(tmp) / "fp32.tflite")
        feeds = [[_nhwc_np(f[name]) for name, _ in unit.inputs()] for f in unit_feeds(unit.inputs(), seed)]
        return quantize_tflite(fp32, path, feeds)


def _twice() -> Any:
    """``y = x + x`` on one float: the cheapest graph that still runs one kernel per call."""
    import torch

    class Twice(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + x

    return Twice()


def export_overhead_tflite(path: str | Path) -> Path:
    """The per-run overhead model of LiteRT targets (fp32 and int8 alike: one op on one value)."""
    import torch

    lt = _litert_torch()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        lt.convert(_twice().eval(), (torch.zeros(1),)).export(str(path))
    return path


def export_search_graph_tflite(branch: Any, x: Any, zf: Any, path: str | Path, precision: str = "fp32",
                               calibration: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> Path:
    """A subnet's search branch (``tracking.export.SearchBranch``: ``search``, ``zf`` -> ``cls``,
    ``reg``) as ``.tflite`` with channels-last IO; int8: quantized, calibrated on ``calibration``
    (NCHW ``(search, zf)`` pairs)."""
    if check_precision(precision) == "fp32":
        return convert_module(branch, (x, zf), path, n_outputs=2)
    if not calibration:
        raise ValueError("int8 search graphs need calibration samples")
    with tempfile.TemporaryDirectory(prefix="lutnas-tflite-fp32-") as tmp:
        fp32 = convert_module(branch, (x, zf), Path(tmp) / "fp32.tflite", n_outputs=2)
        return quantize_tflite(fp32, path, [[_nhwc_np(s), _nhwc_np(z)] for s, z in calibration])
