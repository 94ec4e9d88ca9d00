//! What another thread asks of a running VM at a pause: a snapshot
//! ([`crate::InterruptHandle::snapshot`]: the caller names the file and the
//! key) or one MSR of one vCPU ([`crate::InterruptHandle::read_msr`]). The
//! run loop serves it with every vCPU out of `KVM_RUN`, answers, and lets
//! the guest continue.
//!
//! Invariant: once the run has ended the slot is closed, so no caller waits
//! for an answer that can never come; a request pending at the end is
//! answered "not running".

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Mutex, MutexGuard};

use super::{SnapshotError, SnapshotInfo};

/// A host request the run loop serves at its next pause.
pub(crate) enum HostRequest {
    /// Save a snapshot to `path`, keyed by `key`.
    Snapshot {
        path: PathBuf,
        key: String,
        reply: Sender<Result<SnapshotInfo, SnapshotError>>,
    },
    /// Read MSR `index` of vCPU `vcpu`.
    ReadMsr {
        vcpu: usize,
        index: u32,
        reply: Sender<Result<u64, VcpuReadError>>,
    },
}

impl HostRequest {
    /// The run ended before this request was served.
    fn refuse(self) {
        // The caller may have given up waiting; nothing else to tell.
        match self {
            HostRequest::Snapshot { reply, .. } => {
                let _ = reply.send(Err(SnapshotError::NotRunning));
            }
            HostRequest::ReadMsr { vcpu, reply, .. } => {
                let _ = reply.send(Err(VcpuReadError::NotRunning { vcpu }));
            }
        }
    }
}

/// Reading a vCPU's MSR from another thread ([`crate::InterruptHandle::read_msr`]).
#[derive(Debug, thiserror::Error)]
pub enum VcpuReadError {
    #[error("the VM is not running (it ended before vCPU {vcpu} could be read)")]
    NotRunning { vcpu: usize },
    #[error("another host request (a snapshot or a register read) is pending on this VM")]
    Busy,
    #[error("the VM has no vCPU {vcpu}")]
    NoVcpu { vcpu: usize },
    #[error("reading MSR {index:#x} of vCPU {vcpu}: {source}")]
    Kvm {
        vcpu: usize,
        index: u32,
        #[source]
        source: SnapshotError,
    },
    #[error("KVM does not let vCPU {vcpu}'s MSR {index:#x} be read")]
    Refused { vcpu: usize, index: u32 },
}

#[derive(Default)]
struct Slot {
    pending: Option<HostRequest>,
    closed: bool,
}

/// The one pending host request of a VM (requests are serialised by the caller
/// waiting for its answer; a second concurrent one is refused).
#[derive(Default)]
pub(crate) struct HostRequests {
    slot: Mutex<Slot>,
}

impl HostRequests {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a snapshot; the receiver gets the answer once the run loop saved it.
    pub fn submit(
        &self,
        path: PathBuf,
        key: String,
    ) -> Result<Receiver<Result<SnapshotInfo, SnapshotError>>, SnapshotError> {
        let (reply, answer) = channel();
        let request = HostRequest::Snapshot { path, key, reply };
        self.queue(request, SnapshotError::NotRunning, SnapshotError::Busy)?;
        Ok(answer)
    }

    /// Queues a read of MSR `index` of vCPU `vcpu`.
    pub fn submit_msr_read(
        &self,
        vcpu: usize,
        index: u32,
    ) -> Result<Receiver<Result<u64, VcpuReadError>>, VcpuReadError> {
        let (reply, answer) = channel();
        let request = HostRequest::ReadMsr { vcpu, index, reply };
        let closed = VcpuReadError::NotRunning { vcpu };
        self.queue(request, closed, VcpuReadError::Busy)?;
        Ok(answer)
    }

    /// Puts `request` in the slot, or says why not: `closed` (the run
    /// ended) or `busy` (another request is pending).
    fn queue<E>(&self, request: HostRequest, closed: E, busy: E) -> Result<(), E> {
        let mut slot = self.lock();
        if slot.closed {
            return Err(closed);
        }
        if slot.pending.is_some() {
            return Err(busy);
        }
        slot.pending = Some(request);
        Ok(())
    }

    /// Whether a request waits to be served.
    pub fn is_pending(&self) -> bool {
        self.lock().pending.is_some()
    }

    /// The request to serve at this pause, if any.
    pub fn take(&self) -> Option<HostRequest> {
        self.lock().pending.take()
    }

    /// The run ended: refuse new requests and answer a pending one.
    pub fn close(&self) {
        let pending = {
            let mut slot = self.lock();
            slot.closed = true;
            slot.pending.take()
        };
        if let Some(request) = pending {
            request.refuse();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_slot_answers_pending_and_refuses_new_requests() {
        let requests = HostRequests::default();
        let answer = requests.submit("a".into(), "k".into()).expect("submit");
        assert!(matches!(
            requests.submit("b".into(), "k".into()),
            Err(SnapshotError::Busy)
        ));
        assert!(matches!(
            requests.submit_msr_read(0, 0xc000_0082),
            Err(VcpuReadError::Busy)
        ));
        requests.close();
        assert!(matches!(answer.recv(), Ok(Err(SnapshotError::NotRunning))));
        assert!(matches!(
            requests.submit_msr_read(1, 0xc000_0082),
            Err(VcpuReadError::NotRunning { vcpu: 1 })
        ));
        assert!(matches!(
            requests.submit("c".into(), "k".into()),
            Err(SnapshotError::NotRunning)
        ));
    }
}
