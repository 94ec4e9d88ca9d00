//! How a guest's VM ended, told from what its kernel and init left on the
//! consoles and from how the backend saw the VM end: one classification
//! both backends attach to their [`Outcome`](crate::Outcome) and the
//! harness reports, so the root cause is the first line of any failure.

pub mod console;

use std::fmt;

pub use console::{CrashKind, KernelCrash, OomKill};

use crate::guest::Exit;

/// Console lines kept when nothing more specific explains an end.
const TAIL_LINES: usize = 20;

/// Why the guest's VM ended, root cause first. A host-side end (kill,
/// deadline, backend failure) wins over what the guest printed on its way
/// down; then the guest init's last words; then the kernel's report; then
/// how the machine reset. Every variant's console lines are bounded
/// ([`console::MAX_LINES`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestDeath {
    /// The kernel panicked, oopsed or hit a BUG: its own report (boxed: it
    /// is the largest variant by far, and errors carry this type).
    KernelCrash(Box<KernelCrash>),
    /// The kernel ran out of memory and panicked (`vm.panic_on_oom`, nothing
    /// left to kill, or the OOM killer killed init).
    OutOfMemory {
        /// The panic report.
        crash: Box<KernelCrash>,
        /// What the OOM killer killed before.
        killed: Vec<OomKill>,
    },
    /// The kernel could not start the init program.
    InitNotStarted {
        /// The kernel's panic message, with what it means for a ktstr guest.
        message: String,
        /// The kernel's report.
        lines: Vec<String>,
    },
    /// The guest init panicked or took a fatal signal (its `PANIC:` line on COM2).
    InitPanic(String),
    /// The VM reset or powered off with no request from the guest and no
    /// kernel report: a triple fault, or a reset from outside the kernel.
    UnrequestedReset {
        /// How the backend saw it end.
        exit: Exit,
        /// The console's last lines.
        lines: Vec<String>,
    },
    /// The guest asked to reboot or power off (its kernel printed `reboot: ...`).
    Rebooted {
        /// The kernel's line.
        line: String,
    },
    /// The host killed the VM.
    Killed {
        /// A kernel report if there was one, else the console's last lines.
        lines: Vec<String>,
    },
    /// The VM ran past its deadline and was stopped.
    DeadlineExceeded {
        /// A kernel report if there was one, else the console's last lines.
        lines: Vec<String>,
    },
    /// The backend itself failed (emulation failure, QEMU error, ...).
    BackendFailed {
        /// The backend's description.
        detail: String,
        /// The console's last lines.
        lines: Vec<String>,
    },
}

/// A kernel `panic()` this early means the init never ran (init/main.c).
const INIT_NOT_STARTED: [&str; 2] = ["Requested init", "No working init found"];
/// An `rdinit=` program missing from the initramfs makes the kernel fall
/// back silently to a root device, which a ktstr guest has not.
const NO_ROOT: &str = "VFS: Unable to mount root fs";

impl GuestDeath {
    /// Classifies a VM that ended as `exit` after printing `com1` (kernel
    /// console) and `com2` (the guest init's last words), booted with `cmdline`.
    pub fn classify(exit: &Exit, com1: &[u8], com2: &[u8], cmdline: &str) -> GuestDeath {
        let com1 = String::from_utf8_lossy(com1);
        let crash = console::kernel_crash(&com1);
        let report_or_tail = || {
            crash
                .as_ref()
                .map_or_else(|| console::tail(&com1, TAIL_LINES), |c| c.lines.clone())
        };
        match exit {
            Exit::Killed => {
                return GuestDeath::Killed {
                    lines: report_or_tail(),
                };
            }
            Exit::DeadlineExceeded => {
                return GuestDeath::DeadlineExceeded {
                    lines: report_or_tail(),
                };
            }
            Exit::Failed(detail) => {
                return GuestDeath::BackendFailed {
                    detail: detail.clone(),
                    lines: report_or_tail(),
                };
            }
            Exit::Reboot | Exit::Shutdown | Exit::GuestPanic => {}
        }
        if let Some(m) = console::init_panic(&String::from_utf8_lossy(com2)) {
            return GuestDeath::InitPanic(m);
        }
        let requested = console::requested_reset(&com1);
        match (crash, requested) {
            // An Oops the kernel survived is not why it ended if it then rebooted on request.
            (Some(c), requested) if c.panic_message.is_some() || requested.is_none() => {
                Self::from_crash(c, &com1, cmdline)
            }
            (_, Some(line)) => GuestDeath::Rebooted { line },
            (_, None) => GuestDeath::UnrequestedReset {
                exit: exit.clone(),
                lines: console::tail(&com1, TAIL_LINES),
            },
        }
    }

    fn from_crash(crash: KernelCrash, com1: &str, cmdline: &str) -> GuestDeath {
        let message = crash.panic_message.clone().unwrap_or_default();
        if INIT_NOT_STARTED.iter().any(|p| message.starts_with(p)) {
            return GuestDeath::InitNotStarted {
                message,
                lines: crash.lines,
            };
        }
        if message.starts_with(NO_ROOT) {
            let init = requested_rdinit(cmdline);
            return GuestDeath::InitNotStarted {
                message: format!(
                    "{message} (the initramfs has no {init}, so the kernel looked for a root device)"
                ),
                lines: crash.lines,
            };
        }
        let killed = console::oom_kills(com1);
        let init_oom_killed =
            message.starts_with("Attempted to kill init") && killed.iter().any(|k| k.pid == 1);
        if console::is_oom_panic(&message) || init_oom_killed {
            return GuestDeath::OutOfMemory {
                crash: Box::new(crash),
                killed,
            };
        }
        GuestDeath::KernelCrash(Box::new(crash))
    }

    /// True if the guest's kernel panicked (whatever the cause): the VM's
    /// reset was the panic's, not a request.
    pub fn kernel_panicked(&self) -> bool {
        match self {
            GuestDeath::KernelCrash(c) | GuestDeath::OutOfMemory { crash: c, .. } => {
                c.panic_message.is_some()
            }
            GuestDeath::InitNotStarted { .. } => true,
            _ => false,
        }
    }

    /// The console lines this death carries (bounded).
    pub fn lines(&self) -> &[String] {
        match self {
            GuestDeath::KernelCrash(c) | GuestDeath::OutOfMemory { crash: c, .. } => &c.lines,
            GuestDeath::InitNotStarted { lines, .. }
            | GuestDeath::UnrequestedReset { lines, .. }
            | GuestDeath::Killed { lines }
            | GuestDeath::DeadlineExceeded { lines }
            | GuestDeath::BackendFailed { lines, .. } => lines,
            GuestDeath::InitPanic(_) | GuestDeath::Rebooted { .. } => &[],
        }
    }

    /// The console lines, each on a new line and indented: what goes under
    /// a headline (this one's, or an error's that adds context to it).
    pub fn indented_lines(&self) -> String {
        self.lines().iter().map(|l| format!("\n    {l}")).collect()
    }

    /// The headline alone, without console lines.
    pub fn summary(&self) -> String {
        match self {
            GuestDeath::KernelCrash(c) => crash_summary(c),
            GuestDeath::OutOfMemory { crash, killed } => {
                let mut s = format!(
                    "the guest kernel ran out of memory: {}",
                    crash.panic_message.as_deref().unwrap_or(&crash.headline)
                );
                if let Some(p) = &crash.process {
                    s.push_str(&format!(" (in {p})"));
                }
                if !killed.is_empty() {
                    let names: Vec<String> = killed
                        .iter()
                        .map(|k| format!("{} (pid {})", k.name, k.pid))
                        .collect();
                    s.push_str(&format!("; the OOM killer had killed {}", names.join(", ")));
                }
                s
            }
            GuestDeath::InitNotStarted { message, .. } => {
                format!("the guest kernel could not start init: {message}")
            }
            GuestDeath::InitPanic(m) => format!("the guest init panicked: {m}"),
            GuestDeath::UnrequestedReset { exit, .. } => format!(
                "the guest VM reset without a request or a kernel report \
                 ({exit:?}; a triple fault?)"
            ),
            GuestDeath::Rebooted { line } => format!("the guest rebooted itself ({line})"),
            GuestDeath::Killed { .. } => "the host killed the VM".into(),
            GuestDeath::DeadlineExceeded { .. } => "the VM ran past its deadline".into(),
            GuestDeath::BackendFailed { detail, .. } => {
                format!("the VM backend failed: {detail}")
            }
        }
    }
}

/// `guest kernel panic: sysrq triggered crash at sysrq_handle_crash+0x1a/0x20
/// in init (pid 1) on CPU 0`; an Oops or BUG leads with its own line.
fn crash_summary(c: &KernelCrash) -> String {
    let mut s = match (c.kind, &c.panic_message) {
        (CrashKind::Panic, Some(m)) => format!("the guest kernel panicked: {m}"),
        (CrashKind::Oops, _) => format!("the guest kernel oopsed: {}", c.headline),
        (_, _) => format!("the guest kernel hit a bug: {}", c.headline),
    };
    if let Some(at) = &c.location {
        s.push_str(&format!(" at {at}"));
    }
    if let Some(p) = &c.process {
        s.push_str(&format!(" in {p}"));
    }
    if let Some(cpu) = c.cpu {
        s.push_str(&format!(" on CPU {cpu}"));
    }
    if let (CrashKind::Oops | CrashKind::Bug, Some(m)) = (c.kind, &c.panic_message) {
        s.push_str(&format!("; then panic: {m}"));
    }
    s
}

/// The headline, then the console lines indented.
impl fmt::Display for GuestDeath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.summary(), self.indented_lines())
    }
}

/// The `rdinit=` program of a kernel command line (the last one wins), else
/// the kernel's default `/init`.
fn requested_rdinit(cmdline: &str) -> &str {
    cmdline
        .split_whitespace()
        .rev()
        .find_map(|w| w.strip_prefix("rdinit="))
        .unwrap_or("/init")
}

/// A kernel panic wins over the reset that `panic=-1` turns it into.
pub(crate) fn exit_after(exit: Exit, death: &GuestDeath) -> Exit {
    if death.kernel_panicked() && matches!(exit, Exit::Reboot | Exit::Shutdown) {
        Exit::GuestPanic
    } else {
        exit
    }
}

/// Guest consoles the tests read (see `testdata/consoles/README.md`).
#[cfg(test)]
mod excerpts {
    pub const SYSRQ: &str = include_str!("../../testdata/consoles/sysrq.txt");
    pub const OOPS: &str = include_str!("../../testdata/consoles/oops_int3.txt");
    pub const OOM: &str = include_str!("../../testdata/consoles/oom.txt");
    pub const PANIC_ON_OOM: &str = include_str!("../../testdata/consoles/panicoom.txt");
    pub const CLEAN: &str = include_str!("../../testdata/consoles/clean.txt");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::death::excerpts::*;

    const CMDLINE: &str = "console=ttyS0 quiet rdinit=/no/such/init";

    fn ended(exit: Exit, com1: &str, com2: &str) -> GuestDeath {
        GuestDeath::classify(&exit, com1.as_bytes(), com2.as_bytes(), CMDLINE)
    }

    #[test]
    fn a_kernel_panic_is_named_with_its_message_site_and_process_first() {
        let death = ended(Exit::Reboot, SYSRQ, "");
        assert!(matches!(&death, GuestDeath::KernelCrash(c) if c.kind == CrashKind::Panic));
        let text = death.to_string();
        assert_eq!(
            text.lines().next(),
            Some(
                "the guest kernel panicked: sysrq triggered crash at \
                 sysrq_handle_crash+0x1a/0x20 in init (pid 1) on CPU 0"
            )
        );
        assert!(text.contains("\n    Call Trace:"), "{text}");
        assert!(death.kernel_panicked());
        assert_eq!(exit_after(Exit::Reboot, &death), Exit::GuestPanic);
        assert_eq!(exit_after(Exit::Killed, &death), Exit::Killed);
    }

    #[test]
    fn an_oops_leads_with_the_oops_not_the_panic_it_caused() {
        let death = ended(Exit::Reboot, OOPS, "");
        let first = death
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            first,
            "the guest kernel oopsed: Oops: int3: 0000 [#1] PREEMPT SMP NOPTI at \
             set_next_task_idle+0x17/0x70 in swapper/1 (pid 0) on CPU 1; \
             then panic: Attempted to kill the idle task!"
        );
        // An Oops the kernel survived: a later requested reboot is why it ended...
        let panic = "Kernel panic - not syncing: Attempted to kill the idle task!";
        let survived = OOPS.replace(panic, "reboot: Restarting system");
        assert!(matches!(
            ended(Exit::Reboot, &survived, ""),
            GuestDeath::Rebooted { .. }
        ));
        // ...but with no such request the Oops is the best explanation.
        let silent = OOPS.replace(panic, "");
        assert!(matches!(
            ended(Exit::Reboot, &silent, ""),
            GuestDeath::KernelCrash(c) if c.panic_message.is_none()
        ));
    }

    #[test]
    fn out_of_memory_is_its_own_death() {
        let death = ended(Exit::Reboot, PANIC_ON_OOM, "");
        assert!(matches!(&death, GuestDeath::OutOfMemory { .. }), "{death}");
        assert!(
            death
                .to_string()
                .starts_with("the guest kernel ran out of memory: Out of memory: system-wide panic_on_oom is enabled (in tail (pid 54))"),
            "{death}"
        );
        // OOM kills the kernel survived, then a requested reboot: not a death by OOM.
        assert_eq!(
            ended(Exit::Reboot, OOM, ""),
            GuestDeath::Rebooted {
                line: "reboot: Restarting system".into()
            }
        );
        // The OOM killer killing init is what took the guest down.
        let init_killed = "[ 5.0] Out of memory: Killed process 1 (init) total-vm:1kB\n\
                           [ 5.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009\n\
                           [ 5.1] CPU: 0 UID: 0 PID: 1 Comm: init Not tainted 6.12.117 #1\n";
        match ended(Exit::Reboot, init_killed, "") {
            GuestDeath::OutOfMemory { killed, .. } => assert_eq!(killed[0].pid, 1),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn an_init_that_never_ran_is_named_by_the_kernels_reason() {
        let no_init = "[    0.9] Failed to execute /no/such/init (error -2)\n\
                       [    0.9] Kernel panic - not syncing: Requested init /no/such/init failed (error -2).\n";
        match ended(Exit::Reboot, no_init, "") {
            GuestDeath::InitNotStarted { message, .. } => {
                assert_eq!(message, "Requested init /no/such/init failed (error -2).");
            }
            other => panic!("{other}"),
        }
        let no_rdinit = "[    1.7] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n";
        let death = ended(Exit::Reboot, no_rdinit, "");
        assert_eq!(
            death.summary(),
            "the guest kernel could not start init: VFS: Unable to mount root fs on \
             unknown-block(0,0) (the initramfs has no /no/such/init, so the kernel looked \
             for a root device)"
        );
        assert!(death.kernel_panicked());
    }

    #[test]
    fn the_init_and_the_host_are_named_before_the_console() {
        assert_eq!(
            ended(Exit::Reboot, "Run /init\n", "PANIC: boom at src/x.rs:3\n"),
            GuestDeath::InitPanic("boom at src/x.rs:3".into())
        );
        // A host-side end wins over a panic the guest printed on its way down.
        assert!(matches!(
            ended(Exit::Killed, SYSRQ, ""),
            GuestDeath::Killed { lines } if lines[0].starts_with("Kernel panic")
        ));
        assert!(matches!(
            ended(Exit::DeadlineExceeded, CLEAN, ""),
            GuestDeath::DeadlineExceeded { lines } if lines.last().is_some_and(|l| l.contains("reboot:"))
        ));
        assert!(matches!(
            ended(Exit::Failed("QemuFailed".into()), "", ""),
            GuestDeath::BackendFailed { detail, .. } if detail == "QemuFailed"
        ));
    }

    #[test]
    fn a_reset_nobody_asked_for_is_told_from_a_reboot() {
        assert_eq!(
            ended(Exit::Reboot, CLEAN, ""),
            GuestDeath::Rebooted {
                line: "reboot: Restarting system".into()
            }
        );
        // ktstr-vmm reports a triple fault as Shutdown; nothing on the console asked for it.
        let death = ended(Exit::Shutdown, "[ 1.0] Run /init as init process\n", "");
        assert!(
            matches!(&death, GuestDeath::UnrequestedReset { exit: Exit::Shutdown, lines } if lines.len() == 1),
            "{death}"
        );
        assert!(death.to_string().contains("triple fault"), "{death}");
        assert!(!death.kernel_panicked());
        assert_eq!(exit_after(Exit::Shutdown, &death), Exit::Shutdown);
    }
}
