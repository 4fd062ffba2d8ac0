//! `cordon plot`: a grid of small multiples, one panel per series, showing its history, the
//! point forecast and the 80% and 95% prediction intervals a forecasting model wrote.
//!
//! It reads two CSV files the consumer already holds: the history (the table the policy bound)
//! and the forecasts (the run's output, with `yhat`, `lo80`, `hi80`, `lo95`, `hi95`). Labels on
//! the time axis are sorted as text, which orders `1998Q1` and ISO dates and timestamps
//! correctly, and ISO labels are shortened on the axis (`2019-03` for monthly dates, `03-04
//! 13:30` for times of day). Where a forecast covers periods that are also in the history (a
//! backtest), what happened there is drawn apart from the history the model saw, so the picture
//! shows the held-back actuals inside the intervals. More series than one page holds are split
//! over several pictures. Each PNG is drawn in memory with an embedded font (no system fonts
//! needed) and written to a temporary file, then renamed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;

use cordon_package::files::write_atomically;

/// The font the labels are drawn with: DejaVu Sans Condensed cut down to ASCII (see
/// runtime/assets/README.md for its license and how it was made).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSansCondensed-subset.ttf");

/// Panels one picture may hold: beyond this it would be unreadable, so more series are split
/// over pages (`forecasts-1.png`, `forecasts-2.png`, ...).
pub const MAX_SERIES: usize = 100;

/// One panel's size in pixels.
const PANEL: (u32, u32) = (340, 210);

/// The columns of the forecast file besides the series and the time.
pub const FORECAST_COLUMNS: [&str; 5] = ["yhat", "lo80", "hi80", "lo95", "hi95"];

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{path}: cannot read it as CSV")]
    Read {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("{path}: has no column `{column}` (it has: {found})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        found: String,
    },
    #[error("{path}, line {line}: `{value}` in column `{column}` is not a number")]
    NotANumber {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
    },
    #[error("{path}: holds no rows to draw")]
    Empty { path: PathBuf },
    #[error("--per-page {per_page}: a page holds 1 to {MAX_SERIES} series")]
    PerPage { per_page: usize },
    #[error("--last 0: at least one period of history must be drawn")]
    LastZero,
    #[error("{path}: cannot write the picture: a picture split over pages needs a file name")]
    NoFileName { path: PathBuf },
    #[error("cannot draw the picture: {0}")]
    Draw(String),
    #[error("{path}: cannot write the picture")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What to draw from where.
pub struct PlotRequest<'a> {
    pub history: &'a Path,
    pub forecasts: &'a Path,
    /// The column naming the series, in the history.
    pub series: &'a str,
    /// The column holding the time label, in the history.
    pub time: &'a str,
    /// The history's value column.
    pub value: &'a str,
    /// The forecasts' series and time columns, where they are named differently from the
    /// history's (`None`: the same names).
    pub forecast_series: Option<&'a str>,
    pub forecast_time: Option<&'a str>,
    /// Draw only the last this many periods of the history the model saw (`None`: all).
    pub last: Option<usize>,
    /// Series per picture, at most [`MAX_SERIES`].
    pub per_page: usize,
    pub title: &'a str,
    pub out: &'a Path,
}

/// One picture written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub path: PathBuf,
    pub series: usize,
    pub width: u32,
    pub height: u32,
}

/// What was drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotSummary {
    pub series: usize,
    pub pages: Vec<Page>,
}

/// One forecast step: the point and its intervals.
#[derive(Debug, Clone, Copy)]
struct Step {
    yhat: f64,
    lo80: f64,
    hi80: f64,
    lo95: f64,
    hi95: f64,
}

#[derive(Debug, Default)]
struct Series {
    history: BTreeMap<String, f64>,
    forecast: BTreeMap<String, Step>,
}

/// Reads both files and writes the picture, or one picture per page of series.
pub fn plot(request: &PlotRequest) -> Result<PlotSummary, PlotError> {
    if request.per_page == 0 || request.per_page > MAX_SERIES {
        return Err(PlotError::PerPage {
            per_page: request.per_page,
        });
    }
    if request.last == Some(0) {
        return Err(PlotError::LastZero);
    }
    let mut series: BTreeMap<String, Series> = BTreeMap::new();
    read_rows(
        request.history,
        &[request.series, request.time, request.value],
        |row| {
            let (name, time, value) = (row.text(0), row.text(1), row.number(2)?);
            let entry = series.entry(name).or_default();
            entry.history.insert(time, value);
            Ok(())
        },
    )?;
    let mut columns = vec![
        request.forecast_series.unwrap_or(request.series),
        request.forecast_time.unwrap_or(request.time),
    ];
    columns.extend(FORECAST_COLUMNS);
    read_rows(request.forecasts, &columns, |row| {
        let step = Step {
            yhat: row.number(2)?,
            lo80: row.number(3)?,
            hi80: row.number(4)?,
            lo95: row.number(5)?,
            hi95: row.number(6)?,
        };
        let entry = series.entry(row.text(0)).or_default();
        entry.forecast.insert(row.text(1), step);
        Ok(())
    })?;
    if let Some(last) = request.last {
        for data in series.values_mut() {
            data.keep_last(last);
        }
    }
    let all: Vec<(&String, &Series)> = series.iter().collect();
    let chunks: Vec<&[(&String, &Series)]> = all.chunks(request.per_page).collect();
    let mut pages = Vec::with_capacity(chunks.len());
    for (index, chunk) in chunks.iter().enumerate() {
        let (path, title) = if chunks.len() == 1 {
            (request.out.to_owned(), request.title.to_owned())
        } else {
            (
                page_path(request.out, index + 1)?,
                format!("{} ({} of {})", request.title, index + 1, chunks.len()),
            )
        };
        pages.push(draw(chunk, &title, &path)?);
    }
    Ok(PlotSummary {
        series: series.len(),
        pages,
    })
}

/// `out/forecasts.png` as page 2: `out/forecasts-2.png`.
fn page_path(out: &Path, page: usize) -> Result<PathBuf, PlotError> {
    let stem = out
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| PlotError::NoFileName {
            path: out.to_owned(),
        })?;
    let name = match out.extension().and_then(|e| e.to_str()) {
        Some(extension) => format!("{stem}-{page}.{extension}"),
        None => format!("{stem}-{page}"),
    };
    Ok(out.with_file_name(name))
}

/// Points of a history: the time label and the value.
type Points<'a> = Vec<(&'a String, f64)>;

impl Series {
    /// The history before the first forecast period is what the model saw; the rest (a
    /// backtest's held-back periods) is what happened after.
    fn split_history(&self) -> (Points<'_>, Points<'_>) {
        let first_forecast = self.forecast.keys().next();
        self.history
            .iter()
            .map(|(t, v)| (t, *v))
            .partition(|(t, _)| first_forecast.is_none_or(|first| *t < first))
    }

    /// Keeps the last `last` periods of the history the model saw, and every held-back one.
    fn keep_last(&mut self, last: usize) {
        let seen = match self.forecast.keys().next() {
            Some(first) => self.history.range::<String, _>(..first.clone()).count(),
            None => self.history.len(),
        };
        let drop: Vec<String> = self
            .history
            .keys()
            .take(seen.saturating_sub(last))
            .cloned()
            .collect();
        for key in drop {
            self.history.remove(&key);
        }
    }
}

/// One CSV row with the requested columns picked out, for error messages that name the line.
struct Row<'a> {
    path: &'a Path,
    line: u64,
    columns: &'a [&'a str],
    values: Vec<&'a str>,
}

impl Row<'_> {
    fn text(&self, i: usize) -> String {
        self.values.get(i).copied().unwrap_or_default().to_owned()
    }

    fn number(&self, i: usize) -> Result<f64, PlotError> {
        let value = self.values.get(i).copied().unwrap_or_default();
        value.trim().parse().map_err(|_| PlotError::NotANumber {
            path: self.path.to_owned(),
            line: self.line,
            column: self.columns.get(i).copied().unwrap_or_default().to_owned(),
            value: value.to_owned(),
        })
    }
}

fn read_rows(
    path: &Path,
    columns: &[&str],
    mut each: impl FnMut(&Row) -> Result<(), PlotError>,
) -> Result<(), PlotError> {
    let read_error = |source| PlotError::Read {
        path: path.to_owned(),
        source,
    };
    let mut reader = csv::Reader::from_path(path).map_err(read_error)?;
    let headers = reader.headers().map_err(read_error)?.clone();
    let positions = columns
        .iter()
        .map(|column| {
            headers
                .iter()
                .position(|h| h == *column)
                .ok_or_else(|| PlotError::MissingColumn {
                    path: path.to_owned(),
                    column: (*column).to_owned(),
                    found: headers.iter().collect::<Vec<_>>().join(", "),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = 0u64;
    for record in reader.records() {
        let record = record.map_err(read_error)?;
        let row = Row {
            path,
            line: record.position().map_or(0, |p| p.line()),
            columns,
            values: positions
                .iter()
                .map(|p| record.get(*p).unwrap_or_default())
                .collect(),
        };
        each(&row)?;
        rows += 1;
    }
    if rows == 0 {
        return Err(PlotError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(())
}

fn register_font() -> Result<(), PlotError> {
    // Once per process; every later call gets the first call's outcome.
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let loaded = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if loaded {
        Ok(())
    } else {
        Err(PlotError::Draw("the embedded font does not load".into()))
    }
}

fn draw(series: &[(&String, &Series)], title_text: &str, out: &Path) -> Result<Page, PlotError> {
    register_font()?;
    let count = series.len().max(1);
    let columns = (count as f64).sqrt().ceil().max(1.0) as usize;
    let rows = count.div_ceil(columns);
    const TITLE_HEIGHT: u32 = 44;
    let width = PANEL.0 * columns as u32;
    let height = TITLE_HEIGHT + PANEL.1 * rows as u32;
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    let failed = |e: &dyn std::fmt::Display| PlotError::Draw(e.to_string());
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(&e))?;
        let (title, grid) = root.split_vertically(TITLE_HEIGHT);
        title
            .draw_text(
                title_text,
                &("sans-serif", 22).into_font().color(&BLACK),
                (12, 10),
            )
            .map_err(|e| failed(&e))?;
        let legend = "black: history   red: held back   blue: forecast, 80% and 95% intervals";
        title
            .draw_text(
                legend,
                &("sans-serif", 13).into_font().color(&RGBColor(90, 90, 90)),
                (width.saturating_sub(470) as i32, 16),
            )
            .map_err(|e| failed(&e))?;
        let panels = grid.split_evenly((rows, columns));
        for (panel, (name, data)) in panels.iter().zip(series) {
            draw_panel(panel, name, data).map_err(|e| failed(&e))?;
        }
        root.present().map_err(|e| failed(&e))?;
    }
    let mut png_bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png_bytes, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        // Mostly white with thin lines: the best compression and per-row filters make the
        // picture a fraction of its default size, for a few milliseconds more.
        encoder.set_compression(png::Compression::Best);
        encoder.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
        let mut writer = encoder.write_header().map_err(|e| failed(&e))?;
        writer.write_image_data(&pixels).map_err(|e| failed(&e))?;
    }
    write_atomically(out, &png_bytes).map_err(|source| PlotError::Write {
        path: out.to_owned(),
        source,
    })?;
    Ok(Page {
        path: out.to_owned(),
        series: series.len(),
        width,
        height,
    })
}

/// A time label as the axis shows it: ISO dates and timestamps shortened to what changes
/// within a series (`2019-03` for the first of each month, `03-04 13:30` for times of day),
/// anything else (`1998Q1`) as it is.
fn axis_label(label: &str, monthly: bool) -> String {
    let bytes = label.as_bytes();
    let is_date = bytes.len() >= 10
        && label.get(4..5) == Some("-")
        && label.get(7..8) == Some("-")
        && label
            .get(..4)
            .is_some_and(|y| y.bytes().all(|b| b.is_ascii_digit()));
    if !is_date {
        return label.to_owned();
    }
    let time = label
        .get(11..16)
        .filter(|t| t.len() == 5 && t.as_bytes().get(2) == Some(&b':'));
    match time {
        Some(time) if time != "00:00" || !label.get(11..).is_some_and(all_zero_time) => {
            format!("{} {time}", label.get(5..10).unwrap_or_default())
        }
        _ if monthly => label.get(..7).unwrap_or_default().to_owned(),
        _ => label.get(..10).unwrap_or_default().to_owned(),
    }
}

/// `00:00`, `00:00:00`, `00:00:00.000Z` and the like.
fn all_zero_time(time: &str) -> bool {
    time.chars()
        .all(|c| matches!(c, '0' | ':' | '.' | 'Z' | '+'))
}

/// Whether every label is an ISO date on the first of its month (monthly data).
fn first_of_months(labels: &[&String]) -> bool {
    !labels.is_empty()
        && labels.iter().all(|label| {
            label.get(7..10) == Some("-01")
                && label
                    .get(10..)
                    .is_none_or(|rest| rest.is_empty() || rest.get(1..).is_some_and(all_zero_time))
        })
}

fn draw_panel<DB: DrawingBackend>(
    panel: &DrawingArea<DB, plotters::coord::Shift>,
    name: &str,
    data: &Series,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    // Every label of the series, in order: the x axis is their position.
    let labels: Vec<&String> = data
        .history
        .keys()
        .chain(data.forecast.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let x_of: BTreeMap<&String, f64> = labels
        .iter()
        .enumerate()
        .map(|(i, label)| (*label, i as f64))
        .collect();
    let x = |label: &String| x_of.get(label).copied().unwrap_or(0.0);
    let values = data.history.values().copied().chain(
        data.forecast
            .values()
            .flat_map(|s| [s.lo95, s.hi95, s.yhat]),
    );
    let (low, high) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let (low, high) = if low.is_finite() && high > low {
        let pad = (high - low) * 0.05;
        (low - pad, high + pad)
    } else {
        (0.0, 1.0)
    };
    let last_x = labels.len().saturating_sub(1).max(1) as f64;

    let mut chart = ChartBuilder::on(panel)
        .caption(name, ("sans-serif", 15))
        .margin(6)
        .x_label_area_size(20)
        .y_label_area_size(42)
        .build_cartesian_2d(0.0..last_x, low..high)?;
    let monthly = first_of_months(&labels);
    let label_at = |value: &f64| -> String {
        labels
            .get(value.round().max(0.0) as usize)
            .map(|l| axis_label(l, monthly))
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(3)
        .y_labels(4)
        .x_label_formatter(&label_at)
        .y_label_formatter(&|v| format!("{v:.1}"))
        .label_style(("sans-serif", 11))
        .draw()?;

    let band = |lo: fn(&Step) -> f64, hi: fn(&Step) -> f64| -> Vec<(f64, f64)> {
        let upper = data.forecast.iter().map(|(t, s)| (x(t), hi(s)));
        let lower = data.forecast.iter().rev().map(|(t, s)| (x(t), lo(s)));
        upper.chain(lower).collect()
    };
    if !data.forecast.is_empty() {
        let blue = RGBColor(31, 101, 180);
        chart.draw_series(std::iter::once(Polygon::new(
            band(|s| s.lo95, |s| s.hi95),
            blue.mix(0.15).filled(),
        )))?;
        chart.draw_series(std::iter::once(Polygon::new(
            band(|s| s.lo80, |s| s.hi80),
            blue.mix(0.3).filled(),
        )))?;
        chart.draw_series(LineSeries::new(
            data.forecast.iter().map(|(t, s)| (x(t), s.yhat)),
            blue.stroke_width(2),
        ))?;
    }
    let (seen, held_back) = data.split_history();
    chart.draw_series(LineSeries::new(
        seen.iter().map(|(t, v)| (x(t), *v)),
        BLACK.stroke_width(1),
    ))?;
    if !held_back.is_empty() {
        let red = RGBColor(200, 40, 40);
        chart.draw_series(LineSeries::new(
            held_back.iter().map(|(t, v)| (x(t), *v)),
            red.stroke_width(1),
        ))?;
        chart.draw_series(
            held_back
                .iter()
                .map(|(t, v)| Circle::new((x(t), *v), 2, red.filled())),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_labels_are_shortened_for_the_axis() {
        assert_eq!(axis_label("1998Q1", false), "1998Q1");
        assert_eq!(axis_label("2019-03-01", true), "2019-03");
        assert_eq!(axis_label("2019-03-04", false), "2019-03-04");
        assert_eq!(axis_label("2019-03-04T13:30:00", false), "03-04 13:30");
        assert_eq!(axis_label("2019-03-04 00:00:00", false), "2019-03-04");
        let months = ["2019-01-01".to_owned(), "2019-02-01T00:00:00".to_owned()];
        assert!(first_of_months(&months.iter().collect::<Vec<_>>()));
        let days = ["2019-01-01".to_owned(), "2019-01-02".to_owned()];
        assert!(!first_of_months(&days.iter().collect::<Vec<_>>()));
    }

    #[test]
    fn the_history_splits_at_the_first_forecast_and_keeps_its_last_periods() {
        let mut series = Series::default();
        for (t, v) in [("2001", 1.0), ("2002", 2.0), ("2003", 3.0), ("2004", 4.0)] {
            series.history.insert(t.to_owned(), v);
        }
        let step = Step {
            yhat: 0.0,
            lo80: 0.0,
            hi80: 0.0,
            lo95: 0.0,
            hi95: 0.0,
        };
        series.forecast.insert("2004".to_owned(), step);
        series.forecast.insert("2005".to_owned(), step);
        let (seen, held_back) = series.split_history();
        assert_eq!(seen.len(), 3);
        assert_eq!(held_back.len(), 1);
        series.keep_last(2);
        let kept: Vec<&String> = series.history.keys().collect();
        assert_eq!(kept, ["2002", "2003", "2004"]);
    }

    #[test]
    fn pages_are_numbered_beside_the_file() {
        assert_eq!(
            page_path(Path::new("out/f.png"), 2).unwrap(),
            PathBuf::from("out/f-2.png")
        );
    }
}
