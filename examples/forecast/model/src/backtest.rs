//! Backtests: the forecasts Cordon (or another forecaster) wrote for periods the consumer held
//! back, scored against what really happened. Runs natively (`forecast-accuracy`, and the
//! end-to-end tests), never in the sandbox.
//!
//! A rolling backtest cuts each series at several origins ([`origins`]): the copy of series `S`
//! cut before period `P` is the series `S@P`, so one `cordon run` forecasts every cut, and
//! [`score`] finds each cut's history by the part before the `@`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::accuracy::{coverage, mase, mean, median, seasonal_naive, seasonal_naive_intervals};
use crate::time::{Frequency, Grid, Stamp};

/// Where a history table keeps each series' name, time label and value.
#[derive(Debug, Clone)]
pub struct Columns {
    /// `None`: the table is one series.
    pub series: Option<String>,
    pub time: String,
    pub value: String,
}

/// One series of the history, on its grid.
#[derive(Debug, Clone)]
struct HistorySeries {
    grid: Grid,
    /// A label of the series, for writing others like it.
    like: Stamp,
    /// Value (NaN when empty) and label by period.
    values: BTreeMap<i64, (f64, String)>,
}

/// The history every forecast is scored against: all periods, the held-back ones included.
#[derive(Debug, Clone)]
pub struct History {
    series: BTreeMap<String, HistorySeries>,
}

impl History {
    pub fn read(text: &str, columns: &Columns, frequency: Frequency) -> Result<History, String> {
        let mut wanted = vec![columns.time.as_str(), columns.value.as_str()];
        wanted.extend(columns.series.as_deref());
        let mut series: BTreeMap<String, HistorySeries> = BTreeMap::new();
        for row in rows(text, &wanted)? {
            let name = row.get(2).cloned().unwrap_or_default();
            let label = field(&row, 0);
            let value = match row.get(1).map(String::as_str) {
                None | Some("") => f64::NAN,
                Some(text) => text
                    .parse()
                    .map_err(|_| format!("`{text}` is not a number"))?,
            };
            let entry = match series.get_mut(&name) {
                Some(entry) => entry,
                None => {
                    let (grid, like) = Grid::starting_at(frequency, &label)?;
                    series.entry(name.clone()).or_insert(HistorySeries {
                        grid,
                        like,
                        values: BTreeMap::new(),
                    })
                }
            };
            let position = entry.grid.stamp(&label)?.position;
            entry.values.insert(position, (value, label));
        }
        Ok(History { series })
    }

    /// The series a forecast's key names: itself, or the part before its last `@` (a cut).
    fn find(&self, key: &str) -> Option<&HistorySeries> {
        self.series
            .get(key)
            .or_else(|| self.series.get(key.rsplit_once('@')?.0))
    }
}

/// The history cut at `count` origins per series, `every` periods apart, the last leaving
/// `horizon` periods after it: CSV with columns `series,time,value`, the series named `S@P`
/// for the cut of `S` before period `P`. Rows with an empty value are kept empty; gaps stay.
pub fn origins(history: &History, horizon: usize, count: usize, every: usize) -> String {
    let mut out = String::from("series,time,value\n");
    for (name, series) in &history.series {
        let Some(last) = series.values.keys().next_back().copied() else {
            continue;
        };
        for k in (0..count).rev() {
            let origin = last + 1 - (horizon + k * every) as i64;
            let cut = format!("{name}@{}", series.grid.label(origin, series.like));
            for (value, label) in series.values.range(..origin).map(|(_, v)| v) {
                let value = if value.is_nan() {
                    String::new()
                } else {
                    value.to_string()
                };
                let _ = writeln!(out, "{cut},{label},{value}");
            }
        }
    }
    out
}

/// Forecasts every series of `history` with the model's methods natively, in the CSV Cordon
/// writes (`series,time,method,yhat,lo80,hi80,lo95,hi95`). The autoregression's graph is not
/// here: it fails to fit, and the other methods are picked from.
pub fn forecast_natively(
    history: &History,
    period: usize,
    horizon: usize,
) -> Result<String, String> {
    struct NoGraph;
    impl crate::autoregression::OneStep for NoGraph {
        fn predict(&self, _: &[f32], _: usize) -> Result<Vec<f32>, String> {
            Err("the autoregression's graph runs in the sandbox only".into())
        }
    }
    let mut out = String::from("series,time,method,yhat,lo80,hi80,lo95,hi95\n");
    for (name, series) in &history.series {
        let Some(last) = series.values.keys().next_back().copied() else {
            continue;
        };
        let y = values_between(series, None, last + 1);
        let forecast =
            crate::methods::forecast(&y, period, horizon, crate::methods::Choice::Auto, &NoGraph)
                .map_err(|e| format!("series `{name}`: {e}"))?;
        for h in 0..horizon {
            let (lo80, hi80) = forecast.interval(h, crate::methods::Level::P80);
            let (lo95, hi95) = forecast.interval(h, crate::methods::Level::P95);
            let _ = writeln!(
                out,
                "{name},{},{},{},{lo80},{hi80},{lo95},{hi95}",
                series.grid.label(last + 1 + h as i64, series.like),
                forecast.method.name(),
                forecast.points.get(h).copied().unwrap_or(f64::NAN),
            );
        }
    }
    Ok(out)
}

/// One forecaster's scores on one series (or cut).
#[derive(Debug, Clone)]
pub struct SeriesScore {
    pub series: String,
    pub method: String,
    /// Held-back periods with an actual value.
    pub points: usize,
    pub mase: f64,
    pub coverage80: f64,
    pub coverage95: f64,
}

/// A forecaster's scores on every series it forecast.
#[derive(Debug, Clone)]
pub struct Backtest {
    pub forecaster: String,
    pub series: Vec<SeriesScore>,
}

impl Backtest {
    pub fn median_mase(&self) -> f64 {
        median(&self.mases())
    }

    pub fn mean_mase(&self) -> f64 {
        mean(&self.mases())
    }

    fn mases(&self) -> Vec<f64> {
        self.series.iter().map(|s| s.mase).collect()
    }

    /// Coverage over every held-back value of every series.
    pub fn coverage(&self) -> (f64, f64) {
        let points: usize = self.series.iter().map(|s| s.points).sum();
        let weighted = |f: fn(&SeriesScore) -> f64| {
            self.series
                .iter()
                .filter(|s| s.points > 0)
                .map(|s| f(s) * s.points as f64)
                .sum::<f64>()
                / points.max(1) as f64
        };
        (weighted(|s| s.coverage80), weighted(|s| s.coverage95))
    }

    pub fn points(&self) -> usize {
        self.series.iter().map(|s| s.points).sum()
    }

    /// One line per series, as the example's README shows for the quarterly data.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| series | method | MASE | 80% coverage | 95% coverage |\n|---|---|---:|---:|---:|\n",
        );
        for s in &self.series {
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} | {:.0}% | {:.0}% |",
                s.series,
                s.method,
                s.mase,
                s.coverage80 * 100.0,
                s.coverage95 * 100.0
            );
        }
        let (c80, c95) = self.coverage();
        let _ = writeln!(
            out,
            "| **median / all** | | **{:.3}** | {:.0}% | {:.0}% |",
            self.median_mase(),
            c80 * 100.0,
            c95 * 100.0
        );
        out
    }
}

/// The comparison table: one line per forecaster, over every series.
pub fn summary(backtests: &[Backtest]) -> String {
    let mut out = String::from(
        "| forecaster | series | points | mean MASE | median MASE | 80% coverage | 95% coverage |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for b in backtests {
        let (c80, c95) = b.coverage();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.3} | {:.3} | {:.1}% | {:.1}% |",
            b.forecaster,
            b.series.len(),
            b.points(),
            b.mean_mase(),
            b.median_mase(),
            c80 * 100.0,
            c95 * 100.0
        );
    }
    out
}

/// A forecast row as a run wrote it.
struct ForecastRow {
    position: i64,
    method: String,
    bounds: [f64; 5],
}

/// Scores `forecasts` (CSV: series, time, method, yhat, lo80, hi80, lo95, hi95, as Cordon
/// writes them; `method` may be absent) against `history`, MASE scaled with season `period`.
pub fn score(
    forecaster: &str,
    history: &History,
    forecasts: &str,
    period: usize,
) -> Result<Backtest, String> {
    let header = forecasts.lines().next().unwrap_or_default();
    let has_method = header.split(',').any(|c| c.trim() == "method");
    let mut columns = vec!["series", "time", "yhat", "lo80", "hi80", "lo95", "hi95"];
    if has_method {
        columns.push("method");
    }
    let mut by_series: BTreeMap<String, Vec<ForecastRow>> = BTreeMap::new();
    for row in rows(forecasts, &columns)? {
        let key = field(&row, 0);
        let series = history
            .find(&key)
            .ok_or_else(|| format!("the history has no series `{key}`"))?;
        let position = series.grid.stamp(&field(&row, 1))?.position;
        let mut bounds = [0.0; 5];
        for (i, bound) in bounds.iter_mut().enumerate() {
            *bound = number(&row, i + 2)?;
        }
        by_series.entry(key).or_default().push(ForecastRow {
            position,
            method: row.get(7).cloned().unwrap_or_else(|| forecaster.to_owned()),
            bounds,
        });
    }
    let mut scores = Vec::new();
    for (key, mut steps) in by_series {
        steps.sort_by_key(|s| s.position);
        let series = history
            .find(&key)
            .ok_or_else(|| format!("the history has no series `{key}`"))?;
        let first = steps.first().map_or(i64::MAX, |s| s.position);
        let train = values_between(series, None, first);
        let actual: Vec<f64> = steps
            .iter()
            .map(|s| series.values.get(&s.position).map_or(f64::NAN, |v| v.0))
            .collect();
        let column = |i: usize| {
            steps
                .iter()
                .map(|s| s.bounds.get(i).copied().unwrap_or(f64::NAN))
                .collect::<Vec<_>>()
        };
        let (c80, points) = coverage(&actual, &column(1), &column(2));
        let (c95, _) = coverage(&actual, &column(3), &column(4));
        scores.push(SeriesScore {
            method: steps.first().map(|s| s.method.clone()).unwrap_or_default(),
            points,
            mase: mase(&train, &actual, &column(0), period),
            coverage80: c80,
            coverage95: c95,
            series: key,
        });
    }
    if scores.is_empty() {
        return Err("the forecasts hold no rows".into());
    }
    Ok(Backtest {
        forecaster: forecaster.to_owned(),
        series: scores,
    })
}

/// The seasonal naive forecaster on the same cuts as `like` (each series' held-back periods),
/// scored the same way, with its textbook intervals.
pub fn seasonal_naive_backtest(
    history: &History,
    like: &str,
    period: usize,
) -> Result<Backtest, String> {
    let mut out = String::from("series,time,yhat,lo80,hi80,lo95,hi95\n");
    let mut periods: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for row in rows(like, &["series", "time"])? {
        let key = field(&row, 0);
        let series = history
            .find(&key)
            .ok_or_else(|| format!("the history has no series `{key}`"))?;
        let position = series.grid.stamp(&field(&row, 1))?.position;
        periods.entry(key).or_default().push(position);
    }
    for (key, mut positions) in periods {
        positions.sort_unstable();
        let series = history
            .find(&key)
            .ok_or_else(|| format!("the history has no series `{key}`"))?;
        let (Some(first), Some(last)) = (positions.first(), positions.last()) else {
            continue;
        };
        let train = values_between(series, None, *first);
        let horizon = usize::try_from(last - first + 1).unwrap_or(0);
        let points = seasonal_naive(&train, period, horizon);
        let [(lo80, hi80), (lo95, hi95)] = seasonal_naive_intervals(&train, period, &points);
        for position in &positions {
            let h = usize::try_from(position - first).unwrap_or(0);
            let at = |v: &[f64]| v.get(h).copied().unwrap_or(f64::NAN);
            let _ = writeln!(
                out,
                "{key},{},{},{},{},{},{}",
                series.grid.label(*position, series.like),
                at(&points),
                at(&lo80),
                at(&hi80),
                at(&lo95),
                at(&hi95)
            );
        }
    }
    score("seasonal naive", history, &out, period)
}

/// The series' values, one per period (NaN where missing), from its first period (or `from`)
/// up to but not including `until`.
fn values_between(series: &HistorySeries, from: Option<i64>, until: i64) -> Vec<f64> {
    let Some(start) = from.or_else(|| series.values.keys().next().copied()) else {
        return Vec::new();
    };
    (start..until)
        .map(|p| series.values.get(&p).map_or(f64::NAN, |v| v.0))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn weekly() -> History {
        // Two weeks missing (2016-01-18 as a gap, 2016-02-01 as an empty value).
        let text = "week,x\n2016-01-04,1\n2016-01-11,2\n2016-01-25,4\n2016-02-01,\n2016-02-08,6\n2016-02-15,7\n";
        let columns = Columns {
            series: None,
            time: "week".into(),
            value: "x".into(),
        };
        History::read(text, &columns, Frequency::Weekly).unwrap()
    }

    #[test]
    fn origins_cut_each_series_before_its_held_back_periods() {
        let cuts = origins(&weekly(), 2, 2, 1);
        assert_eq!(
            cuts,
            "series,time,value\n\
             @2016-02-01,2016-01-04,1\n@2016-02-01,2016-01-11,2\n@2016-02-01,2016-01-25,4\n\
             @2016-02-08,2016-01-04,1\n@2016-02-08,2016-01-11,2\n@2016-02-08,2016-01-25,4\n@2016-02-08,2016-02-01,\n"
        );
    }

    #[test]
    fn a_cut_is_scored_against_its_series_with_missing_actuals_left_out() {
        let history = weekly();
        let forecasts = "series,time,method,yhat,lo80,hi80,lo95,hi95\n\
                         @2016-02-01,2016-02-01,m,5,4,5.5,3,7\n@2016-02-01,2016-02-08,m,5,4,5.5,3,7\n";
        let backtest = score("cordon", &history, forecasts, 1).unwrap();
        let s = &backtest.series[0];
        // 2016-02-01 has no actual: one point, 6, outside the 80% interval, inside the 95%.
        assert_eq!((s.points, s.coverage80, s.coverage95), (1, 0.0, 1.0));
        // Scale: the lag-1 differences present before 2016-02-01 (1 and, across the gap,
        // none), so 1; the error is 1.
        assert!((s.mase - 1.0).abs() < 1e-12, "{}", s.mase);
        assert_eq!(s.method, "m");

        let naive = seasonal_naive_backtest(&history, forecasts, 1).unwrap();
        // Naive: the last value present, 4, for both; error 2 on the one actual.
        assert!((naive.series[0].mase - 2.0).abs() < 1e-12);
        assert_eq!(naive.forecaster, "seasonal naive");
    }
}
