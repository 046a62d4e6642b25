"""Supernet training: losses, schedule, path sampling, resume == uninterrupted, CLI errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.tracking.conftest import small_dataset
from tracking.checkpoint import load_supernet
from tracking.space import SearchSpace
from tracking.supernet import Supernet
from tracking.train import TrainConfig, iou_loss, lr_at, path_for_iteration, train_supernet, weighted_bce

torch.set_num_threads(1)

TINY = TrainConfig(epochs=1, iters_per_epoch=2, batch_size=2, lr=0.01, warmup_iters=1, seed=5, threads=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return small_dataset(tmp_path_factory.mktemp("train") / "data", 2, 4, seed=0)



def test_weighted_bce_balances_positives_and_negatives():
    label = torch.zeros(1, 1, 16, 16)
    label[0, 0, 8, 8] = 1
    assert weighted_bce(torch.zeros(1, 1, 16, 16), label).item() == pytest.approx(math.log(2))
    logits = torch.full((1, 1, 16, 16), -10.0)  # negatives right, the positive wrong
    expected = 0.5 * torch.nn.functional.softplus(torch.tensor(10.0)).item() + 0.5 * math.log1p(math.exp(-10))
    assert weighted_bce(logits, label).item() == pytest.approx(expected, rel=1e-5)


def test_iou_loss_hand_checked():
    label = torch.zeros(1, 1, 16, 16)
    label[0, 0, 3, 4] = 1
    target = torch.full((1, 4, 16, 16), 2.0)
    assert iou_loss(target.clone(), target, label).item() == pytest.approx(0.0, abs=1e-6)
    pred = torch.full((1, 4, 16, 16), 1.0)  # 2x2 box inside a 4x4 box: I = 4, U = 16
    assert iou_loss(pred, target, label).item() == pytest.approx(-math.log(5 / 17))
    assert iou_loss(pred, target, torch.zeros_like(label)).item() == 0.0


def test_lr_warmup_then_decay():
    cfg = TrainConfig(epochs=1, iters_per_epoch=100, lr=0.1, warmup_iters=10, final_lr_ratio=0.1)
    lrs = [lr_at(cfg, i) for i in range(100)]
    assert lrs[0] == pytest.approx(0.01) and lrs[9] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False)) and lrs[-1] >= 0.01


def test_paths_uniform_and_seeded():
    space = SearchSpace.paper()
    paths = [path_for_iteration(0, i, space) for i in range(50)]
    assert paths == [path_for_iteration(0, i, space) for i in range(50)]
    assert len({p.canonical_id() for p in paths}) == 50
    assert {p.out_stage for p in paths} == {2, 3}


def test_resume_equals_uninterrupted(data, tmp_path):
    full = train_supernet(data, tmp_path / "full.pt", TINY, progress=False)
    assert full["total_iterations"] == 2
    part = train_supernet(data, tmp_path / "part.pt", TINY, progress=False, stop_after=1)  # mid-epoch
    assert part["total_iterations"] == 1
    _, meta = load_supernet(tmp_path / "part.pt")
    assert meta["iteration"] == 1 and meta["epoch"] == 0 and "optimizer" in meta
    assert meta["config"]["batch_size"] == 2 and meta["space"] == SearchSpace.paper().to_dict()
    train_supernet(data, tmp_path / "part.pt", TINY, progress=False, resume=True)
    a, meta_a = load_supernet(tmp_path / "full.pt")
    b, meta_b = load_supernet(tmp_path / "part.pt")
    assert meta_b["iteration"] == 2
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [h[1] for h in meta_a["history"]] == [h[1] for h in meta_b["history"]]
    assert len(meta_a["history"]) == 2 and all(math.isfinite(h[1]) for h in meta_a["history"])
    torch.manual_seed(TINY.seed)
    init = Supernet(SearchSpace.paper()).state_dict()  # what training started from
    assert any(not torch.equal(init[k], sa[k]) for k in sa)


def test_refuses_to_overwrite(data, tmp_path):
    out = tmp_path / "x.pt"
    out.write_bytes(b"")
    with pytest.raises(FileExistsError, match="--resume"):
        train_supernet(data, out, TINY, progress=False)


def test_cli_train_errors(tmp_path, lutnas_main):
    code, _, err = lutnas_main("supernet", "train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "c.pt"))
    assert code == 2 and "does not exist" in err and err.count("\n") == 1
    (tmp_path / "empty").mkdir()
    code, _, err = lutnas_main("supernet", "train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "c.pt"))
    assert code == 2 and "no usable sequences" in err and err.count("\n") == 1


def test_cli_resume_reports_the_checkpoints_schedule(data, tmp_path, lutnas_main):
    out = tmp_path / "c.pt"
    train_supernet(data, out, TINY, progress=False)  # 2 iterations per epoch, stored in the checkpoint
    code, stdout, _ = lutnas_main("supernet", "train", "--data", str(data), "--out", str(out), "--resume",
                          "--epochs", "2", "--threads", "1")
    assert code == 0 and "4/4 iterations (2 in this run" in stdout


def test_cli_recipes_fill_what_flags_leave(data, tmp_path, lutnas_main):
    """--recipe fair: the recipe's optimizer, loss and jitter with uniform paths; flags given win."""
    out = tmp_path / "fair.pt"
    code, stdout, _ = lutnas_main("supernet", "train", "--data", str(data), "--out", str(out), "--recipe", "fair",
                          "--iters-per-epoch", "2", "--batch", "2", "--threads", "1")
    assert code == 0 and "2/2 iterations" in stdout
    cfg = load_supernet(out)[1]["config"]
    assert cfg["optimizer"] == "adamw" and cfg["lr"] == 0.001 and cfg["size_weight"] == 1.0
    assert cfg["focus_arch"] is None and cfg["iters_per_epoch"] == 2 and cfg["batch_size"] == 2
    code, _, err = lutnas_main("supernet", "train", "--data", str(data), "--out", str(tmp_path / "x.pt"),
                       "--recipe", "fast")
    assert code == 2 and "--recipe" in err and err.count("\n") == 1


def test_loader_workers_give_the_same_batches(data):
    from tracking.data.got10k import read_dataset
    from tracking.data.pairs import PairDataset
    from tracking.train import _batches

    cfg = TINY.model_copy(update={"batch_size": 3})
    pairs = PairDataset(read_dataset(data), 5 * 3, seed=cfg.seed, config=cfg.pair_config())
    inline = list(_batches(pairs, cfg.model_copy(update={"workers": 0}), 1, 4))
    ahead = list(_batches(pairs, cfg.model_copy(update={"workers": 1}), 1, 4))
    assert len(inline) == len(ahead) == 3  # iterations 1, 2, 3
    for a, b in zip(inline, ahead, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(inline[0]["search"], inline[1]["search"])


def test_focus_path_share_and_uniform_rest():
    from tracking.space import lighttrack_mobile

    space, mobile = SearchSpace.paper(), lighttrack_mobile()
    assert all(path_for_iteration(0, i, space, mobile, 1.0) == mobile for i in range(20))
    plain = [path_for_iteration(0, i, space) for i in range(200)]
    mixed = [path_for_iteration(0, i, space, mobile, 0.5) for i in range(200)]
    assert mixed == [path_for_iteration(0, i, space, mobile, 0.5) for i in range(200)]  # seeded
    focused = [m == mobile for m in mixed]
    assert 70 <= sum(focused) <= 130
    # the other iterations train exactly the paths plain SPOS would
    assert all(m == p for m, p, f in zip(mixed, plain, focused, strict=True) if not f)
    assert [path_for_iteration(0, i, space, mobile, 0.0) for i in range(20)] == plain[:20]


def test_subspace_paths_stay_in_their_sub_supernet():
    from tracking.space import enumerate_genes, to_genes

    space = SearchSpace.paper()
    names = [n for n, _ in enumerate_genes(space)]
    last = [v for v, (stage, _) in enumerate(space.output_positions) if stage == 3]
    paths = [path_for_iteration(0, i, space, subspace={"output": last}) for i in range(60)]
    assert paths == [path_for_iteration(0, i, space, subspace={"output": last}) for i in range(60)]  # seeded
    assert {p.out_stage for p in paths} == {3}
    assert {to_genes(p, space)[names.index("output")] for p in paths} == set(last)  # uniform over the allowed
    assert len({p.canonical_id() for p in paths}) > 50
    assert [path_for_iteration(0, i, space, subspace=None) for i in range(10)] == \
        [path_for_iteration(0, i, space) for i in range(10)]
    with pytest.raises(ValueError, match="unknown gene"):
        TrainConfig(subspace={"nope": [0]})
    with pytest.raises(ValueError, match="values must be in"):
        TrainConfig(subspace={"output": [99]})


def test_size_loss_measures_size_only():
    from tracking.train import size_loss

    mask = torch.ones(1, 1, 16, 16)
    target = torch.full((1, 4, 16, 16), 20.0)
    shifted = target.clone()
    shifted[:, 0] += 5  # same width, moved: no size error
    shifted[:, 2] -= 5
    assert size_loss(shifted, target, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert size_loss(target * 2, target, mask).item() == pytest.approx(2 * math.log(2), rel=1e-5)
    assert size_loss(target * 2, target, torch.zeros_like(mask)).item() == 0.0


def test_recipes_rank_uniformly_unless_asked_for_mobile():
    """The default recipe (what searches rank with) samples every path uniformly; Mobile's share
    only in the named tracker-demo recipe."""
    from tracking.space import LIGHTTRACK_MOBILE
    from tracking.train import RECIPES, recipe_config

    ranking = recipe_config()
    assert ranking.focus_prob == 0.0 and ranking.focus_arch is None
    assert recipe_config("fair") == ranking and RECIPES["ranking"] is RECIPES["fair"]
    mobile = recipe_config("mobile")
    assert mobile.focus_prob == 0.5 and mobile.focus_arch == LIGHTTRACK_MOBILE
    assert mobile.iters_per_epoch == 450 and ranking.iters_per_epoch == 1800
    assert mobile.model_copy(update={"focus_arch": None, "focus_prob": 0.0, "iters_per_epoch": 1800}) == ranking
    with pytest.raises(ValueError, match="recipe must be one of"):
        recipe_config("fast")


def test_cli_trains_the_ranking_recipe_by_default(data, tmp_path, lutnas_main):
    out = tmp_path / "default.pt"
    code, _, err = lutnas_main("supernet", "train", "--data", str(data), "--out", str(out), "--iters-per-epoch", "1",
                               "--batch", "2", "--threads", "1")
    assert code == 0, err
    cfg = load_supernet(out)[1]["config"]
    assert cfg["focus_prob"] == 0.0 and cfg["focus_arch"] is None and cfg["optimizer"] == "adamw"


def test_recipe_trains_mobile_path(data, tmp_path):
    from tracking.train import recipe_config, recipe_tracker
    from tracking.tune import tracker_config_from_meta

    cfg = recipe_config("mobile", iters_per_epoch=2, batch_size=2, warmup_iters=1, threads=1)
    assert cfg.focus_prob > 0 and cfg.size_weight > 0 and cfg.optimizer == "adamw"
    res = train_supernet(data, tmp_path / "r.pt", cfg, progress=False)
    assert res["total_iterations"] == 2 and math.isfinite(res["loss"]) and res["cpu_seconds"] > 0
    _, meta = load_supernet(tmp_path / "r.pt")
    assert tracker_config_from_meta(meta) == recipe_tracker()  # every scorer of it tracks the recipe's way
    with pytest.raises(ValueError, match="focus_arch"):
        recipe_config(focus_arch="back_0")
