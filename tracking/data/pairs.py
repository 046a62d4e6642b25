"""Training pairs: template/search crops from a GOT-10k-layout dataset, with labels.

Crop convention (SiamFC/LightTrack, the tracker's, see ``tracking/crop.py``): a target of size ``(w, h)`` gets a
square context region of side ``s_z = sqrt((w + p)(h + p))`` with ``p = context * (w + h)``,
``context = 0.5``; the template is that region resized to 128x128, the search image a region of
side ``s_z * 256 / 128`` resized to 256x256, both padded with the frame's mean colour. For
training, the search region is jittered: its centre is shifted by up to ``max_shift`` search
pixels and its side scaled by ``exp(U(-max_scale, max_scale))``.

Labels live on the supernet's 16x16 score map (cell ``(i, j)`` centred at search pixel
``(16 j + 8, 16 i + 8)``, see ``tracking/supernet.py``): a cell is positive when its centre is
within ``pos_radius`` pixels of the target centre and inside the box, negative otherwise. The
regression target of each cell is the ``(l, t, r, b)`` distance from the cell centre to the box
edges in search pixels; ``reg_mask`` marks the cells whose centre is inside the box, where the
regression loss applies (Ocean/LightTrack: every cell inside the box, not only the positives,
so the size regression gets ~4x the supervision).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from tracking.crop import context_size, crop_square_u8, normalise
from tracking.data.got10k import Dataset

SCORE_SIZE = 16
STRIDE = 16


@dataclass(frozen=True)
class PairConfig:
    template_size: int = 128
    search_size: int = 256
    context: float = 0.5
    max_gap: int = 50  # frames between template and search
    max_shift: float = 64.0  # search-centre jitter (search pixels)
    max_scale: float = 0.2  # log-scale jitter of the search region
    template_shift: float = 4.0  # small template jitter (template pixels)
    template_scale: float = 0.05
    pos_radius: float = 20.0  # positives: cell centre within this many search pixels of the centre

    def to_dict(self) -> dict:
        return asdict(self)


def crop_resize(image: np.ndarray, cx: float, cy: float, side: float, out: int,
                fill: tuple[int, int, int] | None = None) -> np.ndarray:
    """Square region of side ``side`` centred at ``(cx, cy)`` resized to ``out x out`` (bilinear,
    uint8); outside the frame ``fill`` (default: the mean colour). The tracker's crop
    (:func:`tracking.crop.crop_square_u8`), so training sees exactly what tracking sees."""
    return crop_square_u8(image, (cx, cy), side, out, fill)


def to_tensor(crop: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 RGB -> [3,H,W] float, ImageNet-normalised (the tracker's input convention)."""
    return torch.from_numpy(normalise(crop))


def cell_centres_np(size: int = SCORE_SIZE, stride: int = STRIDE) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(size, dtype=np.float32) * stride + stride / 2
    ys, xs = np.meshgrid(c, c, indexing="ij")
    return xs, ys


def make_labels(box_xyxy: np.ndarray, pos_radius: float = 20.0, size: int = SCORE_SIZE,
                stride: int = STRIDE) -> tuple[np.ndarray, np.ndarray]:
    """``cls [16,16]`` (1 positive, 0 negative) and ``reg [4,16,16]`` (l,t,r,b) for one box
    ``(x1, y1, x2, y2)`` in search-image pixels."""
    xs, ys = cell_centres_np(size, stride)
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    reg = np.stack([xs - x1, ys - y1, x2 - xs, y2 - ys]).astype(np.float32)
    tcx, tcy = (x1 + x2) / 2, (y1 + y2) / 2
    near = (xs - tcx) ** 2 + (ys - tcy) ** 2 <= pos_radius ** 2
    inside = reg.min(axis=0) > 0
    cls = (near & inside).astype(np.float32)
    if cls.sum() == 0:  # tiny target: the cell nearest the centre, if inside the box
        d = (xs - tcx) ** 2 + (ys - tcy) ** 2
        i, j = np.unravel_index(np.argmin(d), d.shape)
        if inside[i, j]:
            cls[i, j] = 1.0
    return cls, reg


def sample_pair(data: Dataset, rng: np.random.Generator, cfg: PairConfig) -> dict[str, np.ndarray]:
    """One template/search pair with labels (numpy), drawn with ``rng``."""
    seq = data.sequences[int(rng.integers(len(data.sequences)))]
    # only frames where the target is visible (absent/occluded frames carry no usable box); with
    # every frame visible the draws are the same as indexing frames directly
    vis = np.flatnonzero(seq.visible)
    ti = int(vis[rng.integers(len(vis))])
    near = vis[(vis >= ti - cfg.max_gap) & (vis <= ti + cfg.max_gap)]
    si = int(near[rng.integers(len(near))])
    return crop_pair(seq.load_frame(ti), seq.boxes[ti], seq.load_frame(si), seq.boxes[si], rng, cfg)


def crop_pair(t_img: np.ndarray, t_box: np.ndarray, s_img: np.ndarray, s_box: np.ndarray,
              rng: np.random.Generator | None, cfg: PairConfig) -> dict[str, np.ndarray]:
    """Crop template and (jittered) search image; with ``rng=None`` no jitter."""
    def jit(a: float) -> float:
        return float(rng.uniform(-a, a)) if rng is not None else 0.0

    x, y, w, h = (float(v) for v in t_box)
    sz = context_size(w, h, cfg.context)
    sz_t = sz * float(np.exp(jit(cfg.template_scale)))
    k_t = sz_t / cfg.template_size
    template = crop_resize(t_img, x + w / 2 + jit(cfg.template_shift) * k_t,
                           y + h / 2 + jit(cfg.template_shift) * k_t, sz_t, cfg.template_size)

    x, y, w, h = (float(v) for v in s_box)
    sx = context_size(w, h, cfg.context) * cfg.search_size / cfg.template_size
    sx *= float(np.exp(jit(cfg.max_scale)))
    k = cfg.search_size / sx  # search pixels per frame pixel
    dx, dy = jit(cfg.max_shift), jit(cfg.max_shift)  # where the target centre lands, from the middle
    cx, cy = x + w / 2 - dx / k, y + h / 2 - dy / k
    search = crop_resize(s_img, cx, cy, sx, cfg.search_size)
    x1 = (x - cx) * k + cfg.search_size / 2
    y1 = (y - cy) * k + cfg.search_size / 2
    box = np.array([x1, y1, x1 + w * k, y1 + h * k], dtype=np.float32)
    cls, reg = make_labels(box, cfg.pos_radius)
    reg_mask = (reg.min(axis=0) > 0).astype(np.float32)
    return {"template": template, "search": search, "box": box, "cls": cls, "reg": reg, "reg_mask": reg_mask}


class PairDataset(TorchDataset):
    """Seeded pairs: item ``i`` depends only on ``(seed, i)`` (so training can resume anywhere)."""

    def __init__(self, data: Dataset, length: int, seed: int = 0, config: PairConfig | None = None):
        if len(data) == 0:
            raise ValueError(f"{data.root}: no usable sequences")
        self.data, self.length, self.seed = data, int(length), int(seed)
        self.cfg = config or PairConfig()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < self.length:
            raise IndexError(i)
        p = sample_pair(self.data, np.random.default_rng([self.seed, int(i)]), self.cfg)
        return {
            "template": to_tensor(p["template"]),
            "search": to_tensor(p["search"]),
            "box": torch.from_numpy(p["box"]),
            "cls": torch.from_numpy(p["cls"])[None],
            "reg_mask": torch.from_numpy(p["reg_mask"])[None],
            "reg": torch.from_numpy(p["reg"]),
        }


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}
