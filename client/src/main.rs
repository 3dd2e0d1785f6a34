//! `lienthong`: the command line for people — clerks, officials, node operators and
//! verifiers. Thin over the `pki` and `node` libraries: arguments are parsed here, turned into
//! validated values, and errors become one line on stderr and a non-zero exit code.
#![forbid(unsafe_code)]

mod files;
mod pki_cmd;
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pki(command) => pki_cmd::run(command),
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
