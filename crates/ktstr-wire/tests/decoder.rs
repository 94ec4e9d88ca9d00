//! Streaming decoder behaviour: chunking, garbage, corruption, limits.
#![cfg(feature = "alloc")]

mod common;

use common::*;
use ktstr_wire::*;
use proptest::prelude::*;
use zerocopy::IntoBytes;

const MAX: u32 = 4096;

fn stream_of(specs: &[Spec]) -> Vec<u8> {
    let mut out = Vec::new();
    for (seq, s) in specs.iter().enumerate() {
        encode_append(&mut out, seq as u64, &s.message()).unwrap();
    }
    out
}

fn log(seq: u64, text: &str) -> Vec<u8> {
    encode(
        seq,
        &Message::Log(Log {
            level: LogLevel::Info,
            text: text.into(),
        }),
    )
    .unwrap()
}

/// Garbage that cannot contain a magic (no 0xF5 byte).
fn arb_clean_garbage() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        any::<u8>().prop_filter("no magic", |b| *b != MAGIC_BYTES[0]),
        0..64,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any split of a stream yields the same frames, in order, both decoders.
    #[test]
    fn random_chunk_splits(specs in prop::collection::vec(arb_spec(), 1..12),
                           cuts in prop::collection::vec(any::<usize>(), 0..40)) {
        let stream = stream_of(&specs);
        let (whole, _) = decode_vec(&stream, &[], MAX);
        let (split_vec, _) = decode_vec(&stream, &cuts, MAX);
        let (split_slice, stats) = decode_slice(&stream, &cuts, MAX);
        prop_assert_eq!(&whole, &split_vec);
        prop_assert_eq!(&whole, &split_slice);
        prop_assert_eq!(stats.garbage_bytes, 0);
        prop_assert_eq!(stats.errors, 0);
        let got = frames(&whole);
        prop_assert_eq!(got.len(), specs.len());
        for (i, (f, s)) in got.iter().zip(&specs).enumerate() {
            prop_assert_eq!(f.header.seq(), i as u64);
            prop_assert_eq!(f.message().unwrap(), s.message());
        }
    }

    /// Magic-free garbage between frames is skipped, counted exactly, and
    /// every frame comes out in order with no errors.
    #[test]
    fn garbage_between_frames_is_counted(specs in prop::collection::vec(arb_spec(), 1..8),
                                         junk in prop::collection::vec(arb_clean_garbage(), 9),
                                         cuts in prop::collection::vec(any::<usize>(), 0..20)) {
        let mut stream = Vec::new();
        let mut junk_len = 0;
        for (i, s) in specs.iter().enumerate() {
            stream.extend_from_slice(&junk[i]);
            junk_len += junk[i].len();
            encode_append(&mut stream, i as u64, &s.message()).unwrap();
        }
        stream.extend_from_slice(&junk[8]);
        junk_len += junk[8].len();

        let (items, stats) = decode_slice(&stream, &cuts, MAX);
        prop_assert_eq!(errors(&items), vec![]);
        prop_assert_eq!(stats.garbage_bytes, junk_len as u64);
        let seqs: Vec<u64> = frames(&items).iter().map(|f| f.header.seq()).collect();
        prop_assert_eq!(seqs, (0..specs.len() as u64).collect::<Vec<_>>());
    }

    /// Arbitrary garbage (which may fake magics and headers) never costs a
    /// valid frame: all are recovered, in order.
    #[test]
    fn arbitrary_garbage_never_loses_frames(specs in prop::collection::vec(arb_spec(), 1..6),
                                            junk in prop::collection::vec(arb_bytes(80), 7),
                                            fake_len in 0u32..600,
                                            cuts in prop::collection::vec(any::<usize>(), 0..20)) {
        let mut stream = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            stream.extend_from_slice(&junk[i]);
            if i % 2 == 1 {
                // A fake header whose length swallows the next real frame.
                let mut fake = FrameHeader::new(Kind::LOG, 0, 999, fake_len);
                fake.crc = 1.into();
                stream.extend_from_slice(fake.as_bytes());
            }
            encode_append(&mut stream, i as u64, &s.message()).unwrap();
        }
        stream.extend_from_slice(&junk[6]);
        let (items, _) = decode_vec(&stream, &cuts, MAX);
        let real: Vec<u64> = frames(&items).iter().map(|f| f.header.seq()).filter(|&s| s != 999).collect();
        prop_assert_eq!(real, (0..specs.len() as u64).collect::<Vec<_>>());
    }

    /// Arbitrary bytes: no panic, exact accounting, chunking-invariant.
    #[test]
    fn arbitrary_bytes_are_safe(data in arb_bytes(600), cuts in prop::collection::vec(any::<usize>(), 0..10)) {
        let (a, _) = decode_vec(&data, &[], 128);
        let (b, _) = decode_slice(&data, &cuts, 128);
        prop_assert_eq!(a, b);
    }
}

/// Re-seal a hand-edited frame so only the intended field is "wrong".
fn reseal(frame: &mut [u8]) {
    let header_crc = crc32c(&frame[HEADER_CRC_COVERS]);
    frame[28..32].copy_from_slice(&header_crc.to_le_bytes());
    frame[24..28].fill(0);
    let crc = crc32c(frame);
    frame[24..28].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn corrupted_crc_is_reported_and_next_frame_survives() {
    for byte in [6, 12, 20, 40] {
        let mut bad = log(0, "first frame payload");
        bad[byte] ^= 0x10;
        let mut stream = bad.clone();
        stream.extend(log(1, "second"));
        let (items, stats) = decode_slice(&stream, &[7, 33], MAX);
        let errs = errors(&items);
        assert!(
            matches!(
                (byte, errs.first()),
                (6 | 12 | 20, Some(DecodeError::BadHeaderCrc { .. }))
                    | (40, Some(DecodeError::BadCrc { .. }))
            ),
            "byte {byte}: {errs:?}"
        );
        let seqs: Vec<u64> = frames(&items).iter().map(|f| f.header.seq()).collect();
        assert_eq!(seqs, [1], "byte {byte}");
        assert_eq!(stats.garbage_bytes, bad.len() as u64);
    }
    // A payload bit flip is specifically a CRC error naming the header's view.
    let mut bad = log(5, "payload");
    *bad.last_mut().unwrap() ^= 1;
    let (items, _) = decode_vec(&bad, &[], MAX);
    let [
        Item::Error(DecodeError::BadCrc {
            kind,
            seq,
            expected,
            computed,
        }),
    ] = items.as_slice()
    else {
        panic!("{items:?}")
    };
    assert_eq!((*kind, *seq), (Kind::LOG, 5));
    assert_ne!(expected, computed);
}

#[test]
fn oversize_is_rejected_before_buffering() {
    let big = encode(
        0,
        &Message::Panic(Panic {
            message: ByteStr(&[b'x'; 200]),
        }),
    )
    .unwrap();
    let mut stream = big.clone();
    stream.extend(log(1, "after"));
    let (items, stats) = decode_slice(&stream, &[40], 100);
    assert_eq!(
        errors(&items),
        [DecodeError::Oversize {
            kind: Kind::PANIC,
            payload_len: 204,
            max_payload: 100
        }]
    );
    assert_eq!(frames(&items).len(), 1);
    assert_eq!(stats.garbage_bytes, big.len() as u64);

    // The Vec decoder never grows past HEADER_LEN + max_payload.
    let mut dec = VecDecoder::new(100);
    for _ in 0..50 {
        dec.push(&stream, |_| {});
    }
    assert!(dec.capacity() <= HEADER_LEN + 100, "{}", dec.capacity());
}

#[test]
fn truncated_stream_reports_at_finish() {
    let frame = log(0, "cut short");
    for cut in [1, 3, 4, 20, 31, 32, frame.len() - 1] {
        let part = &frame[..cut];
        let mut dec = VecDecoder::default();
        dec.push(part, |it| {
            panic!("nothing complete yet: {:?}", it.map(|f| f.seq()))
        });
        dec.finish();
        let mut errs = Vec::new();
        while let Some(it) = dec.next_frame() {
            errs.push(it.unwrap_err());
        }
        if cut < MAGIC_BYTES.len() {
            // Not even a whole magic: that is just trailing noise.
            assert!(errs.is_empty(), "cut {cut}: {errs:?}");
        } else {
            let needed = if cut < HEADER_LEN {
                HEADER_LEN
            } else {
                frame.len()
            };
            assert_eq!(
                errs,
                [DecodeError::Truncated {
                    needed,
                    available: cut
                }],
                "cut {cut}"
            );
        }
        assert_eq!(dec.stats().garbage_bytes, cut as u64);
        // Drained: the decoder takes a fresh stream.
        let mut seqs = Vec::new();
        dec.push(&log(9, "next stream"), |it| seqs.push(it.unwrap().seq()));
        assert_eq!(seqs, [9]);
    }
}

#[test]
fn finish_recovers_frames_hidden_behind_a_bogus_length() {
    // A fake header claims 1000 bytes; the stream ends before that, so only
    // end-of-stream can release the real frame behind it.
    let mut fake = FrameHeader::new(Kind::LOG, 0, 77, 1000);
    fake.crc = 5.into();
    let mut stream = fake.as_bytes().to_vec();
    stream.extend(log(1, "hidden"));
    let mut dec = VecDecoder::default();
    dec.push(&stream, |it| {
        panic!("must wait for 1000 bytes: {:?}", it.is_ok())
    });
    dec.finish();
    let mut items = Vec::new();
    while let Some(it) = dec.next_frame() {
        items.push(own(it));
    }
    assert_eq!(
        errors(&items),
        [DecodeError::Truncated {
            needed: 1032,
            available: stream.len()
        }]
    );
    let seqs: Vec<u64> = frames(&items).iter().map(|f| f.header.seq()).collect();
    assert_eq!(seqs, [1]);
}

#[test]
fn corrupted_length_is_rejected_without_waiting() {
    // A bit flip in payload_len must not hold back the frames behind it: the
    // header CRC rejects it as soon as the header is in, before any payload.
    let mut bad = log(0, "x");
    bad[13] ^= 0x04; // length += 1024, still under MAX
    let mut dec = VecDecoder::new(MAX);
    let mut items = Vec::new();
    dec.push(&[bad, log(1, "behind")].concat(), |it| items.push(own(it)));
    // No finish(): everything must come out of the live stream.
    assert!(matches!(
        errors(&items)[..],
        [DecodeError::BadHeaderCrc { .. }]
    ));
    assert_eq!(frames(&items).len(), 1);
    assert_eq!(dec.buffered(), 0);
}

#[test]
fn frame_inside_rejected_oversize_header_is_found() {
    // An oversize header immediately followed by a real frame: the reject
    // must drop only the bad magic's first byte, not the claimed length.
    let fake = FrameHeader::new(Kind::LOG, 0, 0, u32::MAX);
    let mut stream = fake.as_bytes()[..HEADER_LEN].to_vec();
    stream.extend(log(3, "inside"));
    let (items, _) = decode_slice(&stream, &[], MAX);
    assert!(matches!(
        errors(&items)[..],
        [DecodeError::Oversize {
            payload_len: u32::MAX,
            ..
        }]
    ));
    assert_eq!(frames(&items)[0].header.seq(), 3);
}

#[test]
fn unknown_kind_is_delivered_as_unknown_and_skippable() {
    let mut stream = Vec::new();
    stream.extend(log(0, "a"));
    let mut buf = [0u8; 64];
    let n = encode_raw_into(&mut buf, 1, Kind(0x0777), 0, b"from the future").unwrap();
    stream.extend_from_slice(&buf[..n]);
    stream.extend(log(2, "b"));
    let (items, stats) = decode_vec(&stream, &[], MAX);
    assert_eq!(stats.errors, 0);
    let msgs: Vec<Message> = frames(&items)
        .iter()
        .map(|f| f.message().unwrap())
        .collect();
    assert_eq!(
        msgs[1],
        Message::Unknown {
            kind: Kind(0x0777),
            payload: b"from the future"
        }
    );
    let texts: Vec<&[u8]> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Log(l) => Some(l.text.as_bytes()),
            _ => None, // receivers skip what they do not know
        })
        .collect();
    assert_eq!(texts, [b"a", b"b"]);
}

#[test]
fn unknown_major_is_rejected_higher_minor_accepted() {
    let mut v2 = log(0, "from v2");
    v2[4] = VERSION_MAJOR + 1;
    reseal(&mut v2);
    let mut minor = log(1, "from v1.9");
    minor[5] = 9;
    reseal(&mut minor);
    let mut v0 = log(2, "from v0");
    v0[4] = 0;
    reseal(&mut v0);
    let stream = [v2, minor, v0, log(3, "ok")].concat();
    let (items, _) = decode_slice(&stream, &[10, 50], MAX);
    assert_eq!(
        errors(&items),
        [
            DecodeError::UnsupportedVersion { major: 2, minor: 0 },
            DecodeError::UnsupportedVersion { major: 0, minor: 0 },
        ]
    );
    let got: Vec<(u64, (u8, u8))> = frames(&items)
        .iter()
        .map(|f| (f.header.seq(), f.header.version()))
        .collect();
    assert_eq!(got, [(1, (1, 9)), (3, (1, 0))]);
}

#[test]
fn unknown_flags_and_reserved_fields_are_ignored() {
    let mut frame = log(4, "flags");
    frame[8..10].copy_from_slice(&0xFFFFu16.to_le_bytes());
    frame[10..12].copy_from_slice(&0xABCDu16.to_le_bytes());
    reseal(&mut frame);
    let (items, _) = decode_vec(&frame, &[], MAX);
    let f = frames(&items)[0];
    assert_eq!(f.header.flags(), 0xFFFF);
    assert!(matches!(f.message().unwrap(), Message::Log(_)));
}

#[test]
fn slice_decoder_buffer_must_fit_max_payload() {
    let mut small = [0u8; HEADER_LEN - 1];
    assert_eq!(
        Decoder::new(&mut small).unwrap_err(),
        BufferTooSmall {
            needed: HEADER_LEN,
            available: HEADER_LEN - 1
        }
    );
    let mut buf = [0u8; 100];
    assert!(Decoder::with_max_payload(&mut buf, 69).is_err());
    let dec = Decoder::with_max_payload(&mut buf, 68).unwrap();
    assert_eq!(dec.max_payload(), 68);
}

#[test]
fn feed_takes_what_fits_and_progresses() {
    // Drive the slice decoder by hand with a buffer exactly one frame big.
    let one = log(0, "0123456789");
    let stream = [one.clone(), one.clone(), one.clone()].concat();
    let mut buf = vec![0u8; one.len()];
    let mut dec = Decoder::new(&mut buf).unwrap();
    let mut input = &stream[..];
    let mut n_frames = 0;
    while !input.is_empty() {
        let n = dec.feed(input);
        assert!(n > 0);
        input = &input[n..];
        while let Some(it) = dec.next_frame() {
            it.unwrap();
            n_frames += 1;
        }
    }
    assert_eq!(n_frames, 3);
    assert_eq!(dec.buffered(), 0);
}

#[test]
fn reset_drops_partial_input() {
    let frame = log(0, "x");
    let mut dec = VecDecoder::default();
    dec.push(&frame[..10], |_| panic!());
    assert_eq!(dec.buffered(), 10);
    dec.reset();
    assert_eq!(dec.buffered(), 0);
    let mut got = 0;
    dec.push(&frame, |it| got += it.is_ok() as usize);
    assert_eq!(got, 1);
}
