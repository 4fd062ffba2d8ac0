//! wasi:nn element types: sends a [2, 3] tensor of each type wasi:nn names through the
//! `identity` graph (tests/fixtures/identity_all_types.onnx) and checks the same bytes, shape
//! and type come back; then sends a tensor whose data is too short and one with an unknown
//! input name, which must come back as wasi:nn errors, not traps.

use cordon_guest::nn::{ElementType, Session, Tensor};
use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

struct AllTypes;

const TYPES: [(&str, ElementType); 7] = [
    ("f16", ElementType::F16),
    ("f32", ElementType::F32),
    ("f64", ElementType::F64),
    ("bf16", ElementType::BF16),
    ("u8", ElementType::U8),
    ("i32", ElementType::I32),
    ("i64", ElementType::I64),
];

fn pattern(element: ElementType, seed: u8) -> Vec<u8> {
    // Distinct, non-NaN bytes: small values in every byte position.
    (0..6 * element.size())
        .map(|i| {
            ((i % element.size()) as u8)
                .wrapping_mul(3)
                .wrapping_add(seed)
                & 0x3f
        })
        .collect()
}

fn round_trip(session: &Session) -> Result<Vec<String>, String> {
    let names: Vec<String> = TYPES.iter().map(|(name, _)| format!("in_{name}")).collect();
    let inputs = TYPES
        .iter()
        .zip(&names)
        .enumerate()
        .map(|(seed, ((_, element), input))| {
            let bytes = pattern(*element, seed as u8);
            (input.as_str(), Tensor::from_bytes(&[2, 3], *element, bytes))
        })
        .collect();
    let outputs = session.run(inputs).map_err(|e| e.to_string())?;
    let mut report = Vec::new();
    for (seed, (name, element)) in TYPES.iter().enumerate() {
        let tensor = outputs
            .get(&format!("out_{name}"))
            .map_err(|e| e.to_string())?;
        let same = tensor.bytes() == pattern(*element, seed as u8)
            && tensor.dimensions() == [2, 3]
            && tensor.element_type() == *element;
        report.push(format!(
            "{name} {}",
            if same { "same" } else { "different" }
        ));
    }
    Ok(report)
}

impl Model for AllTypes {
    fn describe() -> ModelInfo {
        ModelInfo::new("nn-all-types", "0.0.0", "round-trips every tensor type")
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let session = Session::load("identity")?;
        let mut report = round_trip(&session).unwrap_or_else(|e| vec![format!("failed: {e}")]);
        let short = Tensor::from_bytes(&[2, 3], ElementType::F32, vec![0; 20]);
        report.push(match session.run(vec![("in_f32", short)]) {
            Ok(_) => "short data -> accepted".into(),
            Err(error) => format!("short data -> {}: {}", error.code, error.message),
        });
        let stray = Tensor::from_f32(&[2, 3], &[0.0; 6]);
        report.push(match session.run(vec![("no_such_input", stray)]) {
            Ok(_) => "unknown input -> accepted".into(),
            Err(error) => format!("unknown input -> {}: {}", error.code, error.message),
        });
        BatchBuilder::new()
            .text("outcome", vec![report.join(" | "); input.num_rows()])
            .build()
    }
}

cordon_guest::export_model!(AllTypes);
