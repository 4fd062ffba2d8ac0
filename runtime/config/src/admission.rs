//! The rules a package's graphs are admitted under, as the policy sets them. The admission
//! itself reads graphs, in `cordon_sandbox::nn::graph_info`.

use std::collections::BTreeSet;

/// What graph admission (`cordon_sandbox::nn::graph_info::admit`) allows beyond the fixed checks: the operator domains of the policy's
/// `[inference] operator-domains`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionRules {
    /// Domains as `GraphInfo::domains` names them (`ai.onnx` for the default one).
    pub domains: BTreeSet<String>,
}

impl Default for AdmissionRules {
    /// The standard ONNX operators and the ONNX-ML ones, nothing else: ONNX Runtime's
    /// contrib operators (`com.microsoft`) and custom domains are more native code a graph
    /// would reach, and must be allowed by name.
    fn default() -> Self {
        Self {
            domains: ["ai.onnx", "ai.onnx.ml"].map(String::from).into(),
        }
    }
}

impl AdmissionRules {
    /// The default domains and `extra` (`""` is read as `ai.onnx`).
    pub fn with_extra_domains(extra: impl IntoIterator<Item = String>) -> Self {
        let mut rules = Self::default();
        rules.domains.extend(extra.into_iter().map(domain_name));
        rules
    }
}

/// A domain as admission names it: ONNX's default domain `""` is `ai.onnx`.
pub fn domain_name(domain: String) -> String {
    if domain.is_empty() {
        "ai.onnx".into()
    } else {
        domain
    }
}
