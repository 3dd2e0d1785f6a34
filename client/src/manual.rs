//! `lienthong completions SHELL` and `lienthong man --out DIR`: shell completion scripts and
//! manual pages generated from the same clap definition the binary parses with, so they never
//! drift from the real options. README ("Installing") has the install steps.

use std::path::PathBuf;

use clap::Args;

use crate::outln;

/// Arguments of `lienthong completions`.
#[derive(Args, Debug)]
pub(crate) struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

/// Arguments of `lienthong man`.
#[derive(Args, Debug)]
pub(crate) struct ManArgs {
    /// Directory to write the pages into (created if missing), e.g. /usr/local/share/man/man1.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Prints the completion script for `shell` on standard output.
pub(crate) fn completions(a: CompletionsArgs) -> anyhow::Result<()> {
    let script = crate::manual_pages::completion_script(crate::command(), "lienthong", a.shell);
    crate::output::write(format_args!("{script}"))
}

/// Writes `lienthong.1` and one page per command (`lienthong-send.1`, `lienthong-pki-issue.1`,
/// …), as `git` and `cargo` name theirs.
pub(crate) fn man(a: ManArgs) -> anyhow::Result<()> {
    let written = crate::manual_pages::write_pages(crate::command(), "lienthong", &a.out)?;
    outln!("Wrote {} manual pages into {}", written.len(), a.out.display())?;
    outln!("Read them with `man {}` (or `man -l {}`)", "lienthong", a.out.join("lienthong.1").display())?;
    Ok(())
}
