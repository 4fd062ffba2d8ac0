#!/usr/bin/env bash
# The main job: score the Telco customers with the churn example, end to end, on a fresh
# machine. Installs the toolchain and ONNX Runtime if needed, builds the `cordon` host and the
# provider's model component, then runs `cordon run` under policies/churn.toml.
# Writes out/churn_scores.csv (customerID, churn_probability). Extra arguments go to `cordon run`.
set -euo pipefail
cd "$(dirname "$0")/.."

export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/setup.sh | tail -n 1)}"
scripts/build-example.sh churn
cargo build --release --locked --bin cordon
./target/release/cordon run --package examples/churn --policy policies/churn.toml "$@"
