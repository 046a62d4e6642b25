"""Devices and multi-process training: device/precision parsing, 2 gloo processes == 1 process."""

from __future__ import annotations

import pytest
import torch

# the same tiny data set (a fixture) and CLI runner as the training tests
from tests.tracking.conftest import small_dataset
from tracking.checkpoint import read_payload
from tracking.devices import check_device, resolve_device, resolve_precision
from tracking.space import SearchSpace
from tracking.supernet import Supernet
from tracking.train import TrainConfig, train_supernet

# SGD keeps the comparison linear in the gradients; fp64 makes float rounding negligible, so a
# real difference (per-shard BN statistics, per-shard loss means) shows far above the tolerance
# (fp64 convolutions are slow on the CPU, channels-last ones slower still: a tiny run)
TINY = TrainConfig(epochs=1, iters_per_epoch=2, batch_size=2, lr=0.01, warmup_iters=1, seed=5, threads=1,
                   channels_last=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return small_dataset(tmp_path_factory.mktemp("ddp") / "data", 2, 4, seed=0)


def test_device_selection():
    assert check_device(" CUDA:1 ") == "cuda:1" and check_device("auto") == "auto"
    for bad in ("gpu", "cuda:", "cuda:x", "tpu", ""):
        with pytest.raises(ValueError, match="auto, cpu, cuda, cuda:N"):
            check_device(bad)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")
        with pytest.raises(ValueError, match="needs a CUDA device"):
            resolve_precision("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="fp32, bf16, fp16"):
        resolve_precision("fp8", torch.device("cpu"))


def test_worker_device_setting(monkeypatch):
    from pydantic import ValidationError

    from server.jobs.worker import Worker
    from server.settings import Settings

    monkeypatch.setenv("LUTNAS_DEVICE", "CPU")
    assert Settings.from_env().device == "cpu"
    monkeypatch.setenv("LUTNAS_DEVICE", "gpu0")
    with pytest.raises(ValidationError, match="auto, cpu, cuda, cuda:N"):
        Settings.from_env()
    Worker(None, Settings(device="cpu"))  # type: ignore[arg-type]
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Worker(None, Settings(device="cuda"))  # type: ignore[arg-type]


def test_cli_device_and_precision_errors(data, tmp_path, lutnas_main):
    base = ["supernet", "train", "--data", str(data), "--out", str(tmp_path / "c.pt")]
    code, _, err = lutnas_main(*base, "--device", "gpu")
    assert code == 2 and "auto, cpu, cuda, cuda:N" in err and err.count("\n") == 1
    code, _, err = lutnas_main(*base, "--precision", "fp8")
    assert code == 2 and "fp32, bf16, fp16" in err and err.count("\n") == 1
    code, _, err = lutnas_main(*base, "--nproc", "3", "--batch", "4")
    assert code == 2 and "does not split evenly" in err and err.count("\n") == 1
    if not torch.cuda.is_available():
        code, _, err = lutnas_main(*base, "--device", "cuda")
        assert code == 2 and "CUDA is not available" in err and err.count("\n") == 1
    assert not (tmp_path / "c.pt").exists()


def test_two_processes_equal_one(data, tmp_path):
    one = train_supernet(data, tmp_path / "one.pt", TINY, progress=False, device="cpu", precision="fp64")
    # one process, interrupted after iteration 0; two ranks resume it for iteration 1 (rank 0 writes)
    train_supernet(data, tmp_path / "two.pt", TINY, progress=False, device="cpu", precision="fp64", stop_after=1)
    two = train_supernet(data, tmp_path / "two.pt", TINY, progress=False, device="cpu", precision="fp64",
                         nproc=2, resume=True)
    assert one["nproc"] == 1 and two["nproc"] == 2 and two["iterations"] == 1 and two["total_iterations"] == 2
    sa, sb = read_payload(tmp_path / "one.pt")["state_dict"], read_payload(tmp_path / "two.pt")["state_dict"]
    torch.manual_seed(TINY.seed)
    init = Supernet(SearchSpace.paper()).state_dict()
    assert sum(not torch.equal(init[k].double(), sa[k].double()) for k in sa) > 50  # training moved weights
    for k in sa:  # parameters, whole-batch BN statistics, step counters (measured: 2e-13 at most)
        torch.testing.assert_close(sb[k], sa[k], rtol=0, atol=1e-9, msg=lambda m, k=k: f"{k}: {m}")
    ha, hb = (torch.tensor([h[1:] for h in read_payload(p)["meta"]["history"]]) for p in (tmp_path / "one.pt",
                                                                                          tmp_path / "two.pt"))
    torch.testing.assert_close(hb, ha, rtol=0, atol=1e-9)  # losses of the global batch, logged by rank 0
