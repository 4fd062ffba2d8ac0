//! The host functions called directly, without wasm (no ONNX Runtime needed).
use super::*;
use cordon_contract::bindings::wasi::nn::tensor::HostTensor;
use cordon_contract::bindings::wasi::nn::{errors::HostError, graph::Host as GraphHost};

fn state(budget: u64) -> NnState {
    NnState::new(Arc::new(GraphRegistry::new()), None, budget)
}

#[test]
fn tensors_past_the_budget_trap_and_drops_give_bytes_back() {
    let mut nn = state(100);
    let first = nn
        .new(vec![10], tensor::TensorType::Fp64, vec![0; 80])
        .unwrap();
    let error = nn
        .new(vec![4], tensor::TensorType::Fp64, vec![0; 32])
        .unwrap_err();
    let limit = error.downcast_ref::<LimitExceeded>().unwrap();
    assert!(matches!(
        limit,
        LimitExceeded::TensorBytes { budget: 100, .. }
    ));
    HostTensor::drop(&mut nn, first).unwrap();
    assert_eq!(nn.tensor_bytes(), 0);
    nn.new(vec![4], tensor::TensorType::Fp64, vec![0; 32])
        .unwrap();
}

#[test]
fn wrong_lengths_and_overflow_are_caught() {
    let short = Tensor {
        dimensions: vec![2, 3],
        ty: ElementType::F32,
        data: vec![0; 20],
    };
    assert!(short.check().unwrap_err().contains("need 24"));
    let huge = Tensor {
        dimensions: vec![u32::MAX, u32::MAX, u32::MAX],
        ty: ElementType::I64,
        data: vec![],
    };
    assert!(huge.check().unwrap_err().contains("overflow"));
}

#[test]
fn guest_graph_bytes_are_refused_by_default_and_unknown_names_listed() {
    let mut nn = state(1000);
    let refused = nn
        .load(
            vec![vec![1, 2, 3]],
            graph::GraphEncoding::Onnx,
            graph::ExecutionTarget::Cpu,
        )
        .unwrap()
        .unwrap_err();
    assert_eq!(nn.code(refused).unwrap(), errors::ErrorCode::Security);
    let missing = nn.load_by_name("nope".into()).unwrap().unwrap_err();
    let message = HostError::data(&mut nn, missing).unwrap();
    assert!(message.contains("declares no graph `nope`"), "{message}");
    assert_eq!(nn.stats.incidents.len(), 2);
}

#[test]
fn huge_guest_names_are_not_kept_or_repeated() {
    // A guest asking for 100 graphs with 32 MiB names each once made the host keep (and
    // print) every name whole.
    let mut nn = state(1000);
    let name = "n".repeat(32 << 20);
    for _ in 0..100 {
        let missing = nn.load_by_name(name.clone()).unwrap().unwrap_err();
        let message = HostError::data(&mut nn, missing).unwrap();
        assert!(
            message.len() <= MAX_ERROR_TEXT_BYTES + 4,
            "{}",
            message.len()
        );
    }
    let kept: usize = nn.stats.incidents.iter().map(String::len).sum();
    assert!(
        kept <= MAX_INCIDENTS * 600,
        "{kept} bytes of incidents kept"
    );
    // Too many dimensions trap, naming the limit.
    let error = nn
        .new(
            vec![1; MAX_TENSOR_RANK + 1],
            tensor::TensorType::U8,
            vec![0],
        )
        .unwrap_err();
    assert!(matches!(
        error.downcast_ref::<LimitExceeded>(),
        Some(LimitExceeded::TensorRank { .. })
    ));
}

#[test]
fn handle_count_is_bounded() {
    let mut nn = state(u64::MAX);
    for _ in 0..MAX_NN_HANDLES {
        nn.new(vec![0], tensor::TensorType::U8, vec![]).unwrap();
    }
    let error = nn.new(vec![0], tensor::TensorType::U8, vec![]).unwrap_err();
    assert!(error.downcast_ref::<LimitExceeded>().is_some());
}
