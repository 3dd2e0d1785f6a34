//! The node's web face: a verifier anyone can upload a bundle to, the operators' console,
//! Prometheus metrics and health checks, over HTTPS on the node's own tokio runtime.
//!
//! - `/verify` — upload a `.ltd` bundle and read the same report as `lienthong verify`, as a
//!   page (printable) or as JSON (`Accept: application/json`, or `/verify.json`). The upload
//!   streams into a temporary file (bounded by `http.max_upload_bytes`), is verified off the
//!   async workers (at most `http.max_concurrent_verifications` at once) and deleted unless
//!   `http.keep_uploads` is on.
//! - `/console/…` — for operators only, authenticated by a client certificate listed in
//!   `http.operators` (validated against the national root and the node's CRLs on every
//!   request): peers, queues with retry and drop of transfers (CSRF-protected POSTs, each
//!   action logged with the operator's name), certificates and CRLs, alerts, refusals.
//! - `/status.json` — the health read-out, for operators and for the node's own certificate
//!   (`lienthong-node status` asks with it).
//! - `/metrics` (OpenMetrics text), `/healthz` (liveness), `/readyz` (readiness).
//!
//! Pages are rendered on the server as plain HTML with one stylesheet; nothing needs
//! JavaScript. Text is in Vietnamese or English (`Accept-Language`, `?lang=vi|en`).
//!
//! **Invariant:** nothing here writes to the document path's tables except the two operator
//! actions on dead or waiting transfers, and nothing uploaded is kept unless configured.

mod auth;
pub mod client;
pub mod config;
mod console;
mod html;
mod i18n;
mod metrics;
mod probes;
mod queries;
mod server;
pub mod status;
mod verifier;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::{HttpConfig, RawHttp, VerifierAccess};
pub use server::serve;

use crate::config::Identity;

/// Why the web face could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpStartError {
    /// The TCP address could not be bound.
    #[error("cannot listen on {addr} (http.listen): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTPS configuration failed.
    #[error("HTTPS: {0}")]
    Tls(#[from] rustls::Error),
}

/// A bound listener and its TLS configuration, made in `Node::start` so a port in use stops
/// the start with a clear error.
pub struct Bound {
    listener: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound").field("listener", &self.listener).finish_non_exhaustive()
    }
}

impl Bound {
    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }
}

/// Binds `config.listen` and prepares TLS with `config`'s certificate or the node's.
pub async fn bind(config: &HttpConfig, node_identity: &Identity) -> Result<Bound, HttpStartError> {
    let identity = config.identity.as_ref().unwrap_or(node_identity);
    let tls = server::tls_config(identity)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| HttpStartError::Bind { addr: config.listen, source })?;
    Ok(Bound { listener, tls: tokio_rustls::TlsAcceptor::from(Arc::new(tls)) })
}
