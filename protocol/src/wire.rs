//! The wire protocol between nodes (ALPN `lienthong/3`) and between a clerk's CLI and its own
//! node (ALPN `lienthong-clerk/2`).
//!
//! One request per bidirectional QUIC stream. A request is a frame — a 4-byte big-endian
//! length and a CBOR message — followed, for documents, by the attachment bytes in manifest
//! order; the response is a frame, followed by attachments when it returns a document. Signed
//! objects (envelopes, receipts, CRLs) travel as their exact bytes; the frames around them are
//! plain CBOR and are never signed. The version is in the ALPN: a change of these messages is
//! a new ALPN, and a node can serve both while the network upgrades.

use pki::document::cbor::{self, CborLimits};
use serde::{Deserialize, Serialize};
pub use serde_bytes::ByteBuf;

/// ALPN of node-to-node traffic.
pub const ALPN_NODE: &[u8] = b"lienthong/3";
/// ALPN of a clerk's CLI talking to its own node.
pub const ALPN_CLERK: &[u8] = b"lienthong-clerk/2";

/// Attachments (of one document, together) from this size on are sent resumably: the sender
/// asks (`resume` in [`NodeRequest::Deliver`] / [`ClerkRequest::Submit`]) and waits for the
/// receiver's [`NodeResponse::ResumeFrom`] / [`ClerkResponse::ResumeFrom`] before sending
/// them, one round trip that pays for itself only when there is much to send again. Smaller
/// documents stream their attachments right after the frame, as before.
pub const RESUME_MIN_BYTES: u64 = 1 << 20;

/// Most recipients one route question may name: a document's own limit.
pub const MAX_ROUTE_RECIPIENTS: usize = pki::document::manifest::MAX_RECIPIENTS;

/// Application close codes a node closes a connection with, so the other side (a clerk's CLI
/// above all) can say why in words.
pub mod close {
    /// Not a neighbour of this node.
    pub const NOT_NEIGHBOUR: u32 = 0x10;
    /// A clerk of another agency.
    pub const FOREIGN_CLERK: u32 = 0x11;
    /// Too many connections (from this agency, clerk certificate, or in all).
    pub const TOO_MANY: u32 = 0x12;
    /// Certificate unusable for the ALPN.
    pub const WRONG_PROFILE: u32 = 0x13;
    /// A request on this connection timed out; the connection is replaced.
    pub const REQUEST_TIMED_OUT: u32 = 0x14;
    /// The node cannot check the certificate's revocation (no fresh CRL of its issuer) and
    /// does not take it unchecked.
    pub const NO_REVOCATION_INFO: u32 = 0x15;
    /// The certificate was revoked (or stopped being valid) while connected.
    pub const REVOKED: u32 = 0x16;
}

/// Why a frame cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer declared a frame over the limit.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Declared length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The stream ended or failed.
    #[error("stream: {0}")]
    Stream(String),
    /// The CBOR is refused.
    #[error("malformed frame: {0}")]
    Cbor(String),
}

impl FrameError {
    /// How a node answers a request frame that failed this way: worth retrying or not.
    pub fn kind(&self) -> ErrorKind {
        match self {
            FrameError::TooLarge { .. } | FrameError::Stream(_) | FrameError::Cbor(_) => ErrorKind::BadRequest,
        }
    }
}

/// An error with its causes: quinn's "connection lost" hides why (the peer's close reason,
/// such as which limit refused the connection) in its source.
pub fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// Encodes a message as a frame.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut body = Vec::new();
    // Encoding our own message types into a Vec cannot fail.
    let _ = ciborium::into_writer(message, &mut body);
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Decodes a frame body after the bounded CBOR scan.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8], max: usize) -> Result<T, FrameError> {
    cbor::scan(body, CborLimits { max_bytes: max, max_depth: 16, max_items: 200_000 }, false)
        .map_err(|e| FrameError::Cbor(e.to_string()))?;
    ciborium::from_reader(body).map_err(|e| FrameError::Cbor(e.to_string()))
}

/// Reads one frame from a QUIC stream, refusing lengths over `max` before reading them.
pub async fn read_frame<T: for<'de> Deserialize<'de>>(
    recv: &mut quinn::RecvStream,
    max: usize,
) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.map_err(|e| FrameError::Stream(describe(&e)))?;
    let len = u32::from_be_bytes(len);
    if len as usize > max {
        return Err(FrameError::TooLarge { len: u64::from(len), max });
    }
    // Grow the buffer as bytes arrive, so a declared length costs nothing until it is sent.
    // Each chunk is copied once, from quinn's buffer into the body: no zeroed bounce buffer
    // (it was 64 KiB per frame, most frames being a few KiB: a third of the bytes a node
    // allocated per document in an allocation profile).
    let len = len as usize;
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    while body.len() < len {
        match recv.read_chunk(len - body.len(), true).await.map_err(|e| FrameError::Stream(describe(&e)))? {
            Some(chunk) => body.extend_from_slice(&chunk.bytes),
            None => {
                return Err(FrameError::Stream(format!("stream ended {} bytes into a {len}-byte frame", body.len())));
            }
        }
    }
    decode(&body, max)
}

/// Writes one frame.
pub async fn write_frame<T: Serialize>(send: &mut quinn::SendStream, message: &T) -> Result<(), FrameError> {
    send.write_all(&encode(message)).await.map_err(|e| FrameError::Stream(describe(&e)))
}

/// A request from one node to a neighbour.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeRequest {
    /// Take responsibility for a document for these recipients; the attachments follow.
    Deliver {
        /// The envelope's exact bytes.
        envelope: ByteBuf,
        /// The recipients this hop carries the document for.
        recipients: Vec<String>,
        /// The CRLs that cover the signers' chains, by reference: a receiver holding each (or
        /// a newer one of its CA) verifies at once; one lacking some answers
        /// [`NodeResponse::CrlsWanted`] before reading the attachments.
        crls: Vec<CrlRef>,
        /// The DER of the referenced CRLs the receiver asked for with
        /// [`NodeResponse::CrlsWanted`], when this request is the answer to that; else empty.
        #[serde(default)]
        crls_asked: Vec<ByteBuf>,
        /// Answer [`NodeResponse::ResumeFrom`] before the attachments are sent (see
        /// [`RESUME_MIN_BYTES`]); the attachments then start at the offsets given.
        #[serde(default)]
        resume: bool,
        /// The asker keeps the statuses that come with a hop receipt
        /// ([`NodeResponse::HopReceipt`]'s `statuses`). A node that does not say so (an older
        /// one, which would drop them) gets them as notices instead.
        #[serde(default)]
        statuses_back: bool,
    },
    /// Signed receipts and statuses travelling toward the agencies they are addressed to:
    /// all those waiting for this neighbour, at most [`MAX_NOTICES`], in one request and taken
    /// in one transaction. Answered with [`NodeResponse::NoticesTaken`].
    Notices {
        /// Each receipt's exact bytes.
        receipts: Vec<ByteBuf>,
        /// The CRLs that cover the signers' chains (each once), by reference, as in
        /// [`NodeRequest::Deliver`].
        crls: Vec<CrlRef>,
        /// The DER of the referenced CRLs the receiver asked for with
        /// [`NodeResponse::CrlsWanted`], when this request is the answer to that; else empty.
        #[serde(default)]
        crls_asked: Vec<ByteBuf>,
    },
    /// New CRLs, pushed down the tree as soon as a node has them.
    CrlPush {
        /// DER CRLs.
        crls: Vec<ByteBuf>,
    },
    /// What CRLs the asker has; the answer carries newer ones. Sent on connecting to a parent.
    CrlFetch {
        /// (issuer name DER, thisUpdate) of each CRL held.
        known: Vec<(ByteBuf, i64)>,
    },
    /// Can these recipients be reached from here? Asked before a clerk signs a document (see
    /// the node's `route_check`); each node answers from its routing table and asks its next
    /// hop in turn. Nothing is stored.
    Route {
        /// Agency codes, at most [`MAX_ROUTE_RECIPIENTS`].
        recipients: Vec<String>,
        /// How many more nodes may be asked after this one.
        hops_left: u8,
    },
    /// Co-sign a checkpoint of the asker's transparency log (the asker's parent, or for the
    /// national hub the level-1 nodes it names): the witness checks that it extends the last
    /// one it co-signed for this log, then answers [`NodeResponse::Cosigned`].
    LogWitness {
        /// The C2SP `tlog-witness` add-checkpoint body: `old <size>`, the consistency proof
        /// from it, a blank line, the checkpoint signed by the asker's seal (a few KiB at most).
        add_checkpoint: ByteBuf,
        /// The asker's seal chain (DER, leaf first): whose key signed the checkpoint.
        seal_chain: Vec<ByteBuf>,
    },
    /// The entries of the answering node's log about documents the asker (a child) handed
    /// over, from index `from` on: what `lienthong log audit` compares with the asker's own
    /// records. Answered with [`NodeResponse::LogEntries`].
    LogEntries {
        /// The first leaf index wanted.
        from: u64,
    },
    /// What the nodes on a document's path hold about it, for `track` and a bundle's evidence:
    /// the hop receipts given along the way (each stays with the node it was given to) and
    /// the inclusion proofs of the envelope in their logs. The answering node gives its own
    /// (toward the recipients, the hop receipts its next hops gave it; toward the sender, the
    /// one it gave; its log's entries in a co-signed checkpoint) and asks its neighbours
    /// further along `toward`, each bounded by `hops_left`. Only a neighbour the document
    /// passed between is answered. Answered with [`NodeResponse::PathEvidence`].
    PathEvidence {
        /// The envelope's SHA-256.
        envelope: ByteBuf,
        /// Which way along the path to go on asking.
        toward: Toward,
        /// How many more nodes may be asked after this one.
        hops_left: u8,
    },
}

/// A CRL named instead of sent: which CA issued it, its number, and the SHA-256 of its DER.
/// A receiver holding a CRL with that digest, or a newer one (higher number) of the same CA,
/// needs nothing more; the digest pins the exact bytes to ask for otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlRef {
    /// The DER of the issuer's name, matched byte for byte against stored CRLs.
    pub issuer: ByteBuf,
    /// The cRLNumber as big-endian bytes; empty when the CRL has none.
    pub number: ByteBuf,
    /// SHA-256 of the CRL's DER.
    pub sha256: ByteBuf,
}

/// Most CRL references one [`NodeRequest::Deliver`] or [`NodeRequest::Notices`] may carry:
/// one per CA on the signers' chains, a handful for a document and a few hundred at most for
/// a batch of [`MAX_NOTICES`] receipts from agencies all over the tree.
pub const MAX_CRL_REFS: usize = 512;

/// A direction along a document's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Toward {
    /// Back to the node that took it from the sender's clerk: each node asks the neighbour
    /// it took the document from.
    Sender,
    /// On to the recipients: each node asks the neighbours it routed the document to.
    Recipients,
}

/// Why a request was not served; tells the sender whether to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Temporary: try again later (overloaded, shutting down, storage busy).
    Unavailable,
    /// The request itself is wrong; retrying will not help.
    BadRequest,
    /// The peer is not allowed this request.
    Forbidden,
}

impl std::fmt::Display for ErrorKind {
    /// As logs and messages say it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::BadRequest => "bad request",
            ErrorKind::Forbidden => "forbidden",
        })
    }
}

/// A node's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeResponse {
    /// The document is verified and durably stored: responsibility passes to the responder.
    HopReceipt {
        /// The signed hop receipt.
        receipt: ByteBuf,
        /// Statuses the responder signed about this document for its sender, when the way
        /// back to the sender goes through the asker: the recipient's 01 arrived, a 02 for a
        /// recipient it cannot route. They ride with the hop receipt instead of a notice
        /// transfer of their own, and the asker keeps them in the transaction that records
        /// the hop receipt, so they reach it exactly when the hop receipt does (a retry is
        /// answered with the same ones). Only to an asker that set `statuses_back`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        statuses: Vec<ByteBuf>,
    },
    /// The document is refused, with a signed status 02 giving the reason.
    Refused {
        /// The signed refusal.
        receipt: ByteBuf,
    },
    /// The CRLs are stored.
    Accepted,
    /// The first answer to a resumable [`NodeRequest::Deliver`], once the envelope is
    /// verified: send each attachment (in manifest order) from its offset on, then read the
    /// final answer. A refusal comes instead of this, and then nothing is to be sent.
    ResumeFrom {
        /// Bytes of each attachment the receiver holds from an interrupted attempt.
        offsets: Vec<u64>,
    },
    /// The answer to [`NodeRequest::Notices`]: every receipt not listed here is stored (the
    /// transaction committed); those listed were refused, each with its reason.
    NoticesTaken {
        /// (index in the request, why, what).
        refused: Vec<(u32, ErrorKind, String)>,
    },
    /// CRLs newer than those the asker has.
    Crls {
        /// DER CRLs.
        crls: Vec<ByteBuf>,
    },
    /// The answer to [`NodeRequest::Route`]: one per recipient asked.
    Routes {
        /// In the order asked.
        routes: Vec<RouteAnswer>,
    },
    /// The answer to [`NodeRequest::LogWitness`]: the witness's cosignature.
    Cosigned {
        /// The C2SP `tlog-cosignature` line (with its final newline).
        cosignature: String,
        /// The witness's seal chain (DER, leaf first), to check the cosignature with.
        seal_chain: Vec<ByteBuf>,
    },
    /// The witness will not co-sign. When `witnessed_size` is given, the witness last
    /// co-signed that size and the asker should prove consistency from it; `evidence` says
    /// that the witness kept both checkpoints as evidence of a fork or rewrite.
    WitnessRefused {
        /// Why, in the witness's words.
        reason: String,
        /// The size the witness last co-signed, when the asker assumed another.
        witnessed_size: Option<u64>,
        /// The witness kept this as evidence against the log.
        evidence: bool,
    },
    /// The answer to [`NodeRequest::LogEntries`]: (leaf index, leaf bytes), in log order, at
    /// most [`MAX_LOG_ENTRIES`]; `more` when there are further ones.
    LogEntries {
        /// The entries.
        entries: Vec<(u64, ByteBuf)>,
        /// Ask again from the index after the last one.
        more: bool,
    },
    /// The answer to [`NodeRequest::PathEvidence`].
    PathEvidence {
        /// Encoded `pki::tlog::LogProof`s, at most [`MAX_PATH_PROOFS`].
        proofs: Vec<ByteBuf>,
        /// Signed hop receipts (COSE bytes), at most [`MAX_PATH_RECEIPTS`].
        receipts: Vec<ByteBuf>,
        /// CRLs covering the chains in them.
        crls: Vec<ByteBuf>,
    },
    /// Not served.
    Error {
        /// Retry or not.
        kind: ErrorKind,
        /// For the log.
        message: String,
    },
    /// The answer to a [`NodeRequest::Deliver`] or [`NodeRequest::Notices`] referencing CRLs
    /// the receiver lacks (given before it reads any attachment): send the request again, on
    /// a new stream, with these CRLs' DER in `crls_asked`. Nothing was taken.
    CrlsWanted {
        /// The SHA-256 of each CRL wanted, as referenced.
        sha256: Vec<ByteBuf>,
    },
}

/// Most log entries in one [`NodeResponse::LogEntries`] (each at most 2 KiB, about 150 bytes
/// in practice: well inside a frame).
pub const MAX_LOG_ENTRIES: usize = 1000;

/// Most log proofs gathered along a document's path (each a few KiB): what a bundle carries
/// by default, one per node on the paths to a few dozen recipients.
pub const MAX_PATH_PROOFS: usize = pki::document::bundle::DEFAULT_MAX_LOG_PROOFS;

/// Most receipts in one [`NodeRequest::Notices`]: each is a few KiB (a seal and its chain), so
/// a full batch with its CRLs stays well inside the default 4 MiB frame.
pub const MAX_NOTICES: usize = 64;

/// Most hop receipts gathered along a document's path (each a few KiB): one per hand-over on
/// the paths to 200 recipients through a hierarchy of four levels, with room to spare, and
/// well inside a bundle's `max_receipts`.
pub const MAX_PATH_RECEIPTS: usize = 512;

impl std::fmt::Display for NodeResponse {
    /// What the answer is, for logs and transfer errors: its kind, not its bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeResponse::HopReceipt { .. } => f.write_str("a hop receipt"),
            NodeResponse::Refused { .. } => f.write_str("a signed refusal"),
            NodeResponse::Accepted => f.write_str("accepted"),
            NodeResponse::ResumeFrom { offsets } => write!(f, "resume from {offsets:?}"),
            NodeResponse::NoticesTaken { refused } => write!(f, "notices taken, {} refused", refused.len()),
            NodeResponse::Crls { crls } => write!(f, "{} CRL(s)", crls.len()),
            NodeResponse::Routes { routes } => write!(f, "{} route answer(s)", routes.len()),
            NodeResponse::Cosigned { .. } => f.write_str("a cosignature"),
            NodeResponse::LogEntries { entries, .. } => write!(f, "{} log entries", entries.len()),
            NodeResponse::PathEvidence { proofs, receipts, .. } => {
                write!(f, "{} hop receipts and {} log proofs", receipts.len(), proofs.len())
            }
            NodeResponse::WitnessRefused { reason, .. } => write!(f, "a witness refusal: {reason}"),
            NodeResponse::Error { kind, message } => write!(f, "an error ({kind}): {message}"),
            NodeResponse::CrlsWanted { sha256 } => write!(f, "a request for {} CRL(s)", sha256.len()),
        }
    }
}

/// A clerk's request to its own node.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClerkRequest {
    /// Send a signed, sealed document; the attachments follow.
    Submit {
        /// The envelope's exact bytes.
        envelope: ByteBuf,
        /// CRLs covering the signers (optional: the node adds those it has).
        crls: Vec<ByteBuf>,
        /// Answer [`ClerkResponse::ResumeFrom`] before the attachments are sent (see
        /// [`RESUME_MIN_BYTES`]); the attachments then start at the offsets given.
        #[serde(default)]
        resume: bool,
    },
    /// Documents received by this agency.
    Inbox {
        /// Most entries to return.
        limit: u32,
    },
    /// Documents sent by this agency.
    Sent {
        /// Most entries to return.
        limit: u32,
    },
    /// One document with its receipts and CRLs; the attachments follow the response.
    Fetch {
        /// The document id.
        document: String,
        /// Gather the evidence first: a checkpoint round so this node's own entries are in a
        /// co-signed checkpoint, and (for a document this agency sent) the proofs of the
        /// nodes on the way to its recipients. Without it the node gives the proofs it has
        /// and, for a received document, those of the nodes back to the sender.
        #[serde(default)]
        evidence: bool,
    },
    /// Post a status (03, 04, 05, 06, 15 or 16) on a received document.
    PostStatus {
        /// The document id.
        document: String,
        /// The status code.
        status: u8,
        /// A note.
        note: Option<String>,
    },
    /// Every receipt and status held for a document.
    Track {
        /// The document id.
        document: String,
    },
    /// Ask the recipients of a sent document to give it back (status 13).
    Recall {
        /// The document id.
        document: String,
        /// The reason.
        note: Option<String>,
    },
    /// The node's health read-out.
    Health,
    /// Can these recipients be reached? Asked by `lienthong send` before anything is signed.
    Route {
        /// Agency codes.
        recipients: Vec<String>,
    },
    /// A question about the node's transparency log (`lienthong log`).
    Log {
        /// Which.
        query: LogQuery,
    },
}

/// What a clerk asks about its node's transparency log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "query", rename_all = "snake_case")]
pub enum LogQuery {
    /// The latest checkpoint with its cosignatures (a checkpoint round is run first).
    Checkpoint,
    /// Inclusion proofs of the entries about an envelope into the latest co-signed checkpoint.
    Prove {
        /// The envelope's SHA-256.
        envelope: ByteBuf,
    },
    /// The checkpoints of sizes `old` and `new` and the consistency proof between them.
    Consistency {
        /// The smaller size.
        old: u64,
        /// The larger size.
        new: u64,
    },
    /// The parent's entries about documents this node handed over, each compared with this
    /// node's own records.
    Audit,
}

/// The node's answer to a [`LogQuery`]. Checkpoints travel as their signed-note text; chains
/// (leaf first) and CRLs as DER, so the CLI checks everything itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum LogAnswer {
    /// [`LogQuery::Checkpoint`].
    Checkpoint {
        /// The signed note with its cosignatures.
        note: String,
        /// The log's seal chain, then each witness's.
        chains: Vec<Vec<ByteBuf>>,
        /// CRLs covering those chains.
        crls: Vec<ByteBuf>,
    },
    /// [`LogQuery::Prove`]: one `pki::tlog::LogProof` per entry about the envelope.
    Proofs {
        /// Encoded `LogProof`s.
        proofs: Vec<ByteBuf>,
        /// CRLs covering their chains.
        crls: Vec<ByteBuf>,
    },
    /// [`LogQuery::Consistency`].
    Consistency {
        /// The older checkpoint's note.
        old: String,
        /// The newer checkpoint's note.
        new: String,
        /// The consistency proof, hashes of 32 bytes.
        proof: Vec<ByteBuf>,
        /// The log's seal chain, then each witness's.
        chains: Vec<Vec<ByteBuf>>,
        /// CRLs covering those chains.
        crls: Vec<ByteBuf>,
    },
    /// [`LogQuery::Audit`].
    Audit {
        /// The parent asked.
        parent: String,
        /// How many of its entries name this node as the one that handed the document over.
        checked: u64,
        /// Those this node has no record of handing over: each an alert.
        not_sent: Vec<AuditFinding>,
    },
}

/// An entry of the parent's log naming this node as the sender of a document it has no record
/// of sending.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditFinding {
    /// Leaf index in the parent's log.
    pub index: u64,
    /// The document id the entry names.
    pub document: String,
    /// The envelope digest, hex.
    pub envelope: String,
    /// When the parent says it took it (Unix seconds).
    pub at: i64,
}

/// Whether one recipient can be reached, as the nodes on the way see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RouteAnswer {
    /// The recipient's agency code.
    pub recipient: String,
    /// What the nodes on the way found.
    pub outcome: RouteOutcome,
}

/// What the nodes on the way to a recipient found.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RouteOutcome {
    /// The recipient's own node is at the end of `path` (the agencies whose nodes the
    /// document passes, this one first).
    Reachable {
        /// Node agencies, from the asked node to the recipient's.
        path: Vec<String>,
    },
    /// Node `at` has no route: the document would be refused there with `reason`.
    NoRoute {
        /// Agency codes of the nodes asked, the last one being the one without a route.
        path: Vec<String>,
        /// Why, in the node's words.
        reason: String,
    },
    /// The way is known as far as `path` goes, but its last node could not ask the next one
    /// (down, unreachable, too slow): a document would wait there and be retried.
    Unconfirmed {
        /// Node agencies that answered, the last one being the one that could not go on.
        path: Vec<String>,
        /// The next hop it could not ask.
        next_hop: String,
        /// Why.
        reason: String,
    },
}

/// One line of an inbox or sent list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DocumentSummary {
    /// Document id.
    pub document: String,
    /// Envelope SHA-256, hex.
    pub digest: String,
    /// Sender code.
    pub sender: String,
    /// Sender name (from its seal certificate).
    pub sender_name: String,
    /// Recipients (for sent documents) or this agency (for received ones).
    pub recipients: Vec<String>,
    /// Number/notation.
    pub number: String,
    /// Type name (Công văn, Quyết định…).
    pub type_name: String,
    /// Subject.
    pub subject: String,
    /// Urgency 0–4.
    pub urgency: u8,
    /// Due date.
    pub due: Option<String>,
    /// Arrival (or submission) time, Unix milliseconds.
    pub at_ms: i64,
    /// Latest status code seen (1 arrived … 16 refused), if any.
    pub status: Option<u8>,
    /// Verification was provisional (CRLs older than the freshness budget).
    pub provisional: bool,
    /// Revoked, updated or replaced by a later document (its id), or recalled.
    pub superseded: Option<String>,
    /// The sender asked for it back (status 13) and this agency has not answered yet.
    pub recall_requested: bool,
    /// For a sent document still in this node's outbox: the transfers waiting, with their
    /// retries. Empty once every next hop has taken it (and for received documents).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<Waiting>,
}

/// A transfer of a sent document that this node has not handed over yet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Waiting {
    /// The next hop it waits for.
    pub next_hop: String,
    /// The recipients it carries.
    pub recipients: Vec<String>,
    /// Attempts made so far (0: not tried yet).
    pub attempts: u32,
    /// The last attempt's error, if any.
    pub last_error: Option<String>,
    /// When the next attempt is due, Unix milliseconds.
    pub next_attempt_ms: i64,
}

/// A node's answer to its clerk.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClerkResponse {
    /// Accepted for sending.
    Submitted {
        /// The document id.
        document: String,
        /// Envelope SHA-256, hex.
        digest: String,
    },
    /// A list of documents.
    Documents {
        /// Newest first.
        entries: Vec<DocumentSummary>,
    },
    /// A document; its attachments follow in manifest order.
    Document {
        /// The envelope's exact bytes.
        envelope: ByteBuf,
        /// CRLs covering its signers and receipts.
        crls: Vec<ByteBuf>,
        /// Receipts and statuses held for it.
        receipts: Vec<ByteBuf>,
        /// Inclusion proofs of its envelope in the logs of the nodes it passed (encoded
        /// `pki::tlog::LogProof`s; their CRLs are in `crls`).
        #[serde(default)]
        log_proofs: Vec<ByteBuf>,
    },
    /// Receipts and statuses.
    Receipts {
        /// Exact bytes of each.
        receipts: Vec<ByteBuf>,
    },
    /// Done.
    Done,
    /// The first answer to a resumable [`ClerkRequest::Submit`], once the envelope is
    /// verified: send each attachment (in manifest order) from its offset on, then read the
    /// final answer. A refusal comes instead of this, and then nothing is to be sent.
    ResumeFrom {
        /// Bytes of each attachment the node holds from an interrupted attempt.
        offsets: Vec<u64>,
    },
    /// Health read-out as JSON text.
    Health {
        /// JSON.
        json: String,
    },
    /// The answer to [`ClerkRequest::Route`]: one per recipient asked.
    Routes {
        /// In the order asked.
        routes: Vec<RouteAnswer>,
    },
    /// The answer to [`ClerkRequest::Log`].
    Log {
        /// What the node found.
        answer: LogAnswer,
    },
    /// Refused or failed.
    Error {
        /// Retry or not.
        kind: ErrorKind,
        /// What went wrong, for the clerk.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A field added later is absent from an older node's frames and defaults to what the
    /// older node meant; a field an older node does not know is skipped by its decoder (the
    /// same serde derive, no `deny_unknown_fields`), so what it does not understand it does
    /// not see: a hop receipt's `statuses` go only to an asker that set `statuses_back`.
    #[test]
    fn fields_added_later_default_for_older_nodes() {
        use ciborium::Value;
        let body = |fields: Vec<(&str, Value)>| {
            let map = fields.into_iter().map(|(k, v)| (Value::Text(k.into()), v)).collect();
            let mut bytes = Vec::new();
            ciborium::into_writer(&Value::Map(map), &mut bytes).unwrap();
            bytes
        };
        let older_deliver = body(vec![
            ("type", Value::Text("deliver".into())),
            ("envelope", Value::Bytes(vec![1])),
            ("recipients", Value::Array(vec![])),
            ("crls", Value::Array(vec![])),
        ]);
        match decode::<NodeRequest>(&older_deliver, 1 << 20).unwrap() {
            NodeRequest::Deliver { statuses_back, resume, crls_asked, .. } => {
                assert!(!statuses_back && !resume && crls_asked.is_empty())
            }
            other => panic!("{other:?}"),
        }
        let older_answer = body(vec![("type", Value::Text("hop_receipt".into())), ("receipt", Value::Bytes(vec![2]))]);
        match decode::<NodeResponse>(&older_answer, 1 << 20).unwrap() {
            NodeResponse::HopReceipt { statuses, .. } => assert!(statuses.is_empty()),
            other => panic!("{other:?}"),
        }
        let newer_answer = body(vec![
            ("type", Value::Text("hop_receipt".into())),
            ("receipt", Value::Bytes(vec![2])),
            ("statuses", Value::Array(vec![Value::Bytes(vec![3])])),
            ("a_field_of_a_later_version", Value::Bool(true)),
        ]);
        match decode::<NodeResponse>(&newer_answer, 1 << 20).unwrap() {
            NodeResponse::HopReceipt { statuses, .. } => assert_eq!(statuses, vec![ByteBuf::from(vec![3])]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn frames_round_trip_and_refuse_garbage() {
        let req = NodeRequest::Deliver {
            envelope: ByteBuf::from(vec![1, 2, 3]),
            recipients: vec!["000.01.42.H49".into()],
            crls: vec![CrlRef {
                issuer: ByteBuf::from(vec![0x30, 0]),
                number: ByteBuf::from(vec![7]),
                sha256: ByteBuf::from(vec![9; 32]),
            }],
            crls_asked: vec![],
            resume: true,
            statuses_back: true,
        };
        let frame = encode(&req);
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        match decode::<NodeRequest>(&frame[4..], 1 << 20).unwrap() {
            NodeRequest::Deliver { envelope, recipients, crls, crls_asked, resume, statuses_back } => {
                assert!(statuses_back);
                assert_eq!(envelope.as_ref(), &[1, 2, 3]);
                assert_eq!(recipients, vec!["000.01.42.H49".to_owned()]);
                assert_eq!(crls[0].number.as_ref(), &[7]);
                assert!(crls_asked.is_empty());
                assert!(resume);
            }
            other => panic!("{other:?}"),
        }
        assert!(decode::<NodeRequest>(&frame[4..], 4).is_err(), "over the limit");
        assert!(decode::<NodeRequest>(b"\xa1\x64type\x63bad", 1 << 20).is_err());
        assert!(decode::<NodeRequest>(&[0x9f], 1 << 20).is_err());
    }
}
