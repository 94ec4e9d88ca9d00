//! Issue 17's stress run, shared by `examples/stress.rs` (the long run) and
//! the faults suite (a bounded subset): P worker processes × R sessions each
//! at once under the machine-wide VM slots. Each session boots (or resumes
//! the shared snapshot), runs one exec, and shuts down; any error or wrong
//! answer is a flake. Workers report on stdout, one `ktstr-stress` line per
//! run and per footprint, and the driver sums them up.
#![allow(dead_code)]

use std::fmt;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ktstr_harness::{GuestExit, Session, SessionConfig};

/// The first argument that makes the stress binary a worker.
pub const WORKER: &str = "--ktstr-stress-worker";
const TAG: &str = "ktstr-stress";

/// What a process holds: threads, open fds, resident memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub threads: usize,
    pub fds: usize,
    pub rss_kib: u64,
}

impl Usage {
    pub fn of_self() -> Usage {
        let count = |d| std::fs::read_dir(d).map_or(0, |d| d.count());
        let rss_kib = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0);
        Usage {
            threads: count("/proc/self/task"),
            fds: count("/proc/self/fd"),
            rss_kib,
        }
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} threads, {} fds, {} KiB RSS",
            self.threads, self.fds, self.rss_kib
        )
    }
}

/// One session: boot or resume, one exec, shutdown; `Err` says what broke.
fn one_run(cfg: &SessionConfig) -> Result<(), String> {
    let _slot = ktstr_testenv::vm_slot();
    let mut s = Session::boot(cfg).map_err(|e| format!("boot: {e}"))?;
    let r = s
        .exec(&["echo", "stress"], Duration::from_secs(60))
        .map_err(|e| format!("exec: {e}"))?;
    if r.stdout != b"stress\n" || r.code != Some(0) {
        return Err(format!("exec answered {r:?}"));
    }
    let end = s.shutdown().map_err(|e| format!("shutdown: {e}"))?;
    match end.exit {
        GuestExit::Exited(0) => Ok(()),
        other => Err(format!("ended {other:?}")),
    }
}

/// If this process is a worker (`WORKER runs` as its first arguments):
/// its runs, with the kernel of `ktstr_testenv` and the cache the driver
/// named. `None`: not a worker.
pub fn run_as_worker() -> Option<std::process::ExitCode> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(WORKER) {
        return None;
    }
    let runs = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(1);
    let setup = ktstr_testenv::find_kernel()
        .map_err(|e| e.to_string())
        .and_then(|k| match std::env::var_os(CACHE_ENV) {
            Some(c) => Ok(config(&k, Path::new(&c))),
            None => Err(format!("{CACHE_ENV} is unset")),
        });
    Some(match setup {
        Ok(cfg) => {
            worker(&cfg, runs);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("stress worker: {e}");
            std::process::ExitCode::FAILURE
        }
    })
}

/// A worker: `runs` sessions in this process, each reported on stdout,
/// then this process's usage before and after them all.
pub fn worker(cfg: &SessionConfig, runs: usize) {
    let before = Usage::of_self();
    for _ in 0..runs {
        let t = Instant::now();
        let res = one_run(cfg);
        let ms = t.elapsed().as_millis();
        match res {
            Ok(()) => println!("{TAG} ok {ms}"),
            Err(e) => println!("{TAG} flake {ms} {}", e.replace('\n', " | ")),
        }
    }
    let after = Usage::of_self();
    println!(
        "{TAG} usage {} {} {} {} {} {}",
        before.threads, before.fds, before.rss_kib, after.threads, after.fds, after.rss_kib
    );
}

/// What the driver saw.
#[derive(Debug, Default)]
pub struct Report {
    pub procs: usize,
    pub runs: usize,
    pub times: Vec<Duration>,
    pub flakes: Vec<String>,
    /// Workers that ended abnormally (not a clean exit with all its lines).
    pub broken_workers: Vec<String>,
    pub driver: (Usage, Usage),
    /// Each worker's usage before and after its runs.
    pub workers: Vec<(Usage, Usage)>,
    pub wall: Duration,
}

impl Report {
    pub fn total(&self) -> usize {
        self.procs * self.runs
    }

    /// Every run reported, none flaked, every worker ended well.
    pub fn clean(&self) -> bool {
        self.flakes.is_empty() && self.broken_workers.is_empty() && self.times.len() == self.total()
    }

    fn percentile(&self, p: usize) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t.get((t.len() * p / 100).min(t.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bad = self.flakes.len() + self.total().saturating_sub(self.times.len());
        writeln!(
            f,
            "{} procs x {} runs = {} sessions in {:.1?}: {} flakes ({:.1}%)",
            self.procs,
            self.runs,
            self.total(),
            self.wall,
            bad,
            100.0 * bad as f64 / self.total().max(1) as f64
        )?;
        writeln!(
            f,
            "per run: p50 {:.2?}, p90 {:.2?}",
            self.percentile(50),
            self.percentile(90)
        )?;
        writeln!(
            f,
            "driver before: {}; after: {}",
            self.driver.0, self.driver.1
        )?;
        for (i, (b, a)) in self.workers.iter().enumerate() {
            writeln!(f, "worker {i} before: {b}; after: {a}")?;
        }
        for e in self.flakes.iter().chain(&self.broken_workers) {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// The environment variable naming the workers' shared cache dir.
pub const CACHE_ENV: &str = "KTSTR_STRESS_CACHE";

/// Run `procs` copies of `exe WORKER runs` at once, sharing `cache`, and
/// gather their lines.
pub fn drive(exe: &Path, cache: &Path, procs: usize, runs: usize) -> std::io::Result<Report> {
    let before = Usage::of_self();
    let started = Instant::now();
    let children = (0..procs)
        .map(|_| {
            Command::new(exe)
                .arg(WORKER)
                .arg(runs.to_string())
                .env(CACHE_ENV, cache)
                .stdout(Stdio::piped())
                .spawn()
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut report = Report {
        procs,
        runs,
        ..Report::default()
    };
    // Read each worker to its end in turn: the others block on a full pipe
    // at worst, and a line is 30 bytes.
    for mut child in children {
        if let Some(out) = child.stdout.take() {
            for line in std::io::BufReader::new(out).lines() {
                parse(&line?, &mut report);
            }
        }
        let status = child.wait()?;
        if !status.success() {
            report.broken_workers.push(format!("worker {status}"));
        }
    }
    report.wall = started.elapsed();
    report.driver = (before, Usage::of_self());
    Ok(report)
}

fn parse(line: &str, report: &mut Report) {
    let mut words = line.split(' ');
    if words.next() != Some(TAG) {
        return;
    }
    let kind = words.next();
    let ms: Option<u64> = words.next().and_then(|w| w.parse().ok());
    match (kind, ms) {
        (Some("ok"), Some(ms)) => report.times.push(Duration::from_millis(ms)),
        (Some("flake"), Some(ms)) => {
            report.times.push(Duration::from_millis(ms));
            report.flakes.push(words.collect::<Vec<_>>().join(" "));
        }
        (Some("usage"), Some(first)) => {
            let n: Vec<u64> = std::iter::once(first)
                .chain(words.filter_map(|w| w.parse().ok()))
                .collect();
            if let [bt, bf, br, at, af, ar] = n[..] {
                let u = |t: u64, f: u64, r| Usage {
                    threads: t as usize,
                    fds: f as usize,
                    rss_kib: r,
                };
                report.workers.push((u(bt, bf, br), u(at, af, ar)));
            }
        }
        _ => {}
    }
}

/// The session config of every run: snapshots on in one shared cache, so
/// the first session boots and the rest resume.
pub fn config(kernel: &Path, cache: &Path) -> SessionConfig {
    let mut cfg = SessionConfig::new(kernel);
    cfg.cache_dir = cache.to_owned();
    cfg.snapshot_dir = cache.join("snapshots");
    cfg.snapshots = true;
    cfg
}
