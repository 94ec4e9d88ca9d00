//! Encode/decode throughput of the wire format.
//!
//! `cargo run --release -p ktstr-wire --example wire_throughput [-- SECONDS_PER_CASE]`
//!
//! For 64 KiB and 64 B payloads: encode frames back to back into one stream,
//! then decode that stream in 4 KiB reads (a typical serial/virtio-console
//! read size) with both decoders, parsing every message. MiB/s counts wire
//! bytes (header + payload).

use std::hint::black_box;
use std::time::{Duration, Instant};

use ktstr_wire::{Chunk, Decoder, HEADER_LEN, Message, VecDecoder, encode_into, encoded_len};

const READ_SIZE: usize = 4096;

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let budget = Duration::from_secs_f64(secs);
    println!(
        "{:<8} {:<14} {:>12} {:>14}",
        "payload", "stage", "MiB/s", "frames/s"
    );
    for payload in [64 * 1024, 64] {
        run_case(payload, budget);
    }
}

fn run_case(payload: usize, budget: Duration) {
    let data = vec![0xA5u8; payload - 8]; // Chunk adds pid + length prefix
    let msg = Message::Stdout(Chunk {
        pid: 1,
        data: data.as_slice().into(),
    });
    let frame_len = encoded_len(&msg);
    assert_eq!(frame_len, HEADER_LEN + payload);
    // ~64 MiB of stream per pass keeps memory modest and timing stable.
    let frames = ((64usize << 20) / frame_len).max(1);
    let mut stream = vec![0u8; frames * frame_len];

    let label = if payload >= 1024 {
        format!("{} KiB", payload / 1024)
    } else {
        format!("{payload} B")
    };

    // Encode.
    let (n, t) = repeat(budget, || {
        let mut off = 0;
        for seq in 0..frames as u64 {
            off += encode_into(&mut stream[off..], seq, &msg).expect("buffer sized");
        }
        black_box(&stream);
        frames
    });
    report(&label, "encode", n, frame_len, t);

    // Decode with the Vec-backed decoder.
    let (n, t) = repeat(budget, || {
        let mut dec = VecDecoder::new(payload as u32);
        let mut seen = 0usize;
        for chunk in stream.chunks(READ_SIZE) {
            dec.push(chunk, |item| {
                let frame = item.expect("clean stream");
                if let Ok(Message::Stdout(c)) = frame.message() {
                    seen += black_box(c.data.len()).min(1);
                }
            });
        }
        assert_eq!(seen, frames);
        seen
    });
    report(&label, "decode (Vec)", n, frame_len, t);

    // Decode with the slice-backed (no_std) decoder.
    let mut buf = vec![0u8; HEADER_LEN + payload];
    let (n, t) = repeat(budget, || {
        let mut dec = Decoder::new(&mut buf).expect("buffer sized");
        let mut seen = 0usize;
        for chunk in stream.chunks(READ_SIZE) {
            dec.push(chunk, |item| {
                let frame = item.expect("clean stream");
                if let Ok(Message::Stdout(c)) = frame.message() {
                    seen += black_box(c.data.len()).min(1);
                }
            });
        }
        assert_eq!(seen, frames);
        seen
    });
    report(&label, "decode (slice)", n, frame_len, t);

    // Round trip: encode + Vec decode, per frame.
    let (n, t) = repeat(budget, || {
        let mut off = 0;
        for seq in 0..frames as u64 {
            off += encode_into(&mut stream[off..], seq, &msg).expect("buffer sized");
        }
        let mut dec = VecDecoder::new(payload as u32);
        let mut seen = 0usize;
        for chunk in stream.chunks(READ_SIZE) {
            dec.push(chunk, |item| seen += item.is_ok() as usize);
        }
        seen
    });
    report(&label, "encode+decode", n, frame_len, t);
}

/// Run `pass` until `budget` has elapsed (at least once); returns the total
/// frames processed and the time taken.
fn repeat(budget: Duration, mut pass: impl FnMut() -> usize) -> (usize, Duration) {
    let start = Instant::now();
    let mut total = 0;
    loop {
        total += pass();
        let t = start.elapsed();
        if t >= budget {
            return (total, t);
        }
    }
}

fn report(label: &str, stage: &str, frames: usize, frame_len: usize, t: Duration) {
    let secs = t.as_secs_f64();
    let mib = (frames * frame_len) as f64 / (1024.0 * 1024.0);
    println!(
        "{label:<8} {stage:<14} {:>12.1} {:>14.0}",
        mib / secs,
        frames as f64 / secs
    );
}
