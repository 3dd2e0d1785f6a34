//! Who may hold what of a node's connection capacity.
//!
//! Admission happens in two steps, so that nothing unauthenticated can hold what authenticated
//! peers need:
//! 1. A **handshake slot**, taken before the handshake starts and given back when it ends
//!    (bounded in time by `limits.handshake_timeout`, see `server`). Attempts from addresses
//!    not yet validated may hold only `limits.max_unvalidated_handshakes` slots; beyond that
//!    they are answered with a QUIC Retry, which costs the node no state and makes the client
//!    prove it receives at its address. A validated address may hold
//!    `limits.max_handshakes_per_address` slots, everyone together `limits.max_handshakes`.
//! 2. A **connection slot**, taken only once the peer's certificate is validated and its ALPN
//!    checked, held for the connection's life: `limits.max_connections` in all,
//!    `limits.max_connections_per_peer` per neighbour agency, and for this agency's clerks a
//!    separate pool of `limits.max_clerk_connections` of which one clerk certificate may hold
//!    `limits.max_connections_per_certificate` — so one clerk cannot starve the others, and
//!    the clerks cannot starve the neighbours.
//!
//! The decisions are plain counting under a lock, with no I/O and no clock, so they are tested
//! here at their edges; refusals are counted and logged at most once a second per kind.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pki::AgencyCode;

use crate::config::Limits;

/// The caps admission applies, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    /// `limits.max_handshakes`.
    pub max_handshakes: usize,
    /// `limits.max_unvalidated_handshakes`.
    pub max_unvalidated_handshakes: usize,
    /// `limits.max_handshakes_per_address`.
    pub max_handshakes_per_address: usize,
    /// `limits.max_connections`.
    pub max_connections: usize,
    /// `limits.max_connections_per_peer`.
    pub max_connections_per_peer: usize,
    /// `limits.max_clerk_connections`.
    pub max_clerk_connections: usize,
    /// `limits.max_connections_per_certificate`.
    pub max_connections_per_certificate: usize,
}

impl From<&Limits> for AdmissionLimits {
    fn from(l: &Limits) -> Self {
        AdmissionLimits {
            max_handshakes: l.max_handshakes,
            max_unvalidated_handshakes: l.max_unvalidated_handshakes,
            max_handshakes_per_address: l.max_handshakes_per_address,
            max_connections: l.max_connections,
            max_connections_per_peer: l.max_connections_per_peer,
            max_clerk_connections: l.max_clerk_connections,
            max_connections_per_certificate: l.max_connections_per_certificate,
        }
    }
}

/// Which cap refused an attempt. The message names the configuration key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refused {
    /// Every handshake slot is taken.
    Handshakes,
    /// This (validated) address holds all the handshake slots it may.
    HandshakesFromAddress,
    /// Every connection slot is taken.
    Connections,
    /// This neighbour agency holds all the connections it may.
    NeighbourConnections,
    /// The agency's clerks hold all the connections they may.
    ClerkConnections,
    /// This clerk certificate holds all the connections it may.
    CertificateConnections,
}

impl Refused {
    const ALL: [Refused; 6] = [
        Refused::Handshakes,
        Refused::HandshakesFromAddress,
        Refused::Connections,
        Refused::NeighbourConnections,
        Refused::ClerkConnections,
        Refused::CertificateConnections,
    ];

    fn index(self) -> usize {
        Refused::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::Handshakes => "too many handshakes in progress (limits.max_handshakes)",
            Refused::HandshakesFromAddress => {
                "too many handshakes in progress from this address (limits.max_handshakes_per_address)"
            }
            Refused::Connections => "too many connections to this node (limits.max_connections)",
            Refused::NeighbourConnections => {
                "too many connections from this neighbour agency (limits.max_connections_per_peer)"
            }
            Refused::ClerkConnections => {
                "too many connections from this agency's clerks (limits.max_clerk_connections)"
            }
            Refused::CertificateConnections => {
                "too many connections with this clerk certificate (limits.max_connections_per_certificate)"
            }
        })
    }
}

/// What to do with a connection attempt before its handshake.
#[derive(Debug)]
pub enum HandshakeDecision {
    /// Go ahead; the slot is held until dropped (when the handshake ends).
    Accept(HandshakeSlot),
    /// Answer with a QUIC Retry: the address is not validated and the node is busy.
    Retry,
    /// Refuse.
    Refuse(Refused),
}

/// An authenticated peer asking for a connection slot.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Its agency, from its certificate.
    pub agency: AgencyCode,
    /// A clerk of this agency (else a neighbour node).
    pub clerk: bool,
    /// SHA-256 of its certificate.
    pub certificate: [u8; 32],
}

#[derive(Debug, Default)]
struct State {
    handshakes: usize,
    unvalidated: usize,
    per_address: HashMap<IpAddr, usize>,
    connections: usize,
    clerks: usize,
    per_agency: HashMap<AgencyCode, usize>,
    per_certificate: HashMap<[u8; 32], usize>,
}

fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

/// The node's admission state.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    state: Arc<Mutex<State>>,
    refusals: [AtomicU64; 6],
    retries: AtomicU64,
    logged: Mutex<[Option<(Instant, u64)>; 7]>,
}

impl Admission {
    /// Admission under `limits`.
    pub fn new(limits: AdmissionLimits) -> Self {
        Admission {
            limits,
            state: Arc::default(),
            refusals: Default::default(),
            retries: AtomicU64::new(0),
            logged: Mutex::new([None; 7]),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Decides on a connection attempt from `from`, whose address is `validated` or not, before
    /// any handshake work is done.
    pub fn handshake(&self, from: IpAddr, validated: bool) -> HandshakeDecision {
        let l = &self.limits;
        let mut s = self.lock();
        if !validated {
            if s.unvalidated >= l.max_unvalidated_handshakes || s.handshakes >= l.max_handshakes {
                drop(s);
                let total = self.retries.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(since) = self.due(6, total) {
                    tracing::info!(
                        since_last_report = since,
                        total,
                        "connection attempts from unproven addresses answered with a Retry (handshakes: limits.max_unvalidated_handshakes reached)"
                    );
                }
                return HandshakeDecision::Retry;
            }
            s.handshakes += 1;
            s.unvalidated += 1;
            return HandshakeDecision::Accept(HandshakeSlot { state: self.state.clone(), address: None });
        }
        if s.handshakes >= l.max_handshakes {
            drop(s);
            return HandshakeDecision::Refuse(self.refused(Refused::Handshakes));
        }
        let n = s.per_address.entry(from).or_insert(0);
        if *n >= l.max_handshakes_per_address {
            drop(s);
            return HandshakeDecision::Refuse(self.refused(Refused::HandshakesFromAddress));
        }
        *n += 1;
        s.handshakes += 1;
        HandshakeDecision::Accept(HandshakeSlot { state: self.state.clone(), address: Some(from) })
    }

    /// A connection slot for an authenticated `peer`, or the cap that refuses it.
    pub fn connection(&self, peer: &Peer) -> Result<ConnectionSlot, Refused> {
        let l = &self.limits;
        let mut s = self.lock();
        let refused = if s.connections >= l.max_connections {
            Some(Refused::Connections)
        } else if peer.clerk {
            if s.clerks >= l.max_clerk_connections {
                Some(Refused::ClerkConnections)
            } else if s.per_certificate.get(&peer.certificate).copied().unwrap_or(0)
                >= l.max_connections_per_certificate
            {
                Some(Refused::CertificateConnections)
            } else {
                None
            }
        } else if s.per_agency.get(&peer.agency).copied().unwrap_or(0) >= l.max_connections_per_peer {
            Some(Refused::NeighbourConnections)
        } else {
            None
        };
        if let Some(r) = refused {
            drop(s);
            return Err(self.refused(r));
        }
        s.connections += 1;
        if peer.clerk {
            s.clerks += 1;
            *s.per_certificate.entry(peer.certificate).or_insert(0) += 1;
        } else {
            *s.per_agency.entry(peer.agency).or_insert(0) += 1;
        }
        Ok(ConnectionSlot { state: self.state.clone(), peer: *peer })
    }

    /// Counts a refusal (and logs the count at most once a second per kind). Returns it.
    fn refused(&self, why: Refused) -> Refused {
        let total = self.refusals[why.index()].fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(since) = self.due(why.index(), total) {
            tracing::warn!(refused = %why, since_last_report = since, total, "connection attempts refused");
        }
        why
    }

    /// Whether line `which` is due for logging (at most once a second), with the count since
    /// it was last logged; `total` is the count now.
    fn due(&self, which: usize, total: u64) -> Option<u64> {
        let mut logged = self.logged.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = logged.get_mut(which)?;
        if entry.is_some_and(|(at, _)| at.elapsed() < Duration::from_secs(1)) {
            return None;
        }
        let since = total - entry.map_or(0, |(_, n)| n);
        *entry = Some((Instant::now(), total));
        Some(since)
    }

    /// Refusals so far, per kind.
    pub fn refusals(&self) -> Vec<(Refused, u64)> {
        Refused::ALL.iter().map(|r| (*r, self.refusals[r.index()].load(Ordering::Relaxed))).collect()
    }

    /// Attempts answered with a Retry so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Connections held now per neighbour agency, and by clerks (for `/metrics`).
    pub fn connections_by_agency(&self) -> (Vec<(AgencyCode, usize)>, usize) {
        let s = self.lock();
        (s.per_agency.iter().map(|(a, n)| (*a, *n)).collect(), s.clerks)
    }

    /// Handshakes in progress now (unvalidated ones among them), and connections held.
    pub fn in_use(&self) -> (usize, usize, usize) {
        let s = self.lock();
        (s.handshakes, s.unvalidated, s.connections)
    }
}

/// A handshake in progress; dropping it gives the slot back.
#[derive(Debug)]
pub struct HandshakeSlot {
    state: Arc<Mutex<State>>,
    /// The validated address it counts against, if any.
    address: Option<IpAddr>,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.handshakes = s.handshakes.saturating_sub(1);
        match self.address {
            Some(a) => release(&mut s.per_address, &a),
            None => s.unvalidated = s.unvalidated.saturating_sub(1),
        }
    }
}

/// An admitted connection; dropping it gives the slot back.
#[derive(Debug)]
pub struct ConnectionSlot {
    state: Arc<Mutex<State>>,
    peer: Peer,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.connections = s.connections.saturating_sub(1);
        if self.peer.clerk {
            s.clerks = s.clerks.saturating_sub(1);
            release(&mut s.per_certificate, &self.peer.certificate);
        } else {
            release(&mut s.per_agency, &self.peer.agency);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> AdmissionLimits {
        AdmissionLimits {
            max_handshakes: 6,
            max_unvalidated_handshakes: 2,
            max_handshakes_per_address: 3,
            max_connections: 10,
            max_connections_per_peer: 2,
            max_clerk_connections: 5,
            max_connections_per_certificate: 2,
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn accept(d: HandshakeDecision) -> HandshakeSlot {
        match d {
            HandshakeDecision::Accept(s) => s,
            other => panic!("expected Accept, got {other:?}"),
        }
    }

    #[test]
    fn unvalidated_attempts_beyond_their_share_are_sent_a_retry() {
        let a = Admission::new(limits());
        let first = accept(a.handshake(ip(1), false));
        let _second = accept(a.handshake(ip(2), false));
        assert!(matches!(a.handshake(ip(3), false), HandshakeDecision::Retry), "third unvalidated");
        assert_eq!(a.retries(), 1);
        // A validated address still gets in while the unvalidated share is full.
        let _v = accept(a.handshake(ip(3), true));
        drop(first);
        let _third = accept(a.handshake(ip(4), false));
        assert_eq!(a.in_use(), (3, 2, 0));
    }

    #[test]
    fn validated_attempts_are_capped_per_address_and_in_all() {
        let a = Admission::new(limits());
        let mut held: Vec<_> = (0..3).map(|_| accept(a.handshake(ip(1), true))).collect();
        assert!(matches!(a.handshake(ip(1), true), HandshakeDecision::Refuse(Refused::HandshakesFromAddress)));
        held.extend((0..3).map(|_| accept(a.handshake(ip(2), true))));
        assert!(matches!(a.handshake(ip(3), true), HandshakeDecision::Refuse(Refused::Handshakes)));
        assert!(matches!(a.handshake(ip(3), false), HandshakeDecision::Retry), "full: unvalidated get a Retry");
        held.pop();
        let _ = accept(a.handshake(ip(3), true));
        assert_eq!(a.refusals()[0], (Refused::Handshakes, 1));
        assert_eq!(a.refusals()[1], (Refused::HandshakesFromAddress, 1));
    }

    #[test]
    fn one_clerk_certificate_cannot_take_the_clerks_pool_nor_clerks_the_neighbours() {
        let a = Admission::new(limits());
        let agency: AgencyCode = "000.00.41.H49".parse().unwrap();
        let clerk = |c: u8| Peer { agency, clerk: true, certificate: [c; 32] };
        let greedy: Vec<_> = (0..2).map(|_| a.connection(&clerk(1)).unwrap()).collect();
        assert_eq!(a.connection(&clerk(1)).unwrap_err(), Refused::CertificateConnections);
        let mut others: Vec<_> = (0..2).map(|_| a.connection(&clerk(2)).unwrap()).collect();
        others.push(a.connection(&clerk(3)).unwrap());
        assert_eq!(a.connection(&clerk(4)).unwrap_err(), Refused::ClerkConnections, "the pool of 5 is full");
        // Neighbours have their own budget.
        let child = Peer { agency: "000.01.41.H49".parse().unwrap(), clerk: false, certificate: [9; 32] };
        let n: Vec<_> = (0..2).map(|_| a.connection(&child).unwrap()).collect();
        assert_eq!(a.connection(&child).unwrap_err(), Refused::NeighbourConnections);
        drop(greedy);
        let _back = a.connection(&clerk(1)).unwrap();
        assert_eq!(a.in_use().2, 6);
        drop((others, n));
    }

    #[test]
    fn the_total_caps_everyone() {
        let mut l = limits();
        l.max_connections = 3;
        let a = Admission::new(l);
        let peer = |c: u8| Peer { agency: "000.00.41.H49".parse().unwrap(), clerk: true, certificate: [c; 32] };
        let _held: Vec<_> = (1..=3).map(|c| a.connection(&peer(c)).unwrap()).collect();
        assert_eq!(a.connection(&peer(4)).unwrap_err(), Refused::Connections);
    }
}
