#!/usr/bin/env bash
# A provider's release step: builds an example's model component, packs the example into one
# deterministic dist/NAME-VERSION.cordon and signs it with its publisher's key from
# examples/keys/<publisher>.key (both examples are acme-analytics'). Prints the path.
set -euo pipefail
cd "$(dirname "$0")/.."

name="${1:?usage: scripts/package-example.sh <example name, e.g. churn>}"
publisher="$(sed -n 's/^publisher *= *"\(.*\)"/\1/p' "examples/${name}/cordon.toml")"
key="examples/keys/${publisher}.key"
scripts/build-example.sh "$name" >&2
cargo build --release --locked --bin cordon >&2
mkdir -p dist
packed="$(./target/release/cordon pack "examples/${name}" --out dist | cut -d' ' -f1)"
./target/release/cordon sign --key $key "$packed" >&2
echo "$packed"
