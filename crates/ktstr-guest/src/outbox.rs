//! The guest→host half of the bulk channel, shared by the dispatch loop,
//! output relays and the scheduler monitor: one lock, one sequence counter,
//! so frames never interleave and numbers stay consecutive.

use std::io::Write;
use std::sync::{Arc, Mutex};

use ktstr_wire::{Message, encode_into, encoded_len};

use crate::error::Error;

struct Inner {
    out: Box<dyn Write + Send>,
    next_seq: u64,
    scratch: Vec<u8>,
}

/// Cloneable frame sender.
#[derive(Clone)]
pub struct Outbox(Arc<Mutex<Inner>>);

impl Outbox {
    /// Frames go to `out`, numbered from 0.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Outbox(Arc::new(Mutex::new(Inner {
            out,
            next_seq: 0,
            scratch: Vec::new(),
        })))
    }

    /// Encode and write one whole frame; returns its sequence number.
    pub fn send(&self, msg: &Message<'_>) -> Result<u64, Error> {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *g;
        let seq = inner.next_seq;
        inner.scratch.resize(encoded_len(msg), 0);
        let n = encode_into(&mut inner.scratch, seq, msg)?;
        let frame = inner.scratch.get(..n).unwrap_or_default();
        inner
            .out
            .write_all(frame)
            .and_then(|()| inner.out.flush())
            .map_err(|e| Error::io("write frame", e))?;
        inner.next_seq += 1;
        Ok(seq)
    }

    /// Write unframed bytes between frames (garbage for tests).
    pub fn send_raw(&self, bytes: &[u8]) -> Result<(), Error> {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.out
            .write_all(bytes)
            .and_then(|()| g.out.flush())
            .map_err(|e| Error::io("write raw bytes", e))
    }

    /// Send a `Log` line, ignoring failure (diagnostics only).
    pub fn log(&self, level: ktstr_wire::LogLevel, text: &str) {
        let _ = self.send(&Message::Log(ktstr_wire::Log {
            level,
            text: ktstr_wire::ByteStr(text.as_bytes()),
        }));
    }
}
