//! A small HTTPS client for the node's own web face: what `lienthong-node status` asks the
//! running node with, and what the tests drive the web face with. HTTP/1.1 over TLS 1.3 on
//! *ring*, one request per connection, answers bounded in size.
//!
//! The server is checked by pinning: its certificate must be the one the caller expects (the
//! configuration names it), since the web certificate need not chain to anything a browser
//! or the national root knows under a host name. Tests may accept any server certificate
//! with [`ServerCheck::DangerAcceptAny`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::Error as TlsError;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

use crate::config::Identity;

/// Largest answer read.
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// TCP connection failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// TLS failed (for example the server is not the one expected).
    #[error("TLS with {addr}: {source}")]
    Tls {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS configuration could not be made.
    #[error("TLS configuration: {0}")]
    Config(#[from] TlsError),
    /// HTTP failed.
    #[error("HTTP: {0}")]
    Http(String),
    /// No answer in time.
    #[error("no answer from {0} in time")]
    Timeout(SocketAddr),
}

/// How the server's certificate is checked.
#[derive(Debug, Clone)]
pub enum ServerCheck {
    /// It must be exactly this certificate (DER).
    Pinned(Vec<u8>),
    /// Anything goes (tests only).
    DangerAcceptAny,
}

#[derive(Debug)]
struct Pin {
    check: ServerCheck,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pin {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match &self.check {
            ServerCheck::Pinned(der) if der.as_slice() == end_entity.as_ref() => Ok(ServerCertVerified::assertion()),
            ServerCheck::Pinned(_) => Err(TlsError::General(
                "the server's certificate is not the one configured for this node's web face".into(),
            )),
            ServerCheck::DangerAcceptAny => Ok(ServerCertVerified::assertion()),
        }
    }

    lienthong_protocol::tls13_handshake_signatures!();
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A client of one web face.
#[derive(Debug, Clone)]
pub struct Client {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
}

impl Client {
    /// A client of `addr`, presenting `identity` (if any) as its client certificate.
    pub fn new(
        addr: SocketAddr,
        identity: Option<&Identity>,
        server: ServerCheck,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let provider = crate::tls::provider();
        let pin = Pin { check: server, algorithms: provider.signature_verification_algorithms };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(pin));
        let mut config = match identity {
            Some(id) => builder.with_client_auth_cert(
                id.chain.iter().map(|c| CertificateDer::from(c.der().to_vec())).collect(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key.pkcs8_der().to_vec())),
            )?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Client { addr, tls: Arc::new(config), timeout })
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Answer, ClientError> {
        tokio::time::timeout(self.timeout, self.exchange(method, path, headers, body.into()))
            .await
            .map_err(|_| ClientError::Timeout(self.addr))?
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Answer, ClientError> {
        self.send("GET", path, &[], Bytes::new()).await
    }

    async fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        let addr = self.addr;
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|source| ClientError::Connect { addr, source })?;
        let name = ServerName::IpAddress(addr.ip().into());
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|source| ClientError::Tls { addr, source })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let mut request = hyper::Request::builder().method(method).uri(path).header("host", addr.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body)).map_err(|e| ClientError::Http(e.to_string()))?;
        let response = sender.send_request(request).await.map_err(|e| ClientError::Http(e.to_string()))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        driver.abort();
        Ok(Answer { status, headers, body })
    }
}
