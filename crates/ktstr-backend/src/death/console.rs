//! Reading the kernel's own reports off a guest console: a panic, Oops or
//! BUG with its RIP, process and call trace; OOM kills; the kernel's
//! `reboot:` line. Pure functions over text, so each is tested on real
//! console excerpts (`testdata/consoles/`).
//!
//! Everything returned is bounded: at most [`MAX_LINES`] lines of at most
//! [`MAX_LINE`] bytes, whatever the guest printed.

use std::time::Duration;

/// Console lines a report keeps: enough for the headline, registers and the
/// top of the call trace.
pub const MAX_LINES: usize = 40;
/// Longer lines (e.g. `Code:` dumps) are cut here.
pub const MAX_LINE: usize = 240;
/// Call-trace frames a crash report names.
const MAX_FRAMES: usize = 8;

const PANIC: &str = "Kernel panic - not syncing: ";
/// How the kernel starts a crash report (panic, `die()`, BUG, GPF).
const CRASH_STARTS: [&str; 5] = [
    PANIC,
    "Oops: ",
    "BUG: ",
    "kernel BUG at ",
    "general protection fault",
];
/// Frames of the report machinery itself, never the crash site.
const REPORTING_FRAMES: [&str; 6] = [
    "panic+",
    "vpanic+",
    "dump_stack",
    "_printk+",
    "show_stack",
    "nmi_panic",
];

/// A console line without its `[   12.345678] ` timestamp.
pub fn body(line: &str) -> &str {
    let line = line.trim_start_matches('\0').trim_end();
    match line.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((stamp, rest)) if seconds(stamp).is_some() => rest,
        _ => line,
    }
}

/// The kernel time of a console line (`[   12.345678] ...`).
pub fn timestamp(line: &str) -> Option<Duration> {
    let (stamp, _) = line.trim_start().strip_prefix('[')?.split_once(']')?;
    seconds(stamp)
}

/// `   12.345678` as a duration.
fn seconds(stamp: &str) -> Option<Duration> {
    let (secs, micros) = stamp.trim().split_once('.')?;
    let frac = format!("{micros:0<9}");
    Some(Duration::new(
        secs.parse().ok()?,
        frac.get(..9)?.parse().ok()?,
    ))
}

/// `line` cut to [`MAX_LINE`] bytes on a character boundary.
pub fn bounded(line: &str) -> String {
    let mut end = line.len().min(MAX_LINE);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].to_owned()
}

/// Which report the kernel printed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashKind {
    /// `Kernel panic - not syncing:` with no Oops or BUG before it.
    Panic,
    /// `Oops:` or `general protection fault` (the kernel's `die()`).
    Oops,
    /// `BUG:` or `kernel BUG at`.
    Bug,
}

impl CrashKind {
    fn of(headline: &str) -> CrashKind {
        if headline.starts_with(PANIC) {
            CrashKind::Panic
        } else if headline.starts_with("BUG: ") || headline.starts_with("kernel BUG at ") {
            CrashKind::Bug
        } else {
            CrashKind::Oops
        }
    }
}

/// The kernel's report of a crash, as it printed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelCrash {
    pub kind: CrashKind,
    /// The first report line, e.g. `Oops: int3: 0000 [#1] PREEMPT SMP NOPTI`.
    pub headline: String,
    /// What `panic()` said, if the crash reached it (`sysrq triggered crash`).
    pub panic_message: Option<String>,
    /// Where it happened: the kernel RIP's symbol (`set_next_task_idle+0x17/0x70`),
    /// else (a panic called from a system call) the first call-trace frame
    /// outside the reporting code (`sysrq_handle_crash+0x1a/0x20`).
    pub location: Option<String>,
    /// `Comm: <name>` and its PID, from the `CPU: ... PID: ... Comm: ...` line.
    pub process: Option<String>,
    /// The CPU the report came from.
    pub cpu: Option<u32>,
    /// The call trace's first reliable frames (no `?` guesses), innermost first.
    pub trace: Vec<String>,
    /// The report from its first line, timestamps stripped, bounded.
    pub lines: Vec<String>,
    /// Kernel time of the first report line (since the guest booted).
    pub at: Option<Duration>,
}

/// The first crash report on `console`, if the kernel printed one.
pub fn kernel_crash(console: &str) -> Option<KernelCrash> {
    let lines: Vec<&str> = console.lines().collect();
    let start = lines.iter().position(|l| report_start(body(l)).is_some())?;
    let report = &lines[start..];
    let headline = report_start(body(report[0])).unwrap_or_default().to_owned();
    let field = |prefix: &str| report.iter().find_map(|l| body(l).strip_prefix(prefix));
    let panic_message = report
        .iter()
        .find_map(|l| l.split_once(PANIC))
        .map(|(_, m)| m.trim_end().trim_end_matches(" ]---").trim().to_owned());
    let kernel_rip = field("RIP: 0010:").map(|s| s.trim().to_owned());
    let trace: Vec<String> = report
        .iter()
        .map(|l| body(l).trim())
        .skip_while(|l| *l != "Call Trace:")
        .skip(1)
        .take_while(|l| !l.starts_with("---[") && !l.starts_with(PANIC))
        .filter(|l| !l.starts_with('?') && !l.starts_with('<') && is_frame(l))
        .take(MAX_FRAMES)
        .map(str::to_owned)
        .collect();
    let location = kernel_rip.or_else(|| {
        trace
            .iter()
            .find(|f| !REPORTING_FRAMES.iter().any(|r| f.starts_with(r)))
            .cloned()
    });
    let (process, cpu) = report
        .iter()
        .find_map(|l| process_line(body(l)))
        .map_or((None, None), |(p, c)| (Some(p), c));
    Some(KernelCrash {
        kind: CrashKind::of(&headline),
        headline: bounded(&headline),
        panic_message,
        location,
        process,
        cpu,
        trace,
        lines: report
            .iter()
            .take(MAX_LINES)
            .map(|l| bounded(body(l)))
            .collect(),
        at: timestamp(report[0]),
    })
}

/// Where a crash report starts in a line's body. The panic line is found
/// anywhere (user space may have left a line unfinished before it); the
/// others only at the start, where the kernel puts them.
fn report_start(body: &str) -> Option<&str> {
    match body.find(PANIC) {
        Some(at) => body.get(at..),
        None => CRASH_STARTS
            .iter()
            .any(|s| body.starts_with(s))
            .then_some(body),
    }
}

/// `symbol+0xoff/0xlen`, the shape of a call-trace frame.
fn is_frame(l: &str) -> bool {
    l.split_whitespace()
        .next()
        .is_some_and(|w| w.contains("+0x") && w.contains('/'))
}

/// `CPU: 1 UID: 0 PID: 0 Comm: swapper/1 Not tainted ...` as
/// (`swapper/1 (pid 0)`, Some(1)).
fn process_line(l: &str) -> Option<(String, Option<u32>)> {
    let rest = l.strip_prefix("CPU: ")?;
    let cpu = rest.split_whitespace().next().and_then(|c| c.parse().ok());
    let words: Vec<&str> = rest.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
    };
    let comm = after("Comm:")?;
    Some(match after("PID:") {
        Some(pid) => (format!("{comm} (pid {pid})"), cpu),
        None => ((*comm).to_owned(), cpu),
    })
}

/// One process the OOM killer killed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OomKill {
    pub pid: u32,
    /// Its `comm`.
    pub name: String,
    /// The kernel's line (`Out of memory: Killed process 53 (tail) total-vm:...`).
    pub line: String,
}

/// Every OOM kill on `console` (system-wide and memory-cgroup), oldest first.
pub fn oom_kills(console: &str) -> Vec<OomKill> {
    console
        .lines()
        .filter_map(|l| {
            let b = body(l);
            let (_, rest) = b.split_once("of memory: Killed process ")?;
            let (pid, rest) = rest.split_once(" (")?;
            let (name, _) = rest.split_once(')')?;
            Some(OomKill {
                pid: pid.parse().ok()?,
                name: name.to_owned(),
                line: bounded(b),
            })
        })
        .collect()
}

/// True if a `panic()` message is the OOM killer's (`vm.panic_on_oom`, or
/// nothing left to kill).
pub fn is_oom_panic(message: &str) -> bool {
    message.starts_with("Out of memory") || message.starts_with("System is deadlocked on memory")
}

/// The kernel's own line for a reboot or power-off the guest asked for
/// (`reboot: Restarting system`, `reboot: Power down`). A panic's
/// emergency restart and a triple fault print none.
pub fn requested_reset(console: &str) -> Option<String> {
    console.lines().rev().find_map(|l| {
        let b = body(l);
        (b.starts_with("reboot: Restarting system")
            || b.starts_with("reboot: Power down")
            || b.starts_with("reboot: System halted"))
        .then(|| b.to_owned())
    })
}

/// The guest init's last words on COM2, if it wrote them. Bytes that are
/// not text before them on their line are skipped: a UART carries such
/// bytes before the first line, e.g. the 0xFF (`\u{fffd}` here) that
/// Linux writes to each legacy port it finds without firmware tables, to
/// probe its IRQ (8250 `autoconfig_irq`, `CONFIG_SERIAL_8250_DETECT_IRQ`).
pub fn init_panic(com2: &str) -> Option<String> {
    com2.lines().find_map(|l| {
        l.trim_start_matches(|c: char| c == char::REPLACEMENT_CHARACTER || c.is_control())
            .strip_prefix(ktstr_wire::INIT_PANIC_PREFIX)
            .map(|m| m.trim_end().to_owned())
    })
}

/// The last `n` lines of `console` (bounded), timestamps kept.
pub fn tail(console: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = console.lines().collect();
    lines[lines.len().saturating_sub(n.min(MAX_LINES))..]
        .iter()
        .map(|l| bounded(l.trim_end()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::death::excerpts::*;

    #[test]
    fn a_sysrq_panic_is_read_with_its_site_and_process() {
        let c = kernel_crash(SYSRQ).expect("crash");
        assert_eq!(c.kind, CrashKind::Panic);
        assert_eq!(
            c.headline,
            "Kernel panic - not syncing: sysrq triggered crash"
        );
        assert_eq!(c.panic_message.as_deref(), Some("sysrq triggered crash"));
        // The RIP is user space (0033): the site is the first non-reporting frame.
        assert_eq!(c.location.as_deref(), Some("sysrq_handle_crash+0x1a/0x20"));
        assert_eq!(c.process.as_deref(), Some("init (pid 1)"));
        assert_eq!(c.cpu, Some(0));
        assert_eq!(c.trace[0], "panic+0x32b/0x390");
        assert_eq!(c.trace[1], "sysrq_handle_crash+0x1a/0x20");
        assert_eq!(c.at, Some(Duration::from_micros(2_735_525)));
        assert!(c.lines.len() <= MAX_LINES);
        // A panic after an unfinished user-space line is still found.
        let glued = "MODE x[    2.7] Kernel panic - not syncing: boom\n";
        let c = kernel_crash(glued).expect("crash");
        assert_eq!(c.headline, "Kernel panic - not syncing: boom");
        assert_eq!(c.panic_message.as_deref(), Some("boom"));
    }

    #[test]
    fn an_oops_names_its_rip_and_task_before_the_panic_it_led_to() {
        let c = kernel_crash(OOPS).expect("crash");
        assert_eq!(c.kind, CrashKind::Oops);
        assert_eq!(c.headline, "Oops: int3: 0000 [#1] PREEMPT SMP NOPTI");
        assert_eq!(c.location.as_deref(), Some("set_next_task_idle+0x17/0x70"));
        assert_eq!(c.process.as_deref(), Some("swapper/1 (pid 0)"));
        assert_eq!(c.cpu, Some(1));
        assert_eq!(
            c.panic_message.as_deref(),
            Some("Attempted to kill the idle task!")
        );
        // `?` frames are the unwinder's guesses; the trace stops at the end marker.
        assert_eq!(c.trace[0], "pick_next_task+0x6b2/0x950");
        assert_eq!(c.trace.len(), 7, "{:?}", c.trace);
    }

    #[test]
    fn oom_kills_and_the_oom_panic_are_recognised() {
        let kills = oom_kills(OOM);
        assert_eq!(kills.len(), 1);
        assert_eq!((kills[0].pid, kills[0].name.as_str()), (53, "tail"));
        assert!(
            kills[0]
                .line
                .starts_with("Out of memory: Killed process 53 (tail)")
        );
        assert_eq!(kernel_crash(OOM), None, "an OOM kill is not a crash");
        let memcg = "[ 1.0] Memory cgroup out of memory: Killed process 7 (hog) total-vm:1kB";
        assert_eq!(oom_kills(memcg)[0].name, "hog");

        let c = kernel_crash(PANIC_ON_OOM).expect("crash");
        let message = c.panic_message.expect("message");
        assert_eq!(
            message,
            "Out of memory: system-wide panic_on_oom is enabled"
        );
        assert!(is_oom_panic(&message));
        assert_eq!(c.process.as_deref(), Some("tail (pid 54)"));
        // The page fault the allocation took, in the kernel.
        assert_eq!(
            c.location.as_deref(),
            Some("rep_stos_alternative+0x57/0x80")
        );
        assert!(!is_oom_panic("sysrq triggered crash"));
    }

    #[test]
    fn a_requested_reboot_is_told_from_a_silent_one() {
        assert_eq!(
            requested_reset(CLEAN).as_deref(),
            Some("reboot: Restarting system")
        );
        assert!(requested_reset(OOM).is_some());
        assert_eq!(requested_reset(SYSRQ), None);
        assert_eq!(kernel_crash(CLEAN), None);
    }

    #[test]
    fn lines_are_bounded_whatever_the_guest_prints() {
        let flood = format!("{}\n", "x".repeat(10_000)).repeat(1000);
        let crash = format!("[ 1.0] BUG: {flood}");
        let c = kernel_crash(&crash).expect("crash");
        assert_eq!(c.lines.len(), MAX_LINES);
        assert!(c.lines.iter().all(|l| l.len() <= MAX_LINE));
        assert_eq!(c.kind, CrashKind::Bug);
        assert_eq!(tail(&flood, 1000).len(), MAX_LINES);
        assert_eq!(bounded(&"é".repeat(200)).len(), MAX_LINE);
    }

    #[test]
    fn init_panic_and_timestamps() {
        assert_eq!(
            init_panic("noise\r\n\0PANIC: boom at src/x.rs:3\r\n").as_deref(),
            Some("boom at src/x.rs:3")
        );
        assert_eq!(init_panic("nothing"), None);
        // COM2 of a ktstr-vmm guest without ACPI, as read in the nested
        // tier: the kernel's IRQ-probe byte runs into the init's line.
        let probed = b"\xffPANIC: boom 42 | second line at crates/ktstr-guest/src/dispatch.rs:90\n";
        assert_eq!(
            init_panic(&String::from_utf8_lossy(probed)).as_deref(),
            Some("boom 42 | second line at crates/ktstr-guest/src/dispatch.rs:90")
        );
        assert_eq!(init_panic("text PANIC: not at the start"), None);
        assert_eq!(body("[   12.5] x y"), "x y");
        assert_eq!(body("MODE sysrq"), "MODE sysrq");
        assert_eq!(
            timestamp("[   12.5] x"),
            Some(Duration::from_millis(12_500))
        );
        assert_eq!(timestamp("MODE sysrq"), None);
    }
}
