"""On-device profiling: measurement backends (onnxruntime, torch, command, litert) and the measurement
protocol.

Importable with only numpy + onnxruntime (no torch, fastapi or sqlalchemy); the litert backend
imports ai_edge_litert only when it is used.
"""

from profilers.backends import Backend, LoadedModel, available_backends, get_backend, register_backend
from profilers.env import environment
from profilers.measure import (
    Measurement,
    Protocol,
    auto_flush_bytes,
    identity_model,
    measure,
    measure_overhead,
    summarize,
)

__all__ = [
    "Backend",
    "LoadedModel",
    "Measurement",
    "Protocol",
    "auto_flush_bytes",
    "available_backends",
    "environment",
    "get_backend",
    "identity_model",
    "measure",
    "measure_overhead",
    "register_backend",
    "summarize",
]
