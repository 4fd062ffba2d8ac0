//! Scoring a backtest: the forecasts Cordon wrote for quarters the consumer held back, against
//! what really happened. Runs natively (`forecast-accuracy`, and the end-to-end test), never in
//! the sandbox.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::accuracy::{coverage, mase, median, seasonal_naive};
use crate::methods::PERIOD;

/// One series' scores.
#[derive(Debug, Clone)]
pub struct SeriesScore {
    pub series: String,
    pub method: String,
    pub horizon: usize,
    pub mase: f64,
    /// The seasonal naive forecast's MASE on the same quarters, for comparison.
    pub naive_mase: f64,
    pub coverage80: f64,
    pub coverage95: f64,
}

#[derive(Debug, Clone)]
pub struct Backtest {
    pub series: Vec<SeriesScore>,
}

impl Backtest {
    pub fn median_mase(&self) -> f64 {
        median(&self.series.iter().map(|s| s.mase).collect::<Vec<_>>())
    }

    pub fn median_naive_mase(&self) -> f64 {
        median(&self.series.iter().map(|s| s.naive_mase).collect::<Vec<_>>())
    }

    /// Coverage over every forecast point of every series.
    pub fn coverage(&self) -> (f64, f64) {
        let points: usize = self.series.iter().map(|s| s.horizon).sum();
        let weighted = |f: fn(&SeriesScore) -> f64| {
            self.series
                .iter()
                .map(|s| f(s) * s.horizon as f64)
                .sum::<f64>()
                / points.max(1) as f64
        };
        (weighted(|s| s.coverage80), weighted(|s| s.coverage95))
    }

    /// The table the example's README shows.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| series | method | MASE | seasonal naive MASE | 80% coverage | 95% coverage |\n|---|---|---:|---:|---:|---:|\n",
        );
        for s in &self.series {
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} | {:.3} | {:.0}% | {:.0}% |",
                s.series,
                s.method,
                s.mase,
                s.naive_mase,
                s.coverage80 * 100.0,
                s.coverage95 * 100.0
            );
        }
        let (c80, c95) = self.coverage();
        let _ = writeln!(
            out,
            "| **median / all** | | **{:.3}** | {:.3} | {:.0}% | {:.0}% |",
            self.median_mase(),
            self.median_naive_mase(),
            c80 * 100.0,
            c95 * 100.0
        );
        out
    }
}

/// A forecast row as the run wrote it.
struct ForecastRow {
    quarter: String,
    method: String,
    yhat: f64,
    lo80: f64,
    hi80: f64,
    lo95: f64,
    hi95: f64,
}

/// Scores `forecasts` (CSV: series, quarter, method, yhat, lo80, hi80, lo95, hi95) against
/// `history` (CSV: series, quarter, value, holding the held-back quarters too).
pub fn score(history: &str, forecasts: &str, series_column: &str) -> Result<Backtest, String> {
    let mut actual: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for row in rows(history, &[series_column, "quarter", "nights"])? {
        let value = number(&row, 2)?;
        actual
            .entry(field(&row, 0))
            .or_default()
            .insert(field(&row, 1), value);
    }
    let columns = [
        series_column,
        "quarter",
        "method",
        "yhat",
        "lo80",
        "hi80",
        "lo95",
        "hi95",
    ];
    let mut forecast: BTreeMap<String, Vec<ForecastRow>> = BTreeMap::new();
    for row in rows(forecasts, &columns)? {
        forecast
            .entry(field(&row, 0))
            .or_default()
            .push(ForecastRow {
                quarter: field(&row, 1),
                method: field(&row, 2),
                yhat: number(&row, 3)?,
                lo80: number(&row, 4)?,
                hi80: number(&row, 5)?,
                lo95: number(&row, 6)?,
                hi95: number(&row, 7)?,
            });
    }

    let mut scores = Vec::new();
    for (series, mut steps) in forecast {
        steps.sort_by(|a, b| a.quarter.cmp(&b.quarter));
        let history = actual
            .get(&series)
            .ok_or_else(|| format!("the history has no series `{series}`"))?;
        let first = steps.first().map(|s| s.quarter.clone()).unwrap_or_default();
        let train: Vec<f64> = history.range(..first).map(|(_, v)| *v).collect();
        let held_back: Vec<f64> = steps
            .iter()
            .map(|s| {
                history
                    .get(&s.quarter)
                    .copied()
                    .ok_or_else(|| format!("`{series}` has no actual value for {}", s.quarter))
            })
            .collect::<Result<_, _>>()?;
        let column = |f: fn(&ForecastRow) -> f64| steps.iter().map(f).collect::<Vec<_>>();
        let naive = seasonal_naive(&train, PERIOD, steps.len());
        scores.push(SeriesScore {
            method: steps.first().map(|s| s.method.clone()).unwrap_or_default(),
            horizon: steps.len(),
            mase: mase(&train, &held_back, &column(|s| s.yhat), PERIOD),
            naive_mase: mase(&train, &held_back, &naive, PERIOD),
            coverage80: coverage(&held_back, &column(|s| s.lo80), &column(|s| s.hi80)),
            coverage95: coverage(&held_back, &column(|s| s.lo95), &column(|s| s.hi95)),
            series,
        });
    }
    if scores.is_empty() {
        return Err("the forecasts hold no rows".into());
    }
    Ok(Backtest { series: scores })
}

/// The rows of a simple CSV text (no quoted fields), with `columns` picked out by header.
fn rows(text: &str, columns: &[&str]) -> Result<Vec<Vec<String>>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or("an empty file")?
        .split(',')
        .map(str::trim)
        .collect();
    let positions = columns
        .iter()
        .map(|c| {
            header
                .iter()
                .position(|h| h == c)
                .ok_or_else(|| format!("no column `{c}` (found: {})", header.join(", ")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    lines
        .map(|line| {
            if line.contains('"') {
                return Err(format!("quoted fields are not read here: {line}"));
            }
            let fields: Vec<&str> = line.split(',').collect();
            positions
                .iter()
                .map(|p| {
                    fields
                        .get(*p)
                        .map(|f| f.trim().to_owned())
                        .ok_or_else(|| format!("a short line: {line}"))
                })
                .collect()
        })
        .collect()
}

fn field(row: &[String], i: usize) -> String {
    row.get(i).cloned().unwrap_or_default()
}

fn number(row: &[String], i: usize) -> Result<f64, String> {
    let text = row.get(i).map(String::as_str).unwrap_or_default();
    text.parse()
        .map_err(|_| format!("`{text}` is not a number"))
}
