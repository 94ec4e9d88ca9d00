//! `ktstr-guest`: the in-VM agent. Errors go to stderr with a non-zero exit.

use std::process::ExitCode;

use ktstr_guest::cli::{self, Cmd};
use ktstr_guest::selftest;

fn main() -> ExitCode {
    let result = cli::parse(std::env::args().skip(1)).and_then(|cmd| match cmd {
        Cmd::WireSelftest { mib, garbage_every } => selftest::wire_selftest(mib, garbage_every),
        Cmd::UartSelftest {
            kib,
            dev,
            garbage_every,
        } => selftest::uart_selftest(&dev, kib, garbage_every),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ktstr-guest: {e}");
            ExitCode::FAILURE
        }
    }
}
