"""Synthetic tracking sequences in the GOT-10k layout, deterministic by seed.

Each sequence: a textured target (a patch of one of scikit-image's bundled sample images) moving
over a panning textured background, with smooth scale and aspect change, motion blur when it is
fast, a global illumination drift, sometimes a partial occluder, and look-alike distractors (the
same source texture, shifted and tinted) that move on their own. Everything is drawn from
``numpy.random.default_rng([seed, sequence_index])``, so a given sequence depends only on the seed
and its index, and the same seed writes byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy.ndimage import uniform_filter1d

from tracking.progress import Progress

# Backgrounds: texture-like images; targets: object-like, colourful images. Both ship with
# scikit-image (no download at run time).
_BACKGROUNDS = ("brick", "grass", "gravel", "coffee", "rocket", "hubble_deep_field", "camera", "coins",
                "immunohistochemistry", "moon", "text", "page")
_TARGETS = ("chelsea", "astronaut", "coffee", "rocket", "colorwheel", "immunohistochemistry", "retina",
            "hubble_deep_field", "logo", "coins", "horse", "cell")


@cache
def _image(name: str) -> np.ndarray:
    import skimage.data

    im = np.asarray(getattr(skimage.data, name)())
    if im.dtype == bool:
        im = im.astype(np.uint8) * 255
    if im.ndim == 2:
        im = np.stack([im] * 3, axis=-1)
    im = im[..., :3]
    if im.dtype != np.uint8:
        im = (255 * (im.astype(np.float64) / max(float(im.max()), 1.0))).astype(np.uint8)
    return np.ascontiguousarray(im)


@dataclass(frozen=True)
class SynthConfig:
    width: int = 320
    height: int = 240
    fmt: str = "jpg"  # "jpg" or "png"
    quality: int = 90
    min_size: float = 28.0  # target base side range (px)
    max_size: float = 64.0
    min_speed: float = 1.0  # px / frame, drawn per moving object
    max_speed: float = 5.0
    turn: float = 0.12  # std of the heading change per frame (rad)
    pan: int = 40  # background pan range (px)


class _Mover:
    """A box centre moving at a steady speed on a smoothly turning heading, reflected at the frame
    border. Persistent, as objects in tracking data sets move: a walk whose velocity decorrelates
    every few frames barely leaves its start, and a box that never moves then scores as well as a
    tracker (docs/validation.md)."""

    def __init__(self, rng: np.random.Generator, cfg: SynthConfig, margin: float, speed: float):
        self.rng, self.cfg = rng, cfg
        self.margin = margin
        self.bounds = (cfg.width, cfg.height)
        self.pos = np.array([rng.uniform(margin, cfg.width - margin), rng.uniform(margin, cfg.height - margin)])
        self.heading = rng.uniform(0, 2 * np.pi)
        self.speed = speed
        self.vel = speed * np.array([np.cos(self.heading), np.sin(self.heading)])

    def step(self) -> np.ndarray:
        self.heading += self.rng.normal(0, self.cfg.turn)
        # speed wanders within [0.5x, 1.5x] of its own so blur comes and goes
        factor = float(np.clip(np.linalg.norm(self.vel) / self.speed + self.rng.normal(0, 0.05), 0.5, 1.5))
        self.vel = factor * self.speed * np.array([np.cos(self.heading), np.sin(self.heading)])
        self.pos = self.pos + self.vel
        for k in range(2):
            lo, hi = self.margin, self.bounds[k] - self.margin
            if self.pos[k] < lo:
                self.pos[k], self.vel[k] = 2 * lo - self.pos[k], abs(self.vel[k])
            elif self.pos[k] > hi:
                self.pos[k], self.vel[k] = 2 * hi - self.pos[k], -abs(self.vel[k])
            self.pos[k] = min(max(self.pos[k], lo), hi)
        self.heading = float(np.arctan2(self.vel[1], self.vel[0]))
        return self.pos


def _source_patch(rng: np.random.Generator, name: str, aspect: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    im = _image(name)
    h, w = im.shape[:2]
    side = int(rng.uniform(0.2, 0.45) * min(h, w))
    pw, ph = int(side * np.sqrt(aspect)), int(side / np.sqrt(aspect))
    pw, ph = max(8, min(pw, w - 1)), max(8, min(ph, h - 1))
    x0, y0 = int(rng.integers(0, w - pw)), int(rng.integers(0, h - ph))
    return im, (x0, y0, pw, ph)


def _render_patch(im: np.ndarray, region: tuple[int, int, int, int], w: int, h: int,
                  tint: np.ndarray | None = None, blur: tuple[int, int] | None = None) -> np.ndarray:
    x0, y0, pw, ph = region
    patch = np.asarray(Image.fromarray(im[y0:y0 + ph, x0:x0 + pw]).resize((w, h), Image.BILINEAR),
                       dtype=np.float32)
    if tint is not None:
        patch = patch * tint
    if blur is not None and blur[0] > 1:
        patch = uniform_filter1d(patch, size=blur[0], axis=blur[1], mode="nearest")
    return patch


def _paste(canvas: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    H, W = canvas.shape[:2]
    h, w = patch.shape[:2]
    x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x2 > x1 and y2 > y1:
        canvas[y1:y2, x1:x2] = patch[y1 - y:y2 - y, x1 - x:x2 - x]


@dataclass
class _Scene:
    """Everything one sequence draws before its first frame (in this order, from its own rng),
    and the camera's moving state."""

    bg: np.ndarray
    cam: np.ndarray
    cam_v: np.ndarray
    base: float
    aspect0: float
    tgt_im: np.ndarray
    tgt_region: tuple[int, int, int, int]
    scale_wave: tuple[float, float, float]
    aspect_wave: tuple[float, float, float]
    mover: _Mover
    distractors: list[tuple[Any, np.ndarray, float, _Mover]]
    light_wave: tuple[float, float, float]
    occ: tuple[int, int, int, float, np.ndarray] | None


def _scene(rng: np.random.Generator, frames: int, cfg: SynthConfig) -> _Scene:
    W, H, P = cfg.width, cfg.height, cfg.pan
    # background: one source image resized to cover the frame plus the pan range
    bg_src = _image(_BACKGROUNDS[rng.integers(len(_BACKGROUNDS))])
    bg = np.asarray(Image.fromarray(bg_src).resize((W + 2 * P, H + 2 * P), Image.BILINEAR), dtype=np.float32)
    bg *= rng.uniform(0.6, 1.0, 3).astype(np.float32)  # colour cast so backgrounds vary more
    cam = np.array([rng.uniform(0, 2 * P), rng.uniform(0, 2 * P)])
    cam_v = rng.normal(0, 0.5, 2)
    # target: base size, aspect, source texture region, scale/aspect oscillations
    base = rng.uniform(cfg.min_size, cfg.max_size)
    aspect0 = float(np.exp(rng.uniform(-0.5, 0.5)))
    tgt_name = _TARGETS[rng.integers(len(_TARGETS))]
    tgt_im, tgt_region = _source_patch(rng, tgt_name, aspect0)
    s_wave = (rng.uniform(0.05, 0.35), rng.uniform(40, 120), rng.uniform(0, 2 * np.pi))
    a_wave = (rng.uniform(0.0, 0.2), rng.uniform(40, 120), rng.uniform(0, 2 * np.pi))
    mover = _Mover(rng, cfg, margin=base * 0.9, speed=rng.uniform(cfg.min_speed, cfg.max_speed))
    distractors = _distractors(rng, cfg, tgt_im, tgt_region, base)
    # illumination drift and an optional partial occlusion event
    ill_wave = (rng.uniform(0.0, 0.3), rng.uniform(30, 100), rng.uniform(0, 2 * np.pi))
    occ = None
    if rng.random() < 0.5 and frames > 4:
        start = int(rng.integers(1, max(2, frames - 2)))
        length = int(rng.integers(3, 16))
        side = int(rng.integers(4))  # left, top, right, bottom
        frac = rng.uniform(0.2, 0.45)
        occ_src = _image(_BACKGROUNDS[rng.integers(len(_BACKGROUNDS))])
        occ = (start, start + length, side, frac, occ_src[:64, :64].astype(np.float32))
    return _Scene(bg, cam, cam_v, base, aspect0, tgt_im, tgt_region, s_wave, a_wave, mover, distractors, ill_wave, occ)


def _distractors(rng: np.random.Generator, cfg: SynthConfig, tgt_im: np.ndarray,
                 tgt_region: tuple[int, int, int, int], base: float) -> list[tuple[Any, np.ndarray, float, _Mover]]:
    """Look-alikes: the target's texture, shifted a little in the source, tinted."""
    out = []
    for _ in range(int(rng.choice([0, 0, 1, 2]))):
        x0, y0, pw, ph = tgt_region
        sh, sw = tgt_im.shape[:2]
        dx, dy = (rng.uniform(-0.3, 0.3, 2) * (pw, ph)).astype(int)
        reg = (int(np.clip(x0 + dx, 0, sw - pw)), int(np.clip(y0 + dy, 0, sh - ph)), pw, ph)
        tint = rng.uniform(0.6, 1.4, 3).astype(np.float32)
        size = base * rng.uniform(0.8, 1.2)
        out.append((reg, tint, size, _Mover(rng, cfg, margin=size * 0.6, speed=rng.uniform(cfg.min_speed, cfg.max_speed))))
    return out


def _wave(w: tuple[float, float, float], t: int) -> float:
    amp, period, phase = w
    return amp * np.sin(2 * np.pi * t / period + phase)


def _frame(sc: _Scene, t: int, cfg: SynthConfig) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Frame ``t`` (the camera and movers step once) and the target's box in it."""
    W, H, P = cfg.width, cfg.height, cfg.pan
    sc.cam = np.clip(sc.cam + sc.cam_v, 0, 2 * P)
    if sc.cam[0] in (0, 2 * P) or sc.cam[1] in (0, 2 * P):
        sc.cam_v = -sc.cam_v
    cx0, cy0 = int(sc.cam[0]), int(sc.cam[1])
    frame = sc.bg[cy0:cy0 + H, cx0:cx0 + W].copy()
    for reg, tint, size, mv in sc.distractors:
        c = mv.step()
        dw, dh = max(4, int(size * np.sqrt(sc.aspect0))), max(4, int(size / np.sqrt(sc.aspect0)))
        _paste(frame, _render_patch(sc.tgt_im, reg, dw, dh, tint), int(c[0] - dw / 2), int(c[1] - dh / 2))
    c = sc.mover.step()
    scale = np.exp(_wave(sc.scale_wave, t))
    asp = sc.aspect0 * np.exp(_wave(sc.aspect_wave, t))
    w = max(int(round(min(sc.base * scale * np.sqrt(asp), W * 0.6))), 6)
    h = max(int(round(min(sc.base * scale / np.sqrt(asp), H * 0.6))), 6)
    x = int(round(np.clip(c[0] - w / 2, 0, W - w)))
    y = int(round(np.clip(c[1] - h / 2, 0, H - h)))
    speed = float(np.linalg.norm(sc.mover.vel))
    blur = (int(round(speed)), 1 if abs(sc.mover.vel[0]) >= abs(sc.mover.vel[1]) else 0) if speed > 2.5 else None
    _paste(frame, _render_patch(sc.tgt_im, sc.tgt_region, w, h, blur=blur), x, y)
    if sc.occ is not None and sc.occ[0] <= t < sc.occ[1]:
        _, _, side, frac, tex = sc.occ
        ow, oh = (int(w * frac), h) if side in (0, 2) else (w, int(h * frac))
        ox = x if side in (0, 1) else x + w - ow
        oy = y if side in (0, 1, 2) and side != 3 else y + h - oh
        occluder = np.asarray(Image.fromarray(tex.astype(np.uint8)).resize((max(ow, 1), max(oh, 1))),
                              dtype=np.float32)
        _paste(frame, occluder, ox, oy)
    frame *= np.float32(1.0 + _wave(sc.light_wave, t))
    return frame, (x, y, w, h)


def generate_sequence(out_dir: Path, seed: int, index: int, frames: int, cfg: SynthConfig) -> None:
    """Write one sequence (frames + groundtruth.txt) into ``out_dir``."""
    rng = np.random.default_rng([seed, index])
    out_dir.mkdir(parents=True, exist_ok=True)
    scene = _scene(rng, frames, cfg)
    lines = []
    ext = "jpg" if cfg.fmt in ("jpg", "jpeg") else "png"
    for t in range(frames):
        frame, (x, y, w, h) = _frame(scene, t, cfg)
        img = Image.fromarray(np.clip(frame, 0, 255).astype(np.uint8))
        path = out_dir / f"{t + 1:08d}.{ext}"
        if ext == "jpg":
            img.save(path, format="JPEG", quality=cfg.quality)
        else:
            img.save(path, format="PNG", compress_level=1)
        lines.append(f"{x:.4f},{y:.4f},{w:.4f},{h:.4f}")
    (out_dir / "groundtruth.txt").write_text("\n".join(lines) + "\n")


def generate_synthetic(out: str | Path, sequences: int, frames: int, seed: int = 0,
                       config: SynthConfig | None = None, progress: Progress | None = None) -> Path:
    """Write ``sequences`` sequences of ``frames`` frames under ``out`` (GOT-10k layout).
    ``progress``: called with ``("synth <folder>", done, total)`` after each sequence."""
    if sequences < 1 or frames < 2:
        raise ValueError("need at least 1 sequence of at least 2 frames")
    cfg = config or SynthConfig()
    if cfg.fmt not in ("jpg", "jpeg", "png"):
        raise ValueError(f"format must be jpg or png, got {cfg.fmt!r}")
    if cfg.width < 160 or cfg.height < 120:
        raise ValueError("frames must be at least 160x120")
    if not 0 < cfg.min_speed <= cfg.max_speed:
        raise ValueError(f"need 0 < min_speed <= max_speed, got {cfg.min_speed} and {cfg.max_speed}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = [f"SYN_{i:06d}" for i in range(1, sequences + 1)]
    for i, name in enumerate(names):
        generate_sequence(out / name, seed, i, frames, cfg)
        if progress:
            progress(f"synth {out.name}", i + 1, sequences)
    (out / "list.txt").write_text("\n".join(names) + "\n")
    return out
