//! The ktstr control port: how a guest asks for a snapshot and learns whether
//! it was restored. Port layout (offsets from [`BASE`]):
//! - `0` read (1-4 bytes): the restore generation, 0 on a cold boot, n on
//!   the n-th restore (as the restoring caller numbered it).
//! - `1` write [`REQUEST_SNAPSHOT`]: take a snapshot now. The writing vCPU
//!   stops at the `out`; the host parks all vCPUs, saves, then resumes or ends.
//! - `0x80..0x100` read: this run's input bytes (0 past the end), so a
//!   restored guest can read a per-restore command, e.g. through `/dev/port`.

use std::sync::Arc;

use super::bus::{IoAction, IoDevice};
use crate::vcpu::state::RunState;

pub const BASE: u64 = 0xe00;
pub const LEN: u64 = 0x100;
pub const OFFSET_GENERATION: u64 = 0;
pub const OFFSET_REQUEST: u64 = 1;
pub const OFFSET_INPUT: u64 = 0x80;
/// At most this many input bytes are visible to the guest.
pub const INPUT_MAX: usize = (LEN - OFFSET_INPUT) as usize;
/// The byte a guest writes at [`OFFSET_REQUEST`] to ask for a snapshot.
pub const REQUEST_SNAPSHOT: u8 = 0x5a;

pub(crate) struct Control {
    generation: u32,
    input: Vec<u8>,
    state: Arc<RunState>,
}

impl Control {
    pub fn new(generation: u32, input: Vec<u8>, state: Arc<RunState>) -> Self {
        Self {
            generation,
            input,
            state,
        }
    }
}

impl IoDevice for Control {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset == OFFSET_GENERATION {
            let g = self.generation.to_le_bytes();
            let n = data.len().min(4);
            data[..n].copy_from_slice(&g[..n]);
        } else if offset >= OFFSET_INPUT {
            let at = (offset - OFFSET_INPUT) as usize;
            for (i, b) in data.iter_mut().enumerate() {
                *b = self.input.get(at + i).copied().unwrap_or(0);
            }
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> IoAction {
        if offset == OFFSET_REQUEST && data.first() == Some(&REQUEST_SNAPSHOT) {
            self.state.request_pause();
        }
        IoAction::Continue
    }
}
