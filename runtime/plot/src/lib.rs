//! `cordon plot`: a grid of small multiples, one panel per series, showing its history, the
//! point forecast and the 80% and 95% prediction intervals a forecasting model wrote.
//!
//! It reads two CSV files the consumer already holds: the history (the table the policy bound)
//! and the forecasts (the run's output, with `yhat`, `lo80`, `hi80`, `lo95`, `hi95`). Labels on
//! the time axis are sorted as text, which orders `1998Q1` and ISO dates correctly; where a
//! forecast covers quarters that are also in the history (a backtest), both are drawn, so the
//! picture shows what really happened inside the intervals. The PNG is drawn in memory with
//! an embedded font (no system fonts needed) and written to a temporary file, then renamed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;

use cordon_package::files::write_atomically;

/// The font the labels are drawn with: DejaVu Sans Condensed cut down to ASCII (see
/// runtime/assets/README.md for its license and how it was made).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSansCondensed-subset.ttf");

/// Panels a picture may hold: beyond this it would be unreadable.
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
    #[error("{count} series are too many for one picture (at most {MAX_SERIES})")]
    TooManySeries { count: usize },
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
    /// The column naming the series, in both files.
    pub series: &'a str,
    /// The column holding the time label, in both files.
    pub time: &'a str,
    /// The history's value column.
    pub value: &'a str,
    pub title: &'a str,
    pub out: &'a Path,
}

/// What was drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotSummary {
    pub series: usize,
    pub width: u32,
    pub height: u32,
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

/// Reads both files and writes the picture.
pub fn plot(request: &PlotRequest) -> Result<PlotSummary, PlotError> {
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
    let mut columns = vec![request.series, request.time];
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
    if series.len() > MAX_SERIES {
        return Err(PlotError::TooManySeries {
            count: series.len(),
        });
    }
    draw(&series, request)
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

fn draw(
    series: &BTreeMap<String, Series>,
    request: &PlotRequest,
) -> Result<PlotSummary, PlotError> {
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
                request.title,
                &("sans-serif", 22).into_font().color(&BLACK),
                (12, 10),
            )
            .map_err(|e| failed(&e))?;
        let legend = "black: history   blue: forecast   shaded: 80% and 95% intervals";
        title
            .draw_text(
                legend,
                &("sans-serif", 13).into_font().color(&RGBColor(90, 90, 90)),
                (width.saturating_sub(420) as i32, 16),
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
    write_atomically(request.out, &png_bytes).map_err(|source| PlotError::Write {
        path: request.out.to_owned(),
        source,
    })?;
    Ok(PlotSummary {
        series: series.len(),
        width,
        height,
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
    let label_at = |value: &f64| -> String {
        labels
            .get(value.round().max(0.0) as usize)
            .map(|l| l.to_string())
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
    chart.draw_series(LineSeries::new(
        data.history.iter().map(|(t, v)| (x(t), *v)),
        BLACK.stroke_width(1),
    ))?;
    Ok(())
}
