//! The host→guest command loop: answer pings until told to shut down, and
//! count (and pattern-check) the `Stdin` bytes the host streams in.

use std::io::{Read, Write};

use ktstr_wire::{ByteStr, Command, Log, LogLevel, Message, Pong};

use crate::error::Error;
use crate::pattern;
use crate::transport::Port;

/// Host→guest data received so far; reported in a `Log` before each `Pong`
/// so the host can time and check a host→guest stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StdinTally {
    /// `Stdin` frames received.
    pub frames: u64,
    /// Their data bytes.
    pub bytes: u64,
    /// Frames whose data did not match the pattern of their sequence number.
    pub bad: u64,
}

impl StdinTally {
    /// The `Log` text: `stdin frames=F bytes=B bad=M`.
    pub fn to_log_text(&self) -> String {
        format!(
            "stdin frames={} bytes={} bad={}",
            self.frames, self.bytes, self.bad
        )
    }
}

/// Serve commands until `Shutdown` (Ok) or end of stream ([`Error::Closed`]).
/// Unknown kinds and malformed payloads are skipped, never fatal.
pub fn serve<T: Read + Write>(port: &mut Port<T>) -> Result<(), Error> {
    let mut tally = StdinTally::default();
    while let Some(frame) = port.recv()? {
        let seq = frame.header.seq();
        match frame.message() {
            Ok(Message::Command(Command::Stdin(chunk))) => {
                tally.frames += 1;
                tally.bytes += chunk.data.len() as u64;
                tally.bad += u64::from(pattern::first_mismatch(seq, &chunk.data).is_some());
            }
            Ok(Message::Command(Command::Ping(p))) => {
                if tally.frames > 0 {
                    let text = tally.to_log_text();
                    port.send(&Message::Log(Log {
                        level: LogLevel::Info,
                        text: ByteStr(text.as_bytes()),
                    }))?;
                }
                port.send(&Message::Pong(Pong::new(p.token.get())))?;
            }
            Ok(Message::Command(Command::Shutdown)) => return Ok(()),
            Ok(_) => {}
            Err(e) => eprintln!("ktstr-guest: skipping bad command payload: {e}"),
        }
    }
    Err(Error::Closed)
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use ktstr_wire::{Ping, VecDecoder, encode, encode_raw_into};

    use super::*;

    #[test]
    fn ping_pong_then_shutdown() {
        let (a, mut host) = UnixStream::pair().unwrap();
        let mut input = Vec::new();
        input.extend(encode(0, &Command::Ping(Ping::new(42)).into()).unwrap());
        // A PING with a truncated payload must be skipped, not fatal.
        let mut bad = [0u8; 64];
        let n = encode_raw_into(&mut bad, 1, ktstr_wire::Kind::PING, 0, &[1, 2]).unwrap();
        input.extend_from_slice(&bad[..n]);
        input.extend(encode(2, &Command::Shutdown.into()).unwrap());
        host.write_all(&input).unwrap();
        let mut port = Port::new(a);
        serve(&mut port).unwrap();
        drop(port);
        let mut out = Vec::new();
        host.read_to_end(&mut out).unwrap();
        let mut dec = VecDecoder::default();
        let mut pongs = Vec::new();
        dec.push(&out, |f| pongs.push(f.unwrap().message().unwrap().kind()));
        assert_eq!(pongs, [ktstr_wire::Kind::PONG]);
    }

    #[test]
    fn eof_is_closed() {
        let (a, host) = UnixStream::pair().unwrap();
        drop(host);
        assert!(matches!(serve(&mut Port::new(a)), Err(Error::Closed)));
    }
}
