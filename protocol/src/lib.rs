//! What both ends of a lienthong connection share: the wire protocol of the two ALPNs
//! (`lienthong/3` between nodes, `lienthong-clerk/2` between a clerk's CLI and its node), the
//! TLS configuration with the peer verifier that validates chains with `pki`, the trust state
//! behind it, and the clerk's client.
//!
//! **Architecture invariant:** this crate knows no storage, no mail and no node policy beyond
//! "who is this peer": the `lienthong` CLI links it without sqlx, SQLite or lettre, and the node
//! builds its server on top of it.
#![forbid(unsafe_code)]

pub mod clerk_client;
pub mod tls;
pub mod trust;
pub mod udp;
pub mod wire;

use pki::{Certificate, PrivateKey};

/// A certificate chain and its private key: a node's TLS or seal identity, or a clerk's.
#[derive(Debug)]
pub struct Identity {
    /// Leaf first.
    pub chain: Vec<Certificate>,
    /// The private key.
    pub key: PrivateKey,
}
