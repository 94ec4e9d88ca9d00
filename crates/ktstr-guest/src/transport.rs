//! The guest end of a frame channel.
//!
//! [`open_bulk`] finds the virtio port named `ktstr.bulk` and opens it once,
//! read-write: a virtio port admits a single open, so sending and receiving
//! share one fd. [`Port`] works over any `Read + Write` so it is testable on
//! a socket pair.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ktstr_wire::{BULK_PORT_NAME, Message, OwnedFrame, VecDecoder, encode_into, encoded_len};

use crate::error::Error;

/// Where the kernel lists virtio ports.
pub const VIRTIO_PORTS_DIR: &str = "/sys/class/virtio-ports";
/// Largest host→guest payload accepted; commands are small.
const MAX_COMMAND_PAYLOAD: u32 = 1 << 20;

/// The /dev node of the port whose `<sys_dir>/<port>/name` is `name`.
pub fn find_port(sys_dir: &Path, name: &str) -> Result<PathBuf, Error> {
    let entries = std::fs::read_dir(sys_dir)
        .map_err(|e| Error::io(format!("list {}", sys_dir.display()), e))?;
    for entry in entries.flatten() {
        let Ok(found) = std::fs::read_to_string(entry.path().join("name")) else {
            continue;
        };
        if found.trim_end() == name {
            return Ok(Path::new("/dev").join(entry.file_name()));
        }
    }
    Err(Error::PortNotFound {
        name: name.to_owned(),
        searched: sys_dir.to_owned(),
    })
}

/// Find and open the `ktstr.bulk` port.
pub fn open_bulk() -> Result<Port<File>, Error> {
    let dev = find_port(Path::new(VIRTIO_PORTS_DIR), BULK_PORT_NAME)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&dev)
        .map_err(|e| Error::io(format!("open {}", dev.display()), e))?;
    Ok(Port::new(file))
}

/// Frames out with consecutive sequence numbers from 0; frames in through a
/// resynchronising decoder.
pub struct Port<T> {
    io: T,
    next_seq: u64,
    scratch: Vec<u8>,
    decoder: VecDecoder,
    inbox: VecDeque<OwnedFrame>,
    rx_errors: u64,
}

impl<T: Read + Write> Port<T> {
    /// Wrap an open channel.
    pub fn new(io: T) -> Self {
        Port {
            io,
            next_seq: 0,
            scratch: Vec::new(),
            decoder: VecDecoder::new(MAX_COMMAND_PAYLOAD),
            inbox: VecDeque::new(),
            rx_errors: 0,
        }
    }

    /// Encode and write one frame; returns its sequence number.
    pub fn send(&mut self, msg: &Message<'_>) -> Result<u64, Error> {
        let seq = self.next_seq;
        self.scratch.resize(encoded_len(msg), 0);
        let n = encode_into(&mut self.scratch, seq, msg)?;
        let frame = self.scratch.get(..n).unwrap_or_default();
        self.io
            .write_all(frame)
            .map_err(|e| Error::io("write frame", e))?;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Write unframed bytes (noise for tests).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.io
            .write_all(bytes)
            .map_err(|e| Error::io("write raw bytes", e))
    }

    /// Block until the next good frame; `Ok(None)` at end of stream. Bad
    /// frames are dropped and counted ([`rx_errors`](Self::rx_errors)).
    pub fn recv(&mut self) -> Result<Option<OwnedFrame>, Error> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = self.inbox.pop_front() {
                return Ok(Some(f));
            }
            let n = match self.io.read(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read channel", e)),
            };
            let (inbox, errors) = (&mut self.inbox, &mut self.rx_errors);
            self.decoder
                .push(buf.get(..n).unwrap_or_default(), |item| match item {
                    Ok(frame) => inbox.push_back(frame.to_owned_frame()),
                    Err(_) => *errors += 1,
                });
        }
    }

    /// Sequence number the next [`send`](Self::send) will use.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Received frames rejected by the decoder so far.
    pub fn rx_errors(&self) -> u64 {
        self.rx_errors
    }

    /// The underlying channel.
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use ktstr_wire::{Command, Ping, Pong, encode};

    use super::*;

    #[test]
    fn finds_port_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for (port, name) in [("vport0p0", ""), ("vport0p1", "ktstr.bulk\n")] {
            std::fs::create_dir(dir.path().join(port)).unwrap();
            std::fs::write(dir.path().join(port).join("name"), name).unwrap();
        }
        assert_eq!(
            find_port(dir.path(), BULK_PORT_NAME).unwrap(),
            Path::new("/dev/vport0p1")
        );
        assert!(matches!(
            find_port(dir.path(), "nope"),
            Err(Error::PortNotFound { .. })
        ));
    }

    #[test]
    fn send_numbers_frames_and_recv_skips_noise() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut port = Port::new(a);
        assert_eq!(port.send(&Message::Pong(Pong::new(1))).unwrap(), 0);
        assert_eq!(port.send(&Message::Pong(Pong::new(2))).unwrap(), 1);
        let mut stream = b"noise".to_vec();
        stream.extend(encode(9, &Command::Ping(Ping::new(7)).into()).unwrap());
        b.write_all(&stream).unwrap();
        // Half-close: dropping `b` with our pongs unread would reset the socket.
        b.shutdown(std::net::Shutdown::Write).unwrap();
        let f = port.recv().unwrap().unwrap();
        assert_eq!(f.message().unwrap(), Command::Ping(Ping::new(7)).into());
        assert!(port.recv().unwrap().is_none());
    }
}
