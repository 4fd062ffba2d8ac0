#!/usr/bin/env bash
# Builds an example's model crate for wasm32-wasip2 and puts the component where the example's
# manifest expects it: examples/<name>/model.wasm.
set -euo pipefail
cd "$(dirname "$0")/.."

name="${1:?usage: scripts/build-example.sh <example name, e.g. churn>}"
package="${name}-model"
cargo build --locked --profile guest --target wasm32-wasip2 -p "$package" --lib
cp "target/wasm32-wasip2/guest/${package//-/_}.wasm" "examples/${name}/model.wasm"
echo "built examples/${name}/model.wasm"
