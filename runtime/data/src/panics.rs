//! Panics inside libraries that parse hostile bytes, caught and turned into errors.
//!
//! A damaged Parquet file can make the parquet crate (or `bytes` under it) panic on an
//! out-of-range slice. The host must not die of it, and the consumer should read a named error,
//! not a panic message and a backtrace. [`catch`] runs a closure with unwinding caught and the
//! panic hook silenced for that thread; the panic's message (bounded) becomes the error's
//! detail. Panics anywhere else still reach the previous hook as before: they are Cordon's bugs.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::Once;

/// Longest panic message kept.
const MAX_MESSAGE_BYTES: usize = 512;

thread_local! {
    /// `Some` while this thread runs inside [`catch`]; holds the last panic's message.
    static CATCHING: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

/// Runs `work`; a panic inside it is returned as `Err(message)` instead of unwinding further,
/// and prints nothing.
pub fn catch<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    let outer = CATCHING.with(|c| c.borrow_mut().replace(None));
    let result = std::panic::catch_unwind(AssertUnwindSafe(work));
    let message = CATCHING.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    result.map_err(|_| {
        message
            .flatten()
            .unwrap_or_else(|| "a panic without a message".to_string())
    })
}

/// From now on, panics on this thread print nothing: for threads whose every panic is caught
/// and reported by what runs them (the data plane's tokio workers).
pub fn silence_this_thread() {
    install_hook();
    CATCHING.with(|c| {
        let mut slot = c.borrow_mut();
        if slot.is_none() {
            *slot = Some(None);
        }
    });
}

fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let caught = CATCHING.with(|c| match c.try_borrow_mut() {
                Ok(mut slot) => match slot.as_mut() {
                    Some(message) => {
                        *message = Some(describe(info));
                        true
                    }
                    None => false,
                },
                Err(_) => false,
            });
            if !caught {
                previous(info);
            }
        }));
    });
}

fn describe(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string());
    let place = info
        .location()
        .map(|l| {
            // The crate's file, not the builder's registry path.
            let file = l.file().rsplit("/src/").next().unwrap_or(l.file());
            format!(" (in {file}:{})", l.line())
        })
        .unwrap_or_default();
    cordon_config::names::printable(&format!("{text}{place}"), MAX_MESSAGE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        let result: Result<(), String> = catch(|| {
            let slice: &[u8] = &[1, 2, 3];
            let end = std::hint::black_box(7);
            let _ = &slice[..end];
        });
        let message = result.unwrap_err();
        assert!(message.contains("out of range"), "{message}");
        assert_eq!(catch(|| 42), Ok(42));
    }
}
