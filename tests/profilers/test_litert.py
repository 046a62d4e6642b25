"""The LiteRT backend and LiteRT's benchmark_model through the command backend.

Argument checks and the output pattern run everywhere; real interpreter runs need the litert extra
(``pip install -r requirements-litert.txt``: ai-edge-litert, litert-torch) and are skipped without it."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from profilers import Protocol, get_backend, measure, measure_overhead
from profilers.backends import BENCHMARK_MODEL_PATTERN, TIME_UNITS, CommandBackend

# benchmark_model's closing output in its documented format (a phone run over adb prints the same
# lines; the figures here are an example, not a measurement of this host)
BENCHMARK_MODEL_OUTPUT = """\
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
The input model file size (MB): 1.9935
Initialized session in 5.685ms.
Running benchmark for at least 5 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=35 first=18535 curr=14300 min=14015 max=18535 avg=14462.3 std=713

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=69 first=14520 curr=14587 min=14120 max=15310 avg=14575.2 std=246

Inference timings in us: Init: 5685, First inference: 18535, Warmup (avg): 14462.3, Inference (avg): 14575.2
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your one's discretion.
Memory footprint delta from the start of the tool (MB): init=6.2 overall=8.5
"""

FAST = Protocol(min_time_s=0.02, max_time_s=0.05, warmup_s=0.01)


def test_benchmark_model_pattern_takes_the_inference_average() -> None:
    found = re.compile(BENCHMARK_MODEL_PATTERN, re.MULTILINE).findall(BENCHMARK_MODEL_OUTPUT)
    assert found == ["14575.2"]  # not Init, First inference or Warmup (avg), nor the count= lines
    assert re.compile(BENCHMARK_MODEL_PATTERN).groups == 1


def test_command_backend_parses_benchmark_model_on_a_tflite_file(tmp_path: Path) -> None:
    out = tmp_path / "bm.txt"
    out.write_text(BENCHMARK_MODEL_OUTPUT)
    fake = tmp_path / "fake_benchmark_model.py"  # the adb script's stand-in: checks what it was given
    fake.write_text("import sys\nassert sys.argv[1].endswith('.tflite'), sys.argv\nassert sys.argv[2:5] == "
                    "['50', '5', '1'], sys.argv\nprint(open(sys.argv[-1]).read())\n")
    cmd = f"{shlex.quote(sys.executable)} {fake} {{model}} {{runs}} {{warmup}} {{threads}} {out}"
    be = get_backend("command", command=cmd, pattern=BENCHMARK_MODEL_PATTERN, time_unit="us", model_format="tflite")
    assert be.model_format == "tflite" and be.config()["model_format"] == "tflite"
    m = measure(be, b"not really a model", FAST)  # bytes: written to a temporary .tflite file
    assert m.count == 1 and m.median_ms == pytest.approx(14.5752)
    assert 14575.2 * TIME_UNITS["us"] == pytest.approx(m.median_ms * 1e6)
    # onnx tables keep their runtime as before (no model_format key)
    assert "model_format" not in get_backend("command", command=cmd).config()
    with pytest.raises(ValueError, match="model_format"):
        CommandBackend(command=cmd, model_format="pb")


@pytest.mark.parametrize("kwargs, match", [
    ({"delegate": "nnapi"}, "unknown LiteRT delegate"),
    ({"delegate": "external"}, "needs delegate_library"),
    ({"delegate": "xnnpack", "delegate_library": "libx.so"}, "takes no delegate_library"),
    ({"threads": 0}, "threads must be >= 1"),
    ({"precision": "fp16"}, "precision must be one of"),
    ({"graph_optimization": "basic"}, "no graph optimisation levels"),
])
def test_litert_backend_arguments_are_checked(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        get_backend("litert", **kwargs)


def test_litert_without_the_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # import fails as on a device without it
    with pytest.raises(ImportError, match=re.escape('pip install "lutnas-agent[litert]"')):
        get_backend("litert")


def test_overhead_of_a_non_onnx_backend_needs_its_own_model(tmp_path: Path) -> None:
    be = get_backend("command", command=f"{sys.executable} -c pass {{model}}", model_format="tflite")
    with pytest.raises(ValueError, match="pass its overhead model"):
        measure_overhead(be, FAST)


@pytest.fixture(scope="module")
def tflite_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("litert_torch")
    from latency_tables.units import export_overhead_model, export_unit, parse_key

    tmp = tmp_path_factory.mktemp("tflite")
    neck = parse_key("neck:in96x16x16:out128:z96x8x8")  # two inputs
    return {"overhead": export_overhead_model(tmp / "overhead.tflite", "tflite"),
            "neck": export_unit(neck, tmp / "neck.tflite", fmt="tflite"),
            "neck_int8": export_unit(neck, tmp / "neck8.tflite", precision="int8", fmt="tflite")}


def test_litert_interpreter_runs_units_and_records_its_runtime(tflite_models: dict[str, Path]) -> None:
    from ai_edge_litert.interpreter import Interpreter

    be = get_backend("litert", threads=1)
    info = be.runtime_info()
    assert info["backend"] == info["runtime"] == "litert" and info["delegate"] == info["provider"] == "xnnpack"
    assert info["runtime_version"] and info["graph_optimization"] == "all"
    assert be.config() == {"backend": "litert", "provider": "xnnpack", "threads": 1, "precision": "fp32",
                           "graph_optimization": "all"}
    m = measure(be, tflite_models["neck"], FAST)
    assert m.count >= 10 and 0 < m.p10_ms <= m.median_ms <= m.p90_ms
    assert m.env["runtime"] == "litert" and m.env["delegate"] == "xnnpack"
    # bytes work as paths do; both inputs are channels-last and get seeded values
    loaded = be.load(tflite_models["neck"].read_bytes(), seed=3)
    loaded.run()
    assert [o.shape for o in loaded.outputs()] == [(1, 16, 16, 128)]
    interp = Interpreter(model_path=str(tflite_models["neck"]))
    assert sorted(tuple(d["shape"]) for d in interp.get_input_details()) == [(1, 8, 8, 96), (1, 16, 16, 96)]
    # builtin kernels without XNNPACK run the same model; int8 units are full-integer
    assert measure(get_backend("litert", delegate="none"), tflite_models["neck"], FAST).median_ms > 0
    int8 = Interpreter(model_path=str(tflite_models["neck_int8"]))
    assert {d["dtype"] for d in int8.get_input_details()} == {np.int8}
    assert measure(get_backend("litert", precision="int8"), tflite_models["neck_int8"], FAST).median_ms > 0
    assert measure_overhead(be, FAST, tflite_models["overhead"]).median_ms < m.median_ms


# ai_edge_litert's Delegate.__del__ trips over its own failed load (AttributeError ignored in __del__)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_litert_load_errors_are_clear(tflite_models: dict[str, Path], tmp_path: Path) -> None:
    be = get_backend("litert")
    with pytest.raises(FileNotFoundError):
        be.load(tmp_path / "missing.tflite")
    with pytest.raises(ValueError, match="LiteRT cannot load this model"):
        be.load(b"this is not a flatbuffer")
    bad = get_backend("litert", delegate="external", delegate_library=str(tmp_path / "libnope.so"))
    with pytest.raises(ValueError, match="cannot load the external delegate"):
        bad.load(tflite_models["neck"])
    assert bad.runtime_info()["delegate_library"] == "libnope.so"  # the name, never this host's path


def test_benchmark_model_stand_in_runs_a_real_model_through_the_command_backend(
        tflite_models: dict[str, Path]) -> None:
    cmd = (f"{shlex.quote(sys.executable)} -m profilers.runners.litert_runner {{model}} --runs {{runs}} "
           "--warmup {warmup} --threads {threads}")
    be = get_backend("command", command=cmd, pattern=BENCHMARK_MODEL_PATTERN, time_unit="us", runs=20,
                     model_format="tflite")
    m = measure(be, tflite_models["neck"], FAST)
    assert m.count == 1 and 0 < m.median_ms < 1000


def test_agent_options_for_litert() -> None:
    from profilers.agent import parse_args

    base = ["--server", "http://127.0.0.1:9", "--token", "lna_x"]
    cfg = parse_args([*base, "--backend", "litert", "--delegate-library", "libvendor.so", "--provider", "external"])
    assert (cfg.backend, cfg.provider, cfg.delegate_library) == ("litert", "external", "libvendor.so")
    assert parse_args([*base, "--backend", "litert"]).provider == "xnnpack"  # LiteRT's CPU default
    assert parse_args(base).provider == "CPUExecutionProvider"  # onnxruntime agents as before
    with pytest.raises(SystemExit):
        parse_args([*base, "--delegate-library", "libvendor.so"])  # only with --backend litert
