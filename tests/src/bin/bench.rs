//! `bench`: the document pipeline against its limits, measured in one run, printed as a table
//! (each figure next to its limit and the ratio) and written as JSON for scripts.
//!
//! `cargo run --release -p lienthong-tests --bin bench -- --json FILE [--quick] [--only verify|hops|attachments]`

use std::path::PathBuf;

use anyhow::{Context, bail};
use harness::bench::measure::Figures;
use harness::bench::{Machine, Report, attachments_only, hops_only, pipeline, verify_only};

/// The daemon's allocator (see `node/src/main.rs`): the nodes measured here run in this
/// process, so they run with the allocator they ship with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let mut json_path: Option<PathBuf> = None;
    let mut quick = false;
    let mut only: Option<&'static str> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json_path = Some(args.next().context("--json needs a file name")?.into()),
            "--quick" => quick = true,
            "--only" => match args.next().as_deref() {
                Some("verify") => only = Some("verify"),
                Some("hops") => only = Some("hops"),
                Some("attachments") => only = Some("attachments"),
                other => bail!(
                    "--only takes `verify` (the offline verification figures) or `hops` (one and four hops) or `attachments` (1 MiB to 1 GiB through two nodes), not {other:?}"
                ),
            },
            "-h" | "--help" => {
                println!("usage: bench --json FILE [--quick] [--only verify|hops|attachments]");
                return Ok(());
            }
            other => {
                bail!("unknown argument {other:?}; usage: bench --json FILE [--quick] [--only verify|hops|attachments]")
            }
        }
    }
    let json_path = json_path.context("usage: bench --json FILE [--quick] [--only verify|hops|attachments]")?;
    let machine = Machine::read(quick);
    println!(
        "lienthong pipeline benchmark{}: {} cores, {} MiB, {}, kernel {}, load {} at start, {}",
        if quick { " (--quick)" } else { "" },
        machine.cores,
        machine.memory_mib,
        machine.cpu_model,
        machine.kernel,
        machine.load_average_at_start,
        machine.date
    );
    if cfg!(debug_assertions) {
        println!("warning: a debug build; the figures mean something only with --release");
    }
    let mut figures = Figures::new();
    match only {
        Some("verify") => verify_only(&mut figures, quick),
        Some("attachments") => attachments_only(&mut figures, quick),
        Some(_) => hops_only(&mut figures, quick),
        None => pipeline(&mut figures, quick),
    }
    let text = serde_json::to_string_pretty(&Report { machine: &machine, figures: &figures.figures })?;
    std::fs::write(&json_path, text + "\n").with_context(|| format!("cannot write {}", json_path.display()))?;
    println!("\nfigures written to {}", json_path.display());
    Ok(())
}
