//! `cordon:model/log`: bounded diagnostics from the guest.

use cordon_config::names::printable as sanitize;
use cordon_contract::bindings::cordon::model::log::{Host, Level};

/// Most log records one instance keeps; later ones are counted and dropped, so a model cannot
/// flood the consumer's logs or host memory.
pub const MAX_LOG_RECORDS: usize = 100;

/// Longest message kept; longer ones are cut.
pub const MAX_LOG_MESSAGE_BYTES: usize = 1024;

#[derive(Debug, Clone, serde::Serialize)]
pub struct LogRecord {
    pub level: &'static str,
    /// Escaped: control characters cannot reach a terminal or break a log line.
    pub message: String,
}

#[derive(Debug, Default)]
pub struct GuestLog {
    pub records: Vec<LogRecord>,
    pub dropped: u64,
}

impl GuestLog {
    fn push(&mut self, level: &'static str, message: &str) {
        if self.records.len() >= MAX_LOG_RECORDS {
            self.dropped += 1;
            return;
        }
        self.records.push(LogRecord {
            level,
            message: sanitize(message, MAX_LOG_MESSAGE_BYTES),
        });
    }
}

impl Host for GuestLog {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.push(level, &message);
        Ok(())
    }
}

/// The same log for a model of an earlier contract, whose interface has its own name and
/// (identical) types.
macro_rules! earlier_contract_log {
    ($bindings:ident) => {
        impl cordon_contract::$bindings::cordon::model::log::Host for GuestLog {
            fn log(
                &mut self,
                level: cordon_contract::$bindings::cordon::model::log::Level,
                message: String,
            ) -> wasmtime::Result<()> {
                use cordon_contract::$bindings::cordon::model::log::Level as Old;
                let level = match level {
                    Old::Debug => "debug",
                    Old::Info => "info",
                    Old::Warn => "warn",
                    Old::Error => "error",
                };
                self.push(level, &message);
                Ok(())
            }
        }
    };
}

earlier_contract_log!(bindings_0_3);
earlier_contract_log!(bindings_0_2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_bounded_and_escaped() {
        let mut log = GuestLog::default();
        for _ in 0..MAX_LOG_RECORDS + 5 {
            log.log(Level::Info, "x\u{1b}[2J".repeat(1000)).unwrap();
        }
        assert_eq!(log.records.len(), MAX_LOG_RECORDS);
        assert_eq!(log.dropped, 5);
        let first = &log.records[0].message;
        assert!(!first.contains('\u{1b}'));
        assert!(first.len() <= MAX_LOG_MESSAGE_BYTES + 4);
    }
}
