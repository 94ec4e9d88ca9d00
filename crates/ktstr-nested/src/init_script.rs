//! L1's `/init`: mounts, loads the KVM modules, checks that KVM with SVM and
//! nested paging is there (a [`FAIL`] marker naming what is not), runs each
//! test binary between [`RUN`] and [`DONE`] markers, then powers off.

use crate::markers::{BEAT, DONE, END, FAIL, READY, RUN};

/// Where L1 finds what the tests need (set as their environment).
pub const L2_KERNEL: &str = "/nested/vmlinux";
/// The schedulers' directory in L1 (`KTSTR_SCHEDULERS`).
pub const SCHEDULERS: &str = "/nested/schedulers";

/// A test binary as L1 runs it.
pub struct Step<'a> {
    /// The suite's name for the markers.
    pub name: &'a str,
    /// The binary's path in L1.
    pub path: &'a str,
    /// Its libtest arguments.
    pub args: &'a [String],
}

/// Seconds between two heartbeats on L1's COM2 (`/dev/ttyS1`).
pub const BEAT_PERIOD_S: u32 = 5;

/// A test binary still running after this is killed (exit code 137 in its
/// [`DONE`] line), so one hang costs its own suite, not the whole tier.
/// (`ktstr-harness/guest` took 456 s in L1 at host load 7-10.)
pub const SUITE_TIMEOUT_S: u32 = 900;

/// The script for `modules` (file stems under `/lib/modules`, load order)
/// and `steps`.
pub fn render(modules: &[&str], steps: &[Step<'_>]) -> String {
    let mut s = prologue(modules);
    s.push_str(&format!(
        r#"run() {{
    name=$1; shift
    echo "{RUN} $name"
    start=$(date +%s)
    timeout -s KILL {SUITE_TIMEOUT_S} "$@" --color never --test-threads 1
    rc=$?
    echo "{DONE} $name rc=$rc secs=$(( $(date +%s) - start ))"
}}
"#
    ));
    for step in steps {
        let args: Vec<String> = step.args.iter().map(|a| quote(a)).collect();
        s.push_str(&format!(
            "run {} {} {}\n",
            quote(step.name),
            quote(step.path),
            args.join(" ")
        ));
    }
    s.push_str(&format!("echo {END}\npoweroff -f\n"));
    s
}

/// The start every L1 `/init` shares: mounts, loads `modules`, checks for
/// KVM with SVM and nested paging ([`FAIL`] naming what is missing, else
/// [`READY`]), starts the [`BEAT`] loop on COM2, exports the tests'
/// environment and enters `/tmp`.
pub fn prologue(modules: &[&str]) -> String {
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o size=80% tmpfs /tmp
fail() {{ echo "{FAIL} $*"; poweroff -f; sleep 60; }}
for m in {modules}; do
    out=$(insmod /lib/modules/$m.ko 2>&1) || fail "module $m did not load: $out"
done
grep -qw svm /proc/cpuinfo || fail "no svm in /proc/cpuinfo (QEMU must run L1 with -cpu max)"
grep -qw npt /proc/cpuinfo || fail "no npt in /proc/cpuinfo"
[ -c /dev/kvm ] || fail "no /dev/kvm after loading kvm-amd"
[ -c /dev/ttyS1 ] || fail "no /dev/ttyS1 (COM2) for the heartbeat"
# The host's watchdog reads these: they stop when L1's timers or scheduler do.
( while :; do echo "{BEAT} $(cut -d' ' -f1 /proc/uptime)"; sleep {BEAT_PERIOD_S}; done >/dev/ttyS1 ) &
echo "{READY} kvm_amd npt=$(cat /sys/module/kvm_amd/parameters/npt) nested=$(cat /sys/module/kvm_amd/parameters/nested)"
export HOME=/tmp TMPDIR=/tmp CI=true KTSTR_BACKEND=kvm RUST_BACKTRACE=0
export KTSTR_KERNEL={L2_KERNEL} KTSTR_SCHEDULERS={SCHEDULERS}
cd /tmp
"#,
        modules = modules.join(" ")
    )
}

/// `arg` as one single-quoted shell word.
pub fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_quoted_and_modules_loaded_in_order() {
        let args = ["--skip".to_owned(), "it's".to_owned()];
        let s = render(
            &["kvm", "kvm-amd"],
            &[Step {
                name: "p/t",
                path: "/nested/tests/0-t",
                args: &args,
            }],
        );
        assert!(s.starts_with("#!/bin/busybox sh\n"), "{s}");
        assert!(s.contains("for m in kvm kvm-amd; do"), "{s}");
        assert!(
            s.contains(r"run 'p/t' '/nested/tests/0-t' '--skip' 'it'\''s'"),
            "{s}"
        );
        assert!(s.ends_with(&format!("echo {END}\npoweroff -f\n")), "{s}");
        assert!(
            s.contains(&format!("timeout -s KILL {SUITE_TIMEOUT_S} \"$@\"")),
            "{s}"
        );
        assert!(s.contains(&format!("echo \"{BEAT} $(cut")), "{s}");
    }
}
