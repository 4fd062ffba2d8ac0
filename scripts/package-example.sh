#!/usr/bin/env bash
# A provider's release step: builds an example's model component, packs the example into one
# deterministic dist/NAME-VERSION.cordon and signs it with the example's key. Prints the path.
set -euo pipefail
cd "$(dirname "$0")/.."

name="${1:?usage: scripts/package-example.sh <example name, e.g. churn>}"
key="examples/${name}/keys/"*.key
scripts/build-example.sh "$name" >&2
cargo build --release --locked --bin cordon >&2
mkdir -p dist
packed="$(./target/release/cordon pack "examples/${name}" --out dist | cut -d' ' -f1)"
./target/release/cordon sign --key $key "$packed" >&2
echo "$packed"
