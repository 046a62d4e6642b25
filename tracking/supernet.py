"""The one-shot LightTrack supernet: every choice of the search space, run one path at a time.

Weight sharing
--------------
* Backbone: each block position holds its 6 MBConv choices (kernel 3/5/7 x expansion 4/6) as
  separate modules; a path uses exactly one of them per active position.
* Output position: every candidate position has its own ``OutputAdjust`` (BN + 1x1 conv), as in
  LightTrack, since features at different depths have different statistics.
* Neck: one, shared by all paths.
* Head towers (cls and reg, separately): **one separate tower per width** (128/192/256), each
  layer holding a 3x3 and a 5x5 ``HeadLayer``; "skip" uses no module. Widths are not sliced from
  the widest tower: separate modules keep BN statistics per width (slicing would mix statistics of
  differently wide layers), make extraction a plain copy, and match how LightTrack's supernet
  builds its towers. Each tower width has its own ``ClsOutput`` / ``RegOutput``.

Geometry of the outputs
-----------------------
``track`` returns maps of 16x16 cells over the 256x256 search image (stride 16). By convention
cell ``(i, j)`` (row ``i``, column ``j``) is centred at search-image pixel coordinate
``(x, y) = (j * 16 + 8, i * 16 + 8)`` (continuous coordinates, the image spanning [0, 256)), so the
grid is symmetric about the image centre (128, 128). ``reg[:, :, i, j]`` holds distances
(left, top, right, bottom) in search-image pixels from that centre to the box edges: the box is
``(cx - l, cy - t, cx + r, cy + b)``. The tracker (``tracking/tracker.py``, :func:`cell_centres`)
and the training labels both use this convention; the network learns any offset between it and
the exact receptive-field centres.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tracking.ops import (
    STRIDE,
    ClsOutput,
    DSConv,
    HeadLayer,
    MBConv,
    Neck,
    OutputAdjust,
    RegOutput,
    Stem,
)
from tracking.space import (
    HEAD_KERNELS,
    MBCONV_CHOICES,
    SKIP,
    Architecture,
    Head,
    SearchSpace,
    adjust_spec,
    backbone_positions,
    ds_spec,
    neck_spec,
    stem_spec,
)

OUTPUT_SIZE = 16  # score map is 16x16 for a 256x256 search image


def cell_centres(size: int = OUTPUT_SIZE, stride: int = STRIDE) -> Tensor:
    """``[2, size, size]`` tensor of (x, y) search-image coordinates of every cell centre."""
    c = torch.arange(size, dtype=torch.float32) * stride + stride / 2
    ys, xs = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xs, ys])


class TrackerPath(nn.Module):
    """One path through the tracker as a plain module: the computation shared by the supernet's
    single-path forward and the extracted :class:`tracking.subnet.Subnet`.

    Its children are the chosen modules themselves (references into the supernet, or copies in a
    subnet); ``Sequential`` containers keep the order.
    """

    def __init__(self, stem: nn.Module, ds: nn.Module, blocks: list[nn.Module], adjust: nn.Module,
                 neck: nn.Module, cls_layers: list[nn.Module], cls_out: nn.Module,
                 reg_layers: list[nn.Module], reg_out: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.ds = ds
        self.blocks = nn.Sequential(*blocks)
        self.adjust = adjust
        self.neck = neck
        self.cls_tower = nn.Sequential(*cls_layers)
        self.cls_out = cls_out
        self.reg_tower = nn.Sequential(*reg_layers)
        self.reg_out = reg_out

    def features(self, img: Tensor) -> Tensor:
        return self.adjust(self.blocks(self.ds(self.stem(img))))

    def template_feature(self, z: Tensor) -> Tensor:
        """``[B,3,128,128]`` template -> ``[B,C,8,8]`` feature (computed once per sequence)."""
        return self.features(z)

    def track(self, zf: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(cls [B,1,16,16] logits, reg [B,4,16,16] l,t,r,b pixels)`` for search images ``x``."""
        fused = self.neck(zf, self.features(x))
        return self.cls_out(self.cls_tower(fused)), self.reg_out(self.reg_tower(fused))

    def forward(self, z: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.track(self.template_feature(z), x)


class Supernet(nn.Module):
    """Every choice of ``space``; forward runs the single path named by an :class:`Architecture`."""

    def __init__(self, space: SearchSpace | None = None) -> None:
        super().__init__()
        self.space = space or SearchSpace.paper()
        sp = self.space
        # every shape below comes from the one topology (tracking.space.blocks and its parts)
        stem, ds, neck = stem_spec(sp), ds_spec(sp), neck_spec(sp)
        self.stem = Stem(stem.in_ch, stem.out_ch)
        self.ds = DSConv(ds.in_ch, ds.out_ch, ds.kernel, ds.stride)
        # blocks[s][b][c]: choice c of block b of stage s
        positions = backbone_positions(sp)
        self.blocks = nn.ModuleList(
            nn.ModuleList(
                nn.ModuleList(MBConv(p.in_ch, p.out_ch, k, e, p.stride) for k, e in MBCONV_CHOICES)
                for p in positions if p.stage == s)
            for s in range(len(sp.stage_blocks)))
        self.adjusts = nn.ModuleDict({
            _pos_key(s, b): OutputAdjust(a.in_ch, a.out_ch, a.stride)
            for s, b in sp.output_positions for a in [adjust_spec(sp, s)]})
        self.neck = Neck(out_ch=neck.out_ch)
        self.cls_towers, self.cls_outs = self._towers(ClsOutput)
        self.reg_towers, self.reg_outs = self._towers(RegOutput)

    def _towers(self, out_cls: type[nn.Module]) -> tuple[nn.ModuleList, nn.ModuleList]:
        sp = self.space
        towers = nn.ModuleList(
            nn.ModuleList(
                nn.ModuleList(HeadLayer(sp.neck_channels if layer == 0 else w, w, k) for k in HEAD_KERNELS)
                for layer in range(sp.head_layers))
            for w in sp.head_widths)
        outs = nn.ModuleList(out_cls(w) for w in sp.head_widths)
        return towers, outs

    # -- paths ---------------------------------------------------------------------------
    def check(self, arch: Architecture) -> None:
        """Raise ``ArchitectureError`` if ``arch`` is not in this supernet's space."""
        arch.validate(self.space)

    def _head_layers(self, towers: nn.ModuleList, head: Head) -> list[nn.Module]:
        tower = towers[head.width]
        return [tower[i][c] for i, c in enumerate(head.layers) if c != SKIP]

    def path(self, arch: Architecture) -> TrackerPath:
        """The modules ``arch`` uses, wired as a :class:`TrackerPath` (shared, not copied)."""
        self.check(arch)
        return TrackerPath(
            stem=self.stem,
            ds=self.ds,
            blocks=[self.blocks[s][b][c] for s, b, c in arch.active_blocks()],
            adjust=self.adjusts[_pos_key(arch.out_stage, arch.out_block)],
            neck=self.neck,
            cls_layers=self._head_layers(self.cls_towers, arch.cls),
            cls_out=self.cls_outs[arch.cls.width],
            reg_layers=self._head_layers(self.reg_towers, arch.reg),
            reg_out=self.reg_outs[arch.reg.width],
        )

    def path_modules(self, arch: Architecture) -> list[nn.Module]:
        """The distinct block modules ``arch`` runs (for BN recalibration, freezing, ...)."""
        p = self.path(arch)
        return [p.stem, p.ds, *p.blocks, p.adjust, p.neck, *p.cls_tower, p.cls_out, *p.reg_tower, p.reg_out]

    def template_feature(self, z: Tensor, arch: Architecture) -> Tensor:
        return self.path(arch).template_feature(z)

    def track(self, zf: Tensor, x: Tensor, arch: Architecture) -> tuple[Tensor, Tensor]:
        return self.path(arch).track(zf, x)

    def forward(self, z: Tensor, x: Tensor, arch: Architecture) -> tuple[Tensor, Tensor]:
        return self.path(arch)(z, x)


def _pos_key(stage: int, block: int) -> str:
    return f"s{stage}b{block}"
