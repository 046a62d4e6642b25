"""``lutnas arch info`` / ``lutnas arch export``: results and one-line errors (exit 2)."""

from __future__ import annotations

import json

import onnx
import pytest
import torch

from tracking.checkpoint import save_checkpoint
from tracking.space import LIGHTTRACK_MOBILE, SearchSpace
from tracking.supernet import Supernet

torch.set_num_threads(1)

OUT_OF_RANGE = LIGHTTRACK_MOBILE.replace("back_045", "back_075")  # MBConv choice 7 does not exist



def test_info_json(lutnas_main):
    code, out, _ = lutnas_main("arch", "info", LIGHTTRACK_MOBILE, "--json")
    assert code == 0
    info = json.loads(out)
    assert info["lighttrack"] == LIGHTTRACK_MOBILE
    assert abs(info["flops"] - 530e6) / 530e6 < 0.05 and abs(info["params"] - 1.97e6) / 1.97e6 < 0.05
    assert info["arch"]["output"] == {"stage": 3, "block": 2}


@pytest.mark.parametrize("argv, needle", [
    (["arch", "info", "back_123"], "malformed"),
    (["arch", "info", OUT_OF_RANGE], "choice"),
    (["arch", "info", "no/such/arch.json"], "neither"),
    (["arch", "info", LIGHTTRACK_MOBILE.replace("ops_32", "ops_12")], "stage 1"),
    (["arch", "export", "back_123", "--out", "unused"], "malformed"),
    (["arch", "export", OUT_OF_RANGE, "--out", "unused"], "choice"),
    (["arch", "export", LIGHTTRACK_MOBILE, "--out", "unused", "--supernet", "no/such.pt"], "not found"),
])
def test_bad_input_is_one_line_exit_2(lutnas_main, argv, needle):
    code, _, err = lutnas_main(*argv)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err
    assert "Traceback" not in err


def test_export_random_init(lutnas_main, tmp_path):
    code, out, _ = lutnas_main("arch", "export", LIGHTTRACK_MOBILE, "--out", str(tmp_path), "--seed", "1")
    assert code == 0 and "random init (seed 1)" in out
    search = onnx.load(str(tmp_path / "search.onnx"))
    assert [i.name for i in search.graph.input] == ["search", "zf"]
    assert json.loads((tmp_path / "arch.json").read_text())["lighttrack"] == LIGHTTRACK_MOBILE


def test_export_from_checkpoint_and_bad_checkpoint(lutnas_main, tmp_path):
    torch.manual_seed(0)
    ck = save_checkpoint(tmp_path / "super.pt", Supernet(SearchSpace.code()), {"epoch": 1})
    code, out, _ = lutnas_main("arch", "export", LIGHTTRACK_MOBILE.replace("ops_32", "ops_12"),
                       "--out", str(tmp_path / "onnx"), "--supernet", str(ck))
    assert code == 0 and (tmp_path / "onnx" / "template.onnx").is_file() and str(ck) in out
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    code, _, err = lutnas_main("arch", "export", LIGHTTRACK_MOBILE, "--out", str(tmp_path / "o2"),
                       "--supernet", str(bad))
    assert code == 2 and "not a lutnas supernet checkpoint" in err
