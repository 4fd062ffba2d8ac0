//! Bounded: CPU, memory, wall time and wasi-nn tensors.

use cordon::RunError;
use cordon::sandbox::LimitExceeded;

use crate::support::{assert_churn_still_scores, run_probe};

#[test]
fn an_endless_loop_stops_at_the_cpu_limit() {
    let error = run_probe(
        cordon_test_guests::LIMITS_INFINITE_LOOP,
        "fuel-per-batch = 50_000_000",
    )
    .unwrap_err();
    assert!(
        matches!(error, RunError::CpuLimit { fuel: 50_000_000 }),
        "{error}"
    );
    assert!(error.to_string().contains("limits.fuel-per-batch"));
    assert_churn_still_scores();
}

#[test]
fn an_endless_loop_stops_at_the_wall_time_limit() {
    let error = run_probe(
        cordon_test_guests::LIMITS_INFINITE_LOOP,
        "fuel-per-batch = 1_000_000_000_000_000\nwall-time = \"500ms\"",
    )
    .unwrap_err();
    assert!(matches!(error, RunError::WallTime { .. }), "{error}");
    assert_churn_still_scores();
}

#[test]
fn allocating_past_the_memory_cap_stops_at_the_memory_limit() {
    let error =
        run_probe(cordon_test_guests::LIMITS_MEMORY_HOG, "memory = \"64 MiB\"").unwrap_err();
    match &error {
        RunError::Limit(LimitExceeded::Memory { limit, requested }) => {
            assert_eq!(*limit, 64 << 20);
            assert!(requested > limit);
        }
        other => panic!("expected the memory limit, got: {other}"),
    }
    assert!(error.to_string().contains("limits.memory"));
    assert_churn_still_scores();
}

/// Tensors live in host memory; the budget keeps what a guest can pile up there bounded.
#[test]
fn tensors_past_the_byte_budget_are_refused() {
    let error = run_probe(
        cordon_test_guests::LIMITS_TENSOR_HOG,
        "tensor-bytes = \"8 MiB\"\nmemory = \"512 MiB\"",
    )
    .unwrap_err();
    match &error {
        RunError::Limit(LimitExceeded::TensorBytes { budget, requested }) => {
            assert_eq!(*budget, 8 << 20);
            // Each tensor's dimension list (two u32) counts too, so the eighth 1 MiB tensor is
            // the one refused, 64 bytes past the budget: nothing beyond it was held.
            assert_eq!(*requested, 8 * ((1 << 20) + 8));
        }
        other => panic!("expected the tensor budget, got: {other}"),
    }
    assert!(error.to_string().contains("limits.tensor-bytes"));
    assert_churn_still_scores();
}
