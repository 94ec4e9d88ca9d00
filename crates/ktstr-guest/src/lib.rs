//! The ktstr guest agent's building blocks, std only (no async runtime).
//!
//! * [`transport`]: find and open the `ktstr.bulk` virtio port, send frames,
//!   receive host commands.
//! * [`selftest`]: the `wire-selftest` / `uart-selftest` subcommands that
//!   measure and verify the channel end to end.
//! * [`pattern`] / [`noise`]: deterministic payload and console-noise bytes
//!   shared by guest and host so the host can verify every byte.

pub mod cli;
pub mod error;
pub mod noise;
pub mod pattern;
pub mod selftest;
pub mod serve;
pub mod transport;
pub mod uart;

pub use error::Error;
