#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints (host and guests), then every test of
# the workspace, including the end-to-end tests that build the test guests for wasm32-wasip2,
# and a short run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/setup.sh | tail -n 1)}"

cargo fmt --all -- --check
cargo fmt --all --manifest-path tests/guests/Cargo.toml -- --check
# One profile for everything (release), so the lint, test and main-job builds share one
# compilation of wasmtime.
cargo clippy --locked --release --workspace --all-targets -- -D warnings
cargo clippy --locked --profile guest --target wasm32-wasip2 \
  --manifest-path tests/guests/Cargo.toml --target-dir target/test-guests -- -D warnings
cargo test --locked --release --workspace
# `cordon serve` with NVIDIA's own clients (tritonclient HTTP, binary and JSON, and gRPC): all
# 7,043 churn rows bit-identical to `cordon run`, then SIGTERM and the trail verified.
CORDON_SERVE_HTTP=127.0.0.1:0 CORDON_SERVE_GRPC=127.0.0.1:0 scripts/serve.sh
# Every fuzz target for a few seconds: a target that no longer builds, or an input that now
# crashes one, fails here (the replay tests above already ran the seeds and past crashes).
scripts/fuzz.sh 5
