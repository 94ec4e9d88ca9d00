//! Runs the hardware-KVM test tier (see the `ktstr_nested` crate docs):
//!
//! ```text
//! ktstr-nested [--suite PACKAGE/TEST[=ARGS]]... [--release] [--package DEB]
//!              [--l1-vcpus N] [--l1-memory-mib M] [--l1-cpu QEMU-CPU]
//!              [--deadline-min MIN]
//! ```
//! Without `--suite`, every suite that needs hardware KVM. The L2 kernel is
//! `KTSTR_NESTED_KERNEL`, else the test kernel (`KTSTR_KERNEL` / the cache);
//! the schedulers come from `KTSTR_SCHEDULERS`. Prints a progress line per
//! phase, L1's console as `L1| ...`, and one `nested tier: N passed, M
//! failed, K ignored` line; exits non-zero on any failure.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ktstr_nested::l1_boot::{self, L1Machine};
use ktstr_nested::l1_initramfs::{self, Contents};
use ktstr_nested::suite::{self, Suite};
use ktstr_nested::summary::Summary;
use ktstr_nested::{Error, l1_kernel};

struct Options {
    suites: Vec<Suite>,
    release: bool,
    package: String,
    machine: L1Machine,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        suites: Vec::new(),
        release: false,
        package: l1_kernel::DEFAULT_PACKAGE.to_owned(),
        machine: L1Machine::default(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{a} {v}: {e}"));
        match a.as_str() {
            "--suite" => o.suites.push(value()?.parse()?),
            "--release" => o.release = true,
            "--package" => o.package = value()?,
            "--l1-vcpus" => o.machine.vcpus = number(value()?)? as u32,
            "--l1-memory-mib" => o.machine.memory_mib = number(value()?)?,
            "--l1-cpu" => o.machine.cpu = value()?,
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

    progress(
        started,
        &format!("build L1's initramfs (L2 kernel {})", l2_kernel.display()),
    );
    let archive = l1_initramfs::build(
        &kernel,
        &Contents {
            busybox: &busybox,
            l2_kernel: &l2_kernel,
            schedulers: &schedulers,
            suites: &built,
        },
    )?;
    let (cpio, mib) = l1_initramfs::write_temp(&archive)?;
    drop(archive);

    progress(
        started,
        &format!(
            "boot L1 ({} vCPU, {} MiB, initramfs {mib} MiB, deadline {:?})",
            o.machine.vcpus, o.machine.memory_mib, o.machine.deadline
        ),
    );
    let mut summary = Summary::default();
    let exit = l1_boot::run(&o.machine, &kernel.vmlinuz, cpio, &mut |line| {
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
    // ktstr-qemu takes a "Kernel panic - not syncing" anywhere on L1's console
    // for L1's own panic, and L1 relays the L2 panics that the harness's crash
    // tests provoke and print. After the end marker every suite has reported
    // and L1 powered off, so that reading is not how L1 ended.
    let l1_ended = match exit {
        ktstr_qemu::ExitKind::Shutdown => None,
        ktstr_qemu::ExitKind::GuestPanic if summary.ended => None,
        other => Some(format!("{other:?}")),
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
    let failures = summary.failures(&names, l1_ended);
    let t = summary.totals();
    println!(
        "nested tier: {} passed, {} failed, {} ignored ({} s)",
        t.passed,
        t.failed,
        t.ignored,
        started.elapsed().as_secs()
    );
    for f in &failures {
        println!("nested tier FAILED: {f}");
    }
    Ok(failures.is_empty())
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
