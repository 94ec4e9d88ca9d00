//! `watchdog_timeout_ms`: how long sched_ext lets a runnable task wait
//! before it disables the scheduler.
//!
//! Linux 6.12 takes the timeout only from the scheduler itself: the
//! `timeout_ms` field of its `sched_ext_ops`, read once when it attaches
//! (at most 30 000 ms; 0 means 30 000). There is no sysfs or boot knob, so
//! ktstr can hand a timeout only to a scheduler that has a flag for it.
//! Neither scheduler built from the kernel tree has one: `scx_qmap` fixes
//! 5000 ms in its BPF object, `scx_simple` leaves the 30 000 ms default.

/// sched_ext's upper bound (`SCX_WATCHDOG_MAX_TIMEOUT`, 30 s).
pub const MAX_MS: u64 = 30_000;

/// Why `scheduler` (a binary name) cannot be given a watchdog timeout of
/// `ms`: no scheduler ktstr knows takes one (see the module doc).
pub fn refusal(scheduler: &str, ms: u64) -> String {
    let fixed = match scheduler {
        "scx_qmap" => "fixes ops.timeout_ms at 5000 ms in its BPF object",
        "scx_simple" => "leaves ops.timeout_ms at the kernel's 30000 ms",
        _ => "has no watchdog flag ktstr knows of",
    };
    format!(
        "cannot give {scheduler} a {ms} ms watchdog timeout: sched_ext (Linux 6.12) takes \
         it only from the scheduler's own ops.timeout_ms (no sysfs or boot knob), and \
         {scheduler} {fixed}; pass the scheduler's own flag in `args` if it has one"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_tree_schedulers_cannot_take_a_timeout_and_say_why() {
        let e = refusal("scx_qmap", 1000);
        assert!(e.contains("5000 ms"), "{e}");
        let e = refusal("scx_simple", 1000);
        assert!(e.contains("30000 ms"), "{e}");
    }
}
