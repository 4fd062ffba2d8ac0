#!/usr/bin/env bash
# The main job: score the Telco customers with the churn example, end to end, on a fresh
# machine. Installs the toolchain and ONNX Runtime if needed, builds the `cordon` host and the
# provider's model component, packs and signs dist/telco-churn-0.1.0.cordon (the provider's
# step), then runs that signed package with `cordon run` under policies/churn.toml, which trusts
# the provider's key.
# Writes out/churn_scores.csv (customerID, churn_probability). Extra arguments go to `cordon run`.
set -euo pipefail
cd "$(dirname "$0")/.."

export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/setup.sh | tail -n 1)}"
package="$(scripts/package-example.sh churn)"
./target/release/cordon run --package "$package" --policy policies/churn.toml "$@"
