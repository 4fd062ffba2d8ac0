#!/usr/bin/env bash
# The forecaster against the seasonal naive forecast and statsmodels' ETS, on rolling
# backtests of three real data sets of three frequencies (the table in
# examples/forecast/README.md):
#   quarterly  20 regions' visitor nights, 3 cuts a year apart, 8 quarters held back after each
#   monthly    US employment in 148 industries, 2 cuts a year apart, 12 months held back
#   weekly     US gasoline supplied, with gaps, 12 cuts 13 weeks apart, 13 weeks held back
# Each data set is cut with `forecast-accuracy origins` into out/compare/NAME-cuts.csv,
# forecast by Cordon under policies/forecast-rolling-NAME.toml (only its [settings] differ),
# forecast by statsmodels (examples/forecast/compare/ets.py, in a virtual environment under
# target/ with compare/requirements.txt; several minutes on 2 cores, skipped with --no-ets), and
# all are scored against the whole history.
set -euo pipefail
cd "$(dirname "$0")/.."

ets=yes
if [[ "${1:-}" == "--no-ets" ]]; then
  ets=no
  shift
fi
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/setup.sh | tail -n 1)}"
package="$(scripts/package-example.sh forecast)"
cargo build --release --locked --quiet -p forecast-model --bin forecast-accuracy
cordon=./target/release/cordon
accuracy=./target/release/forecast-accuracy
data=examples/forecast/data
if [[ $ets == yes ]]; then
  venv=target/compare-venv
  [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r examples/forecast/compare/requirements.txt
fi
mkdir -p out/compare

#       name      file                 series   time     value     frequency period horizon cuts every
for spec in \
  "quarterly visitor_nights.csv    region  quarter  nights    quarterly 4  8  3 4" \
  "monthly   us_employment.csv     series  month    employed  monthly   12 12 2 12" \
  "weekly    us_gasoline.csv       -       week     barrels   weekly    52 13 12 13"; do
  read -r name file series time value frequency period horizon cuts every <<<"$spec"
  columns=(--time "$time" --value "$value" --frequency "$frequency" --period "$period")
  [[ $series == - ]] || columns+=(--series "$series")
  "$accuracy" origins "$data/$file" "${columns[@]}" --horizon "$horizon" --origins "$cuts" \
    --every "$every" >"out/compare/$name-cuts.csv"
  started=$(date +%s%N)
  "$cordon" run --package "$package" --policy "policies/forecast-rolling-$name.toml" --quiet "$@"
  echo "$name: Cordon forecast $(grep -c . "out/compare/$name-cuts.csv") rows of cuts in $(( ($(date +%s%N) - started) / 1000000 )) ms"
  forecasts=(cordon="out/compare/$name-cordon.csv")
  if [[ $ets == yes ]]; then
    "$venv/bin/python" examples/forecast/compare/ets.py "out/compare/$name-cuts.csv" \
      "$frequency" "$period" "$horizon" >"out/compare/$name-ets.csv"
    forecasts+=(ets="out/compare/$name-ets.csv")
  fi
  echo "### $name"
  "$accuracy" score "$data/$file" "${columns[@]}" "${forecasts[@]}"
done
