//! The clerk's side of `lienthong-clerk/2`: what the `lienthong` CLI (and the tests) use to
//! talk to their own node.

use std::net::SocketAddr;
use std::sync::Arc;

use pki::document::manifest::Attachment;
use pki::document::{Envelope, Manifest, SignedReceipt};
use pki::{AgencyCode, Certificate};
use serde_bytes::ByteBuf;
use tokio::io::AsyncRead;

use crate::Identity;
use crate::trust::Trust;
use crate::wire::{
    ALPN_CLERK, ClerkRequest, ClerkResponse, DocumentSummary, ErrorKind, RouteAnswer, read_frame, write_frame,
};

/// Why a clerk request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClerkError {
    /// Could not reach or authenticate to the node.
    #[error("cannot reach the node {agency} at {address}: {reason}")]
    Connect {
        /// The node's agency.
        agency: AgencyCode,
        /// Its address.
        address: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The exchange broke off.
    #[error("connection to the node failed: {0}")]
    Transport(String),
    /// The node refused the request.
    #[error("{message}")]
    Refused {
        /// Retry or not.
        kind: ErrorKind,
        /// The node's explanation.
        message: String,
    },
    /// The node answered something unexpected.
    #[error("unexpected answer from the node: {0}")]
    Protocol(String),
    /// A local file problem.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The node, or this side's check of the node, refused the connection: the TLS handshake
    /// or the node's admission rules. Said as the cause and the fix, not as a transport code.
    #[error("{0}")]
    Rejected(Rejection),
}

/// Why a connection to the node was refused, and what fixes it. Built from the TLS alert
/// or application close code the connection ended with ([`Rejection::from_connection`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The node at the address holds another agency's node certificate.
    #[error(
        "the node at {address} is not {agency}'s node (its certificate is for another agency): check the node address in the profile (--node)"
    )]
    WrongNode {
        /// The agency the profile expects.
        agency: AgencyCode,
        /// The address tried.
        address: SocketAddr,
    },
    /// The node's certificate does not chain to this profile's national root, or is not
    /// valid now.
    #[error(
        "the node at {address} presented a certificate this profile does not trust ({detail}): check the profile's --anchor (the national root) and --node address"
    )]
    UntrustedNode {
        /// The address tried.
        address: SocketAddr,
        /// What the check said.
        detail: String,
    },
    /// TLS alert 44 from the node: the clerk certificate is on a CRL the node holds.
    #[error(
        "the node refused this clerk certificate as revoked: ask the agency's CA for a new one (lienthong pki issue --cert-profile clerk) and add it to the profile (lienthong profile add … --clerk-cert)"
    )]
    ClerkRevoked,
    /// TLS alert 45 from the node: expired or not yet valid.
    #[error(
        "the node refused this clerk certificate as expired or not yet valid (check this machine's clock too): ask the agency's CA for a new one (lienthong pki issue --cert-profile clerk) and add it to the profile"
    )]
    ClerkExpired,
    /// TLS alert 48 from the node: it cannot chain the clerk certificate to the root.
    #[error(
        "the node cannot chain this clerk certificate to the national root: the profile's --clerk-cert must be the chain file (PREFIX.chain.pem: the certificate and the CAs above it), not PREFIX.cert.pem, and be issued under the national root the node trusts"
    )]
    ClerkUnknownCa,
    /// TLS alert 120 (no application protocol) from the node: it speaks none of the clerk
    /// protocol versions this program does — one of the two is of another release.
    #[error(
        "the node at {address} speaks another version of the clerk protocol than this program ({ours}): install the same lienthong release as the node's (lienthong --version; the node's operator can tell theirs)"
    )]
    ProtocolVersion {
        /// The address tried.
        address: SocketAddr,
        /// The protocol this program offered.
        ours: &'static str,
    },
    /// Another TLS alert from the node (42 bad certificate, 46 unsupported certificate, …).
    #[error(
        "the node refused this clerk certificate (TLS alert {alert}): the profile's --clerk-cert must be a clerk certificate of this agency (lienthong pki show FILE says its profile and agency)"
    )]
    ClerkCertificate {
        /// The TLS alert number.
        alert: u8,
    },
    /// Close code 0x11: a clerk of another agency.
    #[error(
        "the node belongs to another agency than this clerk certificate: a clerk talks only to its own agency's node (check the profile's --agency, --node and --clerk-cert)"
    )]
    ForeignClerk,
    /// Close code 0x13: the certificate is not a clerk certificate.
    #[error(
        "the certificate in the profile's --clerk-cert is not usable as a clerk certificate here (a node, seal or person certificate, or not valid now): use the agency's clerk certificate (lienthong pki issue --cert-profile clerk)"
    )]
    NotClerk,
    /// Close code 0x15: the node holds no fresh CRL to check this certificate with, and does
    /// not take certificates unchecked.
    #[error(
        "the node cannot check this clerk certificate for revocation yet ({reason}): it takes no certificate unchecked; the node's operator must give it fresh CRLs (crl.files, or its parent) — try again later"
    )]
    NoRevocationInfo {
        /// The node's reason.
        reason: String,
    },
    /// Close code 0x16: the certificate was revoked (or stopped being valid) while connected.
    #[error(
        "the node closed this session because the clerk certificate was revoked or is no longer valid ({reason}): ask the agency's CA for a new one (lienthong pki issue --cert-profile clerk) and add it to the profile"
    )]
    RevokedWhileConnected {
        /// The node's reason.
        reason: String,
    },
    /// Close code 0x12: too many connections of this agency at the node.
    #[error("the node has too many connections from this agency right now: try again in a moment")]
    TooMany,
    /// Any other close code.
    #[error("the node closed the connection (code {code:#x}: {reason})")]
    Closed {
        /// The application close code.
        code: u64,
        /// The node's reason text.
        reason: String,
    },
}

impl Rejection {
    /// The rejection a connection error stands for, if it is one (and not a network
    /// problem, which stays a transport error). `agency` and `address` are what the profile
    /// asked for.
    pub fn from_connection(error: &quinn::ConnectionError, agency: AgencyCode, address: SocketAddr) -> Option<Self> {
        use crate::wire::close;
        match error {
            // This side refused the node's certificate during the handshake.
            quinn::ConnectionError::TransportError(e) if is_crypto(u64::from(e.code)) => {
                Some(if e.reason.contains("NotValidForName") {
                    Rejection::WrongNode { agency, address }
                } else {
                    Rejection::UntrustedNode { address, detail: e.reason.clone() }
                })
            }
            // The node sent a TLS alert: it refused the clerk certificate.
            quinn::ConnectionError::ConnectionClosed(c) if is_crypto(u64::from(c.error_code)) => {
                let alert = (u64::from(c.error_code) - 0x100) as u8;
                Some(match alert {
                    44 => Rejection::ClerkRevoked,
                    45 => Rejection::ClerkExpired,
                    48 => Rejection::ClerkUnknownCa,
                    // The node's verifier says "unsupported certificate" for a valid chain of
                    // the wrong profile (a seal or person certificate offered for TLS).
                    46 => Rejection::NotClerk,
                    120 => Rejection::ProtocolVersion {
                        address,
                        ours: std::str::from_utf8(ALPN_CLERK).unwrap_or("lienthong-clerk"),
                    },
                    other => Rejection::ClerkCertificate { alert: other },
                })
            }
            quinn::ConnectionError::ApplicationClosed(c) => {
                let code = c.error_code.into_inner();
                Some(match u32::try_from(code).unwrap_or(u32::MAX) {
                    close::FOREIGN_CLERK => Rejection::ForeignClerk,
                    close::WRONG_PROFILE => Rejection::NotClerk,
                    close::TOO_MANY => Rejection::TooMany,
                    close::NO_REVOCATION_INFO => {
                        Rejection::NoRevocationInfo { reason: String::from_utf8_lossy(&c.reason).into_owned() }
                    }
                    close::REVOKED => {
                        Rejection::RevokedWhileConnected { reason: String::from_utf8_lossy(&c.reason).into_owned() }
                    }
                    _ => Rejection::Closed { code, reason: String::from_utf8_lossy(&c.reason).into_owned() },
                })
            }
            _ => None,
        }
    }
}

/// QUIC carries TLS alerts as transport error codes 0x100 + alert (RFC 9001, 4.8).
fn is_crypto(code: u64) -> bool {
    (0x100..=0x1ff).contains(&code)
}

/// A fetched document: its envelope, CRLs and receipts (attachments were streamed out).
#[derive(Debug)]
pub struct Fetched {
    /// The envelope's exact bytes.
    pub envelope: Vec<u8>,
    /// CRLs covering its signers and receipts.
    pub crls: Vec<Vec<u8>>,
    /// Receipts and statuses.
    pub receipts: Vec<Vec<u8>>,
    /// Log proofs of the envelope (encoded `pki::tlog::LogProof`s).
    pub log_proofs: Vec<Vec<u8>>,
}

/// A connection to this agency's node.
#[derive(Debug)]
pub struct ClerkClient {
    endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    max_frame: usize,
    agency: AgencyCode,
    address: SocketAddr,
}

impl ClerkClient {
    /// A failed exchange in the clerk's terms: if the connection ended with a refusal (TLS
    /// 1.3 client authentication finishes after `connect` returns, so the node's verdict on
    /// the clerk certificate shows here), that refusal; otherwise the transport error.
    fn transport(&self, e: impl std::fmt::Display) -> ClerkError {
        self.connection
            .close_reason()
            .and_then(|reason| Rejection::from_connection(&reason, self.agency, self.address))
            .map_or_else(|| ClerkError::Transport(e.to_string()), ClerkError::Rejected)
    }
}

impl ClerkClient {
    /// Connects to `agency`'s node at `address` with a clerk certificate, trusting `anchors`.
    pub async fn connect(
        address: SocketAddr,
        agency: AgencyCode,
        clerk: &Identity,
        anchors: Vec<Certificate>,
    ) -> Result<Self, ClerkError> {
        let fail = |reason: String| ClerkError::Connect { agency, address, reason };
        let trust = Arc::new(Trust::new(anchors, Vec::new(), std::time::Duration::from_secs(u64::MAX / 4)));
        let crypto = crate::tls::client_config(clerk, trust, ALPN_CLERK).map_err(|e| fail(e.to_string()))?;
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).map_err(|e| fail(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic));
        let mut t = quinn::TransportConfig::default();
        t.keep_alive_interval(Some(std::time::Duration::from_secs(10)));
        config.transport_config(Arc::new(t));
        let bind: SocketAddr = if address.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }
            .parse()
            .map_err(|_| fail("bad bind address".into()))?;
        // With room for a burst of a large attachment fetched (see `udp`).
        let socket = crate::udp::bind(bind).map_err(|e| fail(e.to_string()))?;
        let runtime = quinn::default_runtime().ok_or_else(|| fail("no async runtime".into()))?;
        let mut endpoint = quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime)
            .map_err(|e| fail(e.to_string()))?;
        endpoint.set_default_client_config(config);
        let connecting =
            endpoint.connect(address, &crate::tls::server_name(&agency)).map_err(|e| fail(e.to_string()))?;
        let connection = tokio::time::timeout(std::time::Duration::from_secs(10), connecting)
            .await
            .map_err(|_| fail("no answer within 10 s (is the node running, and is this its address?)".into()))?
            .map_err(|e| match Rejection::from_connection(&e, agency, address) {
                Some(r) => ClerkError::Rejected(r),
                None => fail(e.to_string()),
            })?;
        Ok(ClerkClient { endpoint, connection, max_frame: 64 * 1024 * 1024, agency, address })
    }

    async fn exchange(&self, request: &ClerkRequest) -> Result<(ClerkResponse, quinn::RecvStream), ClerkError> {
        let (mut send, mut recv) = self.connection.open_bi().await.map_err(|e| self.transport(e))?;
        write_frame(&mut send, request).await.map_err(|e| self.transport(e))?;
        send.finish().map_err(|e| self.transport(e))?;
        let response = read_frame(&mut recv, self.max_frame).await.map_err(|e| self.transport(e))?;
        Ok((response, recv))
    }

    async fn call(&self, request: &ClerkRequest) -> Result<ClerkResponse, ClerkError> {
        match self.exchange(request).await?.0 {
            ClerkResponse::Error { kind, message } => Err(ClerkError::Refused { kind, message }),
            other => Ok(other),
        }
    }

    /// Submits a signed, sealed document. `open` gives a reader for each attachment of the
    /// manifest, in order; `progress` is told how many bytes went out. When the node resumes
    /// an interrupted upload, the bytes it already holds are read from the reader and skipped
    /// (see [`ClerkClient::submit_at`] to seek instead).
    pub async fn submit<R, F>(
        &self,
        envelope: &[u8],
        crls: Vec<Vec<u8>>,
        mut open: F,
        progress: impl FnMut(u64),
    ) -> Result<(String, String), ClerkError>
    where
        R: AsyncRead + Unpin,
        F: FnMut(&Attachment) -> Result<R, std::io::Error>,
    {
        self.submit_at(
            envelope,
            crls,
            |a, offset| {
                let reader = open(a)?;
                Ok(Skip { inner: reader, skip: offset })
            },
            progress,
        )
        .await
    }

    /// Submits a signed, sealed document, resumably when its attachments are large (at least
    /// [`crate::wire::RESUME_MIN_BYTES`] together): the node first says how many bytes of each
    /// attachment it kept from an interrupted attempt of the same envelope, and only the rest
    /// is sent. `open(attachment, offset)` gives a reader for each attachment of the manifest,
    /// in order, positioned `offset` bytes in; `progress` is told how many bytes went out.
    pub async fn submit_at<R, F>(
        &self,
        envelope: &[u8],
        crls: Vec<Vec<u8>>,
        mut open: F,
        mut progress: impl FnMut(u64),
    ) -> Result<(String, String), ClerkError>
    where
        R: AsyncRead + Unpin,
        F: FnMut(&Attachment, u64) -> Result<R, std::io::Error>,
    {
        let manifest =
            manifest_of(envelope).map_err(|e| ClerkError::Protocol(format!("the envelope does not parse: {e}")))?;
        let total: u64 = manifest.attachments.iter().map(|a| a.size).sum();
        let resume = total >= crate::wire::RESUME_MIN_BYTES;
        let (mut send, mut recv) = self.connection.open_bi().await.map_err(|e| self.transport(e))?;
        let request = ClerkRequest::Submit {
            envelope: ByteBuf::from(envelope.to_vec()),
            crls: crls.into_iter().map(ByteBuf::from).collect(),
            resume,
        };
        if let Err(e) = write_frame(&mut send, &request).await {
            // The node may have answered already (refused at once); its answer is what counts.
            let answer = read_frame::<ClerkResponse>(&mut recv, self.max_frame).await;
            return finish(answer.map_err(|_| self.transport(e)));
        }
        let offsets = if resume {
            match read_frame::<ClerkResponse>(&mut recv, self.max_frame).await.map_err(|e| self.transport(e))? {
                ClerkResponse::ResumeFrom { offsets } if offsets.len() == manifest.attachments.len() => offsets,
                ClerkResponse::ResumeFrom { offsets } => {
                    let _ = send.reset(1u32.into());
                    return Err(ClerkError::Protocol(format!(
                        "the node gave {} resume offsets for {} attachments",
                        offsets.len(),
                        manifest.attachments.len()
                    )));
                }
                // Refused (or a duplicate answered) before any attachment byte: nothing to send.
                other => {
                    let _ = send.reset(0u32.into());
                    return finish(Ok(other));
                }
            }
        } else {
            vec![0; manifest.attachments.len()]
        };
        let written = async {
            for (a, &offset) in manifest.attachments.iter().zip(&offsets) {
                if offset > a.size {
                    return Err(ClerkError::Protocol(format!(
                        "the node would resume {:?} at {offset}, past its {} bytes",
                        a.name, a.size
                    )));
                }
                let mut reader = open(a, offset)?;
                let mut buf = vec![0u8; SUBMIT_CHUNK];
                let mut left = a.size - offset;
                while left > 0 {
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = tokio::io::AsyncReadExt::read(&mut reader, &mut buf[..want]).await?;
                    if n == 0 {
                        return Err(ClerkError::Io(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("attachment {:?} ended {left} bytes short of its {} bytes", a.name, a.size),
                        )));
                    }
                    send.write_all(&buf[..n]).await.map_err(|e| self.transport(e))?;
                    progress(n as u64);
                    left -= n as u64;
                }
            }
            send.finish().map_err(|e| self.transport(e))
        }
        .await;
        if written.is_err() {
            // A local failure must not reach the node as a short (refusable) document.
            let _ = send.reset(1u32.into());
        }
        // The node may answer early (a refusal) and stop reading; its answer is what counts.
        let response = read_frame::<ClerkResponse>(&mut recv, self.max_frame).await;
        match (response, written) {
            (Ok(answer), _) => finish(Ok(answer)),
            (Err(_), Err(w)) => Err(w),
            (Err(e), Ok(())) => Err(self.transport(e)),
        }
    }

    /// The inbox, most urgent first.
    pub async fn inbox(&self, limit: u32) -> Result<Vec<DocumentSummary>, ClerkError> {
        match self.call(&ClerkRequest::Inbox { limit }).await? {
            ClerkResponse::Documents { entries } => Ok(entries),
            other => Err(ClerkError::Protocol(format!("{other:?}"))),
        }
    }

    /// Documents sent, newest first.
    pub async fn sent(&self, limit: u32) -> Result<Vec<DocumentSummary>, ClerkError> {
        match self.call(&ClerkRequest::Sent { limit }).await? {
            ClerkResponse::Documents { entries } => Ok(entries),
            other => Err(ClerkError::Protocol(format!("{other:?}"))),
        }
    }

    /// Fetches a document; each attachment's bytes are handed to `sink` in manifest order
    /// (exactly `size` bytes to read from the stream). With `evidence`, the node first
    /// gathers the log proofs of the document's path (see `ClerkRequest::Fetch`).
    pub async fn fetch<F, Fut>(&self, document: &str, evidence: bool, mut sink: F) -> Result<Fetched, ClerkError>
    where
        F: FnMut(Attachment, quinn::RecvStream) -> Fut,
        Fut: std::future::Future<Output = Result<quinn::RecvStream, ClerkError>>,
    {
        let (response, mut recv) =
            self.exchange(&ClerkRequest::Fetch { document: document.to_owned(), evidence }).await?;
        match response {
            ClerkResponse::Document { envelope, crls, receipts, log_proofs } => {
                let manifest = manifest_of(&envelope)
                    .map_err(|e| ClerkError::Protocol(format!("the node sent an envelope that does not parse: {e}")))?;
                for a in manifest.attachments {
                    recv = sink(a, recv).await?;
                }
                Ok(Fetched {
                    envelope: envelope.into_vec(),
                    crls: crls.into_iter().map(ByteBuf::into_vec).collect(),
                    receipts: receipts.into_iter().map(ByteBuf::into_vec).collect(),
                    log_proofs: log_proofs.into_iter().map(ByteBuf::into_vec).collect(),
                })
            }
            ClerkResponse::Error { kind, message } => Err(ClerkError::Refused { kind, message }),
            other => Err(ClerkError::Protocol(format!("{other:?}"))),
        }
    }

    /// Posts a status (03, 04, 05, 06, 15, 16) on a received document.
    pub async fn post_status(&self, document: &str, status: u8, note: Option<String>) -> Result<(), ClerkError> {
        self.call(&ClerkRequest::PostStatus { document: document.to_owned(), status, note }).await.map(|_| ())
    }

    /// Every receipt and status held for a document.
    pub async fn track(&self, document: &str) -> Result<Vec<SignedReceipt>, ClerkError> {
        match self.call(&ClerkRequest::Track { document: document.to_owned() }).await? {
            ClerkResponse::Receipts { receipts } => receipts
                .iter()
                .map(|b| SignedReceipt::from_bytes(b).map_err(|e| ClerkError::Protocol(e.to_string())))
                .collect(),
            other => Err(ClerkError::Protocol(format!("{other:?}"))),
        }
    }

    /// Asks a question about the node's transparency log.
    pub async fn log(&self, query: crate::wire::LogQuery) -> Result<crate::wire::LogAnswer, ClerkError> {
        match self.call(&ClerkRequest::Log { query }).await? {
            ClerkResponse::Log { answer } => Ok(answer),
            other => Err(ClerkError::Protocol(format!("{other:?}"))),
        }
    }

    /// Asks the recipients of a sent document to give it back.
    pub async fn recall(&self, document: &str, note: Option<String>) -> Result<(), ClerkError> {
        self.call(&ClerkRequest::Recall { document: document.to_owned(), note }).await.map(|_| ())
    }

    /// Whether each recipient can be reached, as the nodes on the way see it (asked before
    /// signing; see `node::route_check`).
    pub async fn route(&self, recipients: &[AgencyCode]) -> Result<Vec<RouteAnswer>, ClerkError> {
        let request = ClerkRequest::Route { recipients: recipients.iter().map(ToString::to_string).collect() };
        match self.call(&request).await? {
            ClerkResponse::Routes { routes } => Ok(routes),
            other => Err(ClerkError::Protocol(format!("{other:?}"))),
        }
    }

    /// The node's health read-out (JSON).
    pub async fn health(&self) -> Result<String, ClerkError> {
        match self.call(&ClerkRequest::Health).await? {
            ClerkResponse::Health { json } => Ok(json),
            other => Err(ClerkError::Protocol(format!("{other:?}"))),
        }
    }

    /// Closes the connection cleanly.
    pub async fn close(self) {
        self.connection.close(0u32.into(), b"done");
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

/// Bytes read from an attachment file and written to the stream at a time by
/// [`ClerkClient::submit_at`].
const SUBMIT_CHUNK: usize = 256 * 1024;

/// The node's final answer to a submission.
fn finish(answer: Result<ClerkResponse, ClerkError>) -> Result<(String, String), ClerkError> {
    match answer? {
        ClerkResponse::Submitted { document, digest } => Ok((document, digest)),
        ClerkResponse::Error { kind, message } => Err(ClerkError::Refused { kind, message }),
        other => Err(ClerkError::Protocol(format!("{other:?}"))),
    }
}

/// A reader whose first `skip` bytes are read and dropped: how [`ClerkClient::submit`] resumes
/// with readers that cannot seek.
struct Skip<R> {
    inner: R,
    skip: u64,
}

impl<R: AsyncRead + Unpin> AsyncRead for Skip<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        while this.skip > 0 {
            let mut scratch = [0u8; 8192];
            let want = scratch.len().min(usize::try_from(this.skip).unwrap_or(usize::MAX));
            let mut sink = tokio::io::ReadBuf::new(&mut scratch[..want]);
            std::task::ready!(std::pin::Pin::new(&mut this.inner).poll_read(cx, &mut sink))?;
            if sink.filled().is_empty() {
                return std::task::Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the attachment is shorter than the part the node already holds",
                )));
            }
            this.skip -= sink.filled().len() as u64;
        }
        std::pin::Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

/// The manifest of envelope bytes, or why they do not parse.
fn manifest_of(envelope: &[u8]) -> Result<Manifest, String> {
    Envelope::from_bytes(envelope).map_err(|e| e.to_string())?.manifest().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(code: u8) -> quinn::ConnectionError {
        quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
            error_code: quinn::TransportErrorCode::crypto(code),
            frame_type: None,
            reason: Default::default(),
        })
    }

    /// A node of another release refuses the handshake with "no application protocol"; the
    /// clerk is told to match releases, not to change a certificate that is fine.
    #[test]
    fn a_protocol_mismatch_is_not_blamed_on_the_certificate() {
        let agency: AgencyCode = "000.00.00.H49".parse().unwrap();
        let address: SocketAddr = "127.0.0.1:4433".parse().unwrap();
        let rejection = Rejection::from_connection(&alert(120), agency, address).unwrap();
        assert!(matches!(rejection, Rejection::ProtocolVersion { .. }), "{rejection:?}");
        let text = rejection.to_string();
        assert!(text.contains("lienthong-clerk/") && !text.contains("certificate"), "{text}");
        let other = Rejection::from_connection(&alert(42), agency, address).unwrap();
        assert_eq!(other, Rejection::ClerkCertificate { alert: 42 });
    }
}
