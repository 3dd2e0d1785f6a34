//! Revocation that bites on live connections: which connections may carry documents, and
//! closing those a new CRL revokes.
//!
//! The TLS handshake validates a peer's chain with the CRLs held at that moment; a connection
//! then lives for minutes or hours. Every authenticated connection, inbound (a neighbour, a
//! clerk) and outbound (to a neighbour), is registered here with the chain it presented. When
//! the CRL set changes, [`Node::recheck_connections`] validates every registered chain again
//! and closes, with [`close::REVOKED`], those no longer valid, so nothing more is handed to a
//! revoked node or taken from a revoked clerk.
//!
//! A certificate whose revocation cannot be checked (no CRL of its issuer, or one older than
//! `crl.freshness`) is not taken on trust: a clerk is turned away with
//! [`close::NO_REVOCATION_INFO`], and a neighbour's connection carries CRL requests only (that
//! is how a fresh node gets its first CRLs from its parent) until the CRLs arrive, unless the
//! operator set `crl.danger_accept_unchecked`, which turns each refusal into an alert.

use std::collections::HashMap;
use std::sync::Mutex;

use pki::{AgencyCode, ChainError, Profile};
use rustls::pki_types::CertificateDer;

use crate::Node;
use crate::server::close;

/// The live authenticated connections, by quinn's stable id.
#[derive(Debug, Default)]
pub struct LiveConnections {
    by_id: Mutex<HashMap<usize, Live>>,
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

impl Node {
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
        let mut live = lock(&self.live.by_id);
        live.retain(|_, l| l.connection.close_reason().is_none());
        live.insert(connection.stable_id(), Live { connection: connection.clone(), chain, profile, who, vouched });
        standing
    }

    /// How a registered connection may be used now: vouched once, it stays so (a revocation
    /// closes it); otherwise it is judged again with the CRLs held now.
    pub(crate) fn standing(&self, connection: &quinn::Connection) -> Standing {
        let (chain, profile, who) = {
            let live = lock(&self.live.by_id);
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
            && let Some(l) = lock(&self.live.by_id).get_mut(&connection.stable_id())
        {
            l.vouched = true;
        }
        standing
    }

    fn standing_of(&self, chain: &[Vec<u8>], profile: Profile, who: &str) -> Standing {
        let now = self.now();
        let verified = match self.trust.validate(chain, now, profile) {
            Ok(v) => v,
            Err(e) => return Standing::CrlsOnly(format!("its certificate is not valid now: {e}")),
        };
        match self.trust.chain_gap(&verified, now) {
            None => Standing::Vouched,
            Some(gap) if self.config.crl_accept_unchecked => {
                self.revocation_unchecked(who, &gap.to_string(), true);
                Standing::Vouched
            }
            Some(gap) => {
                self.revocation_unchecked(who, &gap.to_string(), false);
                Standing::CrlsOnly(gap.to_string())
            }
        }
    }

    /// Validates every live connection's chain again (after the CRL set changed) and closes
    /// those no longer valid: a revoked neighbour gets nothing more, a revoked clerk's session
    /// ends. Returns how many were closed.
    pub fn recheck_connections(&self) -> usize {
        let now = self.now();
        let live: Vec<(usize, Live)> = {
            let mut live = lock(&self.live.by_id);
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
            lock(&self.live.by_id).remove(&id);
            closed += 1;
        }
        closed
    }

    /// Every live authenticated connection, inbound and outbound: who (as alerts name it) and
    /// for which profile. What the tests watch to see a revoked peer cut off.
    pub fn live_connections(&self) -> Vec<(String, Profile)> {
        let live = lock(&self.live.by_id);
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
