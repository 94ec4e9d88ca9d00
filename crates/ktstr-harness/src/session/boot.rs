//! Boot and snapshot policy: build (or reuse) the initramfs, then resume the
//! machine's snapshot taken at the guest's `SysReady`, or boot cold and take
//! that snapshot for the next session.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use ktstr_backend::death::console;
use ktstr_backend::{BackendKind, BootSpec, Outcome};
use ktstr_guest::init::INIT_ENV;

use super::attach_snapshot::AttachSnapshot;
use super::{BootTimings, Session, SessionConfig};
use crate::error::HarnessError;
use crate::events::{Event, EventStream, NoEvent, SysInfo};
use crate::image::{CachedImage, GuestImage};
use crate::snapshots;

/// What a guest that ends before `SysReady` was doing.
const BOOT: &str = "its boot (the guest init's SysReady)";

impl Session {
    /// Check inputs, build (or reuse) the image, boot, wait for `SysReady`.
    pub fn boot(cfg: &SessionConfig) -> Result<Session, HarnessError> {
        for s in &cfg.schedulers {
            if !s.is_file() {
                return Err(HarnessError::SchedulerNotFound(s.clone()));
            }
        }
        crate::guest_files::check_exist(&cfg.programs, &cfg.files)?;
        if !cfg.kernel.is_file() {
            return Err(HarnessError::KernelNotFound(cfg.kernel.clone()));
        }
        let init = match &cfg.init {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(|e| HarnessError::io("current_exe", e))?,
        };
        let mut img = GuestImage::new(init);
        img.schedulers = cfg.schedulers.clone();
        img.programs = cfg.programs.clone();
        img.files = cfg.files.clone();
        img.compression = cfg.compression;
        img.strip_debug = cfg.strip_debug;
        let started = Instant::now();
        let image = img.build_cached(&cfg.cache_dir)?;
        let image_time = started.elapsed();
        tracing::info!(path = %image.path.display(), reused = image.reused, "initramfs");
        let spec = BootSpec {
            kernel: cfg.kernel.clone(),
            initramfs: Some(image.path.clone()),
            cmdline: format!("{} {INIT_ENV}=1", cfg.cmdline),
            vcpus: cfg.vcpus,
            memory_mib: cfg.memory_mib,
            deadline: cfg.deadline,
            topology: cfg.topology.clone(),
            restore_from: None,
        };
        if !cfg.snapshots {
            return Self::cold_boot(cfg, &spec, image, image_time);
        }
        let machine = snapshots::dir_for(&cfg.snapshot_dir, &spec, cfg.backend);
        let mut pending = AttachSnapshot::None;
        // Attach snapshots on QEMU only: `save_attached` tells a frame sent
        // before the pause from one sent after by QEMU's resume being slower
        // than the check; ktstr-vmm resumes at once, so in the nested tier
        // every attach snapshot was discarded (a wasted save per test).
        let attach_point = cfg
            .attach_snapshot
            .as_ref()
            .filter(|_| cfg.backend != BackendKind::Vmm);
        if let Some(point) = attach_point {
            if let Some(dir) = point.dir(&machine) {
                let lock = snapshots::DirLock::acquire(&dir)?;
                if let Some(mut s) = Self::resume(cfg, &spec, &image, image_time, &dir) {
                    match s.load_attached(&dir) {
                        Ok(()) => {
                            s.attach_snapshot = AttachSnapshot::Resumed(point.clone());
                            s.timings.attach_resumed = true;
                            return Ok(s);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "attach snapshot unusable; rebuilding");
                            snapshots::discard(&dir);
                        }
                    }
                }
                pending = AttachSnapshot::Pending {
                    point: point.clone(),
                    dir,
                    _lock: lock,
                };
            }
        }
        let mut s = Self::boot_machine(cfg, spec, image, image_time, &machine)?;
        s.attach_snapshot = pending;
        Ok(s)
    }

    /// Resume the machine's `SysReady` snapshot in `dir`, or boot it cold
    /// and take that snapshot for the next session.
    fn boot_machine(
        cfg: &SessionConfig,
        spec: BootSpec,
        image: CachedImage,
        image_time: Duration,
        dir: &Path,
    ) -> Result<Session, HarnessError> {
        let _building = snapshots::DirLock::acquire(dir)?;
        if let Some(s) = Self::resume(cfg, &spec, &image, image_time, dir) {
            return Ok(s);
        }
        let mut s = Self::cold_boot(cfg, &spec, image, image_time)?;
        // The guest idles in its request loop: snapshot it for the next session.
        let saving = Instant::now();
        let building = dir.with_extension("building");
        snapshots::discard(&building);
        let saved = s
            .snapshot_guest(&building)
            .and_then(|()| snapshots::save_sys(&building, &s.sys))
            .and_then(|()| {
                std::fs::rename(&building, dir).map_err(|e| HarnessError::io("publish snapshot", e))
            })
            .map(|()| snapshots::touch_and_prune(dir));
        if let Err(e) = saved {
            tracing::warn!(error = %e, "could not snapshot the booted guest; later sessions boot");
            snapshots::discard(&building);
        }
        s.timings.snapshot_save = saving.elapsed();
        Ok(s)
    }

    /// The session resumed from the snapshot in `dir` (caller holds its
    /// lock); `None` if there is none, or it did not restore (then it is
    /// removed, so the caller rebuilds it).
    fn resume(
        cfg: &SessionConfig,
        spec: &BootSpec,
        image: &CachedImage,
        image_time: Duration,
        dir: &Path,
    ) -> Option<Session> {
        if !snapshots::exists(dir) {
            return None;
        }
        if let Some(sys) = snapshots::load_sys(dir) {
            let spec = BootSpec {
                restore_from: Some(dir.to_owned()),
                ..spec.clone()
            };
            match Self::start(cfg, &spec, image.clone(), image_time) {
                Ok(mut s) => {
                    s.sys = sys;
                    s.timings.restored = true;
                    snapshots::touch_and_prune(dir);
                    tracing::info!(dir = %dir.display(), "resumed snapshot");
                    return Some(s);
                }
                Err(e) => tracing::warn!(error = %e, "snapshot did not restore; rebuilding"),
            }
        }
        snapshots::discard(dir);
        None
    }

    /// Snapshot the running guest into `dir` (see `Guest::snapshot`).
    pub(super) fn snapshot_guest(&self, dir: &Path) -> Result<(), HarnessError> {
        let guest = self.guest.as_ref().ok_or_else(|| HarnessError::GuestGone {
            what: "snapshot".into(),
        })?;
        Ok(guest.snapshot(dir)?)
    }

    /// Boot `spec` and wait for the guest init's `SysReady`.
    fn cold_boot(
        cfg: &SessionConfig,
        spec: &BootSpec,
        image: CachedImage,
        image_time: Duration,
    ) -> Result<Session, HarnessError> {
        let started = Instant::now();
        let mut s = Self::start(cfg, spec, image, image_time)?;
        let until = Instant::now() + cfg.boot_timeout;
        loop {
            match s.next_event(until) {
                Ok(Event::SysReady(info)) => {
                    s.sys = info;
                    s.timings.boot = started.elapsed();
                    return Ok(s);
                }
                Ok(_) => {}
                Err(NoEvent::Closed) => {
                    // The VM is gone: say why now instead of waiting out the timeout.
                    return Err(s.died(BOOT, started.elapsed()));
                }
                Err(NoEvent::Timeout) => {
                    s.kill();
                    let com1 = s.collect_end().map(Outcome::com1_text).unwrap_or_default();
                    return Err(HarnessError::BootFailed {
                        after: cfg.boot_timeout,
                        com1_tail: console::tail(&com1, 30).join("\n"),
                    });
                }
            }
        }
    }

    /// Start the VM (boot or restore) and wrap it in a session.
    fn start(
        cfg: &SessionConfig,
        spec: &BootSpec,
        image: CachedImage,
        image_time: Duration,
    ) -> Result<Session, HarnessError> {
        let started = Instant::now();
        let mut guest = ktstr_backend::boot(cfg.backend, spec)?;
        let Some(rx) = guest.take_bulk_receiver() else {
            return Err(HarnessError::Protocol {
                what: "boot".into(),
                detail: "backend has no bulk channel".into(),
            });
        };
        let up = started.elapsed();
        Ok(Session {
            guest: Some(guest),
            ended: None,
            events: EventStream::new(rx),
            seq: 0,
            next_step: 1,
            output: HashMap::new(),
            sched: VecDeque::new(),
            exit_code: None,
            sys: SysInfo::default(),
            image,
            packed: cfg.schedulers.clone(),
            scheduler: None,
            deadline: cfg.deadline,
            logs: Vec::new(),
            scenario_sent: None,
            timings: BootTimings {
                image: image_time,
                boot: up,
                vm_start: up,
                snapshot_save: Duration::ZERO,
                restored: false,
                attach_snapshot_save: Duration::ZERO,
                attach_resumed: false,
            },
            attach_snapshot: AttachSnapshot::None,
        })
    }
}
