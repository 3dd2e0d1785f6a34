//! The clerk's everyday commands against the agency's own node: send, inbox, show, fetch,
//! status, track, recall, and revoke/update/replace.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use lienthong_protocol::clerk_client::{ClerkClient, ClerkError};
use lienthong_protocol::wire::{DocumentSummary, ErrorKind, RouteOutcome};
use pki::document::bundle::{Bundle, BundleLimits, Carried, write_bundle_carrying};
use pki::document::validation::{Indication, Poe, PoeEvidence, VerifyOptions, verify_bundle};
use pki::document::{Envelope, Manifest, ReceiptKind, SignedReceipt, StatusCode};
use pki::{AgencyCode, Profile as CertProfile};

use crate::document_cmd::SigningIdentity;
use crate::form::{BusinessAct, BusinessInput, CodeOrName, DateInput, Form, SignerDefaults, read_form};
use crate::outgoing::{Pending, Source};
use crate::outln;
use crate::profile::{Profile, Profiles};
use crate::secret::PassphraseSource;
use crate::timefmt::{human, human_millis, machine, now};

/// Runs async clerk work on a small runtime: the CLI is one request at a time.
fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

fn profile(name: Option<&str>) -> anyhow::Result<Profile> {
    Ok(Profiles::load()?.select(name)?.1)
}

/// Explains a node's refusal in the clerk's terms.
fn refused(e: ClerkError) -> anyhow::Error {
    match e {
        ClerkError::Refused { message, .. } => anyhow::anyhow!("the node refused: {message}"),
        other => anyhow::Error::new(other),
    }
}

/// The document fields as flags; each overrides the form.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct DocumentFlags {
    /// A form file (TOML or JSON) with the document's fields.
    #[arg(long)]
    form: Option<PathBuf>,
    /// A recipient agency code (repeat for several).
    #[arg(long = "to", value_name = "CODE")]
    to: Vec<String>,
    /// Number (số).
    #[arg(long)]
    number: Option<u32>,
    /// Notation (ký hiệu), e.g. UBND-VP.
    #[arg(long)]
    notation: Option<String>,
    /// Type name, e.g. "Công văn" (the default), "Quyết định".
    #[arg(long = "type", value_name = "NAME")]
    type_name: Option<String>,
    /// legal-normative or administrative (the default).
    #[arg(long)]
    kind: Option<String>,
    /// Subject (trích yếu), at most 500 characters.
    #[arg(long)]
    subject: Option<String>,
    /// Promulgation place (địa danh).
    #[arg(long)]
    place: Option<String>,
    /// Promulgation date (default: today in Vietnam).
    #[arg(long, value_name = "DATE")]
    date: Option<String>,
    /// Due date for handling.
    #[arg(long, value_name = "DATE")]
    due: Option<String>,
    /// 0-4 or thường, khẩn, thượng khẩn, hỏa tốc, hỏa tốc hẹn giờ.
    #[arg(long)]
    urgency: Option<String>,
    /// An attachment (repeat for several).
    #[arg(long = "attach", value_name = "FILE")]
    attachments: Vec<PathBuf>,
}

impl DocumentFlags {
    fn form(&self) -> anyhow::Result<Form> {
        let mut form = match &self.form {
            Some(p) => read_form(p)?,
            None => Form::default(),
        };
        if !self.to.is_empty() {
            form.to = self.to.clone();
        }
        let set = |slot: &mut Option<String>, v: &Option<String>| {
            if v.is_some() {
                slot.clone_from(v);
            }
        };
        if self.number.is_some() {
            form.number = self.number;
        }
        set(&mut form.notation, &self.notation);
        set(&mut form.type_name, &self.type_name);
        set(&mut form.subject, &self.subject);
        set(&mut form.place, &self.place);
        if let Some(d) = &self.date {
            form.date = Some(DateInput::Text(d.clone()));
        }
        if let Some(d) = &self.due {
            form.due = Some(DateInput::Text(d.clone()));
        }
        if let Some(k) = &self.kind {
            form.kind = Some(CodeOrName::Name(k.clone()));
        }
        if let Some(u) = &self.urgency {
            form.urgency = Some(match u.parse::<u64>() {
                Ok(n) => CodeOrName::Code(n),
                Err(_) => CodeOrName::Name(u.clone()),
            });
        }
        Ok(form)
    }
}

/// Passphrase options for the keys a clerk signs with.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct SigningPassphrases {
    /// Environment variable holding the official's key passphrase.
    #[arg(long, value_name = "VAR")]
    passphrase_env: Option<String>,
    /// File holding the official's key passphrase.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Environment variable holding the seal key's passphrase (if encrypted).
    #[arg(long, value_name = "VAR")]
    seal_passphrase_env: Option<String>,
    /// File holding the seal key's passphrase (if encrypted).
    #[arg(long, value_name = "FILE")]
    seal_passphrase_file: Option<PathBuf>,
}

/// Arguments of `lienthong send` (and of revoke/update/replace).
#[derive(Args, Debug)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    document: DocumentFlags,
    /// A bundle the official already signed (from `lienthong sign`): seal it and send it.
    #[arg(long, value_name = "BUNDLE", conflicts_with = "form")]
    draft: Option<PathBuf>,
    #[command(flatten)]
    passphrases: SigningPassphrases,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `lienthong send`: a new document, or one kept from an earlier attempt.
#[derive(Args, Debug)]
pub(crate) struct SendCommandArgs {
    #[command(flatten)]
    send: SendArgs,
    /// Send again a signed document whose answer was lost or that the node could not take
    /// (its id, or a prefix of its SHA-256 from --pending): the same signed bytes, so the
    /// node takes it once whatever happened before.
    #[arg(long, value_name = "ID", conflicts_with_all = ["form", "to", "draft", "attachments", "pending"])]
    resume: Option<String>,
    /// List the signed documents kept because the node has not confirmed them.
    #[arg(long)]
    pending: bool,
}

/// `lienthong send`.
pub(crate) fn send_command(profile_name: Option<&str>, a: SendCommandArgs) -> anyhow::Result<()> {
    if a.pending {
        return list_pending(a.send.json);
    }
    if let Some(what) = &a.resume {
        let p = profile(profile_name)?;
        let pending = Pending::find(what)?;
        if pending.agency != p.agency {
            bail!(
                "{} was signed for {}, but this profile sends for {} (pick the right one with --profile)",
                pending.document,
                pending.agency,
                p.agency
            );
        }
        let envelope = Envelope::from_bytes(&pending.envelope)?;
        let manifest = envelope.manifest()?;
        let scratch = private_tempdir("resume")?;
        let paths = pending.attachment_files(&manifest.attachments, scratch.path())?;
        return submit(p, envelope, pending, paths, a.send.json, true);
    }
    send(profile_name, a.send, None)
}

/// `lienthong send --pending`.
fn list_pending(json: bool) -> anyhow::Result<()> {
    let pending = Pending::list()?;
    if json {
        let list: Vec<serde_json::Value> = pending
            .iter()
            .map(|p| {
                serde_json::json!({
                    "document": p.document, "envelope_sha256": p.digest, "from": p.agency,
                    "to": p.to, "subject": p.subject, "signed_at": p.signed_at,
                })
            })
            .collect();
        outln!("{}", serde_json::Value::Array(list))?;
        return Ok(());
    }
    if pending.is_empty() {
        outln!("No signed document is waiting: the node confirmed everything sent from here.")?;
        return Ok(());
    }
    outln!("Signed, not yet confirmed by the node (send each with `lienthong send --resume ID`):")?;
    for p in &pending {
        let signed = time::OffsetDateTime::parse(&p.signed_at, &time::format_description::well_known::Rfc3339)
            .map(human)
            .unwrap_or_else(|_| p.signed_at.clone());
        outln!("  {}  sha256 {}  signed {}", p.document, p.digest.get(..16).unwrap_or(&p.digest), signed)?;
        outln!("      to {}: {}", p.to.join(", "), p.subject)?;
    }
    Ok(())
}

/// Refuses to sign a new document whose id is already signed and waiting: the node would
/// refuse the second one as a different document with the same id.
fn refuse_if_pending(document: &str) -> anyhow::Result<()> {
    if let Some(earlier) = Pending::with_id(document)? {
        bail!(
            "{document} was already signed (at {}) and the node has not confirmed it; send that one with `lienthong send --resume \"{document}\"` instead of signing it again",
            earlier.signed_at
        );
    }
    Ok(())
}

/// Asks the node, before anything is signed, whether every recipient can be reached, and
/// refuses a recipient no node serves, with the reason. The answer is advice: when the node
/// cannot be asked (it is down, or too old to know the question) or a node on the way is
/// down, the send goes on — the document is kept and retried — and stderr says so.
fn check_recipients(p: &Profile, to: &[AgencyCode]) -> anyhow::Result<()> {
    let answers = block_on_value(async {
        let client = p.connect().await?;
        let answers = client.route(to).await;
        client.close().await;
        Ok(answers)
    });
    let answers = match answers {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            eprintln!("note: the node could not say whether the recipients can be reached ({e}); sending anyway");
            return Ok(());
        }
        // Not reachable now: `submit` keeps the signed document and says how to resend it.
        Err(_) => return Ok(()),
    };
    let mut refused = Vec::new();
    for a in &answers {
        match &a.outcome {
            RouteOutcome::Reachable { .. } => {}
            RouteOutcome::NoRoute { path, reason } => {
                let at = path.last().map(String::as_str).unwrap_or("the node");
                refused.push(format!("{}: the node of {at} has no route to it ({reason})", a.recipient));
            }
            RouteOutcome::Unconfirmed { path, next_hop, reason } => {
                let at = path.last().map(String::as_str).unwrap_or("the node");
                eprintln!(
                    "note: {} could not be confirmed: the node of {at} could not ask {next_hop} ({reason}); the document will wait there and be retried",
                    a.recipient
                );
            }
        }
    }
    if !refused.is_empty() {
        bail!(
            "no node serves {} — {}. Nothing was signed; check the recipient code(s)",
            if refused.len() == 1 { "this recipient" } else { "these recipients" },
            refused.join("; ")
        );
    }
    Ok(())
}

/// Like [`block_on`], for work that returns a value.
fn block_on_value<T, F: std::future::Future<Output = anyhow::Result<T>>>(f: F) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

/// What a later document does to an earlier one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Acting {
    Revoke,
    Update,
    Replace,
}

/// `lienthong send`, and with `acting`, revoke/update/replace of `target`.
pub(crate) fn send(profile_name: Option<&str>, a: SendArgs, acting: Option<(Acting, String)>) -> anyhow::Result<()> {
    let p = profile(profile_name)?;
    let seal_source = PassphraseSource {
        env: a.passphrases.seal_passphrase_env.clone(),
        file: a.passphrases.seal_passphrase_file.clone(),
    };
    let person_source =
        PassphraseSource { env: a.passphrases.passphrase_env.clone(), file: a.passphrases.passphrase_file.clone() };
    let seal = p.seal(&seal_source)?.context(
        "this profile has no seal (add --seal-cert and --seal-key to the profile); a document leaves the agency sealed",
    )?;
    let t = now();

    // Build and check everything before any signature is made. A draft's attachments are
    // unpacked into a private temporary directory, removed when `_unpacked` goes.
    let mut _unpacked = None;
    let mut sources = Vec::new();
    let (envelope, attachment_paths, crls) = match &a.draft {
        Some(draft) => {
            let file = File::open(draft).with_context(|| format!("cannot open {}", draft.display()))?;
            let mut bundle = Bundle::open(BufReader::new(file), BundleLimits::default())
                .with_context(|| format!("{}", draft.display()))?;
            if seal.agency() != Some(bundle.manifest.from) {
                bail!("the draft is from {}, but this profile's seal is of {}", bundle.manifest.from, p.agency);
            }
            refuse_if_pending(&bundle.manifest.id().to_string())?;
            check_recipients(&p, &bundle.manifest.to)?;
            let draft_path = std::path::absolute(draft).with_context(|| format!("{}", draft.display()))?;
            sources = bundle
                .manifest
                .attachments
                .iter()
                .map(|a| (a.name.clone(), Source::Draft(draft_path.clone())))
                .collect();
            // Copying checks each attachment's size and SHA-256 against the manifest.
            let dir = private_tempdir("draft")?;
            let mut paths = Vec::new();
            for att in bundle.manifest.attachments.clone() {
                let path = dir.path().join(&att.name);
                let mut out = File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
                bundle.copy_attachment(&att.name, &mut out).with_context(|| format!("{}", draft.display()))?;
                paths.push(path);
            }
            _unpacked = Some(dir);
            (bundle.envelope.add_seal(&seal.key, &seal.chain, t)?, paths, bundle.crls.clone())
        }
        None => {
            let mut form = a.document.form()?;
            if let Some((act, target)) = &acting {
                let target = target
                    .parse::<pki::document::DocumentId>()
                    .map_err(anyhow::Error::msg)
                    .context("the earlier document's id")?;
                let id = target.to_string();
                form.business = Some(BusinessInput::Acting(match act {
                    Acting::Revoke => BusinessAct { revoke: Some(id), update: None, replace: None },
                    Acting::Update => BusinessAct { revoke: None, update: Some(id), replace: None },
                    Acting::Replace => BusinessAct { revoke: None, update: None, replace: Some(id) },
                }));
            }
            let (person_key, person_cert) = match (&p.person_key, &p.person_cert) {
                (Some(k), Some(c)) => (k.clone(), c.clone()),
                _ => bail!(
                    "this profile has no official's key: the official signs with `lienthong sign` and you send the draft with --draft"
                ),
            };
            let person_chain = crate::document_cmd::signing_chain(&person_cert, CertProfile::Person)?;
            let leaf = &person_chain[0];
            let defaults =
                SignerDefaults { from: p.agency()?, name: leaf.common_name.clone(), position: leaf.title.clone() };
            let manifest = form.to_manifest(&a.document.attachments, &defaults)?;
            refuse_if_pending(&manifest.id().to_string())?;
            check_recipients(&p, &manifest.to)?;
            for att in &manifest.attachments {
                let path = crate::form::attachment_path(&a.document.attachments, &att.name)
                    .with_context(|| format!("attachment {} not found", att.name))?;
                let path = std::path::absolute(path).with_context(|| format!("{}", path.display()))?;
                sources.push((att.name.clone(), Source::File(path)));
            }
            let person =
                SigningIdentity::with_key(person_chain, &person_key, &person_cert, &person_source, "--passphrase")?;
            let envelope = Envelope::sign_person(&manifest.to_cbor()?, &person.key, &person.chain, t)?.add_seal(
                &seal.key,
                &seal.chain,
                t,
            )?;
            (envelope, a.document.attachments.clone(), Vec::new())
        }
    };
    // Kept before anything leaves this machine: whatever happens to the answer, the same
    // signed bytes can be sent again.
    let pending = Pending::keep(&envelope, &crls, sources, t)?;
    submit(p, envelope, pending, attachment_paths, a.json, false)
}

/// Submits a kept document and settles its spool entry by the answer: confirmed or refused
/// for good, the entry goes; anything else keeps it and says how to send it again.
fn submit(
    p: Profile,
    envelope: Envelope,
    pending: Pending,
    attachment_paths: Vec<PathBuf>,
    json: bool,
    resumed: bool,
) -> anyhow::Result<()> {
    let manifest = envelope.manifest()?;
    let total: u64 = manifest.attachments.iter().map(|x| x.size).sum();
    let id = manifest.id().to_string();
    let again = format!("lienthong send --resume \"{id}\"");
    block_on(async move {
        let client = match p.connect().await {
            Ok(c) => c,
            Err(e) => {
                return Err(e.context(format!(
                    "nothing was sent; {id} is signed and kept here: when the node is reachable, send it with `{again}`"
                )));
            }
        };
        let bar = progress(total);
        let mut index = 0;
        let paths = attachment_paths.clone();
        let names: Vec<String> = manifest.attachments.iter().map(|x| x.name.clone()).collect();
        let result = client
            .submit_at(
                envelope.as_bytes(),
                pending.crls.clone(),
                |att, offset| {
                    // Attachments go in manifest order; find each by name. A resumed upload
                    // starts where the node says its earlier attempt broke off.
                    let path = crate::form::attachment_path(&paths, &att.name);
                    index += 1;
                    let path =
                        path.ok_or_else(|| std::io::Error::other(format!("attachment {} not found", att.name)))?;
                    let mut file = File::open(path)
                        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
                    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset))
                        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
                    bar.inc(offset);
                    Ok(tokio::io::BufReader::new(tokio::fs::File::from_std(file)))
                },
                |n| bar.inc(n),
            )
            .await;
        bar.finish_and_clear();
        client.close().await;
        let (id, digest) = match result {
            Ok(answer) => {
                pending.done()?;
                answer
            }
            Err(ClerkError::Refused { kind: ErrorKind::Unavailable, message }) => {
                bail!(
                    "the node could not take {id} now: {message}. The signed document is kept here: send it again with `{again}`"
                )
            }
            Err(ClerkError::Refused { message, .. }) => {
                // Refused for good: the same bytes would be refused again.
                pending.done()?;
                bail!("the node refused {id}: {message}")
            }
            Err(ClerkError::Io(e)) => {
                bail!(
                    "{e}; {id} was not sent in full, and the signed document is kept here: send it again with `{again}`"
                )
            }
            Err(e) => bail!(
                "unknown whether the node took {id}: {e}. Retry with `{again}`: it sends the same signed document, and a node that already has it only confirms it"
            ),
        };
        if json {
            outln!(
                "{}",
                serde_json::json!({ "document": id, "envelope_sha256": digest, "attachments": names, "resumed": resumed })
            )?;
        } else {
            outln!("Sent {id}")?;
            outln!("  to:       {}", manifest.to.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))?;
            outln!("  subject:  {}", manifest.subject)?;
            outln!("  follow it with: lienthong track \"{id}\"")?;
        }
        Ok(())
    })
}

/// A temporary directory only this user can read, removed when dropped (also on errors).
fn private_tempdir(what: &str) -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("lienthong-{what}-"))
        .tempdir()
        .with_context(|| format!("cannot create a temporary directory in {}", std::env::temp_dir().display()))
}

/// A byte counter for a transfer whose size is learnt as it goes (fetch), shown on a
/// terminal only.
fn progress_unknown() -> ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}") {
        bar.set_style(style);
    }
    bar
}

fn progress(total: u64) -> ProgressBar {
    use std::io::IsTerminal;
    if total < 1024 * 1024 || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}") {
        bar.set_style(style);
    }
    bar
}

/// Arguments of `lienthong inbox`.
#[derive(Args, Debug)]
pub(crate) struct InboxArgs {
    /// Only urgent documents (khẩn and above).
    #[arg(long)]
    urgent: bool,
    /// Only documents from this agency (or its subtree).
    #[arg(long, value_name = "CODE")]
    from: Option<AgencyCode>,
    /// Only documents without a status yet (not acknowledged).
    #[arg(long)]
    new: bool,
    /// Show documents sent instead of received.
    #[arg(long)]
    sent: bool,
    /// Most documents to list.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn status_name(code: Option<u8>) -> String {
    match code.and_then(|c| StatusCode::from_code(u64::from(c))) {
        Some(s) => s.name().to_owned(),
        None => "new".to_owned(),
    }
}

/// A sent document still in the node's outbox: `sending`, or `sending (retrying: …)` with
/// the hop, the attempts, the last error and when the next attempt is due.
fn sending(waiting: &[lienthong_protocol::wire::Waiting]) -> String {
    let retrying: Vec<String> = waiting
        .iter()
        .filter(|w| w.attempts > 0)
        .map(|w| {
            format!(
                "{} attempt(s) to {}, last: {}; next at {}",
                w.attempts,
                w.next_hop,
                w.last_error.as_deref().unwrap_or("no answer"),
                human_millis(w.next_attempt_ms)
            )
        })
        .collect();
    if retrying.is_empty() { "sending".to_owned() } else { format!("sending (retrying: {})", retrying.join("; ")) }
}

/// Pads or cuts text to `width` characters (NFC Vietnamese is one column per character).
fn cell(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count > width {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    } else {
        format!("{text}{}", " ".repeat(width - count))
    }
}

fn urgency_name(code: u8) -> &'static str {
    pki::document::Urgency::from_code(u64::from(code)).map_or("?", pki::document::Urgency::name_vi)
}

/// `lienthong inbox`.
pub(crate) fn inbox(profile_name: Option<&str>, a: InboxArgs) -> anyhow::Result<()> {
    let p = profile(profile_name)?;
    block_on(async move {
        let client = p.connect().await?;
        // The filters are applied here, so with one set ask for everything the node lists (its
        // most, 10,000) and keep the first `limit` that pass.
        let filtered = a.urgent || a.new || a.from.is_some();
        let asked = if filtered { 10_000 } else { a.limit };
        let mut entries = if a.sent { client.sent(asked).await } else { client.inbox(asked).await }.map_err(refused)?;
        client.close().await;
        entries.retain(|e| {
            (!a.urgent || e.urgency >= 1)
                && (!a.new || e.status.is_none())
                && a.from.is_none_or(|f| e.sender.parse::<AgencyCode>().is_ok_and(|s| s.is_within(&f)))
        });
        entries.truncate(a.limit as usize);
        if a.json {
            // The node's fields as they are, plus the time in RFC 3339 UTC for programs.
            let list: Vec<serde_json::Value> = entries
                .iter()
                .map(|e| {
                    let mut v = serde_json::to_value(e).unwrap_or_default();
                    if let (Some(map), Ok(t)) = (
                        v.as_object_mut(),
                        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.at_ms) * 1_000_000),
                    ) {
                        map.insert("at".into(), machine(t).into());
                    }
                    v
                })
                .collect();
            outln!("{}", serde_json::to_string_pretty(&list)?)?;
            return Ok(());
        }
        print_table(&entries, a.sent)
    })
}

fn print_table(entries: &[DocumentSummary], sent: bool) -> anyhow::Result<()> {
    if entries.is_empty() {
        outln!("{}", if sent { "Nothing sent yet." } else { "The inbox is empty." })?;
        return Ok(());
    }
    let who = if sent { "To" } else { "From" };
    let when = if sent { "Sent" } else { "Arrived" };
    outln!("{when:<26} {:<15} {who:<48} {:<14} {:<40} {:<10} Status", "Urgency", "Number", "Subject", "Due")?;
    for e in entries {
        let at = human_millis(e.at_ms);
        let party = if sent { e.recipients.join(", ") } else { format!("{} {}", e.sender, e.sender_name) };
        let mut status = match (sent, e.status, e.waiting.as_slice()) {
            (true, None, [_, ..]) => sending(&e.waiting),
            // Handed to the next hop (its hop receipt is kept), no arrival yet.
            (true, None, []) => "in transit".to_owned(),
            _ => status_name(e.status),
        };
        if e.provisional {
            status.push_str(" (provisional)");
        }
        if e.recall_requested {
            status.push_str(", recall requested");
        }
        if let Some(s) = &e.superseded {
            status.push_str(&format!(", {s}"));
        }
        outln!(
            "{} {} {} {} {} {:<10} {}",
            cell(&at, 26),
            cell(urgency_name(e.urgency), 15),
            cell(&party, 48),
            cell(&e.number, 14),
            cell(&e.subject, 40),
            e.due.as_deref().unwrap_or("-"),
            status
        )?;
        outln!("{:>27}id: {}", "", e.document)?;
    }
    Ok(())
}

/// Fetches a document into `dir`: every attachment checked against its SHA-256 as it is
/// written (under a temporary name, moved into place only when it matches), then the bundle
/// assembled and verified. Returns the bundle's path.
pub(crate) async fn fetch_into(
    client: &ClerkClient,
    document: &str,
    evidence: bool,
    dir: &Path,
) -> anyhow::Result<PathBuf> {
    fetch_with_progress(client, document, evidence, dir, &ProgressBar::hidden()).await
}

/// [`fetch_into`], counting the attachment bytes on `bar` as they are written.
async fn fetch_with_progress(
    client: &ClerkClient,
    document: &str,
    evidence: bool,
    dir: &Path,
    bar: &ProgressBar,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let written: std::sync::Arc<std::sync::Mutex<Vec<PathBuf>>> = Default::default();
    let fetched = client
        .fetch(document, evidence, |att, mut recv| {
            let (dir, written, bar) = (dir.to_owned(), written.clone(), bar.clone());
            // The sizes are known one attachment at a time: the bar grows with each.
            bar.inc_length(att.size);
            async move {
                pki::document::manifest::check_attachment_name(&att.name)
                    .map_err(|p| ClerkError::Protocol(format!("attachment name {:?} {p}", att.name)))?;
                let partial = dir.join(format!(".{}.partial", att.name));
                let named = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", partial.display()));
                let mut out = File::create(&partial).map_err(named)?;
                let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
                let mut remaining = att.size;
                let mut buf = vec![0u8; 64 * 1024];
                while remaining > 0 {
                    let want = buf.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    let n = recv
                        .read(&mut buf[..want])
                        .await
                        .map_err(|e| ClerkError::Transport(e.to_string()))?
                        .ok_or_else(|| ClerkError::Transport("the node stopped mid-attachment".into()))?;
                    ctx.update(&buf[..n]);
                    out.write_all(&buf[..n]).map_err(named)?;
                    remaining -= n as u64;
                    bar.inc(n as u64);
                }
                if ctx.finish().as_ref() != att.sha256 {
                    let _ = std::fs::remove_file(&partial);
                    return Err(ClerkError::Protocol(format!(
                        "attachment {:?} does not match its SHA-256 (altered); not saved",
                        att.name
                    )));
                }
                out.sync_all().map_err(named)?;
                let target = dir.join(&att.name);
                std::fs::rename(&partial, &target).map_err(named)?;
                written.lock().map_err(|_| ClerkError::Protocol("poisoned".into()))?.push(target);
                Ok(recv)
            }
        })
        .await
        .map_err(refused)?;
    let envelope = Envelope::from_bytes(&fetched.envelope)?;
    let manifest = envelope.manifest()?;
    let bundle_path = dir.join(format!("{}.{}", safe_name(&manifest), pki::document::bundle::BUNDLE_EXTENSION));
    let tmp = bundle_path.with_extension("ltd.partial");
    let out = std::io::BufWriter::new(File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?);
    // The log proofs are evidence gathered from other nodes: whatever would not fit a bundle
    // is left out rather than refusing the document.
    let limits = BundleLimits::default();
    let log_proofs: Vec<Vec<u8>> = fetched
        .log_proofs
        .iter()
        .filter(|p| p.len() <= pki::tlog::MAX_LOG_PROOF_BYTES)
        .take(limits.max_log_proofs)
        .cloned()
        .collect();
    let carried = Carried { crls: &fetched.crls, receipts: &fetched.receipts, log_proofs: &log_proofs };
    let writer = write_bundle_carrying(out, limits, &envelope, carried, |att, w| {
        let mut f = File::open(dir.join(&att.name))?;
        std::io::copy(&mut f, w)?;
        Ok(())
    })?;
    writer
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", tmp.display(), e.error()))?
        .sync_all()
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &bundle_path).with_context(|| format!("cannot write {}", bundle_path.display()))?;
    Ok(bundle_path)
}

/// A file name for a document: number and notation, and the date.
fn safe_name(m: &Manifest) -> String {
    let raw = format!("{}-{}-{}", m.number, m.notation, m.date);
    raw.chars().map(|c| if c.is_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// Arguments of `lienthong fetch`.
#[derive(Args, Debug)]
pub(crate) struct FetchArgs {
    /// The document id.
    document: String,
    /// Where to write the bundle and the attachments.
    #[arg(long)]
    out: PathBuf,
    /// Complete the transparency-log evidence first: the node runs a checkpoint round so that
    /// its own entry is co-signed and proven too (every fetch brings the hop receipts and log
    /// proofs the other nodes on the path hold; a node that is down costs a few seconds at most).
    #[arg(long)]
    evidence: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `lienthong fetch`.
pub(crate) fn fetch(profile_name: Option<&str>, a: FetchArgs) -> anyhow::Result<()> {
    let p = profile(profile_name)?;
    block_on(async move {
        let client = p.connect().await?;
        let bar = progress_unknown();
        let path = fetch_with_progress(&client, &a.document, a.evidence, &a.out, &bar).await;
        bar.finish_and_clear();
        client.close().await;
        let path = path?;
        let options = verify_options(&p)?;
        let report = verify_bundle(BufReader::new(File::open(&path)?), &options)?;
        let verdict = crate::report::verdict(&report.total);
        let why = report.total.leading().map(|r| crate::timefmt::localize(&r.message)).unwrap_or_default();
        if report.indication() == Indication::Failed {
            bail!("the fetched document is {verdict}: {why}");
        }
        let document = report.document_id.clone().unwrap_or_else(|| a.document.clone());
        if a.json {
            let attachments: Vec<serde_json::Value> = report
                .attachments
                .iter()
                .map(|at| {
                    serde_json::json!({
                        "name": at.attachment.name,
                        "path": a.out.join(&at.attachment.name),
                        "size": at.attachment.size,
                        "sha256": hex::encode(at.attachment.sha256),
                    })
                })
                .collect();
            let out = serde_json::json!({
                "document": document,
                "bundle": path,
                "indication": report.indication(),
                "sub_indication": report.sub_indication(),
                "attachments": attachments,
                "log_proofs": logged(&report).map(logged_json).collect::<Vec<_>>(),
            });
            outln!("{}", serde_json::to_string_pretty(&out)?)?;
            return Ok(());
        }
        outln!("Fetched {document} into {}", a.out.display())?;
        outln!("  validation:  {verdict}{}", if why.is_empty() { String::new() } else { format!(" — {why}") })?;
        outln!("  bundle:      {}", path.display())?;
        for at in &report.attachments {
            outln!(
                "  attachment:  {} ({} bytes, intact)",
                a.out.join(&at.attachment.name).display(),
                at.attachment.size
            )?;
        }
        for proof in logged(&report) {
            outln!("  logged:      {}", crate::timefmt::localize(&proof.to_string()))?;
        }
        Ok(())
    })
}

/// The log proofs a report counted: which node's log holds the document at which entry, and
/// who co-signed that log when (the verifier's reading, not the node's word).
fn logged(report: &pki::document::validation::ValidationReport) -> impl Iterator<Item = &Poe> {
    report.proofs_of_existence.iter().filter(|p| matches!(p.evidence, PoeEvidence::LogCheckpoint { .. }))
}

/// A counted log proof for `fetch --json`.
fn logged_json(p: &Poe) -> serde_json::Value {
    let PoeEvidence::LogCheckpoint { log, leaf, tree_size, .. } = &p.evidence else { return serde_json::Value::Null };
    serde_json::json!({
        "log": log,
        "entry": leaf,
        "tree_size": tree_size,
        "cosigned_by": p.by.to_string(),
        "cosigned_at": pki::format_utc(p.time),
    })
}

fn verify_options(p: &Profile) -> anyhow::Result<VerifyOptions> {
    // A missing or old CRL makes the report INDETERMINATE (TRY_LATER), which is shown rather
    // than refused: the node took the document, and the clerk sees what is not established.
    Ok(VerifyOptions::new(p.anchors()?, now()))
}

/// Arguments of `lienthong show`.
#[derive(Args, Debug)]
pub(crate) struct ShowArgs {
    /// The document id.
    document: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `lienthong show`: the document's metadata and provenance, verified here.
pub(crate) fn show(profile_name: Option<&str>, a: ShowArgs) -> anyhow::Result<()> {
    let p = profile(profile_name)?;
    block_on(async move {
        let client = p.connect().await?;
        let dir = private_tempdir("show")?;
        let path = fetch_into(&client, &a.document, false, dir.path()).await;
        client.close().await;
        let path = path?;
        let file = File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let report = verify_bundle(BufReader::new(file), &verify_options(&p)?)?;
        if a.json {
            outln!("{}", serde_json::to_string_pretty(&report)?)?;
        } else {
            crate::report::print(&report)?;
        }
        Ok(())
    })
}

/// Arguments of `lienthong status`.
#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    /// The document id.
    document: String,
    /// accepted (03), assigned (04), processing (05), completed (06), refused (16), or
    /// recall-accepted (15).
    #[arg(value_parser = ["accepted", "assigned", "processing", "completed", "refused", "recall-accepted"])]
    status: String,
    /// A note for the sender.
    #[arg(long)]
    note: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `lienthong status`.
pub(crate) fn status(profile_name: Option<&str>, a: StatusArgs) -> anyhow::Result<()> {
    let code = match a.status.as_str() {
        "accepted" => 3,
        "assigned" => 4,
        "processing" => 5,
        "completed" => 6,
        "recall-accepted" => 15,
        _ => 16,
    };
    let p = profile(profile_name)?;
    block_on(async move {
        let client = p.connect().await?;
        client.post_status(&a.document, code, a.note.clone()).await.map_err(refused)?;
        client.close().await;
        if a.json {
            let out = serde_json::json!({ "document": a.document, "status": code, "name": a.status, "note": a.note });
            outln!("{out}")?;
        } else {
            outln!("Status {:02} {} sent for {}", code, a.status, a.document)?;
        }
        Ok(())
    })
}

/// Arguments of `lienthong track`.
#[derive(Args, Debug)]
pub(crate) struct TrackArgs {
    /// The document id.
    document: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// One receipt in words, naming agencies with `name`.
pub(crate) fn describe_named(r: &SignedReceipt, own: &AgencyCode, name: impl Fn(&AgencyCode) -> String) -> String {
    let c = &r.receipt;
    match c.kind {
        ReceiptKind::Hop => format!("{} took responsibility from {}", name(&c.by), name(&c.to)),
        ReceiptKind::Status(StatusCode::Arrived) => format!("{} received it (01 arrived)", name(&c.by)),
        ReceiptKind::Status(StatusCode::RecallRequested) if c.by == *own => {
            format!("recall requested from {} (13)", name(&c.to))
        }
        ReceiptKind::Status(s) => {
            let note = c.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default();
            let about = if c.recipients.is_empty() || c.recipients == [c.by] {
                String::new()
            } else {
                format!(" for {}", c.recipients.iter().map(&name).collect::<Vec<_>>().join(", "))
            };
            format!("{} — {s}{about}{note}", name(&c.by))
        }
    }
}

/// `lienthong track`.
pub(crate) fn track(profile_name: Option<&str>, a: TrackArgs) -> anyhow::Result<()> {
    let p = profile(profile_name)?;
    let own = p.agency()?;
    block_on(async move {
        let client = p.connect().await?;
        let mut receipts = client.track(&a.document).await.map_err(refused)?;
        client.close().await;
        receipts.sort_by_key(|r| (r.receipt.at, r.receipt.kind != ReceiptKind::Hop));
        if a.json {
            let list: Vec<_> = receipts.iter().map(|r| &r.receipt).collect();
            outln!("{}", serde_json::to_string_pretty(&list)?)?;
            return Ok(());
        }
        outln!("Track of {}", a.document)?;
        if receipts.is_empty() {
            outln!("  no receipts yet")?;
        }
        for r in &receipts {
            outln!("  {}  {}", human(r.receipt.at), describe_named(r, &own, ToString::to_string))?;
        }
        Ok(())
    })
}

/// Arguments of `lienthong recall`.
#[derive(Args, Debug)]
pub(crate) struct RecallArgs {
    /// The document id.
    document: String,
    /// The reason, for the recipients.
    #[arg(long)]
    note: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `lienthong recall`.
pub(crate) fn recall(profile_name: Option<&str>, a: RecallArgs) -> anyhow::Result<()> {
    let p = profile(profile_name)?;
    block_on(async move {
        let client = p.connect().await?;
        client.recall(&a.document, a.note.clone()).await.map_err(refused)?;
        client.close().await;
        if a.json {
            outln!("{}", serde_json::json!({ "document": a.document, "status": 13, "note": a.note }))?;
        } else {
            outln!("Recall requested for {} (status 13 sent to every recipient)", a.document)?;
        }
        Ok(())
    })
}

/// Arguments of `lienthong revoke|update|replace`.
#[derive(Args, Debug)]
pub(crate) struct ActingArgs {
    /// The earlier document's id.
    target: String,
    /// The new document's form (same as `send --form`).
    #[arg(long = "with", value_name = "FORM")]
    with: Option<PathBuf>,
    #[command(flatten)]
    send: SendArgs,
}

/// `lienthong revoke|update|replace ID --with FORM`.
pub(crate) fn acting(profile_name: Option<&str>, act: Acting, mut a: ActingArgs) -> anyhow::Result<()> {
    if a.with.is_some() {
        a.send.document.form = a.with.take();
    }
    send(profile_name, a.send, Some((act, a.target)))
}
