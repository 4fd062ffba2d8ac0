//! The limits a guest can break, named: host functions (the linker's, wasi:nn's) trap with
//! one of these. A leaf module, so that the sandbox and the wasi:nn host both use it.

/// A limit the guest broke. Host functions trap with one of these; the run reports it by name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error(
        "memory limit: the model asked for {requested} bytes of linear memory, but the policy allows {limit} (limits.memory)"
    )]
    Memory { limit: u64, requested: u64 },
    #[error(
        "table limit: the model asked for {requested} table elements, at most {limit} are allowed"
    )]
    Table { limit: u64, requested: u64 },
    #[error(
        "wasi-nn tensor budget: the model would hold {requested} bytes of tensors, but the policy allows {budget} (limits.tensor-bytes)"
    )]
    TensorBytes { budget: u64, requested: u64 },
    #[error(
        "wasi-nn handle limit: the model holds more than {limit} tensors, graphs and errors at once"
    )]
    NnHandles { limit: usize },
    #[error(
        "wasi-nn tensor rank limit: the model made a tensor of {requested} dimensions; at most {limit} are allowed"
    )]
    TensorRank { limit: usize, requested: usize },
    #[error(
        "copy limit: the model handed the host more data in one call than its whole memory may hold (limits.memory bounds what one call may copy out of the sandbox)"
    )]
    HostCopy,
}
