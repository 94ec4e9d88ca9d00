//! The no_std, no-alloc API surface: stack buffers only. Runs under every
//! feature set, including `--no-default-features`.

use ktstr_wire::*;

#[test]
fn guest_to_host_with_stack_buffers() {
    // Guest side: frames into one fixed buffer, as a bare-metal agent would.
    let mut wire = [0u8; 512];
    let mut enc = Encoder::new();
    let mut len = 0;
    let msgs = [
        Message::SysReady(SysReady::new(
            4,
            0xffff_ffff_8100_0000,
            0x100_0000,
            0xffff_8880_0000_0000,
        )),
        Message::Lifecycle(Lifecycle::new(Phase::ScenarioStarted)),
        Message::Stdout(Chunk {
            pid: 42,
            data: b"hello\n".into(),
        }),
        Message::Exit(Exit::new(0)),
    ];
    for m in &msgs {
        len += enc.encode_into(&mut wire[len..], m).unwrap();
    }
    // Console noise shares the channel: put a line after the first frame.
    let noise = b"[    0.123] random kernel line\n";
    let first = encoded_len(&msgs[0]);
    let mut stream = [0u8; 600];
    stream[..first].copy_from_slice(&wire[..first]);
    stream[first..first + noise.len()].copy_from_slice(noise);
    stream[first + noise.len()..len + noise.len()].copy_from_slice(&wire[first..len]);
    let stream = &stream[..len + noise.len()];

    // Host side (or a no_std relay): slice-backed decoder, 3-byte reads.
    let mut buf = [0u8; 256];
    let mut dec = Decoder::new(&mut buf).unwrap();
    let mut seen = 0;
    for chunk in stream.chunks(3) {
        dec.push(chunk, |item| {
            let frame = item.unwrap();
            assert_eq!(frame.seq(), seen as u64);
            assert_eq!(frame.message().unwrap(), msgs[seen]);
            seen += 1;
        });
    }
    dec.finish();
    assert!(dec.next_frame().is_none());
    assert_eq!(seen, msgs.len());
    assert_eq!(dec.stats().garbage_bytes, noise.len() as u64);
    assert_eq!(dec.stats().frames, msgs.len() as u64);
}

#[test]
fn host_to_guest_command() {
    let mut wire = [0u8; 128];
    let cmd: Message = Command::RunStep(RunStep {
        step: 2,
        timeout_ms: 5000,
        spec: b"spin 4".into(),
    })
    .into();
    let n = encode_into(&mut wire, 0, &cmd).unwrap();
    let mut buf = [0u8; 128];
    let mut dec = Decoder::new(&mut buf).unwrap();
    assert_eq!(dec.feed(&wire[..n]), n);
    let frame = dec.next_frame().unwrap().unwrap();
    match frame.message().unwrap() {
        Message::Command(Command::RunStep(r)) => {
            assert_eq!((r.step, r.timeout_ms), (2, 5000));
            assert_eq!(r.spec.to_str(), Ok("spin 4"));
        }
        other => panic!("{other:?}"),
    }
}
