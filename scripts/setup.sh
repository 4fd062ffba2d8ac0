#!/usr/bin/env bash
# Installs what Cordon needs on a fresh machine, and nothing twice:
#   - the Rust toolchain pinned in rust-toolchain.toml, with the wasm32-wasip2 target
#     (automatic toolchain installation is off on CI machines, so this is explicit);
#   - ONNX Runtime's shared library from the `onnxruntime` wheel, into .onnxruntime/.
# Prints the library's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

ONNXRUNTIME_VERSION="${ONNXRUNTIME_VERSION:-1.31.1}"

toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  rustup toolchain install "$toolchain" --profile minimal --component rustfmt --component clippy
fi
if ! rustup target list --installed --toolchain "$toolchain" | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2 --toolchain "$toolchain"
fi

library=$(ls .onnxruntime/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | sort | tail -n 1 || true)
if [ -z "$library" ]; then
  # Only the shared library is used: --no-deps skips numpy and friends, and --target keeps it
  # inside the repository, away from any Python environment.
  python3 -m pip install --quiet --disable-pip-version-check --no-deps \
    --target .onnxruntime "onnxruntime==${ONNXRUNTIME_VERSION}"
  library=$(ls .onnxruntime/onnxruntime/capi/libonnxruntime.so.* | sort | tail -n 1)
fi
echo "$PWD/$library"
