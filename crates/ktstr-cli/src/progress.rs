//! Progress of long builds on stderr: a phase line each, and for the long
//! phase a bar with elapsed time and an estimate. Without a terminal the
//! bar is hidden and only the phase lines remain (CI logs stay readable).

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One build's progress display.
pub struct Progress {
    what: &'static str,
    started: Instant,
}

impl Progress {
    /// Progress of building `what` (e.g. `kernel`).
    pub fn new(what: &'static str) -> Self {
        Progress {
            what,
            started: Instant::now(),
        }
    }

    /// A new phase begins.
    pub fn phase(&self, name: &str) {
        // Not `ktstr: ...`, the form of the one error line.
        eprintln!(
            "ktstr {} [{}] {name}",
            self.what,
            clock(self.started.elapsed())
        );
    }

    /// A bar for a phase of about `estimate` steps (its message is the
    /// current step); the estimate grows if it was too small.
    pub fn bar(&self, phase: &str, estimate: u64) -> Bar {
        self.phase(phase);
        let bar =
            ProgressBar::with_draw_target(Some(estimate.max(1)), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} ~{eta} left  {wide_msg:.dim}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(format!("{} {phase}", self.what));
        Bar {
            bar,
            steps: 0,
            label: format!("ktstr {} {phase}", self.what),
            started: Instant::now(),
            last_tenth: 0,
        }
    }

    /// Time since the build began.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// `mm:ss`.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}", s / 60, s % 60)
}

/// A bar of steps (see [`Progress::bar`]). Without a terminal (a CI log)
/// the bar is hidden and a line is printed at every tenth of the estimate.
pub struct Bar {
    bar: ProgressBar,
    steps: u64,
    label: String,
    started: Instant,
    /// The last tenth of the estimate reported as a line.
    last_tenth: u64,
}

impl Bar {
    /// One more step done; `what` names it.
    pub fn step(&mut self, what: &str) {
        self.steps += 1;
        if self.bar.length().is_some_and(|len| self.steps >= len) {
            // Past the estimate: keep 5% headroom so the bar never sits full.
            self.bar.set_length(self.steps + self.steps / 20 + 1);
        }
        self.bar.set_position(self.steps);
        self.bar.set_message(what.to_owned());
        if self.bar.is_hidden() {
            self.log_line();
        }
    }

    /// `... 30% (810/2700 steps), 05:12 elapsed, ~12:08 left` at each new tenth.
    fn log_line(&mut self) {
        let len = self.bar.length().unwrap_or(1).max(1);
        let tenth = self.steps * 10 / len;
        if tenth <= self.last_tenth {
            return;
        }
        self.last_tenth = tenth;
        let elapsed = self.started.elapsed();
        let left =
            elapsed.mul_f64(len.saturating_sub(self.steps) as f64 / self.steps.max(1) as f64);
        eprintln!(
            "{} {}% ({}/{len} steps), {} elapsed, ~{} left",
            self.label,
            tenth * 10,
            self.steps,
            clock(elapsed),
            clock(left)
        );
    }

    /// Steps done so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The phase is over: the bar is cleared.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}
