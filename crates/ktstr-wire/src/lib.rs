//! Host↔guest frame format for ktstr.
//!
//! A ktstr guest (the in-VM agent, or any custom guest program) talks to the
//! host over a byte stream — serial port or virtio-console — that may also
//! carry unframed console noise. This crate defines the frames on that stream
//! and nothing else: it depends on no other ktstr crate and is `#![no_std]`,
//! so a custom guest can use it alone.
//!
//! # Frame layout
//!
//! Every frame is a 32-byte [`FrameHeader`] followed by `payload_len` payload
//! bytes. All multi-byte fields are little-endian.
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 4 | magic: bytes `F5 4B 54 57` (`"\xF5KTW"`, [`MAGIC`]) |
//! | 4  | 1 | version major ([`VERSION_MAJOR`] = 1) |
//! | 5  | 1 | version minor ([`VERSION_MINOR`] = 0) |
//! | 6  | 2 | message [`Kind`] |
//! | 8  | 2 | flags (none defined yet) |
//! | 10 | 2 | reserved, zero |
//! | 12 | 4 | payload length |
//! | 16 | 8 | sequence number |
//! | 24 | 4 | frame CRC32C: header with this field zeroed, then the payload |
//! | 28 | 4 | header CRC32C: header bytes 0..24 |
//!
//! The header CRC lets a receiver trust the length before the payload
//! arrives: a frame whose header was corrupted in transit is rejected at once,
//! so it never holds back the frames behind it. The frame CRC then covers
//! everything.
//!
//! `0xF5` never occurs in UTF-8, so console text cannot fake a magic. Payloads
//! are a message's fixed fields followed by its variable fields, each a `u32`
//! length and that many bytes. See [`Message`] for the catalogue and
//! [`Kind`] for the numbers; kinds `< 0x8000` go guest→host, the rest
//! host→guest.
//!
//! # Compatibility rule
//!
//! * **Unknown major version: error.** The decoder rejects the frame with
//!   [`DecodeError::UnsupportedVersion`] and resynchronises.
//! * **Any minor version: accepted**, higher ones included. A minor version may
//!   only add message kinds, flag bits, enum values, meanings for reserved
//!   fields, and fields *appended* to a payload. Hence:
//! * **Unknown kinds are skipped.** The decoder returns them as ordinary
//!   frames; [`Message::parse`] yields [`Message::Unknown`]; receivers ignore
//!   them.
//! * Magic and major version stay at bytes 0..5 in every version.
//! * Unknown flag bits and reserved fields are ignored; unknown enum values
//!   are preserved (`Phase::Unknown(n)` etc.); payload bytes after the last
//!   known field are ignored.
//!
//! # Decoding
//!
//! [`Decoder`] works over a caller-provided buffer (no allocation);
//! [`VecDecoder`] (feature `alloc`) owns a buffer that grows up to
//! `HEADER_LEN + max_payload`. Both accept arbitrary chunks, skip and count
//! garbage, and report bad CRC, oversize lengths, unsupported versions and
//! truncation as [`DecodeError`]s after resynchronising. A rejected candidate
//! drops only its first byte, so a valid frame starting inside rejected bytes
//! is still found.
//!
//! # Example
//!
//! The guest encodes into a stack buffer; the host decodes whatever chunks
//! arrive. Both sides here use only the no_std, no-alloc API; with `alloc`,
//! [`encode`] and [`VecDecoder`] save the buffer management (see the README).
//!
//! ```
//! use ktstr_wire::{encode_into, Decoder, Log, LogLevel, Message};
//!
//! // Guest: frame a log line.
//! let mut out = [0u8; 256];
//! let msg = Message::Log(Log { level: LogLevel::Info, text: "scheduler attached".into() });
//! let n = encode_into(&mut out, 7, &msg)?;
//!
//! // The channel also carries console noise.
//! let mut stream = b"early console noise\n".to_vec();
//! stream.extend_from_slice(&out[..n]);
//!
//! // Host: feed chunks as they come off the serial port.
//! let mut buf = [0u8; 4096]; // header + largest accepted payload
//! let mut dec = Decoder::new(&mut buf).expect("buffer holds a header");
//! let mut seen = 0;
//! for chunk in stream.chunks(5) {
//!     dec.push(chunk, |item| {
//!         let frame = item.expect("clean stream");
//!         assert_eq!(frame.seq(), 7);
//!         match frame.message() {
//!             Ok(Message::Log(log)) => {
//!                 assert_eq!(log.text.to_str(), Ok("scheduler attached"));
//!                 seen += 1;
//!             }
//!             _ => {} // unknown kinds are skipped
//!         }
//!     });
//! }
//! assert_eq!(seen, 1);
//! assert_eq!(dec.stats().garbage_bytes, 20);
//! # Ok::<(), ktstr_wire::EncodeError>(())
//! ```
//!
//! # Features
//!
//! * `alloc`: [`encode`], [`encode_append`], [`VecDecoder`], [`OwnedFrame`].
//! * `std` (default, implies `alloc`): [`write_message`] for `io::Write`.
//!
//! Build for a guest with `default-features = false`.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod bytes;
mod codec;
mod codes;
mod crc;
mod cursor;
mod decoder;
mod encoder;
mod error;
mod fixed;
mod frame;
mod header;
#[cfg(feature = "std")]
mod io;
mod kind;
mod message;
mod scan;
mod variable;
#[cfg(feature = "alloc")]
mod vec_decoder;

pub use bytes::ByteStr;
pub use codes::{LogLevel, Phase, ScenarioStatus, SchedExitKind, SchedState};
pub use crc::{crc32c, frame_crc};
pub use decoder::{Decoder, DecoderStats};
pub use encoder::{Encoder, encode_into, encode_raw_into, encoded_len};
#[cfg(feature = "alloc")]
pub use encoder::{encode, encode_append};
pub use error::{BufferTooSmall, DecodeError, EncodeError, ParseError};
pub use fixed::{Exit, Lifecycle, Ping, Pong, SysReady, WorkerReport};
pub use frame::Frame;
#[cfg(feature = "alloc")]
pub use frame::OwnedFrame;
pub use header::{
    FrameHeader, HEADER_CRC_COVERS, HEADER_LEN, MAGIC, MAGIC_BYTES, VERSION_MAJOR, VERSION_MINOR,
};
#[cfg(feature = "std")]
pub use io::write_message;
pub use kind::{Direction, Kind};
pub use message::{Command, Message};
pub use variable::{Chunk, Exec, Log, Panic, RunStep, ScenarioResult, SchedulerState};
#[cfg(feature = "alloc")]
pub use vec_decoder::{DEFAULT_MAX_PAYLOAD, VecDecoder};

/// Name of the virtio-console port that carries the frames (the guest's
/// `/dev/vport0p1`, found through `/sys/class/virtio-ports/*/name`). Both
/// backends name port 1 this, and the guest agent looks for it.
pub const BULK_PORT_NAME: &str = "ktstr.bulk";

/// How the guest init's last words start on COM2 (`PANIC: <message>`): the
/// guest writes it when init panics or takes a fatal signal, and the host
/// reads it as the cause of the guest's death.
pub const INIT_PANIC_PREFIX: &str = "PANIC: ";

// Run the README's examples as doctests (they use `alloc` helpers).
#[cfg(all(doctest, feature = "alloc"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Little-endian field types used by the fixed-size messages, re-exported so
/// users need not depend on zerocopy directly.
pub mod le {
    pub use zerocopy::byteorder::little_endian::{I32, I64, U16, U32, U64};
}
