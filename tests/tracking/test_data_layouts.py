"""Reader: GOT-10k visibility labels and meta_info.ini, LaSOT and OTB layouts; pairs skip hidden frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tracking.data import DatasetError, PairConfig, read_dataset
from tracking.data.pairs import sample_pair


def write_frames(folder: Path, n: int, size: tuple[int, int] = (64, 48), digits: int = 8, start: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 30)).save(folder / "frame.png")
    data = (folder / "frame.png").read_bytes()
    (folder / "frame.png").unlink()
    for i in range(start, start + n):
        (folder / f"{i:0{digits}d}.png").write_bytes(data)


def got10k_seq(root: Path, name: str, boxes: list[str], absence: list[int] | None = None,
               cover: list[int] | None = None, resolution: str | None = None) -> Path:
    seq = root / name
    write_frames(seq, len(boxes))
    (seq / "groundtruth.txt").write_text("\n".join(boxes) + "\n")
    if absence is not None:
        (seq / "absence.label").write_text("".join(f"{v}\n" for v in absence))
    if cover is not None:
        (seq / "cover.label").write_text("".join(f"{v}\n" for v in cover))
    if resolution is not None:
        (seq / "meta_info.ini").write_text(f"[METAINFO]\nurl: https://example.invalid/v\nresolution: {resolution}\n"
                                           "anno_fps: 10Hz\n")
    return seq


BOXES = ["5,5,20,20", "6,5,20,20", "0,0,0,0", "8,5,20,20", "9,5,20,20"]


def test_got10k_labels_and_meta_resolution(tmp_path):
    got10k_seq(tmp_path, "A", BOXES, absence=[0, 0, 1, 0, 0], cover=[8, 5, 0, 1, 8], resolution="(1280, 720)")
    (tmp_path / "list.txt").write_text("A\n")
    seq = read_dataset(tmp_path, on_error="raise")[0]
    assert seq.visible.tolist() == [True, True, False, True, True]
    assert seq.scored.tolist() == [True, True, False, True, True]
    assert seq.resolution == (1280, 720)  # meta_info.ini wins over the 64x48 frames


def test_cover_is_the_toolkits_mask_absence_adds_to_visible(tmp_path):
    # labels that disagree (never in GOT-10k's releases): training trusts neither, scoring follows
    # the toolkit, which reads cover.label only
    boxes = ["5,5,20,20"] * 4
    got10k_seq(tmp_path, "A", boxes, absence=[0, 1, 0, 0], cover=[8, 8, 0, 8])
    seq = read_dataset(tmp_path, on_error="raise")[0]
    assert seq.visible.tolist() == [True, False, False, True]
    assert seq.scored.tolist() == [True, True, False, True]


def test_resolution_from_first_frame_header_without_meta(tmp_path):
    got10k_seq(tmp_path, "A", ["5,5,20,20"] * 3)
    seq = read_dataset(tmp_path, on_error="raise")[0]
    assert seq.resolution == (64, 48)
    assert seq.visible.all() and seq.scored.all()


def test_empty_box_only_where_hidden(tmp_path):
    got10k_seq(tmp_path, "A", BOXES, absence=[0, 0, 1, 0, 0], cover=[8, 8, 0, 8, 8])
    assert len(read_dataset(tmp_path, on_error="raise")) == 1
    (tmp_path / "A" / "absence.label").write_text("0\n0\n0\n0\n0\n")
    (tmp_path / "A" / "cover.label").write_text("8\n8\n3\n8\n8\n")
    with pytest.raises(DatasetError, match=r"groundtruth\.txt:3: empty box"):
        read_dataset(tmp_path, on_error="raise")


@pytest.mark.parametrize("fname, text, needle", [
    ("absence.label", "0\n0\n1\n0\n", "4 labels for 5 frames"),
    ("cover.label", "8\n8\n9\n8\n8\n", "label '9' of frame 3 is not in 0..8"),
    ("absence.label", "0\nx\n1\n0\n0\n", "not integer labels"),
    ("meta_info.ini", "[METAINFO]\nresolution: 1280x720\n", r"meta_info\.ini:2: resolution '1280x720'"),
])
def test_bad_labels_named(tmp_path, fname, text, needle):
    got10k_seq(tmp_path, "A", BOXES, absence=[0, 0, 1, 0, 0], cover=[8, 8, 0, 8, 8])
    (tmp_path / "A" / fname).write_text(text)
    ds = read_dataset(tmp_path, on_error="skip")
    assert len(ds) == 0 and ds.skipped == ["A"]
    with pytest.raises(DatasetError, match=needle):
        read_dataset(tmp_path, on_error="raise")


def test_never_visible_is_refused(tmp_path):
    got10k_seq(tmp_path, "A", ["5,5,20,20"] * 2, cover=[0, 0])
    with pytest.raises(DatasetError, match="never visible"):
        read_dataset(tmp_path, on_error="raise")


def lasot_seq(root: Path, cls: str, n: int, occlusion: list[int], out_of_view: list[int]) -> Path:
    seq = root / cls / f"{cls}-{n}"
    write_frames(seq / "img", len(occlusion), size=(40, 30))
    boxes = ["1,2,10,10" if not (o or v) else "0,0,0,0" for o, v in zip(occlusion, out_of_view, strict=True)]
    (seq / "groundtruth.txt").write_text("\n".join(boxes) + "\n")
    (seq / "full_occlusion.txt").write_text(",".join(map(str, occlusion)))
    (seq / "out_of_view.txt").write_text(",".join(map(str, out_of_view)))
    (seq / "nlp.txt").write_text("a thing\n")
    return seq


def test_lasot_layout(tmp_path):
    lasot_seq(tmp_path, "airplane", 1, [0, 0, 1, 0, 0], [0, 0, 0, 1, 0])
    lasot_seq(tmp_path, "bike", 3, [0, 0, 0], [0, 0, 0])
    ds = read_dataset(tmp_path)  # no list: class folders searched one level down
    assert [s.name for s in ds.sequences] == ["airplane-1", "bike-3"] and not ds.skipped
    air = ds.sequences[0]
    assert air.visible.tolist() == [True, True, False, False, True] == air.scored.tolist()
    assert air.path == tmp_path / "airplane" / "airplane-1" and air.resolution == (40, 30)
    (tmp_path / "list.txt").write_text("bike-3\nairplane-1\n")  # LaSOT-style names resolve to their class
    assert [s.name for s in read_dataset(tmp_path, on_error="raise").sequences] == ["bike-3", "airplane-1"]


@pytest.mark.parametrize("sep", [",", "\t", " "])
def test_otb_layout_separators(tmp_path, sep):
    seq = tmp_path / "Basketball"
    write_frames(seq / "img", 3, digits=4)
    rows = [[198, 214, 34, 81], [197, 214, 34, 81], [195, 214, 34, 81]]
    (seq / "groundtruth_rect.txt").write_text("".join(sep.join(map(str, r)) + "\n" for r in rows))
    s = read_dataset(tmp_path, on_error="raise")[0]
    assert s.name == "Basketball" and [f.name for f in s.frames] == ["0001.png", "0002.png", "0003.png"]
    np.testing.assert_array_equal(s.boxes, rows)
    (seq / "img" / "0002.png").unlink()
    with pytest.raises(DatasetError, match=r"missing frame\(s\): 0002\.png"):
        read_dataset(tmp_path, on_error="raise")


def test_pairs_never_use_hidden_frames(tmp_path):
    n = 30
    hidden = {3, 4, 5, 11, 12, 20, 21, 22, 23, 29}
    boxes = ["0,0,0,0" if i in hidden else f"{10 + i},10,20,20" for i in range(n)]
    absence = [int(i in hidden) for i in range(n)]
    got10k_seq(tmp_path, "A", boxes, absence=absence, cover=[0 if a else 8 for a in absence])
    ds = read_dataset(tmp_path, on_error="raise")
    seq = ds.sequences[0]
    loaded: list[int] = []
    real_load = seq.load_frame

    def recording_load(i: int) -> np.ndarray:  # observe which frames the sampler reads
        loaded.append(i)
        return real_load(i)

    seq.load_frame = recording_load  # type: ignore[method-assign]
    cfg = PairConfig(max_gap=2)
    for k in range(150):
        before = len(loaded)
        sample_pair(ds, np.random.default_rng([5, k]), cfg)
        t, s = loaded[before:]
        assert abs(t - s) <= cfg.max_gap
    assert set(loaded).isdisjoint(hidden)
    assert set(loaded) == set(range(n)) - hidden  # every visible frame gets used
