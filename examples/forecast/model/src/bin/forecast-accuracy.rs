//! Scores a backtest run: `forecast-accuracy <history.csv> <forecasts.csv>` prints the table of
//! MASE (against the seasonal naive forecast's in-sample error) and interval coverage per
//! series that the example's README shows. Native only; the forecasts come from `cordon run`
//! under policies/forecast-backtest.toml, which hides the last 8 quarters from the model.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [history, forecasts] = args.as_slice() else {
        eprintln!("usage: forecast-accuracy <history.csv> <forecasts.csv>");
        return ExitCode::from(2);
    };
    let read = |path: &str| std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"));
    let result = read(history)
        .and_then(|h| read(forecasts).map(|f| (h, f)))
        .and_then(|(h, f)| forecast_model::backtest::score(&h, &f, "region"));
    match result {
        Ok(backtest) => {
            print!("{}", backtest.markdown());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}
