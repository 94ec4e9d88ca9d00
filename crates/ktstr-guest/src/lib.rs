//! The ktstr guest agent's building blocks, std only (no async runtime).
//!
//! * [`init`]: the guest's PID 1 — mounts, panic hooks, KASLR facts, the
//!   request loop — and the `.init_array` hook that makes any binary linking
//!   this crate become that init when the kernel starts it as `/init`.
//! * [`dispatch`]: host requests ([`proto`] JSON inside `RunStep`) to
//!   [`exec`] and [`sched`] (the scheduler lifecycle).
//! * [`transport`] / [`outbox`]: the `ktstr.bulk` virtio port, receive and
//!   shared send halves.
//! * [`reaper`]: child reaping safe for PID 1; [`relay`]: child output to
//!   the host.
//! * [`selftest`]: the `wire-selftest` / `uart-selftest` subcommands that
//!   measure and verify the channel end to end.
//! * [`pattern`] / [`noise`]: deterministic payload and console-noise bytes
//!   shared by guest and host so the host can verify every byte.

#![warn(missing_docs)]

pub mod cli;
pub mod dispatch;
pub mod error;
pub mod exec;
pub mod init;
pub mod noise;
pub mod outbox;
pub mod pattern;
pub mod proto;
pub mod reaper;
pub mod relay;
pub mod scenario;
pub mod sched;
pub mod selftest;
pub mod serve;
pub mod shell;
pub mod transport;
pub mod uart;

pub use error::Error;
