"""Data: GOT-10k reader (malformed input), synthetic generator determinism, crops and labels."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tracking.conftest import SMALL_FRAMES
from tracking.crop import crop_square
from tracking.data import (
    DatasetError,
    PairConfig,
    PairDataset,
    SynthConfig,
    crop_pair,
    generate_synthetic,
    make_labels,
    read_dataset,
)
from tracking.data.pairs import crop_resize

torch.set_num_threads(1)
TINY = SMALL_FRAMES


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "data"
    generate_synthetic(root, sequences=2, frames=5, seed=3, config=TINY, progress=False)
    return root


@pytest.fixture
def corrupt(synth, tmp_path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(synth, root)
    return root



# -- generator -----------------------------------------------------------------------------------

def test_synth_same_seed_same_bytes_different_seed_differs(synth, tmp_path):
    again = generate_synthetic(tmp_path / "again", 2, 5, seed=3, config=TINY, progress=False)
    other = generate_synthetic(tmp_path / "other", 2, 5, seed=4, config=TINY, progress=False)
    assert digest(again) == digest(synth)
    d_other = digest(other)
    assert d_other.keys() == digest(synth).keys()
    assert d_other["SYN_000001/00000001.jpg"] != digest(synth)["SYN_000001/00000001.jpg"]
    assert (other / "SYN_000001/groundtruth.txt").read_text() != (synth / "SYN_000001/groundtruth.txt").read_text()


def test_synth_png_and_layout(tmp_path):
    root = generate_synthetic(tmp_path / "p", 1, 3, seed=0, config=SynthConfig(width=160, height=120, fmt="png"),
                              progress=False)
    assert (root / "list.txt").read_text().split() == ["SYN_000001"]
    assert sorted(p.name for p in (root / "SYN_000001").iterdir()) == [
        "00000001.png", "00000002.png", "00000003.png", "groundtruth.txt"]


def test_synth_boxes_inside_frames(synth):
    ds = read_dataset(synth, on_error="raise")
    assert len(ds) == 2 and ds.n_frames == 10 and not ds.issues
    for seq in ds.sequences:
        frame = seq.load_frame(0)
        assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
        b = seq.boxes
        assert (b[:, 2:] > 0).all() and (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all()
        assert (b[:, 0] + b[:, 2] <= 160).all() and (b[:, 1] + b[:, 3] <= 120).all()


def test_synth_targets_travel(tmp_path):
    # a target that barely leaves its start lets a box that never moves score like a tracker
    root = generate_synthetic(tmp_path / "m", 4, 30, seed=0, config=TINY, progress=False)
    for seq in read_dataset(root, on_error="raise").sequences:
        centre = seq.boxes[:, :2] + seq.boxes[:, 2:] / 2
        assert np.linalg.norm(np.diff(centre, axis=0), axis=1).mean() >= 0.5 * TINY.min_speed
        assert np.linalg.norm(centre - centre[0], axis=1).max() >= 10 * TINY.min_speed
    with pytest.raises(ValueError, match="min_speed"):
        generate_synthetic(tmp_path / "bad", 1, 3, config=SynthConfig(min_speed=0.0), progress=False)


# -- reader: malformed input ----------------------------------------------------------------------

def _gt(root: Path, seq: str = "SYN_000001") -> Path:
    return root / seq / "groundtruth.txt"


def test_bad_box_line_named_skip_vs_raise(corrupt):
    gt = _gt(corrupt)
    lines = gt.read_text().splitlines()
    lines[2] = "12,abc,5,5"
    gt.write_text("\n".join(lines) + "\n")
    ds = read_dataset(corrupt, on_error="skip")
    assert [s.name for s in ds.sequences] == ["SYN_000002"] and ds.skipped == ["SYN_000001"]
    assert len(ds.issues) == 1
    issue = ds.issues[0]
    assert issue.file == gt and issue.line == 3 and "not numbers" in issue.reason
    with pytest.raises(DatasetError, match=r"groundtruth\.txt:3: not numbers"):
        read_dataset(corrupt, on_error="raise")


@pytest.mark.parametrize("line, reason", [("1,2,0,5", "empty box"), ("1 2 3", "3 values"),
                                          ("1,2,nan,4", "non-finite")])
def test_bad_boxes(corrupt, line, reason):
    gt = _gt(corrupt)
    lines = gt.read_text().splitlines()
    lines[4] = line
    gt.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=rf"groundtruth\.txt:5: .*{reason}"):
        read_dataset(corrupt, on_error="raise")


def test_whitespace_separated_boxes_are_fine(corrupt):
    gt = _gt(corrupt)
    gt.write_text("\n".join(ln.replace(",", "\t") for ln in gt.read_text().splitlines()) + "\n")
    ds = read_dataset(corrupt, on_error="raise")
    assert ds.sequences[0].boxes.shape == (5, 4)


def test_missing_frame_and_count_mismatch(corrupt):
    (corrupt / "SYN_000001" / "00000003.jpg").unlink()
    gt = _gt(corrupt, "SYN_000002")
    gt.write_text("\n".join(gt.read_text().splitlines()[:4]) + "\n")
    ds = read_dataset(corrupt)
    assert len(ds) == 0 and ds.skipped == ["SYN_000001", "SYN_000002"]
    msgs = [str(i) for i in ds.issues]
    assert any("SYN_000001" in m and "00000003.jpg" in m and "missing frame" in m for m in msgs)
    assert any("SYN_000002/groundtruth.txt" in m and "4 boxes for 5 frames" in m for m in msgs)
    with pytest.raises(DatasetError, match="missing frame"):
        read_dataset(corrupt, on_error="raise")


def test_list_names_missing_folder(corrupt):
    (corrupt / "list.txt").write_text("SYN_000001\nNOPE\nSYN_000002\n")
    ds = read_dataset(corrupt)
    assert len(ds) == 2
    assert str(ds.issues[0]).endswith("list.txt:2: sequence folder 'NOPE' missing")
    with pytest.raises(DatasetError, match=r"list\.txt:2"):
        read_dataset(corrupt, on_error="raise")


def test_missing_root_and_bad_option(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_dataset(tmp_path / "nope")
    with pytest.raises(ValueError, match="on_error"):
        read_dataset(tmp_path, on_error="ignore")  # type: ignore[arg-type]


# -- crops and labels ----------------------------------------------------------------------------

def test_labels_hand_checked():
    # 64x64 box centred on cell (8, 8), whose centre is search pixel (136, 136)
    cls, reg = make_labels(np.array([104, 104, 168, 168]), pos_radius=20)
    assert cls[8, 8] == 1
    np.testing.assert_allclose(reg[:, 8, 8], [32, 32, 32, 32])
    # cell (8, 9): centre (152, 136): l = 152-104, t = 136-104, r = 168-152, b = 168-136
    np.testing.assert_allclose(reg[:, 8, 9], [48, 32, 16, 32])
    assert cls[8, 9] == 1 and cls[7, 8] == 1  # 16 px away <= 20
    assert cls[7, 7] == 0  # 22.6 px away
    assert cls.sum() == 5 and cls[0, 0] == 0


def test_labels_ltrb_round_trip():
    """Every cell inside the box decodes (centre - l, centre - t, centre + r, centre + b) to the
    box itself, whatever its size, so the regression target carries the target's size."""
    from tracking.data.pairs import cell_centres_np

    xs, ys = cell_centres_np()
    for box in ([97.5, 60.25, 171.0, 140.0], [120.0, 118.0, 140.0, 131.0], [10.0, 20.0, 250.0, 200.0]):
        cls, reg = make_labels(np.array(box))
        inside = reg.min(axis=0) > 0
        assert inside.any() and cls[~inside].sum() == 0
        decoded = np.stack([xs - reg[0], ys - reg[1], xs + reg[2], ys + reg[3]])[:, inside]
        np.testing.assert_allclose(decoded, np.broadcast_to(np.array(box)[:, None], decoded.shape), atol=1e-4)


def test_crop_pair_box_follows_search_scale():
    """With scale jitter the target's size in the search image changes with the region's side
    (the regression targets then vary with it); without jitter it is the template-implied size."""
    frame = np.zeros((240, 320, 3), np.uint8)
    box = np.array([100.0, 80.0, 40.0, 40.0])
    cfg = PairConfig(max_scale=0.3, max_shift=0.0)
    widths = [float(np.ptp(crop_pair(frame, box, frame, box, np.random.default_rng(i), cfg)["box"][[0, 2]]))
              for i in range(20)]
    assert min(widths) < 64 * np.exp(-0.15) and max(widths) > 64 * np.exp(0.15)
    assert all(64 * np.exp(-0.3) - 1e-3 <= w <= 64 * np.exp(0.3) + 1e-3 for w in widths)


def test_crop_pair_geometry_without_jitter():
    frame = np.zeros((240, 320, 3), np.uint8)
    box = np.array([100.0, 80.0, 40.0, 40.0])  # context side 80 -> search side 160 -> 1.6 px/px
    p = crop_pair(frame, box, frame, box, None, PairConfig())
    np.testing.assert_allclose(p["box"], [96, 96, 160, 160], atol=1e-4)
    assert p["template"].shape == (128, 128, 3) and p["search"].shape == (256, 256, 3)
    assert set(zip(*np.nonzero(p["cls"]), strict=True)) == {(7, 7), (7, 8), (8, 7), (8, 8)}


def _reference_crop(frame, cx, cy, size, out, pad):
    """Independent numpy bilinear crop (one tap pair per axis, pad-blended at the border) and
    each output pixel's in-frame weight."""
    grid = (np.arange(out) + 0.5) * size / out - size / 2 - 0.5
    h, w = frame.shape[:2]
    img = np.pad(frame.astype(np.float64), ((1, 1), (1, 1), (0, 0)))
    inside = np.pad(np.ones((h, w)), 1)
    ys, xs = np.clip(cy + grid + 1, 0, h + 1), np.clip(cx + grid + 1, 0, w + 1)  # beyond: the zero ring
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = ys - y0, xs - x0
    y1, x1 = np.minimum(y0 + 1, h + 1), np.minimum(x0 + 1, w + 1)

    def bil(a):
        return ((a[y0][:, x0] * (1 - fx)[None, :, None] + a[y0][:, x1] * fx[None, :, None]) * (1 - fy)[:, None, None]
                + (a[y1][:, x0] * (1 - fx)[None, :, None] + a[y1][:, x1] * fx[None, :, None]) * fy[:, None, None])

    weight = bil(inside[..., None])
    return bil(img) + np.asarray(pad, np.float64) * (1 - weight), weight[..., 0]


def test_crop_matches_reference_bilinear():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    for cx, cy, side in ((70.3, 50.6, 90.5), (10.2, 100.7, 150.0)):  # inside; straddling two borders
        ours = crop_resize(frame, cx, cy, side, 128, (10, 20, 30)).astype(np.float64)
        ref, weight = _reference_crop(frame, cx, cy, side, 128, (10, 20, 30))
        # the one-pixel seam at the frame's edge is blended differently (PIL clamps): compare the rest
        clean = (weight == 0) | (weight == 1)
        assert clean.mean() > 0.97 and np.abs(ours - ref)[clean].max() <= 1.01
    np.testing.assert_array_equal(crop_square(frame, (70.3, 50.6), 90.5, 128),
                                  crop_resize(frame, 70.3, 50.6, 90.5, 128).astype(np.float32))


def test_pair_dataset_seeded(synth):
    ds = read_dataset(synth)
    a, b = PairDataset(ds, 4, seed=1), PairDataset(ds, 4, seed=1)
    x, y = a[2], b[2]
    for k in x:
        assert torch.equal(x[k], y[k])
    assert not torch.equal(a[1]["search"], a[2]["search"])
    assert x["template"].shape == (3, 128, 128) and x["cls"].shape == (1, 16, 16)
    assert x["cls"].sum() >= 1
    with pytest.raises(IndexError):
        a[4]


# -- CLI -----------------------------------------------------------------------------------------

def test_cli_check_reports_problems(corrupt, lutnas_main):
    code, out, _ = lutnas_main("data", "check", str(corrupt))
    assert code == 0 and "2 sequences" in out
    gt = _gt(corrupt)
    gt.write_text("1,2,3\n" + gt.read_text())
    code, out, _ = lutnas_main("data", "check", str(corrupt))
    assert code == 1 and "groundtruth.txt:1: 3 values" in out


def test_cli_errors_one_line(tmp_path, lutnas_main):
    code, out, err = lutnas_main("data", "check", str(tmp_path / "missing"))
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err
    code, out, err = lutnas_main("data", "synth", "--out", str(tmp_path / "x"), "--format", "gif")
    assert code == 2 and "jpg or png" in err and err.count("\n") == 1


def test_cli_synth(tmp_path, lutnas_main):
    code, out, _ = lutnas_main("data", "synth", "--out", str(tmp_path / "s"), "--sequences", "1",
                       "--frames", "2", "--width", "160", "--height", "120")
    assert code == 0 and len(read_dataset(tmp_path / "s", on_error="raise")) == 1
