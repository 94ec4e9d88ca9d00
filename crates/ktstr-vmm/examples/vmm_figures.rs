//! Prints the VMM's own figures with tiny guests (no Linux):
//! - boot: VM build start -> the guest's first port write, median/p99 of 100
//! - kill: `kill()` call -> every vCPU out of KVM_RUN (when `kill()` returns),
//!   and -> `run()` returned (includes joining threads and tearing the VM down)
//! - memory: resident memory of the VMM beyond the guest's own pages
//!
//! cargo run --release --example vmm_figures [-- --boots N --kills N]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iced_x86::code_asm::*;
use ktstr_vmm::{ExitKind, IoAction, IoDevice, IoSpace, VmBuilder};

const LOAD: u64 = 0x10_0000;
const PROBE_PORT: u64 = 0x510;

/// Records when the guest first wrote to it, then asks for a reboot.
struct FirstWrite(Arc<Mutex<Option<Instant>>>);

impl IoDevice for FirstWrite {
    fn read(&mut self, _: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write(&mut self, _: u64, _: &[u8]) -> IoAction {
        self.0
            .lock()
            .expect("lock")
            .get_or_insert_with(Instant::now);
        IoAction::Reboot
    }
}

fn asm(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("assembler");
    f(&mut a).expect("assemble");
    a.assemble(LOAD).expect("encode")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{name}: n={} p50={:.3} ms p99={:.3} ms max={:.3} ms",
        v.len(),
        percentile(&v, 0.5).as_secs_f64() * 1e3,
        percentile(&v, 0.99).as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3
    );
}

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Resident KiB of the mapping that starts at `addr`.
fn mapping_rss_kib(addr: u64) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line
            .split_once(' ')
            .filter(|(r, _)| r.contains('-') && !r.ends_with(':'))
        {
            inside = range
                .split('-')
                .next()
                .and_then(|s| u64::from_str_radix(s, 16).ok())
                == Some(addr);
        } else if inside && line.starts_with("Rss:") {
            return line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
        }
    }
    0
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1)?.parse().ok())
            .unwrap_or(default)
    };
    let (boots, kills) = (arg("--boots", 100), arg("--kills", 1000));
    println!("host KVM: {:?}", ktstr_vmm::compat::detect_host());

    let probe = asm(|a| {
        a.mov(dx, PROBE_PORT as u32)?;
        a.out(dx, al)?;
        a.jmp(LOAD)
    });
    let mut boot = Vec::new();
    for _ in 0..boots {
        let first = Arc::new(Mutex::new(None));
        let t0 = Instant::now();
        let vm = VmBuilder::new()
            .raw_image(probe.clone(), LOAD)
            .memory_mib(64)
            .device(
                IoSpace::Pio,
                PROBE_PORT,
                1,
                Box::new(FirstWrite(first.clone())),
            )
            .build()?;
        let outcome = vm.run()?;
        anyhow::ensure!(
            outcome.exit == ExitKind::Reboot,
            "probe guest ended {:?}",
            outcome.exit
        );
        let at = first
            .lock()
            .expect("lock")
            .ok_or_else(|| anyhow::anyhow!("no port write"))?;
        boot.push(at - t0);
    }
    summary("tiny boot (build -> first port write)", boot);

    let spin = asm(|a| {
        let mut l = a.create_label();
        a.set_label(&mut l)?;
        a.pause()?;
        a.jmp(l)
    });
    let (mut out_of_run, mut latency) = (Vec::new(), Vec::new());
    for i in 0..kills {
        let vm = VmBuilder::new()
            .raw_image(spin.clone(), LOAD)
            .memory_mib(16)
            .vcpus(1 + i % 2)
            .build()?;
        let handle = vm.interrupt_handle();
        let (tx, rx) = std::sync::mpsc::channel();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_micros(500 + (i as u64 * 37) % 1500));
            let t = Instant::now();
            handle.kill();
            let _ = tx.send((t, t.elapsed()));
        });
        let outcome = vm.run()?;
        let returned = Instant::now();
        killer
            .join()
            .map_err(|_| anyhow::anyhow!("killer panicked"))?;
        let (killed_at, kill_returned_after) = rx.recv()?;
        out_of_run.push(kill_returned_after);
        anyhow::ensure!(
            outcome.exit == ExitKind::Killed,
            "spinner ended {:?}",
            outcome.exit
        );
        latency.push(returned.saturating_duration_since(killed_at));
    }
    summary(
        "kill latency (kill() -> all vCPUs out of KVM_RUN)",
        out_of_run,
    );
    summary(
        "kill latency (kill() -> run() returned, VM torn down)",
        latency,
    );

    let guest_mib = 256;
    let before = rss_kib("VmRSS:");
    let vm = VmBuilder::new()
        .raw_image(spin, LOAD)
        .memory_mib(guest_mib)
        .vcpus(2)
        .build()?;
    let guest_addr =
        vm_memory::GuestMemoryBackend::get_host_address(vm.memory(), vm_memory::GuestAddress(0))?
            as u64;
    let handle = vm.interrupt_handle();
    let sampler = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let total = rss_kib("VmRSS:");
        let guest = mapping_rss_kib(guest_addr);
        handle.kill();
        (total, guest)
    });
    vm.run()?;
    let (total, guest) = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("sampler panicked"))?;
    println!(
        "memory: whole process RSS {total} KiB while running a {guest_mib} MiB, 2-vCPU guest; guest pages resident {guest} KiB; so the VMM process itself = {} KiB (RSS before creating this VM: {before} KiB)",
        total.saturating_sub(guest)
    );
    Ok(())
}
