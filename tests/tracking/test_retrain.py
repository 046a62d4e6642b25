"""``lutnas supernet retrain``: one path trained alone, from the supernet's weights or from scratch."""

from __future__ import annotations

import json

import pytest
import torch

from tracking.checkpoint import load_supernet, save_checkpoint
from tracking.space import lighttrack_mobile
from tracking.supernet import Supernet

from .conftest import small_dataset

ARCH = lighttrack_mobile().to_string()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("retrain")
    torch.manual_seed(3)
    ckpt = save_checkpoint(root / "supernet.pt", Supernet(), {"note": "random init: the weights to inherit"})
    return {"root": root, "ckpt": ckpt, "data": small_dataset(root / "train", 2, 6, seed=0),
            "test": small_dataset(root / "test", 2, 6, seed=1)}


def retrain(lutnas_main, files, out, *extra):
    return lutnas_main("supernet", "retrain", ARCH, "--data", str(files["data"]), "--iters", "2", "--batch", "2",
                       "--threads", "1", "--out", str(out), *extra)


def _off_path(net: Supernet) -> dict[str, torch.Tensor]:
    """Parameters a forward pass on Mobile's path never reaches (no gradient): what retraining it
    must leave as inherited."""
    net.zero_grad(set_to_none=True)
    cls, reg = net(torch.zeros(1, 3, 128, 128), torch.zeros(1, 3, 256, 256), lighttrack_mobile())
    (cls.sum() + reg.sum()).backward()
    out = {k: p.detach().clone() for k, p in net.named_parameters() if p.grad is None}
    net.zero_grad(set_to_none=True)
    return out


def test_retrain_inherits_then_trains_only_its_path(files, lutnas_main):
    out = files["root"] / "ft.pt"
    code, stdout, err = retrain(lutnas_main, files, out, "--supernet", str(files["ckpt"]), "--test-data",
                                str(files["test"]), "--sequences", "2", "--frames", "4", "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["inherited"] and doc["iterations"] == 2 and doc["arch"] == ARCH
    assert 0.0 <= doc["held_out"]["ao"] <= 1.0 and doc["held_out"]["sequences"] == 2
    net, meta = load_supernet(out)
    cfg = meta["config"]
    assert cfg["focus_arch"] == ARCH and cfg["focus_prob"] == 1.0 and cfg["init_from"] == str(files["ckpt"])
    src, _ = load_supernet(files["ckpt"])
    before, after = _off_path(src), _off_path(net)
    assert before and all(torch.equal(before[k], after[k]) for k in before)  # inherited, never trained
    inherited = src.state_dict()
    changed = [k for k, v in net.state_dict().items() if v.is_floating_point()
               and not torch.equal(v, inherited[k])]
    assert changed  # the path itself was trained


def test_retrain_seeds_reproduce_and_scratch_differs(files, lutnas_main):
    a, b, c = (files["root"] / n for n in ("a.pt", "b.pt", "c.pt"))
    for out in (a, b):
        assert retrain(lutnas_main, files, out, "--supernet", str(files["ckpt"]), "--seed", "4")[0] == 0
    assert retrain(lutnas_main, files, c, "--from-scratch", "--seed", "4")[0] == 0
    sa, sb, sc = (load_supernet(p)[0].state_dict() for p in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert load_supernet(c)[1]["config"]["init_from"] is None


@pytest.mark.parametrize("extra, message", [
    ([], "--supernet"),
    (["--from-scratch", "--supernet", "SUPERNET"], "--from-scratch"),
])
def test_retrain_bad_input_is_one_line(files, lutnas_main, extra, message):
    extra = [str(files["ckpt"]) if x == "SUPERNET" else x for x in extra]
    code, _, err = retrain(lutnas_main, files, files["root"] / "x.pt", *extra)
    assert code == 2 and message in err and err.strip().count("\n") == 0
    code, _, err = retrain(lutnas_main, files, files["root"] / "ft.pt", "--supernet", str(files["ckpt"]))
    assert code == 2 and "exists" in err  # never overwrites a checkpoint silently
