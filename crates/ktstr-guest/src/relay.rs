//! Copy a child's stdout/stderr to the host as `Stdout`/`Stderr` chunks,
//! keeping the last bytes for error reports.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use ktstr_wire::{ByteStr, Chunk, Message};

use crate::outbox::Outbox;

/// Largest chunk payload: well under the host decoder's 1 MiB limit.
pub const CHUNK: usize = 64 * 1024;
/// Bytes of each stream kept for error messages.
pub const TAIL: usize = 16 * 1024;

/// Which stream a relay carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// The last [`TAIL`] bytes of a stream.
#[derive(Clone, Default)]
pub struct Tail(Arc<Mutex<Vec<u8>>>);

impl Tail {
    fn push(&self, data: &[u8]) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.extend_from_slice(data);
        let excess = g.len().saturating_sub(TAIL);
        g.drain(..excess);
    }

    /// The kept bytes as (lossy) text.
    pub fn text(&self) -> String {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&g).into_owned()
    }
}

/// Start a thread copying `src` to the host until EOF. A failed send stops
/// forwarding but keeps reading, so the child never blocks on a full pipe.
pub fn start(
    src: impl Read + Send + 'static,
    stream: Stream,
    pid: u32,
    out: Outbox,
    tail: Tail,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("relay-{pid}"))
        .spawn(move || pump(src, stream, pid, &out, &tail))
}

fn pump(mut src: impl Read, stream: Stream, pid: u32, out: &Outbox, tail: &Tail) {
    let mut buf = vec![0u8; CHUNK];
    let mut forwarding = true;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let data = buf.get(..n).unwrap_or_default();
        tail.push(data);
        if forwarding {
            let chunk = Chunk {
                pid,
                data: ByteStr(data),
            };
            let msg = match stream {
                Stream::Stdout => Message::Stdout(chunk),
                Stream::Stderr => Message::Stderr(chunk),
            };
            forwarding = out.send(&msg).is_ok();
        }
    }
}
