//! Channel self-tests: stream patterned `Stdout` frames (with optional noise
//! between them), then report totals in a `Log` frame the host checks
//! against what it decoded.

use std::io::{Read, Write};
use std::path::Path;

use ktstr_wire::{ByteStr, Chunk, Log, LogLevel, Message};

use crate::error::Error;
use crate::transport::{Port, open_bulk};
use crate::{noise, pattern, serve, uart};

/// Data payload per frame on the virtio port (~60 KiB: under the 64 KiB
/// virtio-serial buffer so a frame is about one host read).
pub const BULK_CHUNK: usize = 60 * 1024;
/// Data payload per frame on a UART.
pub const UART_CHUNK: usize = 4 * 1024;

/// What a stream sent; also the content of the closing `Log` frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Data frames (sequence numbers `0..frames`).
    pub frames: u64,
    /// Sum of their `Chunk::data` lengths.
    pub payload_bytes: u64,
    /// Unframed noise bytes written between them.
    pub garbage_bytes: u64,
}

impl Report {
    /// The `Log` text: `selftest frames=F payload_bytes=P garbage_bytes=G`.
    pub fn to_log_text(&self) -> String {
        format!(
            "selftest frames={} payload_bytes={} garbage_bytes={}",
            self.frames, self.payload_bytes, self.garbage_bytes
        )
    }

    /// Parse [`to_log_text`](Self::to_log_text) output (host side).
    pub fn from_log_text(text: &str) -> Option<Self> {
        let mut r = Report::default();
        let mut rest = text.strip_prefix("selftest ")?.split(' ');
        for (key, slot) in [
            ("frames=", &mut r.frames),
            ("payload_bytes=", &mut r.payload_bytes),
            ("garbage_bytes=", &mut r.garbage_bytes),
        ] {
            *slot = rest.next()?.strip_prefix(key)?.parse().ok()?;
        }
        Some(r)
    }
}

/// Send at least `total` payload bytes in `chunk`-sized frames, noise after
/// every `garbage_every` frames (0 = none), then the `Log` report.
pub fn stream<T: Read + Write>(
    port: &mut Port<T>,
    total: u64,
    chunk: usize,
    garbage_every: u64,
) -> Result<Report, Error> {
    let mut data = vec![0u8; chunk.max(1)];
    let frames = total.div_ceil(data.len() as u64);
    let pid = std::process::id();
    let mut r = Report::default();
    for i in 0..frames {
        pattern::fill(port.next_seq(), &mut data);
        let msg = Message::Stdout(Chunk {
            pid,
            data: ByteStr(&data),
        });
        port.send(&msg)?;
        r.frames += 1;
        r.payload_bytes += data.len() as u64;
        if garbage_every > 0 && (i + 1) % garbage_every == 0 {
            let junk = noise::burst(i);
            port.send_raw(&junk)?;
            r.garbage_bytes += junk.len() as u64;
        }
    }
    let text = r.to_log_text();
    port.send(&Message::Log(Log {
        level: LogLevel::Info,
        text: ByteStr(text.as_bytes()),
    }))?;
    Ok(r)
}

/// `wire-selftest`: stream over `ktstr.bulk`, then answer commands until
/// `Shutdown`.
pub fn wire_selftest(mib: u64, garbage_every: u64) -> Result<(), Error> {
    let mut port = open_bulk()?;
    stream(
        &mut port,
        mib.saturating_mul(1 << 20),
        BULK_CHUNK,
        garbage_every,
    )?;
    serve::serve(&mut port)
}

/// `uart-selftest`: stream over a raw serial device and wait for it to drain.
pub fn uart_selftest(dev: &Path, kib: u64, garbage_every: u64) -> Result<(), Error> {
    let mut port = Port::new(uart::open_raw(dev)?);
    stream(
        &mut port,
        kib.saturating_mul(1 << 10),
        UART_CHUNK,
        garbage_every,
    )?;
    uart::drain(port.get_ref())
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use ktstr_wire::VecDecoder;

    use super::*;

    #[test]
    fn report_text_round_trips() {
        let r = Report {
            frames: 3,
            payload_bytes: 30,
            garbage_bytes: 7,
        };
        assert_eq!(Report::from_log_text(&r.to_log_text()), Some(r));
        assert_eq!(Report::from_log_text("selftest frames=x"), None);
    }

    #[test]
    fn stream_decodes_with_counted_noise() {
        let (a, mut host) = UnixStream::pair().unwrap();
        let guest = std::thread::spawn(move || {
            let mut port = Port::new(a);
            stream(&mut port, 10_000, 1000, 3).unwrap()
        });
        let mut bytes = Vec::new();
        host.read_to_end(&mut bytes).unwrap();
        let sent = guest.join().unwrap();
        let mut dec = VecDecoder::default();
        let (mut seqs, mut report) = (Vec::new(), None);
        dec.push(&bytes, |f| {
            let f = f.unwrap();
            match f.message().unwrap() {
                Message::Stdout(c) => {
                    assert_eq!(pattern::first_mismatch(f.seq(), &c.data), None);
                    seqs.push(f.seq());
                }
                Message::Log(l) => report = Report::from_log_text(l.text.to_str().unwrap()),
                other => panic!("{other:?}"),
            }
        });
        assert_eq!(seqs, (0..10).collect::<Vec<_>>());
        assert_eq!(report, Some(sent));
        assert_eq!(dec.stats().garbage_bytes, sent.garbage_bytes);
        assert_eq!(dec.stats().errors, 0);
        assert!(sent.garbage_bytes > 0);
    }
}
