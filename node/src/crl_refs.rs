//! CRLs by reference: documents and notices name the CRLs covering their signers' chains
//! (issuer, number, SHA-256 of the DER) instead of carrying them, and a receiver lacking one
//! asks the neighbour that sent it, once, then keeps it.
//!
//! The exchange stays on the request's own stream and needs no second request in the other
//! direction: a receiver that lacks a referenced CRL answers [`NodeResponse::CrlsWanted`]
//! before reading a byte of the attachments, and the sender sends the same request again, on a
//! new stream, with the wanted CRLs' DER in `crls_asked`. In the common case (the receiver
//! holds every referenced CRL, or a newer one of its CA: the parent pushes new CRLs down the
//! tree, and the first document through a neighbour leaves its CRLs there) this costs no round
//! trip at all; a miss costs one, on the sender's own connection, so it cannot deadlock on
//! flow control as a request from the receiver back to the sender could.
//!
//! A CRL sent when asked is used only if its SHA-256 is one the receiver asked for, its size
//! and count are within `limits.max_crl_fetch_count` and `limits.max_crl_fetch_bytes`, and it
//! is signed by a CA this node knows (the root, a CA learned from a validated path, or a CA on
//! the chains it is to check, which verification then validates). Anything else leaves the
//! reference unresolved, and the document or batch is refused for now (transient), as a
//! revocation gap is: a referenced CRL is never replaced by an older one. What was fetched is
//! kept the way carried CRLs always were (`intake`, `notices`), so the next one needs no fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pki::{Certificate, Crl, Validator};
use serde_bytes::ByteBuf;

use crate::protocol::{CrlRef, ErrorKind, MAX_CRL_REFS, NodeResponse};
use crate::trust::Trust;
use crate::{Metrics, Node};

/// Most sets of signer chains whose references are remembered; past it the cache starts
/// again (a node sees one set per signing official and agency seal, a few thousand at most).
const MAX_CACHED_CHAIN_SETS: usize = 4096;

/// The CRLs one set of signer chains references, computed once per set and CRL state.
#[derive(Debug, Default)]
pub struct Referenced {
    /// The CRLs held for the CAs on those chains (and the root's), newest first per CA.
    pub crls: Vec<Arc<Crl>>,
    /// Their references, in the same order.
    pub refs: Vec<CrlRef>,
}

impl Referenced {
    /// The DER of the CRLs a receiver asked for (`wanted`, by SHA-256), for the request sent
    /// again: those with a wanted digest, and in case this node's CRL of that CA changed since
    /// the first request (`previous` references), the one it holds now.
    pub fn asked(&self, wanted: &[ByteBuf], previous: &[CrlRef]) -> Vec<ByteBuf> {
        let issuers: Vec<&[u8]> = previous
            .iter()
            .filter(|r| wanted.iter().any(|w| w.as_slice() == r.sha256.as_slice()))
            .map(|r| r.issuer.as_slice())
            .collect();
        self.crls
            .iter()
            .filter(|c| {
                wanted.iter().any(|w| w.as_slice() == c.fingerprint().as_slice())
                    || issuers.contains(&c.issuer_raw.as_slice())
            })
            .map(|c| ByteBuf::from(c.der().to_vec()))
            .collect()
    }
}

/// What a receiver asked for, for the request sent again: the digests it wants and the
/// references of the first request.
#[derive(Debug)]
pub struct Asked {
    /// SHA-256 of each CRL wanted ([`NodeResponse::CrlsWanted`]).
    pub wanted: Vec<ByteBuf>,
    /// The references the first request carried.
    pub previous: Vec<CrlRef>,
}

/// The sender's cache of [`Referenced`], keyed by the SHA-256 of the signer chains and
/// emptied whenever the node's CRL set changes (a new validator).
#[derive(Debug, Default)]
pub struct RefCache {
    inner: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    /// The validator the entries were computed with.
    validator: Option<Arc<Validator>>,
    by_chains: HashMap<[u8; 32], Arc<Referenced>>,
}

/// The reference to `crl`.
pub fn reference(crl: &Crl) -> CrlRef {
    CrlRef {
        issuer: ByteBuf::from(crl.issuer_raw.clone()),
        number: ByteBuf::from(crl.number.as_ref().map(|n| n.as_bytes().to_vec()).unwrap_or_default()),
        sha256: ByteBuf::from(crl.fingerprint().to_vec()),
    }
}

/// A key for a set of chains: SHA-256 over each certificate's length and bytes, chain by chain.
fn chains_key(chains: &[Vec<Vec<u8>>]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for chain in chains {
        ctx.update(&(chain.len() as u64).to_be_bytes());
        for der in chain {
            ctx.update(&(der.len() as u64).to_be_bytes());
            ctx.update(der);
        }
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

impl RefCache {
    /// The CRLs to reference with a document or receipts whose signers' chains are `chains`:
    /// every CRL `trust` holds of a CA on those chains, and the root's. Computed once per set
    /// of chains while the CRL set stays the same.
    pub fn refs_for(&self, trust: &Trust, chains: &[Vec<Vec<u8>>]) -> Arc<Referenced> {
        let validator = trust.validator();
        let key = chains_key(chains);
        {
            let mut state = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if state.validator.as_ref().is_some_and(|v| Arc::ptr_eq(v, &validator)) {
                if let Some(found) = state.by_chains.get(&key) {
                    return found.clone();
                }
            } else {
                state.validator = Some(validator.clone());
                state.by_chains.clear();
            }
        }
        let mut issuers: Vec<Vec<u8>> = trust.anchors().iter().map(|a| a.subject_raw.clone()).collect();
        let cache = trust.cache();
        for der in chains.iter().flatten() {
            if let Ok(c) = cache.certificate(der)
                && !issuers.contains(&c.issuer_raw)
            {
                issuers.push(c.issuer_raw.clone());
            }
        }
        let crls: Vec<Arc<Crl>> =
            validator.crls().iter_shared().filter(|c| issuers.contains(&c.issuer_raw)).cloned().collect();
        let refs = crls.iter().map(|c| reference(c)).collect();
        let referenced = Arc::new(Referenced { crls, refs });
        let mut state = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Only for the validator it was computed with: a CRL set replaced meanwhile wins.
        if state.validator.as_ref().is_some_and(|v| Arc::ptr_eq(v, &validator)) {
            if state.by_chains.len() >= MAX_CACHED_CHAIN_SETS {
                state.by_chains.clear();
            }
            state.by_chains.insert(key, referenced.clone());
        }
        referenced
    }
}

/// What a receiver makes of the CRL references of a request.
#[derive(Debug)]
pub enum Resolution {
    /// Every referenced CRL is held here (or a newer one of its CA); `fetched` are those the
    /// neighbour sent as asked, checked, to verify with and keep.
    Ready {
        /// The CRLs sent as asked.
        fetched: Vec<Arc<Crl>>,
    },
    /// Ask the neighbour for these (by SHA-256), before reading anything more.
    Wanted(Vec<ByteBuf>),
    /// Not taken now: a referenced CRL is missing and was not (properly) sent.
    Unresolved(String),
    /// The request itself is wrong (too many references).
    BadRequest(String),
}

impl Resolution {
    /// The answer to give instead of serving the request, unless the CRLs are ready.
    pub fn into_fetched(self) -> Result<Vec<Arc<Crl>>, NodeResponse> {
        match self {
            Resolution::Ready { fetched } => Ok(fetched),
            Resolution::Wanted(sha256) => Err(NodeResponse::CrlsWanted { sha256 }),
            Resolution::Unresolved(reason) => Err(NodeResponse::Error {
                kind: ErrorKind::Unavailable,
                message: format!(
                    "not taken now: the revocation of its signers cannot be checked here ({reason}); send again later"
                ),
            }),
            Resolution::BadRequest(message) => Err(NodeResponse::Error { kind: ErrorKind::BadRequest, message }),
        }
    }
}

/// True when a CRL `held` here stands for the one `wanted` references: the same bytes, or a
/// newer CRL (a higher number) of the same CA. Never an older one.
fn stands_for(held: &Crl, wanted: &CrlRef) -> bool {
    if held.fingerprint().as_slice() == wanted.sha256.as_slice() {
        return true;
    }
    let (Some(number), false) = (&held.number, wanted.number.is_empty()) else { return false };
    held.issuer_raw.as_slice() == wanted.issuer.as_slice() && number_greater(number.as_bytes(), &wanted.number)
}

/// `a > b` for unsigned big-endian numbers (leading zeros allowed).
fn number_greater(a: &[u8], b: &[u8]) -> bool {
    let trim = |x: &[u8]| -> Vec<u8> { x.iter().copied().skip_while(|b| *b == 0).collect() };
    let (a, b) = (trim(a), trim(b));
    a.len() > b.len() || (a.len() == b.len() && a > b)
}

/// Resolves the references `refs` of a neighbour's request, with the CRLs it sent as asked
/// (`asked`, empty on a first request), and counts the asks and fetches in the node's metrics.
/// `chain_cas` gives the CA certificates on the chains the request is to be checked with; it
/// is called only when CRLs were sent.
pub fn resolve(
    node: &Node,
    refs: &[CrlRef],
    asked: &[ByteBuf],
    chain_cas: impl FnOnce() -> Vec<Arc<Certificate>>,
) -> Resolution {
    let limits = FetchLimits {
        max_count: node.config.limits.max_crl_fetch_count,
        max_bytes: node.config.limits.max_crl_fetch_bytes,
    };
    let resolution = resolve_with(node.trust.trust(), &limits, refs, asked, chain_cas);
    match &resolution {
        Resolution::Wanted(_) => Metrics::bump(&node.observed.metrics().crl_asks),
        Resolution::Ready { fetched } => {
            node.observed.metrics().crls_fetched.fetch_add(fetched.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Resolution::Unresolved(_) | Resolution::BadRequest(_) => {}
    }
    resolution
}

/// The bounds on what a neighbour may send when asked (`limits.max_crl_fetch_count`,
/// `limits.max_crl_fetch_bytes`).
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    /// Most CRLs.
    pub max_count: usize,
    /// Most bytes of them together.
    pub max_bytes: u64,
}

/// [`resolve`] against a trust state alone (what the fuzz target drives): no counting.
pub fn resolve_with(
    trust: &Trust,
    limits: &FetchLimits,
    refs: &[CrlRef],
    asked: &[ByteBuf],
    chain_cas: impl FnOnce() -> Vec<Arc<Certificate>>,
) -> Resolution {
    if refs.len() > MAX_CRL_REFS {
        return Resolution::BadRequest(format!("{} CRL references in one request; at most {MAX_CRL_REFS}", refs.len()));
    }
    let validator = trust.validator();
    let mut missing: Vec<&CrlRef> = Vec::new();
    for r in refs {
        if !validator.crls().iter().any(|held| stands_for(held, r)) && !missing.iter().any(|m| m.sha256 == r.sha256) {
            missing.push(r);
        }
    }
    if missing.is_empty() {
        return Resolution::Ready { fetched: Vec::new() };
    }
    if asked.is_empty() {
        if missing.len() > limits.max_count {
            return Resolution::Unresolved(format!(
                "it references {} CRLs this node lacks, more than limits.max_crl_fetch_count ({}) asked for at once",
                missing.len(),
                limits.max_count
            ));
        }
        return Resolution::Wanted(missing.iter().map(|m| m.sha256.clone()).collect());
    }
    if asked.len() > limits.max_count {
        return Resolution::Unresolved(format!(
            "the neighbour sent {} CRLs, more than limits.max_crl_fetch_count ({})",
            asked.len(),
            limits.max_count
        ));
    }
    let bytes: u64 = asked.iter().map(|d| d.len() as u64).sum();
    if bytes > limits.max_bytes {
        return Resolution::Unresolved(format!(
            "the neighbour sent {bytes} bytes of CRLs, more than limits.max_crl_fetch_bytes ({})",
            limits.max_bytes
        ));
    }
    let cas = chain_cas();
    let mut fetched: Vec<Arc<Crl>> = Vec::new();
    for der in asked {
        let digest = pki::sha256(der);
        let Some(wanted) = missing.iter().find(|m| m.sha256.as_slice() == digest.as_slice()) else {
            if refs.iter().any(|r| r.sha256.as_slice() == digest.as_slice()) {
                continue; // Referenced and held here after all (it came meanwhile).
            }
            return Resolution::Unresolved(
                "a CRL the neighbour sent is not one this node asked for (its SHA-256 matches no reference)".into(),
            );
        };
        let crl = match trust.parse_crl(der) {
            Ok(c) => c,
            Err(e) => return Resolution::Unresolved(format!("a CRL the neighbour sent is malformed: {e}")),
        };
        if crl.issuer_raw.as_slice() != wanted.issuer.as_slice() {
            return Resolution::Unresolved(format!("the CRL of {} was referenced as another CA's", crl.issuer));
        }
        let known = trust.knows_signer_of(&crl) || cas.iter().any(|ca| validator.crl_signed_by(&crl, ca).is_ok());
        if !known {
            return Resolution::Unresolved(format!(
                "the CRL of {} the neighbour sent is not signed by a CA this node knows",
                crl.issuer
            ));
        }
        if !fetched.iter().any(|f| f.fingerprint() == crl.fingerprint()) {
            fetched.push(crl);
        }
    }
    let unsent = missing.iter().filter(|m| !fetched.iter().any(|f| f.fingerprint().as_slice() == m.sha256.as_slice()));
    let unsent = unsent.count();
    if unsent > 0 {
        return Resolution::Unresolved(format!("the neighbour did not send {unsent} of the CRLs this node asked for"));
    }
    Resolution::Ready { fetched }
}

/// The CA certificates (all but the leaf) of `chains`, through the trust state's parse cache.
pub fn cas_of<'a>(trust: &Trust, chains: impl IntoIterator<Item = &'a [Vec<u8>]>) -> Vec<Arc<Certificate>> {
    let cache = trust.cache();
    chains
        .into_iter()
        .flat_map(|chain| chain.iter().skip(1))
        .filter_map(|der| cache.certificate(der).ok())
        .filter(|c| c.ca.is_some())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_as_unsigned_big_endian() {
        assert!(number_greater(&[2], &[1]));
        assert!(number_greater(&[1, 0], &[0xff]));
        assert!(number_greater(&[0, 0, 3], &[2]));
        assert!(!number_greater(&[2], &[2]));
        assert!(!number_greater(&[0, 2], &[2]));
        assert!(!number_greater(&[1], &[1, 0]));
        assert!(!number_greater(&[], &[1]));
    }

    #[test]
    fn chain_sets_differ_by_their_cut_not_only_their_bytes() {
        let one = vec![vec![vec![1, 2], vec![3]]];
        let other = vec![vec![vec![1], vec![2, 3]]];
        assert_ne!(chains_key(&one), chains_key(&other));
        assert_eq!(chains_key(&one), chains_key(&one.clone()));
    }
}
