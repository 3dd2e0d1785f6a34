//! Where passphrases come from: a terminal prompt, an environment variable or a file, never
//! a command-line argument (arguments are visible to every user through `ps` and land in
//! shell history).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, bail};
use zeroize::Zeroizing;

/// Shortest passphrase accepted for a new key.
const MIN_NEW_PASSPHRASE_CHARS: usize = 8;

/// A passphrase source chosen on the command line.
#[derive(Clone, Debug, Default)]
pub(crate) struct PassphraseSource {
    /// Name of an environment variable holding it.
    pub env: Option<String>,
    /// A file holding it (one trailing newline is ignored).
    pub file: Option<PathBuf>,
}

impl PassphraseSource {
    /// Reads the passphrase; `what` names the key in prompts and errors, `flag` the option
    /// prefix to suggest (e.g. `--ca-passphrase`).
    pub(crate) fn read(&self, what: &str, flag: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        self.read_or(what, &format!("use {flag}-env VAR or {flag}-file FILE"))
    }

    /// As [`PassphraseSource::read`], with `hint` telling the user what to do when there is no
    /// terminal to ask.
    pub(crate) fn read_or(&self, what: &str, hint: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        if let Some(var) = &self.env {
            let value = std::env::var(var)
                .with_context(|| format!("environment variable {var} (passphrase for {what}) is not set"))?;
            return Ok(Zeroizing::new(value.into_bytes()));
        }
        if let Some(path) = &self.file {
            let mut text = Zeroizing::new(
                std::fs::read(path).with_context(|| format!("cannot read passphrase file {}", path.display()))?,
            );
            if text.last() == Some(&b'\n') {
                text.pop();
                if text.last() == Some(&b'\r') {
                    text.pop();
                }
            }
            warn_if_readable_by_others(path);
            return Ok(text);
        }
        if !std::io::stdin().is_terminal() {
            bail!("no terminal to ask for the passphrase of {what}; {hint}");
        }
        let answer = rpassword::prompt_password(format!("Passphrase for {what}: "))
            .with_context(|| format!("could not read the passphrase for {what}"))?;
        Ok(Zeroizing::new(answer.into_bytes()))
    }

    /// Reads a passphrase for a new key: asked twice at a prompt, and at least 8 characters
    /// whatever the source.
    pub(crate) fn read_new(&self, what: &str, flag: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        let first = self.read(what, flag)?;
        if self.env.is_none() && self.file.is_none() {
            let again = rpassword::prompt_password(format!("Repeat the passphrase for {what}: "))
                .with_context(|| format!("could not read the passphrase for {what}"))?;
            if again.as_bytes() != first.as_slice() {
                bail!("the two passphrases for {what} differ; nothing was written");
            }
        }
        let chars = String::from_utf8_lossy(&first).chars().count();
        if chars < MIN_NEW_PASSPHRASE_CHARS {
            bail!("the passphrase for {what} has {chars} characters; use at least {MIN_NEW_PASSPHRASE_CHARS}");
        }
        Ok(first)
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!("warning: passphrase file {} can be read by other users; chmod 600 it", path.display());
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &std::path::Path) {}
