//! Measures ktstr-vmm against QEMU-KVM inside one L1 run (see
//! `ktstr_nested::figures`):
//!
//! ```text
//! ktstr-nested-figures [--runs N] [--only boot,restore,harness] [--package DEB]
//!                      [--l1-qemu system|backports|PATH]
//!                      [--l1-memory-mib M] [--deadline-min MIN]
//! ```
//! The L2 kernel is `KTSTR_NESTED_KERNEL`, else the test kernel. Streams
//! L1's console as `L1| ...`, then prints the table again with the ratios.
//! Not part of `.ci/run`: the figures are for the README, not a verdict.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ktstr_nested::figures::{self, Groups, KERNEL_SNAPSHOT_FIGURE, Row};
use ktstr_nested::l1_boot::{self, L1End, L1Machine};
use ktstr_nested::markers::{FAIL, FIGURE};
use ktstr_nested::{Error, init_script, l1_initramfs, l1_kernel, l1_qemu, suite};

struct Options {
    runs: u32,
    groups: Groups,
    package: String,
    /// `--l1-qemu`: see `ktstr_nested::l1_qemu::resolve`.
    qemu: Option<String>,
    machine: L1Machine,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        runs: 5,
        groups: Groups::ALL,
        package: l1_kernel::DEFAULT_PACKAGE.to_owned(),
        qemu: None,
        machine: L1Machine {
            deadline: Duration::from_secs(60 * 60),
            ..L1Machine::default()
        },
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{a} {v}: {e}"));
        match a.as_str() {
            "--runs" => o.runs = number(value()?)? as u32,
            "--only" => o.groups = value()?.parse()?,
            "--package" => o.package = value()?,
            "--l1-qemu" => o.qemu = Some(value()?),
            "--l1-memory-mib" => o.machine.memory_mib = number(value()?)?,
            "--deadline-min" => o.machine.deadline = Duration::from_secs(60 * number(value()?)?),
            _ => {
                return Err(format!(
                    "unknown argument {a} (see the doc comment of ktstr-nested-figures)"
                ));
            }
        }
    }
    Ok(o)
}

fn progress(started: Instant, text: &str) {
    eprintln!("== figures [{:>4}s] {text}", started.elapsed().as_secs());
}

/// Runs L1 and returns the table; `Err` when L1 could not run.
fn run(o: &Options, started: Instant) -> Result<(Vec<Row>, Vec<String>), Error> {
    let l2_kernel = match std::env::var_os("KTSTR_NESTED_KERNEL").filter(|k| !k.is_empty()) {
        Some(k) => PathBuf::from(k),
        None => ktstr_testenv::find_kernel()?,
    };
    let busybox = ktstr_testenv::find_busybox()?;
    let dir = l1_kernel::package_dir(&o.package).ok_or_else(|| {
        ktstr_testenv::Missing::new("a cache directory", "set HOME or XDG_CACHE_HOME")
    })?;
    let kernel = l1_kernel::fetch(&o.package, &dir, &mut |p| progress(started, p))?;
    let machine = L1Machine {
        qemu: l1_qemu::resolve(o.qemu.as_deref(), &mut |p| progress(started, p))?,
        ..o.machine.clone()
    };
    progress(started, &format!("L1 QEMU {}", machine.qemu.label));
    let root = std::env::current_dir().map_err(|e| Error::io("read", ".", e))?;
    progress(
        started,
        "build the stopwatch, ktstr-vmm's boot example and the test binaries",
    );
    let tools = figures::build_tools(&root, ktstr_testenv::find_qemu()?)?;
    let built = suite::build(&root, &figures::suites(), false)?;

    progress(
        started,
        &format!("build L1's initramfs (L2 kernel {})", l2_kernel.display()),
    );
    let mut archive = l1_initramfs::base(&kernel, &busybox, &l2_kernel)?;
    let paths = l1_initramfs::add_suites(&mut archive, &built)?;
    figures::add_to(&mut archive, &tools, figures::l2_initramfs(&busybox)?)?;
    let (Some(kernel_snapshot), Some(harness)) = (paths.first(), paths.get(1)) else {
        return Err(Error::NoTestBinary {
            suite: "ktstr-vmm/kernel_snapshot, ktstr-examples/schedulers".to_owned(),
        });
    };
    let modules: Vec<&str> = kernel.modules.iter().map(|(n, _)| *n).collect();
    let init = init_script::prologue(&modules)
        + &figures::script(o.runs, o.groups, kernel_snapshot, harness);
    archive.add_file("init", 0o755, init.into_bytes())?;
    let (cpio, mib) = l1_initramfs::write_temp(&archive)?;
    drop(archive);

    progress(
        started,
        &format!(
            "boot L1 ({} vCPU, {} MiB, initramfs {mib} MiB); {} runs per figure",
            machine.vcpus, machine.memory_mib, o.runs
        ),
    );
    let mut rows = Vec::new();
    let mut notes = vec![format!("host load at L1's start: {}", host_load())];
    let end = l1_boot::run(&machine, &kernel.vmlinuz, cpio, &mut |line| {
        println!("L1| {line}");
        if let Some(row) = Row::parse(line) {
            progress(
                started,
                &format!("figure {}: median {:?} ms", row.name, row.median_ms),
            );
            rows.push(row);
        } else if line.starts_with(KERNEL_SNAPSHOT_FIGURE)
            || line.starts_with(&format!("{FIGURE}-LOAD"))
            || line.starts_with(FAIL)
        {
            notes.push(line.to_owned());
        }
    })?;
    notes.push(format!("host load at L1's end: {}", host_load()));
    match end {
        L1End::Exited(ktstr_qemu::ExitKind::Shutdown) => {}
        L1End::Exited(exit) => notes.push(format!("L1 ended with {exit:?}")),
        L1End::Stalled(s) => notes.push(format!(
            "L1 stopped making progress (no heartbeat for {} s) and was killed",
            s.silent_s
        )),
    }
    Ok((rows, notes))
}

fn main() -> ExitCode {
    let started = Instant::now();
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ktstr-nested-figures: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&options, started) {
        Ok((rows, notes)) => {
            println!(
                "\nfigures inside L1 (cargo run -p ktstr-nested --bin ktstr-nested-figures -- --runs {}):",
                options.runs,
            );
            print!("{}", figures::table(&rows, &notes));
            let complete = !rows.is_empty() && rows.iter().all(|r| r.failed == 0);
            if complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            println!("figures FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The host's `/proc/loadavg` (the figures are only as quiet as the host).
fn host_load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}
