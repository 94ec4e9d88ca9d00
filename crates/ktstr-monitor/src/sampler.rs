//! A thread that samples at a fixed period until stopped. It only reads
//! guest memory: the vCPUs never pause for it.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{GuestMemoryReader, Monitor, Sample};

/// The default sampling period.
pub const DEFAULT_PERIOD: Duration = Duration::from_millis(100);

/// What a sampler thread collected.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Recording {
    pub samples: Vec<Sample>,
    /// CPU readings dropped as unreadable or torn, over all samples.
    pub torn: u64,
}

impl Recording {
    /// Appends `s`, first dropping CPUs whose clock ran backwards.
    pub fn push(&mut self, mut s: Sample) {
        if let Some(prev) = self.samples.last() {
            s.drop_backwards_clocks(prev);
        }
        self.torn += u64::from(s.torn);
        self.samples.push(s);
    }
}

/// The sampler thread panicked (a bug in the monitor).
#[derive(Debug, thiserror::Error)]
#[error("the monitor's sampler thread panicked")]
pub struct SamplerPanicked;

/// A running sampler; [`SamplerHandle::stop`] ends it and joins it.
pub struct SamplerHandle {
    stop: Sender<()>,
    thread: JoinHandle<Recording>,
}

impl SamplerHandle {
    /// Starts sampling every `period` (the first sample at once).
    pub fn spawn<M>(monitor: Monitor, mem: M, period: Duration) -> std::io::Result<Self>
    where
        M: GuestMemoryReader + Send + 'static,
    {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ktstr-monitor".into())
            .spawn(move || {
                let mut rec = Recording::default();
                let mut next = Instant::now();
                loop {
                    rec.push(monitor.sample(&mem));
                    next += period;
                    // Late (a slow read): sample again now rather than
                    // in a burst to catch up.
                    let wait = next.saturating_duration_since(Instant::now());
                    if wait.is_zero() {
                        next = Instant::now();
                    }
                    match stopped.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return rec,
                    }
                }
            })?;
        Ok(SamplerHandle { stop, thread })
    }

    /// Stops the thread and returns what it recorded.
    pub fn stop(self) -> Result<Recording, SamplerPanicked> {
        // A send error means the thread already ended; join tells how.
        let _ = self.stop.send(());
        self.thread.join().map_err(|_| SamplerPanicked)
    }
}
