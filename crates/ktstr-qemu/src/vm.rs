//! Orchestration: builder, spawn (socket pairs, RAM, QEMU, QMP), the wait loop, and cleanup.
//! Invariant: [`RunningVm`]'s Drop kills and reaps QEMU and joins every thread, on success,
//! error and caller panic alike; a run creates no file, so none can be left behind.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ktstr_topology::NumaTopology;
use ktstr_wire::BULK_PORT_NAME;

use crate::chardev::{self, Capture, PortSender};
use crate::command::{RunFds, build_args};
use crate::config::{Accel, QemuConfig, TcgThreads, host_tsc_khz};
use crate::error::{Error, Result};
use crate::memory::{self, GuestMemoryView};
use crate::outcome::{Observed, Outcome, Timings, classify};
use crate::process::{KillHandle, QemuProcess};
use crate::qmp::{self, QmpCommands, QmpEvent};
use crate::snapshot::{self, AfterSnapshot, QemuSnapshot};

/// Fluent front end over [`QemuConfig`] plus the live COM1/COM2 sinks.
pub struct QemuBuilder {
    config: QemuConfig,
    com1_sink: Option<Box<dyn Write + Send>>,
    com2_sink: Option<Box<dyn Write + Send>>,
}

impl QemuBuilder {
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        Self::from_config(QemuConfig::new(kernel))
    }

    pub fn from_config(config: QemuConfig) -> Self {
        QemuBuilder {
            config,
            com1_sink: None,
            com2_sink: None,
        }
    }

    pub fn initramfs(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.initramfs = Some(path.into());
        self
    }

    /// Appended to the default kernel command line.
    pub fn cmdline(mut self, args: &str) -> Self {
        if !self.config.cmdline_extra.is_empty() {
            self.config.cmdline_extra.push(' ');
        }
        self.config.cmdline_extra.push_str(args);
        self
    }

    pub fn vcpus(mut self, n: u32) -> Self {
        self.config.vcpus = n;
        self
    }

    pub fn topology(mut self, t: NumaTopology) -> Self {
        self.config.topology = Some(t);
        self
    }

    pub fn memory_mib(mut self, mib: u64) -> Self {
        self.config.memory_mib = mib;
        self
    }

    pub fn deadline(mut self, d: Duration) -> Self {
        self.config.deadline = Some(d);
        self
    }

    pub fn accel(mut self, a: Accel) -> Self {
        self.config.accel = a;
        self
    }

    /// TCG vCPU threading; see [`TcgThreads::Multi`] for the risk of leaving `Single`.
    pub fn tcg_threads(mut self, t: TcgThreads) -> Self {
        self.config.tcg_threads = t;
        self
    }

    pub fn qemu_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.qemu_binary = Some(path.into());
        self
    }

    /// `0` omits `tsc_early_khz`.
    pub fn tsc_khz(mut self, khz: u64) -> Self {
        self.config.tsc_khz = Some(khz);
        self
    }

    pub fn extra_qemu_arg(mut self, arg: impl Into<String>) -> Self {
        self.config.extra_qemu_args.push(arg.into());
        self
    }

    /// Receives COM1 bytes live, as the guest writes them.
    pub fn com1_sink(mut self, sink: Box<dyn Write + Send>) -> Self {
        self.com1_sink = Some(sink);
        self
    }

    pub fn com2_sink(mut self, sink: Box<dyn Write + Send>) -> Self {
        self.com2_sink = Some(sink);
        self
    }

    pub fn config(&self) -> &QemuConfig {
        &self.config
    }

    /// Starts QEMU and returns once the guest is running.
    pub fn spawn(self) -> Result<RunningVm> {
        RunningVm::spawn(self.config, self.com1_sink, self.com2_sink)
    }

    /// Resumes `snapshot` instead of booting; the rest of the configuration must be the one
    /// the snapshot was taken with (checked against its key).
    pub fn restore(mut self, snapshot: QemuSnapshot) -> Self {
        self.config.restore_from = Some(snapshot);
        self
    }

    /// Spawns and waits for the outcome.
    pub fn run(self) -> Result<Outcome> {
        self.spawn()?.wait()
    }
}

/// A running guest. Hand out senders, receivers, the kill handle and the memory view,
/// then call [`RunningVm::wait`]. Dropping it kills QEMU.
pub struct RunningVm {
    // Field order matters for the implicit drops after Drop::drop: process first.
    proc: QemuProcess,
    kill: KillHandle,
    started: Instant,
    startup: Duration,
    deadline: Option<Instant>,
    com1: Capture,
    com2: Capture,
    console_rx: Option<Receiver<Vec<u8>>>,
    bulk_rx: Option<Receiver<Vec<u8>>>,
    console_tx: Option<PortSender>,
    bulk_tx: Option<PortSender>,
    events_rx: Option<Receiver<QmpEvent>>,
    early_events: Vec<QmpEvent>,
    qmp: Option<Arc<QmpCommands>>,
    config: QemuConfig,
    streams: Vec<UnixStream>,
    threads: Vec<JoinHandle<()>>,
    memory: GuestMemoryView,
    /// Guest RAM segments (memfds) in guest-physical order; QEMU maps its own copies.
    ram: Vec<File>,
}

/// Fills the fresh RAM segments with the snapshot's, after checking it belongs to `cfg`.
fn load_snapshot_ram(cfg: &QemuConfig, snap: &QemuSnapshot, ram: &[(File, usize)]) -> Result<()> {
    let mut plain = cfg.clone();
    plain.restore_from = None;
    if snapshot::snapshot_key(&plain)? != snap.key() {
        return Err(Error::SnapshotKeyMismatch {
            dir: snap.dir().to_path_buf(),
        });
    }
    snap.load_ram(ram)
}

impl RunningVm {
    fn spawn(
        cfg: QemuConfig,
        com1_sink: Option<Box<dyn Write + Send>>,
        com2_sink: Option<Box<dyn Write + Send>>,
    ) -> Result<Self> {
        cfg.validate()?;
        let qemu = cfg.resolve_qemu()?;
        let tsc = match cfg.tsc_khz {
            Some(0) => None,
            Some(k) => Some(k),
            None => {
                let k = host_tsc_khz();
                if k.is_none() {
                    tracing::warn!("host TSC kHz unknown; TCG boots may hang in calibrate_delay");
                }
                k
            }
        };
        let ram = cfg
            .memory_segments_mib()?
            .into_iter()
            .map(|mib| Ok((memory::create_ram(mib << 20)?, (mib << 20) as usize)))
            .collect::<Result<Vec<_>>>()?;
        if let Some(snap) = &cfg.restore_from {
            load_snapshot_ram(&cfg, snap, &ram)?;
        }
        let memory =
            GuestMemoryView::open(&ram.iter().map(|(f, len)| (f, *len)).collect::<Vec<_>>())?;
        // Host ends in this order: QMP, COM1, COM2, console, bulk.
        let pairs = ["QMP", "COM1", "COM2", "hvc0", BULK_PORT_NAME]
            .into_iter()
            .map(chardev::pair)
            .collect::<Result<Vec<_>>>()?;
        let qemu_end = |i: usize| pairs[i].1.as_raw_fd();
        let fds = RunFds {
            qmp: qemu_end(0),
            com1: qemu_end(1),
            com2: qemu_end(2),
            console: qemu_end(3),
            bulk: qemu_end(4),
            memory: ram.iter().map(|(f, _)| f.as_raw_fd()).collect(),
        };
        let args = build_args(&cfg, &fds, tsc)?;

        let started = Instant::now();
        let proc = QemuProcess::spawn(&qemu, &args, fds.all(), cfg.kill_grace)?;
        // QEMU holds its ends now; dropping ours lets a reader see EOF when QEMU dies.
        let streams: Vec<UnixStream> = pairs.into_iter().map(|(host, _)| host).collect();
        tracing::info!(
            pid = proc.pid(),
            accel = cfg.accel.name(),
            tcg_threads = ?cfg.tcg_threads,
            "QEMU started"
        );
        let kill = proc.kill_handle();
        let mut vm = RunningVm {
            proc,
            kill,
            started,
            startup: Duration::ZERO,
            deadline: cfg.deadline.map(|d| started + d),
            com1: Capture::default(),
            com2: Capture::default(),
            console_rx: None,
            bulk_rx: None,
            console_tx: None,
            bulk_tx: None,
            events_rx: None,
            early_events: Vec::new(),
            qmp: None,
            config: cfg.clone(),
            streams,
            threads: Vec::new(),
            memory,
            ram: ram.into_iter().map(|(f, _)| f).collect(),
        };
        let until = started + cfg.startup_timeout;
        let [qmp_s, com1_s, com2_s, con_s, bulk_s] = &vm.streams[..] else {
            return Err(Error::Qmp("internal: socket count".into()));
        };
        let qmp_s = qmp_s
            .try_clone()
            .map_err(|e| Error::io("clone QMP socket", e))?;
        let mut threads = vec![
            chardev::spawn_serial_reader("qemu-com1", com1_s, vm.com1.clone(), com1_sink)?,
            chardev::spawn_serial_reader("qemu-com2", com2_s, vm.com2.clone(), com2_sink)?,
        ];
        let (ctx, crx) = channel();
        let (btx, brx) = channel();
        threads.push(chardev::spawn_port_reader("qemu-hvc0", con_s, ctx)?);
        threads.push(chardev::spawn_port_reader("qemu-bulk", bulk_s, btx)?);
        vm.console_tx = Some(PortSender::new("hvc0", con_s)?);
        vm.bulk_tx = Some(PortSender::new(ktstr_wire::BULK_PORT_NAME, bulk_s)?);
        vm.console_rx = Some(crx);
        vm.bulk_rx = Some(brx);
        vm.threads = threads;

        let remaining = until
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        let (reader, early) = match qmp::start(qmp_s, remaining) {
            Ok(x) => x,
            Err(e) => return Err(vm.startup_error(e, cfg.startup_timeout, until)),
        };
        vm.early_events = early;
        let writer = reader
            .get_ref()
            .try_clone()
            .map_err(|e| Error::io("clone QMP socket", e))?;
        let (etx, erx) = channel();
        let (rtx, rrx) = channel();
        vm.threads.push(qmp::spawn_event_reader(reader, etx, rtx)?);
        vm.events_rx = Some(erx);
        let commands = QmpCommands::new(writer, rrx);
        if let Some(snap) = &cfg.restore_from {
            let state = snapshot::shell_safe(&snap.state_path())?.to_owned();
            commands.execute(
                "migrate-set-capabilities",
                snapshot::ignore_shared_args(),
                remaining,
            )?;
            commands.execute(
                "migrate-incoming",
                serde_json::json!({ "uri": format!("exec:cat {state}") }),
                remaining,
            )?;
            snapshot::wait_migration(
                &|c, a| commands.execute(c, a, remaining),
                "loading the snapshot",
            )?;
        }
        commands.execute("cont", serde_json::Value::Null, remaining)?;
        vm.qmp = Some(Arc::new(commands));
        vm.startup = started.elapsed();
        tracing::debug!(startup = ?vm.startup, "guest resumed");
        Ok(vm)
    }

    /// What a failed QMP handshake means: QEMU exited (bad arguments, missing files), did
    /// not answer by `until`, or a protocol error.
    fn startup_error(&mut self, e: Error, timeout: Duration, until: Instant) -> Error {
        match self
            .proc
            .reap_until(Instant::now() + Duration::from_millis(500))
        {
            Ok(Some(status)) => Error::QemuExitedEarly {
                status,
                stderr: self.proc.stderr(),
            },
            Ok(None) if Instant::now() >= until => {
                let _ = self.proc.terminate();
                Error::StartupTimeout {
                    timeout,
                    stderr: self.proc.stderr(),
                }
            }
            Ok(None) => e,
            Err(reap) => reap,
        }
    }

    /// Pauses the guest and writes a snapshot into `dir` (created; must not hold one yet):
    /// QEMU's device/CPU state plus a copy of guest RAM, then resumes or stays paused.
    pub fn snapshot(&self, dir: &std::path::Path, then: AfterSnapshot) -> Result<QemuSnapshot> {
        let qmp = self
            .qmp
            .as_ref()
            .ok_or_else(|| Error::Qmp("no QMP connection".into()))?;
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let key = snapshot::snapshot_key(&self.config)?;
        let timeout = snapshot::MIGRATE_TIMEOUT;
        let exec = |c: &str, a| qmp.execute(c, a, timeout);
        exec("stop", serde_json::Value::Null)?;
        exec("migrate-set-capabilities", snapshot::ignore_shared_args())?;
        let state = dir.join("state");
        let uri = format!("exec:cat > {}", snapshot::shell_safe(&state)?);
        exec("migrate", serde_json::json!({ "uri": uri }))?;
        snapshot::wait_migration(&exec, "writing the snapshot")?;
        // The guest is paused: its RAM is consistent with the state just written.
        let mut ram = Vec::new();
        for (i, from) in self.ram.iter().enumerate() {
            let to = dir.join(format!("ram{i}"));
            let file =
                File::create(&to).map_err(|e| Error::io(format!("create {}", to.display()), e))?;
            let copied =
                snapshot::sparse_copy(from, &file, &format!("copy RAM to {}", to.display()))?;
            ram.push((to, copied));
        }
        let snap = snapshot::write_manifest(dir, &key, &ram)?;
        if then == AfterSnapshot::Continue {
            exec("cont", serde_json::Value::Null)?;
        }
        Ok(snap)
    }

    pub fn kill_handle(&self) -> KillHandle {
        self.kill.clone()
    }

    /// A handle for QEMU's human monitor, usable from another thread while
    /// [`RunningVm::wait`] runs (e.g. to dump a stuck guest's vCPU state).
    pub fn monitor(&self) -> Option<Monitor> {
        self.qmp.clone().map(Monitor)
    }

    pub fn memory(&self) -> GuestMemoryView {
        self.memory.clone()
    }

    /// Writer for the virtio console port (guest /dev/hvc0).
    pub fn console_sender(&self) -> Option<PortSender> {
        self.console_tx.clone()
    }

    /// Writer for the `ktstr.bulk` port (guest /dev/vport0p1).
    pub fn bulk_sender(&self) -> Option<PortSender> {
        self.bulk_tx.clone()
    }

    /// Bytes the guest writes to /dev/hvc0; `None` after the first call.
    pub fn take_console_receiver(&mut self) -> Option<Receiver<Vec<u8>>> {
        self.console_rx.take()
    }

    /// Bytes the guest writes to /dev/vport0p1; `None` after the first call.
    pub fn take_bulk_receiver(&mut self) -> Option<Receiver<Vec<u8>>> {
        self.bulk_rx.take()
    }

    /// COM1 so far.
    pub fn com1(&self) -> Vec<u8> {
        self.com1.snapshot()
    }

    /// COM2 so far.
    pub fn com2(&self) -> Vec<u8> {
        self.com2.snapshot()
    }

    /// Replaces the deadline with `d` from now.
    pub fn set_deadline(&mut self, d: Duration) {
        self.deadline = Some(Instant::now() + d);
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// When QEMU was spawned (the origin of [`Timings`] and the configured deadline).
    pub fn started_at(&self) -> Instant {
        self.started
    }

    /// Blocks until QEMU exits, is killed, or the deadline passes.
    pub fn wait(mut self) -> Result<Outcome> {
        let mut obs = Observed::default();
        let grace = self.proc_grace();
        let status = loop {
            if let Some(s) = self.proc.try_reap()? {
                break s;
            }
            if let Some(at) = self.proc.kill_requested_at() {
                if at.elapsed() >= grace {
                    break self.proc.force_kill()?;
                }
            } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
                tracing::info!("deadline exceeded; terminating QEMU");
                obs.deadline = true;
                break self.proc.terminate()?;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let total = self.started.elapsed();
        obs.killed = self.kill.kill_requested();
        self.join_threads();
        obs.events = std::mem::take(&mut self.early_events);
        if let Some(rx) = &self.events_rx {
            obs.events.extend(rx.try_iter());
        }
        let stderr = self.proc.stderr();
        let exit = classify(&obs, status, &stderr);
        tracing::info!(exit = exit.name(), ?total, "QEMU run ended");
        Ok(Outcome {
            exit,
            com1: std::mem::take(&mut *self.com1.bytes.lock().unwrap_or_else(|e| e.into_inner())),
            com2: std::mem::take(&mut *self.com2.bytes.lock().unwrap_or_else(|e| e.into_inner())),
            status,
            timings: Timings {
                startup: self.startup,
                total,
            },
            stderr,
        })
    }

    fn proc_grace(&self) -> Duration {
        self.proc.grace()
    }

    /// Readers end at EOF once QEMU is gone; shutdown makes that certain.
    fn join_threads(&mut self) {
        for s in &self.streams {
            let _ = s.shutdown(std::net::Shutdown::Read);
        }
        for h in self.threads.drain(..) {
            if h.join().is_err() {
                tracing::warn!("a QEMU reader thread panicked");
            }
        }
    }
}

/// QEMU's human monitor (HMP) over the run's QMP connection.
#[derive(Clone)]
pub struct Monitor(Arc<QmpCommands>);

impl Monitor {
    /// Runs one HMP command (`info registers`, `info lapic`, ...) and
    /// returns its text; fails once QEMU is gone or after `timeout`.
    pub fn human(&self, command_line: &str, timeout: Duration) -> Result<String> {
        let reply = self.0.execute(
            "human-monitor-command",
            serde_json::json!({ "command-line": command_line }),
            timeout,
        )?;
        Ok(reply.as_str().unwrap_or_default().to_owned())
    }
}

impl Drop for RunningVm {
    fn drop(&mut self) {
        if let Err(e) = self.proc.terminate() {
            tracing::warn!(error = %e, "could not terminate QEMU");
        }
        self.join_threads();
    }
}
