//! `lienthong log`: the agency node's transparency log, checked here rather than believed.
//!
//! `checkpoint` fetches the latest checkpoint and its cosignatures (and with `--save` extends a
//! saved checkpoint chain, with the consistency proof from its last checkpoint); `prove`
//! fetches inclusion proofs of a document's envelope into the latest co-signed checkpoint;
//! `consistency` proves that one checkpoint extends another; `verify` checks a saved chain
//! offline; `audit` compares what the parent logged as handed over by this agency's node with
//! the node's own records. Every signature, chain and proof is verified with `pki` against the
//! profile's trust anchors before anything is printed as established.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use lienthong_protocol::clerk_client::ClerkError;
use lienthong_protocol::wire::ByteBuf;
use lienthong_protocol::wire::{LogAnswer, LogQuery};
use pki::tlog::{Cosignature, LogEntry, LogProof, SignedCheckpoint, verify_consistency};
use pki::{Certificate, Crl, CrlSet, Profile as CertProfile, Validator};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::outln;
use crate::profile::Profiles;
use crate::timefmt::{human, machine, now};

/// `lienthong log` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum LogCommand {
    /// The node's latest checkpoint with who co-signed it, verified here.
    Checkpoint(CheckpointArgs),
    /// Inclusion proofs of a document's envelope (SHA-256, hex) into the latest co-signed
    /// checkpoint, verified here.
    Prove(ProveArgs),
    /// The consistency proof between two checkpoint sizes of the node's log, verified here.
    Consistency(ConsistencyArgs),
    /// Check a saved checkpoint chain offline (see `log checkpoint --save`).
    Verify(VerifyArgs),
    /// Entries the parent logged as handed over by this agency's node that the node never
    /// sent: each is an alert (exit 1).
    Audit(AuditArgs),
}

/// Arguments of `lienthong log checkpoint`.
#[derive(Args, Debug)]
pub(crate) struct CheckpointArgs {
    /// Append the checkpoint to this chain file (created if missing), with the consistency
    /// proof from the chain's last checkpoint.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `lienthong log prove`.
#[derive(Args, Debug)]
pub(crate) struct ProveArgs {
    /// The envelope's SHA-256, 64 hex digits (as `lienthong fetch` and `track` show it).
    digest: String,
    /// Write the proofs (CBOR `LogProof`s, one file each: FILE.0, FILE.1, …).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `lienthong log consistency`.
#[derive(Args, Debug)]
pub(crate) struct ConsistencyArgs {
    /// The older checkpoint's size.
    old: u64,
    /// The newer checkpoint's size.
    new: u64,
}

/// Arguments of `lienthong log verify`.
#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// The chain file written by `log checkpoint --save`.
    file: PathBuf,
    /// Trust anchor (PEM), instead of the profile's.
    #[arg(long, value_name = "FILE")]
    anchor: Option<PathBuf>,
}

/// Arguments of `lienthong log audit`.
#[derive(Args, Debug)]
pub(crate) struct AuditArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a `lienthong log` subcommand.
pub(crate) fn run(profile_name: Option<&str>, command: LogCommand) -> anyhow::Result<()> {
    match command {
        LogCommand::Checkpoint(a) => checkpoint(profile_name, a),
        LogCommand::Prove(a) => prove(profile_name, a),
        LogCommand::Consistency(a) => consistency(profile_name, a),
        LogCommand::Verify(a) => verify(profile_name, a),
        LogCommand::Audit(a) => audit(profile_name, a),
    }
}

fn ask(profile_name: Option<&str>, query: LogQuery) -> anyhow::Result<(LogAnswer, Vec<Certificate>)> {
    let p = Profiles::load()?.select(profile_name)?.1;
    let anchors = p.anchors()?;
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(async move {
            let client = p.connect().await?;
            let answer = client.log(query).await;
            client.close().await;
            answer.map_err(|e| match e {
                ClerkError::Refused { message, .. } => anyhow::anyhow!("the node refused: {message}"),
                other => anyhow::Error::new(other),
            })
        })?;
    Ok((answer, anchors))
}

fn validator(anchors: Vec<Certificate>, crls: &[Vec<u8>]) -> anyhow::Result<Validator> {
    let mut set = CrlSet::new();
    for der in crls {
        set.add(Crl::from_der(der).context("a CRL from the node does not parse")?);
    }
    Ok(Validator::new(anchors).with_crls(set))
}

fn vecs(bufs: Vec<ByteBuf>) -> Vec<Vec<u8>> {
    bufs.into_iter().map(ByteBuf::into_vec).collect()
}

/// A checkpoint whose log signature and cosignatures verified.
#[derive(Debug, Serialize)]
struct Checked {
    origin: String,
    size: u64,
    root: String,
    witnesses: Vec<(String, String)>,
    #[serde(skip)]
    signed: SignedCheckpoint,
}

/// Verifies `note`: signed by the seal of its origin's agency (a chain in `chains`, valid at
/// the earliest cosignature time), and every cosignature by a carried witness chain valid at
/// its time. Cosignatures by witnesses without a chain are refused.
fn check_note(
    note: &str,
    chains: &[Vec<Vec<u8>>],
    validator: &Validator,
    at: OffsetDateTime,
) -> anyhow::Result<Checked> {
    let signed = SignedCheckpoint::parse(note.as_bytes()).context("the checkpoint does not parse")?;
    let body = signed.checkpoint();
    let leaf_of = |agency: pki::AgencyCode| {
        chains
            .iter()
            .find(|c| c.first().and_then(|d| Certificate::from_der(d).ok()).is_some_and(|c| c.agency == Some(agency)))
    };
    let mut witnesses = Vec::new();
    for sig in signed.note().signatures() {
        let Some(cosignature) = Cosignature::from_note_signature(sig)? else { continue };
        let chain = leaf_of(cosignature.witness).with_context(|| {
            format!("no seal chain of the witness {} came with the checkpoint", cosignature.witness)
        })?;
        let verified = validator
            .validate(chain, cosignature.at(), CertProfile::Seal)
            .with_context(|| format!("the seal of witness {}", cosignature.witness))?;
        let key = verified.leaf.public_key.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        cosignature.verify(body, key).with_context(|| format!("the cosignature of {}", cosignature.witness))?;
        witnesses.push((cosignature.witness.to_string(), cosignature.at()));
    }
    witnesses.sort_by_key(|(_, t)| *t);
    let when = witnesses.first().map_or(at, |(_, t)| *t);
    let chain = leaf_of(body.origin.agency)
        .with_context(|| format!("no seal chain of {} came with the checkpoint", body.origin.agency))?;
    let verified = validator
        .validate(chain, when, CertProfile::Seal)
        .with_context(|| format!("the seal of {}", body.origin.agency))?;
    let key = verified.leaf.public_key.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
    signed.verify(key).context("the log's signature on the checkpoint")?;
    Ok(Checked {
        origin: body.origin.to_string(),
        size: body.size,
        root: hex::encode(body.root),
        witnesses: witnesses.into_iter().map(|(w, t)| (w, machine(t))).collect(),
        signed,
    })
}

fn print_checked(c: &Checked) -> anyhow::Result<()> {
    outln!("{} size {}", c.origin, c.size)?;
    outln!("  root {}", c.root)?;
    if c.witnesses.is_empty() {
        outln!("  not co-signed yet")?;
    }
    for (w, t) in &c.witnesses {
        outln!("  co-signed by {w} at {t}")?;
    }
    Ok(())
}

/// A saved checkpoint chain: each checkpoint with the consistency proof from the one before.
#[derive(Debug, Serialize, Deserialize)]
struct ChainFile {
    format: String,
    origin: String,
    /// Seal chains (hex DER, leaf first): the log's and its witnesses'.
    chains: Vec<Vec<String>>,
    /// CRLs (hex DER) covering them.
    crls: Vec<String>,
    checkpoints: Vec<SavedCheckpoint>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedCheckpoint {
    note: String,
    /// Consistency proof (hex hashes) from the previous checkpoint of the file.
    consistency: Vec<String>,
}

const CHAIN_FORMAT: &str = "lienthong-checkpoint-chain/1";

fn hexes(v: &[Vec<u8>]) -> Vec<String> {
    v.iter().map(hex::encode).collect()
}

fn unhex(v: &[String]) -> anyhow::Result<Vec<Vec<u8>>> {
    v.iter().map(|h| hex::decode(h).context("not hex")).collect()
}

fn hash32(bytes: &[u8]) -> anyhow::Result<[u8; 32]> {
    <[u8; 32]>::try_from(bytes).map_err(|_| anyhow::anyhow!("a proof hash is not 32 bytes"))
}

fn checkpoint(profile_name: Option<&str>, a: CheckpointArgs) -> anyhow::Result<()> {
    let (answer, anchors) = ask(profile_name, LogQuery::Checkpoint)?;
    let LogAnswer::Checkpoint { note, chains, crls } = answer else { bail!("the node answered something else") };
    let chains: Vec<Vec<Vec<u8>>> = chains.into_iter().map(vecs).collect();
    let crls = vecs(crls);
    let validator = validator(anchors.clone(), &crls)?;
    let checked = check_note(&note, &chains, &validator, now())?;
    if let Some(path) = &a.save {
        save(profile_name, path, &checked, &note, &chains, &crls)?;
    }
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&checked)?)?;
    } else {
        print_checked(&checked)?;
        if let Some(path) = &a.save {
            outln!("  saved to {}", path.display())?;
        }
    }
    Ok(())
}

fn read_chain_file(path: &Path) -> anyhow::Result<ChainFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: ChainFile =
        serde_json::from_str(&text).with_context(|| format!("{} is not a checkpoint chain", path.display()))?;
    if file.format != CHAIN_FORMAT {
        bail!("{} is a {:?} file, not {CHAIN_FORMAT}", path.display(), file.format);
    }
    Ok(file)
}

fn save(
    profile_name: Option<&str>,
    path: &Path,
    checked: &Checked,
    note: &str,
    chains: &[Vec<Vec<u8>>],
    crls: &[Vec<u8>],
) -> anyhow::Result<()> {
    let mut file = if path.exists() {
        read_chain_file(path)?
    } else {
        ChainFile {
            format: CHAIN_FORMAT.into(),
            origin: checked.origin.clone(),
            chains: Vec::new(),
            crls: Vec::new(),
            checkpoints: Vec::new(),
        }
    };
    if file.origin != checked.origin {
        bail!("{} holds the log {}, not {}", path.display(), file.origin, checked.origin);
    }
    let mut consistency = Vec::new();
    if let Some(last) = file.checkpoints.last() {
        let previous = SignedCheckpoint::parse(last.note.as_bytes()).context("the chain's last checkpoint")?;
        let (old, new) = (previous.checkpoint(), checked.signed.checkpoint());
        if old.size == new.size {
            if old.root != new.root {
                bail!("the node's checkpoint of size {} has another root than the one saved: the log forked", new.size);
            }
            return Ok(());
        }
        let (answer, _) = ask(profile_name, LogQuery::Consistency { old: old.size, new: new.size })?;
        let LogAnswer::Consistency { proof, .. } = answer else { bail!("the node answered something else") };
        let proof: Vec<[u8; 32]> = vecs(proof).iter().map(|h| hash32(h)).collect::<Result<_, _>>()?;
        verify_consistency(old.size, new.size, &old.root, &new.root, &proof)
            .context("the node's log does not extend the chain's last checkpoint")?;
        consistency = proof.iter().map(hex::encode).collect();
    }
    file.chains = chains.iter().map(|c| hexes(c)).collect();
    file.crls = hexes(crls);
    file.checkpoints.push(SavedCheckpoint { note: note.to_owned(), consistency });
    crate::files::replace(path, serde_json::to_string_pretty(&file)?.as_bytes())
}

fn prove(profile_name: Option<&str>, a: ProveArgs) -> anyhow::Result<()> {
    let digest = hex::decode(a.digest.trim()).ok().and_then(|d| <[u8; 32]>::try_from(d).ok());
    let Some(digest) = digest else { bail!("{:?} is not an envelope digest (64 hex digits)", a.digest) };
    let (answer, anchors) = ask(profile_name, LogQuery::Prove { envelope: ByteBuf::from(digest.to_vec()) })?;
    let LogAnswer::Proofs { proofs, crls } = answer else { bail!("the node answered something else") };
    let validator = validator(anchors, &vecs(crls))?;
    let mut out = Vec::new();
    for (i, bytes) in proofs.iter().enumerate() {
        let proof = LogProof::from_bytes(bytes).context("a proof from the node does not parse")?;
        let evidence =
            proof.verify(&digest, &validator, now()).with_context(|| format!("proof {i} does not verify"))?;
        if let Some(dir) = &a.out {
            let path = PathBuf::from(format!("{}.{i}", dir.display()));
            crate::files::replace(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        }
        let what = match &evidence.entry {
            LogEntry::Document { document, via, .. } => format!("document {document} taken from {}", via_name(via)),
            LogEntry::Signed { kind, .. } => format!("{} signed by this node", kind_name(kind)),
            LogEntry::Recorded { kind, by, .. } => format!("{} by {by} kept", kind_name(kind)),
        };
        let witnesses: Vec<(String, String)> =
            evidence.witnesses.iter().map(|w| (w.agency.to_string(), machine(w.at))).collect();
        out.push(serde_json::json!({
            "log": evidence.origin.to_string(),
            "index": evidence.index,
            "tree_size": evidence.tree_size,
            "entry": what,
            "logged_at_claimed": machine(evidence.entry.at()),
            "witnesses": witnesses,
            "bytes": bytes.len(),
        }));
        if !a.json {
            outln!("{what}")?;
            outln!("  leaf {} of {} in {}", evidence.index, evidence.tree_size, evidence.origin)?;
            for w in &evidence.witnesses {
                outln!("  co-signed by {} at {}", w.agency, human(w.at))?;
            }
        }
    }
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
    }
    Ok(())
}

fn via_name(via: &pki::tlog::Via) -> String {
    match via {
        pki::tlog::Via::Clerk => "this agency's clerk".into(),
        pki::tlog::Via::Node(code) => format!("the node of {code}"),
    }
}

fn kind_name(kind: &pki::document::ReceiptKind) -> String {
    match kind {
        pki::document::ReceiptKind::Hop => "hop receipt".into(),
        pki::document::ReceiptKind::Status(s) => format!("status {:02}", s.code()),
    }
}

fn consistency(profile_name: Option<&str>, a: ConsistencyArgs) -> anyhow::Result<()> {
    let (answer, anchors) = ask(profile_name, LogQuery::Consistency { old: a.old, new: a.new })?;
    let LogAnswer::Consistency { old, new, proof, chains, crls } = answer else {
        bail!("the node answered something else")
    };
    let chains: Vec<Vec<Vec<u8>>> = chains.into_iter().map(vecs).collect();
    let validator = validator(anchors, &vecs(crls))?;
    let old = check_note(&old, &chains, &validator, now())?;
    let new = check_note(&new, &chains, &validator, now())?;
    let proof: Vec<[u8; 32]> = vecs(proof).iter().map(|h| hash32(h)).collect::<Result<_, _>>()?;
    let (o, n) = (old.signed.checkpoint(), new.signed.checkpoint());
    verify_consistency(o.size, n.size, &o.root, &n.root, &proof)
        .context("the consistency proof does not hold: the log was rewritten")?;
    print_checked(&old)?;
    print_checked(&new)?;
    outln!("consistent: size {} extends size {} ({} proof hashes)", n.size, o.size, proof.len())?;
    Ok(())
}

fn verify(profile_name: Option<&str>, a: VerifyArgs) -> anyhow::Result<()> {
    let file = read_chain_file(&a.file)?;
    let anchors = match &a.anchor {
        Some(path) => {
            let pem = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Certificate::from_pem_all(&pem).with_context(|| format!("{} holds no certificate", path.display()))?
        }
        None => Profiles::load()?.select(profile_name)?.1.anchors()?,
    };
    let chains: Vec<Vec<Vec<u8>>> = file.chains.iter().map(|c| unhex(c)).collect::<Result<_, _>>()?;
    let validator = validator(anchors, &unhex(&file.crls)?)?;
    let mut previous: Option<Checked> = None;
    for (i, saved) in file.checkpoints.iter().enumerate() {
        let checked = check_note(&saved.note, &chains, &validator, now()).with_context(|| format!("checkpoint {i}"))?;
        if checked.origin != file.origin {
            bail!("checkpoint {i} is of {}, the file of {}", checked.origin, file.origin);
        }
        if let Some(prev) = &previous {
            let (o, n) = (prev.signed.checkpoint(), checked.signed.checkpoint());
            let proof: Vec<[u8; 32]> =
                unhex(&saved.consistency)?.iter().map(|h| hash32(h)).collect::<Result<_, _>>()?;
            verify_consistency(o.size, n.size, &o.root, &n.root, &proof).with_context(|| {
                format!("checkpoint {i} does not extend checkpoint {}: the log was rewritten", i - 1)
            })?;
        }
        print_checked(&checked)?;
        previous = Some(checked);
    }
    outln!(
        "{} checkpoints of {}: every signature verifies and each extends the one before",
        file.checkpoints.len(),
        file.origin
    )?;
    Ok(())
}

fn audit(profile_name: Option<&str>, a: AuditArgs) -> anyhow::Result<()> {
    let (answer, _) = ask(profile_name, LogQuery::Audit)?;
    let LogAnswer::Audit { parent, checked, not_sent } = answer else { bail!("the node answered something else") };
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "parent": parent, "checked": checked, "not_sent": not_sent })
            )?
        )?;
    } else {
        outln!("{checked} entries in the log of {parent} name this agency's node as the sender")?;
        for f in &not_sent {
            let at = OffsetDateTime::from_unix_timestamp(f.at).map(human).unwrap_or_default();
            outln!(
                "  ALERT: entry {} — document {} (envelope {}), taken {at}: this node never sent it",
                f.index,
                f.document,
                f.envelope
            )?;
        }
    }
    if !not_sent.is_empty() {
        if not_sent.len() == 1 {
            bail!("1 entry of {parent}'s log claims a document this agency never sent");
        }
        bail!("{} entries of {parent}'s log claim documents this agency never sent", not_sent.len());
    }
    Ok(())
}
