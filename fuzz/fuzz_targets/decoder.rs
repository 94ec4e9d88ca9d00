//! Streaming decoder fuzzer.
//!
//! Builds a stream from structured pieces (valid typed frames, raw frames,
//! fake/corrupt headers, garbage), then checks:
//! * both decoders, with arbitrary chunking, produce exactly what a naive
//!   whole-buffer reference model produces (frames, errors, garbage count);
//! * every byte is accounted for (frame bytes + garbage = input);
//! * no intentionally valid frame is lost unless it lies inside the span of
//!   an earlier accepted frame;
//! * accepted frames' messages re-encode and re-parse to themselves.
#![no_main]

use ktstr_wire::{
    DecodeError, Decoder, FrameHeader, HEADER_LEN, Kind, MAGIC_BYTES, Message, OwnedFrame,
    VERSION_MAJOR, VecDecoder, crc32c, encode, encode_raw_into, frame_crc,
};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Piece<'a> {
    /// A typed message: `payload` parsed as `kind`, re-encoded canonically.
    Typed {
        kind: u8,
        seq: u64,
        payload: &'a [u8],
    },
    /// A raw frame of any kind with flags.
    Raw {
        kind: u16,
        flags: u16,
        seq: u64,
        payload: &'a [u8],
    },
    /// A header with chosen fields. `header_crc: None` seals the header
    /// (so its length is trusted); `fix_crc` makes the frame CRC right over
    /// `body`.
    Fake {
        major: u8,
        minor: u8,
        kind: u16,
        len: u32,
        header_crc: Option<u32>,
        fix_crc: bool,
        body: &'a [u8],
    },
    /// A valid frame with one byte flipped.
    Corrupt {
        seq: u64,
        payload: &'a [u8],
        at: u16,
        xor: u8,
    },
    /// Noise, optionally seeded with a magic.
    Garbage { bytes: &'a [u8], with_magic: bool },
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    max_payload: u16,
    cuts: Vec<u16>,
    pieces: Vec<Piece<'a>>,
}

#[derive(Debug, PartialEq, Eq)]
enum Item {
    Frame(OwnedFrame),
    Error(DecodeError),
}

fuzz_target!(|input: Input<'_>| {
    let max_payload = u32::from(input.max_payload % 2048);
    let (stream, valid_starts) = build(&input.pieces);

    let (model, model_garbage, accepted) = reference(&stream, max_payload);

    // Vec decoder, whole stream at once.
    let mut vd = VecDecoder::new(max_payload);
    let mut got_vec = Vec::new();
    vd.push(&stream, |it| got_vec.push(own(it)));
    vd.finish();
    while let Some(it) = vd.next_frame() {
        got_vec.push(own(it));
    }
    assert_eq!(vd.buffered(), 0);
    assert!(vd.capacity() <= HEADER_LEN + max_payload as usize);

    // Slice decoder, arbitrary chunks.
    let mut buf = vec![0u8; HEADER_LEN + max_payload as usize];
    let mut sd = Decoder::new(&mut buf).expect("sized");
    let mut got_slice = Vec::new();
    for chunk in split(&stream, &input.cuts) {
        sd.push(chunk, |it| got_slice.push(own(it)));
    }
    sd.finish();
    while let Some(it) = sd.next_frame() {
        got_slice.push(own(it));
    }
    assert_eq!(sd.buffered(), 0);

    assert_eq!(got_vec, model);
    assert_eq!(got_slice, model);
    for stats in [vd.stats(), sd.stats()] {
        assert_eq!(stats.garbage_bytes, model_garbage);
        assert_eq!(stats.frame_bytes + stats.garbage_bytes, stream.len() as u64);
    }

    // No valid frame lost, unless swallowed by an earlier accepted frame.
    for &(start, len) in &valid_starts {
        if len > HEADER_LEN + max_payload as usize {
            continue; // legitimately oversize for this configuration
        }
        let kept = accepted
            .iter()
            .any(|&(s, t)| s == start || (s < start && start < s + t));
        assert!(kept, "valid frame at {start} lost; accepted {accepted:?}");
    }

    for item in &model {
        if let Item::Frame(f) = item {
            if let Ok(msg) = f.message() {
                let again = encode(f.header.seq(), &msg).expect("fits");
                assert_eq!(Message::parse(msg.kind(), &again[HEADER_LEN..]), Ok(msg));
            }
        }
    }
});

fn own(it: Result<ktstr_wire::Frame<'_>, DecodeError>) -> Item {
    match it {
        Ok(f) => Item::Frame(f.to_owned_frame()),
        Err(e) => Item::Error(e),
    }
}

fn split<'a>(data: &'a [u8], cuts: &[u16]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|&c| c as usize % (data.len() + 1))
        .collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

/// The stream, and (offset, length) of every intentionally valid frame.
fn build(pieces: &[Piece<'_>]) -> (Vec<u8>, Vec<(usize, usize)>) {
    let mut out = Vec::new();
    let mut valid = Vec::new();
    for p in pieces {
        let start = out.len();
        match *p {
            Piece::Typed { kind, seq, payload } => {
                let kind = u16::from(kind % 16) | if kind & 0x80 != 0 { 0x8000 } else { 0 };
                if let Ok(msg) = Message::parse(kind, payload) {
                    out.extend(encode(seq, &msg).expect("fits"));
                    valid.push((start, out.len() - start));
                }
            }
            Piece::Raw {
                kind,
                flags,
                seq,
                payload,
            } => {
                out.resize(start + HEADER_LEN + payload.len(), 0);
                encode_raw_into(&mut out[start..], seq, Kind(kind), flags, payload).expect("sized");
                valid.push((start, out.len() - start));
            }
            Piece::Fake {
                major,
                minor,
                kind,
                len,
                header_crc,
                fix_crc,
                body,
            } => {
                let mut h = FrameHeader::new(Kind(kind), 0, 0, len);
                h.version_major = major;
                h.version_minor = minor;
                match header_crc {
                    None => h.seal_header(),
                    Some(v) => h.header_crc = v.into(),
                }
                if fix_crc {
                    let body_len = body.len().min(len as usize);
                    h.crc = frame_crc(&h, &body[..body_len]).into();
                }
                out.extend_from_slice(zerocopy_free_bytes(&h).as_slice());
                out.extend_from_slice(body);
            }
            Piece::Corrupt {
                seq,
                payload,
                at,
                xor,
            } => {
                out.resize(start + HEADER_LEN + payload.len(), 0);
                encode_raw_into(&mut out[start..], seq, Kind::LOG, 0, payload).expect("sized");
                let i = start + at as usize % (out.len() - start);
                out[i] ^= xor;
                if xor == 0 {
                    valid.push((start, out.len() - start));
                }
            }
            Piece::Garbage { bytes, with_magic } => {
                out.extend_from_slice(bytes);
                if with_magic {
                    out.extend_from_slice(&MAGIC_BYTES);
                }
            }
        }
    }
    (out, valid)
}

fn zerocopy_free_bytes(h: &FrameHeader) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN);
    v.extend_from_slice(&h.magic.get().to_le_bytes());
    v.extend_from_slice(&[h.version_major, h.version_minor]);
    v.extend_from_slice(&h.kind.get().to_le_bytes());
    v.extend_from_slice(&h.flags.get().to_le_bytes());
    v.extend_from_slice(&h.reserved0.get().to_le_bytes());
    v.extend_from_slice(&h.payload_len.get().to_le_bytes());
    v.extend_from_slice(&h.seq.get().to_le_bytes());
    v.extend_from_slice(&h.crc.get().to_le_bytes());
    v.extend_from_slice(&h.header_crc.get().to_le_bytes());
    v
}

/// Naive whole-buffer model of the decoder's rules: at each offset, either a
/// candidate at a magic is accepted (skip the frame) or rejected (skip one
/// byte), or the byte is garbage. Returns items, garbage count, and the
/// (offset, length) of accepted frames.
fn reference(s: &[u8], max_payload: u32) -> (Vec<Item>, u64, Vec<(usize, usize)>) {
    let mut items = Vec::new();
    let mut accepted = Vec::new();
    let mut garbage = 0u64;
    let mut i = 0;
    while i < s.len() {
        if !s[i..].starts_with(&MAGIC_BYTES) {
            garbage += 1;
            i += 1;
            continue;
        }
        match candidate(&s[i..], max_payload) {
            Ok(total) => {
                let mut hb = [0u8; HEADER_LEN];
                hb.copy_from_slice(&s[i..i + HEADER_LEN]);
                let header = parse_header(&hb);
                items.push(Item::Frame(OwnedFrame {
                    header,
                    payload: s[i + HEADER_LEN..i + total].to_vec(),
                }));
                accepted.push((i, total));
                i += total;
            }
            Err(e) => {
                items.push(Item::Error(e));
                garbage += 1;
                i += 1;
            }
        }
    }
    (items, garbage, accepted)
}

/// Judge a candidate starting with a magic, without the decoder's code.
fn candidate(w: &[u8], max_payload: u32) -> Result<usize, DecodeError> {
    if w.len() < HEADER_LEN {
        return Err(DecodeError::Truncated {
            needed: HEADER_LEN,
            available: w.len(),
        });
    }
    let (major, minor) = (w[4], w[5]);
    if major != VERSION_MAJOR {
        return Err(DecodeError::UnsupportedVersion { major, minor });
    }
    let header_expected = u32::from_le_bytes([w[28], w[29], w[30], w[31]]);
    let header_computed = crc32c(&w[..24]);
    if header_computed != header_expected {
        return Err(DecodeError::BadHeaderCrc {
            expected: header_expected,
            computed: header_computed,
        });
    }
    let kind = Kind(u16::from_le_bytes([w[6], w[7]]));
    let len = u32::from_le_bytes([w[12], w[13], w[14], w[15]]);
    if len > max_payload {
        return Err(DecodeError::Oversize {
            kind,
            payload_len: len,
            max_payload,
        });
    }
    let total = HEADER_LEN + len as usize;
    if w.len() < total {
        return Err(DecodeError::Truncated {
            needed: total,
            available: w.len(),
        });
    }
    let expected = u32::from_le_bytes([w[24], w[25], w[26], w[27]]);
    let mut zeroed = w[..total].to_vec();
    zeroed[24..28].fill(0);
    let computed = crc32c(&zeroed);
    if computed != expected {
        let seq = u64::from_le_bytes(w[16..24].try_into().expect("8 bytes"));
        return Err(DecodeError::BadCrc {
            kind,
            seq,
            expected,
            computed,
        });
    }
    Ok(total)
}

fn parse_header(b: &[u8; HEADER_LEN]) -> FrameHeader {
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let mut h = FrameHeader::new(
        Kind(u16_at(6)),
        u16_at(8),
        u64::from_le_bytes(b[16..24].try_into().expect("8")),
        u32_at(12),
    );
    h.version_major = b[4];
    h.version_minor = b[5];
    h.reserved0 = u16_at(10).into();
    h.crc = u32_at(24).into();
    h.header_crc = u32_at(28).into();
    h
}
