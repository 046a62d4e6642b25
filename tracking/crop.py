"""Square crops around a target and image normalisation, shared by the tracker and training data.

Conventions:

* frames are ``HxWx3`` ``uint8`` RGB numpy arrays; boxes are ``(x, y, w, h)`` in frame pixels,
  ``(x, y)`` the top-left corner, continuous coordinates (pixel ``i`` spans ``[i, i+1)``);
* a crop of side ``size`` frame pixels centred at ``(cx, cy)`` is resampled (bilinear) to
  ``out_size`` pixels; parts outside the frame take ``pad`` (the frame's mean colour by default,
  as in SiamFC/Ocean/LightTrack);
* template crops have side :func:`context_size` of the box (context amount 0.5) resampled to 128;
  search crops have twice that side resampled to 256, so both share one scale
  (``128 / context_size``) and the target appears at the same size in both;
* network input: :func:`normalise` = ``/255``, minus ImageNet mean ``(0.485, 0.456, 0.406)``,
  divided by ImageNet std ``(0.229, 0.224, 0.225)``, channels first (``[3, H, W]`` float32).
"""

from __future__ import annotations

import math

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def context_size(w: float, h: float, context_amount: float = 0.5) -> float:
    """Side of the square template region: ``sqrt((w + p) * (h + p))`` with ``p = c * (w + h)``."""
    p = context_amount * (w + h)
    return math.sqrt((w + p) * (h + p))


def mean_colour(frame: np.ndarray) -> np.ndarray:
    return frame.reshape(-1, frame.shape[-1]).mean(axis=0).astype(np.float32)


def crop_square(frame: np.ndarray, centre: tuple[float, float], size: float, out_size: int,
                pad: np.ndarray | None = None) -> np.ndarray:
    """``out_size x out_size x 3`` float32 crop (values 0..255) of the square of side ``size`` frame
    pixels centred at ``centre = (cx, cy)``; bilinear, outside the frame filled with ``pad``."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be HxWx3, got shape {frame.shape}")
    if not size > 0:
        raise ValueError(f"crop size must be positive, got {size}")
    h, w = frame.shape[:2]
    pad = mean_colour(frame) if pad is None else np.asarray(pad, np.float32)
    if h < 2 or w < 2:
        raise ValueError(f"frame must be at least 2x2 pixels, got {w}x{h}")
    scale = size / out_size
    grid = (np.arange(out_size, dtype=np.float64) + 0.5) * scale - size / 2 - 0.5
    # Bilinear resampling is separable: interpolate rows, then columns, each from two taps;
    # taps outside the frame get zero weight and the missing weight is filled with ``pad``.
    y0, wy0, wy1 = _taps(centre[1] + grid, h)
    x0, wx0, wx1 = _taps(centre[0] + grid, w)
    c_lo, c_hi = int(x0.min()), int(x0.max()) + 2  # only the columns the crop touches
    src = frame[:, c_lo:c_hi]
    rows = src[y0].astype(np.float32) * wy0[:, None, None] + src[y0 + 1] * wy1[:, None, None]
    x0 = x0 - c_lo
    out = rows[:, x0] * wx0[None, :, None] + rows[:, x0 + 1] * wx1[None, :, None]
    inside = np.outer(wy0 + wy1, wx0 + wx1)[..., None]
    out += pad * (1.0 - inside)
    return out


def _taps(pos: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First tap index (clipped so both taps are valid indices) and the two taps' weights, zero
    for taps that fall outside ``0..n-1``."""
    i0 = np.floor(pos).astype(np.int64)
    f = (pos - i0).astype(np.float32)
    w0 = np.where((i0 >= 0) & (i0 < n), 1 - f, 0).astype(np.float32)
    w1 = np.where((i0 + 1 >= 0) & (i0 + 1 < n), f, 0).astype(np.float32)
    # shift taps so that index and index + 1 stay inside the frame; weights move with them
    start = np.clip(i0, 0, max(n - 2, 0))
    a = np.zeros_like(w0)
    b = np.zeros_like(w0)
    for idx, wgt in ((i0, w0), (i0 + 1, w1)):
        first = (idx == start) & (wgt != 0)
        second = (idx == start + 1) & (wgt != 0)
        a += np.where(first, wgt, 0)
        b += np.where(second, wgt, 0)
    return start, a, b


def normalise(img: np.ndarray) -> np.ndarray:
    """``HxWx3`` (0..255) -> ``[3, H, W]`` float32, ``/255`` then ImageNet mean/std."""
    x = (np.asarray(img, np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))
