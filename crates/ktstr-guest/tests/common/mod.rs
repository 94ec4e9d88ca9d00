//! Shared by the QEMU tests: what they need (checked by `ktstr_testenv`),
//! the initramfs, and a checker for guest streams.
#![allow(dead_code)]

use std::path::PathBuf;

use std::time::{Duration, Instant};

use ktstr_guest::pattern;
use ktstr_guest::selftest::Report;
use ktstr_initramfs::Archive;

use ktstr_wire::{Message, VecDecoder};

pub use ktstr_testenv::{BUSYBOX, Need, TestEnv, test_env, vm_slot};

/// What every test here needs: a kernel, QEMU and a static busybox.
pub const NEEDS: &[Need] = &[Need::Kernel, Need::Qemu, Need::Busybox];

/// The agent to pack: this build's, or `KTSTR_GUEST_BIN` (e.g. a release
/// build, for throughput figures not dominated by debug-mode CRC).
pub fn guest_binary() -> PathBuf {
    std::env::var_os("KTSTR_GUEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ktstr-guest")))
}

/// busybox + ktstr-guest (with its loader and libs) + an /init that mounts
/// the pseudo file systems, runs `ktstr-guest <args>`, prints its exit code
/// and reboots (the QEMU backend boots with reboot=t).
pub fn initramfs(guest_args: &str) -> tempfile::NamedTempFile {
    let init = format!(
        "#!/bin/sh\n\
         /bin/busybox --install -s /bin\n\
         export PATH=/bin\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t devtmpfs dev /dev\n\
         /bin/ktstr-guest {guest_args}\n\
         echo \"KTSTR-GUEST-EXIT rc=$?\"\n\
         reboot -f\n"
    );
    let mut a = Archive::new();
    a.add_elf_with_libs("bin/busybox", BUSYBOX)
        .and_then(|a| a.add_symlink("bin/sh", "busybox"))
        .and_then(|a| a.add_char_dev("dev/console", 0o600, 5, 1))
        .and_then(|a| a.add_char_dev("dev/null", 0o666, 1, 3))
        .and_then(|a| a.add_dir("proc", 0o555))
        .and_then(|a| a.add_dir("sys", 0o555))
        .and_then(|a| a.add_dir("tmp", 0o1777))
        .and_then(|a| a.add_elf_with_libs("bin/ktstr-guest", guest_binary()))
        .and_then(|a| a.add_file("init", 0o755, init.into_bytes()))
        .expect("build initramfs");
    let f = tempfile::Builder::new()
        .prefix("ktstr-guest-initrd-")
        .tempfile()
        .expect("initramfs temp file");
    a.write_to(f.path()).expect("write initramfs");
    f
}

/// Decodes a guest stream and checks it as it arrives: every frame valid,
/// sequence numbers 0,1,2,… without gaps, data bytes equal to the pattern.
pub struct StreamCheck {
    pub dec: VecDecoder,
    pub next_seq: u64,
    pub errors: Vec<String>,
    pub data_frames: u64,
    pub data_bytes: u64,
    pub first_data: Option<Instant>,
    pub last_data: Option<Instant>,
    pub report: Option<Report>,
    pub pongs: Vec<(u64, Instant)>,
    /// The guest's `stdin frames=… bytes=… bad=…` tallies, in order.
    pub stdin_logs: Vec<String>,
}

impl StreamCheck {
    pub fn new() -> Self {
        StreamCheck {
            dec: VecDecoder::default(),
            next_seq: 0,
            errors: Vec::new(),
            data_frames: 0,
            data_bytes: 0,
            first_data: None,
            last_data: None,
            report: None,
            pongs: Vec::new(),
            stdin_logs: Vec::new(),
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        let now = Instant::now();
        let mut dec = std::mem::take(&mut self.dec);
        dec.push(chunk, |item| {
            let frame = match item {
                Ok(f) => f,
                Err(e) => return self.errors.push(format!("decode: {e}")),
            };
            if frame.seq() != self.next_seq {
                self.errors.push(format!(
                    "seq {} where {} expected",
                    frame.seq(),
                    self.next_seq
                ));
            }
            self.next_seq = frame.seq() + 1;
            match frame.message() {
                Ok(Message::Stdout(c)) => {
                    if let Some(at) = pattern::first_mismatch(frame.seq(), &c.data) {
                        self.errors
                            .push(format!("frame {} differs at byte {at}", frame.seq()));
                    }
                    self.data_frames += 1;
                    self.data_bytes += c.data.len() as u64;
                    self.first_data.get_or_insert(now);
                    self.last_data = Some(now);
                }
                Ok(Message::Log(l)) => {
                    let text = l.text.to_str().unwrap_or_default();
                    match Report::from_log_text(text) {
                        Some(r) => self.report = Some(r),
                        None if text.starts_with("stdin ") => {
                            self.stdin_logs.push(text.to_string())
                        }
                        None => self.errors.push(format!("unexpected log {text:?}")),
                    }
                }
                Ok(Message::Pong(p)) => self.pongs.push((p.token.get(), now)),
                other => self.errors.push(format!("unexpected message {other:?}")),
            }
        });
        self.dec = dec;
    }

    /// Payload MiB/s and frames/s between the first and last data frame.
    pub fn rates(&self) -> (f64, f64, Duration) {
        let span = match (self.first_data, self.last_data) {
            (Some(a), Some(b)) => b - a,
            _ => Duration::ZERO,
        };
        let secs = span.as_secs_f64().max(1e-9);
        (
            self.data_bytes as f64 / secs / (1 << 20) as f64,
            self.data_frames as f64 / secs,
            span,
        )
    }
}
