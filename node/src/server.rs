//! Accepting connections and streams, and dispatching requests by ALPN.

use std::sync::Arc;

use pki::{AgencyCode, Profile};
use rustls::pki_types::CertificateDer;

use crate::Node;
use crate::config::Limits;
use crate::protocol::{ALPN_CLERK, ALPN_NODE};

/// Application close codes.
pub mod close {
    /// Not a neighbour of this node.
    pub const NOT_NEIGHBOUR: u32 = 0x10;
    /// A clerk of another agency.
    pub const FOREIGN_CLERK: u32 = 0x11;
    /// Too many connections from this agency.
    pub const TOO_MANY: u32 = 0x12;
    /// Certificate unusable for the ALPN.
    pub const WRONG_PROFILE: u32 = 0x13;
}

/// QUIC transport limits from the configuration: streams, windows, timeouts.
pub fn transport_config(limits: &Limits) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(limits.max_streams_per_connection.into());
    t.max_concurrent_uni_streams(0u8.into());
    // Bound what a peer can make us buffer: 8 MiB per stream, 32 MiB per connection.
    t.stream_receive_window((8u32 * 1024 * 1024).into());
    t.receive_window((32u32 * 1024 * 1024).into());
    t.send_window(32 * 1024 * 1024);
    if let Ok(idle) = quinn::IdleTimeout::try_from(limits.idle_timeout) {
        t.max_idle_timeout(Some(idle));
    }
    t.keep_alive_interval(Some(limits.keep_alive));
    t
}

/// Accepts connections until shutdown.
pub async fn serve(node: Arc<Node>) {
    let mut shutdown = node.shutdown_signal();
    let active = Arc::new(tokio::sync::Semaphore::new(node.config.limits.max_connections));
    loop {
        let incoming = tokio::select! {
            i = node.endpoint.accept() => match i { Some(i) => i, None => break },
            _ = shutdown.changed() => break,
        };
        let Ok(permit) = active.clone().try_acquire_owned() else {
            tracing::warn!(peer = %incoming.remote_address(), "connection refused: limit of {} connections reached", node.config.limits.max_connections);
            incoming.refuse();
            continue;
        };
        let task_node = node.clone();
        node.tasks.spawn(async move {
            let node = task_node;
            let _permit = permit;
            let addr = incoming.remote_address();
            match incoming.await {
                Ok(conn) => handle_connection(node, conn).await,
                Err(e) => tracing::info!(peer = %addr, error = %e, "handshake failed"),
            }
        });
    }
}

/// The peer's certificate chain, as the TLS layer verified it.
fn peer_chain(conn: &quinn::Connection) -> Option<Vec<Vec<u8>>> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    Some(certs.iter().map(|c| c.as_ref().to_vec()).collect())
}

fn alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?.downcast::<quinn::crypto::rustls::HandshakeData>().ok()?.protocol
}

/// Counts a peer's connections, releasing on drop.
struct PeerSlot {
    node: Arc<Node>,
    agency: AgencyCode,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.node.inbound_per_peer.lock()
            && let Some(n) = map.get_mut(&self.agency)
        {
            *n = n.saturating_sub(1);
        }
    }
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
    let verified = match node.trust.validate(&chain, now, profile) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(peer = %conn.remote_address(), reason = %e, "certificate unusable for this protocol");
            conn.close(close::WRONG_PROFILE.into(), b"certificate not valid for this protocol");
            return;
        }
    };
    let agency = verified.agency;
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
    let _slot = {
        let mut map = match node.inbound_per_peer.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let n = map.entry(agency).or_insert(0);
        if *n >= node.config.limits.max_connections_per_peer {
            drop(map);
            tracing::warn!(peer_agency = %agency, "too many connections from this agency");
            conn.close(close::TOO_MANY.into(), b"too many connections");
            return;
        }
        *n += 1;
        PeerSlot { node: node.clone(), agency }
    };
    tracing::debug!(peer_agency = %agency, clerk = is_clerk, "connection accepted");
    let mut shutdown = node.shutdown_signal();
    loop {
        let (send, recv) = tokio::select! {
            s = conn.accept_bi() => match s { Ok(s) => s, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let task_node = node.clone();
        node.tasks.spawn(async move {
            let node = task_node;
            if is_clerk {
                crate::clerk::handle(node, agency, send, recv).await;
            } else {
                crate::inbound::handle(node, agency, send, recv).await;
            }
        });
    }
}
