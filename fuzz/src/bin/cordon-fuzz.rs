//! The libFuzzer binary: one for all targets, so that the instrumented runtime is linked once.
//! The target is named by `CORDON_FUZZ_TARGET` (see `scripts/fuzz.sh`).
//!
//! Built without the `libfuzzer` feature, as every workspace build does, it only says how to
//! fuzz: compiling libFuzzer and instrumenting the runtime is left to the fuzzing script.

#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
mod fuzzing {
    use std::sync::OnceLock;

    /// The target, looked up once: the environment does not change between runs.
    fn chosen() -> cordon_fuzz::Target {
        static TARGET: OnceLock<cordon_fuzz::Target> = OnceLock::new();
        *TARGET.get_or_init(|| {
            let name = std::env::var("CORDON_FUZZ_TARGET").unwrap_or_default();
            match cordon_fuzz::target(&name) {
                Some(target) => target,
                None => {
                    let names: Vec<&str> = cordon_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
                    eprintln!(
                        "cordon-fuzz: set CORDON_FUZZ_TARGET to one of: {}",
                        names.join(", ")
                    );
                    // Not a panic: libFuzzer would record it as a crash of the target.
                    std::process::exit(2);
                }
            }
        })
    }

    libfuzzer_sys::fuzz_target!(|data: &[u8]| chosen()(data));
}

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    eprintln!(
        "cordon-fuzz: built without the `libfuzzer` feature. Run `scripts/fuzz.sh [SECONDS] [TARGET...]`; targets: {}",
        cordon_fuzz::TARGETS
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    std::process::exit(2);
}
