//! Booting L1 under QEMU TCG with `-cpu max` (AMD SVM with nested paging),
//! its console streamed line by line while it runs.

use std::io::Write;
use std::path::Path;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::Duration;

use ktstr_qemu::{Accel, ExitKind, Monitor, QemuBuilder};

use crate::error::Error;
use crate::l1_qemu::L1Qemu;
use crate::watchdog::{Heartbeat, STALL_AFTER, Stall};

/// How L1 runs.
#[derive(Clone, Debug)]
pub struct L1Machine {
    /// vCPUs. 1 keeps L1's own kernel clear of multi-threaded TCG's
    /// cross-modifying-code hazard (issue 17).
    pub vcpus: u32,
    /// Guest RAM: the unpacked initramfs plus the L2 guests.
    pub memory_mib: u64,
    /// L1 is killed and reported after this. Generous: a frozen L1 is
    /// the watchdog's ([`L1Machine::stall_after`]); this bounds a live but
    /// slow one (the default tier ran past 30 min at host load 7-10 on 2 cores).
    pub deadline: Duration,
    /// The QEMU L1 runs under (see [`crate::l1_qemu`]).
    pub qemu: L1Qemu,
    /// QEMU's `-cpu` for L1 (TCG): see [`L1_CPU`].
    pub cpu: String,
    /// L1 silent this long (no heartbeat) is killed as stalled.
    pub stall_after: Duration,
    /// Appended to L1's kernel command line (e.g. KVM module parameters,
    /// `kvm_amd.vgif=0`, to compare L1 set-ups).
    pub cmdline: String,
}

/// TCG's `max` CPU (AMD, with SVM and NPT), presented as a Zen 3 (family
/// 0x19): TCG's own family 0xF makes Linux take the LLC to span the whole
/// node whatever CPUID leaf 0x8000_001D says (`cacheinfo_amd_init_llc_id`),
/// so the AMD topology leaves ktstr-vmm gives L2 would not be read as on the
/// AMD hosts users have.
pub const L1_CPU: &str = "max,family=25,model=1";

impl Default for L1Machine {
    fn default() -> Self {
        L1Machine {
            vcpus: 1,
            memory_mib: ktstr_qemu::MAX_MEMORY_MIB,
            deadline: Duration::from_secs(45 * 60),
            qemu: L1Qemu::system(),
            cpu: L1_CPU.to_owned(),
            stall_after: STALL_AFTER,
            cmdline: String::new(),
        }
    }
}

/// How an L1 run ended.
#[derive(Clone, Debug)]
pub enum L1End {
    /// QEMU ended on its own, or at the deadline.
    Exited(ExitKind),
    /// L1 stopped beating (see [`crate::watchdog`]) and was killed.
    Stalled(Stall),
}

/// Boots `vmlinuz` with `initramfs`, calls `on_line` with each COM1 line as
/// it arrives, and returns how L1 ended; L1 silent for its `stall_after`
/// (no heartbeat on COM2) is killed and reported as [`L1End::Stalled`]. The
/// initramfs file is removed as soon as L1 runs (QEMU has read it by then),
/// so even a killed run leaves no hundreds of MiB behind.
pub fn run(
    machine: &L1Machine,
    vmlinuz: &Path,
    initramfs: tempfile::TempPath,
    on_line: &mut dyn FnMut(&str),
) -> Result<L1End, Error> {
    let (tx, rx) = channel();
    let heartbeat = Heartbeat::new();
    let mut builder = QemuBuilder::new(vmlinuz);
    if let Some(binary) = &machine.qemu.binary {
        builder = builder.qemu_binary(binary.clone());
    }
    for arg in machine.qemu.firmware_args() {
        builder = builder.extra_qemu_arg(arg);
    }
    let vm = builder
        .initramfs(initramfs.to_path_buf())
        .accel(Accel::Tcg)
        .vcpus(machine.vcpus)
        .memory_mib(machine.memory_mib)
        .deadline(machine.deadline)
        // After ktstr-qemu's own `-cpu max`; QEMU takes the last.
        .extra_qemu_arg("-cpu")
        .extra_qemu_arg(machine.cpu.clone())
        // Kernel warnings only: L1's log would interleave with the tests' output.
        .cmdline("quiet")
        .cmdline(&machine.cmdline)
        // A gone receiver means nobody reads any more: the line is dropped.
        .com1_sink(Box::new(LineSink::new(move |l: &str| {
            let _ = tx.send(l.to_owned());
        })))
        .com2_sink(Box::new(LineSink::new({
            let heartbeat = heartbeat.clone();
            move |l: &str| heartbeat.feed(l)
        })))
        .spawn()?;
    drop(initramfs);
    let kill = vm.kill_handle();
    let monitor = vm.monitor();
    let waiter = std::thread::Builder::new()
        .name("nested-l1".into())
        .spawn(move || vm.wait())
        .map_err(|e| Error::io("spawn the L1 waiter thread", "nested-l1", e))?;
    let mut stall = None;
    // The sink (and with it the channel) goes when QEMU's COM1 closes.
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => on_line(&line),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let silent = heartbeat.silent_for();
        if stall.is_none() && silent >= machine.stall_after {
            tracing::warn!(
                ?silent,
                "L1 stopped beating; dumping its vCPU state, then killing it"
            );
            stall = Some(Stall {
                silent_s: silent.as_secs(),
                last_uptime: heartbeat.last_uptime(),
                diagnostics: monitor.as_ref().map(diagnose).unwrap_or_default(),
            });
            kill.kill();
        }
    }
    let outcome = waiter
        .join()
        .map_err(|_| Error::io("join", "nested-l1", std::io::Error::other("panicked")))??;
    Ok(match stall {
        Some(s) => L1End::Stalled(s),
        None => L1End::Exited(outcome.exit),
    })
}

/// QEMU's view of a stuck L1: its vCPU registers twice (does it still move,
/// and is it in guest mode running L2?) and its local APIC (is a timer
/// interrupt pending but never taken?).
fn diagnose(monitor: &Monitor) -> Vec<String> {
    let timeout = Duration::from_secs(10);
    let mut out = Vec::new();
    for (i, cmd) in ["info registers", "info registers", "info lapic"]
        .iter()
        .enumerate()
    {
        if i == 1 {
            std::thread::sleep(Duration::from_secs(1));
        }
        match monitor.human(cmd, timeout) {
            Ok(text) => {
                out.push(format!("({cmd})"));
                out.extend(text.lines().map(str::to_owned));
            }
            Err(e) => out.push(format!("({cmd}) failed: {e}")),
        }
    }
    out
}

/// A `Write` that hands each complete line (lossy UTF-8, without `\r\n`)
/// to a callback, and the unterminated rest when it drops.
struct LineSink<F: FnMut(&str)> {
    partial: Vec<u8>,
    on_line: F,
}

impl<F: FnMut(&str)> LineSink<F> {
    fn new(on_line: F) -> Self {
        LineSink {
            partial: Vec::new(),
            on_line,
        }
    }
}

impl<F: FnMut(&str)> Write for LineSink<F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(buf);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            (self.on_line)(String::from_utf8_lossy(&line[..end]).trim_end_matches('\r'));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<F: FnMut(&str)> Drop for LineSink<F> {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            (self.on_line)(&String::from_utf8_lossy(&self.partial));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_writes_and_the_rest_flushed_on_drop() {
        let (tx, rx) = channel();
        let mut sink = LineSink::new(move |l: &str| tx.send(l.to_owned()).expect("send"));
        sink.write_all(b"ab").expect("write");
        sink.write_all(b"c\r\nd\ne").expect("write");
        drop(sink);
        assert_eq!(rx.iter().collect::<Vec<_>>(), ["abc", "d", "e"]);
    }
}
