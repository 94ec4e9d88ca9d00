//! Command-line parsing (no dependencies; two subcommands).

use std::path::PathBuf;

use crate::error::Error;

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cmd {
    /// Stream `mib` MiB over the bulk port, then serve commands.
    WireSelftest {
        /// Payload MiB to send.
        mib: u64,
        /// Write noise after every K data frames (0 = never).
        garbage_every: u64,
    },
    /// Stream `kib` KiB over a serial device.
    UartSelftest {
        /// Payload KiB to send.
        kib: u64,
        /// Serial device, e.g. /dev/ttyS1.
        dev: PathBuf,
        /// Write noise after every K data frames (0 = never).
        garbage_every: u64,
    },
}

fn number(flag: &str, v: Option<String>) -> Result<u64, Error> {
    let v = v.ok_or_else(|| Error::Usage(format!("{flag} needs a value")))?;
    v.parse()
        .map_err(|_| Error::Usage(format!("{flag}: {v:?} is not a number")))
}

/// Parse `args` (without argv\[0\]).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Cmd, Error> {
    let mut args = args.into_iter();
    let sub = args
        .next()
        .ok_or_else(|| Error::Usage("missing subcommand".into()))?;
    let (mut size, mut garbage_every, mut dev) = (None, 0, PathBuf::from("/dev/ttyS1"));
    let size_flag = match sub.as_str() {
        "wire-selftest" => "--mib",
        "uart-selftest" => "--kib",
        other => return Err(Error::Usage(format!("unknown subcommand {other:?}"))),
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            f if f == size_flag => size = Some(number(f, args.next())?),
            "--garbage-every" => garbage_every = number("--garbage-every", args.next())?,
            "--dev" if sub == "uart-selftest" => {
                dev = args
                    .next()
                    .map(PathBuf::from)
                    .ok_or_else(|| Error::Usage("--dev needs a value".into()))?;
            }
            other => return Err(Error::Usage(format!("unknown flag {other:?}"))),
        }
    }
    let size = size.ok_or_else(|| Error::Usage(format!("{size_flag} is required")))?;
    Ok(if sub == "wire-selftest" {
        Cmd::WireSelftest {
            mib: size,
            garbage_every,
        }
    } else {
        Cmd::UartSelftest {
            kib: size,
            dev,
            garbage_every,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Cmd, Error> {
        parse(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn parses_both_subcommands() {
        assert_eq!(
            p("wire-selftest --mib 16 --garbage-every 4").unwrap(),
            Cmd::WireSelftest {
                mib: 16,
                garbage_every: 4
            }
        );
        assert_eq!(
            p("uart-selftest --kib 256 --dev /dev/ttyS2").unwrap(),
            Cmd::UartSelftest {
                kib: 256,
                dev: "/dev/ttyS2".into(),
                garbage_every: 0
            }
        );
        for bad in [
            "",
            "frob",
            "wire-selftest",
            "wire-selftest --mib x",
            "wire-selftest --mib",
            "wire-selftest --mib 1 --dev /dev/x",
            "uart-selftest --mib 1",
        ] {
            assert!(matches!(p(bad), Err(Error::Usage(_))), "{bad:?}");
        }
    }
}
