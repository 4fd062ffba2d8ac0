#!/usr/bin/env bash
# The forecast example end to end. Builds, packs and signs dist/seasonal-forecast-0.2.0.cordon
# (the provider's step), then, as the consumer:
#   1. forecasts the next 8 quarters of all 20 regions under policies/forecast.toml
#      -> out/forecasts.csv, drawn as out/forecasts.png;
#   2. backtests: runs again under policies/forecast-backtest.toml, whose filter hides the last
#      8 quarters, -> out/backtest-forecasts.csv, drawn as out/backtest.png, and prints MASE and
#      interval coverage per region (the table in examples/forecast/README.md);
#   3. forecasts 12 months of 148 monthly series under policies/forecast-monthly.toml (the same
#      package; the policy's [settings] say monthly) -> out/forecasts-monthly.csv, and prints
#      how long it took.
# Extra arguments go to every `cordon run`. scripts/forecast-compare.sh runs the comparison
# with the seasonal naive forecast and statsmodels' ETS.
set -euo pipefail
cd "$(dirname "$0")/.."

export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/setup.sh | tail -n 1)}"
package="$(scripts/package-example.sh forecast)"
cordon=./target/release/cordon
history=examples/forecast/data/visitor_nights.csv
plot() {
  "$cordon" plot "$1" --history "$history" --series region --time quarter --value nights \
    --forecast-series series --forecast-time time --title "$2" --out "$3"
}

"$cordon" run --package "$package" --policy policies/forecast.toml "$@"
plot out/forecasts.csv "Domestic visitor nights (millions): 8-quarter forecasts" out/forecasts.png

"$cordon" run --package "$package" --policy policies/forecast-backtest.toml "$@"
plot out/backtest-forecasts.csv "Backtest: 2015Q1-2016Q4 held out, forecast against what happened" out/backtest.png
cargo run --release --locked --quiet -p forecast-model --bin forecast-accuracy -- score \
  "$history" --series region --time quarter --value nights --per-series \
  cordon=out/backtest-forecasts.csv

started=$(date +%s%N)
"$cordon" run --package "$package" --policy policies/forecast-monthly.toml "$@"
echo "148 monthly series forecast in $(( ($(date +%s%N) - started) / 1000000 )) ms"
