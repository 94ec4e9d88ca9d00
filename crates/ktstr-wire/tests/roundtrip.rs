//! Encode → decode → parse round trips for every message kind.
#![cfg(feature = "alloc")]

mod common;

use std::collections::BTreeSet;

use common::*;
use ktstr_wire::*;
use proptest::prelude::*;

/// One frame through encoder, decoder and typed parse.
fn round_trip(seq: u64, spec: &Spec) {
    let msg = spec.message();
    let bytes = encode(seq, &msg).unwrap();
    assert_eq!(bytes.len(), encoded_len(&msg));
    assert_eq!(bytes.len(), HEADER_LEN + msg.payload_len());

    // encode_into into an exact buffer gives the same bytes; one byte short fails.
    let mut exact = vec![0u8; bytes.len()];
    assert_eq!(encode_into(&mut exact, seq, &msg), Ok(bytes.len()));
    assert_eq!(exact, bytes);
    let short = &mut exact[..bytes.len() - 1];
    assert!(matches!(
        encode_into(short, seq, &msg),
        Err(EncodeError::BufferTooSmall { .. })
    ));

    let (items, stats) = decode_vec(&bytes, &[], u32::MAX - HEADER_LEN as u32);
    assert_eq!(stats.frames, 1);
    assert_eq!(stats.garbage_bytes, 0);
    let [Item::Frame(frame)] = items.as_slice() else {
        panic!("expected one frame, got {items:?}");
    };
    assert_eq!(frame.header.seq(), seq);
    assert_eq!(frame.header.kind(), msg.kind());
    assert_eq!(frame.header.version(), (VERSION_MAJOR, VERSION_MINOR));
    assert_eq!(frame.message().unwrap(), msg);
    // Direct parse of the payload agrees, and borrows from it.
    let payload = &bytes[HEADER_LEN..];
    assert_eq!(Message::parse(msg.kind(), payload).unwrap(), msg);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_message_round_trips(seq in any::<u64>(), spec in arb_spec()) {
        round_trip(seq, &spec);
    }

    #[test]
    fn trailing_payload_bytes_are_ignored(spec in arb_spec(), extra in arb_bytes(16)) {
        // Forward compatibility: a newer minor may append fields.
        let msg = spec.message();
        prop_assume!(!matches!(msg, Message::Unknown { .. }));
        let mut payload = encode(0, &msg).unwrap()[HEADER_LEN..].to_vec();
        payload.extend_from_slice(&extra);
        prop_assert_eq!(Message::parse(msg.kind(), &payload).unwrap(), msg);
    }

    #[test]
    fn truncated_payloads_error_not_panic(spec in arb_spec(), cut in any::<prop::sample::Index>()) {
        let msg = spec.message();
        let bytes = encode(0, &msg).unwrap();
        let payload = &bytes[HEADER_LEN..];
        let cut = cut.index(payload.len() + 1);
        let result = Message::parse(msg.kind(), &payload[..cut]);
        if cut == payload.len() || matches!(msg, Message::Command(Command::Shutdown) | Message::Unknown { .. }) {
            prop_assert!(result.is_ok());
        } else {
            let is_truncated = matches!(result, Err(ParseError::Truncated { .. }));
            prop_assert!(is_truncated, "{:?}", result);
        }
    }

    #[test]
    fn parse_arbitrary_payload_never_panics(kind in any::<u16>(), payload in arb_bytes(200)) {
        if let Ok(msg) = Message::parse(kind, &payload) {
            // Whatever parsed re-encodes and re-parses to the same message.
            let again = encode(1, &msg).unwrap();
            prop_assert_eq!(Message::parse(kind, &again[HEADER_LEN..]).unwrap(), msg);
        }
    }
}

#[test]
fn every_kind_is_covered_by_the_generator() {
    let spec = |shape| Spec {
        shape,
        nums: [3; 13],
        a: b"abc".to_vec(),
        b: b"de".to_vec(),
    };
    let specs: Vec<Spec> = (0..SHAPES).map(spec).collect();
    let kinds: BTreeSet<u16> = specs.iter().map(|s| s.message().kind().0).collect();
    let known: BTreeSet<u16> = (0..=u16::MAX).filter(|&k| Kind(k).is_known()).collect();
    assert_eq!(known.len(), 16);
    assert!(
        known.is_subset(&kinds),
        "missing kinds: {:?}",
        known.difference(&kinds)
    );
    assert!(
        kinds.iter().any(|&k| !Kind(k).is_known()),
        "no unknown kind"
    );
    for s in &specs {
        round_trip(42, s);
    }
}

#[test]
fn directions_follow_the_top_bit() {
    assert_eq!(Kind::LOG.direction(), Direction::GuestToHost);
    assert_eq!(Kind::PONG.direction(), Direction::GuestToHost);
    assert_eq!(Kind::PING.direction(), Direction::HostToGuest);
    let cmd: Message = Command::Exec(Exec {
        argv: b"/bin/true\0".into(),
    })
    .into();
    assert_eq!(cmd.direction(), Direction::HostToGuest);
}

#[test]
fn unknown_enum_values_survive_the_wire() {
    let msg = Message::Lifecycle(Lifecycle::new(Phase::Unknown(0xDEAD)));
    let bytes = encode(0, &msg).unwrap();
    let Message::Lifecycle(l) = Message::parse(Kind::LIFECYCLE, &bytes[HEADER_LEN..]).unwrap()
    else {
        panic!()
    };
    assert_eq!(l.phase(), Phase::Unknown(0xDEAD));
}

#[test]
fn encoder_stamps_consecutive_sequence_numbers() {
    let mut enc = Encoder::starting_at(10);
    let mut stream = Vec::new();
    for _ in 0..3 {
        enc.encode_append(&mut stream, &Message::Pong(Pong::new(1)))
            .unwrap();
    }
    let mut tiny = [0u8; 8];
    assert!(
        enc.encode_into(&mut tiny, &Command::Shutdown.into())
            .is_err()
    );
    assert_eq!(
        enc.next_seq(),
        13,
        "a failed encode must not consume a number"
    );
    let (items, _) = decode_vec(&stream, &[], 64);
    let seqs: Vec<u64> = frames(&items).iter().map(|f| f.header.seq()).collect();
    assert_eq!(seqs, [10, 11, 12]);
}

#[cfg(feature = "std")]
#[test]
fn write_message_writes_one_frame() {
    let mut out = Vec::new();
    let msg = Message::Exit(Exit::new(3));
    let n = write_message(&mut out, 5, &msg).unwrap();
    assert_eq!(n, out.len());
    assert_eq!(out, encode(5, &msg).unwrap());
}

#[test]
fn raw_frames_carry_flags_and_any_kind() {
    let mut buf = [0u8; 64];
    let n = encode_raw_into(&mut buf, 9, Kind(0x7123), 0xBEEF, b"opaque").unwrap();
    let (items, _) = decode_vec(&buf[..n], &[], 64);
    let [Item::Frame(f)] = items.as_slice() else {
        panic!("{items:?}")
    };
    assert_eq!(f.header.flags(), 0xBEEF);
    assert_eq!(
        f.message().unwrap(),
        Message::Unknown {
            kind: Kind(0x7123),
            payload: b"opaque"
        }
    );
}

#[test]
fn debug_output_is_readable() {
    let msg = Message::Log(Log {
        level: LogLevel::Warning,
        text: ByteStr(b"it's \xffok\n"),
    });
    assert_eq!(
        format!("{msg:?}"),
        r#"Log(Log { level: Warning, text: b"it's \xffok\n" })"#
    );
    assert_eq!(format!("{}", ByteStr(b"a\xffb")), "a\u{FFFD}b");
    assert_eq!(format!("{:?}", Kind::EXEC), "Kind(0x8004 EXEC)");
    assert_eq!(format!("{}", Kind(0x1234)), "unknown kind 0x1234");
}
