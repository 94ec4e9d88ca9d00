//! The second-level snapshot: a machine's `SysReady` snapshot (see
//! [`crate::snapshots`]) taken on a step further, right after a scheduler
//! attached, keyed by that machine, the scheduler binary (its guest path and
//! host identity; the initramfs holding it is already in the machine's key
//! by content) and its arguments. A later session asking for the same
//! [`AttachPoint`] resumes with the scheduler attached instead of loading and
//! verifying its BPF again (seconds under TCG).
//!
//! Why a resumed scheduler is indistinguishable from a fresh one for every
//! check the runner makes:
//! * the guest is the one that just attached: the scheduler process, its
//!   pipes and relays, the guest init's bookkeeping (its running scheduler,
//!   monitor thread, `enable_seq` seen at attach) and the kernel's sched_ext
//!   state are guest memory and device state, all in the snapshot;
//! * the guest's clock stops while a VM is paused and continues from the
//!   snapshot on restore (QEMU's virtual clock under TCG), so no watchdog
//!   and no stats period sees the pause;
//! * the host's view of the attach (the `Attached` reply, the
//!   `SchedulerState` reports, the scheduler's output so far, guest logs,
//!   the frame and request counters) is stored beside the snapshot as it
//!   was at the pause and restored into the resumed session, and a snapshot
//!   is kept only if no frame arrived between that state's capture and the
//!   end of the snapshot (else a frame the guest sent before the pause
//!   could be missing from it; the next session takes it again).
//!
//! A failed attach never produces a snapshot ([`Session::attach`] saves only
//! after `Attached`), and a test that asserts on the attach itself opts out
//! (`KtstrTest::fresh_attach`). Attach snapshots live under the snapshot root,
//! pruned least recently used apart from the machine snapshots
//! ([`snapshots::touch_and_prune`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ktstr_wire::{SchedExitKind, SchedState};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Attached, Session};
use crate::error::HarnessError;
use crate::events::SchedEvent;
use crate::image::GuestImage;
use crate::snapshots;

/// The host state stored beside the snapshot.
const HOST_STATE: &str = "attached.json";

/// A scheduler with its arguments, as a session attaches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachPoint {
    /// Host path of the (packed) scheduler binary.
    pub scheduler: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

impl AttachPoint {
    /// `scheduler` started with `args`.
    pub fn new(scheduler: &Path, args: &[&str]) -> Self {
        AttachPoint {
            scheduler: scheduler.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    fn is(&self, scheduler: &Path, args: &[&str]) -> bool {
        self.scheduler == scheduler
            && self
                .args
                .iter()
                .map(String::as_str)
                .eq(args.iter().copied())
    }

    /// The snapshot directory for this point on the machine whose
    /// `SysReady` snapshot is `machine`; `None` if the binary is gone.
    pub(super) fn dir(&self, machine: &Path) -> Option<PathBuf> {
        let identity = crate::image::file_identity(&self.scheduler)?;
        let material = format!(
            "{}|{}|{identity}|{:?}",
            machine.file_name()?.to_string_lossy(),
            GuestImage::guest_path(&self.scheduler),
            self.args
        );
        let digest = Sha256::digest(material.as_bytes());
        let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        Some(machine.with_file_name(format!("{name}{}", snapshots::ATTACHED_SUFFIX)))
    }
}

/// What a session does about its attach snapshot.
#[derive(Default)]
pub(super) enum AttachSnapshot {
    /// Nothing: none asked for, or already taken.
    #[default]
    None,
    /// Take one when the scheduler attaches (holding its build lock, so
    /// concurrent sessions wait for this one instead of each attaching).
    Pending {
        point: AttachPoint,
        dir: PathBuf,
        _lock: snapshots::DirLock,
    },
    /// This session resumed one: the scheduler is already attached.
    Resumed(AttachPoint),
}

/// [`SchedEvent`] as stored.
#[derive(Serialize, Deserialize)]
struct StoredSchedEvent {
    state: u16,
    exit_kind: u32,
    exit_code: i64,
    name: String,
    reason: String,
}

/// The session's host-side state at the snapshot point.
#[derive(Serialize, Deserialize)]
struct HostState {
    seq: u64,
    next_step: u32,
    name: String,
    pid: u32,
    sched: Vec<StoredSchedEvent>,
    /// (pid, stdout, stderr) received so far.
    output: Vec<(u32, Vec<u8>, Vec<u8>)>,
    logs: Vec<String>,
}

impl Session {
    /// Start `scheduler` with `args` and wait until the kernel reports it
    /// attached, like [`Session::start_scheduler`], except that a session
    /// that resumed this attach's snapshot returns its stored `Attached`
    /// at once, and one that was asked to take it takes it now.
    pub fn attach(
        &mut self,
        scheduler: &Path,
        args: &[&str],
        attach_deadline: Duration,
    ) -> Result<Attached, HarnessError> {
        match std::mem::take(&mut self.attach_snapshot) {
            AttachSnapshot::Resumed(point) if point.is(scheduler, args) => {
                if let Some(a) = self.scheduler.clone() {
                    return Ok(a);
                }
                self.start_scheduler(scheduler, args, attach_deadline)
            }
            AttachSnapshot::Pending { point, dir, _lock } if point.is(scheduler, args) => {
                let attached = self.start_scheduler(scheduler, args, attach_deadline)?;
                let saving = Instant::now();
                if let Err(e) = self.save_attached(&dir) {
                    tracing::warn!(error = %e, "no attach snapshot; later sessions attach");
                }
                self.timings.attach_snapshot_save = saving.elapsed();
                Ok(attached)
            }
            _ => self.start_scheduler(scheduler, args, attach_deadline),
        }
    }

    /// Snapshot the guest into `dir` with the host state beside it.
    fn save_attached(&mut self, dir: &Path) -> Result<(), HarnessError> {
        // File what already arrived, so the state is everything sent so far.
        while self.next_event(Instant::now()).is_ok() {}
        let state = self.host_state()?;
        let building = dir.with_extension("building");
        snapshots::discard(&building);
        let saved = self.snapshot_guest(&building).and_then(|()| {
            // A frame the guest sent before the pause has reached the host
            // while the snapshot was written (hundreds of ms); one sent after
            // `cont` cannot have yet. So anything queued now may predate the
            // pause and be missing from `state`: keep no snapshot then.
            if self.next_event(Instant::now()).is_ok() {
                return Err(HarnessError::Protocol {
                    what: "attach snapshot".into(),
                    detail: "a frame arrived while it was taken".into(),
                });
            }
            let json = serde_json::to_vec(&state)
                .map_err(|e| HarnessError::io("encode attach state", std::io::Error::other(e)))?;
            std::fs::write(building.join(HOST_STATE), json)
                .map_err(|e| HarnessError::io("write attach state", e))?;
            // Written last: it marks a whole snapshot (see `snapshots::exists`).
            snapshots::save_sys(&building, &self.sys)?;
            std::fs::rename(&building, dir).map_err(|e| HarnessError::io("publish snapshot", e))
        });
        match saved {
            Ok(()) => {
                snapshots::touch_and_prune(dir);
                Ok(())
            }
            Err(e) => {
                snapshots::discard(&building);
                Err(e)
            }
        }
    }

    fn host_state(&self) -> Result<HostState, HarnessError> {
        let att = self.scheduler.as_ref().ok_or_else(|| HarnessError::Guest {
            what: "attach snapshot".into(),
            message: "no scheduler is attached".into(),
        })?;
        let mut output: Vec<_> = self
            .output
            .iter()
            .map(|(pid, (o, e))| (*pid, o.clone(), e.clone()))
            .collect();
        output.sort_by_key(|(pid, ..)| *pid);
        Ok(HostState {
            seq: self.seq,
            next_step: self.next_step,
            name: att.name.clone(),
            pid: att.pid,
            sched: self
                .sched
                .iter()
                .map(|e| StoredSchedEvent {
                    state: e.state.into(),
                    exit_kind: e.exit_kind.into(),
                    exit_code: e.exit_code,
                    name: e.name.clone(),
                    reason: e.reason.clone(),
                })
                .collect(),
            output,
            logs: self.logs.clone(),
        })
    }

    /// Puts the host state stored in `dir` into this freshly resumed session.
    pub(super) fn load_attached(&mut self, dir: &Path) -> Result<(), HarnessError> {
        let bytes = std::fs::read(dir.join(HOST_STATE))
            .map_err(|e| HarnessError::io("read attach state", e))?;
        let s: HostState = serde_json::from_slice(&bytes).map_err(|e| HarnessError::Protocol {
            what: "attach snapshot".into(),
            detail: format!("{HOST_STATE}: {e}"),
        })?;
        self.seq = s.seq;
        self.next_step = s.next_step;
        self.scheduler = Some(Attached {
            name: s.name,
            pid: s.pid,
        });
        self.sched = s
            .sched
            .into_iter()
            .map(|e| SchedEvent {
                state: SchedState::from(e.state),
                exit_kind: SchedExitKind::from(e.exit_kind),
                exit_code: e.exit_code,
                name: e.name,
                reason: e.reason,
            })
            .collect();
        self.output = s
            .output
            .into_iter()
            .map(|(pid, o, e)| (pid, (o, e)))
            .collect();
        self.logs = s.logs;
        Ok(())
    }
}
