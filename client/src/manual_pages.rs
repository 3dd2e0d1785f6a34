//! Shell completions and manual pages from a clap definition: the one piece of code both
//! binaries (`lienthong` and `lienthong-node`) generate theirs with, so the pages and scripts
//! never drift from the options each really parses. `lienthong-node` includes this file by
//! path (it does not depend on the client crate).

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The completion script of `command` (installed as `name`) for `shell`.
pub(crate) fn completion_script(mut command: clap::Command, name: &str, shell: clap_complete::Shell) -> String {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    String::from_utf8_lossy(&script).into_owned()
}

/// Writes `NAME.1` and one page per subcommand (`NAME-send.1`, `NAME-pki-issue.1`, …, as `git`
/// and `cargo` name theirs) into `dir`, created if missing; returns the files written.
pub(crate) fn write_pages(mut command: clap::Command, name: &str, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    command.build();
    let mut written = Vec::new();
    write_tree(&command, name, dir, &mut written)?;
    Ok(written)
}

fn write_tree(command: &clap::Command, name: &str, dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    clap_mangen::Man::new(command.clone())
        .title(name.to_uppercase())
        .render(&mut bytes)
        .with_context(|| format!("cannot render the page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        write_tree(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
