//! `lienthong completions SHELL` and `lienthong man --out DIR`: shell completion scripts and
//! manual pages generated from the same clap definition the binary parses with, so they never
//! drift from the real options. README ("Installing") has the install steps.

use std::path::PathBuf;

use anyhow::Context;
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
    let mut command = crate::command();
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut command, "lienthong", &mut script);
    crate::output::write(format_args!("{}", String::from_utf8_lossy(&script)))
}

/// Writes `lienthong.1` and one page per command (`lienthong-send.1`, `lienthong-pki-issue.1`,
/// …), as `git` and `cargo` name theirs.
pub(crate) fn man(a: ManArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut command = crate::command();
    command.build();
    let mut written = Vec::new();
    write_pages(&command, "lienthong", &a.out, &mut written)?;
    outln!("Wrote {} manual pages into {}", written.len(), a.out.display())?;
    outln!("Read them with `man {}` (or `man -l {}`)", "lienthong", a.out.join("lienthong.1").display())?;
    Ok(())
}

fn write_pages(
    command: &clap::Command,
    name: &str,
    dir: &std::path::Path,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    clap_mangen::Man::new(command.clone())
        .title(name.to_uppercase())
        .render(&mut bytes)
        .with_context(|| format!("cannot render the page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
