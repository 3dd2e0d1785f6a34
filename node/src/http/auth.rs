//! Who is asking: nobody (no client certificate), an operator (a client certificate listed
//! in `http.operators`), the node itself (its own node certificate: `lienthong-node status`),
//! or someone whose certificate is refused, with the reason.
//!
//! The chain is validated on every request with the node's current trust state (national
//! root, CRLs), so a certificate revoked while its connection is open is refused from the
//! next request on. Listing is by the SHA-256 of the certificate: renewing an operator's
//! certificate means listing the new one.
//!
//! POST actions carry a CSRF token: HMAC-SHA256 under a key made at start over the operator's
//! certificate fingerprint. A browser sends its client certificate to any page that asks,
//! including one another site made it submit a form to, so the certificate alone is no proof
//! that the operator meant the action; the token comes only from a page of this node.

use std::net::SocketAddr;
use std::sync::Arc;

use pki::Profile;

use super::server::Web;

/// What the connection's TLS handshake showed, attached to each of its requests.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// The client certificate chain it presented (leaf first), with proof of its key.
    pub(crate) chain: Option<Arc<Vec<Vec<u8>>>>,
}

/// An operator, authenticated.
#[derive(Debug, Clone)]
pub(crate) struct Operator {
    /// The certificate's name.
    pub(crate) name: String,
    /// The certificate's agency.
    pub(crate) agency: pki::AgencyCode,
    /// SHA-256 of the certificate.
    pub(crate) fingerprint: [u8; 32],
}

/// Who is asking.
#[derive(Debug, Clone)]
pub(crate) enum Viewer {
    /// No client certificate.
    Anonymous,
    /// A listed operator.
    Operator(Operator),
    /// The node's own node certificate (read-only status).
    NodeItself,
    /// A certificate that is not accepted, and why.
    Refused(String),
}

impl Viewer {
    /// Identifies the holder of `connection`'s certificate, at `now`.
    pub(crate) fn of(web: &Web, connection: Option<&Connection>, now: time::OffsetDateTime) -> Viewer {
        let Some(chain) = connection.and_then(|c| c.chain.as_ref()) else { return Viewer::Anonymous };
        let Some(leaf) = chain.first() else { return Viewer::Anonymous };
        let fingerprint = pki::sha256(leaf);
        let node = &web.node;
        if node.config.tls.chain.first().is_some_and(|c| c.fingerprint() == fingerprint) {
            return match node.trust.trust().validate(chain, now, Profile::Node) {
                Ok(_) => Viewer::NodeItself,
                Err(e) => Viewer::Refused(e.to_string()),
            };
        }
        let Some((name, _)) = web.settings.operators.iter().find(|(_, f)| *f == fingerprint) else {
            return Viewer::Refused(
                "this certificate is not listed as an operator of this node (http.operators)".to_owned(),
            );
        };
        match node.trust.trust().validate(chain, now, Profile::Clerk) {
            Ok(verified) => Viewer::Operator(Operator { name: name.clone(), agency: verified.agency, fingerprint }),
            Err(e) => Viewer::Refused(e.to_string()),
        }
    }
}

/// The CSRF token for `operator`'s forms.
pub(crate) fn csrf_token(web: &Web, operator: &Operator) -> String {
    hex::encode(ring::hmac::sign(&web.csrf_key, &operator.fingerprint).as_ref())
}

/// Whether `token` is `operator`'s CSRF token (compared in constant time).
pub(crate) fn csrf_valid(web: &Web, operator: &Operator, token: &str) -> bool {
    match hex::decode(token.trim()) {
        Ok(tag) => ring::hmac::verify(&web.csrf_key, &operator.fingerprint, &tag).is_ok(),
        Err(_) => false,
    }
}
