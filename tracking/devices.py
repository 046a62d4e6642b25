"""Device and precision choice for training and scoring (``--device``, ``--precision``).

The device is always a parameter handed down (never a global): ``auto`` is CUDA when this torch
sees a GPU, else the CPU. Parsing (:func:`check_device`) needs no torch, so settings and CLIs
reject a malformed value before importing it; :func:`resolve_device` then checks the machine.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device(spec: str) -> str:
    """``spec`` normalised (lower case, stripped) if it reads as auto, cpu, cuda or cuda:N;
    ValueError naming the accepted forms otherwise."""
    s = str(spec).strip().lower()
    if not _DEVICE.match(s):
        raise ValueError(f"device {spec!r} is not one of auto, cpu, cuda, cuda:N")
    return s


def check_precision(precision: str, internal: bool = False) -> str:
    """``precision`` if it is fp32, bf16 or fp16 (or, ``internal``, fp64: tests' exact arithmetic)."""
    p = str(precision).strip().lower()
    if p not in PRECISIONS and not (internal and p == "fp64"):
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return p


def resolve_device(spec: str = "auto") -> torch.device:
    """The ``torch.device`` for ``spec``; ValueError when it asks for a GPU this machine lacks."""
    import torch

    s = check_device(spec)
    if s == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if s == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"device {spec!r}: CUDA is not available here (torch {torch.__version__}); "
                         "use --device cpu or auto")
    dev = torch.device(s)
    n = torch.cuda.device_count()
    if dev.index is not None and dev.index >= n:
        raise ValueError(f"device {spec!r}: this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1})")
    return dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """``precision`` if ``device`` runs it: fp16/bf16 need CUDA (autocast there); the CPU
    trains in fp32 only (its bf16 autocast was not validated for this network)."""
    p = check_precision(precision, internal=True)
    if p == "fp64" and device.type != "cpu":
        raise ValueError("precision fp64 is for CPU exactness checks only")
    if p in ("bf16", "fp16") and device.type != "cuda":
        raise ValueError(f"precision {p} needs a CUDA device (this run is on {device}); use fp32")
    if p == "bf16":
        import torch

        if not torch.cuda.is_bf16_supported():
            raise ValueError(f"precision bf16: {torch.cuda.get_device_name(device)} does not support bf16")
    return p


def autocast(device: torch.device, precision: str) -> Any:
    """Mixed-precision context of ``precision`` on ``device`` (a no-op for fp32)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> Any:
    """A GradScaler for fp16 (small gradients underflow in half precision), else None."""
    import torch

    return torch.amp.GradScaler(device.type) if precision == "fp16" else None
