//! `lienthong-node`: the daemon an agency runs.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use node::Node;
use node::config::{Config, template};

/// mimalloc rather than glibc's malloc: a node allocates and frees on every worker for every
/// document, and glibc's per-thread arenas, consolidation and page returns cost it 12-14 %
/// of its CPU under load (see BENCHMARKS.md, "What the eleventh session measured and moved").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// The same generator as `lienthong completions` and `lienthong man` (one piece of code for
// both binaries; the node does not depend on the client crate).
#[path = "../../client/src/manual_pages.rs"]
mod manual_pages;

/// The lienthong node daemon.
#[derive(Parser, Debug)]
#[command(name = "lienthong-node", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log as JSON lines (for log collectors) instead of text.
    #[arg(long, global = true)]
    log_json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a commented configuration for a new node.
    Init {
        /// The agency code, e.g. 000.01.41.H49.
        #[arg(long)]
        agency: pki::AgencyCode,
        /// The agency's name.
        #[arg(long)]
        name: String,
        /// The UDP address to listen on.
        #[arg(long, default_value = "0.0.0.0:7400")]
        listen: String,
        /// The parent, as CODE@ADDRESS (e.g. 000.00.41.H49@10.0.0.2:7400).
        #[arg(long)]
        parent: Option<String>,
        /// Where to write the file.
        #[arg(long, default_value = "node.toml")]
        out: PathBuf,
    },
    /// Check a configuration and the node's own files without starting: every problem of the
    /// file with its key and line, then the node's certificates (revoked by a CRL in its files
    /// or database, expired, expiring), missing CRLs and key file permissions. Exits 1 on an
    /// error; warnings are printed and do not fail.
    Check {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the node until SIGTERM or ctrl-c.
    Run {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Back up the node's database and attachments into a new directory, while it runs.
    Backup {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The new directory to write the backup into.
        #[arg(long)]
        out: PathBuf,
        /// Where `pg_dump` is (PostgreSQL nodes; default: from PATH).
        #[arg(long)]
        pg_bin: Option<PathBuf>,
    },
    /// Restore a backup onto a new, empty node (same agency, its own config), and check every
    /// attachment against its SHA-256.
    Restore {
        /// The new node's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The backup directory.
        #[arg(long)]
        from: PathBuf,
        /// Where `pg_restore` is (PostgreSQL nodes; default: from PATH).
        #[arg(long)]
        pg_bin: Option<PathBuf>,
    },
    /// Print the health read-out of a node: asked of the running node over its web face
    /// (`[http]`), else read from its database (run on the node's machine).
    Status {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Print the read-out as JSON (for scripts) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the shell completion script (install it as README's "Installing" says).
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (lienthong-node.1 and one per command) into a directory.
    Man {
        /// Directory to write the pages into (created if missing), e.g. /usr/local/share/man/man1.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

fn init_logging(json: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIENTHONG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only for a person at a terminal who has not asked for none (NO_COLOR, no-color.org):
    // logs kept in files, the journal or read by scripts get plain text.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = !no_color && !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Loads a configuration; every problem of the file, each with its line, is the error.
fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!(e.to_string()))
}

/// What the node finds wrong with itself, with the CRLs of its files and its database.
async fn own_findings(config: &Config) -> Vec<node::self_check::Finding> {
    use node::self_check::{Finding, Severity, file_crls, findings, from_database};
    let (mut crls, mut found) = file_crls(config);
    let database = from_database(config).await;
    found.extend(database.findings);
    match database.crls {
        Ok(stored) => crls.extend(stored),
        Err(e) => found.push(Finding {
            severity: Severity::Warning,
            key: "node.database".into(),
            message: format!(
                "cannot read the CRLs this node stored, so revocations it learnt from its parent are not checked: {}",
                one_line(&e)
            ),
        }),
    }
    found.extend(findings(config, &crls, time::OffsetDateTime::now_utc()));
    found.sort_by_key(|f| f.severity);
    found
}

/// `check`: the configuration, then the node's own identity. Warnings go to stderr as
/// `warning: FILE:LINE: key: …`; errors fail the command with the same block as a bad file.
async fn check(path: PathBuf) -> anyhow::Result<()> {
    use node::self_check::Severity;
    let config = load(&path)?;
    let mut found = own_findings(&config).await;
    found.extend(node::self_check::system_findings(&config));
    let located = node::config::locate(&path, found.iter().map(|f| (f.key.clone(), f.message.clone())).collect());
    let mut errors = Vec::new();
    let mut warnings = 0;
    for (finding, problem) in found.iter().zip(located) {
        if finding.severity == Severity::Error {
            errors.push(problem);
            continue;
        }
        warnings += 1;
        match problem.line {
            Some(line) => eprintln!("warning: {}:{line}: {problem}", path.display()),
            None => eprintln!("warning: {}: {problem}", path.display()),
        }
    }
    if !errors.is_empty() {
        anyhow::bail!(node::config::ConfigError { file: Some(path), problems: errors }.to_string());
    }
    let note = match warnings {
        0 => String::new(),
        1 => " (1 warning above)".into(),
        n => format!(" ({n} warnings above)"),
    };
    println!("{} is valid{note}: node {} ({}) on {}", path.display(), config.agency, config.name, config.listen);
    Ok(())
}

async fn run(path: PathBuf) -> anyhow::Result<()> {
    let config = load(&path)?;
    // What `check` would say, in the log: the node starts anyway (its neighbours decide whether
    // they take its certificate), and the health read-out keeps alerting until it is fixed.
    for f in own_findings(&config).await {
        match f.severity {
            node::self_check::Severity::Error => tracing::error!(key = %f.key, "{}", f.message),
            node::self_check::Severity::Warning => tracing::warn!(key = %f.key, "{}", f.message),
        }
    }
    let socket =
        std::net::UdpSocket::bind(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    let handle = Node::start(config, socket).await?;
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("cannot watch SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("stopping: finishing in-flight transfers");
    handle.shutdown(std::time::Duration::from_secs(10)).await;
    Ok(())
}

async fn status(path: PathBuf, json: bool) -> anyhow::Result<()> {
    let config = load(&path)?;
    // The running node knows more (uptime, answers from neighbours, attempts in flight): ask
    // it first; a node that is not running (or has no web face) is read from its database.
    let asked = match node::http::status::ask(&config).await {
        Ok(Some(health)) => Some((
            health,
            format!(
                "asked the running node at https://{}",
                config
                    .http
                    .as_ref()
                    .map(|h| node::http::status::local_address(h.listen).to_string())
                    .unwrap_or_default()
            ),
        )),
        Ok(None) => None,
        Err(e) => {
            tracing::info!(error = %e, "the running node did not answer; reading its database");
            if !json {
                eprintln!(
                    "note: the node's web face did not answer ({}); reading the database instead",
                    one_line(&e.to_string())
                );
            }
            None
        }
    };
    if let Some((health, source)) = asked {
        if json {
            println!("{}", serde_json::to_string_pretty(&health)?);
        } else {
            print!("{}", node::http::status::table(&health, &source));
        }
        return Ok(());
    }
    let read = async {
        let store = node::storage::Store::open(&config.database, &config.data_dir).await?;
        let crls = store.crls().await?;
        let trust = node::trust::Trust::new(config.anchors.clone(), Vec::new(), config.crl_freshness);
        let report = node::health::from_storage(&config, &store, &trust, &crls, time::OffsetDateTime::now_utc()).await;
        store.close().await;
        report
    };
    // One line, whatever the database said (its messages may span lines or carry escapes).
    let report = read.await.map_err(|e| {
        anyhow::anyhow!(
            "cannot read the health of {} from its storage (data {}, {} database): {}",
            config.agency,
            config.data_dir.display(),
            node::storage::Backend::of_url(&config.database).name(),
            one_line(&e.to_string())
        )
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let value = serde_json::to_value(&report)?;
        print!(
            "{}",
            node::http::status::table(&value, "read from the database: what only the running node knows is absent")
        );
    }
    Ok(())
}

/// `text` on one line: control characters (line breaks, terminal escapes) and the runs of
/// spaces they leave become single spaces.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An escape sequence: ESC [ parameters final-byte.
            if chars.peek() == Some(&'[') {
                chars.next();
                while chars.next().is_some_and(|c| !c.is_ascii_alphabetic()) {}
            }
            continue;
        }
        let c = if c.is_control() { ' ' } else { c };
        if !(c == ' ' && out.ends_with(' ')) {
            out.push(c);
        }
    }
    out.trim().to_owned()
}

async fn backup(config: PathBuf, out: PathBuf, pg_bin: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load(&config)?;
    let m = node::backup::backup(&config, &out, pg_bin.as_deref(), time::OffsetDateTime::now_utc()).await?;
    println!(
        "Backed up {} ({} database) into {}: {}, {}, {} ({} bytes), {} in the database.",
        m.agency,
        m.backend,
        out.display(),
        count(m.documents, "document"),
        count(m.receipts, "receipt"),
        count(m.attachment_files, "attachment file"),
        m.attachment_bytes,
        count(m.inline_attachments, "small attachment")
    );
    Ok(())
}

async fn restore(config: PathBuf, from: PathBuf, pg_bin: Option<PathBuf>) -> anyhow::Result<()> {
    let loaded = load(&config)?;
    let r = node::backup::restore(&loaded, &from, pg_bin.as_deref()).await?;
    println!(
        "Restored {} from {}: {}, {}, {} checked against their SHA-256, {} to resume.\nStart it with: lienthong-node run --config {}",
        loaded.agency,
        from.display(),
        count(r.documents, "document"),
        count(r.receipts, "receipt"),
        count(r.attachments_checked, "attachment"),
        count(r.pending_transfers, "transfer"),
        config.display()
    );
    Ok(())
}

/// "1 document", "2 documents".
fn count(n: impl Into<i128>, what: &str) -> String {
    let n = n.into();
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

/// Runs an async command on a fresh runtime.
fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(f)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `status` prints a read-out for a person or a script, or one line saying why it cannot:
    // no log lines beside it (LIENTHONG_LOG still turns them on).
    // `check` prints its findings itself: only warnings from libraries beside them.
    let default_log = match cli.command {
        Command::Status { .. } | Command::Completions { .. } | Command::Man { .. } => "off",
        Command::Check { .. } => "warn",
        _ => "info",
    };
    init_logging(cli.log_json, default_log);
    let result = match cli.command {
        Command::Init { agency, name, listen, parent, out } => (|| {
            let parent = match &parent {
                Some(p) => {
                    let (code, addr) = p.split_once('@').context("--parent is CODE@ADDRESS")?;
                    Some((code.parse::<pki::AgencyCode>().context("--parent")?, addr.to_owned()))
                }
                None => None,
            };
            if out.exists() {
                anyhow::bail!("{} already exists; not overwriting it", out.display());
            }
            std::fs::write(&out, template(&agency, &name, &listen, parent.as_ref().map(|(c, a)| (c, a.as_str()))))
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "Wrote {}. Put the node, seal and root certificates beside it, then: lienthong-node check --config {}",
                out.display(),
                out.display()
            );
            Ok(())
        })(),
        Command::Check { config } => block_on(check(config)),
        Command::Run { config } => block_on(run(config)),
        Command::Status { config, json } => block_on(status(config, json)),
        Command::Backup { config, out, pg_bin } => block_on(backup(config, out, pg_bin)),
        Command::Restore { config, from, pg_bin } => block_on(restore(config, from, pg_bin)),
        Command::Completions { shell } => {
            let script = manual_pages::completion_script(Cli::command(), "lienthong-node", shell);
            // A reader that stops early (`| head`) is not a failure.
            match std::io::Write::write_all(&mut std::io::stdout(), script.as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
        Command::Man { out } => manual_pages::write_pages(Cli::command(), "lienthong-node", &out).map(|written| {
            println!("Wrote {} manual pages into {}", written.len(), out.display());
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut line = e.to_string();
            for cause in e.chain().skip(1) {
                line.push_str(": ");
                line.push_str(&cause.to_string());
            }
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn errors_are_printed_on_one_clean_line() {
        assert_eq!(
            one_line("database:\n  error returned\tfrom \u{1b}[31mdatabase\u{1b}[0m:  (code: 14)\r\n"),
            "database: error returned from database: (code: 14)"
        );
        assert_eq!(one_line("plain"), "plain");
    }
}
