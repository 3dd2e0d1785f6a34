//! Accepting connections and streams, and dispatching requests by ALPN.
//!
//! **Nothing unauthenticated holds what authenticated peers need.** A connection attempt takes
//! a handshake slot before any handshake work (under load, an address not yet validated gets a
//! stateless QUIC Retry instead), and gives it back when the handshake ends or is abandoned
//! after `limits.handshake_timeout`. Only a peer whose certificate is validated, for the ALPN
//! it chose, takes a connection slot; see `admission` for the caps. Each stream's request
//! frame is read under the connection's frame budget and deadline (see `budget`, `protocol`).

use std::sync::Arc;

use pki::{AgencyCode, Profile};

use crate::Node;
use crate::admission::{Admission, HandshakeDecision, Peer};
use crate::budget::{ConnectionBudget, FrameBudgets};
use crate::config::Limits;
use crate::live::{Standing, node_named, peer_chain, truncate_reason};
use crate::path::PathQuestions;
use crate::protocol::{ALPN_CLERK, ALPN_NODE};

pub use lienthong_protocol::wire::close;

/// Bytes of packets quinn may buffer for one connection attempt not yet decided on (the first
/// packet excluded): enough for a ClientHello spread over a few datagrams.
const INCOMING_BUFFER: u64 = 64 * 1024;

/// What a running node lets its neighbours and clerks hold at once: handshake and connection
/// slots (`admission`), request-frame memory (`budget`), and questions about documents' paths
/// being answered (`path`). One part of [`Node`], counted only by the server side.
#[derive(Debug)]
pub struct Capacity {
    admission: Admission,
    frame_budgets: FrameBudgets,
    path_questions: PathQuestions,
}

impl Capacity {
    /// The caps `limits` set.
    pub fn new(limits: &Limits) -> Capacity {
        Capacity {
            admission: Admission::new(limits.into()),
            frame_budgets: FrameBudgets::new(
                limits.frame_budget_total,
                limits.frame_budget_per_certificate,
                limits.frame_budget_per_connection,
            ),
            path_questions: PathQuestions::new(limits.max_path_questions),
        }
    }

    /// Handshake and connection slots.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Request-frame memory.
    pub fn frame_budgets(&self) -> &FrameBudgets {
        &self.frame_budgets
    }

    /// Questions about documents' paths being answered.
    pub fn path_questions(&self) -> &PathQuestions {
        &self.path_questions
    }
}

/// QUIC transport limits from the configuration: streams, windows, timeouts.
pub fn transport_config(limits: &Limits) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(limits.max_streams_per_connection.into());
    t.max_concurrent_uni_streams(0u8.into());
    // What a peer can make quinn buffer for us: `receive_window` per connection, a quarter of
    // it per stream (validation keeps both within QUIC's varint range).
    let window = quinn::VarInt::from_u64(limits.receive_window).unwrap_or(quinn::VarInt::from_u32(8 << 20));
    let stream = quinn::VarInt::from_u64(limits.receive_window / 4).unwrap_or(quinn::VarInt::from_u32(2 << 20));
    t.receive_window(window);
    t.stream_receive_window(stream);
    t.send_window(limits.receive_window);
    if let Ok(idle) = quinn::IdleTimeout::try_from(limits.idle_timeout) {
        t.max_idle_timeout(Some(idle));
    }
    t.keep_alive_interval(Some(limits.keep_alive));
    t
}

/// The QUIC server configuration: `crypto` and `transport`, and quinn's queue of connection
/// attempts not yet decided on bounded by `limits.max_handshakes` (eight times as many, each
/// with at most 64 KiB of early packets).
pub fn quic_server_config(
    crypto: Arc<quinn::crypto::rustls::QuicServerConfig>,
    transport: Arc<quinn::TransportConfig>,
    limits: &Limits,
) -> quinn::ServerConfig {
    let mut config = quinn::ServerConfig::with_crypto(crypto);
    config.transport_config(transport);
    let queue = limits.max_handshakes.saturating_mul(8);
    config.max_incoming(queue);
    config.incoming_buffer_size(INCOMING_BUFFER);
    config.incoming_buffer_size_total((queue as u64).saturating_mul(INCOMING_BUFFER / 4));
    config
}

/// Accepts connections until shutdown.
pub async fn serve(node: Arc<Node>) {
    let mut shutdown = node.shutdown_signal();
    loop {
        let incoming = tokio::select! {
            i = node.endpoint.accept() => match i { Some(i) => i, None => break },
            _ = shutdown.changed() => break,
        };
        let addr = incoming.remote_address();
        match node.capacity.admission().handshake(addr.ip(), incoming.remote_address_validated()) {
            HandshakeDecision::Accept(slot) => {
                let connecting = match incoming.accept() {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(peer = %addr, error = %e, "connection attempt not accepted");
                        continue;
                    }
                };
                let task_node = node.clone();
                node.tasks.spawn(async move {
                    let node = task_node;
                    let limit = node.config.limits.handshake_timeout;
                    let mut shutdown = node.shutdown_signal();
                    let done = tokio::select! {
                        r = tokio::time::timeout(limit, connecting) => r,
                        _ = shutdown.changed() => return,
                    };
                    // The handshake is over either way: its slot goes back before the
                    // connection (if any) is admitted.
                    drop(slot);
                    match done {
                        Ok(Ok(conn)) => handle_connection(node, conn).await,
                        Ok(Err(e)) => tracing::info!(peer = %addr, error = %e, "handshake failed"),
                        // Dropping the unfinished handshake closes it.
                        Err(_) => tracing::info!(peer = %addr, "handshake abandoned after limits.handshake_timeout"),
                    }
                });
            }
            HandshakeDecision::Retry => {
                if let Err(e) = incoming.retry() {
                    e.into_incoming().refuse();
                }
            }
            HandshakeDecision::Refuse(_) => incoming.refuse(),
        }
    }
}

fn alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?.downcast::<quinn::crypto::rustls::HandshakeData>().ok()?.protocol
}

async fn handle_connection(node: Arc<Node>, conn: quinn::Connection) {
    let now = node.now();
    let protocol = alpn(&conn);
    let Some(chain) = peer_chain(&conn) else {
        conn.close(close::WRONG_PROFILE.into(), b"no client certificate");
        return;
    };
    let is_clerk = protocol.as_deref() == Some(ALPN_CLERK);
    let profile = if is_clerk { Profile::Clerk } else { Profile::Node };
    let verified = match node.trust.trust().validate(&chain, now, profile) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(peer = %conn.remote_address(), reason = %e, "certificate unusable for this protocol");
            conn.close(close::WRONG_PROFILE.into(), b"certificate not valid for this protocol");
            return;
        }
    };
    let agency: AgencyCode = verified.agency;
    if is_clerk {
        if agency != node.config.agency {
            tracing::warn!(peer_agency = %agency, "clerk of another agency refused");
            conn.close(close::FOREIGN_CLERK.into(), b"clerk of another agency");
            return;
        }
    } else if protocol.as_deref() != Some(ALPN_NODE) || node.routes.relation(&agency).is_none() {
        tracing::warn!(peer_agency = %agency, "node that is not a neighbour refused");
        conn.close(close::NOT_NEIGHBOUR.into(), b"not a neighbour of this node");
        return;
    }
    let certificate = chain.first().map(|leaf| pki::sha256(leaf)).unwrap_or_default();
    let peer = Peer { agency, clerk: is_clerk, certificate };
    let _slot = match node.capacity.admission().connection(&peer) {
        Ok(slot) => slot,
        Err(refused) => {
            // `admission` counts and logs refusals (at most once a second per kind).
            conn.close(close::TOO_MANY.into(), refused.to_string().as_bytes());
            return;
        }
    };
    // Revocation that bites: a clerk whose certificate cannot be checked is turned away; a
    // neighbour's connection carries CRLs only until it can be (see `live`).
    let who = if is_clerk { format!("clerk certificate {}", verified.leaf.id()) } else { node_named(&agency) };
    if let Standing::CrlsOnly(reason) = node.trust.register_connection(&conn, chain, profile, who)
        && is_clerk
    {
        conn.close(close::NO_REVOCATION_INFO.into(), truncate_reason(&reason).as_bytes());
        return;
    }
    let budget = node.capacity.frame_budgets().for_connection(certificate);
    tracing::debug!(peer_agency = %agency, clerk = is_clerk, "connection accepted");
    let mut shutdown = node.shutdown_signal();
    loop {
        let (send, recv) = tokio::select! {
            s = conn.accept_bi() => match s { Ok(s) => s, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let (task_node, budget): (Arc<Node>, ConnectionBudget) = (node.clone(), budget.clone());
        let task_conn = conn.clone();
        node.tasks.spawn(async move {
            let node = task_node;
            if is_clerk {
                crate::clerk::handle(node, agency, budget, send, recv).await;
            } else {
                crate::inbound::handle(node, &task_conn, agency, budget, send, recv).await;
            }
        });
    }
}
