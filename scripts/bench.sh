#!/usr/bin/env bash
# The benchmarks, as BENCHMARKS.md reports them: figures on this machine, never pass/fail.
# Installs the toolchain and ONNX Runtime if needed, and the Python baseline's pinned packages
# into target/bench-venv. Each benchmark writes target/bench/<name>.json.
#   CORDON_BENCH_ROWS       rows of the large-table benchmark (default 10,000,000)
#   CORDON_BENCH_E2E_ROWS   table sizes against Python, comma-separated (default 1,000,000)
#   CORDON_BENCH_RUNS       runs per figure (default 3); CORDON_BENCH_PASSES for the
#                           sandbox-overhead passes (default 5)
#   CORDON_BENCH_ONLY       one benchmark: sandbox_overhead, end_to_end, large_table or
#                           serve_load
#   CORDON_BENCH_SERVE_SECONDS  length of each load of serve_load (default 60)
#   CORDON_BENCH_INSTANCES  instance counts of end_to_end's scaling, comma-separated
#                           (default 1, 2, 4, ... up to the machine's cores, at most 16)
#   CORDON_BENCH_GPU        also run the MLP and logistic regression on CUDA, with ONNX
#                           Runtime from the onnxruntime-gpu wheel (scripts/setup.sh --gpu)
#   CORDON_BENCH_PROFILE    sandbox_overhead runs only the guest, for perf (BENCHMARKS.md)
set -euo pipefail
cd "$(dirname "$0")/.."

# With CORDON_BENCH_GPU set, ONNX Runtime's CUDA build (setup.sh --gpu).
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/setup.sh ${CORDON_BENCH_GPU:+--gpu} | tail -n 1)}"
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# Installed again when the requirements have grown (a venv from before the serving baseline).
if ! "$venv/bin/python" -c "import numpy, pandas, pyarrow, onnxruntime, fastapi, uvicorn" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r runtime/benches/python/requirements.txt
fi
export CORDON_BENCH_PYTHON="$PWD/$venv/bin/python"

for bench in sandbox_overhead end_to_end large_table serve_load; do
  if [ -z "${CORDON_BENCH_ONLY:-}" ] || [ "$CORDON_BENCH_ONLY" = "$bench" ]; then
    cargo bench --locked -p cordon-runtime --bench "$bench"
  fi
done
