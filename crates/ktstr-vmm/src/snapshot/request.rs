//! A snapshot asked for by another thread while the VM runs
//! ([`crate::InterruptHandle::snapshot`]): the caller names the file and the
//! key, the run loop saves it at the pause the request causes, answers, and
//! lets the guest continue.
//!
//! Invariant: once the run has ended the slot is closed, so no caller waits
//! for an answer that can never come; a request pending at the end is
//! answered with [`SnapshotError::NotRunning`].

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Mutex, MutexGuard};

use super::{SnapshotError, SnapshotInfo};

/// Where the snapshot goes and the key written into it.
pub(crate) struct HostRequest {
    pub path: PathBuf,
    pub key: String,
    reply: Sender<Result<SnapshotInfo, SnapshotError>>,
}

impl HostRequest {
    pub fn answer(self, result: Result<SnapshotInfo, SnapshotError>) {
        // The caller may have given up waiting; nothing else to tell.
        let _ = self.reply.send(result);
    }
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

    /// Queues a request; the receiver gets the answer once the run loop saved it.
    pub fn submit(
        &self,
        path: PathBuf,
        key: String,
    ) -> Result<Receiver<Result<SnapshotInfo, SnapshotError>>, SnapshotError> {
        let mut slot = self.lock();
        if slot.closed {
            return Err(SnapshotError::NotRunning);
        }
        if slot.pending.is_some() {
            return Err(SnapshotError::Busy);
        }
        let (reply, answer) = channel();
        slot.pending = Some(HostRequest { path, key, reply });
        Ok(answer)
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
            request.answer(Err(SnapshotError::NotRunning));
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
        requests.close();
        assert!(matches!(answer.recv(), Ok(Err(SnapshotError::NotRunning))));
        assert!(matches!(
            requests.submit("c".into(), "k".into()),
            Err(SnapshotError::NotRunning)
        ));
    }
}
