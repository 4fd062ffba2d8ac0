//! Backtest tools for the forecast example, native only:
//!
//! ```text
//! forecast-accuracy score <history.csv> --time T --value V [--series S] [--frequency F]
//!     [--period P] [--per-series] NAME=<forecasts.csv>...
//! forecast-accuracy origins <history.csv> --time T --value V [--series S] [--frequency F]
//!     --horizon H --origins N --every E
//! forecast-accuracy native <input.csv> --time T --value V [--series S] [--frequency F]
//!     [--period P] --horizon H
//! ```
//!
//! `score` prints a table of MASE and 80%/95% interval coverage per forecaster (each `NAME=`
//! file, and the seasonal naive forecast on the same held-back periods), and with
//! `--per-series` one line per series of the first. `origins` writes the history cut at N
//! origins per series, E periods apart, as the input of a rolling backtest (series `S@P` is
//! `S` cut before period `P`). `native` forecasts every series of a table with the model's own
//! code outside the sandbox, for tuning it (the autoregression's graph runs only in the
//! sandbox, so it is left out: exact for periods above 8, where the model leaves it out too).

use std::process::ExitCode;

use forecast_model::backtest::{self, Columns, History};
use forecast_model::time::Frequency;

const USAGE: &str = "usage: forecast-accuracy score <history.csv> --time T --value V [--series S] [--frequency F] [--period P] [--per-series] NAME=<forecasts.csv>...\n       forecast-accuracy origins <history.csv> --time T --value V [--series S] [--frequency F] --horizon H --origins N --every E\n       forecast-accuracy native <input.csv> --time T --value V [--series S] [--frequency F] [--period P] --horizon H";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<String, String> {
    let (command, rest) = args.split_first().ok_or("no command")?;
    let mut options = Options::default();
    let mut files: Vec<(String, String)> = Vec::new();
    let mut history_path = None;
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        let mut value = |name: &str| {
            rest.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--time" => options.time = Some(value(arg)?),
            "--value" => options.value = Some(value(arg)?),
            "--series" => options.series = Some(value(arg)?),
            "--frequency" => options.frequency = Some(value(arg)?),
            "--period" => options.period = Some(number(&value(arg)?)?),
            "--horizon" => options.horizon = Some(number(&value(arg)?)?),
            "--origins" => options.origins = Some(number(&value(arg)?)?),
            "--every" => options.every = Some(number(&value(arg)?)?),
            "--per-series" => options.per_series = true,
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            named if named.contains('=') => {
                let (name, path) = named.split_once('=').unwrap_or_default();
                files.push((name.to_owned(), path.to_owned()));
            }
            path if history_path.is_none() => history_path = Some(path.to_owned()),
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    let history_path = history_path.ok_or("no history file")?;
    let frequency = match options.frequency.as_deref() {
        None => Frequency::Quarterly,
        Some(name) => Frequency::from_name(name).ok_or_else(|| format!("no frequency `{name}`"))?,
    };
    let columns = Columns {
        series: options.series.clone(),
        time: options.time.clone().ok_or("--time is needed")?,
        value: options.value.clone().ok_or("--value is needed")?,
    };
    let history = History::read(&read(&history_path)?, &columns, frequency)
        .map_err(|e| format!("{history_path}: {e}"))?;
    let period = options
        .period
        .filter(|p| *p > 0)
        .unwrap_or(frequency.natural_period());
    match command.as_str() {
        "score" => {
            let ((_, first_path), _) = files.split_first().ok_or("no NAME=forecasts.csv")?;
            let mut backtests = Vec::new();
            for (name, path) in &files {
                let backtest = backtest::score(name, &history, &read(path)?, period)
                    .map_err(|e| format!("{path}: {e}"))?;
                backtests.push(backtest);
            }
            backtests.push(backtest::seasonal_naive_backtest(
                &history,
                &read(first_path)?,
                period,
            )?);
            let mut out = backtest::summary(&backtests);
            if options.per_series
                && let Some(first) = backtests.first()
            {
                out.push('\n');
                out.push_str(&first.markdown());
            }
            Ok(out)
        }
        "origins" => Ok(backtest::origins(
            &history,
            options.horizon.ok_or("--horizon is needed")?,
            options.origins.ok_or("--origins is needed")?,
            options.every.ok_or("--every is needed")?,
        )),
        "native" => backtest::forecast_natively(
            &history,
            period,
            options.horizon.ok_or("--horizon is needed")?,
        ),
        other => Err(format!("unknown command {other}")),
    }
}

#[derive(Default)]
struct Options {
    time: Option<String>,
    value: Option<String>,
    series: Option<String>,
    frequency: Option<String>,
    period: Option<usize>,
    horizon: Option<usize>,
    origins: Option<usize>,
    every: Option<usize>,
    per_series: bool,
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

fn number(text: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not a whole number"))
}
