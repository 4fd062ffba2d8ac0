//! Tries to resolve host names. Reports what happened as the `outcome` of every row: `denied: ...` or
//! `allowed: ...`.

use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

struct Probe;

fn probe() -> String {
    use std::net::ToSocketAddrs;
    let mut found = Vec::new();
    for name in ["localhost:80", "example.com:443", "crates.io:443"] {
        if let Ok(addresses) = name.to_socket_addrs() {
            let addresses: Vec<_> = addresses.collect();
            if !addresses.is_empty() {
                found.push(format!("{name} -> {addresses:?}"));
            }
        }
    }
    if found.is_empty() {
        "denied: no name resolved".into()
    } else {
        format!("allowed: {}", found.join(", "))
    }
}

impl Model for Probe {
    fn describe() -> ModelInfo {
        ModelInfo::new("policy-dns-probe", "0.0.0", "Tries to resolve host names")
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let outcome = probe();
        BatchBuilder::new()
            .text("outcome", vec![outcome; input.num_rows()])
            .build()
    }
}

cordon_guest::export_model!(Probe);
