//! Shared test helpers: an owned message spec proptest can generate, and
//! decode drivers.
#![allow(dead_code)]

use ktstr_wire::le::{I32, U32, U64};
use ktstr_wire::*;
use proptest::prelude::*;

/// Number of message shapes `Spec::message` can build (15 known + unknown).
pub const SHAPES: u8 = 17;

/// Owned raw material for one message; `message()` borrows from it.
#[derive(Clone, Debug)]
pub struct Spec {
    pub shape: u8,
    pub nums: [u64; 13],
    pub a: Vec<u8>,
    pub b: Vec<u8>,
}

pub fn arb_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

pub fn arb_spec_of(shape: impl Strategy<Value = u8>) -> impl Strategy<Value = Spec> {
    (shape, any::<[u64; 13]>(), arb_bytes(300), arb_bytes(64))
        .prop_map(|(shape, nums, a, b)| Spec { shape, nums, a, b })
}

pub fn arb_spec() -> impl Strategy<Value = Spec> {
    arb_spec_of(0..SHAPES)
}

impl Spec {
    pub fn message(&self) -> Message<'_> {
        let n = &self.nums;
        let a = ByteStr(&self.a);
        let b = ByteStr(&self.b);
        match self.shape % SHAPES {
            0 => Message::SysReady(SysReady::new(n[0] as u32, n[1], n[2], n[3])),
            1 => Message::Lifecycle(Lifecycle::new(Phase::from(n[0] as u32 % 9))),
            2 => Message::Log(Log {
                level: LogLevel::from(n[0] as u8 % 10),
                text: a,
            }),
            3 => Message::Stdout(Chunk {
                pid: n[0] as u32,
                data: a,
            }),
            4 => Message::Stderr(Chunk {
                pid: n[0] as u32,
                data: a,
            }),
            5 => Message::SchedulerState(SchedulerState {
                state: SchedState::from(n[0] as u16 % 5),
                exit_kind: SchedExitKind::from(n[1] as u32),
                exit_code: n[2] as i64,
                name: b,
                reason: a,
            }),
            6 => Message::WorkerReport(WorkerReport {
                worker_id: U32::new(n[0] as u32),
                pid: U32::new(n[1] as u32),
                cgroup_id: U64::new(n[2]),
                cpu_time_ns: U64::new(n[3]),
                wall_ns: U64::new(n[4]),
                work_units: U64::new(n[5]),
                voluntary_csw: U64::new(n[6]),
                involuntary_csw: U64::new(n[7]),
                migrations: U64::new(n[8]),
                max_gap_ns: U64::new(n[9]),
                cpus_used_lo: U64::new(n[10]),
                distinct_cpus: U32::new(n[11] as u32),
                last_cpu: U32::new(n[12] as u32),
            }),
            7 => Message::ScenarioResult(ScenarioResult {
                step: n[0] as u32,
                status: ScenarioStatus::from(n[1] as u16 % 7),
                text: a,
            }),
            8 => Message::Exit(Exit {
                code: I32::new(n[0] as i32),
            }),
            9 => Message::Panic(Panic { message: a }),
            10 => Message::Pong(Pong::new(n[0])),
            11 => Command::RunStep(RunStep {
                step: n[0] as u32,
                timeout_ms: n[1] as u32,
                spec: a,
            })
            .into(),
            12 => Command::Shutdown.into(),
            13 => Command::Ping(Ping::new(n[0])).into(),
            14 => Command::Exec(Exec { argv: a }).into(),
            15 => Command::Stdin(Chunk {
                pid: n[0] as u32,
                data: a,
            })
            .into(),
            _ => {
                let raw = n[0] as u16;
                let kind = if Kind(raw).is_known() {
                    Kind(0x7FFF)
                } else {
                    Kind(raw)
                };
                Message::Unknown {
                    kind,
                    payload: &self.a,
                }
            }
        }
    }
}

/// An owned decode result, comparable across decoders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Frame(OwnedFrame),
    Error(DecodeError),
}

/// Decode `stream` split at `cuts` with a `VecDecoder`, then finish.
pub fn decode_vec(stream: &[u8], cuts: &[usize], max_payload: u32) -> (Vec<Item>, DecoderStats) {
    let mut dec = VecDecoder::new(max_payload);
    let mut items = Vec::new();
    for chunk in split(stream, cuts) {
        dec.push(chunk, |it| items.push(own(it)));
    }
    dec.finish();
    while let Some(it) = dec.next_frame() {
        items.push(own(it));
    }
    assert_eq!(dec.buffered(), 0);
    assert_accounting(stream.len(), dec.stats());
    (items, dec.stats())
}

/// Same with the slice-backed decoder over a buffer of exactly the needed size.
pub fn decode_slice(stream: &[u8], cuts: &[usize], max_payload: u32) -> (Vec<Item>, DecoderStats) {
    let mut buf = vec![0u8; HEADER_LEN + max_payload as usize];
    let mut dec = Decoder::new(&mut buf).unwrap();
    let mut items = Vec::new();
    for chunk in split(stream, cuts) {
        dec.push(chunk, |it| items.push(own(it)));
    }
    dec.finish();
    while let Some(it) = dec.next_frame() {
        items.push(own(it));
    }
    assert_eq!(dec.buffered(), 0);
    assert_accounting(stream.len(), dec.stats());
    (items, dec.stats())
}

pub fn own(it: Result<Frame<'_>, DecodeError>) -> Item {
    match it {
        Ok(f) => Item::Frame(f.to_owned_frame()),
        Err(e) => Item::Error(e),
    }
}

/// Every input byte is in a frame or counted as garbage once drained.
pub fn assert_accounting(fed: usize, s: DecoderStats) {
    assert_eq!(s.frame_bytes + s.garbage_bytes, fed as u64, "{s:?}");
}

/// Split `data` at the given cut points (taken modulo the length, sorted).
pub fn split<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

pub fn frames(items: &[Item]) -> Vec<&OwnedFrame> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Frame(f) => Some(f),
            Item::Error(_) => None,
        })
        .collect()
}

pub fn errors(items: &[Item]) -> Vec<DecodeError> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Error(e) => Some(*e),
            Item::Frame(_) => None,
        })
        .collect()
}
