//! The wire layout is pinned at compile time inside the crate (`const _:
//! () = assert!(...)` with `offset_of!`); these tests pin the actual bytes.
#![cfg(feature = "alloc")]

use ktstr_wire::*;

#[test]
fn golden_ping_frame() {
    let msg: Message = Command::Ping(Ping::new(0x1122_3344_5566_7788)).into();
    let bytes = encode(0x0102_0304_0506_0708, &msg).unwrap();
    // Both CRCs computed independently (bitwise CRC-32C, reflected poly
    // 0x82F63B78, in Python) so an algorithm or coverage change cannot slip
    // through.
    let header_crc: u32 = 0x79F2_11A9;
    let full_crc: u32 = 0x7CEE_5D4B;
    let mut expected = vec![
        0xF5, b'K', b'T', b'W', // magic
        1, 0, // version 1.0
        0x03, 0x80, // kind PING (0x8003), LE
        0, 0, // flags
        0, 0, // reserved0
        8, 0, 0, 0, // payload_len
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // seq, LE
    ];
    expected.extend_from_slice(&full_crc.to_le_bytes());
    expected.extend_from_slice(&header_crc.to_le_bytes());
    expected.extend_from_slice(&[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
    assert_eq!(bytes, expected);
    assert_eq!(crc32c(&bytes[HEADER_CRC_COVERS]), header_crc);
    let header = FrameHeader::new(Kind::PING, 0, 0x0102_0304_0506_0708, 8);
    assert_eq!(header.header_crc.get(), header_crc);
    assert_eq!(frame_crc(&header, &bytes[HEADER_LEN..]), full_crc);
}

#[test]
fn golden_log_payload() {
    let msg = Message::Log(Log {
        level: LogLevel::Error,
        text: "hi".into(),
    });
    let bytes = encode(0, &msg).unwrap();
    assert_eq!(&bytes[HEADER_LEN..], &[3, 2, 0, 0, 0, b'h', b'i']);
}

#[test]
fn golden_scheduler_state_payload() {
    let msg = Message::SchedulerState(SchedulerState {
        state: SchedState::Exited,
        exit_kind: SchedExitKind::Unknown(1025),
        exit_code: -2,
        name: "scx_x".into(),
        reason: "stall".into(),
    });
    let bytes = encode(0, &msg).unwrap();
    let mut want = vec![2, 0, 0x01, 0x04, 0, 0];
    want.extend_from_slice(&(-2i64).to_le_bytes());
    want.extend_from_slice(&[5, 0, 0, 0]);
    want.extend_from_slice(b"scx_x");
    want.extend_from_slice(&[5, 0, 0, 0]);
    want.extend_from_slice(b"stall");
    assert_eq!(&bytes[HEADER_LEN..], &want[..]);
}

#[test]
fn fixed_message_sizes() {
    use std::mem::size_of;
    assert_eq!(size_of::<FrameHeader>(), HEADER_LEN);
    assert_eq!(size_of::<SysReady>(), 28);
    assert_eq!(size_of::<WorkerReport>(), 88);
    assert_eq!(size_of::<Lifecycle>(), 4);
    assert_eq!(size_of::<Exit>(), 4);
    assert_eq!(size_of::<Ping>(), 8);
    assert_eq!(size_of::<Pong>(), 8);
    assert_eq!(MAGIC.to_le_bytes(), MAGIC_BYTES);
}

#[test]
fn sys_ready_field_order() {
    let bytes = encode(
        0,
        &Message::SysReady(SysReady::new(
            4,
            0xffff_ffff_8100_0000,
            0x100_0000,
            0xffff_8880_0000_0000,
        )),
    )
    .unwrap();
    let p = &bytes[HEADER_LEN..];
    assert_eq!(&p[0..4], &4u32.to_le_bytes());
    assert_eq!(&p[4..12], &0xffff_ffff_8100_0000u64.to_le_bytes());
    assert_eq!(&p[12..20], &0x100_0000u64.to_le_bytes());
    assert_eq!(&p[20..28], &0xffff_8880_0000_0000u64.to_le_bytes());
}
