#!/usr/bin/env bash
# Fuzzes every parser of hostile input (fuzz/README.md): scripts/fuzz.sh [SECONDS] [TARGET...]
# runs each target (all of them by default) for SECONDS (default 300) with libFuzzer, on a
# working corpus in target/fuzz-corpus/<target> grown from the seeds in fuzz/corpus/<target>,
# and prints one summary line per target: executions, coverage (libFuzzer's final cov: and
# ft: figures) and crashes, which are saved in target/fuzz-artifacts/<target>/. Fails if the
# fuzzer does not build or a target crashes; a crash found goes into fuzz/regressions/<target>/
# so that the replay tests keep it.
set -euo pipefail
cd "$(dirname "$0")/.."

export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/setup.sh | tail -n 1)}"

seconds="${1:-300}"
shift || true
case "$seconds" in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(manifest encoder_file policy archive signature_bundle onnx_graph guest_batch csv_source)
fi

# The instrumented build: only the runtime and the targets get coverage (scripts/fuzz-rustc);
# every other crate is the normal release build's, reused.
target_dir="${CARGO_TARGET_DIR:-target}"
RUSTC_WRAPPER="$PWD/scripts/fuzz-rustc" \
  cargo build --locked --release -p cordon-fuzz --features libfuzzer
# Copied out at once: a normal build of the workspace replaces target/release/cordon-fuzz
# with the uninstrumented binary, which only prints how to get here.
mkdir -p "$target_dir/fuzz"
fuzzer="$target_dir/fuzz/cordon-fuzz"
cp "$target_dir/release/cordon-fuzz" "$fuzzer"

# Longest input per target: room for the seeds to grow, not so much that runs slow down.
max_len() {
  case "$1" in
    archive | csv_source) echo 16384 ;;
    onnx_graph) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

failed=0
summary=()
for target in "${targets[@]}"; do
  if [ ! -d "fuzz/corpus/$target" ]; then
    echo "fuzz.sh: no target $target (no fuzz/corpus/$target)" >&2
    exit 2
  fi
  corpus="$target_dir/fuzz-corpus/$target"
  artifacts="$target_dir/fuzz-artifacts/$target"
  log="$target_dir/fuzz-logs/$target.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  # Seeds missing from the working corpus are added; what earlier runs found stays. (Not
  # `cp -n`, whose exit status for a skipped file differs between coreutils versions.)
  for seed in "fuzz/corpus/$target"/*; do
    [ -e "$corpus/$(basename "$seed")" ] || cp "$seed" "$corpus/"
  done
  before=$(find "$artifacts" -type f | wc -l)
  status=0
  # -rss_limit_mb: the CSV target runs DataFusion, whose query memory alone is capped at
  # 512 MiB; anything past 2 GiB is a finding. -timeout: a single input taking 10 s is a hang.
  CORDON_FUZZ_TARGET="$target" "$fuzzer" "$corpus" \
    -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
    -max_len="$(max_len "$target")" -artifact_prefix="$artifacts/" \
    -close_fd_mask=1 >"$log" 2>&1 || status=$?
  after=$(find "$artifacts" -type f | wc -l)
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  # The last status line libFuzzer printed: `#N  DONE  cov: C ft: F corp: ...`.
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  crashes=$((after - before))
  line=$(printf '%-17s %6ss  executions %10s  cov %6s  ft %6s  crashes %s' \
    "$target" "$seconds" "${executions:-?}" "${cov:-?}" "${ft:-?}" "$crashes")
  if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    line="$line  FAILED (exit $status; log $log)"
    failed=1
  fi
  echo "$line"
  summary+=("$line")
done

echo
echo "fuzz summary (artifacts in $target_dir/fuzz-artifacts, logs in $target_dir/fuzz-logs):"
printf '%s\n' "${summary[@]}"
exit "$failed"
