"""The TensorRT backend on a machine without a GPU: trtexec's output parsed from captured logs
(tests/profilers/data/trtexec/README.md names their sources), its argv, the engine cache, and the
backend end to end with a stand-in ``trtexec`` (a script: NVIDIA's tool cannot run without a GPU)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from profilers.backends import CommandError, get_backend
from profilers.measure import Protocol, identity_model, measure
from profilers.tensorrt import (
    BENCH_FLAGS,
    EngineCache,
    TensorRTBackend,
    jetson_conditions,
    parse_export_times,
    parse_nvpmodel,
    parse_trtexec,
    trtexec_command,
    trtexec_identity,
)

DATA = Path(__file__).parent / "data"
TRT = DATA / "trtexec"


def log(name: str) -> str:
    return (TRT / name).read_text()


# -- parser -------------------------------------------------------------------------------------

def test_parse_trt10_summary_three_percentiles() -> None:
    r = parse_trtexec(log("trt10_issue4177_summary.log"))
    assert r.throughput_qps == 130.298
    g = r.gpu_compute
    assert (g.min, g.max, g.mean, g.median) == (5.34595, 13.3388, 7.58404, 7.14139)
    assert g.percentiles == {90.0: 10.2881, 95.0: 10.8175, 99.0: 12.9485}
    assert r.latency is not None and r.latency.median == 7.16092 and r.latency.percentiles[99.0] == 12.9675
    assert r.enqueue is not None and r.enqueue.max == 15.0201
    assert r.h2d is not None and r.h2d.median == 0.00814819
    assert r.d2h is not None and r.d2h.percentiles[95.0] == 0.0319824
    assert (r.total_host_walltime_s, r.total_gpu_compute_s) == (3.00082, 2.96536)
    assert (r.trt_version, r.device) == (None, None)  # the issue quoted the summary only


def test_parse_trt8_summary_p99_only_no_transfers() -> None:
    r = parse_trtexec(log("yolov7_pr329_summary.log"))
    assert r.gpu_compute.median == 1.38037 and r.gpu_compute.percentiles == {99.0: 1.55853}
    assert r.h2d is not None and r.h2d.max == 0.0 and r.d2h is not None and r.d2h.mean == 0.0
    assert r.throughput_qps == 716.632 and r.total_gpu_compute_s == 2.9833
    # "Latency" is its own line: H2D/D2H Latency lines must not be read as it
    assert r.latency is not None and r.latency.min == 1.3476


# TensorRT 7.x's GPU Compute block as samples/common/sampleReporting.cpp printed it before 8.0
# (commit 183f8911): the documented format, since the captured issue text stops before it.
DOCUMENTED_TRT7_GPU_BLOCK = """[06/12/2022-22:34:00] [I] GPU Compute
[06/12/2022-22:34:00] [I] min: 1.5 ms
[06/12/2022-22:34:00] [I] max: 6.0 ms
[06/12/2022-22:34:00] [I] mean: 1.56 ms
[06/12/2022-22:34:00] [I] median: 1.55 ms
[06/12/2022-22:34:00] [I] percentile: 1.6 ms at 99%
[06/12/2022-22:34:00] [I] total compute time: 2.9 s
"""


def test_parse_trt7_block_format() -> None:
    text = log("trt7_issue2054_host_latency.log")
    with pytest.raises(ValueError, match="no performance summary"):
        parse_trtexec(text)  # real, but cut before its GPU Compute block
    r = parse_trtexec(text + DOCUMENTED_TRT7_GPU_BLOCK)
    assert r.latency is not None
    assert (r.latency.min, r.latency.max, r.latency.mean, r.latency.median) == (1.64058, 6.2915, 1.66069, 1.65601)
    assert r.latency.percentiles == {99.0: 1.67065}  # "percentile: X ms at 99%", not the end-to-end figure
    assert (r.throughput_qps, r.total_host_walltime_s) == (0.0, 3.00461)
    assert r.gpu_compute.median == 1.55 and r.gpu_compute.percentiles == {99.0: 1.6}
    assert r.total_gpu_compute_s == 2.9


def test_identity_from_jetson_log_and_banner() -> None:
    text = log("orin_trt8502_dumpprofile.log")
    assert trtexec_identity(text) == ("8.5.2", "Orin")
    banner_only = text.splitlines()[0]  # "&&&& RUNNING TensorRT.trtexec [TensorRT v8502] # ..."
    assert trtexec_identity(banner_only) == ("8.5.2", None)
    assert trtexec_identity("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec")[0] == "10.3.0"
    assert trtexec_identity("&&&& PASSED TensorRT.trtexec [TensorRT v9100] # trtexec")[0] == "9.1.0"


def test_no_summary_says_why() -> None:
    with pytest.raises(ValueError, match="without --separateProfileRun"):
        parse_trtexec(log("orin_trt8502_dumpprofile.log"))
    failed = "[I] Start parsing network model\n[E] [TRT] ModelImporter.cpp:726: ERROR: input: unsupported\n" \
             "&&&& FAILED TensorRT.trtexec [TensorRT v8502] # trtexec --onnx=x.onnx\n"
    with pytest.raises(ValueError, match="last error: .*FAILED"):
        parse_trtexec(failed)
    with pytest.raises(ValueError, match="printed nothing"):
        parse_trtexec("")


def test_export_times_json() -> None:
    times = parse_export_times((TRT / "a100_trt_exporttimes_head.json").read_text())
    assert len(times) == 20 and times[:3] == [1.93843, 1.91283, 1.9159]
    with pytest.raises(ValueError, match="exportTimes"):
        parse_export_times('[{"latencyMs": 1}]')


# -- argv and cache -----------------------------------------------------------------------------

@pytest.mark.parametrize("precision,flags", [("fp32", []), ("fp16", ["--fp16"]), ("int8", ["--int8", "--fp16"])])
def test_command_per_precision(tmp_path: Path, precision: str, flags: list[str]) -> None:
    engine = tmp_path / "k.plan"
    argv = trtexec_command("u.onnx", precision=precision, engine=engine, runs=30, warmup_ms=100, trtexec="trtexec")
    assert argv[:2] == ["trtexec", "--onnx=u.onnx"]
    assert [a for a in argv if a in ("--fp16", "--int8")] == flags
    assert f"--saveEngine={engine}" in argv
    assert set(BENCH_FLAGS) <= set(argv)
    assert {"--iterations=30", "--duration=0", "--warmUp=100"} <= set(argv)
    loaded = trtexec_command("u.onnx", precision=precision, engine=engine, load=True, extra=["--useDLACore=0"])
    assert loaded[1] == f"--loadEngine={engine}" and not any(a.startswith("--onnx") for a in loaded)
    assert loaded[-1] == "--useDLACore=0"
    with pytest.raises(ValueError, match="precision"):
        trtexec_command("u.onnx", precision="bf16")


def test_cache_keys_differ_by_every_field(tmp_path: Path) -> None:
    base = EngineCache.key(b"onnx", "fp16", "10.3.0", "Orin")
    others = [EngineCache.key(b"onnx2", "fp16", "10.3.0", "Orin"), EngineCache.key(b"onnx", "int8", "10.3.0", "Orin"),
              EngineCache.key(b"onnx", "fp16", "8.6.2", "Orin"), EngineCache.key(b"onnx", "fp16", "10.3.0", "Xavier")]
    assert len({base, *others}) == 5 and base == EngineCache.key(b"onnx", "fp16", "10.3.0", "Orin")


def test_cache_hit_miss_atomic_put_cap_and_clear(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "c", max_bytes=10)
    assert cache.get("a") is None
    staged = cache.staging()
    staged.write_bytes(b"123456")
    assert cache.put("a", staged) == cache.path("a") and not staged.exists()
    assert cache.get("a") == cache.path("a")
    other = cache.staging()
    other.write_bytes(b"abcdef")
    cache.put("b", other)  # 12 bytes > 10: the least recently used ("a") goes
    assert [p.stem for p in cache.entries()] == ["b"]
    (cache.staging()).write_bytes(b"x")  # a build that died mid-write
    assert cache.clear() == 2 and cache.entries() == []


# -- the backend end to end, with a stand-in trtexec ----------------------------------------------

FAKE_TRTEXEC = """#!{python}
# Stands in for NVIDIA's trtexec: prints captured output (the Jetson log's header, then issue 4177's
# summary), writes the engine it is asked to save and the --exportTimes JSON, records its argv.
import json, sys
from pathlib import Path
data = Path({data!r})
args = sys.argv[1:]
with open({calls!r}, "a") as f:
    f.write(json.dumps(args) + "\\n")
if any(a.startswith("--onnx=") and a.endswith("broken.onnx") for a in args):
    print("[E] [TRT] ModelImporter.cpp:726: ERROR: unsupported"); print("&&&& FAILED TensorRT.trtexec"); sys.exit(1)
head = (data / "orin_trt8502_dumpprofile.log").read_text().splitlines()[:77]
print("\\n".join(head)); print((data / "trt10_issue4177_summary.log").read_text())
for a in args:
    if a.startswith("--saveEngine="):
        Path(a.split("=", 1)[1]).write_bytes(b"engine")
    if a.startswith("--exportTimes=") and {export!r}:
        Path(a.split("=", 1)[1]).write_text((data / "a100_trt_exporttimes_head.json").read_text())
"""


def fake_trtexec(tmp_path: Path, export: bool = True) -> tuple[Path, Path]:
    exe, calls = tmp_path / "trtexec", tmp_path / "calls.jsonl"
    exe.write_text(FAKE_TRTEXEC.format(python=sys.executable, data=str(TRT), calls=str(calls), export=export))
    exe.chmod(0o755)
    return exe, calls


def calls_of(calls: Path) -> list[list[str]]:
    return [json.loads(line) for line in calls.read_text().splitlines()]


def test_backend_builds_once_then_loads_the_cached_engine(tmp_path: Path) -> None:
    exe, calls = fake_trtexec(tmp_path)
    be = get_backend("tensorrt", trtexec_path=str(exe), cache_dir=tmp_path / "engines", precision="fp16", runs=20,
                     nvpmodel=str(tmp_path / "no-nvpmodel"), sys_root=tmp_path)
    assert isinstance(be, TensorRTBackend) and be.model_format == "onnx"
    model = identity_model((1, 8))
    m = measure(be, model, Protocol(flush_bytes=0))
    first = calls_of(calls)[0]
    assert "--fp16" in first and any(a.startswith("--saveEngine=") for a in first)
    assert m.count == 20 and m.median_ms == pytest.approx(float(np.median(parse_export_times(
        (TRT / "a100_trt_exporttimes_head.json").read_text()))))
    assert (m.env["runtime"], m.env["runtime_version"], m.env["device"]) == ("tensorrt", "8.5.2", "Orin")
    assert m.env["precision"] == "fp16" and "power_mode" not in m.env  # not a Jetson: left out
    key = EngineCache.key(model, "fp16", "8.5.2", "Orin")
    assert be.cache.entries() == [be.cache.path(key)]
    measure(be, model, Protocol(flush_bytes=0))
    second = calls_of(calls)[1]
    assert second[0] == f"--loadEngine={be.cache.path(key)}" and "--fp16" not in second
    assert be.config() == {"backend": "tensorrt", "provider": "tensorrt", "threads": 1, "precision": "fp16",
                           "graph_optimization": "all"}


def test_backend_without_export_times_uses_the_summary_median(tmp_path: Path) -> None:
    exe, _ = fake_trtexec(tmp_path, export=False)
    be = TensorRTBackend(trtexec_path=str(exe), cache_dir=tmp_path / "e", nvpmodel=str(tmp_path / "none"))
    times = be.load(identity_model()).timed_batch()
    assert times.tolist() == [7.14139e6]  # GPU Compute Time median, ms -> ns


def test_backend_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="trtexec not found"):
        TensorRTBackend(trtexec_path=str(tmp_path / "missing"), cache_dir=tmp_path / "e")
    exe, _ = fake_trtexec(tmp_path)
    be = TensorRTBackend(trtexec_path=str(exe), cache_dir=tmp_path / "e", nvpmodel=str(tmp_path / "none"))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    with pytest.raises(CommandError, match="exited with 1: .*FAILED"):
        be.load(broken).timed_batch()
    assert be.cache.entries() == [] and not list((tmp_path / "e").glob(".*.tmp"))
    with pytest.raises(ValueError, match="precision"):
        TensorRTBackend(precision="bf16", trtexec_path=str(exe))
    with pytest.raises(ValueError, match="graph_optimization"):
        TensorRTBackend(graph_optimization="basic", trtexec_path=str(exe))


# -- Jetson power mode and clocks ------------------------------------------------------------------

def test_parse_nvpmodel_captured() -> None:
    assert parse_nvpmodel((DATA / "nvpmodel" / "nano_5w_nonroot.txt").read_text()) == ("5W", 1)
    assert parse_nvpmodel((DATA / "nvpmodel" / "thor_maxn.txt").read_text()) == ("MAXN", 0)
    assert parse_nvpmodel("") == (None, None)


def test_jetson_conditions_from_nvpmodel_and_devfreq(tmp_path: Path) -> None:
    assert jetson_conditions(str(tmp_path / "none"), tmp_path) == {
        "power_mode": None, "power_mode_id": None, "gpu_freq_mhz": None, "gpu_min_freq_mhz": None,
        "gpu_max_freq_mhz": None}
    tool = tmp_path / "nvpmodel"
    tool.write_text(f"#!/bin/sh\ncat {DATA / 'nvpmodel' / 'thor_maxn.txt'}\n")
    tool.chmod(0o755)
    node = tmp_path / "sys/devices/platform/17000000.gpu/devfreq/17000000.gpu"
    node.mkdir(parents=True)
    for name, hz in (("cur_freq", 918000000), ("min_freq", 306000000), ("max_freq", 918000000)):
        (node / name).write_text(f"{hz}\n")
    got = jetson_conditions(str(tool), tmp_path)
    assert got == {"power_mode": "MAXN", "power_mode_id": 0, "gpu_freq_mhz": 918.0, "gpu_min_freq_mhz": 306.0,
                   "gpu_max_freq_mhz": 918.0}
    exe, _ = fake_trtexec(tmp_path)
    be = TensorRTBackend(trtexec_path=str(exe), cache_dir=tmp_path / "e", nvpmodel=str(tool), sys_root=tmp_path)
    info = be.runtime_info()
    assert (info["power_mode"], info["power_mode_id"], info["gpu_freq_mhz"]) == ("MAXN", 0, 918.0)


# -- the agent's flags ---------------------------------------------------------------------------

def test_agent_cli_takes_tensorrt(tmp_path: Path) -> None:
    from profilers.agent import Agent, parse_args

    exe, _ = fake_trtexec(tmp_path)
    cfg = parse_args(["--server", "http://x", "--token", "t", "--backend", "tensorrt", "--precision", "fp16",
                      "--trtexec", str(exe), "--engine-cache", str(tmp_path / "e")])
    assert (cfg.backend, cfg.provider, cfg.precision, cfg.trtexec) == ("tensorrt", "tensorrt", "fp16", str(exe))
    agent = Agent(cfg)
    assert isinstance(agent.backend, TensorRTBackend) and agent.backend.cache.directory == tmp_path / "e"
    agent.check_runtime({"backend": "tensorrt", "provider": "tensorrt", "precision": "fp16",
                         "graph_optimization": "all", "threads": 1})
    agent.client.close()
    with pytest.raises(SystemExit):
        parse_args(["--server", "http://x", "--token", "t", "--precision", "fp16"])  # fp16: tensorrt only
