"""Latency lookup tables: units of an architecture (``units``), their ONNX export, the table store
(``db``, ``store``), local profiling (``profile``), prediction (``predict``), calibration
(``calibrate``), fidelity reports (``fidelity``) and the ``profile`` / ``latency`` commands (``cli``).

Modules are imported explicitly (nothing here) so that ``predict`` stays free of torch.
"""
