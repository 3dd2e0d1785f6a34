//! The trust side of a running node ([`TrustState`]): the trust anchors and CRLs, the CRL
//! references computed for what it sends (`crl_refs`), the wake-up of the CRL fetch from the
//! parent (`crls`), and revocation that bites on live connections: which connections may carry
//! documents, and closing those a new CRL revokes.
//!
//! The TLS handshake validates a peer's chain with the CRLs held at that moment; a connection
//! then lives for minutes or hours. Every authenticated connection, inbound (a neighbour, a
//! clerk) and outbound (to a neighbour), is registered here with the chain it presented. When
//! the CRL set changes, [`TrustState::recheck_connections`] validates every registered chain again
//! and closes, with [`close::REVOKED`], those no longer valid, so nothing more is handed to a
//! revoked node or taken from a revoked clerk.
//!
//! A certificate whose revocation cannot be checked (no CRL of its issuer, or one older than
//! `crl.freshness`) is not taken on trust: a clerk is turned away with
//! [`close::NO_REVOCATION_INFO`], and a neighbour's connection carries CRL requests only (that
//! is how a fresh node gets its first CRLs from its parent) until the CRLs arrive, unless the
//! operator set `crl.danger_accept_unchecked`, which turns each refusal into an alert.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pki::{AgencyCode, ChainError, Profile};
use rustls::pki_types::CertificateDer;
use tokio::sync::Notify;

use crate::crl_refs::{RefCache, Referenced};
use crate::health::Observations;
use crate::server::close;
use crate::trust::Trust;

/// What a running node trusts and how that bites: the anchors and CRLs ([`Trust`]), the CRL
/// references of what it sends, the CRL fetch's wake-up, and the live authenticated
/// connections with their chains. One part of [`crate::Node`], shared (behind an `Arc`) with
/// the outbound client, which registers and checks the connections it opens.
#[derive(Debug)]
pub struct TrustState {
    trust: Arc<Trust>,
    /// Every live authenticated connection, by quinn's stable id.
    live: Mutex<HashMap<usize, Live>>,
    /// Which CRLs the documents and notices this node sends reference, per set of signer
    /// chains (see `crl_refs::RefCache`).
    crl_refs: RefCache,
    /// Wakes the CRL task to fetch from the parent (see `crls`).
    crl_fetch: Notify,
    /// `crl.danger_accept_unchecked`: a certificate whose revocation cannot be checked is
    /// accepted (with an alert) instead of refused.
    accept_unchecked: bool,
    /// Where unchecked revocations are reported.
    observed: Arc<Observations>,
}

#[derive(Debug, Clone)]
struct Live {
    connection: quinn::Connection,
    chain: Vec<Vec<u8>>,
    profile: Profile,
    who: String,
    /// Its chain was checked against fresh CRLs (no revocation gap) since it connected.
    vouched: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The peer's certificate chain, as the TLS layer verified it.
pub(crate) fn peer_chain(conn: &quinn::Connection) -> Option<Vec<Vec<u8>>> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    Some(certs.iter().map(|c| c.as_ref().to_vec()).collect())
}

/// How a connection whose certificate's revocation cannot be checked may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Checked against fresh CRLs, or accepted unchecked by the operator's opt-in.
    Vouched,
    /// CRL requests only; the reason.
    CrlsOnly(String),
}

impl TrustState {
    /// The trust side of a node holding `trust`; `accept_unchecked` is
    /// `crl.danger_accept_unchecked`, and unchecked revocations are reported to `observed`.
    pub fn new(trust: Arc<Trust>, accept_unchecked: bool, observed: Arc<Observations>) -> TrustState {
        TrustState {
            trust,
            live: Mutex::new(HashMap::new()),
            crl_refs: RefCache::default(),
            crl_fetch: Notify::new(),
            accept_unchecked,
            observed,
        }
    }

    /// The anchors, the CRLs held and the validation cache.
    pub fn trust(&self) -> &Arc<Trust> {
        &self.trust
    }

    /// The CRLs to reference with a document or receipts whose signers' chains are `chains`
    /// (see [`RefCache::refs_for`]).
    pub fn crl_refs_for(&self, chains: &[Vec<Vec<u8>>]) -> Arc<Referenced> {
        self.crl_refs.refs_for(&self.trust, chains)
    }

    /// The CRLs to send along with a document or receipt whose signers' chains are `chains`
    /// (DER): every held CRL of a CA on those chains (and the root's).
    pub fn crls_for(&self, chains: &[Vec<Vec<u8>>]) -> Vec<Vec<u8>> {
        let mut issuers: Vec<Vec<u8>> = self.trust.anchors().iter().map(|a| a.subject_raw.clone()).collect();
        for chain in chains {
            for der in chain {
                if let Ok(c) = self.trust.cache().certificate(der) {
                    issuers.push(c.issuer_raw.clone());
                }
            }
        }
        self.trust
            .validator()
            .crls()
            .iter()
            .filter(|c| issuers.contains(&c.issuer_raw))
            .map(|c| c.der().to_vec())
            .collect()
    }

    /// Asks the CRL task to fetch CRLs from the parent now (a child does on connecting to it).
    pub(crate) fn fetch_crls(&self) {
        self.crl_fetch.notify_one();
    }

    /// Resolves when [`TrustState::fetch_crls`] was called.
    pub(crate) async fn crls_wanted(&self) {
        self.crl_fetch.notified().await;
    }

    /// Registers an authenticated connection presenting `chain` for `profile`, and says how
    /// it may be used now. `who` names it in alerts ("node 000.00.41.H49", "clerk …").
    pub(crate) fn register_connection(
        &self,
        connection: &quinn::Connection,
        chain: Vec<Vec<u8>>,
        profile: Profile,
        who: String,
    ) -> Standing {
        let standing = self.standing_of(&chain, profile, &who);
        let vouched = standing == Standing::Vouched;
        let mut live = lock(&self.live);
        live.retain(|_, l| l.connection.close_reason().is_none());
        live.insert(connection.stable_id(), Live { connection: connection.clone(), chain, profile, who, vouched });
        standing
    }

    /// How a registered connection may be used now: vouched once, it stays so (a revocation
    /// closes it); otherwise it is judged again with the CRLs held now.
    pub(crate) fn standing(&self, connection: &quinn::Connection) -> Standing {
        let (chain, profile, who) = {
            let live = lock(&self.live);
            match live.get(&connection.stable_id()) {
                Some(l) if l.vouched => return Standing::Vouched,
                Some(l) => (l.chain.clone(), l.profile, l.who.clone()),
                None => match peer_chain(connection) {
                    Some(chain) => (chain, Profile::Node, "a neighbour".to_owned()),
                    None => return Standing::CrlsOnly("the peer presented no certificate".into()),
                },
            }
        };
        let standing = self.standing_of(&chain, profile, &who);
        if standing == Standing::Vouched
            && let Some(l) = lock(&self.live).get_mut(&connection.stable_id())
        {
            l.vouched = true;
        }
        standing
    }

    fn standing_of(&self, chain: &[Vec<u8>], profile: Profile, who: &str) -> Standing {
        let now = time::OffsetDateTime::now_utc();
        let verified = match self.trust.validate(chain, now, profile) {
            Ok(v) => v,
            Err(e) => return Standing::CrlsOnly(format!("its certificate is not valid now: {e}")),
        };
        match self.trust.chain_gap(&verified, now) {
            None => Standing::Vouched,
            Some(gap) if self.accept_unchecked => {
                self.observed.revocation_unchecked(who, &gap.to_string(), true);
                Standing::Vouched
            }
            Some(gap) => {
                self.observed.revocation_unchecked(who, &gap.to_string(), false);
                Standing::CrlsOnly(gap.to_string())
            }
        }
    }

    /// Validates every live connection's chain again (after the CRL set changed) and closes
    /// those no longer valid: a revoked neighbour gets nothing more, a revoked clerk's session
    /// ends. Returns how many were closed.
    pub fn recheck_connections(&self) -> usize {
        let now = time::OffsetDateTime::now_utc();
        let live: Vec<(usize, Live)> = {
            let mut live = lock(&self.live);
            live.retain(|_, l| l.connection.close_reason().is_none());
            live.iter().map(|(id, l)| (*id, l.clone())).collect()
        };
        let mut closed = 0;
        for (id, Live { connection, chain, profile, who, .. }) in live {
            let reason = match self.trust.validate(&chain, now, profile) {
                Ok(_) => continue,
                Err(e @ ChainError::Revoked { .. }) => format!("certificate revoked: {e}"),
                Err(e) => format!("certificate no longer valid: {e}"),
            };
            tracing::warn!(peer = %who, reason = %reason, "closing a live connection: its certificate is no longer valid");
            connection.close(close::REVOKED.into(), truncate_reason(&reason).as_bytes());
            lock(&self.live).remove(&id);
            closed += 1;
        }
        closed
    }

    /// Every live authenticated connection, inbound and outbound: who (as alerts name it) and
    /// for which profile. What the tests watch to see a revoked peer cut off.
    pub fn live_connections(&self) -> Vec<(String, Profile)> {
        let live = lock(&self.live);
        live.values().filter(|l| l.connection.close_reason().is_none()).map(|l| (l.who.clone(), l.profile)).collect()
    }
}

/// A close reason travels in one QUIC frame: keep it short.
pub(crate) fn truncate_reason(reason: &str) -> String {
    reason.chars().take(200).collect()
}

/// How a neighbour is named in alerts.
pub(crate) fn node_named(agency: &AgencyCode) -> String {
    format!("node {agency}")
}
