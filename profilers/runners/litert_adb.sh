#!/bin/sh
# Time one .tflite model on an Android device with LiteRT's benchmark_model, over adb.
# For the command backend (profilers/backends.py, BENCHMARK_MODEL_PATTERN, time unit us):
#   lutnas profile --backend command --model-format tflite --pattern benchmark_model --time-unit us \
#     --command "profilers/runners/litert_adb.sh {model} {runs} {warmup} {threads}" --device-name pixel7-litert-gpu
# Environment: ANDROID_SERIAL (adb's own: which device), LUTNAS_BENCH (the binary on the device,
# default /data/local/tmp/benchmark_model), LUTNAS_CORES (taskset mask: pin to the big cores, e.g. f0;
# default: no pinning), LUTNAS_BENCH_FLAGS (delegate flags, default --use_xnnpack=true; a phone's GPU:
# --use_gpu=true). Prints benchmark_model's output; its last line is the "Inference timings in us" summary.
set -eu
model=$1 runs=$2 warmup=$3 threads=$4
bench=${LUTNAS_BENCH:-/data/local/tmp/benchmark_model}
remote=/data/local/tmp/lutnas-model.tflite
adb push "$model" "$remote" >/dev/null
pin=""
if [ -n "${LUTNAS_CORES:-}" ]; then pin="taskset ${LUTNAS_CORES}"; fi
adb shell "$pin $bench --graph=$remote --num_runs=$runs --warmup_runs=$warmup --num_threads=$threads \
  ${LUTNAS_BENCH_FLAGS:---use_xnnpack=true}"
