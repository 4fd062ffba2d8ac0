//! Coarse clocks for guests.
//!
//! A model has no reason to read time finely: rounding both clocks to [`CLOCK_RESOLUTION`] keeps
//! timestamps useful for its own diagnostics while taking away the fine timer that cache and
//! scheduling side channels are built on.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// The resolution of every clock a guest can read.
pub const CLOCK_RESOLUTION: Duration = Duration::from_millis(1);

fn round_down(duration: Duration) -> Duration {
    let step = CLOCK_RESOLUTION.as_nanos().max(1);
    let nanos = duration.as_nanos() / step * step;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

pub struct CoarseWallClock;

impl HostWallClock for CoarseWallClock {
    fn resolution(&self) -> Duration {
        CLOCK_RESOLUTION
    }

    fn now(&self) -> Duration {
        round_down(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO),
        )
    }
}

pub struct CoarseMonotonicClock {
    start: Instant,
}

impl CoarseMonotonicClock {
    pub fn new() -> Self {
        CoarseMonotonicClock {
            start: Instant::now(),
        }
    }
}

impl HostMonotonicClock for CoarseMonotonicClock {
    fn resolution(&self) -> u64 {
        u64::try_from(CLOCK_RESOLUTION.as_nanos()).unwrap_or(u64::MAX)
    }

    fn now(&self) -> u64 {
        u64::try_from(round_down(self.start.elapsed()).as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_are_rounded() {
        let step = CLOCK_RESOLUTION.as_nanos() as u64;
        assert_eq!(CoarseMonotonicClock::new().now() % step, 0);
        assert_eq!(CoarseWallClock.now().as_nanos() as u64 % step, 0);
    }
}
