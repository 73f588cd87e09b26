//! The time limits of a shutdown. On SIGTERM (or Ctrl-C) `ketang serve` must be gone within
//! [`HARD_DEADLINE`], whatever hangs: a process manager sends SIGKILL soon after (systemd's
//! default is 90 s, Kubernetes' 30 s, but an orchestrated restart should not wait that long),
//! and a killed server leaves recordings unfinalized and clients untold.
//!
//! The orderly path (`RunningServer::shutdown`) runs its steps against one [`Budget`] of
//! [`ORDERLY_BUDGET`], each step waiting at most for what is left of it. If that still does
//! not return, for instance because a shard thread is stuck in a call that never ends, the
//! [`watchdog`] ends the process at the hard deadline.

use std::time::{Duration, Instant};

/// From the signal to the end of the process, at most.
pub const HARD_DEADLINE: Duration = Duration::from_secs(10);
/// What the orderly shutdown plans with; the rest of the hard deadline is margin for the
/// runtime to wind down and the process to exit.
pub const ORDERLY_BUDGET: Duration = Duration::from_secs(8);
/// The exit status when the watchdog had to end the process (EX_SOFTWARE): the shutdown did
/// not complete, so supervisors should not read it as a clean stop.
pub const WATCHDOG_EXIT: i32 = 70;

/// Time left for the steps of a shutdown.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    end: Instant,
}

impl Budget {
    /// A budget of `total` from `now`.
    pub fn new(now: Instant, total: Duration) -> Self {
        Budget { end: now + total }
    }

    /// What is left at `now`.
    pub fn left_at(&self, now: Instant) -> Duration {
        self.end.saturating_duration_since(now)
    }

    /// What is left now.
    pub fn left(&self) -> Duration {
        self.left_at(Instant::now())
    }

    /// The time a step may take: `wanted`, or less if the budget is running out.
    pub fn step(&self, wanted: Duration) -> Duration {
        wanted.min(self.left())
    }
}

/// Starts a thread that ends the process with [`WATCHDOG_EXIT`] once `after` has passed. It is
/// only started when a shutdown begins, so it never fires on a running server.
pub fn watchdog(after: Duration) {
    let spawned = std::thread::Builder::new()
        .name("shutdown-watchdog".into())
        .spawn(move || {
            std::thread::sleep(after);
            tracing::error!(
                "shutdown did not finish within {} s; exiting now",
                after.as_secs_f32()
            );
            std::process::exit(WATCHDOG_EXIT);
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the shutdown watchdog: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_get_what_they_want_until_the_budget_runs_out() {
        let t0 = Instant::now();
        let b = Budget::new(t0, Duration::from_secs(8));
        assert_eq!(
            b.left_at(t0 + Duration::from_secs(3)),
            Duration::from_secs(5)
        );
        assert_eq!(b.left_at(t0 + Duration::from_secs(9)), Duration::ZERO);
        // `step` reads the clock; a step shorter than the budget is granted in full.
        assert_eq!(b.step(Duration::from_millis(1)), Duration::from_millis(1));
        let spent = Budget::new(t0, Duration::ZERO);
        assert_eq!(spent.step(Duration::from_secs(5)), Duration::ZERO);
    }
}
