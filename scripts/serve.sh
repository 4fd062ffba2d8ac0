#!/usr/bin/env bash
# The churn example online: builds and signs the package (as scripts/churn.sh does), scores the
# table once with `cordon run` for the reference, starts `cordon serve` under
# policies/churn-serve.toml (REST on 127.0.0.1:8000, gRPC on 127.0.0.1:8001), sends all 7,043
# customers through NVIDIA's tritonclient (HTTP with binary and with JSON tensors, and gRPC),
# checks every probability is bit-identical to out/churn_scores.csv, stops the server with
# SIGTERM and verifies its audit trail.
#   CORDON_SERVE_HTTP / CORDON_SERVE_GRPC   other addresses (port 0: any free port)
# The Python client goes into target/serve-venv (examples/churn/serve/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/setup.sh | tail -n 1)}"
http="${CORDON_SERVE_HTTP:-127.0.0.1:8000}"
grpc="${CORDON_SERVE_GRPC:-127.0.0.1:8001}"
package="$(scripts/package-example.sh churn)"
./target/release/cordon run --package "$package" --policy policies/churn.toml --quiet >/dev/null

venv=target/serve-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r examples/churn/serve/requirements.txt
fi

mkdir -p out
./target/release/cordon serve --package "$package" --policy policies/churn-serve.toml \
  --listen "$http" --grpc "$grpc" 2>out/serve.log &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  if grep -q '^serving ' out/serve.log; then break; fi
  if ! kill -0 $server 2>/dev/null; then cat out/serve.log >&2; exit 2; fi
  sleep 0.1
done
line="$(grep '^serving ' out/serve.log)"
echo "$line" >&2
# The addresses really bound (a port of 0 becomes a free one).
http="$(sed -n 's|^serving [^ ]* on https\{0,1\}://\([^ ,]*\).*|\1|p' <<<"$line")"
grpc="$(sed -n 's|.*, gRPC on \([^ ]*\) .*|\1|p' <<<"$line")"

"$venv/bin/python" examples/churn/serve/triton_check.py --http "$http" --grpc "$grpc" \
  --token cdn_example_retention_not_secret \
  --table examples/churn/data/telco_churn.csv --expected out/churn_scores.csv

kill -TERM $server
wait $server
trap - EXIT
tail -n 1 out/serve.log >&2
./target/release/cordon audit verify out/serve-audit.jsonl
