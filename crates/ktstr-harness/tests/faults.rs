//! Issue 17 (fault injection) on QEMU TCG with the real kernel: each fault
//! ends in a defined, typed result within its deadline, and leaves no
//! thread, fd, child process or file behind (counted before and after).
//!
//! The faulty schedulers are this test binary itself, packed as a scheduler
//! and run with a `--ktstr-fault-*` first argument (see [`fault_scheduler`]).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{config, needs, powered_off_cleanly, scheduler, test_env, vm_slot};
use ktstr_harness::{HarnessError, Session};
use ktstr_testenv::{Missing, Need};

const EXEC: Duration = Duration::from_secs(120);
/// The name the faulty scheduler is packed under.
const FAULT_SCHED: &str = "ktstr-fault-sched";
/// First arguments that turn this binary into a faulty scheduler.
const FORK_AND_EXIT: &str = "--ktstr-fault-fork-and-exit";
const BLOCK_SIGINT_EXEC: &str = "--ktstr-fault-block-sigint-exec";

/// What a case could leak, from this process's point of view.
#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    /// Thread ids: the runner's idle workers may exit during a case, so a
    /// leak is a thread that was not there before.
    threads: BTreeSet<String>,
    fds: usize,
    children: usize,
    files: usize,
}

/// Prefix of the session cache dirs of `common::config`: their contents
/// (the cached initramfs) grow by design, the dir itself is counted.
const CACHE_PREFIX: &str = "ktstr-harness-cache-";

/// Files anywhere under `dir` (recursively), cache contents excepted.
fn files_under(dir: &Path) -> usize {
    let Ok(read) = std::fs::read_dir(dir) else {
        return 0;
    };
    read.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() && !e.file_name().to_string_lossy().starts_with(CACHE_PREFIX) => {
                1 + files_under(&e.path())
            }
            _ => 1,
        })
        .sum()
}

/// Processes whose parent is this one (`/proc/<pid>/stat` field 4).
fn children() -> usize {
    let me = std::process::id().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    procs
        .flatten()
        .filter_map(|p| std::fs::read_to_string(p.path().join("stat")).ok())
        .filter(|stat| {
            // The command name may hold spaces: fields count from its ')'.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                == Some(me.as_str())
        })
        .count()
}

/// This process's thread ids.
fn threads() -> BTreeSet<String> {
    std::fs::read_dir("/proc/self/task").map_or_else(
        |_| BTreeSet::new(),
        |d| {
            d.flatten()
                .map(|t| t.file_name().to_string_lossy().into_owned())
                .collect()
        },
    )
}

impl Footprint {
    /// Nothing more than `before` holds.
    fn within(&self, before: &Footprint) -> bool {
        self.threads.is_subset(&before.threads)
            && (self.fds, self.children, self.files) == (before.fds, before.children, before.files)
    }

    fn now(dirs: &[&Path]) -> Footprint {
        Footprint {
            threads: threads(),
            fds: common::stress::Usage::of_self().fds,
            children: children(),
            files: dirs.iter().map(|d| files_under(d)).sum(),
        }
    }
}

/// Cases run one at a time, each wholly under this lock, so one case's
/// threads, fds and files are not counted as another's leak.
static ONE_CASE: Mutex<()> = Mutex::new(());

/// Wait for the case lock; every case takes it first thing.
fn one_case() -> std::sync::MutexGuard<'static, ()> {
    ONE_CASE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run `case` (the caller holds [`one_case`] and any VM slot); assert it
/// ended within `deadline` and that the footprint over `dirs` (plus the
/// private temp dir) is unchanged afterwards.
fn no_leak(dirs: &[&Path], deadline: Duration, case: impl FnOnce()) {
    let tmp = std::env::temp_dir();
    let mut all = dirs.to_vec();
    all.push(&tmp);
    let before = Footprint::now(&all);
    let started = Instant::now();
    case();
    let took = started.elapsed();
    assert!(took <= deadline, "took {took:?}, deadline {deadline:?}");
    // A just-exited QEMU may still be reaped by its waiter thread.
    let settle = Instant::now() + Duration::from_secs(5);
    let mut after = Footprint::now(&all);
    while !after.within(&before) && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(100));
        after = Footprint::now(&all);
    }
    assert!(
        after.within(&before),
        "leaked: before {before:?}, after {after:?}"
    );
    eprintln!("case took {took:.2?}; footprint {after:?}");
}

/// This binary without DWARF under the faulty scheduler's name in `dir`
/// (copied as is if objcopy fails: only bigger).
fn fault_scheduler(dir: &Path) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let out = dir.join(FAULT_SCHED);
    let stripped = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(&exe)
        .arg(&out)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(&exe, &out).expect("copy test exe");
    }
    out
}

/// The tmpfs below is small: a cache directory that fills at once.
fn root() -> Result<(), Missing> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        Ok(())
    } else {
        Err(Missing::new(
            "root (to mount a tiny tmpfs as a full cache directory)",
            "run as root",
        ))
    }
}

/// A cache directory with no room for the initramfs: `Session::boot` fails
/// with an error naming the directory, no VM starts, nothing is left.
fn a_full_cache_directory_is_a_clear_error() {
    let _one = one_case();
    let _slot = vm_slot();
    let env = test_env();
    let mount = tempfile::Builder::new()
        .prefix("ktstr-full-cache-")
        .tempdir()
        .expect("mount point");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "ktstr-full-cache"])
        .arg(mount.path())
        .status()
        .expect("run mount");
    assert!(mounted.success(), "mount tmpfs");
    let (mut cfg, _cache) = config(&env, &[]);
    cfg.cache_dir = mount.path().to_owned();
    cfg.snapshot_dir = mount.path().join("snapshots");
    let mut result = None;
    no_leak(&[], Duration::from_secs(60), || {
        result = Some(Session::boot(&cfg).err());
    });
    let unmounted = Command::new("umount").arg(mount.path()).status();
    let err = result
        .flatten()
        .expect("boot must fail on a full cache directory");
    assert!(unmounted.is_ok_and(|s| s.success()), "umount");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            HarnessError::Io { .. } | HarnessError::Initramfs(_) | HarnessError::Compress { .. }
        ),
        "{err:?}"
    );
    assert!(
        text.contains(&mount.path().display().to_string()),
        "the error does not name the directory: {text}"
    );
    assert!(
        text.contains("No space left on device"),
        "the error does not say why: {text}"
    );
}

/// A "scheduler" that forks a child and exits 0 without attaching: its
/// typed error, and the session still serves requests.
fn a_scheduler_that_forks_and_exits_is_named() {
    let _one = one_case();
    let _slot = vm_slot();
    let env = test_env();
    let dir = tempfile::tempdir().expect("dir");
    let fault = fault_scheduler(dir.path());
    let (mut cfg, _cache) = config(&env, &[]);
    cfg.schedulers = vec![fault.clone()];
    no_leak(&[], Duration::from_secs(150), || {
        let mut s = Session::boot(&cfg).expect("boot");
        let err = s
            .start_scheduler(&fault, &[FORK_AND_EXIT], Duration::from_secs(60))
            .expect_err("must not attach");
        match &err {
            HarnessError::SchedulerExitedBeforeAttach { name, exit, .. } => {
                assert_eq!(name, FAULT_SCHED, "{err}");
                assert_eq!(exit, "exit code 0", "{err}");
            }
            other => panic!("wrong error: {other}"),
        }
        let after = s.exec(&["echo", "still-serving"], EXEC).expect("exec");
        assert_eq!(after.stdout, b"still-serving\n");
        powered_off_cleanly(s);
    });
}

/// A real scheduler (scx_simple) that attaches with SIGINT blocked, so it
/// never sees the stop request: the stop path escalates to SIGKILL after
/// the grace period, the kernel detaches it, and the session goes on.
fn a_scheduler_deaf_to_sigint_is_killed_and_detached() {
    let _one = one_case();
    let _slot = vm_slot();
    const GRACE: Duration = Duration::from_secs(2);
    let env = test_env();
    let dir = tempfile::tempdir().expect("dir");
    let fault = fault_scheduler(dir.path());
    let simple = scheduler("scx_simple");
    let (mut cfg, _cache) = config(&env, &[]);
    cfg.schedulers = vec![fault.clone(), simple.clone()];
    let inner = ktstr_harness::GuestImage::guest_path(&simple);
    no_leak(&[], Duration::from_secs(180), || {
        let mut s = Session::boot(&cfg).expect("boot");
        let att = s
            .start_scheduler(
                &fault,
                &[BLOCK_SIGINT_EXEC, &inner],
                Duration::from_secs(120),
            )
            .expect("wrapped scx_simple attaches");
        assert_eq!(att.name, "simple");
        let asked = Instant::now();
        let det = s.stop_scheduler(GRACE).expect("stop");
        let stopped = asked.elapsed();
        assert!(det.killed, "SIGINT is blocked, SIGKILL was needed: {det:?}");
        assert_eq!(det.exit.signal, Some(libc::SIGKILL), "{det:?}");
        assert!(
            stopped >= GRACE && stopped < GRACE + Duration::from_secs(30),
            "stop took {stopped:?}"
        );
        let state = s
            .exec(&["cat", "/sys/kernel/sched_ext/state"], EXEC)
            .expect("state");
        assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "disabled");
        powered_off_cleanly(s);
    });
}

/// A guest writing 64 MiB of garbage (frame magic included) on the bulk
/// channel: the host decoder resyncs (the garbage request's own reply and
/// a later exec come through) and host memory stays bounded.
fn bulk_channel_garbage_is_skipped_with_bounded_memory() {
    const GARBAGE: u64 = 64 << 20;
    let _one = one_case();
    let _slot = vm_slot();
    let env = test_env();
    let (cfg, _cache) = config(&env, &[]);
    no_leak(&[], Duration::from_secs(300), || {
        let mut s = Session::boot(&cfg).expect("boot");
        let rss = || common::stress::Usage::of_self().rss_kib;
        let before = rss();
        let t = Instant::now();
        s.flood_bulk_channel(GARBAGE)
            .expect("garbage, then its reply");
        let took = t.elapsed();
        let after = s.exec(&["echo", "after-garbage"], EXEC).expect("exec");
        assert_eq!(after.stdout, b"after-garbage\n");
        let grown = rss().saturating_sub(before);
        eprintln!("64 MiB of garbage skipped in {took:.2?}; host RSS grew {grown} KiB");
        assert!(
            grown < 16 << 10,
            "host RSS grew {grown} KiB over 64 MiB of garbage"
        );
        powered_off_cleanly(s);
    });
}

/// Issue 17's stress, bounded: 2 processes × 3 sessions at once (this
/// binary as the workers), all clean, and the driver holds no more fds or
/// threads after than before.
fn stress_2_procs_by_3_sessions_has_no_flake() {
    let _one = one_case();
    let cache = tempfile::Builder::new()
        .prefix(CACHE_PREFIX)
        .tempdir()
        .expect("cache");
    let exe = std::env::current_exe().expect("test exe");
    let mut report = None;
    // Each session waits for a slot; the first boots, the rest resume.
    no_leak(&[], Duration::from_secs(240), || {
        report = Some(common::stress::drive(&exe, cache.path(), 2, 3).expect("drive"));
    });
    let report = report.expect("report");
    eprint!("{report}");
    assert!(report.clean(), "{report}");
    assert_eq!(report.workers.len(), 2, "{report}");
}

/// Run as a faulty scheduler in the guest if the first argument says so.
fn run_as_fault_scheduler() -> Option<std::process::ExitCode> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some(FORK_AND_EXIT) => {
            // The child outlives its parent; guest init reaps the orphan.
            let _child = Command::new("sleep").arg("3").spawn();
            Some(std::process::ExitCode::SUCCESS)
        }
        Some(BLOCK_SIGINT_EXEC) => {
            use std::os::unix::process::CommandExt;
            // SAFETY: a zeroed sigset_t is valid storage for sigemptyset,
            // and this process has one thread here (before any runner).
            unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGINT);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            }
            // The mask survives exec; the scheduler's SIGINT handler never runs.
            let err = Command::new(args.get(2)?).args(&args[3..]).exec();
            eprintln!("exec {:?}: {err}", args.get(2));
            Some(std::process::ExitCode::FAILURE)
        }
        _ => None,
    }
}

fn main() -> std::process::ExitCode {
    if let Some(code) = run_as_fault_scheduler().or_else(common::stress::run_as_worker) {
        return code;
    }
    // A private temp dir, so the cases count only their own temp files
    // (other jobs on the machine write to /tmp too).
    let tmp = tempfile::Builder::new()
        .prefix("ktstr-faults-tmp-")
        .tempdir()
        .expect("private temp dir");
    // SAFETY: no other thread exists yet (the runner starts below).
    unsafe { std::env::set_var("TMPDIR", tmp.path()) };
    let tests = [
        ktstr_testenv::tests![&[needs(&[]), vec![Need::Probe(root)]].concat(); a_full_cache_directory_is_a_clear_error],
        ktstr_testenv::tests![&needs(&[]); a_scheduler_that_forks_and_exits_is_named],
        ktstr_testenv::tests![&needs(&["scx_simple"]); a_scheduler_deaf_to_sigint_is_killed_and_detached],
        ktstr_testenv::tests![&needs(&[]); stress_2_procs_by_3_sessions_has_no_flake, bulk_channel_garbage_is_skipped_with_bounded_memory],
    ];
    let code = ktstr_testenv::run(tests.into_iter().flatten().collect());
    drop(tmp);
    code
}
