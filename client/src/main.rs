//! `lienthong`: the command line for people — clerks, officials, node operators and
//! verifiers. Thin over the `pki` and `node` libraries: arguments are parsed here, turned into
//! validated values, and errors become one line on stderr and a non-zero exit code.
#![forbid(unsafe_code)]

mod clerk_cmd;
mod demo;
mod document_cmd;
mod files;
mod form;
mod pki_cmd;
mod profile;
mod report;
mod secret;
mod timefmt;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exchange digitally signed official documents between agencies.
#[derive(Parser, Debug)]
#[command(name = "lienthong", version, about, long_about = None)]
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
    /// 3 INDETERMINATE, 4 when a file cannot be read.
    Verify(document_cmd::VerifyArgs),
    /// Start the Quảng Ninh demo network on this machine and send a signed document through it.
    Demo(demo::DemoArgs),
    /// Manage profiles: which node, clerk certificate, seal and official's keys to use.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// Sign (official, then seal) and send a document through the agency's node.
    Send(clerk_cmd::SendArgs),
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
    /// Send a document revoking an earlier one.
    Revoke(clerk_cmd::ActingArgs),
    /// Send a document updating an earlier one.
    Update(clerk_cmd::ActingArgs),
    /// Send a document replacing an earlier one.
    Replace(clerk_cmd::ActingArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Command::Send(args) => clerk_cmd::send(profile.as_deref(), args, None),
        Command::Inbox(args) => clerk_cmd::inbox(profile.as_deref(), args),
        Command::Show(args) => clerk_cmd::show(profile.as_deref(), args),
        Command::Fetch(args) => clerk_cmd::fetch(profile.as_deref(), args),
        Command::Status(args) => clerk_cmd::status(profile.as_deref(), args),
        Command::Track(args) => clerk_cmd::track(profile.as_deref(), args),
        Command::Recall(args) => clerk_cmd::recall(profile.as_deref(), args),
        Command::Revoke(args) => clerk_cmd::acting(profile.as_deref(), clerk_cmd::Acting::Revoke, args),
        Command::Update(args) => clerk_cmd::acting(profile.as_deref(), clerk_cmd::Acting::Update, args),
        Command::Replace(args) => clerk_cmd::acting(profile.as_deref(), clerk_cmd::Acting::Replace, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            print_error(&error);
            ExitCode::FAILURE
        }
    }
}

/// One line on stderr: the outermost context first, then each cause.
fn print_error(error: &anyhow::Error) {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        line.push_str(": ");
        line.push_str(&cause.to_string());
    }
    eprintln!("error: {line}");
}
