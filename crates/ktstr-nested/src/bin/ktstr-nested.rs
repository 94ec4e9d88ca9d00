//! Runs the hardware-KVM test tier (see the `ktstr_nested` crate docs):
//!
//! ```text
//! ktstr-nested [--suite PACKAGE/TEST[=ARGS]]... [--release] [--package DEB]
//!              [--l1-vcpus N] [--l1-memory-mib M] [--l1-cpu QEMU-CPU]
//!              [--l1-cmdline KERNEL-ARGS] [--l1-qemu system|backports|PATH]
//!              [--deadline-min MIN] [--repeat N] [--stall-retries N]
//! ```
//! Without `--suite`, every suite that needs hardware KVM. L1's QEMU is
//! `--l1-qemu`, else `KTSTR_NESTED_QEMU`, else `backports` (see
//! `ktstr_nested::l1_qemu`). `--repeat N` runs
//! the list N times in one L1 (to count something intermittent). The L2 kernel is
//! `KTSTR_NESTED_KERNEL`, else the test kernel (`KTSTR_KERNEL` / the cache);
//! the schedulers come from `KTSTR_SCHEDULERS`. Prints a progress line per
//! phase, L1's console as `L1| ...`, and one `nested tier: N passed, M
//! failed, K ignored` line; exits non-zero on any failure. An L1 that stops
//! making progress (no heartbeat for 120 s) is killed with its
//! vCPU state printed (`L1-STALL| ...`), and what it left unfinished runs
//! once more in a fresh L1 (`--stall-retries`, 1); the stall is reported
//! (`nested tier RETRIED:`), and one more fails the tier.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ktstr_nested::Error;
use ktstr_nested::l1_boot::{self, L1End, L1Machine};
use ktstr_nested::l1_initramfs::{self, Contents};
use ktstr_nested::l1_kernel::{self, L1Kernel};
use ktstr_nested::l1_qemu;
use ktstr_nested::suite::{self, Suite};
use ktstr_nested::summary::{Summary, TierFailure};
use ktstr_qemu::ExitKind;

/// Fresh L1s for the suites a stalled L1 left unfinished (each stall
/// reported), unless `--stall-retries` says otherwise.
const STALL_RETRIES: usize = 1;

struct Options {
    suites: Vec<Suite>,
    release: bool,
    package: String,
    /// `--l1-qemu`: see `ktstr_nested::l1_qemu::resolve`.
    qemu: Option<String>,
    machine: L1Machine,
    repeat: usize,
    stall_retries: usize,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        suites: Vec::new(),
        release: false,
        package: l1_kernel::DEFAULT_PACKAGE.to_owned(),
        qemu: None,
        machine: L1Machine::default(),
        repeat: 1,
        stall_retries: STALL_RETRIES,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{a} {v}: {e}"));
        match a.as_str() {
            "--suite" => o.suites.push(value()?.parse()?),
            "--release" => o.release = true,
            "--repeat" => o.repeat = number(value()?)?.max(1) as usize,
            "--stall-retries" => o.stall_retries = number(value()?)? as usize,
            "--package" => o.package = value()?,
            "--l1-qemu" => o.qemu = Some(value()?),
            "--l1-vcpus" => o.machine.vcpus = number(value()?)? as u32,
            "--l1-memory-mib" => o.machine.memory_mib = number(value()?)?,
            "--l1-cpu" => o.machine.cpu = value()?,
            "--l1-cmdline" => o.machine.cmdline = value()?,
            "--deadline-min" => o.machine.deadline = Duration::from_secs(60 * number(value()?)?),
            _ => {
                return Err(format!(
                    "unknown argument {a} (see the doc comment of ktstr-nested)"
                ));
            }
        }
    }
    if o.suites.is_empty() {
        o.suites = suite::default_suites();
    }
    Ok(o)
}

fn progress(started: Instant, text: &str) {
    eprintln!("== nested [{:>4}s] {text}", started.elapsed().as_secs());
}

/// Runs the tier; `Ok(false)` when it ran and something failed.
fn run(o: &Options, started: Instant) -> Result<bool, Error> {
    let l2_kernel = match std::env::var_os("KTSTR_NESTED_KERNEL").filter(|k| !k.is_empty()) {
        Some(k) => PathBuf::from(k),
        None => ktstr_testenv::find_kernel()?,
    };
    let busybox = ktstr_testenv::find_busybox()?;
    let schedulers = ["scx_simple", "scx_qmap"]
        .iter()
        .map(|s| ktstr_testenv::find_scheduler(s))
        .collect::<Result<Vec<_>, _>>()?;
    let dir = l1_kernel::package_dir(&o.package).ok_or_else(|| {
        ktstr_testenv::Missing::new("a cache directory", "set HOME or XDG_CACHE_HOME")
    })?;
    let kernel = l1_kernel::fetch(&o.package, &dir, &mut |p| progress(started, p))?;
    let machine = L1Machine {
        qemu: l1_qemu::resolve(o.qemu.as_deref(), &mut |p| progress(started, p))?,
        ..o.machine.clone()
    };
    progress(started, &format!("L1 QEMU {}", machine.qemu.label));
    progress(started, &format!("L1 kernel {}", kernel.vmlinuz.display()));

    let names: Vec<String> = o.suites.iter().map(Suite::name).collect();
    progress(
        started,
        &format!(
            "build test binaries ({}): {}",
            if o.release { "release" } else { "debug" },
            names.join(" ")
        ),
    );
    let root = std::env::current_dir().map_err(|e| Error::io("read", ".", e))?;
    let built = suite::build(&root, &o.suites, o.release)?;

    // A stalled L1 (see ktstr_nested::watchdog) is not the code under test:
    // the suites it left unfinished run once more in a fresh L1, and the
    // stall is reported whatever the retry does.
    let mut summary = Summary::default();
    let mut todo = built;
    let mut stalls = Vec::new();
    let l1_end = loop {
        let contents = Contents {
            busybox: &busybox,
            l2_kernel: &l2_kernel,
            schedulers: &schedulers,
            suites: &todo,
            repeat: o.repeat,
        };
        let (part, end) = run_l1(&machine, &kernel, &contents, started)?;
        summary.broken.extend(part.broken.iter().cloned());
        let end = match end {
            L1End::Exited(ExitKind::Shutdown) => None,
            L1End::Exited(other) => Some(TierFailure::L1Ended(format!("{other:?}"))),
            L1End::Stalled(stall) => {
                for line in &stall.diagnostics {
                    println!("L1-STALL| {line}");
                }
                let failure = TierFailure::L1Stalled {
                    silent_s: stall.silent_s,
                    during: part.running(),
                };
                println!(
                    "nested tier: {failure} (L1's uptime at its last heartbeat: {} s)",
                    stall.last_uptime.as_deref().unwrap_or("none")
                );
                Some(failure)
            }
        };
        match end {
            Some(stall @ TierFailure::L1Stalled { .. }) if stalls.len() < o.stall_retries => {
                let finished: Vec<String> = part.finished().map(|s| s.name.clone()).collect();
                summary.suites.extend(part.finished().cloned());
                todo.retain(|b| !finished.contains(&b.suite.name()));
                println!(
                    "nested tier: retrying once in a fresh L1: {}",
                    todo.iter()
                        .map(|b| b.suite.name())
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                stalls.push(stall);
            }
            end => {
                summary.suites.extend(part.suites);
                summary.ended = part.ended;
                break end;
            }
        }
    };
    for s in &summary.suites {
        progress(
            started,
            &format!(
                "{}: {} in {} s (exit code {:?})",
                s.name,
                s.counts.map_or("no summary".to_owned(), |c| format!(
                    "{} passed, {} failed, {} ignored",
                    c.passed, c.failed, c.ignored
                )),
                s.secs,
                s.exit_code
            ),
        );
    }
    let failures = summary.failures(&names, l1_end);
    let t = summary.totals();
    println!(
        "nested tier: {} passed, {} failed, {} ignored ({} s; L1 stalls retried: {})",
        t.passed,
        t.failed,
        t.ignored,
        started.elapsed().as_secs(),
        stalls.len()
    );
    for s in &stalls {
        println!("nested tier RETRIED: {s}");
    }
    for f in &failures {
        println!("nested tier FAILED: {f}");
    }
    Ok(failures.is_empty())
}

/// Boots one L1 with `contents` and folds its console into a [`Summary`].
fn run_l1(
    machine: &L1Machine,
    kernel: &L1Kernel,
    contents: &Contents<'_>,
    started: Instant,
) -> Result<(Summary, L1End), Error> {
    progress(
        started,
        &format!(
            "build L1's initramfs (L2 kernel {})",
            contents.l2_kernel.display()
        ),
    );
    let archive = l1_initramfs::build(kernel, contents)?;
    let (cpio, mib) = l1_initramfs::write_temp(&archive)?;
    drop(archive);
    progress(
        started,
        &format!(
            "boot L1 ({} vCPU, {} MiB, initramfs {mib} MiB, deadline {:?}, stalled after {:?} without a heartbeat)",
            machine.vcpus, machine.memory_mib, machine.deadline, machine.stall_after
        ),
    );
    let mut summary = Summary::default();
    let end = l1_boot::run(machine, &kernel.vmlinuz, cpio, &mut |line| {
        println!("L1| {line}");
        let before = summary.suites.len();
        summary.feed(line);
        if summary.suites.len() > before {
            if let Some(s) = summary.suites.last() {
                progress(started, &format!("test binary {}", s.name));
            }
        }
        if let Some(ready) = line.strip_prefix(ktstr_nested::markers::READY) {
            progress(started, &format!("L1 has KVM:{ready}"));
        }
    })?;
    Ok((summary, end))
}

fn main() -> ExitCode {
    let started = Instant::now();
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ktstr-nested: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&options, started) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            println!("nested tier FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
