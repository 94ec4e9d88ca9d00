//! Shared by the integration tests and the example: environment discovery with SKIP/CI
//! rules, a newc cpio writer, a busybox initramfs, and a COM1 sink that feeds a channel.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel};

use std::time::{Duration, Instant};

use ktstr_qemu::QemuBuilder;

#[allow(unused_imports)]
pub use ktstr_testenv::{BUSYBOX, TestEnv, vm_lock};

/// Kernel, QEMU and busybox (see `ktstr_testenv`).
pub fn test_env(test: &str) -> Option<TestEnv> {
    ktstr_testenv::test_env(
        test,
        ktstr_testenv::Needs {
            qemu: true,
            busybox: true,
            ..Default::default()
        },
    )
}

/// Minimal newc ("070701") cpio writer.
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Default for Cpio {
    fn default() -> Self {
        Self::new()
    }
}

impl Cpio {
    pub fn new() -> Self {
        Cpio {
            out: Vec::new(),
            ino: 1,
        }
    }

    fn pad4(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.ino += 1;
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad4();
        self.out.extend_from_slice(data);
        self.pad4();
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(name, 0o040755, (0, 0), &[]);
        self
    }

    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.entry(name, 0o100000 | mode, (0, 0), data);
        self
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name, 0o120777, (0, 0), target.as_bytes());
        self
    }

    pub fn char_dev(&mut self, name: &str, mode: u32, major: u32, minor: u32) -> &mut Self {
        self.entry(name, 0o020000 | mode, (major, minor), &[]);
        self
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

/// Busybox initramfs whose /init mounts proc/sys/dev, installs applet links, runs `body`,
/// then reboots. Returns the temp file holding it.
pub fn initramfs(body: &str) -> tempfile::NamedTempFile {
    let script = format!(
        "#!/bin/busybox sh\n\
         /bin/busybox --install -s /bin\n\
         export PATH=/bin\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t devtmpfs dev /dev\n\
         {body}\n\
         reboot -f\n"
    );
    let busybox = std::fs::read(BUSYBOX).expect("read busybox");
    let mut c = Cpio::new();
    for d in ["bin", "dev", "proc", "sys", "tmp"] {
        c.dir(d);
    }
    c.file("bin/busybox", 0o755, &busybox)
        .symlink("bin/sh", "busybox")
        .char_dev("dev/console", 0o600, 5, 1)
        .char_dev("dev/null", 0o666, 1, 3)
        .file("init", 0o755, script.as_bytes());
    let mut f = tempfile::Builder::new()
        .prefix("ktstr-qemu-initrd-")
        .tempfile()
        .expect("initramfs temp file");
    f.write_all(&c.finish()).expect("write initramfs");
    f
}

/// COM1 sink that forwards every chunk to a channel.
pub struct ChannelSink(pub Sender<Vec<u8>>);

impl Write for ChannelSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Accumulates a live byte stream and waits for text in it.
pub struct Watch {
    rx: Receiver<Vec<u8>>,
    pub seen: Vec<u8>,
}

impl Watch {
    pub fn new() -> (Self, ChannelSink) {
        let (tx, rx) = channel();
        (
            Watch {
                rx,
                seen: Vec::new(),
            },
            ChannelSink(tx),
        )
    }

    pub fn from_receiver(rx: Receiver<Vec<u8>>) -> Self {
        Watch {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits until `needle` has been seen; returns the time it took.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        let until = start + timeout;
        loop {
            if self.text().contains(needle) {
                return Some(start.elapsed());
            }
            let left = until.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(chunk) => self.seen.extend_from_slice(&chunk),
                Err(_) => return self.text().contains(needle).then(|| start.elapsed()),
            }
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }
}

/// Builder with the settings every test uses: TCG, 256 MiB, quiet kernel, safety deadline.
pub fn builder(env: &TestEnv, initrd: &Path) -> QemuBuilder {
    QemuBuilder::new(&env.kernel)
        .initramfs(initrd)
        .accel(ktstr_qemu::Accel::Tcg)
        .memory_mib(256)
        .cmdline("quiet")
        .deadline(Duration::from_secs(120))
}
