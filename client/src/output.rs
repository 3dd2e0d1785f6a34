//! Standard output for results. `println!` panics when the reader has gone (`lienthong inbox |
//! head -1`: "failed printing to stdout: Broken pipe", a backtrace, exit 101). Everything a
//! command prints for its reader goes through [`outln!`] instead, which returns an error: a
//! closed pipe becomes [`StdoutClosed`], which `main` turns into a quiet exit 0 — the reader
//! took what it wanted — after the command has unwound normally (temporary files removed,
//! connections closed). Restoring SIGPIPE's default would need `unsafe` (forbidden here), would
//! kill the process without running destructors, and would not cover the other errors a write
//! can meet (a full disk behind `> file`), which are reported like any failure.

use std::io::Write;

/// The reader of standard output went away (a closed pipe): not a failure of the command.
#[derive(Debug)]
pub(crate) struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed by its reader")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes formatted text to standard output (see [`outln!`]).
pub(crate) fn write(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args).and_then(|()| out.flush()).map_err(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            anyhow::Error::new(StdoutClosed)
        } else {
            anyhow::Error::new(e).context("cannot write to standard output")
        }
    })
}

/// Whether `error` is (or was caused by) a closed standard output.
pub(crate) fn is_closed(error: &anyhow::Error) -> bool {
    error.chain().any(|c| c.is::<StdoutClosed>())
}

/// `println!` that returns `anyhow::Result<()>` instead of panicking; use with `?`.
macro_rules! outln {
    () => {
        $crate::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;
