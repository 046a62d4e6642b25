"""The progress protocol (tracking/progress.py): work reports ``(phase, done, total, note)`` to a
callback and draws nothing; the bar draws nothing before the first report."""

from __future__ import annotations

from pathlib import Path

from tests.tracking.conftest import SMALL_FRAMES
from tracking.data import generate_synthetic
from tracking.progress import progress_bar
from tracking.train import TrainConfig, train_supernet

TINY = TrainConfig(epochs=2, iters_per_epoch=1, batch_size=2, lr=0.01, warmup_iters=1, seed=5, threads=1)


def test_synth_and_train_report_through_the_callback(tmp_path: Path, capsys) -> None:
    calls: list[tuple] = []
    data = generate_synthetic(tmp_path / "data", 2, 4, seed=0, config=SMALL_FRAMES,
                              progress=lambda *a, **k: calls.append((*a, k.get("note", ""))))
    assert calls == [("synth data", 1, 2, ""), ("synth data", 2, 2, "")]
    calls.clear()
    train_supernet(data, tmp_path / "s.pt", TINY, progress=lambda *a, **k: calls.append((*a, k["note"])))
    assert [c[:3] for c in calls] == [("train", 0, 2), ("train", 1, 2), ("train", 2, 2)]
    assert calls[0][3] == "epoch 1/2" and calls[2][3].startswith("epoch 2/2 loss ")
    assert capsys.readouterr() == ("", "")  # the work itself draws nothing


def test_bar_is_silent_until_the_first_report(capsys) -> None:
    with progress_bar("x") as progress:
        pass
    with progress_bar("x", enabled=False) as progress:
        progress("phase", 1, 2, note="ignored")
    assert capsys.readouterr() == ("", "")
    with progress_bar("x") as progress:
        progress("phase", 1, 2, note="half")
    err = capsys.readouterr().err
    assert "x: phase" in err and "1/2" in err and "half" in err


def test_a_rank_reports_through_the_parent() -> None:
    # what distributed.spawn hands the ranks (nproc > 1) and how it passes their reports on
    import multiprocessing as mp

    from tracking.distributed import RelayedProgress, _drain

    reports = mp.get_context("spawn").SimpleQueue()
    RelayedProgress(reports)("train", 1, 2, note="epoch 1/1")
    RelayedProgress(reports)("train", 2, 2)
    calls: list[tuple] = []
    _drain(reports, lambda *a, **k: calls.append((*a, k["note"])))
    assert calls == [("train", 1, 2, "epoch 1/1"), ("train", 2, 2, "")]
