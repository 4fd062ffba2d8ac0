//! `cordon plot`: a forecasting model's output drawn as a PNG (the `cordon-plot` crate).

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct PlotArgs {
    /// The forecasts a run wrote: CSV with the series and time columns and yhat, lo80,
    /// hi80, lo95, hi95.
    pub forecasts: PathBuf,
    /// The history the forecasts were made from (CSV).
    #[arg(long)]
    pub history: PathBuf,
    /// The column naming the series (in both files, unless --forecast-series names the
    /// forecasts' own).
    #[arg(long)]
    pub series: String,
    /// The column holding the time label, sorted as text: `1998Q1`, ISO dates and timestamps
    /// (in both files, unless --forecast-time names the forecasts' own).
    #[arg(long)]
    pub time: String,
    /// The history's value column.
    #[arg(long)]
    pub value: String,
    /// The forecasts' series column, where it is named differently from the history's.
    #[arg(long)]
    pub forecast_series: Option<String>,
    /// The forecasts' time column, where it is named differently from the history's.
    #[arg(long)]
    pub forecast_time: Option<String>,
    /// Draw only the last N periods of the history the model saw (held-back periods of a
    /// backtest are always drawn).
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// Series per picture (at most 100); more series are split over pages written beside
    /// --out as NAME-1.png, NAME-2.png, ...
    #[arg(long, value_name = "N", default_value_t = cordon::plot::MAX_SERIES)]
    pub per_page: usize,
    /// The picture's title.
    #[arg(long, default_value = "Forecasts")]
    pub title: String,
    /// Where to write the PNG.
    #[arg(long, short)]
    pub out: PathBuf,
}

pub fn plot(args: PlotArgs) -> anyhow::Result<()> {
    let request = cordon::plot::PlotRequest {
        history: &args.history,
        forecasts: &args.forecasts,
        series: &args.series,
        time: &args.time,
        value: &args.value,
        forecast_series: args.forecast_series.as_deref(),
        forecast_time: args.forecast_time.as_deref(),
        last: args.last,
        per_page: args.per_page,
        title: &args.title,
        out: &args.out,
    };
    let summary = cordon::plot::plot(&request)?;
    for page in &summary.pages {
        println!(
            "{} ({} series, {}x{} px)",
            page.path.display(),
            page.series,
            page.width,
            page.height
        );
    }
    Ok(())
}
