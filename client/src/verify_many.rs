//! `lienthong verify PATH...` with several bundles, or a directory of them: one process, one
//! set of trust material, one [`SignatureCache`] shared by every bundle, and the bundles
//! verified in parallel on every core. A verifier checking an archive of thousands of
//! documents pays for the chains and CRLs they share once, not once per document: their
//! signature checks and their parsing (a process per bundle starts cold every time: about 14
//! signature checks where a warm cache needs 2, and every certificate and CRL parsed).
//!
//! Output, in the order the paths were given (a directory's bundles sorted by name): one line
//! per bundle, `INDICATION  FILE  DOCUMENT-ID  SUB-INDICATION`, then a summary line; the rate
//! on stderr. `--json` writes a JSON array of the per-bundle reports (each with its `file`)
//! in the same order. A file that cannot be read is FAILED with its error and does not stop
//! the others. The exit status is the worst verdict's, with the codes of one bundle.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, bail};
use pki::document::validation::{Indication, ValidationReport, VerifyOptions, verify_bundle};
use pki::validate::SignatureCache;

use crate::document_cmd::{EXIT_FAILED, EXIT_INDETERMINATE, verify_options};
use crate::output::outln;

/// How many bundles one `lienthong verify` takes by default (`--max-files`): each costs a
/// path in memory before verification starts, and more than this in one run is more likely a
/// mistaken directory than an archive (split it, or raise the limit).
pub(crate) const DEFAULT_MAX_FILES: usize = 100_000;

/// The extension of a bundle: a directory contributes its files named `*.ltd`.
const BUNDLE_EXTENSION: &str = "ltd";

/// What `lienthong verify` was asked to do with several bundles (from `VerifyArgs`).
pub(crate) struct Request {
    /// The paths as given: files, or directories of `*.ltd` files.
    pub paths: Vec<PathBuf>,
    /// The trust anchor file.
    pub anchor: PathBuf,
    /// Extra CRL files, read once for every bundle.
    pub crls: Vec<PathBuf>,
    /// The validation time as given (default: now).
    pub at: Option<String>,
    /// `--danger-partial-chain`.
    pub danger_partial_chain: bool,
    /// `--json`.
    pub json: bool,
    /// `--max-files`.
    pub max_files: usize,
    /// How many `--log-proof` files were given (a proof is of one document: refused here).
    pub log_proofs: usize,
}

/// Whether `paths` asks for the many-bundles mode: more than one path, or a directory.
pub(crate) fn is_many(first: &Path, more: &[PathBuf]) -> bool {
    !more.is_empty() || first.is_dir()
}

/// The bundles `paths` name, in order: a file as given, a directory's `*.ltd` entries sorted
/// by name (not recursive; subdirectories are skipped). Refuses more than `max` in all,
/// before reading further.
pub(crate) fn bundles(paths: &[PathBuf], max: usize) -> anyhow::Result<Vec<PathBuf>> {
    let too_many = || {
        anyhow::anyhow!(
            "more than {max} bundles to verify; give fewer paths or a higher --max-files (default {DEFAULT_MAX_FILES})"
        )
    };
    let mut out = Vec::new();
    for path in paths {
        if !path.is_dir() {
            if out.len() == max {
                return Err(too_many());
            }
            out.push(path.clone());
            continue;
        }
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))? {
            let entry = entry.with_context(|| format!("cannot list {}", path.display()))?;
            let name = entry.file_name();
            if Path::new(&name).extension().is_none_or(|e| e != BUNDLE_EXTENSION) {
                continue;
            }
            // A dangling link stays in: it is a bundle that cannot be read, reported as such.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if out.len() + names.len() == max {
                return Err(too_many());
            }
            names.push(name);
        }
        names.sort();
        out.extend(names.into_iter().map(|n| path.join(n)));
    }
    if out.is_empty() {
        bail!("no bundle to verify: {} holds no *.{BUNDLE_EXTENSION} file", describe(paths));
    }
    Ok(out)
}

fn describe(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// One bundle's result, as the printing thread needs it: the line's fields, and the JSON
/// entry already serialized by the worker (serialization runs in parallel too).
struct Outcome {
    indication: Indication,
    document_id: Option<String>,
    /// The sub-indication, or the error that kept the file from being verified.
    detail: Option<String>,
    json: Option<String>,
}

/// A report in the JSON array: the report as `verify --json` prints it, plus the file.
#[derive(serde::Serialize)]
struct Entry<'a> {
    file: String,
    #[serde(flatten)]
    report: &'a ValidationReport,
}

/// A file that could not be verified, in the JSON array.
#[derive(serde::Serialize)]
struct Unreadable {
    file: String,
    indication: Indication,
    error: String,
}

fn verify_one(path: &Path, options: &VerifyOptions, json: bool) -> Outcome {
    let report = File::open(path)
        .with_context(|| format!("cannot open {}", path.display()))
        .and_then(|f| verify_bundle(BufReader::new(f), options).with_context(|| format!("{}", path.display())));
    match report {
        Ok(report) => Outcome {
            indication: report.indication(),
            document_id: report.document_id.clone(),
            detail: report.sub_indication().map(|s| s.to_string()),
            json: json.then(|| {
                let file = path.display().to_string();
                serde_json::to_string_pretty(&Entry { file: file.clone(), report: &report }).unwrap_or_else(|e| {
                    let error = format!("cannot write the report: {e}");
                    serde_json::json!({ "file": file, "indication": report.indication(), "error": error }).to_string()
                })
            }),
        },
        Err(error) => {
            let error = crate::one_line(&error);
            Outcome {
                indication: Indication::Failed,
                document_id: None,
                json: json.then(|| {
                    let entry = Unreadable {
                        file: path.display().to_string(),
                        indication: Indication::Failed,
                        error: error.clone(),
                    };
                    serde_json::to_string_pretty(&entry).unwrap_or_else(|_| {
                        let Unreadable { file, indication, error } = entry;
                        serde_json::json!({ "file": file, "indication": indication, "error": error }).to_string()
                    })
                }),
                detail: Some(error),
            }
        }
    }
}

/// Counts of each verdict, for the summary and the exit status.
#[derive(Default)]
struct Tally {
    passed: usize,
    indeterminate: usize,
    failed: usize,
}

impl Tally {
    fn add(&mut self, indication: Indication) {
        match indication {
            Indication::Passed => self.passed += 1,
            Indication::Indeterminate => self.indeterminate += 1,
            Indication::Failed => self.failed += 1,
        }
    }

    fn total(&self) -> usize {
        self.passed + self.indeterminate + self.failed
    }

    fn summary(&self) -> String {
        format!(
            "{} bundles: {} PASSED, {} INDETERMINATE, {} FAILED",
            self.total(),
            self.passed,
            self.indeterminate,
            self.failed
        )
    }

    fn exit_code(&self) -> ExitCode {
        if self.failed > 0 {
            ExitCode::from(EXIT_FAILED)
        } else if self.indeterminate > 0 {
            ExitCode::from(EXIT_INDETERMINATE)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// Prints one outcome (the `index`-th of the run) and counts it.
fn print(path: &Path, outcome: &Outcome, index: usize, json: bool) -> anyhow::Result<()> {
    if json {
        let separator = if index == 0 { "" } else { "," };
        return outln!("{separator}{}", outcome.json.as_deref().unwrap_or("null"));
    }
    let mut line =
        format!("{}  {}  {}", outcome.indication, path.display(), outcome.document_id.as_deref().unwrap_or("-"));
    if let Some(detail) = &outcome.detail {
        line.push_str("  ");
        line.push_str(detail);
    }
    outln!("{line}")
}

/// `lienthong verify` on several bundles (see the module's documentation).
pub(crate) fn verify(request: Request) -> anyhow::Result<ExitCode> {
    if request.log_proofs > 0 {
        bail!("--log-proof goes with one bundle: a log proof is of one document's envelope");
    }
    let files = bundles(&request.paths, request.max_files)?;
    let mut options =
        verify_options(&request.anchor, request.danger_partial_chain, request.at.as_deref(), &request.crls)?;
    options.cache = Some(Arc::new(SignatureCache::default()));

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(files.len());
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let mut tally = Tally::default();
    let printed = std::thread::scope(|s| -> anyhow::Result<()> {
        let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
        for _ in 0..threads {
            let tx = tx.clone();
            let (files, options, next, stop) = (&files, &options, &next, &stop);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else { break };
                    if tx.send((i, verify_one(path, options, request.json))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Results arrive in any order; each is printed once those before it have been.
        let result = (|| {
            if request.json {
                outln!("[")?;
            }
            let mut pending = BTreeMap::new();
            let mut due = 0;
            for (i, outcome) in &rx {
                pending.insert(i, outcome);
                while let Some(outcome) = pending.remove(&due) {
                    tally.add(outcome.indication);
                    print(&files[due], &outcome, due, request.json)?;
                    due += 1;
                }
            }
            if request.json {
                outln!("]")?;
            }
            Ok(())
        })();
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        result
    });
    let elapsed = start.elapsed().as_secs_f64();
    match printed {
        Err(e) if crate::output::is_closed(&e) => {}
        Err(e) => return Err(e),
        Ok(()) if request.json => eprintln!("{}", tally.summary()),
        Ok(()) => {
            outln!("{}", tally.summary()).or_else(|e| if crate::output::is_closed(&e) { Ok(()) } else { Err(e) })?
        }
    }
    eprintln!(
        "verified {} bundles in {elapsed:.2} s: {:.0} bundles/s on {threads} threads",
        tally.total(),
        tally.total() as f64 / elapsed.max(f64::EPSILON)
    );
    Ok(tally.exit_code())
}
