"""Decomposition of an architecture's search graph into measurable units, with canonical keys.

What is predicted is the per-frame search graph (search image + precomputed template feature ->
cls, reg). Its units, in execution order:

* ``stem``, the stage-0 ``dsconv``;
* one ``mbconv`` per active backbone block (its real input shape, kernel, expansion, stride);
* the ``adjust`` (BN + 1x1) of the output position;
* the ``neck`` (correlation with the template feature ``zf``, channel attention, 1x1);
* each non-skip ``head`` layer of both towers (input/output width, kernel; skip costs nothing);
* the ``cls`` and ``reg`` output convs.

A unit is identified by what determines its cost: type, input shape(s) and choices, e.g.
``mbconv:in24x64x64:out40:k5:e6:s2``. Block positions with the same input shape share keys.

This module is pure Python (shapes come from ``tracking.space.blocks``, the one topology); only
:func:`build_unit_module` and the exporters (:func:`export_unit`: ONNX, or ``.tflite`` through
``latency_tables.litert``) import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracking.space import (
    HEAD_KERNELS,
    MBCONV_CHOICES,
    Architecture,
    BlockSpec,
    Head,
    SearchSpace,
    adjust_spec,
    blocks,
    ds_spec,
    head_specs,
    mbconv_spec,
    neck_spec,
    stem_spec,
)

KINDS = ("stem", "dsconv", "mbconv", "adjust", "neck", "head", "cls", "reg")


@dataclass(frozen=True, order=True)
class Unit:
    """One measurable piece of the search graph. ``shape`` is the (C, H, W) input."""

    kind: str
    shape: tuple[int, int, int]
    out_ch: int
    kernel: int = 0
    expansion: int = 0
    stride: int = 1
    template: tuple[int, int, int] | None = None  # the neck's second input (zf)

    @property
    def key(self) -> str:
        c, h, w = self.shape
        k = f"{self.kind}:in{c}x{h}x{w}:out{self.out_ch}"
        if self.kind == "mbconv":
            return f"{k}:k{self.kernel}:e{self.expansion}:s{self.stride}"
        if self.kind in ("stem", "dsconv"):
            return f"{k}:k{self.kernel}:s{self.stride}"
        if self.kind == "adjust":
            return f"{k}:s{self.stride}"
        if self.kind == "neck":
            zc, zh, zw = self.template or (0, 0, 0)
            return f"{k}:z{zc}x{zh}x{zw}"
        return f"{k}:k{self.kernel}"  # head, cls, reg

    def inputs(self) -> list[tuple[str, tuple[int, ...]]]:
        """ONNX input names and shapes of this unit's model (batch 1)."""
        if self.kind == "neck":
            assert self.template is not None  # type narrowing: neck units always carry it  # nosec B101
            return [("zf", (1, *self.template)), ("x", (1, *self.shape))]
        return [("x", (1, *self.shape))]

    def __str__(self) -> str:
        return self.key


# -- units of the space's topology (tracking.space.blocks) ---------------------------------------

def unit_of(spec: BlockSpec) -> Unit:
    """The measurable unit of one module of the search graph."""
    template = (spec.in_ch, spec.template, spec.template) if spec.kind == "neck" else None
    return Unit(spec.kind, (spec.in_ch, spec.size, spec.size), spec.out_ch, spec.kernel, spec.expansion,
                spec.stride, template)


def block_unit(space: SearchSpace, stage: int, block: int, choice: int) -> Unit:
    """The MBConv unit of ``choice`` at block position (stage, block)."""
    return unit_of(mbconv_spec(space, stage, block, choice))


def adjust_unit(space: SearchSpace, stage: int) -> Unit:
    return unit_of(adjust_spec(space, stage))


def stem_unit(space: SearchSpace) -> Unit:
    return unit_of(stem_spec(space))


def ds_unit(space: SearchSpace) -> Unit:
    return unit_of(ds_spec(space))


def neck_unit(space: SearchSpace) -> Unit:
    return unit_of(neck_spec(space))


def head_units(space: SearchSpace, head: Head, tower: str) -> list[Unit]:
    """Non-skip layers of one tower, then its output conv (``tower``: ``cls`` or ``reg``)."""
    return [unit_of(spec) for spec in head_specs(space, head, tower)]


def units_of(arch: Architecture, space: SearchSpace | None = None) -> list[Unit]:
    """Every unit ``arch``'s search graph runs, in execution order (repeats included)."""
    return [unit_of(spec) for spec in blocks(arch, space or SearchSpace.paper())]


def all_units(space: SearchSpace | None = None) -> list[Unit]:
    """Every distinct unit of the space, sorted by key."""
    space = space or SearchSpace.paper()
    found: dict[str, Unit] = {}

    def add(u: Unit) -> None:
        found.setdefault(u.key, u)

    add(stem_unit(space))
    add(ds_unit(space))
    last_stage = max(space.output_stages)
    for s in range(last_stage + 1):
        for b in range(space.stage_blocks[s]):
            for c in range(len(MBCONV_CHOICES)):
                add(block_unit(space, s, b, c))
    for s in space.output_stages:
        add(adjust_unit(space, s))
    add(neck_unit(space))
    for w in range(len(space.head_widths)):
        for c in range(len(HEAD_KERNELS)):
            layers = (c,) + (c,) * (space.head_layers - 1)
            for tower in ("cls", "reg"):
                for u in head_units(space, Head(w, layers), tower):
                    add(u)
    return [found[k] for k in sorted(found)]


def parse_key(key: str) -> Unit:
    """Inverse of :attr:`Unit.key` (raises ValueError on a malformed key)."""
    kind, *parts = key.split(":")
    fields: dict[str, str] = {}
    for p in parts:
        prefix = "in" if p.startswith("in") else "out" if p.startswith("out") else p[:1]
        fields[prefix] = p[len(prefix):]
    try:
        shape = tuple(int(v) for v in fields["in"].split("x"))
        template = tuple(int(v) for v in fields["z"].split("x")) if "z" in fields else None
        unit = Unit(kind, shape, int(fields["out"]),  # type: ignore[arg-type]
                    kernel=int(fields.get("k", 0)), expansion=int(fields.get("e", 0)),
                    stride=int(fields.get("s", 1)), template=template)  # type: ignore[arg-type]
    except (KeyError, ValueError):
        raise ValueError(f"malformed unit key {key!r}") from None
    if kind not in KINDS or len(shape) != 3 or unit.key != key:
        raise ValueError(f"malformed unit key {key!r}")
    return unit


# -- torch side: modules and ONNX export --------------------------------------------------------

def build_unit_module(unit: Unit, seed: int = 0) -> Any:
    """The ``tracking.ops`` module of ``unit``, random-initialised from ``seed`` (eval mode).

    BN running statistics are randomised too, so that folding produces ordinary weights; latency
    does not depend on weight values.
    """
    import torch

    from tracking import ops

    torch.manual_seed(seed)
    c = unit.shape[0]
    if unit.kind == "stem":
        m = ops.Stem(c, unit.out_ch)
    elif unit.kind == "dsconv":
        m = ops.DSConv(c, unit.out_ch, unit.kernel, unit.stride)
    elif unit.kind == "mbconv":
        m = ops.MBConv(c, unit.out_ch, unit.kernel, unit.expansion, unit.stride)
    elif unit.kind == "adjust":
        m = ops.OutputAdjust(c, unit.out_ch, unit.stride)
    elif unit.kind == "neck":
        m = ops.Neck(out_ch=unit.out_ch)
    elif unit.kind == "head":
        m = ops.HeadLayer(c, unit.out_ch, unit.kernel)
    elif unit.kind == "cls":
        m = ops.ClsOutput(c)
    elif unit.kind == "reg":
        m = ops.RegOutput(c)
    else:
        raise ValueError(f"unknown unit kind {unit.kind!r}")
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


def export_unit_onnx(unit: Unit, path: str | Path, seed: int = 0, precision: str = "fp32") -> Path:
    """Export ``unit`` alone to ONNX with the subnet exporter's own settings (``tracking.export``:
    opset 17, TorchScript exporter, eval mode so BNs after convs are folded, constant folding), so
    the unit graph holds exactly the ops the exported subnet has at that place.

    ``precision="int8"``: then quantized as whole subnets are (``latency_tables.quantize``)."""
    import torch

    from latency_tables.quantize import check_precision, quantize_onnx, unit_feeds

    if check_precision(precision) == "int8":
        import tempfile

        with tempfile.TemporaryDirectory(prefix="lutnas-unit-fp32-") as tmp:
            fp32 = export_unit_onnx(unit, Path(tmp) / unit_filename(unit), seed)
            return quantize_onnx(fp32, path, unit_feeds(unit.inputs(), seed))

    from tracking.export import export_module

    module = build_unit_module(unit, seed)
    gen = torch.Generator().manual_seed(seed)
    args = tuple(torch.randn(*shape, generator=gen) for _, shape in unit.inputs())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        export_module(module, args, path, [n for n, _ in unit.inputs()], ["y"])
    return path


MODEL_FORMATS = ("onnx", "tflite")  # what a backend runs (profilers.backends.Backend.model_format)


def check_format(fmt: str) -> str:
    if fmt not in MODEL_FORMATS:
        raise ValueError(f"model format must be one of {', '.join(MODEL_FORMATS)}, got {fmt!r}")
    return fmt


def export_unit(unit: Unit, path: str | Path, seed: int = 0, precision: str = "fp32", fmt: str = "onnx") -> Path:
    """``unit`` alone in the backend's model format: ONNX (:func:`export_unit_onnx`) or ``.tflite``
    (``latency_tables.litert``, from the same seeded module)."""
    if check_format(fmt) == "tflite":
        from latency_tables.litert import export_unit_tflite

        return export_unit_tflite(unit, path, seed, precision)
    return export_unit_onnx(unit, path, seed, precision)


def export_overhead_model(path: str | Path, fmt: str = "onnx") -> Path:
    """The per-run overhead model (``profilers.measure.measure_overhead``) in ``fmt``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if check_format(fmt) == "tflite":
        from latency_tables.litert import export_overhead_tflite

        return export_overhead_tflite(path)
    from profilers.measure import identity_model

    path.write_bytes(identity_model())
    return path


def unit_filename(unit: Unit | str, fmt: str = "onnx") -> str:
    """A file name for a unit's model (``:`` is not portable in file names)."""
    key = unit if isinstance(unit, str) else unit.key
    return key.replace(":", "_") + "." + check_format(fmt)


def unit_onnx_bytes(unit: Unit | str, seed: int = 0, precision: str = "fp32", fmt: str = "onnx") -> bytes:
    """The unit's model as bytes (e.g. for the server to hand to a profiler agent); ``unit`` may be
    a key; ``precision``: fp32 or int8 (quantized); ``fmt``: onnx or tflite."""
    import tempfile

    u = parse_key(unit) if isinstance(unit, str) else unit
    with tempfile.TemporaryDirectory(prefix="lutnas-unit-") as tmp:
        return export_unit(u, Path(tmp) / unit_filename(u, fmt), seed, precision, fmt).read_bytes()
