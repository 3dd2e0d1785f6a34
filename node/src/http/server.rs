//! The listener: TLS on *ring* (TLS 1.3, client certificates asked for but not required),
//! HTTP/1.1 by hyper, one task per connection, at most `http.max_connections` of them, header
//! and request deadlines, graceful shutdown with the node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, Error as TlsError};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tower::util::ServiceExt;

use super::auth::Connection;
use super::{Bound, console, html, metrics, probes, verifier};
use crate::Node;
use crate::config::Identity;

/// The web face's shared state.
pub(crate) struct Web {
    /// The node.
    pub(crate) node: Arc<Node>,
    /// `[http]`.
    pub(crate) settings: Settings,
    /// Verifications running (each holds a temporary file and a CPU).
    pub(crate) verifications: Arc<Semaphore>,
    /// The key CSRF tokens are derived with, new at every start.
    pub(crate) csrf_key: ring::hmac::Key,
    /// The operators' actions since start, newest first (also logged).
    pub(crate) actions: std::sync::Mutex<std::collections::VecDeque<console::Action>>,
}

/// What the handlers need of `[http]` (everything but the TLS identity), copied at start.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Who may use the verifier.
    pub(crate) verifier: super::VerifierAccess,
    /// The operators: name (the certificate's CN) and SHA-256 of the certificate.
    pub(crate) operators: Vec<(String, [u8; 32])>,
    /// See `http.max_upload_bytes`.
    pub(crate) max_upload_bytes: u64,
    /// See `http.max_form_bytes`.
    pub(crate) max_form_bytes: usize,
    /// See `http.request_timeout`.
    pub(crate) request_timeout: Duration,
    /// See `http.upload_timeout`.
    pub(crate) upload_timeout: Duration,
    /// See `http.keep_uploads`.
    pub(crate) keep_uploads: bool,
}

impl Settings {
    fn of(config: &super::HttpConfig) -> Settings {
        Settings {
            verifier: config.verifier,
            operators: config
                .operators
                .iter()
                .map(|(_, c)| (c.common_name.clone().unwrap_or_else(|| c.subject.clone()), c.fingerprint()))
                .collect(),
            max_upload_bytes: config.max_upload_bytes,
            max_form_bytes: config.max_form_bytes,
            request_timeout: config.request_timeout,
            upload_timeout: config.upload_timeout,
            keep_uploads: config.keep_uploads,
        }
    }
}

/// Client certificates are asked for (operators present theirs) but not required (the
/// verifier is public). The TLS layer checks only that the client holds the key of the
/// certificate it presents (the TLS 1.3 handshake signature); the chain is validated by
/// `auth` on every request, with the node's current CRLs, so a revocation bites at once and a
/// refused certificate gets a page saying why instead of a failed handshake.
#[derive(Debug)]
struct DeferredClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for DeferredClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        Ok(ClientCertVerified::assertion())
    }

    lienthong_protocol::tls13_handshake_signatures!();
}

/// The HTTPS server configuration for `identity`.
pub(crate) fn tls_config(identity: &Identity) -> Result<rustls::ServerConfig, TlsError> {
    let provider = crate::tls::provider();
    let verifier = DeferredClientCert { algorithms: provider.signature_verification_algorithms };
    let certs = identity.chain.iter().map(|c| CertificateDer::from(c.der().to_vec())).collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key.pkcs8_der().to_vec()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.max_early_data_size = 0;
    Ok(config)
}

/// Every route.
fn router(web: Arc<Web>) -> Router {
    let form_limit = web.settings.max_form_bytes;
    Router::new()
        .route("/", axum::routing::get(html::home))
        .route("/style.css", axum::routing::get(html::stylesheet))
        .route("/healthz", axum::routing::get(probes::healthz))
        .route("/readyz", axum::routing::get(probes::readyz))
        .route("/metrics", axum::routing::get(metrics::scrape))
        .route("/status.json", axum::routing::get(console::status_json))
        .merge(verifier::routes())
        .merge(console::routes(form_limit))
        .fallback(html::not_found)
        .layer(axum::middleware::from_fn_with_state(web.clone(), deadline))
        .with_state(web)
}

/// Whether a request is a bundle upload (which gets `upload_timeout` and no form limit).
pub(crate) fn is_upload(request: &Request) -> bool {
    request.method() == axum::http::Method::POST && matches!(request.uri().path(), "/verify" | "/verify.json")
}

/// Ends a request that overruns its time: `upload_timeout` for uploads, `request_timeout`
/// for everything else.
async fn deadline(State(web): State<Arc<Web>>, request: Request, next: Next) -> Response {
    let limit = if is_upload(&request) { web.settings.upload_timeout } else { web.settings.request_timeout };
    let lang = super::i18n::Lang::of(&request);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => html::error_page(
            lang,
            axum::http::StatusCode::REQUEST_TIMEOUT,
            lang.t("Hết thời gian", "Request timed out"),
            lang.t(
                &format!("Yêu cầu không xong trong {}; không có gì được giữ lại.", humantime::format_duration(limit)),
                &format!("The request did not finish within {}; nothing was kept.", humantime::format_duration(limit)),
            ),
        )
        .into_response(),
    }
}

/// How long a connection gets to finish its requests once the node stops.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves the web face until the node stops.
pub async fn serve(node: Arc<Node>, bound: Bound) {
    let Some(config) = node.config.http.as_ref() else { return };
    let (max_connections, header_timeout) = (config.max_connections, config.request_timeout);
    let web = Arc::new(Web {
        settings: Settings::of(config),
        verifications: Arc::new(Semaphore::new(config.max_concurrent_verifications)),
        csrf_key: ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .unwrap_or_else(|_| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &crate_random())),
        actions: std::sync::Mutex::new(std::collections::VecDeque::new()),
        node: node.clone(),
    });
    let app = router(web);
    let slots = Arc::new(Semaphore::new(max_connections));
    let connections = TaskTracker::new();
    let mut shutdown = node.shutdown_signal();
    tracing::info!(listen = %bound.local_addr(), "web face started");
    loop {
        if *shutdown.borrow() {
            break;
        }
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = bound.listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "web face: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let (tls, app, stop) = (bound.tls.clone(), app.clone(), node.shutdown_signal());
        connections.spawn(async move {
            let _slot = permit;
            serve_connection(tls, tcp, peer, app, header_timeout, stop).await;
        });
    }
    connections.close();
    let _ = tokio::time::timeout(DRAIN + Duration::from_secs(1), connections.wait()).await;
    tracing::info!("web face stopped");
}

fn crate_random() -> [u8; 32] {
    let mut b = [0u8; 32];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b
}

/// Returns once the node stops.
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

async fn serve_connection(
    tls: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    timeout: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let stream = match tokio::time::timeout(timeout, tls.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(peer = %peer, error = %e, "web face: TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let chain = stream
        .get_ref()
        .1
        .peer_certificates()
        .map(|certs| Arc::new(certs.iter().map(|c| c.as_ref().to_vec()).collect::<Vec<_>>()));
    let info = Connection { peer, chain };
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(info.clone());
        app.clone().oneshot(request)
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, connection).await;
        }
    }
}
