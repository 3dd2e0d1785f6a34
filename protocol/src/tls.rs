//! QUIC's TLS: mutual authentication with `node` certificates validated by `pki` (and `clerk`
//! certificates on the clerk ALPN), TLS 1.3 only, *ring* only, 0-RTT off.
//!
//! The peer's agency comes from its validated certificate. On outbound connections the
//! expected agency code is the TLS server name, so a connection to the province's address
//! that is answered by anything but the province's node certificate fails in the handshake.

use std::sync::Arc;

use pki::{AgencyCode, ChainError, Profile};
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DistinguishedName, Error as TlsError};
use time::OffsetDateTime;

use crate::Identity;
use crate::trust::Trust;
use crate::wire::{ALPN_CLERK, ALPN_NODE};

/// The crypto provider: *ring*, nothing else.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn to_time(now: UnixTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(now.as_secs() as i64).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn chain<'a>(end_entity: &CertificateDer<'a>, intermediates: &[CertificateDer<'a>]) -> Vec<Vec<u8>> {
    std::iter::once(end_entity).chain(intermediates).map(|c| c.as_ref().to_vec()).collect()
}

fn tls_error(error: ChainError) -> TlsError {
    tracing::warn!(reason = %error, "peer certificate refused");
    TlsError::InvalidCertificate(match &error {
        ChainError::Expired { .. } => CertificateError::Expired,
        ChainError::NotYetValid { .. } => CertificateError::NotValidYet,
        ChainError::Revoked { .. } => CertificateError::Revoked,
        ChainError::UnknownAnchor { .. } => CertificateError::UnknownIssuer,
        ChainError::BadSignature { .. } => CertificateError::BadSignature,
        _ => CertificateError::Other(rustls::OtherError(Arc::new(error))),
    })
}

/// Verifies a peer's certificate chain with the node's trust state.
#[derive(Debug)]
pub struct PeerVerifier {
    trust: Arc<Trust>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PeerVerifier {
    /// A verifier over `trust`.
    pub fn new(trust: Arc<Trust>) -> Self {
        PeerVerifier { trust, algorithms: provider().signature_verification_algorithms }
    }
}

/// The handshake-signature methods every rustls verifier trait requires, one policy for all
/// of them (the QUIC peers' verifier here, the node's HTTPS server and client): TLS 1.2 is
/// refused, TLS 1.3 signatures are checked with *ring*'s algorithms. Use inside an
/// `impl ServerCertVerifier` or `impl ClientCertVerifier` whose type has an `algorithms:
/// WebPkiSupportedAlgorithms` field; the calling crate needs `rustls`.
#[macro_export]
macro_rules! tls13_handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &::rustls::pki_types::CertificateDer<'_>,
            _: &::rustls::DigitallySignedStruct,
        ) -> Result<::rustls::client::danger::HandshakeSignatureValid, ::rustls::Error> {
            Err(::rustls::Error::General("TLS 1.2 is not used".into()))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &::rustls::pki_types::CertificateDer<'_>,
            dss: &::rustls::DigitallySignedStruct,
        ) -> Result<::rustls::client::danger::HandshakeSignatureValid, ::rustls::Error> {
            ::rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<::rustls::SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let ServerName::DnsName(name) = server_name else {
            return Err(TlsError::General("server name must be an agency code".into()));
        };
        let expected: AgencyCode = name.as_ref().parse().map_err(|e| TlsError::General(format!("server name: {e}")))?;
        let verified =
            self.trust.validate(&chain(end_entity, intermediates), to_time(now), Profile::Node).map_err(tls_error)?;
        if verified.agency != expected {
            tracing::warn!(expected = %expected, found = %verified.agency, "node certificate of the wrong agency");
            return Err(TlsError::InvalidCertificate(CertificateError::NotValidForName));
        }
        Ok(ServerCertVerified::assertion())
    }

    crate::tls13_handshake_signatures!();
}

impl ClientCertVerifier for PeerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        // Nodes and this agency's clerks share the endpoint; which one a connection must be
        // is decided by its ALPN once the handshake is done (see `server`).
        let der = chain(end_entity, intermediates);
        let at = to_time(now);
        match self.trust.validate(&der, at, Profile::Node) {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(ChainError::WrongUsage { .. }) => self
                .trust
                .validate(&der, at, Profile::Clerk)
                .map(|_| ClientCertVerified::assertion())
                .map_err(tls_error),
            Err(e) => Err(tls_error(e)),
        }
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    crate::tls13_handshake_signatures!();
}

fn key_der(identity: &Identity) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key.pkcs8_der().to_vec()))
}

fn certs(identity: &Identity) -> Vec<CertificateDer<'static>> {
    identity.chain.iter().map(|c| CertificateDer::from(c.der().to_vec())).collect()
}

/// The server side: both ALPNs, client certificates required.
pub fn server_config(identity: &Identity, trust: Arc<Trust>) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(PeerVerifier::new(trust)))
        .with_single_cert(certs(identity), key_der(identity))?;
    config.alpn_protocols = vec![ALPN_NODE.to_vec(), ALPN_CLERK.to_vec()];
    // 0-RTT data can be replayed: never accept it.
    config.max_early_data_size = 0;
    // No session resumption: a resumed session skips certificate verification, so a client
    // revoked since its first handshake would get back in on its ticket. Every connection
    // validates the chain against the CRLs held at that moment.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// The client side, for `alpn`, presenting `identity` (a node or a clerk certificate).
pub fn client_config(identity: &Identity, trust: Arc<Trust>, alpn: &[u8]) -> Result<rustls::ClientConfig, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PeerVerifier::new(trust)))
        .with_client_auth_cert(certs(identity), key_der(identity))?;
    config.alpn_protocols = vec![alpn.to_vec()];
    config.enable_early_data = false;
    // No session resumption either way (see `server_config`): a revoked node must fail its
    // next handshake.
    config.resumption = rustls::client::Resumption::disabled();
    // The agency code is the server name for our verifier; there is no need to send it.
    config.enable_sni = false;
    Ok(config)
}

/// The TLS server name under which `agency`'s node is reached.
pub fn server_name(agency: &AgencyCode) -> String {
    agency.to_string()
}
