//! The clerk's side of `lienthong-clerk/1`: what the `lienthong` CLI (and the tests) use to
//! talk to their own node.

use std::net::SocketAddr;
use std::sync::Arc;

use pki::document::manifest::Attachment;
use pki::document::{Envelope, Manifest, SignedReceipt};
use pki::{AgencyCode, Certificate};
use serde_bytes::ByteBuf;
use tokio::io::AsyncRead;

use crate::config::Identity;
use crate::protocol::{ALPN_CLERK, ClerkRequest, ClerkResponse, DocumentSummary, ErrorKind, read_frame, write_frame};
use crate::trust::Trust;

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
}

/// A connection to this agency's node.
#[derive(Debug)]
pub struct ClerkClient {
    endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    max_frame: usize,
}

fn transport(e: impl std::fmt::Display) -> ClerkError {
    ClerkError::Transport(e.to_string())
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
        let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| fail(e.to_string()))?;
        endpoint.set_default_client_config(config);
        let connecting =
            endpoint.connect(address, &crate::tls::server_name(&agency)).map_err(|e| fail(e.to_string()))?;
        let connection = tokio::time::timeout(std::time::Duration::from_secs(10), connecting)
            .await
            .map_err(|_| fail("no answer within 10 s (is the node running, and is this its address?)".into()))?
            .map_err(|e| fail(e.to_string()))?;
        Ok(ClerkClient { endpoint, connection, max_frame: 64 * 1024 * 1024 })
    }

    async fn exchange(&self, request: &ClerkRequest) -> Result<(ClerkResponse, quinn::RecvStream), ClerkError> {
        let (mut send, mut recv) = self.connection.open_bi().await.map_err(transport)?;
        write_frame(&mut send, request).await.map_err(transport)?;
        send.finish().map_err(transport)?;
        let response = read_frame(&mut recv, self.max_frame).await.map_err(transport)?;
        Ok((response, recv))
    }

    async fn call(&self, request: &ClerkRequest) -> Result<ClerkResponse, ClerkError> {
        match self.exchange(request).await?.0 {
            ClerkResponse::Error { kind, message } => Err(ClerkError::Refused { kind, message }),
            other => Ok(other),
        }
    }

    /// Submits a signed, sealed document. `open` gives a reader for each attachment of the
    /// manifest, in order; `progress` is told how many bytes went out.
    pub async fn submit<R, F>(
        &self,
        envelope: &[u8],
        crls: Vec<Vec<u8>>,
        mut open: F,
        mut progress: impl FnMut(u64),
    ) -> Result<(String, String), ClerkError>
    where
        R: AsyncRead + Unpin,
        F: FnMut(&Attachment) -> Result<R, std::io::Error>,
    {
        let manifest =
            manifest_of(envelope).map_err(|e| ClerkError::Protocol(format!("the envelope does not parse: {e}")))?;
        let (mut send, mut recv) = self.connection.open_bi().await.map_err(transport)?;
        let request = ClerkRequest::Submit {
            envelope: ByteBuf::from(envelope.to_vec()),
            crls: crls.into_iter().map(ByteBuf::from).collect(),
        };
        let written = async {
            write_frame(&mut send, &request).await.map_err(transport)?;
            for a in &manifest.attachments {
                let mut reader = open(a)?;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = tokio::io::AsyncReadExt::read(&mut reader, &mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    send.write_all(&buf[..n]).await.map_err(transport)?;
                    progress(n as u64);
                }
            }
            send.finish().map_err(transport)
        }
        .await;
        // The node may answer early (a refusal) and stop reading; its answer is what counts.
        let response = read_frame::<ClerkResponse>(&mut recv, self.max_frame).await;
        match (response, written) {
            (Ok(ClerkResponse::Submitted { document, digest }), _) => Ok((document, digest)),
            (Ok(ClerkResponse::Error { kind, message }), _) => Err(ClerkError::Refused { kind, message }),
            (Ok(other), _) => Err(ClerkError::Protocol(format!("{other:?}"))),
            (Err(_), Err(w)) => Err(w),
            (Err(e), Ok(())) => Err(transport(e)),
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
    /// (exactly `size` bytes to read from the stream).
    pub async fn fetch<F, Fut>(&self, document: &str, mut sink: F) -> Result<Fetched, ClerkError>
    where
        F: FnMut(Attachment, quinn::RecvStream) -> Fut,
        Fut: std::future::Future<Output = Result<quinn::RecvStream, ClerkError>>,
    {
        let (response, mut recv) = self.exchange(&ClerkRequest::Fetch { document: document.to_owned() }).await?;
        match response {
            ClerkResponse::Document { envelope, crls, receipts } => {
                let manifest = manifest_of(&envelope)
                    .map_err(|e| ClerkError::Protocol(format!("the node sent an envelope that does not parse: {e}")))?;
                for a in manifest.attachments {
                    recv = sink(a, recv).await?;
                }
                Ok(Fetched {
                    envelope: envelope.into_vec(),
                    crls: crls.into_iter().map(ByteBuf::into_vec).collect(),
                    receipts: receipts.into_iter().map(ByteBuf::into_vec).collect(),
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

    /// Asks the recipients of a sent document to give it back.
    pub async fn recall(&self, document: &str, note: Option<String>) -> Result<(), ClerkError> {
        self.call(&ClerkRequest::Recall { document: document.to_owned(), note }).await.map(|_| ())
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

/// The manifest of envelope bytes, or why they do not parse.
fn manifest_of(envelope: &[u8]) -> Result<Manifest, String> {
    Envelope::from_bytes(envelope).map_err(|e| e.to_string())?.manifest().map_err(|e| e.to_string())
}
