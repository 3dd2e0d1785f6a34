//! `lienthong`: the command line for people — clerks, officials, node operators and
//! verifiers. Thin over the `pki` and `node` libraries: arguments are parsed here, turned into
//! validated values, and errors become one line on stderr and a non-zero exit code.
//!
//! Exit codes: 0 success (also when the reader of standard output closed it early, as `head`
//! does); 1 a failure the command explains on stderr; 2 a usage error (clap's). `verify` adds
//! its own code for "verified but indeterminate" (see the README).
#![forbid(unsafe_code)]

/// mimalloc rather than glibc's malloc, as the node has: `lienthong verify DIR` checks
/// bundles on every core, and with mimalloc it verified 6,854-6,992 bundles/s against
/// 6,458-6,490 with glibc (a single `verify FILE` starts about 5 % slower; see BENCHMARKS.md,
/// "What the eleventh session measured and moved").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod clerk_cmd;
mod demo;
mod document_cmd;
mod files;
mod form;
mod log_cmd;
mod manual;
mod manual_pages;
mod outgoing;
mod output;
mod pki_cmd;
mod profile;
mod report;
mod secret;
mod timefmt;
mod verify_many;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub(crate) use output::outln;

/// Exchange digitally signed official documents between agencies.
#[derive(Parser, Debug)]
#[command(
    name = "lienthong",
    version,
    about,
    long_about = None,
    after_help = "Environment:\n  LIENTHONG_PROFILE     the clerk profile to use (as --profile)\n  LIENTHONG_CONFIG_DIR  where profiles and the outgoing spool live (default: ~/.config/lienthong)\n  TZ                    the time zone times are shown in (default: the machine's)\n\nExit codes: 0 success; 1 a failure, explained on stderr; 2 a usage error."
)]
struct Cli {
    /// The profile to use (see `lienthong profile`); default: the default profile.
    #[arg(long, global = true, env = "LIENTHONG_PROFILE")]
    profile: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Certificate authority and certificate commands for node operators.
    #[command(subcommand)]
    Pki(pki_cmd::PkiCommand),
    /// Sign a document as the competent official, and seal it as the agency.
    Sign(document_cmd::SignArgs),
    /// Validate a document bundle offline and print its report: exit 0 PASSED, 1 FAILED,
    /// 3 INDETERMINATE, 4 when a file cannot be read. Several bundles or a directory: one
    /// line each, then a summary; the exit status is the worst verdict's.
    Verify(document_cmd::VerifyArgs),
    /// Start the Quảng Ninh demo network on this machine and send a signed document through it.
    Demo(demo::DemoArgs),
    /// Manage profiles: which node, clerk certificate, seal and official's keys to use.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// Sign (official, then seal) and send a document through the agency's node.
    Send(clerk_cmd::SendCommandArgs),
    /// List received documents (urgent first), or sent ones with --sent.
    Inbox(clerk_cmd::InboxArgs),
    /// Show a document's fields and provenance, verified here.
    Show(clerk_cmd::ShowArgs),
    /// Save a document's bundle and attachments, each checked as it is written.
    Fetch(clerk_cmd::FetchArgs),
    /// Post a status on a received document: accepted, assigned, processing, completed, refused.
    Status(clerk_cmd::StatusArgs),
    /// Every hop, receipt and status of a document, with times.
    Track(clerk_cmd::TrackArgs),
    /// Ask the recipients of a sent document to give it back.
    Recall(clerk_cmd::RecallArgs),
    /// The agency node's transparency log: checkpoints, proofs, a saved chain, the audit of
    /// what the parent logged from this agency.
    #[command(subcommand)]
    Log(log_cmd::LogCommand),
    /// Send a document revoking an earlier one.
    Revoke(clerk_cmd::ActingArgs),
    /// Send a document updating an earlier one.
    Update(clerk_cmd::ActingArgs),
    /// Send a document replacing an earlier one.
    Replace(clerk_cmd::ActingArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(manual::CompletionsArgs),
    /// Write the manual pages (lienthong.1 and one per command) into a directory.
    Man(manual::ManArgs),
}

/// The command-line interface as clap sees it (for completions and manual pages).
pub(crate) fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

fn main() -> ExitCode {
    // Usage errors exit 2, `--help` and `--version` 0 (clap's conventions).
    let cli = Cli::try_parse().unwrap_or_else(|e| e.exit());
    let profile = cli.profile;
    let result = match cli.command {
        Command::Pki(command) => pki_cmd::run(command),
        Command::Sign(args) => document_cmd::sign(profile.as_deref(), args),
        Command::Verify(args) => {
            return document_cmd::verify(args).unwrap_or_else(|error| {
                print_error(&error);
                ExitCode::from(document_cmd::EXIT_CANNOT_VERIFY)
            });
        }
        Command::Demo(args) => demo::run(args),
        Command::Profile(command) => profile::run(command),
        Command::Send(args) => clerk_cmd::send_command(profile.as_deref(), args),
        Command::Inbox(args) => clerk_cmd::inbox(profile.as_deref(), args),
        Command::Show(args) => clerk_cmd::show(profile.as_deref(), args),
        Command::Fetch(args) => clerk_cmd::fetch(profile.as_deref(), args),
        Command::Status(args) => clerk_cmd::status(profile.as_deref(), args),
        Command::Track(args) => clerk_cmd::track(profile.as_deref(), args),
        Command::Recall(args) => clerk_cmd::recall(profile.as_deref(), args),
        Command::Log(command) => log_cmd::run(profile.as_deref(), command),
        Command::Revoke(args) => clerk_cmd::acting(profile.as_deref(), clerk_cmd::Acting::Revoke, args),
        Command::Update(args) => clerk_cmd::acting(profile.as_deref(), clerk_cmd::Acting::Update, args),
        Command::Replace(args) => clerk_cmd::acting(profile.as_deref(), clerk_cmd::Acting::Replace, args),
        Command::Completions(args) => manual::completions(args),
        Command::Man(args) => manual::man(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader took what it wanted and closed the pipe: nothing went wrong.
        Err(error) if output::is_closed(&error) => ExitCode::SUCCESS,
        Err(error) => {
            print_error(&error);
            ExitCode::FAILURE
        }
    }
}

/// One line on stderr (see [`one_line`]). A closed stderr has nobody to tell; the exit code
/// still says it failed.
fn print_error(error: &anyhow::Error) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "error: {}", one_line(error));
}

/// The error as one line: the outermost context first, then each cause — leaving out a
/// cause whose words the line already holds (many errors print their source inside their
/// own message, and the chain would say it twice).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        line.push_str(": ");
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapping(std::io::Error);
    impl std::fmt::Display for Wrapping {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "envelope: {}", self.0)
        }
    }
    impl std::error::Error for Wrapping {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn an_error_that_prints_its_source_is_said_once() {
        let e = anyhow::Error::new(Wrapping(std::io::Error::other("unexpected end of CBOR"))).context("cv-123.ltd");
        assert_eq!(one_line(&e), "cv-123.ltd: envelope: unexpected end of CBOR");
        let e = anyhow::Error::new(std::io::Error::other("no such file")).context("cannot read form.toml");
        assert_eq!(one_line(&e), "cannot read form.toml: no such file");
    }

    #[test]
    fn the_interface_is_consistent() {
        command().debug_assert();
    }
}
