"""On-device profiling: measurement backends (onnxruntime, torch, command, litert, tensorrt) and the
measurement protocol.

Importable with only numpy + onnxruntime (no torch, fastapi or sqlalchemy); the litert backend
imports ai_edge_litert only when it is used; the tensorrt backend runs NVIDIA's trtexec program.
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
from profilers.tensorrt import EngineCache, TensorRTBackend, jetson_conditions, parse_trtexec

__all__ = [
    "Backend",
    "EngineCache",
    "LoadedModel",
    "Measurement",
    "Protocol",
    "TensorRTBackend",
    "auto_flush_bytes",
    "available_backends",
    "environment",
    "get_backend",
    "identity_model",
    "jetson_conditions",
    "measure",
    "measure_overhead",
    "parse_trtexec",
    "register_backend",
    "summarize",
]
