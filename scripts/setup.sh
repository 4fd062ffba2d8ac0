#!/usr/bin/env bash
# Installs what Cordon needs on a fresh machine, and nothing twice:
#   - the Rust toolchain pinned in rust-toolchain.toml, with the wasm32-wasip2 target
#     (automatic toolchain installation is off on CI machines, so this is explicit);
#   - ONNX Runtime's shared library from the `onnxruntime` wheel, into .onnxruntime/;
#     with --gpu, from the `onnxruntime-gpu` wheel (CUDA) into .onnxruntime-gpu/ instead. That
#     one also needs an NVIDIA driver and CUDA 13's runtime, cuBLAS and cuRAND on the library
#     path (a CUDA toolkit, or the nvidia-*-cu13 wheels); ONNX Runtime says which it misses.
# Prints the library's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

ONNXRUNTIME_VERSION="${ONNXRUNTIME_VERSION:-1.31.1}"
wheel=onnxruntime
into=.onnxruntime
case "${1:-}" in
  "") ;;
  --gpu) wheel=onnxruntime-gpu; into=.onnxruntime-gpu ;;
  *) echo "usage: scripts/setup.sh [--gpu]" >&2; exit 2 ;;
esac

toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  rustup toolchain install "$toolchain" --profile minimal --component rustfmt --component clippy
fi
if ! rustup target list --installed --toolchain "$toolchain" | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2 --toolchain "$toolchain"
fi

library=$(ls "$into"/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | sort | tail -n 1 || true)
if [ -z "$library" ]; then
  # Only the shared libraries are used: --no-deps skips numpy and friends, and --target keeps
  # them inside the repository, away from any Python environment.
  python3 -m pip install --quiet --disable-pip-version-check --no-deps \
    --target "$into" "${wheel}==${ONNXRUNTIME_VERSION}"
  library=$(ls "$into"/onnxruntime/capi/libonnxruntime.so.* | sort | tail -n 1)
fi
echo "$PWD/$library"
