//! The forecast example: a provider's forecaster on 20 regional series in partition mode, its
//! forecasts with intervals, a backtest whose median MASE must beat the seasonal naive scale
//! (below 1.0), and `cordon plot`.

use std::collections::{BTreeMap, BTreeSet};

use cordon_test_guests::with_replaced;

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
    let data = root().join("examples/forecast/data/visitor_nights.csv");
    let policy = std::fs::read_to_string(root().join("policies").join(policy)).unwrap();
    let policy = with_replaced(
        &policy,
        "source = \"examples/forecast/data/visitor_nights.csv\"",
        &format!("source = {:?}", data.display().to_string()),
    )
    .unwrap();
    case.write("policy.toml", &policy);
    case
}

fn number(text: &str) -> f64 {
    text.parse().unwrap()
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
        .map(|e| e["partition"]["region"].as_str().unwrap().to_owned())
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
    let history =
        std::fs::read_to_string(root().join("examples/forecast/data/visitor_nights.csv")).unwrap();
    let forecasts = std::fs::read_to_string(case.path("out/backtest-forecasts.csv")).unwrap();
    let backtest = forecast_model::backtest::score(&history, &forecasts, "region").unwrap();
    assert_eq!(backtest.series.len(), REGIONS);
    for series in &backtest.series {
        assert_eq!(series.horizon, HORIZON, "{}", series.series);
    }
    let median = backtest.median_mase();
    println!("{}", backtest.markdown());
    assert!(
        median < 1.0,
        "median MASE over the 20 series is {median:.3}, not below 1.0:\n{}",
        backtest.markdown()
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
    case.write("bad.csv", "region,quarter,yhat\nNSWMetro,2017Q1,1.0\n");
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
