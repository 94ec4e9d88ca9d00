//! The host's watch on L1: L1's `/init` prints a [`BEAT`] line on COM2
//! every [`BEAT_PERIOD_S`] from a shell loop, which needs L1's timer
//! interrupts and scheduler. When the beats stop, L1 has stopped making
//! progress (seen: its one vCPU stuck while an L2 ktstr-vmm guest boots,
//! where none of L1's own timeouts fire), and the host says so instead of
//! waiting out the tier's deadline.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::init_script::BEAT_PERIOD_S;
use crate::markers::BEAT;

/// No beat for this long means L1 is stuck: many periods, so a loaded host
/// (TCG slowed, L1 starved for a while) is not taken for a stall.
pub const STALL_AFTER: Duration = Duration::from_secs(24 * BEAT_PERIOD_S as u64);

/// The last beat: when the host saw it and L1's uptime it carried.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    last: Arc<Mutex<Beat>>,
}

#[derive(Clone, Debug)]
struct Beat {
    at: Instant,
    uptime: Option<String>,
}

impl Heartbeat {
    /// Counting from now (L1 boots before its first beat).
    pub fn new() -> Self {
        Heartbeat {
            last: Arc::new(Mutex::new(Beat {
                at: Instant::now(),
                uptime: None,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Beat> {
        // A poisoned lock only means a writer panicked between two plain stores.
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long since the last beat (or since [`Heartbeat::new`]).
    pub fn silent_for(&self) -> Duration {
        self.lock().at.elapsed()
    }

    /// L1's uptime at its last beat, if there was one.
    pub fn last_uptime(&self) -> Option<String> {
        self.lock().uptime.clone()
    }

    /// Takes one COM2 line: a [`BEAT`] line resets the silence.
    pub fn feed(&self, line: &str) {
        if let Some(uptime) = line.trim().strip_prefix(BEAT) {
            *self.lock() = Beat {
                at: Instant::now(),
                uptime: Some(uptime.trim().to_owned()),
            };
        }
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::new()
    }
}

/// What the host saw when L1 stopped beating.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stall {
    /// Seconds without a beat when the host gave up.
    pub silent_s: u64,
    /// L1's uptime at its last beat.
    pub last_uptime: Option<String>,
    /// QEMU's view of L1's vCPU and local APIC (HMP `info registers`,
    /// twice a second apart, and `info lapic`), for the post-mortem.
    pub diagnostics: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beats_reset_the_silence_and_other_lines_do_not() {
        let h = Heartbeat::new();
        std::thread::sleep(Duration::from_millis(20));
        h.feed("noise");
        assert!(h.silent_for() >= Duration::from_millis(20));
        assert_eq!(h.last_uptime(), None);
        h.feed("NESTED-BEAT 12.34");
        assert!(h.silent_for() < Duration::from_millis(20));
        assert_eq!(h.last_uptime().as_deref(), Some("12.34"));
    }
}
