//! Snapshot figures with tiny guests (no Linux). The guest touches
//! `--touch-mib` of memory (one write per page), asks for a snapshot through
//! the control port, then prints "R" on COM1 and halts.
//! - restore-to-first-output: `Vm::restore` call -> first COM1 byte, vs cold
//!   boot: `build()` call -> first COM1 byte (the cold guest touches its pages first)
//! - snapshot size: apparent and on disk (zero pages are holes)
//! - resident memory of 4 concurrent restores vs 4 concurrent cold boots,
//!   all 4 alive at once after each printed "R"
//!
//! The kernel figure (restore vs cold boot to the same marker) is printed by
//! `tests/kernel_snapshot.rs` ("FIGURE kernel").
//!
//! cargo run --release --example snapshot_figures [-- --runs 10 --touch-mib 64]

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use iced_x86::code_asm::*;
use ktstr_vmm::devices::control;
use ktstr_vmm::{
    AfterSnapshot, ExitKind, InterruptHandle, RestoreOptions, SnapshotPlan, SnapshotTrigger, Vm,
    VmBuilder,
};

const LOAD: u64 = 0x10_0000;
const TOUCH_BASE: u64 = 0x40_0000;
const MEMORY_MIB: u64 = 128;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10)]
    runs: usize,
    #[arg(long, default_value_t = 64)]
    touch_mib: u64,
}

fn guest(touch_mib: u64) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("assembler");
    let mut build = || -> Result<(), IcedError> {
        a.mov(rbx, TOUCH_BASE)?;
        a.mov(rcx, TOUCH_BASE + touch_mib * (1 << 20))?;
        let mut touch = a.create_label();
        a.set_label(&mut touch)?;
        a.mov(byte_ptr(rbx), 1)?;
        a.add(rbx, 4096)?;
        a.cmp(rbx, rcx)?;
        a.jb(touch)?;
        a.mov(dx, (control::BASE + control::OFFSET_REQUEST) as u32)?;
        a.mov(al, control::REQUEST_SNAPSHOT as u32)?;
        a.out(dx, al)?;
        a.mov(dx, 0x3f8u32)?;
        a.mov(al, b'R' as u32)?;
        a.out(dx, al)?;
        let mut halt = a.create_label();
        a.set_label(&mut halt)?;
        a.cli()?;
        a.hlt()?;
        a.jmp(halt)
    };
    build().expect("assemble");
    a.assemble(LOAD).expect("encode")
}

/// Signals the first COM1 byte.
#[derive(Clone, Default)]
struct FirstByte(Arc<(Mutex<Option<Instant>>, Condvar)>);
impl Write for FirstByte {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let (at, cv) = &*self.0;
        let mut at = at.lock().unwrap_or_else(|p| p.into_inner());
        if at.is_none() && !b.is_empty() {
            *at = Some(Instant::now());
            cv.notify_all();
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl FirstByte {
    fn wait(&self, limit: Duration) -> Option<Instant> {
        let (at, cv) = &*self.0;
        let guard = at.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = cv
            .wait_timeout_while(guard, limit, |at| at.is_none())
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }
}

/// Starts `vm` on a thread; returns its kill handle and join handle.
fn start(vm: Vm) -> (InterruptHandle, std::thread::JoinHandle<ktstr_vmm::Outcome>) {
    let kill = vm.interrupt_handle();
    let run = std::thread::spawn(move || vm.run().expect("run"));
    (kill, run)
}

fn cold(code: &[u8], sink: FirstByte) -> Vm {
    VmBuilder::new()
        .raw_image(code.to_vec(), LOAD)
        .memory_mib(MEMORY_MIB)
        .deadline(Duration::from_secs(60))
        .com1_sink(Box::new(sink))
        .build()
        .expect("build")
}

fn restore(path: &Path, sink: FirstByte) -> Vm {
    restore_with(path, sink, true)
}

fn restore_with(path: &Path, sink: FirstByte, verify_memory: bool) -> Vm {
    Vm::restore(
        path,
        RestoreOptions {
            verify_memory,
            deadline: Duration::from_secs(60),
            com1_sink: Some(Box::new(sink)),
            ..Default::default()
        },
    )
    .expect("restore")
}

/// Time from `make` starting to the first COM1 byte, then kills the VM.
fn first_output(make: impl FnOnce(FirstByte) -> Vm) -> Duration {
    let sink = FirstByte::default();
    let began = Instant::now();
    let (kill, run) = start(make(sink.clone()));
    let at = sink.wait(Duration::from_secs(30)).expect("guest printed");
    kill.kill();
    run.join().expect("join");
    at - began
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// (VmRSS, RssAnon, RssFile) in KiB.
fn rss() -> (u64, u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"), field("RssFile:"))
}

/// Runs 4 VMs at once, waits until each printed, samples RSS, kills them.
fn rss_of_four(make: &dyn Fn(FirstByte) -> Vm) -> (u64, u64, u64) {
    let before = rss();
    let mut running = Vec::new();
    for _ in 0..4 {
        let sink = FirstByte::default();
        running.push((start(make(sink.clone())), sink));
    }
    for (_, sink) in &running {
        sink.wait(Duration::from_secs(30)).expect("guest printed");
    }
    let during = rss();
    for ((kill, run), _) in running {
        kill.kill();
        let outcome = run.join().expect("join");
        assert_eq!(outcome.exit, ExitKind::Killed);
    }
    (
        during.0.saturating_sub(before.0),
        during.1.saturating_sub(before.1),
        during.2.saturating_sub(before.2),
    )
}

fn main() {
    let args = Args::parse();
    let code = guest(args.touch_mib);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("figures.snap");
    let outcome = VmBuilder::new()
        .raw_image(code.clone(), LOAD)
        .memory_mib(MEMORY_MIB)
        .deadline(Duration::from_secs(60))
        .snapshot(SnapshotPlan {
            path: path.clone(),
            trigger: SnapshotTrigger::GuestRequest,
            then: AfterSnapshot::Stop,
            key: "figures".into(),
        })
        .build()
        .expect("build")
        .run()
        .expect("run");
    assert_eq!(outcome.exit, ExitKind::Snapshotted);
    let info = outcome.snapshot.expect("snapshot info");

    let cold_times: Vec<_> = (0..args.runs)
        .map(|_| first_output(|s| cold(&code, s)))
        .collect();
    let restore_times: Vec<_> = (0..args.runs)
        .map(|_| first_output(|s| restore(&path, s)))
        .collect();
    let unverified_times: Vec<_> = (0..args.runs)
        .map(|_| first_output(|s| restore_with(&path, s, false)))
        .collect();
    println!(
        "guest: {MEMORY_MIB} MiB RAM, {} MiB touched before the snapshot point",
        args.touch_mib
    );
    println!(
        "first COM1 output: restore median {:?} vs cold boot median {:?} (n={})",
        median(restore_times),
        median(cold_times),
        args.runs
    );
    println!(
        "first COM1 output: restore without the memory checksum pass median {:?} (the cache verifies once when it builds/opens)",
        median(unverified_times)
    );
    println!(
        "snapshot: {:.1} MiB apparent, {:.1} MiB on disk, saved in {:?}",
        info.file_bytes as f64 / 1048576.0,
        info.disk_bytes as f64 / 1048576.0,
        info.save_time
    );
    let cold_rss = rss_of_four(&|s| cold(&code, s));
    let restore_rss = rss_of_four(&|s| restore(&path, s));
    println!(
        "RSS growth, 4 concurrent cold boots: {} MiB (anon {} MiB, file {} MiB)",
        cold_rss.0 >> 10,
        cold_rss.1 >> 10,
        cold_rss.2 >> 10
    );
    println!(
        "RSS growth, 4 concurrent restores:   {} MiB (anon {} MiB, file {} MiB; file pages are one shared page-cache copy)",
        restore_rss.0 >> 10,
        restore_rss.1 >> 10,
        restore_rss.2 >> 10
    );
}
