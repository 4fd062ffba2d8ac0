//! Coarse clocks for guests, and sleeps that end by the run's deadline.
//!
//! A model has no reason to read time finely: rounding both clocks to [`CLOCK_RESOLUTION`] keeps
//! timestamps useful for its own diagnostics while taking away the fine timer that cache and
//! scheduling side channels are built on.
//!
//! A guest that sleeps (`std::thread::sleep`, a poll with a timeout) waits inside a host call,
//! where epoch interruption cannot stop it. So the monotonic clock's subscriptions are replaced
//! by ones that wake no later than the run's deadline; the guest then runs on into the epoch
//! check, which ends the run with the wall-time error.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::{DynPollable, Pollable};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

use super::GuestState;

/// The monotonic clock interface as wasmtime-wasi defines it (a guest's older 0.2.x import
/// resolves to it).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// A sleep that ends at `until`.
struct DeadlineSleep {
    until: tokio::time::Instant,
}

#[async_trait::async_trait]
impl Pollable for DeadlineSleep {
    async fn ready(&mut self) {
        tokio::time::sleep_until(self.until).await;
    }
}

/// A pollable that is ready after `duration`, or at the run's deadline if that comes first.
fn subscribe_until_deadline(
    state: &mut GuestState,
    duration: Duration,
) -> wasmtime::Result<Resource<DynPollable>> {
    let now = Instant::now();
    let wake = now
        .checked_add(duration)
        .map_or(state.deadline(), |wake| wake.min(state.deadline()));
    let until = tokio::time::Instant::now() + wake.saturating_duration_since(now);
    let sleep = state.wasi_table.push(DeadlineSleep { until })?;
    wasmtime_wasi::p2::subscribe(&mut state.wasi_table, sleep)
}

/// Redefines the monotonic clock's `subscribe-duration` and `subscribe-instant` (the linker
/// must allow shadowing); `now` and `resolution` stay wasmtime-wasi's, on the coarse clock.
pub fn add_deadline_subscriptions(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store: wasmtime::StoreContextMut<'_, GuestState>, (nanos,): (u64,)| {
            subscribe_until_deadline(store.data_mut(), Duration::from_nanos(nanos))
                .map(|pollable| (pollable,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store: wasmtime::StoreContextMut<'_, GuestState>, (when,): (u64,)| {
            let state = store.data_mut();
            let now = state.monotonic_now();
            subscribe_until_deadline(state, Duration::from_nanos(when.saturating_sub(now)))
                .map(|pollable| (pollable,))
        },
    )?;
    Ok(())
}

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

#[derive(Clone)]
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
