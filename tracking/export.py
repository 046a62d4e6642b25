"""ONNX export of a subnet (two graphs: template branch, search branch) and an onnxruntime model.

``template.onnx``: input ``template`` [1,3,128,128] -> output ``zf`` (the 8x8 template feature).
``search.onnx``: inputs ``search`` [1,3,256,256] and ``zf`` -> outputs ``cls`` [1,1,16,16] (logits)
and ``reg`` [1,4,16,16] (l, t, r, b in search-image pixels, see ``tracking/supernet.py``).

Opset 17, eval mode, constant folding on: the TorchScript exporter's eval-mode passes fold every
BatchNorm that follows a conv into it (only ``OutputAdjust``'s leading BN stays a
``BatchNormalization`` node). The TorchScript exporter (``dynamo=False``) is used because it is
about 20x faster to run than the dynamo exporter for these graphs. ``arch.json`` (the
architecture's JSON form and LightTrack string) is written next to the graphs.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from tracking.supernet import TrackerPath

OPSET = 17


class TemplateBranch(nn.Module):
    """The template branch of a subnet as its own module (``template.onnx``: template -> zf)."""

    def __init__(self, net: TrackerPath) -> None:
        super().__init__()
        self.net = net

    def forward(self, template: Tensor) -> Tensor:
        return TrackerPath.template_feature(self.net, template)


class SearchBranch(nn.Module):
    """The search branch of a subnet as its own module (``search.onnx``: search, zf -> cls, reg);
    ``latency_tables.fidelity`` exports it alone."""

    def __init__(self, net: TrackerPath) -> None:
        super().__init__()
        self.net = net

    def forward(self, search: Tensor, zf: Tensor) -> tuple[Tensor, Tensor]:
        return TrackerPath.track(self.net, zf, search)


def export_module(module: nn.Module, args: tuple[Tensor, ...], path: str | Path, inputs: list[str],
                  outputs: list[str]) -> None:
    """Export any module with the subnet exporter's settings (opset 17, TorchScript exporter, eval
    mode, constant folding): ``latency_tables`` exports single units with it so that each unit's
    graph holds the same ops as the subnet at that place. ``module`` should be in eval mode."""
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of dynamo; it is the fast one here
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            module, args, str(path), input_names=inputs, output_names=outputs, opset_version=OPSET,
            do_constant_folding=True, training=torch.onnx.TrainingMode.EVAL, dynamo=False)


def export_onnx(subnet: TrackerPath, out_dir: str | Path, template_size: int = 128,
                search_size: int = 256) -> dict[str, Path]:
    """Write ``template.onnx`` and ``search.onnx`` (and ``arch.json`` when the subnet knows its
    architecture) into ``out_dir``; returns ``{"template": path, "search": path}``.

    ``subnet`` is a :class:`tracking.subnet.Subnet` (or any ``TrackerPath``); it is left unchanged
    (a copy is put in eval mode and exported).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = copy.deepcopy(subnet).eval()
    z = torch.zeros(1, 3, template_size, template_size)
    x = torch.zeros(1, 3, search_size, search_size)
    with torch.no_grad():
        zf = TrackerPath.template_feature(net, z)
    paths = {"template": out / "template.onnx", "search": out / "search.onnx"}
    export_module(TemplateBranch(net), (z,), paths["template"], ["template"], ["zf"])
    export_module(SearchBranch(net), (x, zf), paths["search"], ["search", "zf"], ["cls", "reg"])
    arch = getattr(subnet, "arch", None)
    if arch is not None:
        (out / "arch.json").write_text(json.dumps({"lighttrack": arch.to_string(), "arch": arch.to_json()}, indent=2))
    return paths


class OnnxTrackerModel:
    """The two exported graphs run by onnxruntime; numpy in, numpy out (float32, NCHW).

    ``providers`` defaults to CPU; ``threads`` sets intra-op threads (``None``: onnxruntime's
    default). Usable as the ``model`` of :class:`tracking.tracker.Tracker`.
    """

    def __init__(self, directory: str | Path, providers: list[str] | None = None,
                 threads: int | None = None) -> None:
        import onnxruntime as ort

        d = Path(directory)
        files = {name: d / f"{name}.onnx" for name in ("template", "search")}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"ONNX model not found: {', '.join(missing)}")
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        providers = providers or ["CPUExecutionProvider"]
        self.directory = d
        self.template_session = ort.InferenceSession(str(files["template"]), opts, providers=providers)
        self.search_session = ort.InferenceSession(str(files["search"]), opts, providers=providers)

    def template_feature(self, z: np.ndarray) -> np.ndarray:
        return self.template_session.run(["zf"], {"template": np.ascontiguousarray(z, np.float32)})[0]

    def track(self, zf: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cls, reg = self.search_session.run(
            ["cls", "reg"], {"search": np.ascontiguousarray(x, np.float32), "zf": zf})
        return cls, reg

