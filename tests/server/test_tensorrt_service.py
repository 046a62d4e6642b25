"""TensorRT targets through the service: registration accepts backend tensorrt at fp32, fp16 or
int8 (fp16 on any other backend stays a 422 naming runtime.precision); no agent run, since trtexec
needs an NVIDIA GPU (tests/profilers/test_tensorrt.py covers the backend with a stand-in)."""

from __future__ import annotations

import uuid

from tests.server.conftest import Service, register_hardware
from tests.server.test_api import assert_problem


def test_tensorrt_targets_are_registered_at_any_precision(service: Service) -> None:
    c = service.team(f"trt-{uuid.uuid4().hex[:8]}")
    hw = register_hardware(c, "orin-fp16", kind="jetson", runtime={"backend": "tensorrt", "precision": "fp16"})
    assert hw["runtime"] == {"backend": "tensorrt", "provider": "tensorrt", "threads": 1, "precision": "fp16",
                             "graph_optimization": "all"}
    int8 = register_hardware(c, "orin-int8", kind="jetson", runtime={"backend": "tensorrt", "provider": "orin-nano",
                                                                   "precision": "int8"})
    assert int8["runtime"]["provider"] == "orin-nano" and int8["runtime"]["precision"] == "int8"
    for runtime, field in (({"backend": "onnxruntime", "precision": "fp16"}, "runtime.precision"),
                           ({"backend": "litert", "precision": "fp16"}, "runtime.precision"),
                           ({"backend": "tensorrt", "graph_optimization": "basic"}, "runtime")):
        body = assert_problem(c.post("/v1/hardware", json={"name": "bad-trt", "kind": "jetson", "runtime": runtime}),
                              422, field)
        assert "tensorrt" in body["detail"], body
    assert "bad-trt" not in {h["name"] for h in c.get("/v1/hardware").json()["items"]}
