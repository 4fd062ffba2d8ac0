//! Paths of the compiled test guests and example models, one constant per guest, emitted by
//! `build.rs` (the pattern of wasmtime's test-programs artifacts crate). The end-to-end tests
//! in `tests/e2e/` use them; the build fails if a guest is used by no test.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
