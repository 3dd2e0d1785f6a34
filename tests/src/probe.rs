//! A raw client of both node protocols for authorisation tests: any identity or none, either
//! ALPN, one request on a fresh connection, and the node's decision read back as data —
//! refused in the TLS handshake (with the alert), closed with an application code, or a
//! response frame.
//!
//! A TLS 1.3 client whose certificate the server refuses sees `connect()` succeed: client
//! authentication finishes after the client's last handshake message, so the refusal shows on
//! the first stream. Every exchange therefore runs to a response or a failure, and a failure
//! is explained by the connection's close reason, never by the error text of the stream
//! operation that happened to notice it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use node::config::Identity;
use node::protocol::{ALPN_CLERK, ALPN_NODE, ClerkRequest, ClerkResponse, NodeRequest, NodeResponse};
use pki::{AgencyCode, Certificate};
use quinn::rustls;

/// How long one exchange may take before it counts as no answer.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response frame read.
const MAX_RESPONSE: usize = 64 << 20;

/// Which of the node's two protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `lienthong/3`, node to node.
    Node,
    /// `lienthong-clerk/2`, a clerk to its own node.
    Clerk,
}

impl Protocol {
    fn alpn(self) -> &'static [u8] {
        match self {
            Protocol::Node => ALPN_NODE,
            Protocol::Clerk => ALPN_CLERK,
        }
    }
}

/// Why an exchange ended without a response frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoAnswer {
    /// The TLS handshake was refused: the QUIC close carried this TLS alert.
    Handshake {
        /// The TLS alert number (RFC 8446 §6): 42 bad certificate, 44 revoked, 45 expired,
        /// 48 unknown CA, 116 certificate required…
        alert: u8,
        /// The close frame's reason text.
        reason: String,
    },
    /// The node completed the handshake, then closed the connection with this application
    /// code (`node::server::close`).
    Closed {
        /// The application close code.
        code: u64,
        /// The close frame's reason text.
        reason: String,
    },
    /// Anything else: a transport error, a reset stream, no answer in time. Not a decision
    /// of the node's authorisation, so never what a test expects.
    Broken(String),
}

/// A raw exchange's result: the response frame's body, or why there is none.
pub type Exchange = Result<Vec<u8>, NoAnswer>;

/// A client endpoint aimed at one node.
pub struct Probe {
    endpoint: quinn::Endpoint,
    address: SocketAddr,
    server: AgencyCode,
    trust: Arc<node::trust::Trust>,
}

fn close_of(error: &quinn::ConnectionError) -> NoAnswer {
    match error {
        quinn::ConnectionError::ConnectionClosed(close) => {
            let code = u64::from(close.error_code);
            let reason = String::from_utf8_lossy(&close.reason).into_owned();
            // QUIC carries a TLS alert as the transport error 0x100 + alert (RFC 9001 §4.8).
            match u8::try_from(code.wrapping_sub(0x100)) {
                Ok(alert) if code >= 0x100 => NoAnswer::Handshake { alert, reason },
                _ => NoAnswer::Broken(format!("transport close {code:#x}: {reason}")),
            }
        }
        quinn::ConnectionError::ApplicationClosed(close) => NoAnswer::Closed {
            code: close.error_code.into_inner(),
            reason: String::from_utf8_lossy(&close.reason).into_owned(),
        },
        other => NoAnswer::Broken(other.to_string()),
    }
}

/// Explains a failed stream operation by the connection's close reason when it has one.
fn explain(connection: &quinn::Connection, what: &str, error: impl std::fmt::Display) -> NoAnswer {
    match connection.close_reason() {
        Some(reason) => close_of(&reason),
        None => NoAnswer::Broken(format!("{what}: {error}")),
    }
}

impl Probe {
    /// A client on 127.0.0.1 for `server`'s node at `address`, which trusts `anchors` for
    /// the server's certificate.
    pub fn new(address: SocketAddr, server: AgencyCode, anchors: Vec<Certificate>) -> Probe {
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let trust = Arc::new(node::trust::Trust::new(anchors, Vec::new(), Duration::from_secs(86400)));
        Probe { endpoint, address, server, trust }
    }

    fn client_config(&self, identity: Option<&Identity>, protocol: Protocol) -> quinn::ClientConfig {
        let crypto = match identity {
            Some(identity) => node::tls::client_config(identity, self.trust.clone(), protocol.alpn()).unwrap(),
            None => {
                let mut c = rustls::ClientConfig::builder_with_provider(node::tls::provider())
                    .with_protocol_versions(&[&rustls::version::TLS13])
                    .unwrap()
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(node::tls::PeerVerifier::new(self.trust.clone())))
                    .with_no_client_auth();
                c.alpn_protocols = vec![protocol.alpn().to_vec()];
                c.enable_early_data = false;
                c.enable_sni = false;
                c
            }
        };
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap();
        quinn::ClientConfig::new(Arc::new(quic))
    }

    /// Opens a fresh connection presenting `identity` (none: no client certificate) on
    /// `protocol`, writes `request` (a whole frame and whatever follows it) on one stream,
    /// and reads one response frame. The connection is closed afterwards.
    pub async fn exchange(&self, identity: Option<&Identity>, protocol: Protocol, request: &[u8]) -> Exchange {
        let config = self.client_config(identity, protocol);
        let connecting = self
            .endpoint
            .connect_with(config, self.address, &node::tls::server_name(&self.server))
            .map_err(|e| NoAnswer::Broken(format!("connect: {e}")))?;
        let run = async {
            let connection = connecting.await.map_err(|e| close_of(&e))?;
            let result = async {
                let (mut send, mut recv) =
                    connection.open_bi().await.map_err(|e| explain(&connection, "open a stream", e))?;
                // A write error is not the answer: the node may have answered and stopped
                // reading (it stops the stream once it has a request). Read in any case.
                let _ = send.write_all(request).await;
                let _ = send.finish();
                let mut len = [0u8; 4];
                recv.read_exact(&mut len).await.map_err(|e| explain(&connection, "read a response", e))?;
                let len = u32::from_be_bytes(len) as usize;
                if len > MAX_RESPONSE {
                    return Err(NoAnswer::Broken(format!("response frame of {len} bytes")));
                }
                let mut body = vec![0u8; len];
                recv.read_exact(&mut body).await.map_err(|e| explain(&connection, "read a response", e))?;
                Ok(body)
            }
            .await;
            connection.close(0u32.into(), b"done");
            result
        };
        match tokio::time::timeout(EXCHANGE_TIMEOUT, run).await {
            Ok(result) => result,
            Err(_) => Err(NoAnswer::Broken(format!("no answer within {EXCHANGE_TIMEOUT:?}"))),
        }
    }

    /// A node request (the frame, then `after`: attachment bytes) and its decoded answer.
    pub async fn node(
        &self,
        identity: Option<&Identity>,
        request: &NodeRequest,
        after: &[u8],
    ) -> Result<NodeResponse, NoAnswer> {
        let mut bytes = node::protocol::encode(request);
        bytes.extend_from_slice(after);
        let body = self.exchange(identity, Protocol::Node, &bytes).await?;
        node::protocol::decode(&body, MAX_RESPONSE).map_err(|e| NoAnswer::Broken(format!("response: {e}")))
    }

    /// A clerk request (the frame, then `after`) and its decoded answer.
    pub async fn clerk(
        &self,
        identity: Option<&Identity>,
        request: &ClerkRequest,
        after: &[u8],
    ) -> Result<ClerkResponse, NoAnswer> {
        let mut bytes = node::protocol::encode(request);
        bytes.extend_from_slice(after);
        let body = self.exchange(identity, Protocol::Clerk, &bytes).await?;
        node::protocol::decode(&body, MAX_RESPONSE).map_err(|e| NoAnswer::Broken(format!("response: {e}")))
    }
}
