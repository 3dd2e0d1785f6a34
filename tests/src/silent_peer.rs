//! A neighbour that hangs: it completes the QUIC handshake with the agency's real node
//! certificate and accepts requests, then never answers them. What a stalled or overloaded
//! node looks like from the sender: attempts that neither succeed nor fail until they time out.

use std::sync::Arc;
use std::time::Duration;

use pki::{AgencyCode, Profile};

use crate::network::TestNet;

/// Listening on an agency's address until dropped.
pub struct SilentPeer {
    endpoint: quinn::Endpoint,
    task: tokio::task::JoinHandle<()>,
}

impl SilentPeer {
    /// Takes `code`'s address in `net` (its node must not be running, or just stopped) and plays
    /// it silently.
    pub fn start(net: &mut TestNet, code: &AgencyCode) -> SilentPeer {
        let endpoint = endpoint_as(net, code);
        let accepting = endpoint.clone();
        let task = tokio::spawn(async move {
            while let Some(incoming) = accepting.accept().await {
                tokio::spawn(async move {
                    let Ok(connection) = incoming.await else { return };
                    // Every request is accepted and held, unanswered, until the connection ends.
                    let mut held = Vec::new();
                    while let Ok(stream) = connection.accept_bi().await {
                        held.push(stream);
                    }
                });
            }
        });
        SilentPeer { endpoint, task }
    }
}

/// A QUIC server on `code`'s address in `net`, with its real node certificate: what a
/// fake neighbour listens on (its node must not be running, or just stopped).
pub(crate) fn endpoint_as(net: &mut TestNet, code: &AgencyCode) -> quinn::Endpoint {
    net.release_socket(code);
    let identity = net.identity(code, Profile::Node);
    let trust =
        Arc::new(node::trust::Trust::new(vec![net.pki.root.cert.clone()], Vec::new(), Duration::from_secs(86400)));
    let crypto = node::tls::server_config(&identity, trust).unwrap();
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(crypto).unwrap();
    let server = quinn::ServerConfig::with_crypto(Arc::new(quic));
    // The node that played the address may have just stopped: its socket lingers a moment.
    let socket = crate::network::rebind(net.addrs[code]);
    quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(server), socket, quinn::default_runtime().unwrap())
        .unwrap()
}

impl Drop for SilentPeer {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"gone");
        self.task.abort();
    }
}
