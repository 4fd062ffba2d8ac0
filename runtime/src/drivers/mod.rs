//! The ways of calling a model. Each driver is thin: it moves rows between where they come
//! from and where they go, and leaves preparation ([`crate::prepare`]), scoring
//! ([`crate::scorer`]) and recording ([`crate::record`]) to the parts every driver shares.
//!
//! - [`batch`]: `cordon run`, a bound table in, a sink file out, in parallel instances.

pub mod batch;
