//! Diagnostics into the host's run log and audit trail.
//!
//! The host bounds what it keeps: long messages are truncated and a run keeps a fixed number of
//! them, so a model cannot flood the consumer's logs. Never log input values: the consumer's
//! audit trail is not a way out of the sandbox for data, and the host treats it as untrusted text.

use crate::bindings::cordon::model::log::{Level, log};

pub fn debug(message: &str) {
    log(Level::Debug, message);
}

pub fn info(message: &str) {
    log(Level::Info, message);
}

pub fn warn(message: &str) {
    log(Level::Warn, message);
}

pub fn error(message: &str) {
    log(Level::Error, message);
}
