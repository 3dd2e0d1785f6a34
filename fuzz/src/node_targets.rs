//! Targets for what a node decodes: the frames of both protocols, a neighbour's requests
//! taken as far as they go without a network or a database, and the configuration file.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use node::config::{Config, RawConfig, RawLimits};
use node::crl_refs::{FetchLimits, Resolution};
use node::protocol::{self, ByteBuf, ClerkRequest, ClerkResponse, CrlRef, NodeRequest, NodeResponse};
use node::routing::{NextHop, Routes};
use node::trust::Trust;
use pki::document::{Envelope, Manifest, Receipt, ReceiptKind, SignedReceipt, StatusCode};
use pki::{AgencyCode, Certificate, Crl, PrivateKey};
use serde::Serialize;

use super::fixtures::{self, code};

/// The largest frame a node reads by default.
fn max_frame() -> usize {
    usize::try_from(RawLimits::default().max_frame_bytes.get()).unwrap_or(usize::MAX)
}

/// One frame body of either protocol, as `protocol::read_frame` hands it to the decoder. The
/// first byte picks the message type (node request, node response, clerk request, clerk
/// response), the rest is the body. Property: whatever decodes re-encodes to a frame whose
/// length prefix is right and which decodes to the same message.
pub fn frame(data: &[u8]) -> bool {
    let Some((&selector, body)) = data.split_first() else { return false };
    match selector % 4 {
        0 => round_trip::<NodeRequest>(body),
        1 => round_trip::<NodeResponse>(body),
        2 => round_trip::<ClerkRequest>(body),
        _ => round_trip::<ClerkResponse>(body),
    }
}

fn round_trip<T: Serialize + for<'de> serde::Deserialize<'de> + Debug>(body: &[u8]) -> bool {
    let Ok(message) = protocol::decode::<T>(body, max_frame()) else { return false };
    let frame = protocol::encode(&message);
    let declared = frame.get(..4).and_then(|h| <[u8; 4]>::try_from(h).ok()).map(u32::from_be_bytes);
    assert_eq!(declared.map(|n| n as usize), Some(frame.len() - 4), "the length prefix is the body's length");
    let again: T = protocol::decode(&frame[4..], max_frame())
        .unwrap_or_else(|e| panic!("{message:?} re-encodes to a frame that does not decode: {e}"));
    assert_eq!(format!("{again:?}"), format!("{message:?}"), "a message survives a round trip");
    true
}

/// The fixture node (district [`fixtures::OWN`]): its trust state, made fresh for every input so
/// no signature cache carries over from one input to the next, its routes and its seal.
struct World {
    trust: Trust,
    routes: Routes,
}

impl World {
    fn new() -> World {
        World {
            trust: Trust::new(vec![fixtures::root().clone()], fixtures::crls().to_vec(), fixtures::FRESHNESS),
            routes: Routes::new(
                code(fixtures::OWN),
                Some(code(fixtures::PARENT)),
                fixtures::CHILDREN.iter().map(|c| code(c)).collect(),
                Vec::new(),
            ),
        }
    }
}

/// The fixture node's seal (key and chain), which signs its receipts and refusals.
fn seal() -> &'static (PrivateKey, Vec<Certificate>) {
    static SEAL: std::sync::OnceLock<(PrivateKey, Vec<Certificate>)> = std::sync::OnceLock::new();
    SEAL.get_or_init(|| {
        let key = PrivateKey::from_pem(include_str!("../fixtures/seal.key.pem"), None)
            .unwrap_or_else(|e| panic!("fuzz/fixtures/seal.key.pem: {e}"));
        let chain = Certificate::from_pem_all(include_str!("../fixtures/seal.chain.pem"))
            .unwrap_or_else(|e| panic!("fuzz/fixtures/seal.chain.pem: {e}"));
        (key, chain)
    })
}

/// A neighbour's request to the fixture node, taken as `inbound::serve` and `intake` /
/// `notices` take it, up to the point where they would read attachments or open a
/// transaction: frame, envelope or receipt, the CRLs referenced (held, or sent as asked), verification with the node's
/// trust state at the fixed time, who may relay what, routing, and the signed refusal the
/// sender would get. The first byte picks the neighbour it comes from (the parent, a child, the
/// other child, or an agency that is no neighbour); the rest is the frame body. Accepted means
/// the node would have taken the document or notice, or kept a pushed CRL.
pub fn node_request(data: &[u8]) -> bool {
    let Some((&selector, body)) = data.split_first() else { return false };
    let from = code(match selector % 4 {
        0 => fixtures::PARENT,
        1 => fixtures::CHILDREN[0],
        2 => fixtures::CHILDREN[1],
        _ => fixtures::REVOKED_SEAL,
    });
    let Ok(request) = protocol::decode::<NodeRequest>(body, max_frame()) else { return false };
    let world = World::new();
    match request {
        NodeRequest::Deliver { envelope, recipients, crls, crls_asked, .. } => {
            let chains = Envelope::from_bytes(&envelope)
                .and_then(|e| e.headers())
                .map(|h| h.into_iter().map(|h| h.chain).collect())
                .unwrap_or_default();
            let Some(fetched) = resolved(&world, &crls, &crls_asked, chains) else { return false };
            deliver(&world, from, &envelope, &recipients, &fetched)
        }
        NodeRequest::Notices { receipts, crls, crls_asked } => {
            // As `inbound` and `notices::take_notices`: the count bounded, the CRL references
            // resolved, then each receipt on its own; accepted if any would be taken.
            if receipts.len() > node::protocol::MAX_NOTICES {
                return false;
            }
            let chains = receipts
                .iter()
                .filter_map(|r| SignedReceipt::from_bytes(r).ok())
                .map(|r| r.chain_der().to_vec())
                .collect();
            let Some(fetched) = resolved(&world, &crls, &crls_asked, chains) else { return false };
            receipts.iter().filter(|r| notice(&world, from, r, &fetched)).count() > 0
        }
        NodeRequest::CrlPush { crls } => {
            if world.routes.relation(&from) != Some(node::routing::Relation::Parent) {
                return false;
            }
            // As `crls::take_pushed`: unreadable ones dropped, the rest kept only if a known
            // CA signed them.
            let parsed: Vec<Crl> = crls.iter().filter_map(|d| Crl::from_der(d).ok()).collect();
            parsed.iter().filter(|c| world.trust.knows_signer_of(c)).count() > 0
        }
        NodeRequest::Route { recipients, hops_left: _ } => {
            // As `route_check::answer_neighbour`, this node's part: the limit, the codes, the
            // next hop of each (asking the next node needs the network).
            if recipients.len() > node::route_check::MAX_ROUTE_RECIPIENTS {
                return false;
            }
            let Ok(codes) = recipients.iter().map(|r| r.parse::<AgencyCode>()).collect::<Result<Vec<_>, _>>() else {
                return false;
            };
            codes.iter().all(|c| world.routes.next_hop(c).is_ok())
        }
        NodeRequest::CrlFetch { known } => {
            // As `crls::newer_than`.
            let held = world.trust.validator();
            let newer = held
                .crls()
                .iter()
                .filter(|c| {
                    !known.iter().any(|(issuer, t)| **issuer == c.issuer_raw && *t >= c.this_update.unix_timestamp())
                })
                .count();
            assert!(newer <= held.crls().len());
            true
        }
        NodeRequest::LogWitness { add_checkpoint, seal_chain } => {
            // As `tlog::witness::answer` before its transaction: who may ask, the request, the
            // log's origin, the seal chain.
            if !matches!(
                world.routes.relation(&from),
                Some(node::routing::Relation::Child | node::routing::Relation::Parent)
            ) {
                return false;
            }
            let Ok(request) = pki::tlog::AddCheckpoint::parse(&add_checkpoint) else { return false };
            if request.checkpoint.checkpoint().origin.agency != from {
                return false;
            }
            world.trust.validate(&seal_chain, fixtures::NOW, pki::Profile::Seal).is_ok_and(|v| v.agency == from)
        }
        NodeRequest::LogEntries { from: _ } => {
            // As `tlog::query::entries_for`: children only.
            world.routes.relation(&from) == Some(node::routing::Relation::Child)
        }
        NodeRequest::PathEvidence { envelope, toward: _, hops_left: _ } => {
            // As `path::answer` before it reads storage: a digest of 32 bytes (who
            // may ask depends on the documents held, which this world has none of).
            envelope.len() == 32
        }
    }
}

/// As `inbound` before it serves a document or notices: their CRL references resolved against
/// the node's trust state, with the CRLs sent as asked (`crl_refs::resolve`). `None` when the
/// node would answer `CrlsWanted` or refuse for now. Properties: the node asks only for CRLs
/// referenced, at most `limits.max_crl_fetch_count`, and only when none were sent; what it
/// takes from the sender is exactly what it asked for.
fn resolved(
    world: &World,
    refs: &[CrlRef],
    asked: &[ByteBuf],
    chains: Vec<Vec<Vec<u8>>>,
) -> Option<Vec<std::sync::Arc<Crl>>> {
    let raw = RawLimits::default();
    let limits = FetchLimits { max_count: raw.max_crl_fetch_count, max_bytes: raw.max_crl_fetch_bytes.get() };
    let cas = || node::crl_refs::cas_of(&world.trust, chains.iter().map(Vec::as_slice));
    match node::crl_refs::resolve_with(&world.trust, &limits, refs, asked, cas) {
        Resolution::Ready { fetched } => {
            assert!(fetched.len() <= asked.len(), "only what was sent is taken");
            for f in &fetched {
                assert!(refs.iter().any(|r| r.sha256.as_slice() == f.fingerprint().as_slice()), "a CRL not referenced");
            }
            Some(fetched)
        }
        Resolution::Wanted(wanted) => {
            assert!(asked.is_empty(), "asked again after an answer");
            assert!(!wanted.is_empty() && wanted.len() <= limits.max_count, "{} CRLs asked for", wanted.len());
            assert!(wanted.iter().all(|w| refs.iter().any(|r| r.sha256 == *w)), "asked for a CRL not referenced");
            None
        }
        Resolution::Unresolved(_) | Resolution::BadRequest(_) => None,
    }
}

/// `intake::take_document` for a neighbour, without attachments and storage; `fetched` are the
/// CRLs the neighbour sent as asked.
fn deliver(
    world: &World,
    from: AgencyCode,
    envelope: &[u8],
    recipients: &[String],
    fetched: &[std::sync::Arc<Crl>],
) -> bool {
    let Ok(envelope) = Envelope::from_bytes(envelope) else { return false };
    let digest = envelope.digest();
    let Ok(manifest) = envelope.manifest() else { return false };
    let refuse = |reason: String, rcpt: &[AgencyCode]| {
        refusal_signs(&manifest, digest, rcpt, &reason);
        false
    };
    let mut parsed = Vec::with_capacity(recipients.len());
    for r in recipients {
        match r.parse::<AgencyCode>() {
            Ok(c) if manifest.to.contains(&c) && !parsed.contains(&c) => parsed.push(c),
            Ok(c) => {
                return refuse(format!("{c} is not a recipient of this document (or is listed twice)"), &manifest.to);
            }
            Err(e) => return refuse(format!("recipient {r:?}: {e}"), &manifest.to),
        }
    }
    if parsed.is_empty() {
        return refuse("no recipients given".into(), &manifest.to);
    }
    if let Err(reason) = world.routes.may_relay(&from, &manifest.from) {
        return refuse(reason, &parsed);
    }
    let limits = RawLimits::default();
    if manifest.attachments.iter().any(|a| a.size > limits.max_attachment_bytes.get()) {
        return refuse("attachment over the limit".into(), &parsed);
    }
    // Sizes are bounded by the manifest's own limits, so the sum cannot overflow.
    let total: u64 = manifest.attachments.iter().map(|a| a.size).sum();
    if total > limits.max_document_bytes.get() {
        return refuse("attachments over the limit".into(), &parsed);
    }
    let arrival = pki::document::validation::Arrival { at: fixtures::NOW, max_age: time::Duration::MAX };
    let verified =
        match pki::document::validation::verify_arrival(&envelope, &world.trust.validator_with(fetched), &arrival) {
            Ok(v) => v,
            Err(e) => return refuse(format!("verification failed: {e}"), &parsed),
        };
    let _gaps: Vec<_> = verified
        .signers()
        .iter()
        .filter_map(|s| world.trust.revocation_gap(&s.chain, &s.revocation, fixtures::NOW))
        .collect();
    let (plan, unroutable) = world.routes.plan(&parsed, Some(from));
    let planned: usize = plan.values().map(Vec::len).sum();
    assert_eq!(planned + unroutable.len(), parsed.len(), "every recipient is routed or refused, once");
    assert!(!plan.contains_key(&NextHop::Neighbour(from)), "nothing is routed back where it came from");
    if plan.is_empty() {
        let reasons: Vec<String> = unroutable.iter().map(|(_, e)| e.to_string()).collect();
        return refuse(reasons.join("; "), &parsed);
    }
    for (r, e) in &unroutable {
        refusal_signs(&manifest, digest, &[*r], &e.to_string());
    }
    true
}

/// The node can sign the refusal it answers with (`Node::refusal`), whatever the reason says.
fn refusal_signs(manifest: &Manifest, digest: [u8; 32], recipients: &[AgencyCode], reason: &str) {
    let receipt = Receipt {
        kind: ReceiptKind::Status(StatusCode::Refused),
        document: manifest.id(),
        envelope: digest,
        by: code(fixtures::OWN),
        to: manifest.from,
        at: fixtures::NOW,
        recipients: recipients.to_vec(),
        note: Some(node::intake::refusal_note(reason)),
    };
    let (key, chain) = seal();
    if let Err(e) = receipt.sign(key, chain) {
        panic!("the refusal of {} ({reason:?}) cannot be signed: {e}", manifest.id());
    }
}

/// One receipt of `notices::take_notices`, without storage: the receipt, verification with the
/// node's CRLs and those fetched for the batch, and where the node would send it next.
fn notice(world: &World, from: AgencyCode, receipt: &[u8], fetched: &[std::sync::Arc<Crl>]) -> bool {
    let Ok(receipt) = SignedReceipt::from_bytes(receipt) else { return false };
    if receipt.verify(&world.trust.validator_with(fetched)).is_err() {
        return false;
    }
    match world.routes.next_hop(&receipt.receipt.to) {
        Ok(NextHop::Neighbour(n)) if n == from => false,
        Ok(_) => true,
        Err(_) => false,
    }
}

/// The node's configuration file: TOML into [`RawConfig`], then [`Config::validate`] with every
/// file the configuration names replaced by a fixture of the same file name (or a file that
/// does not exist), so hostile paths such as `/dev/zero` are never opened. A configuration that
/// validates is then used as the node uses it: routes, neighbours, retry delays.
pub fn config(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else { return false };
    let Ok(mut raw) = toml::from_str::<RawConfig>(text) else { return false };
    let fixture = |path: &mut PathBuf| *path = fixture_file(path);
    fixture(&mut raw.tls.certificate);
    fixture(&mut raw.tls.key);
    fixture(&mut raw.tls.trust_anchor);
    fixture(&mut raw.seal.certificate);
    fixture(&mut raw.seal.key);
    if let Some(p) = raw.seal.passphrase_file.as_mut() {
        fixture(p);
    }
    raw.crl.files.iter_mut().for_each(fixture);
    if let Some(mail) = raw.mail.as_mut() {
        if let Some(p) = mail.password_file.as_mut() {
            fixture(p);
        }
        if let Some(p) = mail.ca_file.as_mut() {
            fixture(p);
        }
        mail.certificates.iter_mut().for_each(fixture);
    }
    let Ok(config) = Config::validate(raw, &fixtures::dir()) else { return false };
    let _ = Routes::new(
        config.agency,
        config.parent.as_ref().map(|n| n.agency),
        config.children.iter().map(|n| n.agency).collect(),
        config.peers.iter().map(|n| n.agency).collect(),
    );
    assert!(config.neighbours().all(|(n, _)| !n.addresses.is_empty() && n.agency != config.agency));
    let retry = &config.retry;
    for attempt in [1, 2, retry.max_attempts / 2, retry.max_attempts, u32::MAX] {
        for unit in [0.0, 0.5, 0.999_999] {
            let _ = retry.delay(attempt, unit);
        }
    }
    if let Some(mail) = &config.mail {
        for attempt in [1, mail.retry.max_attempts, u32::MAX] {
            let _ = mail.retry.delay(attempt, 0.999_999);
        }
    }
    true
}

/// The fixture standing in for `path`: `fuzz/fixtures/NAME` for the names the fixture
/// node has, else a name that does not exist there.
fn fixture_file(path: &Path) -> PathBuf {
    const KNOWN: [&str; 7] =
        ["node.chain.pem", "node.key.pem", "seal.chain.pem", "seal.key.pem", "clerk.chain.pem", "root.pem", "crls.pem"];
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let dir = fixtures::dir();
    match KNOWN.iter().find(|k| **k == name) {
        Some(k) => dir.join(k),
        None => dir.join("missing"),
    }
}
