//! PID 1: bring the guest up, serve the host, power off.
//!
//! # How the init gets into a user's binary
//!
//! Any executable that links this crate carries [`PID1_HOOK`], a function
//! pointer placed in `.init_array`. The C runtime calls every `.init_array`
//! entry before `main` (and so before the libtest harness), and rustc keeps
//! `#[used]` statics of linked rlibs through its synthetic symbols object.
//! The hook returns at once unless the process is PID 1 *and* the kernel
//! passed `KTSTR_INIT=1` (the harness appends it to the kernel command
//! line; the kernel hands unknown `key=value` words to init as environment),
//! so a container that runs a test binary as PID 1 is unaffected. When both
//! hold it runs [`run_as_init`], which never returns. The host therefore
//! packs `std::env::current_exe()` as `/init` and nothing extra is built.
//! The crate must be linked: depend on it and reference it (for instance
//! `use ktstr_guest as _;`), which `ktstr-harness` users do implicitly.

pub mod kaslr;
pub mod mounts;
pub mod panic;

use std::fs::File;
use std::time::{Duration, Instant};

use ktstr_wire::{Lifecycle, LogLevel, Message, Phase, SysReady};

use crate::error::Error;
use crate::outbox::Outbox;
use crate::sched::Scheduler;
use crate::transport::{self, Port};

/// The environment variable (from the kernel command line) that arms the hook.
pub const INIT_ENV: &str = "KTSTR_INIT";
/// How long to wait for the virtio port to appear.
const PORT_WAIT: Duration = Duration::from_secs(10);

/// Called by the C runtime before `main`; see the module docs.
#[used]
#[unsafe(link_section = ".init_array")]
pub static PID1_HOOK: extern "C" fn() = pid1_hook;

extern "C" fn pid1_hook() {
    if should_run_as_init() {
        run_as_init();
    }
    // Init's scenario child (see `crate::scenario`): never on a host.
    if let Some(spec) = std::env::var_os(crate::scenario::SCENARIO_ENV) {
        crate::scenario::child_main(std::path::Path::new(&spec));
    }
}

/// PID 1 with `KTSTR_INIT=1` in the environment.
pub fn should_run_as_init() -> bool {
    // SAFETY: getpid has no preconditions.
    let pid1 = unsafe { libc::getpid() } == 1;
    pid1 && std::env::var_os(INIT_ENV).is_some_and(|v| v == "1")
}

/// Run the guest init and power off; the exit code goes to the host in
/// `Exit` (sent by the request loop) and to COM1.
pub fn run_as_init() -> ! {
    panic::install();
    let code = match init_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ktstr-init: {e}");
            1
        }
    };
    eprintln!("KTSTR-INIT-EXIT rc={code}");
    power_off()
}

fn init_main() -> Result<i32, Error> {
    let warnings = mounts::mount_all().map_err(|e| Error::io(e.to_string(), e.source))?;
    panic::open_com2();
    install_busybox();
    let file = open_bulk_waiting()?;
    let tx = file
        .get_ref()
        .try_clone()
        .map_err(|e| Error::io("dup bulk port", e))?;
    let out = Outbox::new(Box::new(tx));
    let mut rx = file;
    out.send(&Message::Lifecycle(Lifecycle::new(Phase::InitStarted)))?;
    for w in &warnings {
        out.log(LogLevel::Warning, &w.to_string());
    }
    let (text, phys) = kaslr::read();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpus = u32::try_from(cpus).unwrap_or(u32::MAX);
    // In the snapshot taken at `SystemReady`, so every restore has one.
    crate::scenario::prepare();
    out.send(&Message::SysReady(SysReady::new(cpus, text, phys, 0)))?;
    // Quiescent point: everything per-test arrives as requests from here on,
    // so a snapshot taken now serves any test.
    out.send(&Message::Lifecycle(Lifecycle::new(Phase::SystemReady)))?;
    let mut sched = Scheduler::system();
    crate::dispatch::serve(&mut rx, &out, &mut sched)
}

fn open_bulk_waiting() -> Result<Port<File>, Error> {
    let until = Instant::now() + PORT_WAIT;
    loop {
        match transport::open_bulk() {
            Ok(p) => return Ok(p),
            Err(e) if Instant::now() >= until => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// busybox applets as /bin links, so `exec` finds `sh`, `uname`, ...
fn install_busybox() {
    let bb = std::path::Path::new("/bin/busybox");
    if bb.is_file() {
        let mut cmd = std::process::Command::new(bb);
        cmd.args(["--install", "-s", "/bin"]);
        if let Ok(child) = crate::reaper::spawn(&mut cmd) {
            crate::reaper::wait(child.pid, Instant::now() + Duration::from_secs(10));
        }
    }
    // SAFETY: single-threaded here (before any relay or monitor thread).
    unsafe { std::env::set_var("PATH", "/bin:/sbin:/usr/bin:/usr/sbin") };
}

/// Flush and reboot (the QEMU backend's `reboot=t` + `-no-reboot` turn it
/// into a VM exit).
pub fn power_off() -> ! {
    // Give the virtio port a moment to hand the last frames to the host:
    // a write returns once queued, not once the host has read it.
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: sync/reboot take no pointers.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_AUTOBOOT);
    }
    std::process::exit(1)
}
