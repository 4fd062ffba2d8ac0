#!/usr/bin/env bash
# The benchmarks, as BENCHMARKS.md reports them: figures on this machine, never pass/fail.
# Installs the toolchain and ONNX Runtime if needed. CORDON_BENCH_ROWS and CORDON_BENCH_RUNS
# change the large-table benchmark's size and repetitions.
set -euo pipefail
cd "$(dirname "$0")/.."

export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/setup.sh | tail -n 1)}"
cargo bench --locked -p cordon-runtime --bench large_table
