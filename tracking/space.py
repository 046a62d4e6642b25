"""The LightTrack search space: architecture value type, encodings, validation, sampling,
mutation and crossover.

Pure Python (no torch, no numpy) so that every layer, the client included, can reason about
architectures cheaply. Facts follow ``shared/reference/lighttrack-facts.md``.

Indexing conventions used throughout lutnas:

* searchable backbone stages are numbered 0..3 (24, 40, 80, 96 channels; 2, 4, 4, 4 blocks),
  which is also the ``s`` digit of the published ``ops_<s><b>`` suffix;
* MBConv choice ``c`` in 0..5 means kernel ``(3, 5, 7)[c // 2]``, expansion ``(4, 6)[c % 2]``;
* head layer choice 0 = DSConv 3x3, 1 = DSConv 5x5, 2 = skip; layer 1 cannot be skip;
* head width index 0..2 means 128, 192, 256 channels.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NamedTuple

from tracking.geometry import CORR_CHANNELS, STRIDE

MBCONV_CHOICES: tuple[tuple[int, int], ...] = ((3, 4), (3, 6), (5, 4), (5, 6), (7, 4), (7, 6))
HEAD_LAYER_NAMES = ("dsconv3x3", "dsconv5x5", "skip")
HEAD_KERNELS = (3, 5)
SKIP = 2
# Fixed kernels of the non-searchable convs (tracking.ops builds them; tests check the match).
STEM_KERNEL = 3
DS_KERNEL = 3
OUTPUT_KERNEL = 3

PAPER_OUTPUT_STAGES = (2, 3)  # the paper: last 8 blocks (80 and 96 channel stages), stride 16
CODE_OUTPUT_STAGES = (1, 2, 3)  # the public code's sampler also allowed the 40-channel stage
SPACE_NAMES = ("paper", "code")  # how commands and requests name the two spaces

# Digits of the published back_ string that no tracker network uses: stage 0 (fixed DSConv),
# the 4 blocks of the 192-channel stage 5, and a trailing fixed digit.
_UNUSED_BACK_DIGITS = 6

_STRING_RE = re.compile(
    r"^back_(?P<back>\d{20})\+cls_(?P<cls>\d{9})\+reg_(?P<reg>\d{9})_ops_(?P<ops>\d{2})$"
)


class ArchitectureError(ValueError):
    """An architecture that is malformed or outside the search space; the message says where."""


@dataclass(frozen=True)
class SearchSpace:
    """Shape of the LightTrack space. ``output_stages`` is the one setting users change."""

    stage_blocks: tuple[int, ...] = (2, 4, 4, 4)
    stage_channels: tuple[int, ...] = (24, 40, 80, 96)
    stage_strides: tuple[int, ...] = (2, 2, 2, 1)
    output_stages: tuple[int, ...] = PAPER_OUTPUT_STAGES
    head_widths: tuple[int, ...] = (128, 192, 256)
    head_layers: int = 8
    stem_channels: int = 16
    template_size: int = 128
    search_size: int = 256
    neck_channels: int = 128

    def __post_init__(self) -> None:
        if not self.output_stages or any(s not in range(1, len(self.stage_blocks)) for s in self.output_stages):
            raise ArchitectureError(
                f"output_stages must be a non-empty subset of 1..{len(self.stage_blocks) - 1}, "
                f"got {list(self.output_stages)}"
            )

    @classmethod
    def paper(cls) -> SearchSpace:
        return cls()

    @classmethod
    def code(cls) -> SearchSpace:
        return cls(output_stages=CODE_OUTPUT_STAGES)

    @classmethod
    def named(cls, name: str) -> SearchSpace:
        """The space every command and request names: ``paper`` or ``code`` (:data:`SPACE_NAMES`)."""
        if name not in SPACE_NAMES:
            raise ValueError(f"space must be one of {', '.join(SPACE_NAMES)}, got {name!r}")
        return cls.code() if name == "code" else cls.paper()

    # -- derived facts -------------------------------------------------------------------
    @property
    def output_positions(self) -> list[tuple[int, int]]:
        return [(s, b) for s in self.output_stages for b in range(self.stage_blocks[s])]

    @property
    def n_mbconv_choices(self) -> int:
        return len(MBCONV_CHOICES)

    def stage_stride_total(self, stage: int) -> int:
        """Cumulative stride of the backbone after ``stage`` (stem is stride 2)."""
        total = 2
        for s in range(stage + 1):
            total *= self.stage_strides[s]
        return total

    def size(self) -> int:
        """Number of distinct tracker networks (unused backbone blocks do not count)."""
        head = len(self.head_widths) * len(HEAD_KERNELS) * 3 ** (self.head_layers - 1)
        backbone = 0
        for s, b in self.output_positions:
            used = sum(self.stage_blocks[:s]) + b + 1
            backbone += self.n_mbconv_choices**used
        return backbone * head * head

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpace:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ArchitectureError(f"unknown search space keys: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


DEFAULT_SPACE = SearchSpace()


@dataclass(frozen=True)
class Head:
    """One tower: width index and 8 layer choices (0: 3x3, 1: 5x5, 2: skip)."""

    width: int
    layers: tuple[int, ...]

    def width_channels(self, space: SearchSpace = DEFAULT_SPACE) -> int:
        return space.head_widths[self.width]

    def kernels(self) -> list[int | None]:
        return [None if c == SKIP else HEAD_KERNELS[c] for c in self.layers]


@dataclass(frozen=True)
class Architecture:
    """One candidate tracker.

    ``backbone[s][b]`` is the MBConv choice of block ``b`` of searchable stage ``s``; blocks after
    the output position are kept (they are part of the published name) but do not run.
    ``extra`` keeps the 6 published digits that never affect the network (stage 0, stage 5,
    trailing) so that names round-trip byte for byte; it is ignored by equality of networks
    (see :meth:`canonical_id`).
    """

    backbone: tuple[tuple[int, ...], ...]
    out_stage: int
    out_block: int
    cls: Head
    reg: Head
    extra: str = field(default="0" * _UNUSED_BACK_DIGITS, compare=True)

    # -- encodings ---------------------------------------------------------------------
    @classmethod
    def from_string(cls, text: str, space: SearchSpace = DEFAULT_SPACE) -> Architecture:
        """Parse the published LightTrack form ``back_<20>+cls_<9>+reg_<9>_ops_<2>``."""
        m = _STRING_RE.match(text.strip())
        if not m:
            raise ArchitectureError(
                f"malformed LightTrack string {text.strip()!r}: expected "
                "back_<20 digits>+cls_<9 digits>+reg_<9 digits>_ops_<2 digits>"
            )
        back = m["back"]
        digits = [int(c) for c in back[1:19]]
        backbone: list[tuple[int, ...]] = []
        i = 0
        for n in space.stage_blocks:
            backbone.append(tuple(digits[i : i + n]))
            i += n
        extra = back[0] + back[1 + i : 19] + back[19]
        arch = cls(
            backbone=tuple(backbone),
            out_stage=int(m["ops"][0]),
            out_block=int(m["ops"][1]),
            cls=Head(int(m["cls"][0]), tuple(int(c) for c in m["cls"][1:])),
            reg=Head(int(m["reg"][0]), tuple(int(c) for c in m["reg"][1:])),
            extra=extra,
        )
        arch.validate(space)
        return arch

    def to_string(self) -> str:
        n_unused_stage5 = len(self.extra) - 2
        back = self.extra[0] + "".join(str(c) for st in self.backbone for c in st)
        back += self.extra[1 : 1 + n_unused_stage5] + self.extra[-1]
        cls_ = str(self.cls.width) + "".join(map(str, self.cls.layers))
        reg_ = str(self.reg.width) + "".join(map(str, self.reg.layers))
        return f"back_{back}+cls_{cls_}+reg_{reg_}_ops_{self.out_stage}{self.out_block}"

    def to_json(self) -> dict[str, Any]:
        """The clearer JSON form (kernel/expansion spelled out)."""
        return {
            "backbone": [[{"choice": c, "kernel": MBCONV_CHOICES[c][0], "expansion": MBCONV_CHOICES[c][1]}
                          for c in st] for st in self.backbone],
            "output": {"stage": self.out_stage, "block": self.out_block},
            "cls": {"width": self.cls.width, "layers": list(self.cls.layers)},
            "reg": {"width": self.reg.width, "layers": list(self.reg.layers)},
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | str, space: SearchSpace = DEFAULT_SPACE) -> Architecture:
        """Read the JSON form; backbone entries may be bare choice ints or ``{"choice": c}`` /
        ``{"kernel": k, "expansion": e}`` objects. A ``lighttrack`` key alone is also accepted."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as e:
                raise ArchitectureError(f"architecture JSON is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise ArchitectureError("architecture JSON must be an object")
        if "backbone" not in data and isinstance(data.get("lighttrack"), str):
            return cls.from_string(data["lighttrack"], space)
        try:
            backbone = tuple(tuple(_block_choice(b, s, i) for i, b in enumerate(st))
                             for s, st in enumerate(data["backbone"]))
            out = data["output"]
            arch = cls(
                backbone=backbone,
                out_stage=int(out["stage"]),
                out_block=int(out["block"]),
                cls=Head(int(data["cls"]["width"]), tuple(int(c) for c in data["cls"]["layers"])),
                reg=Head(int(data["reg"]["width"]), tuple(int(c) for c in data["reg"]["layers"])),
                extra=str(data.get("extra", "0" * _UNUSED_BACK_DIGITS)),
            )
        except ArchitectureError:
            raise
        except KeyError as e:
            raise ArchitectureError(f"architecture JSON is missing key {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            raise ArchitectureError(f"architecture JSON has a malformed value: {e}") from None
        arch.validate(space)
        return arch

    @classmethod
    def parse(cls, text: str, space: SearchSpace = DEFAULT_SPACE) -> Architecture:
        """A LightTrack string, or a JSON object given as text."""
        text = text.strip()
        if text.startswith("{"):
            return cls.from_json(text, space)
        return cls.from_string(text, space)

    # -- validation ---------------------------------------------------------------------
    def validate(self, space: SearchSpace = DEFAULT_SPACE) -> None:
        """Raise :class:`ArchitectureError` naming the first offending part and its allowed range."""
        if len(self.backbone) != len(space.stage_blocks):
            raise ArchitectureError(
                f"backbone has {len(self.backbone)} stages, expected {len(space.stage_blocks)}")
        for s, (st, n) in enumerate(zip(self.backbone, space.stage_blocks, strict=True)):
            if len(st) != n:
                raise ArchitectureError(f"backbone stage {s} has {len(st)} blocks, expected {n}")
            for b, c in enumerate(st):
                if not isinstance(c, int) or not 0 <= c < len(MBCONV_CHOICES):
                    raise ArchitectureError(
                        f"backbone stage {s} block {b}: choice {c} not in 0..{len(MBCONV_CHOICES) - 1}")
        if self.out_stage not in space.output_stages:
            raise ArchitectureError(
                f"output stage {self.out_stage} not allowed: this space allows stages "
                f"{', '.join(map(str, space.output_stages))}")
        if not 0 <= self.out_block < space.stage_blocks[self.out_stage]:
            raise ArchitectureError(
                f"output block {self.out_block} not in 0..{space.stage_blocks[self.out_stage] - 1} "
                f"for stage {self.out_stage}")
        for name, head in (("cls", self.cls), ("reg", self.reg)):
            if not 0 <= head.width < len(space.head_widths):
                raise ArchitectureError(
                    f"{name} width {head.width} not in 0..{len(space.head_widths) - 1} "
                    f"({'/'.join(map(str, space.head_widths))} channels)")
            if len(head.layers) != space.head_layers:
                raise ArchitectureError(f"{name} has {len(head.layers)} layers, expected {space.head_layers}")
            for i, c in enumerate(head.layers):
                if not 0 <= c <= SKIP:
                    raise ArchitectureError(f"{name} layer {i + 1}: choice {c} not in 0..2 (3x3, 5x5, skip)")
            if head.layers[0] == SKIP:
                raise ArchitectureError(f"{name} layer 1 cannot be skip")
        if len(self.extra) != _UNUSED_BACK_DIGITS or not self.extra.isdigit():
            raise ArchitectureError(f"extra must be {_UNUSED_BACK_DIGITS} digits, got {self.extra!r}")

    # -- network identity ---------------------------------------------------------------
    def active_blocks(self) -> list[tuple[int, int, int]]:
        """(stage, block, choice) of every backbone block that runs, in order."""
        out = []
        for s, st in enumerate(self.backbone):
            for b, c in enumerate(st):
                if s > self.out_stage or (s == self.out_stage and b > self.out_block):
                    return out
                out.append((s, b, c))
        return out

    def canonical(self) -> Architecture:
        """Same network, unused digits zeroed: two names of one network share this form."""
        active = set(self.active_blocks())
        backbone = tuple(
            tuple(c if (s, b, c) in active else 0 for b, c in enumerate(st))
            for s, st in enumerate(self.backbone))
        return replace(self, backbone=backbone, extra="0" * _UNUSED_BACK_DIGITS)

    def canonical_id(self) -> str:
        """Stable 16-hex-digit id of the network (cache key across runs and machines)."""
        return hashlib.sha256(self.canonical().to_string().encode()).hexdigest()[:16]

    def same_network(self, other: Architecture) -> bool:
        return self.canonical() == other.canonical()

    def __str__(self) -> str:
        return self.to_string()



# -- topology: the one walk of a tracker's search graph ----------------------------------------
# Supernet modules, latency units, FLOPs and gene encodings all derive from these specs
# (timm-style block arguments), so a shape or stride is stated in one place.

@dataclass(frozen=True)
class BlockSpec:
    """One module of the per-frame search graph: what it is, where it sits, what it maps.

    ``kind`` is one of stem, dsconv, mbconv, adjust, neck, head, cls, reg; ``size`` the square
    input's side; ``stage``/``block`` the backbone position (mbconv; adjust: its stage) and
    ``tower``/``layer`` the head position; ``template`` the neck's zf side (its channels are
    ``in_ch``).
    """

    kind: str
    in_ch: int
    out_ch: int
    size: int
    kernel: int = 0
    expansion: int = 0
    stride: int = 1
    stage: int = -1
    block: int = -1
    tower: str = ""
    layer: int = -1
    template: int = 0

    @property
    def out_size(self) -> int:
        return -(-self.size // self.stride)  # 'same' padding with odd kernels: ceil


@functools.cache  # spaces are frozen: every architecture's walk reuses one tuple
def backbone_positions(space: SearchSpace = DEFAULT_SPACE) -> tuple[BlockSpec, ...]:
    """Every MBConv position of ``space`` in order, its choice left open (kernel 0)."""
    out, ch, size = [], space.stem_channels, space.search_size // 2
    for s, (n, c, st) in enumerate(zip(space.stage_blocks, space.stage_channels, space.stage_strides, strict=True)):
        for b in range(n):
            stride = st if b == 0 else 1
            out.append(BlockSpec("mbconv", ch, c, size, stride=stride, stage=s, block=b))
            ch, size = c, -(-size // stride)
    return tuple(out)


def mbconv_spec(space: SearchSpace, stage: int, block: int, choice: int) -> BlockSpec:
    """The MBConv of ``choice`` at position (stage, block)."""
    pos = next(p for p in backbone_positions(space) if (p.stage, p.block) == (stage, block))
    k, e = MBCONV_CHOICES[choice]
    return replace(pos, kernel=k, expansion=e)


def stem_spec(space: SearchSpace = DEFAULT_SPACE) -> BlockSpec:
    return BlockSpec("stem", 3, space.stem_channels, space.search_size, STEM_KERNEL, stride=2)


def ds_spec(space: SearchSpace = DEFAULT_SPACE) -> BlockSpec:
    return BlockSpec("dsconv", space.stem_channels, space.stem_channels, space.search_size // 2, DS_KERNEL)


def adjust_spec(space: SearchSpace, stage: int) -> BlockSpec:
    """BN + 1x1 of an output position, strided so the search feature is always stride 16."""
    total = space.stage_stride_total(stage)
    return BlockSpec("adjust", space.stage_channels[stage], CORR_CHANNELS, space.search_size // total,
                     stride=STRIDE // total, stage=stage)


def neck_spec(space: SearchSpace = DEFAULT_SPACE) -> BlockSpec:
    return BlockSpec("neck", CORR_CHANNELS, space.neck_channels, space.search_size // STRIDE,
                     template=space.template_size // STRIDE)


def head_specs(space: SearchSpace, head: Head, tower: str) -> list[BlockSpec]:
    """Non-skip layers of one tower, then its output conv (``tower``: ``cls`` or ``reg``)."""
    size, width = space.search_size // STRIDE, space.head_widths[head.width]
    specs, ch = [], space.neck_channels
    for i, c in enumerate(head.layers):
        if c == SKIP:
            continue
        specs.append(BlockSpec("head", ch, width, size, HEAD_KERNELS[c], tower=tower, layer=i))
        ch = width
    # Skip layers are identities, so the output conv always sees the tower width after layer 1.
    specs.append(BlockSpec(tower, width, 1 if tower == "cls" else 4, size, OUTPUT_KERNEL, tower=tower))
    return specs


def blocks(arch: Architecture, space: SearchSpace = DEFAULT_SPACE) -> list[BlockSpec]:
    """Every module ``arch``'s search graph runs, in execution order (repeats included)."""
    specs = [stem_spec(space), ds_spec(space)]
    specs += [mbconv_spec(space, s, b, c) for s, b, c in arch.active_blocks()]
    specs += [adjust_spec(space, arch.out_stage), neck_spec(space)]
    return specs + head_specs(space, arch.cls, "cls") + head_specs(space, arch.reg, "reg")


def _block_choice(value: Any, stage: int, block: int) -> int:
    if isinstance(value, bool):
        raise ArchitectureError(f"backbone stage {stage} block {block}: choice must be an int")
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        if "choice" in value:
            return int(value["choice"])
        pair = (int(value["kernel"]), int(value["expansion"]))
        if pair not in MBCONV_CHOICES:
            raise ArchitectureError(
                f"backbone stage {stage} block {block}: kernel {pair[0]} expansion {pair[1]} is not a "
                f"choice (kernels 3/5/7, expansions 4/6)")
        return MBCONV_CHOICES.index(pair)
    raise ArchitectureError(f"backbone stage {stage} block {block}: choice must be an int or object")


LIGHTTRACK_MOBILE = "back_04502514044521042540+cls_211000022+reg_100000111_ops_32"


def lighttrack_mobile() -> Architecture:
    return Architecture.from_string(LIGHTTRACK_MOBILE)


# -- sampling, mutation, crossover (all seeded through an explicit random.Random) -------------

def _sample_head(rng: random.Random, space: SearchSpace) -> Head:
    layers = [rng.randrange(len(HEAD_KERNELS))] + [rng.randrange(3) for _ in range(space.head_layers - 1)]
    return Head(rng.randrange(len(space.head_widths)), tuple(layers))


def sample(rng: random.Random, space: SearchSpace = DEFAULT_SPACE) -> Architecture:
    """Uniform over every gene (each block choice, output position, head widths and layers)."""
    backbone = tuple(tuple(rng.randrange(len(MBCONV_CHOICES)) for _ in range(n)) for n in space.stage_blocks)
    out_stage, out_block = rng.choice(space.output_positions)
    return Architecture(backbone, out_stage, out_block, _sample_head(rng, space), _sample_head(rng, space))


def sample_many(n: int, seed: int, space: SearchSpace = DEFAULT_SPACE) -> list[Architecture]:
    rng = random.Random(seed)  # seeded sampling for reproducibility, not a secret  # nosec B311
    return [sample(rng, space) for _ in range(n)]


def _mutate_head(head: Head, rng: random.Random, p: float, space: SearchSpace) -> Head:
    width = rng.randrange(len(space.head_widths)) if rng.random() < p else head.width
    layers = list(head.layers)
    for i in range(len(layers)):
        if rng.random() < p:
            layers[i] = rng.randrange(len(HEAD_KERNELS) if i == 0 else 3)
    return Head(width, tuple(layers))


def mutate(arch: Architecture, rng: random.Random, p: float = 0.1,
           space: SearchSpace = DEFAULT_SPACE) -> Architecture:
    """Resample each gene independently with probability ``p`` (LightTrack: 0.1)."""
    backbone = tuple(
        tuple(rng.randrange(len(MBCONV_CHOICES)) if rng.random() < p else c for c in st)
        for st in arch.backbone)
    out_stage, out_block = arch.out_stage, arch.out_block
    if rng.random() < p:
        out_stage, out_block = rng.choice(space.output_positions)
    return Architecture(backbone, out_stage, out_block, _mutate_head(arch.cls, rng, p, space),
                        _mutate_head(arch.reg, rng, p, space), arch.extra)


def crossover(a: Architecture, b: Architecture, rng: random.Random) -> Architecture:
    """Backbone per whole stage, output position from one parent, heads per layer (and width)."""
    backbone = tuple(sa if rng.random() < 0.5 else sb for sa, sb in zip(a.backbone, b.backbone, strict=True))
    src = a if rng.random() < 0.5 else b

    def mix(ha: Head, hb: Head) -> Head:
        width = ha.width if rng.random() < 0.5 else hb.width
        layers = tuple(x if rng.random() < 0.5 else y for x, y in zip(ha.layers, hb.layers, strict=True))
        return Head(width, layers)

    return Architecture(backbone, src.out_stage, src.out_block, mix(a.cls, b.cls), mix(a.reg, b.reg), a.extra)


class Gene(NamedTuple):
    """One gene of the flat encoding: its name (``backbone.<s>.<b>``, ``output``,
    ``<tower>.width``, ``<tower>.layer<i>``) and its number of values."""

    name: str
    n: int

    @property
    def kind(self) -> str:
        """backbone, output, width or layer: what consumers branch on instead of the name."""
        last = self.name.rsplit(".", 1)[-1]
        return "layer" if last.startswith("layer") else "width" if last == "width" else self.name.split(".")[0]

    @property
    def layer(self) -> int:
        """0-based head layer of a ``layer`` gene (-1 otherwise)."""
        return int(self.name.rsplit("layer", 1)[1]) - 1 if self.kind == "layer" else -1


def enumerate_genes(space: SearchSpace = DEFAULT_SPACE) -> Iterator[Gene]:
    """Every gene, in a fixed order (used by encoders): the backbone positions of
    :func:`backbone_positions`, the output position, then each tower's width and layers."""
    for p in backbone_positions(space):
        yield Gene(f"backbone.{p.stage}.{p.block}", len(MBCONV_CHOICES))
    yield Gene("output", len(space.output_positions))
    for name in ("cls", "reg"):
        yield Gene(f"{name}.width", len(space.head_widths))
        for i in range(space.head_layers):
            yield Gene(f"{name}.layer{i + 1}", len(HEAD_KERNELS) if i == 0 else 3)


def to_genes(arch: Architecture, space: SearchSpace = DEFAULT_SPACE) -> list[int]:
    """Flat integer gene vector in :func:`enumerate_genes` order (for predictors and pymoo)."""
    genes = [c for st in arch.backbone for c in st]
    genes.append(space.output_positions.index((arch.out_stage, arch.out_block)))
    for head in (arch.cls, arch.reg):
        genes.append(head.width)
        genes.extend(head.layers)
    return genes


def from_genes(genes: list[int], space: SearchSpace = DEFAULT_SPACE) -> Architecture:
    genes = [int(g) for g in genes]
    backbone, i = [], 0
    for n in space.stage_blocks:
        backbone.append(tuple(genes[i : i + n]))
        i += n
    out_stage, out_block = space.output_positions[genes[i]]
    i += 1
    heads = []
    for _ in range(2):
        heads.append(Head(genes[i], tuple(genes[i + 1 : i + 1 + space.head_layers])))
        i += 1 + space.head_layers
    arch = Architecture(tuple(backbone), out_stage, out_block, heads[0], heads[1])
    arch.validate(space)
    return arch


def log10_size(space: SearchSpace = DEFAULT_SPACE) -> float:
    return math.log10(space.size())
