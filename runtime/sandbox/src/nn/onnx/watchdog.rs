//! The watchdog that stops graphs at the run's deadline: ONNX Runtime's `Run` does not return
//! until the graph is done, so without it a graph that loops would hold the run past its
//! wall-time limit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use ort::session::RunOptions;

/// How often the watchdog looks at the runs it watches when no deadline is nearer: a graph is
/// stopped at most this late, and starting a run costs no wake-up of the watchdog (a deadline
/// is minutes away, almost always further than its next look). With nothing to watch it
/// sleeps until a run is watched.
const WATCHDOG_PERIOD: Duration = Duration::from_millis(50);

/// Stops graphs that run past their deadline: one thread for the process that, while it
/// watches runs, looks every [`WATCHDOG_PERIOD`] (or at the nearest deadline, if sooner) and
/// sets the terminate flag of every run whose deadline has passed.
pub(super) struct Watchdog {
    state: Mutex<WatchState>,
    changed: Condvar,
}

struct WatchState {
    runs: Vec<WatchedRun>,
    /// When the watchdog looks next.
    next_look: Instant,
}

struct WatchedRun {
    id: u64,
    deadline: Instant,
    options: Arc<RunOptions>,
    stopped: Arc<AtomicBool>,
}

/// A run under watch; `finish` takes it off the list and says whether it was stopped.
pub(super) struct Watch {
    id: u64,
    stopped: Arc<AtomicBool>,
}

impl Watch {
    pub(super) fn finish(self) -> bool {
        watchdog()
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .runs
            .retain(|run| run.id != self.id);
        self.stopped.load(Ordering::SeqCst)
    }
}

pub(super) fn watchdog() -> &'static Watchdog {
    static WATCHDOG: OnceLock<&'static Watchdog> = OnceLock::new();
    WATCHDOG.get_or_init(|| {
        let watchdog: &'static Watchdog = Box::leak(Box::new(Watchdog {
            state: Mutex::new(WatchState {
                runs: Vec::new(),
                next_look: Instant::now(),
            }),
            changed: Condvar::new(),
        }));
        // If the thread cannot start, no graph is stopped early: the deadline is then enforced
        // when the graph returns, as before the watchdog.
        let _ = std::thread::Builder::new()
            .name("cordon-graph-watchdog".into())
            .spawn(move || watchdog.patrol());
        watchdog
    })
}

impl Watchdog {
    pub(super) fn watch(&self, deadline: Instant, options: Arc<RunOptions>) -> Watch {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let stopped = Arc::new(AtomicBool::new(false));
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.runs.push(WatchedRun {
            id,
            deadline,
            options,
            stopped: Arc::clone(&stopped),
        });
        let sooner = deadline < state.next_look;
        drop(state);
        if sooner {
            self.changed.notify_one();
        }
        Watch { id, stopped }
    }

    fn patrol(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let now = Instant::now();
            for run in state.runs.iter().filter(|run| run.deadline <= now) {
                if !run.stopped.swap(true, Ordering::SeqCst) {
                    let _ = run.options.terminate();
                }
            }
            let nearest = state
                .runs
                .iter()
                .filter(|run| !run.stopped.load(Ordering::SeqCst))
                .map(|run| run.deadline)
                .min();
            state = match nearest {
                Some(deadline) => {
                    let next_look = deadline.min(now + WATCHDOG_PERIOD);
                    state.next_look = next_look;
                    self.changed
                        .wait_timeout(state, next_look.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                // Nothing to watch: sleep until a run is watched (its `watch` notifies, as its
                // deadline is before this far look).
                None => {
                    state.next_look = now + Duration::from_secs(365 * 24 * 3600);
                    self.changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner)
                }
            };
        }
    }
}
