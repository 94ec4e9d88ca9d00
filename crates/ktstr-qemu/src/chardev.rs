//! Host ends of QEMU's socket chardevs. Each chardev is a connected socket pair made before
//! spawning: QEMU inherits one end, the host keeps the other, and QEMU starts paused (-S),
//! so nothing is lost or raced and no socket has a path to clean up.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Error, Result};

/// A connected pair: (host end, QEMU's end). Both are close-on-exec; the spawn makes
/// QEMU's end inheritable in the child only.
pub(crate) fn pair(what: &str) -> Result<(UnixStream, UnixStream)> {
    UnixStream::pair().map_err(|e| Error::io(format!("socket pair for {what}"), e))
}

fn clone_stream(s: &UnixStream) -> Result<UnixStream> {
    s.try_clone().map_err(|e| Error::io("clone socket", e))
}

fn spawn_named(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| Error::io(format!("spawn thread {name}"), e))
}

/// Captured serial output shared between its reader thread and the run.
/// Reading what the guest printed (a kernel panic, say) is the caller's job:
/// `ktstr-backend`'s `death` module is the one classifier.
#[derive(Clone, Default)]
pub(crate) struct Capture {
    pub(crate) bytes: Arc<Mutex<Vec<u8>>>,
}

impl Capture {
    pub(crate) fn snapshot(&self) -> Vec<u8> {
        self.bytes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Reads a serial port until EOF into `cap`, forwarding each chunk to `sink`.
pub(crate) fn spawn_serial_reader(
    name: &str,
    stream: &UnixStream,
    cap: Capture,
    mut sink: Option<Box<dyn Write + Send>>,
) -> Result<JoinHandle<()>> {
    let mut stream = clone_stream(stream)?;
    spawn_named(name, move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            let chunk = &buf[..n];
            if let Some(s) = sink.as_mut() {
                // A broken caller sink must not stop capture.
                if s.write_all(chunk).and_then(|_| s.flush()).is_err() {
                    sink = None;
                }
            }
            cap.bytes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(chunk);
        }
    })
}

/// Reads a virtio-serial port until EOF, delivering each chunk on `tx`.
pub(crate) fn spawn_port_reader(
    name: &str,
    stream: &UnixStream,
    tx: Sender<Vec<u8>>,
) -> Result<JoinHandle<()>> {
    let mut stream = clone_stream(stream)?;
    spawn_named(name, move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut receiver_alive = true;
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            // Keep draining after the receiver is dropped so the guest never stalls.
            if receiver_alive && tx.send(buf[..n].to_vec()).is_err() {
                receiver_alive = false;
            }
        }
    })
}

/// Cloneable writer to one virtio-serial port; usable from any thread, any time.
/// Bytes sent before the guest opens the port wait in the socket until it does.
#[derive(Clone, Debug)]
pub struct PortSender {
    name: &'static str,
    stream: Arc<Mutex<UnixStream>>,
}

impl PortSender {
    pub(crate) fn new(name: &'static str, stream: &UnixStream) -> Result<Self> {
        Ok(PortSender {
            name,
            stream: Arc::new(Mutex::new(clone_stream(stream)?)),
        })
    }

    /// Writes all of `bytes`; the lock keeps concurrent sends from interleaving.
    pub fn send(&self, bytes: &[u8]) -> Result<()> {
        let mut s = self.stream.lock().unwrap_or_else(|e| e.into_inner());
        s.write_all(bytes)
            .and_then(|_| s.flush())
            .map_err(|e| Error::io(format!("write to port {}", self.name), e))
    }
}
