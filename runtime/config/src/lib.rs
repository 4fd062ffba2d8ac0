//! Cordon's configuration: what a provider's manifest requests, what a consumer's policy
//! allows, and the grant that intersects them. Strict parsing, then resolution; every error
//! names the file, line and key at fault.

pub mod admission;
pub mod encoders;
pub mod grant;
pub mod keys;
pub mod manifest;
pub mod names;
pub mod policy;
pub mod settings;
pub mod units;
