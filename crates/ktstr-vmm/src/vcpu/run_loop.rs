//! The body of one vCPU thread: enter `KVM_RUN`, dispatch the exit, repeat
//! until the VM stops. Every path out unregisters the vCPU (drop guard).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use kvm_bindings::{KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN};
use kvm_ioctls::{VcpuExit, VcpuFd};
use vm_memory::GuestMemoryMmap;

use super::panic_shim::VcpuPanicScope;
use super::state::RunState;
use crate::compat::{self, InternalErrorVerdict};
use crate::devices::bus::{Bus, IoAction};
use crate::outcome::ExitKind;
use crate::profile::Sample;

/// What the vCPU thread hands back when it ends.
#[derive(Default)]
pub(crate) struct VcpuReport {
    pub samples: Vec<Sample>,
    pub shims: BTreeMap<&'static str, u64>,
}

pub(crate) struct VcpuContext<'a> {
    pub index: usize,
    pub state: Arc<RunState>,
    pub pio: &'a Bus,
    pub mmio: &'a Bus,
    pub mem: &'a GuestMemoryMmap,
    pub shims: bool,
    pub started: Instant,
}

/// Unregisters the vCPU however the thread leaves (return or unwind).
struct Registration<'a>(&'a RunState, usize);

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.0.unregister(self.1);
    }
}

enum Step {
    Continue,
    Stop(ExitKind),
}

/// `kvm_run.immediate_exit` as an atomic: other threads set it to kick us.
fn immediate_exit(vcpu: &mut VcpuFd) -> *const AtomicU8 {
    let byte: *mut u8 = &mut vcpu.get_kvm_run().immediate_exit;
    byte.cast::<AtomicU8>() // AtomicU8 has u8's size and alignment
}

fn unblock_kick_signal() {
    // SAFETY: the set is initialised by sigemptyset before use; both calls
    // only touch this thread's signal mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, super::state::kick_signal());
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

pub(crate) fn run_vcpu(ctx: VcpuContext<'_>, vcpu: &mut VcpuFd) -> VcpuReport {
    let _panic_scope = VcpuPanicScope::enter(ctx.state.clone(), ctx.index);
    ctx.state.register(ctx.index, immediate_exit(vcpu));
    let _registration = Registration(&ctx.state, ctx.index);
    unblock_kick_signal();

    let mut report = VcpuReport::default();
    while ctx.state.enter(ctx.index) {
        let step = step(&ctx, vcpu, &mut report);
        if ctx.state.take_sample_request(ctx.index) {
            if let Ok(regs) = vcpu.get_regs() {
                report.samples.push(Sample {
                    at: ctx.started.elapsed(),
                    vcpu: ctx.index,
                    rip: regs.rip,
                });
            }
        }
        if let Step::Stop(kind) = step {
            ctx.state.stop(kind);
            break;
        }
    }
    report
}

fn step(ctx: &VcpuContext<'_>, vcpu: &mut VcpuFd, report: &mut VcpuReport) -> Step {
    let result = vcpu.run();
    ctx.state.leave(ctx.index);
    let internal = |detail: String| {
        Step::Stop(ExitKind::InternalError {
            vcpu: ctx.index,
            detail,
        })
    };
    match result {
        Ok(VcpuExit::IoIn(port, data)) => {
            ctx.pio.read(u64::from(port), data);
            Step::Continue
        }
        Ok(VcpuExit::IoOut(port, data)) => io_step(ctx.pio.write(u64::from(port), data)),
        Ok(VcpuExit::MmioRead(addr, data)) => {
            ctx.mmio.read(addr, data);
            Step::Continue
        }
        Ok(VcpuExit::MmioWrite(addr, data)) => io_step(ctx.mmio.write(addr, data)),
        Ok(VcpuExit::Shutdown) => Step::Stop(ExitKind::Shutdown),
        Ok(VcpuExit::SystemEvent(kind, _)) => match kind {
            KVM_SYSTEM_EVENT_SHUTDOWN => Step::Stop(ExitKind::Shutdown),
            KVM_SYSTEM_EVENT_RESET => Step::Stop(ExitKind::Reboot),
            KVM_SYSTEM_EVENT_CRASH => internal("guest reported a crash system event".into()),
            other => internal(format!("unknown system event {other}")),
        },
        Ok(VcpuExit::Hlt | VcpuExit::Intr | VcpuExit::IrqWindowOpen) => Step::Continue,
        Ok(VcpuExit::InternalError) => {
            match compat::handle_internal_error(vcpu, ctx.mem, ctx.shims) {
                Ok(InternalErrorVerdict::Handled(name)) => {
                    let count = report.shims.entry(name).or_insert(0);
                    if *count == 0 {
                        tracing::warn!(
                            vcpu = ctx.index,
                            shim = name,
                            "host KVM failed to emulate an instruction; compat shim applied"
                        );
                    }
                    *count += 1;
                    Step::Continue
                }
                Ok(InternalErrorVerdict::Unhandled { rip, bytes }) => {
                    Step::Stop(ExitKind::EmulationFailure {
                        vcpu: ctx.index,
                        rip,
                        bytes,
                    })
                }
                Ok(InternalErrorVerdict::Other(detail)) => internal(detail),
                Err(e) => internal(format!("handling an internal error: {e}")),
            }
        }
        Ok(VcpuExit::FailEntry(reason, cpu)) => internal(format!(
            "VM entry failed: hardware reason {reason:#x} on host cpu {cpu}"
        )),
        Ok(other) => internal(format!("unexpected vCPU exit {other:?}")),
        Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
            // A kick: clear it; the loop re-checks `stopping` before re-entering.
            // SAFETY: the pointer targets this vCPU's live kvm_run mapping.
            unsafe { (*immediate_exit(vcpu)).store(0, Ordering::SeqCst) };
            Step::Continue
        }
        Err(e) => internal(format!("KVM_RUN failed: {e}")),
    }
}

fn io_step(action: IoAction) -> Step {
    match action {
        IoAction::Continue => Step::Continue,
        IoAction::Reboot => Step::Stop(ExitKind::Reboot),
        IoAction::Shutdown => Step::Stop(ExitKind::Shutdown),
    }
}
