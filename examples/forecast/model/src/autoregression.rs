//! The second method: a linear autoregression over the last [`LAGS`] values, trained by the
//! provider (`training/train.py`) and shipped as an ONNX graph that runs on the host through
//! wasi:nn. The graph scales each window by its own mean, so one set of weights fits regions
//! of any size; multi-step forecasts feed each prediction back in as the newest lag.

/// How many past values the graph reads.
pub const LAGS: usize = 8;

/// One step ahead for many windows at once: `windows` holds `rows` windows of [`LAGS`]
/// values, oldest first; the result holds one prediction per window. The guest implements it
/// with the wasi:nn graph; tests with plain arithmetic.
pub trait OneStep {
    fn predict(&self, windows: &[f32], rows: usize) -> Result<Vec<f32>, String>;
}

/// Recursive forecasts of 1..=`horizon` steps after each window (each [`LAGS`] long): one
/// graph call per step for all windows together.
pub fn forecast_paths(
    model: &dyn OneStep,
    windows: &[Vec<f64>],
    horizon: usize,
) -> Result<Vec<Vec<f64>>, String> {
    let rows = windows.len();
    let mut current: Vec<Vec<f64>> = windows.to_vec();
    let mut paths = vec![Vec::with_capacity(horizon); rows];
    if rows == 0 {
        return Ok(paths);
    }
    for _ in 0..horizon {
        let flat: Vec<f32> = current
            .iter()
            .flat_map(|window| window.iter().map(|v| *v as f32))
            .collect();
        let next = model.predict(&flat, rows)?;
        if next.len() != rows {
            return Err(format!(
                "the autoregression returned {} values for {rows} windows",
                next.len()
            ));
        }
        for ((window, path), value) in current.iter_mut().zip(&mut paths).zip(next) {
            let value = f64::from(value);
            path.push(value);
            window.remove(0);
            window.push(value);
        }
    }
    Ok(paths)
}

/// Windows ending at each origin from `LAGS - 1` to the last observation, oldest first.
pub fn windows(y: &[f64]) -> Vec<Vec<f64>> {
    y.windows(LAGS).map(<[f64]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Predicts the value four steps back (a seasonal naive forecast), as a linear AR would
    /// with weight 1 on lag 4.
    struct SeasonalNaive;

    impl OneStep for SeasonalNaive {
        fn predict(&self, windows: &[f32], rows: usize) -> Result<Vec<f32>, String> {
            Ok(windows
                .chunks(LAGS)
                .take(rows)
                .map(|w| w[LAGS - 4])
                .collect())
        }
    }

    #[test]
    fn paths_feed_predictions_back() {
        let y: Vec<f64> = (1..=10).map(f64::from).collect();
        let all = windows(&y);
        assert_eq!(all.len(), 3);
        assert_eq!(all[2], [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
        let paths = forecast_paths(&SeasonalNaive, &all[2..], 6).unwrap();
        // 7, 8, 9, 10 repeat: the fifth step reads the first prediction back.
        assert_eq!(paths[0], [7.0, 8.0, 9.0, 10.0, 7.0, 8.0]);
    }
}
