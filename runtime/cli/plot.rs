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
    /// The column naming the series, in both files.
    #[arg(long)]
    pub series: String,
    /// The column holding the time label (sorted as text), in both files.
    #[arg(long)]
    pub time: String,
    /// The history's value column.
    #[arg(long)]
    pub value: String,
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
        title: &args.title,
        out: &args.out,
    };
    let summary = cordon::plot::plot(&request)?;
    println!(
        "{} ({} series, {}x{} px)",
        request.out.display(),
        summary.series,
        summary.width,
        summary.height
    );
    Ok(())
}
