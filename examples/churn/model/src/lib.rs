//! A provider's Telco churn model, as it ships inside a Cordon package.
//!
//! Per batch: encode the granted columns into features (in Rust, inside the sandbox), run the
//! gradient-boosted graph `churn_gbt` through wasi:nn on the host, and return the probability of
//! churn for every row, in input order. The model never sees the customer id: the host keeps it
//! outside the sandbox and re-attaches it to the output.

pub mod features;

use cordon_guest::nn::{self, Tensor};
use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

/// The graph's name in the package manifest (`[[graph]] name`).
const GRAPH: &str = "churn_gbt";

struct ChurnModel;

impl Model for ChurnModel {
    fn describe() -> ModelInfo {
        ModelInfo::new(
            "telco-churn",
            env!("CARGO_PKG_VERSION"),
            "probability that a telco customer churns, from contract, billing and services",
        )
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let rows = input.num_rows();
        if rows == 0 {
            return BatchBuilder::new()
                .f64("churn_probability", Vec::new())
                .build();
        }
        let features = features::encode_batch(input)?;
        let dimensions = [
            u32::try_from(rows).map_err(|_| ModelError::InvalidInput("batch too long".into()))?,
            features::FEATURE_COUNT as u32,
        ];
        let session = nn::session(GRAPH)?;
        let outputs = session.run(vec![("features", Tensor::from_f32(&dimensions, &features))])?;
        // `probabilities` is [rows, 2]: P(stay), P(churn).
        let probabilities = outputs.get("probabilities")?.to_f32()?;
        if probabilities.len() != rows * 2 {
            return Err(ModelError::Inference(format!(
                "the graph returned {} probabilities for {rows} rows",
                probabilities.len()
            )));
        }
        let churn = probabilities
            .chunks_exact(2)
            .map(|pair| pair.get(1).copied().map_or(f64::NAN, f64::from))
            .collect();
        BatchBuilder::new().f64("churn_probability", churn).build()
    }
}

cordon_guest::export_model!(ChurnModel);
