//! The forecast example: a provider's forecaster on 20 regional series in partition mode, its
//! forecasts with intervals, a backtest whose median MASE must beat the seasonal naive scale
//! (below 1.0), monthly and weekly (gappy) series through settings alone, errors that name
//! the series, and `cordon plot`.

use std::collections::{BTreeMap, BTreeSet};

use cordon_test_guests::with_replaced;
use forecast_model::backtest::{self, Columns, History};
use forecast_model::time::Frequency;

use crate::support::{Case, read_csv, root};

const REGIONS: usize = 20;
const HORIZON: usize = 8;

/// The forecast example's package in a fresh case, under a copy of `policy` (one of
/// policies/forecast*.toml) with paths made absolute.
pub(crate) fn forecast_case(policy: &str) -> Case {
    let case = Case::new();
    let manifest = std::fs::read_to_string(root().join("examples/forecast/cordon.toml")).unwrap();
    let graph = root().join("examples/forecast/graphs/forecast_ar.onnx");
    case.package(
        cordon_test_guests::FORECAST_MODEL,
        &manifest,
        &[("forecast_ar.onnx", &graph)],
    );
    // The example's data by absolute path; other sources (out/...) stay in the case.
    let data = root().join("examples/forecast/data");
    let policy = std::fs::read_to_string(root().join("policies").join(policy)).unwrap();
    let policy = policy.replace(
        "source = \"examples/forecast/data/",
        &format!("source = \"{}/", data.display()),
    );
    case.write("policy.toml", &policy);
    case
}

fn number(text: &str) -> f64 {
    text.parse().unwrap()
}

/// One of the example's data files as a backtest's history.
fn history(
    file: &str,
    series: Option<&str>,
    time: &str,
    value: &str,
    frequency: Frequency,
) -> History {
    let text = std::fs::read_to_string(root().join("examples/forecast/data").join(file)).unwrap();
    let columns = Columns {
        series: series.map(str::to_owned),
        time: time.to_owned(),
        value: value.to_owned(),
    };
    History::read(&text, &columns, frequency).unwrap()
}

#[test]
fn every_region_gets_eight_quarters_with_nested_intervals() {
    let case = forecast_case("forecast.toml");
    let summary = case.run().unwrap();
    assert_eq!(summary.rows_in, (REGIONS * 76) as u64);
    assert_eq!(summary.rows_out, (REGIONS * HORIZON) as u64);

    // region, quarter, method, yhat, lo80, hi80, lo95, hi95
    let rows = read_csv(&case.path("out/forecasts.csv"));
    let mut quarters: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for row in &rows {
        quarters.entry(&row[0]).or_default().push(&row[1]);
        let [yhat, lo80, hi80, lo95, hi95] = [3, 4, 5, 6, 7].map(|i| number(&row[i]));
        assert!(
            lo95 <= lo80 && lo80 <= yhat && yhat <= hi80 && hi80 <= hi95,
            "{row:?}"
        );
        assert!(yhat.is_finite() && yhat > 0.0, "{row:?}");
        assert!(
            forecast_model::methods::Method::from_name(&row[2], 4).is_some(),
            "{row:?}"
        );
    }
    assert_eq!(quarters.len(), REGIONS);
    let expected = [
        "2017Q1", "2017Q2", "2017Q3", "2017Q4", "2018Q1", "2018Q2", "2018Q3", "2018Q4",
    ];
    for (region, got) in &quarters {
        assert_eq!(got, &expected, "{region}");
    }

    // One data read per series in the audit trail.
    let events = cordon::audit::read_events(&case.path("out/forecast-audit.jsonl")).unwrap();
    let reads: BTreeSet<String> = events
        .iter()
        .filter(|e| e["event"] == "data-read")
        .map(|e| e["partition"]["series"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reads.len(), REGIONS);
    assert_eq!(
        events.iter().filter(|e| e["event"] == "data-read").count(),
        REGIONS
    );
}

/// The consumer hides 2015Q1-2016Q4 with the policy's filter; the forecasts for those quarters
/// are scored against what happened.
#[test]
fn the_backtest_beats_the_seasonal_naive_scale() {
    let case = forecast_case("forecast-backtest.toml");
    case.run().unwrap();
    let history = history(
        "visitor_nights.csv",
        Some("region"),
        "quarter",
        "nights",
        Frequency::Quarterly,
    );
    let forecasts = std::fs::read_to_string(case.path("out/backtest-forecasts.csv")).unwrap();
    let backtest = backtest::score("cordon", &history, &forecasts, 4).unwrap();
    assert_eq!(backtest.series.len(), REGIONS);
    for series in &backtest.series {
        assert_eq!(series.points, HORIZON, "{}", series.series);
    }
    let median = backtest.median_mase();
    println!("{}", backtest.markdown());
    assert!(
        median < 1.0,
        "median MASE over the 20 series is {median:.3}, not below 1.0:\n{}",
        backtest.markdown()
    );
    let naive = backtest::seasonal_naive_backtest(&history, &forecasts, 4).unwrap();
    assert!(
        median < naive.median_mase(),
        "{}",
        backtest::summary(&[backtest.clone(), naive])
    );
}

#[test]
fn plot_draws_one_panel_per_series_and_refuses_a_bad_file() {
    let case = forecast_case("forecast.toml");
    case.run().unwrap();
    let history = root().join("examples/forecast/data/visitor_nights.csv");
    let history = history.to_str().unwrap();
    let plot = |forecasts: &str, out: &str| {
        case.cordon(&[
            "plot",
            forecasts,
            "--history",
            history,
            "--series",
            "region",
            "--time",
            "quarter",
            "--value",
            "nights",
            "--forecast-series",
            "series",
            "--forecast-time",
            "time",
            "--out",
            out,
        ])
    };
    let output = plot("out/forecasts.csv", "out/forecasts.png");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let png = std::fs::read(case.path("out/forecasts.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: width and height, big-endian, after the signature, length and type.
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    // 20 panels: 5 columns of 4 rows.
    assert_eq!((width, height), (5 * 340, 44 + 4 * 210));

    // A forecast file without its intervals: an error naming the column, and no picture.
    case.write("bad.csv", "series,time,yhat\nNSWMetro,2017Q1,1.0\n");
    let output = plot("bad.csv", "out/bad.png");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("has no column `lo80`"), "{stderr}");
    assert!(!case.path("out/bad.png").exists());
}

/// Many monthly series whose forecasts name their columns differently from the history: the
/// names are mapped, the series split over pages beside `--out`, and `--last` is accepted.
#[test]
fn plot_maps_names_and_splits_many_series_over_pages() {
    let case = crate::support::Case::new();
    let mut history = String::from("shop,month,sales\n");
    let mut forecasts = String::from("store,period,yhat,lo80,hi80,lo95,hi95\n");
    for shop in 0..10 {
        for month in 1..=12 {
            history.push_str(&format!("s{shop},2020-{month:02}-01,{}\n", 100 + month));
        }
        for month in 1..=3 {
            forecasts.push_str(&format!("s{shop},2021-{month:02}-01,110,105,115,100,120\n"));
        }
    }
    case.write("history.csv", &history);
    case.write("forecasts.csv", &forecasts);
    let output = case.cordon(&[
        "plot",
        "forecasts.csv",
        "--history",
        "history.csv",
        "--series",
        "shop",
        "--time",
        "month",
        "--value",
        "sales",
        "--forecast-series",
        "store",
        "--forecast-time",
        "period",
        "--last",
        "6",
        "--per-page",
        "4",
        "--out",
        "out/sales.png",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // 10 series, 4 a page: pages of 4, 4 and 2, each named beside --out.
    for (page, panels) in [(1, 4), (2, 4), (3, 2)] {
        let path = case.path(&format!("out/sales-{page}.png"));
        let png = std::fs::read(&path).unwrap_or_else(|_| panic!("no page {page}: {stdout}"));
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        assert_eq!(width, 2 * 340, "page {page}");
        assert!(
            stdout.contains(&format!("sales-{page}.png ({panels} series")),
            "{stdout}"
        );
    }
    assert!(!case.path("out/sales.png").exists());

    // A forecast series column that is not there is named.
    let output = case.cordon(&[
        "plot",
        "forecasts.csv",
        "--history",
        "history.csv",
        "--series",
        "shop",
        "--time",
        "month",
        "--value",
        "sales",
        "--out",
        "out/x.png",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("forecasts.csv: has no column `shop`"),
        "{stderr}"
    );
}

/// The policy sets the forecaster's horizon (a setting its manifest declares): 12 quarters per
/// region instead of 8, continuing from the last quarter, with nested intervals.
#[test]
fn the_policy_sets_the_horizon() {
    let case = forecast_case("forecast.toml");
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap();
    case.write(
        "policy.toml",
        &format!("{policy}\n[settings]\nhorizon = 12\n"),
    );
    let summary = case.run().unwrap();
    assert_eq!(summary.rows_out, (REGIONS * 12) as u64);
    let rows = read_csv(&case.path("out/forecasts.csv"));
    let first: Vec<&str> = rows
        .iter()
        .filter(|row| row[0] == rows[0][0])
        .map(|row| row[1].as_str())
        .collect();
    assert_eq!(first.first(), Some(&"2017Q1"), "{first:?}");
    assert_eq!(first.last(), Some(&"2019Q4"), "{first:?}");
    for row in &rows {
        let [yhat, lo80, hi80, lo95, hi95] = [3, 4, 5, 6, 7].map(|i| number(&row[i]));
        assert!(
            lo95 <= lo80 && lo80 <= yhat && yhat <= hi80 && hi80 <= hi95,
            "{row:?}"
        );
    }
}

/// A rolling backtest as scripts/forecast-compare.sh runs it: `cuts` (series `S@P`) written
/// where policies/forecast-rolling-NAME.toml reads them, forecast under that policy (its
/// `[settings]` alone tell the model the frequency), scored against `history` beside the
/// seasonal naive forecast of the same held-back periods.
fn rolling_backtest(
    name: &str,
    history: &History,
    cuts: &str,
    period: usize,
) -> [backtest::Backtest; 2] {
    let case = forecast_case(&format!("forecast-rolling-{name}.toml"));
    std::fs::create_dir_all(case.path("out/compare")).unwrap();
    case.write(&format!("out/compare/{name}-cuts.csv"), cuts);
    let summary = case.run().unwrap();
    assert!(summary.rows_out > 0);
    let forecasts =
        std::fs::read_to_string(case.path(&format!("out/compare/{name}-cordon.csv"))).unwrap();
    let cordon = backtest::score("cordon", history, &forecasts, period).unwrap();
    let naive = backtest::seasonal_naive_backtest(history, &forecasts, period).unwrap();
    println!(
        "{name}:\n{}",
        backtest::summary(&[cordon.clone(), naive.clone()])
    );
    [cordon, naive]
}

/// The acceptance of the any-frequency forecaster: a weekly series with gaps and monthly
/// series, real data both, backtested with settings from the policy only. Each beats the
/// seasonal naive forecast in mean MASE, and the intervals' coverage over all the held-back
/// periods is within 10 points of nominal.
#[test]
fn monthly_and_weekly_backtests_beat_seasonal_naive_with_calibrated_intervals() {
    let weekly = history(
        "us_gasoline.csv",
        None,
        "week",
        "barrels",
        Frequency::Weekly,
    );
    let [cordon_weekly, naive_weekly] = rolling_backtest(
        "weekly",
        &weekly,
        &backtest::origins(&weekly, 13, 12, 13),
        52,
    );
    assert_eq!(cordon_weekly.series.len(), 12);

    // Monthly: the 148 industries, two cuts each, as scripts/forecast-compare.sh runs them.
    let monthly = history(
        "us_employment.csv",
        Some("series"),
        "month",
        "employed",
        Frequency::Monthly,
    );
    let cuts = backtest::origins(&monthly, 12, 2, 12);
    let [cordon_monthly, naive_monthly] = rolling_backtest("monthly", &monthly, &cuts, 12);
    assert_eq!(cordon_monthly.series.len(), 2 * 148);

    for (what, cordon, naive) in [
        ("weekly", &cordon_weekly, &naive_weekly),
        ("monthly", &cordon_monthly, &naive_monthly),
    ] {
        assert!(
            cordon.mean_mase() < naive.mean_mase(),
            "{what}: mean MASE {:.3} is not below the seasonal naive forecast's {:.3}",
            cordon.mean_mase(),
            naive.mean_mase()
        );
    }
    let points = (cordon_weekly.points() + cordon_monthly.points()) as f64;
    let pooled = |pick: fn((f64, f64)) -> f64| {
        [&cordon_weekly, &cordon_monthly]
            .iter()
            .map(|b| pick(b.coverage()) * b.points() as f64)
            .sum::<f64>()
            / points
    };
    let (c80, c95) = (pooled(|c| c.0), pooled(|c| c.1));
    assert!((0.70..=0.90).contains(&c80), "80% intervals held {c80:.3}");
    assert!((0.85..=1.0).contains(&c95), "95% intervals held {c95:.3}");
}

/// Missing values are skipped, not refused: a region with empty values and a quarter with no
/// row at all is forecast. A label that is not a quarter fails the run, and the error names
/// the series by its key (which the model never sees) and the label.
#[test]
fn gaps_are_forecast_and_a_bad_series_is_named_by_its_key() {
    let original =
        std::fs::read_to_string(root().join("examples/forecast/data/visitor_nights.csv")).unwrap();
    let gappy: String = original
        .lines()
        .filter(|line| !line.starts_with("NSWMetro,2003Q2,"))
        .map(|line| {
            if line.starts_with("NSWMetro,2010Q1,") || line.starts_with("NSWMetro,2016Q4,") {
                "NSWMetro,".to_owned() + &line[9..15] + ",\n"
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    let case = forecast_case("forecast.toml");
    case.write("gappy.csv", &gappy);
    let data = root().join("examples/forecast/data/visitor_nights.csv");
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap();
    let policy = with_replaced(
        &policy,
        &format!("source = {:?}", data.display().to_string()),
        "source = \"gappy.csv\"",
    )
    .unwrap();
    case.write("policy.toml", &policy);
    let summary = case.run().unwrap();
    assert_eq!(summary.rows_out, (REGIONS * HORIZON) as u64);
    let rows = read_csv(&case.path("out/forecasts.csv"));
    let nsw: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == "NSWMetro").collect();
    assert_eq!(nsw.len(), HORIZON);
    assert_eq!(nsw[0][1], "2017Q1");
    for row in nsw {
        let [yhat, lo80, hi80, lo95, hi95] = [3, 4, 5, 6, 7].map(|i| number(&row[i]));
        assert!(
            lo95 < lo80 && lo80 < yhat && yhat < hi80 && hi80 < hi95,
            "{row:?}"
        );
    }

    let before = std::fs::read(case.path("out/forecasts.csv")).unwrap();
    case.write(
        "gappy.csv",
        &gappy.replace("WAUMetro,2005Q3,", "WAUMetro,2005Q7,"),
    );
    let error = case.run().unwrap_err().to_string();
    assert!(
        error.contains("the model failed on series=\"WAUMetro\""),
        "{error}"
    );
    assert!(
        error.contains("`2005Q7` is not a quarter like 1998Q1"),
        "{error}"
    );
    // The failed run left the earlier forecasts as they were.
    assert_eq!(
        std::fs::read(case.path("out/forecasts.csv")).unwrap(),
        before
    );
}
