//! Shared run state of one VM: per-vCPU state bits, the stop reason, and the
//! kick that forces a vCPU out of `KVM_RUN`.
//!
//! Invariant (no lost wake-up): a vCPU sets `IN_RUN` and *then* reads
//! `stopping`; a stopper sets `stopping` and *then* reads `IN_RUN` (all
//! SeqCst). So either the vCPU sees the stop before entering, or the stopper
//! sees `IN_RUN` and sets `immediate_exit` (covers the window before the
//! ioctl) and sends SIGRTMIN (covers a vCPU already inside it).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, Once};
use std::time::Instant;

use crate::outcome::ExitKind;

const IN_RUN: u8 = 1 << 0;
const EXITED: u8 = 1 << 1;
const SAMPLE: u8 = 1 << 2;

/// Where to poke a registered vCPU thread.
struct Kick {
    thread: libc::pthread_t,
    immediate_exit: *const AtomicU8,
}

// SAFETY: `immediate_exit` points into the vCPU's kvm_run mapping, which
// outlives the registration (the thread unregisters before the fd drops),
// and is only touched through atomics while the slot lock is held.
unsafe impl Send for Kick {}

struct VcpuSlot {
    bits: AtomicU8,
    kick: Mutex<Option<Kick>>,
}

pub(crate) struct RunState {
    stopping: AtomicBool,
    /// A snapshot pause: vCPUs leave like a stop, but no reason is set.
    pause: AtomicBool,
    reason: Mutex<Option<ExitKind>>,
    slots: Box<[VcpuSlot]>,
    exited: Mutex<usize>,
    exited_cv: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// SIGRTMIN is used only to interrupt `KVM_RUN`; its handler does nothing.
extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

pub(crate) fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

pub(crate) fn install_kick_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(e) = vmm_sys_util::signal::register_signal_handler(kick_signal(), kick_handler) {
            tracing::error!("cannot install the vCPU kick handler: {e}");
        }
    });
}

impl RunState {
    pub fn new(vcpus: usize) -> Self {
        let slots = (0..vcpus)
            .map(|_| VcpuSlot {
                bits: AtomicU8::new(0),
                kick: Mutex::new(None),
            })
            .collect();
        Self {
            stopping: AtomicBool::new(false),
            pause: AtomicBool::new(false),
            reason: Mutex::new(None),
            slots,
            exited: Mutex::new(0),
            exited_cv: Condvar::new(),
        }
    }

    pub fn vcpu_count(&self) -> usize {
        self.slots.len()
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Ends the VM with `kind` unless it already has a reason (first wins).
    pub fn stop(&self, kind: ExitKind) {
        {
            let mut reason = lock(&self.reason);
            if reason.is_none() {
                *reason = Some(kind);
            }
        }
        self.stopping.store(true, Ordering::SeqCst);
        self.kick_all();
    }

    /// Parks every vCPU outside `KVM_RUN` for a snapshot (threads end; the
    /// run owner captures, then [`Self::rearm`]s or stops).
    pub fn request_pause(&self) {
        self.pause.store(true, Ordering::SeqCst);
        self.stopping.store(true, Ordering::SeqCst);
        self.kick_all();
    }

    pub fn pause_requested(&self) -> bool {
        self.pause.load(Ordering::SeqCst)
    }

    pub fn has_reason(&self) -> bool {
        lock(&self.reason).is_some()
    }

    /// Makes the state fresh for another set of vCPU threads after a pause.
    /// Only valid once every vCPU thread was joined. A stop that raced with
    /// the pause is kept: `stopping` is cleared first and set again if a
    /// reason exists, and [`Self::stop`] sets the reason before `stopping`,
    /// so either this sees the reason or the stopper's store comes last.
    pub fn rearm(&self) {
        for slot in self.slots.iter() {
            slot.bits.store(0, Ordering::SeqCst);
        }
        *lock(&self.exited) = 0;
        self.pause.store(false, Ordering::SeqCst);
        self.stopping.store(false, Ordering::SeqCst);
        if self.has_reason() {
            self.stopping.store(true, Ordering::SeqCst);
        }
    }

    pub fn take_reason(&self) -> Option<ExitKind> {
        lock(&self.reason).take()
    }

    /// Kicks every vCPU inside `KVM_RUN`; returns whether any was.
    pub fn kick_all(&self) -> bool {
        let mut any = false;
        for slot in self.slots.iter() {
            any |= Self::kick(slot);
        }
        any
    }

    fn kick(slot: &VcpuSlot) -> bool {
        let kick = lock(&slot.kick);
        let Some(k) = kick.as_ref() else { return false };
        if slot.bits.load(Ordering::SeqCst) & IN_RUN == 0 {
            return false;
        }
        // SAFETY: the pointer is valid while registered (see `Kick`), and we hold the slot lock.
        unsafe { (*k.immediate_exit).store(1, Ordering::SeqCst) };
        // SAFETY: the thread is alive: it unregisters under this lock before exiting.
        unsafe { libc::pthread_kill(k.thread, kick_signal()) };
        true
    }

    /// Kicks until no vCPU is inside `KVM_RUN` or `give_up` passes.
    pub fn kick_until_out(&self, give_up: Instant) {
        let mut pause = std::time::Duration::from_micros(20);
        while self.kick_all() && Instant::now() < give_up {
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(2));
        }
    }

    /// Asks every vCPU for a register sample at its next exit.
    pub fn request_samples(&self) {
        for slot in self.slots.iter() {
            slot.bits.fetch_or(SAMPLE, Ordering::SeqCst);
            Self::kick(slot);
        }
    }

    // ---- called on the vCPU's own thread ----

    pub fn register(&self, index: usize, immediate_exit: *const AtomicU8) {
        // SAFETY: pthread_self has no preconditions.
        let thread = unsafe { libc::pthread_self() };
        *lock(&self.slots[index].kick) = Some(Kick {
            thread,
            immediate_exit,
        });
    }

    pub fn unregister(&self, index: usize) {
        let slot = &self.slots[index];
        *lock(&slot.kick) = None;
        slot.bits.fetch_or(EXITED, Ordering::SeqCst);
        slot.bits.fetch_and(!IN_RUN, Ordering::SeqCst);
        *lock(&self.exited) += 1;
        self.exited_cv.notify_all();
    }

    /// Accounts for a vCPU whose thread never started.
    pub fn unregister_unstarted(&self) {
        *lock(&self.exited) += 1;
        self.exited_cv.notify_all();
    }

    /// Marks the vCPU as about to enter `KVM_RUN`; false if the VM is stopping.
    pub fn enter(&self, index: usize) -> bool {
        let bits = &self.slots[index].bits;
        bits.fetch_or(IN_RUN, Ordering::SeqCst);
        if self.stopping.load(Ordering::SeqCst) {
            bits.fetch_and(!IN_RUN, Ordering::SeqCst);
            return false;
        }
        true
    }

    pub fn leave(&self, index: usize) {
        self.slots[index].bits.fetch_and(!IN_RUN, Ordering::SeqCst);
    }

    pub fn take_sample_request(&self, index: usize) -> bool {
        self.slots[index].bits.fetch_and(!SAMPLE, Ordering::SeqCst) & SAMPLE != 0
    }

    /// The panic shim's entry: flags the vCPU exited and stops the VM.
    pub fn vcpu_panicked(&self, index: usize, message: String) {
        if let Some(slot) = self.slots.get(index) {
            slot.bits.fetch_or(EXITED, Ordering::SeqCst);
        }
        self.stop(ExitKind::VcpuPanicked {
            vcpu: index,
            message,
        });
    }

    #[cfg(test)]
    pub fn has_exited(&self, index: usize) -> bool {
        self.slots[index].bits.load(Ordering::SeqCst) & EXITED != 0
    }

    // ---- called by the thread that owns the run ----

    /// Waits until all vCPU threads unregistered or `until`; true if all did.
    pub fn wait_all_exited(&self, until: Instant) -> bool {
        let mut exited = lock(&self.exited);
        loop {
            if *exited >= self.slots.len() {
                return true;
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            exited = match self.exited_cv.wait_timeout(exited, until - now) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

/// A handle that stops a VM from any thread, at any time.
#[derive(Clone)]
pub struct InterruptHandle {
    pub(crate) state: std::sync::Arc<RunState>,
    pub(crate) requests: std::sync::Arc<crate::snapshot::request::HostRequests>,
}

impl InterruptHandle {
    /// Makes every vCPU leave `KVM_RUN` and the run return `Killed` (unless it
    /// already ended otherwise). Works before, during and after the run, any
    /// number of times; returns once no vCPU is inside `KVM_RUN` (or after 1 s).
    pub fn kill(&self) {
        self.state.stop(ExitKind::Killed);
        self.state
            .kick_until_out(Instant::now() + std::time::Duration::from_secs(1));
    }

    /// Pauses the VM for its configured snapshot ([`crate::VmBuilder::snapshot`]):
    /// every vCPU leaves `KVM_RUN`, the state is saved, then the run resumes
    /// or ends as the plan says. Without a plan the guest just resumes.
    pub fn request_snapshot(&self) {
        self.state.request_pause();
    }

    /// Pauses the running VM, writes its snapshot to `path` with `key`
    /// (checked by [`crate::RestoreOptions::expect_key`]), and lets the guest
    /// continue; blocks until the file is in place. Independent of any
    /// [`crate::SnapshotPlan`]. Fails with [`SnapshotError::NotRunning`] once
    /// the run has ended (or ends first), with the save's error otherwise.
    pub fn snapshot(
        &self,
        path: impl Into<std::path::PathBuf>,
        key: &str,
    ) -> Result<crate::SnapshotInfo, crate::SnapshotError> {
        let answer = self.requests.submit(path.into(), key.to_string())?;
        self.state.request_pause();
        answer
            .recv()
            .unwrap_or(Err(crate::SnapshotError::NotRunning))
    }

    /// Pauses the running VM, reads MSR `index` of vCPU `vcpu` and lets the
    /// guest continue; blocks until it is read (one pause: every vCPU
    /// leaves `KVM_RUN` for it). E.g. `MSR_LSTAR`, where the guest kernel
    /// put its syscall entry, to check a KASLR offset learnt otherwise.
    pub fn read_msr(&self, vcpu: usize, index: u32) -> Result<u64, crate::VcpuReadError> {
        let answer = self.requests.submit_msr_read(vcpu, index)?;
        self.state.request_pause();
        answer
            .recv()
            .unwrap_or(Err(crate::VcpuReadError::NotRunning { vcpu }))
    }

    /// True once the VM is ending, for whatever reason.
    pub fn is_stopping(&self) -> bool {
        self.state.is_stopping()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_stop_reason_wins() {
        let s = RunState::new(2);
        s.stop(ExitKind::Reboot);
        s.stop(ExitKind::Killed);
        assert_eq!(s.take_reason(), Some(ExitKind::Reboot));
    }

    #[test]
    fn enter_after_stop_is_refused() {
        let s = RunState::new(1);
        assert!(s.enter(0));
        s.leave(0);
        s.stop(ExitKind::Killed);
        assert!(!s.enter(0));
    }

    #[test]
    fn sample_requests_are_taken_once() {
        let s = RunState::new(1);
        s.request_samples();
        assert!(s.take_sample_request(0));
        assert!(!s.take_sample_request(0));
    }
}
