//! Emulated devices, one per file, all behind the [`bus::IoDevice`] trait.

pub mod bus;
pub mod cmos;
pub mod control;
pub mod i8042;
pub(crate) mod legacy;
pub mod serial;
pub(crate) mod set;
pub mod virtio;
