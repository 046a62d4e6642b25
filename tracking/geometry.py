"""Fixed widths and strides of the tracker, shared by the torch modules (``ops``), the analytic
FLOPs count (``flops``) and the latency units (``latency_tables.units``). Pure Python."""

from __future__ import annotations

# Width of the feature that is correlated (template and search features after OutputAdjust).
CORR_CHANNELS = 96
# Template feature is 8x8 = 64 pixels, so pixel-wise correlation yields 64 channels.
TEMPLATE_FEATURE_SIZE = 8
CORR_OUT_CHANNELS = TEMPLATE_FEATURE_SIZE * TEMPLATE_FEATURE_SIZE
# Stride of the feature fed to the neck and of the 16x16 score map.
STRIDE = 16


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor``, never below 90% of ``value`` (timm rule)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new
