"""Int8 targets: onnxruntime's static QDQ quantization of unit and subnet models.

A target with ``precision: int8`` runs every model as onnxruntime's static quantizer leaves it
(``quantize_static``, QDQ format: QuantizeLinear/DequantizeLinear pairs around each quantized op,
uint8 activations, int8 per-channel weights, the CPU execution provider's usual x86 choice), so
its units and whole subnets are quantized the same way before they are measured.

Calibration data: crops of the synthetic tracking sequences (``tracking.data.synth``: a seeded
sequence written to a temporary folder, cropped around its target as the tracker crops). Whole
search graphs see search crops and the template feature of a template crop; the stem unit sees
search crops; deeper units see seeded normal activations of their input shape (their true inputs
depend on the choices before them). The ranges only set the scale values, not which kernels run,
so latency does not hinge on them. Needs the ``onnx`` package (the exporting side has it; a
profiler agent only runs the quantized models it is given).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

PRECISIONS = ("fp32", "int8")
CALIBRATION_SAMPLES = 4  # min/max ranges settle fast; each sample runs the whole augmented graph


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


@cache
def synthetic_crops(n: int = CALIBRATION_SAMPLES, seed: int = 0, search_size: int = 256,
                    template_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (search, template) crop pairs ``[n, 3, S, S]``, ``[n, 3, T, T]`` (ImageNet-normalised
    float32) from one seeded synthetic sequence, cropped as the tracker crops (context 0.5;
    search crops twice the template's side)."""
    from PIL import Image

    from tracking.crop import context_size, crop_square_u8, normalise
    from tracking.data.synth import SynthConfig, generate_sequence

    with tempfile.TemporaryDirectory(prefix="lutnas-calib-") as tmp:
        seq = Path(tmp) / "seq"
        generate_sequence(seq, seed, 0, n + 1, SynthConfig(fmt="png"))
        boxes = np.loadtxt(seq / "groundtruth.txt", delimiter=",", ndmin=2)
        frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(seq.glob("*.png"))]
    x, z = [], []
    for i in range(n):
        bx, by, bw, bh = boxes[i + 1]
        side = context_size(bw, bh)
        z.append(normalise(crop_square_u8(frames[0], (boxes[0][0] + boxes[0][2] / 2, boxes[0][1] + boxes[0][3] / 2),
                                          side, template_size)))
        x.append(normalise(crop_square_u8(frames[i + 1], (bx + bw / 2, by + bh / 2), side * search_size
                                          / template_size, search_size)))
    return np.stack(x), np.stack(z)


class _Feeds:
    """A ``CalibrationDataReader`` over a list of feed dicts (onnxruntime's protocol: ``get_next``
    returns the next feed or None)."""

    def __init__(self, feeds: Sequence[Mapping[str, np.ndarray]]) -> None:
        self._it: Iterator[Mapping[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return dict(next(self._it, None) or {}) or None


def quantize_onnx(src: str | Path, dst: str | Path, feeds: Sequence[Mapping[str, np.ndarray]]) -> Path:
    """Quantize ``src`` into ``dst`` (static, QDQ, uint8 activations, per-channel int8 weights),
    calibrated on ``feeds`` (input name -> array, batch 1)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(_Feeds, CalibrationDataReader):
        pass

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.addFilter(_quiet_quantizer)
    try:
        quantize_static(_fold_identities(src), str(dst), Reader(feeds), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=CalibrationMethod.MinMax, calibration_providers=["CPUExecutionProvider"])
    finally:
        root.removeFilter(_quiet_quantizer)
    return dst


def _quiet_quantizer(record: logging.LogRecord) -> bool:
    """Drop the quantizer's advice logged on the root logger for every model ("consider
    pre-processing": shapes are static here; "axis out of range" for the adjust's 1-D BN scale,
    which stays fp32)."""
    return "quantization" not in record.pathname


def _fold_identities(src: str | Path) -> Any:
    """``src`` without Identity nodes on initializers: the TorchScript exporter routes some conv
    biases through them, and the quantizer only quantizes a conv whose bias is an initializer
    (it left those convs fp32 between Q/DQ pairs: slower than fp32 overall)."""
    import onnx

    model = onnx.load(str(src))
    inits = {i.name for i in model.graph.initializer}
    graph_outputs = {o.name for o in model.graph.output}
    alias = {n.output[0]: n.input[0] for n in model.graph.node
             if n.op_type == "Identity" and n.input[0] in inits and n.output[0] not in graph_outputs}
    keep = [n for n in model.graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    for n in keep:
        for i, name in enumerate(n.input):
            if name in alias:
                n.input[i] = alias[name]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model


def unit_feeds(inputs: Sequence[tuple[str, tuple[int, ...]]], seed: int = 0,
               n: int = CALIBRATION_SAMPLES) -> list[dict[str, np.ndarray]]:
    """Calibration feeds of a unit model: synthetic search crops for an image input (3 channels at
    the search size), seeded normal activations otherwise."""
    rng = np.random.default_rng([seed, 8])
    feeds: list[dict[str, np.ndarray]] = [{} for _ in range(n)]
    for name, shape in inputs:
        if shape[1] == 3:
            crops = synthetic_crops(n, seed, search_size=shape[-1])[0]
            for i in range(n):
                feeds[i][name] = crops[i : i + 1]
        else:
            for i in range(n):
                feeds[i][name] = rng.standard_normal(shape, dtype=np.float32)
    return feeds
