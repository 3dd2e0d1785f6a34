//! `lienthong`: the command line for people — clerks, officials, node operators and
//! verifiers. Thin over the `pki` and `node` libraries: arguments are parsed here, turned into
//! validated values, and errors become one line on stderr and a non-zero exit code.
#![forbid(unsafe_code)]

mod document_cmd;
mod files;
mod form;
mod pki_cmd;
mod report;
mod secret;
mod timefmt;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exchange digitally signed official documents between agencies.
#[derive(Parser, Debug)]
#[command(name = "lienthong", version, about, long_about = None)]
struct Cli {
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
    /// Verify a document bundle offline and print its provenance.
    Verify(document_cmd::VerifyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pki(command) => pki_cmd::run(command),
        Command::Sign(args) => document_cmd::sign(args),
        Command::Verify(args) => document_cmd::verify(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the outermost context first, then each cause.
            let mut line = error.to_string();
            for cause in error.chain().skip(1) {
                line.push_str(": ");
                line.push_str(&cause.to_string());
            }
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}
