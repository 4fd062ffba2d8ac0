//! The walkthrough's credit model: the applicant's columns through the package's encoder
//! `features` (exported from the fitted ColumnTransformer), then the logistic regression
//! `credit` (exported from the same pipeline) through wasi:nn; the probability of default for
//! every row, in input order.

use cordon_guest::nn;
use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo, encoders};

struct CreditModel;

impl Model for CreditModel {
    fn describe() -> ModelInfo {
        ModelInfo::new(
            "credit-model",
            env!("CARGO_PKG_VERSION"),
            "probability that an applicant defaults",
        )
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        if input.num_rows() == 0 {
            return BatchBuilder::new()
                .f64("default_probability", Vec::new())
                .build();
        }
        // The encoder is read from the package once per instance; so is the graph's session.
        let features = encoders::get("features")?.tensor(input)?;
        let outputs = nn::session("credit")?.run(vec![("features", features)])?;
        // `probabilities` is [rows, 2]: P(repaid), P(default).
        let probabilities = outputs.get("probabilities")?.to_f32()?;
        let default = probabilities
            .chunks_exact(2)
            .map(|pair| pair.get(1).copied().map_or(f64::NAN, f64::from))
            .collect::<Vec<_>>();
        if default.len() != input.num_rows() {
            return Err(ModelError::Inference(format!(
                "the graph returned {} rows for {}",
                default.len(),
                input.num_rows()
            )));
        }
        BatchBuilder::new()
            .f64("default_probability", default)
            .build()
    }
}

cordon_guest::export_model!(CreditModel);
