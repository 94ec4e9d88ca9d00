//! `std::io` conveniences.

use std::io;

use crate::encoder::encode;
use crate::error::EncodeError;
use crate::message::Message;

/// Encode `msg` and write the whole frame to `w`; returns the frame length.
pub fn write_message<W: io::Write + ?Sized>(
    w: &mut W,
    seq: u64,
    msg: &Message<'_>,
) -> io::Result<usize> {
    let frame = encode(seq, msg)?;
    w.write_all(&frame)?;
    Ok(frame.len())
}

impl From<EncodeError> for io::Error {
    fn from(e: EncodeError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}
