//! vCPU threads: shared run state and kick, the panic shim, the run loop.

pub mod panic_shim;
pub(crate) mod run_loop;
pub(crate) mod state;
