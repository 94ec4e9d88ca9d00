//! Shared by the integration tests and the example: the environment (from
//! `ktstr_testenv`), a busybox initramfs, and a COM1 sink that feeds a channel.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel};

use std::time::{Duration, Instant};

use ktstr_qemu::QemuBuilder;

#[allow(unused_imports)]
pub use ktstr_testenv::{BUSYBOX, Need, TestEnv, test_env, vm_slot};

/// What every test here needs: a kernel, QEMU and a static busybox.
pub const NEEDS: &[Need] = &[Need::Kernel, Need::Qemu, Need::Busybox];

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
    let mut c = ktstr_initramfs::Archive::new();
    for d in ["bin", "dev", "proc", "sys", "tmp"] {
        c.add_dir(d, 0o755).expect("initramfs dir");
    }
    c.add_host_file("bin/busybox", 0o755, BUSYBOX)
        .and_then(|c| c.add_symlink("bin/sh", "busybox"))
        .and_then(|c| c.add_char_dev("dev/console", 0o600, 5, 1))
        .and_then(|c| c.add_char_dev("dev/null", 0o666, 1, 3))
        .and_then(|c| c.add_file("init", 0o755, script.into_bytes()))
        .expect("build initramfs");
    let mut f = tempfile::Builder::new()
        .prefix("ktstr-qemu-initrd-")
        .tempfile()
        .expect("initramfs temp file");
    f.write_all(&c.to_bytes().expect("initramfs bytes"))
        .expect("write initramfs");
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
