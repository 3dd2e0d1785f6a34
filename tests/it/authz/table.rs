//! The table: who is at the door, the operations, and the answer each must get.

use harness::probe::Protocol;
use node::protocol::{ClerkRequest, ErrorKind, NodeRequest};
use node::server::close;
use pki::AgencyCode;

/// The node under test.
pub(super) const TIEN_YEN: &str = "000.00.41.H49";
/// Its parent.
pub(super) const PROVINCE: &str = "000.00.00.H49";
/// Its configured direct peer (another province).
pub(super) const LANG_SON: &str = "000.00.00.H37";
/// A sibling district, not a neighbour.
pub(super) const BA_CHE: &str = "000.00.42.H49";
/// A child.
pub(super) const PHONG_DU: &str = "000.01.41.H49";
/// Another child, a co-recipient of the documents Tiên Yên sends.
pub(super) const HA_LAU: &str = "000.02.41.H49";
/// A commune of another district: unrelated, not a neighbour.
pub(super) const THANH_SON: &str = "000.01.42.H49";
/// The Government Office: a third party whose documents reach Tiên Yên only through its parent.
pub(super) const HUB: &str = "000.00.00.G22";

pub(super) fn code(s: &str) -> AgencyCode {
    s.parse().unwrap()
}

/// The operations: every request of both protocols (some in two forms: the request a caller
/// may make and one it may not), and the connection itself on each ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// Handshake on the node ALPN and a first stream (an empty frame: any answer means the
    /// connection was accepted).
    NodeConnect,
    /// `Deliver` of a document sealed by the caller's own agency, for Tiên Yên.
    Deliver,
    /// `Deliver` of a document sealed by a third party (the Government Office): only a parent
    /// relays for others.
    Relay,
    /// `Notices` (one): status 03 on a document Tiên Yên sent, signed by a recipient of it.
    Notice,
    /// `Notices` (one): status 13 (recall requested) on a document in Tiên Yên's inbox, signed by an
    /// agency that did not send it.
    RecallByNonSender,
    /// `Notices` (one): status 01 (arrived) on a document Tiên Yên sent, signed by one agency for
    /// another recipient.
    ArrivedForAnother,
    /// `CrlPush` of a genuine, newer CRL.
    CrlPush,
    /// `CrlFetch`.
    CrlFetch,
    /// `Route`: can a recipient be reached (asked on a clerk's behalf before signing).
    Route,
    /// `LogWitness`: co-sign a checkpoint of the caller's own transparency log.
    LogWitness,
    /// `LogEntries`: the entries of this node's log naming the caller as the one that handed a
    /// document over (what a child's audit reads).
    LogEntries,
    /// `PathEvidence` (hop receipts and log proofs) back toward the sender of the document
    /// passing through from the child to the parent: only the neighbour it was routed to (the
    /// parent) may ask.
    PathEvidence,
    /// Handshake on the clerk ALPN and a first stream.
    ClerkConnect,
    /// `Submit` of a document sealed by Tiên Yên.
    Submit,
    /// `Submit` of a document sealed by another agency.
    SubmitForeign,
    /// `Inbox`.
    Inbox,
    /// `Sent`.
    Sent,
    /// `Fetch` of a document in the inbox.
    Fetch,
    /// `Fetch` of a document only passing through (from the child to the parent): not this
    /// agency's to read.
    FetchTransit,
    /// `PostStatus` 03 on a document in the inbox.
    PostStatus,
    /// `Track` of a sent document.
    Track,
    /// `Track` of a document only passing through.
    TrackTransit,
    /// `Recall` of a sent document.
    Recall,
    /// `Health`.
    Health,
    /// `Route` from the clerk: can these recipients be reached (before signing).
    ClerkRoute,
    /// `Log`: the node's latest log checkpoint (`lienthong log checkpoint`).
    ClerkLog,
}

/// Number of columns; every row of [`TABLE`] has exactly this many cells.
pub(super) const N: usize = 26;

/// The columns, in table order.
pub(super) const OPS: [Op; N] = [
    Op::NodeConnect,
    Op::Deliver,
    Op::Relay,
    Op::Notice,
    Op::RecallByNonSender,
    Op::ArrivedForAnother,
    Op::CrlPush,
    Op::CrlFetch,
    Op::Route,
    Op::LogWitness,
    Op::LogEntries,
    Op::PathEvidence,
    Op::ClerkConnect,
    Op::Submit,
    Op::SubmitForeign,
    Op::Inbox,
    Op::Sent,
    Op::Fetch,
    Op::FetchTransit,
    Op::PostStatus,
    Op::Track,
    Op::TrackTransit,
    Op::Recall,
    Op::Health,
    Op::ClerkRoute,
    Op::ClerkLog,
];

impl Op {
    /// The column (no `_` arm: a new operation needs a column, and `N` grows with it, which
    /// makes every row of the table too short until it has a cell for it).
    pub(super) fn column(self) -> usize {
        match self {
            Op::NodeConnect => 0,
            Op::Deliver => 1,
            Op::Relay => 2,
            Op::Notice => 3,
            Op::RecallByNonSender => 4,
            Op::ArrivedForAnother => 5,
            Op::CrlPush => 6,
            Op::CrlFetch => 7,
            Op::Route => 8,
            Op::LogWitness => 9,
            Op::LogEntries => 10,
            Op::PathEvidence => 11,
            Op::ClerkConnect => 12,
            Op::Submit => 13,
            Op::SubmitForeign => 14,
            Op::Inbox => 15,
            Op::Sent => 16,
            Op::Fetch => 17,
            Op::FetchTransit => 18,
            Op::PostStatus => 19,
            Op::Track => 20,
            Op::TrackTransit => 21,
            Op::Recall => 22,
            Op::Health => 23,
            Op::ClerkRoute => 24,
            Op::ClerkLog => 25,
        }
    }

    /// The column heading (six characters at most).
    pub(super) fn header(self) -> &'static str {
        match self {
            Op::NodeConnect | Op::ClerkConnect => "conn",
            Op::Deliver => "deliv",
            Op::Relay => "relay",
            Op::Notice => "notice",
            Op::RecallByNonSender => "13!snd",
            Op::ArrivedForAnother => "01!rcp",
            Op::CrlPush => "push",
            Op::CrlFetch => "crls",
            Op::LogWitness => "cosign",
            Op::LogEntries => "entries",
            Op::PathEvidence => "path",
            Op::ClerkLog => "log",
            Op::Submit => "submit",
            Op::SubmitForeign => "sub!",
            Op::Inbox => "inbox",
            Op::Sent => "sent",
            Op::Fetch => "fetch",
            Op::FetchTransit => "fetch!",
            Op::PostStatus => "status",
            Op::Track => "track",
            Op::TrackTransit => "track!",
            Op::Recall => "recall",
            Op::Health => "health",
            Op::Route | Op::ClerkRoute => "route",
        }
    }

    pub(super) fn protocol(self) -> Protocol {
        if self.column() < Op::ClerkConnect.column() { Protocol::Node } else { Protocol::Clerk }
    }

    /// The operation a request is judged under, whatever its content: the column of its
    /// variant. `None` for the connection columns, which send no request.
    pub(super) fn variant(self) -> Option<Op> {
        match self {
            Op::NodeConnect | Op::ClerkConnect => None,
            Op::Relay => Some(Op::Deliver),
            Op::RecallByNonSender | Op::ArrivedForAnother => Some(Op::Notice),
            Op::SubmitForeign => Some(Op::Submit),
            Op::FetchTransit => Some(Op::Fetch),
            Op::TrackTransit => Some(Op::Track),
            other => Some(other),
        }
    }
}

/// The column in which each node request is judged. No `_` arm, on purpose: a new
/// `NodeRequest` variant does not compile until it is given a column here, and a column does
/// not compile until every row of [`TABLE`] has a cell for it.
pub(super) fn node_column(request: &NodeRequest) -> Op {
    match request {
        NodeRequest::Deliver { .. } => Op::Deliver,
        NodeRequest::Notices { .. } => Op::Notice,
        NodeRequest::CrlPush { .. } => Op::CrlPush,
        NodeRequest::CrlFetch { .. } => Op::CrlFetch,
        NodeRequest::Route { .. } => Op::Route,
        NodeRequest::LogWitness { .. } => Op::LogWitness,
        NodeRequest::LogEntries { .. } => Op::LogEntries,
        NodeRequest::PathEvidence { .. } => Op::PathEvidence,
    }
}

/// The column in which each clerk request is judged; exhaustive like [`node_column`].
pub(super) fn clerk_column(request: &ClerkRequest) -> Op {
    match request {
        ClerkRequest::Submit { .. } => Op::Submit,
        ClerkRequest::Inbox { .. } => Op::Inbox,
        ClerkRequest::Sent { .. } => Op::Sent,
        ClerkRequest::Fetch { .. } => Op::Fetch,
        ClerkRequest::PostStatus { .. } => Op::PostStatus,
        ClerkRequest::Track { .. } => Op::Track,
        ClerkRequest::Recall { .. } => Op::Recall,
        ClerkRequest::Health => Op::Health,
        ClerkRequest::Route { .. } => Op::ClerkRoute,
        ClerkRequest::Log { .. } => Op::ClerkLog,
    }
}

/// Who is at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Who {
    NoCertificate,
    ForeignNode,
    ForeignClerk,
    ExpiredNode,
    NotYetValidNode,
    RevokedNode,
    ExpiredClerk,
    NotYetValidClerk,
    RevokedClerk,
    OwnSeal,
    OwnPerson,
    OwnNode,
    OwnClerk,
    ChildClerk,
    ParentClerk,
    Parent,
    Child,
    Peer,
    Sibling,
    Stranger,
}

impl Who {
    pub(super) fn label(self) -> &'static str {
        match self {
            Who::NoCertificate => "no certificate",
            Who::ForeignNode => "foreign root: child's node cert",
            Who::ForeignClerk => "foreign root: own clerk cert",
            Who::ExpiredNode => "expired child node cert",
            Who::NotYetValidNode => "not-yet-valid child node cert",
            Who::RevokedNode => "revoked child node cert",
            Who::ExpiredClerk => "expired own clerk cert",
            Who::NotYetValidClerk => "not-yet-valid own clerk cert",
            Who::RevokedClerk => "revoked own clerk cert",
            Who::OwnSeal => "own seal cert used for TLS",
            Who::OwnPerson => "own person cert used for TLS",
            Who::OwnNode => "own node cert (itself)",
            Who::OwnClerk => "own clerk",
            Who::ChildClerk => "clerk of the child agency",
            Who::ParentClerk => "clerk of the parent agency",
            Who::Parent => "parent node (province)",
            Who::Child => "child node (commune)",
            Who::Peer => "direct peer node (Lang Son)",
            Who::Sibling => "sibling district node",
            Who::Stranger => "unrelated commune node",
        }
    }

    /// The agency whose signed documents and statuses this caller carries: its own, or the
    /// child's when it is (or claims to be) Tiên Yên itself or nobody.
    pub(super) fn party(self) -> &'static str {
        match self {
            Who::Parent | Who::ParentClerk => PROVINCE,
            Who::Peer => LANG_SON,
            Who::Sibling => BA_CHE,
            Who::Stranger => THANH_SON,
            _ => PHONG_DU,
        }
    }
}

/// The answer a cell must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// Refused in the TLS handshake (whatever the alert).
    Handshake,
    /// Handshake completed, then the connection closed with this application code.
    Closed(u32),
    /// An `Error` response of this kind.
    Error(ErrorKind),
    /// A signed refusal (status 02) of the document.
    Refused,
    /// Served, with its effect.
    Served,
}

pub(super) const H: Expect = Expect::Handshake;
pub(super) const OK: Expect = Expect::Served;
/// Not a neighbour of this node.
pub(super) const NN: Expect = Expect::Closed(close::NOT_NEIGHBOUR);
/// A clerk of another agency.
pub(super) const FC: Expect = Expect::Closed(close::FOREIGN_CLERK);
/// A certificate unusable for the ALPN.
pub(super) const WP: Expect = Expect::Closed(close::WRONG_PROFILE);
pub(super) const FB: Expect = Expect::Error(ErrorKind::Forbidden);
pub(super) const BR: Expect = Expect::Error(ErrorKind::BadRequest);
pub(super) const R02: Expect = Expect::Refused;

/// The table. Columns as in [`OPS`]:
/// node protocol: connect, deliver, relay, notice, 13 by a non-sender, 01 for another
/// recipient, CRL push, CRL fetch, route question, cosign a log checkpoint, log entries naming the caller,
/// log proofs of a document it passed; clerk protocol: connect, submit, submit
/// another agency's document, inbox, sent, fetch, fetch a document in transit, post status,
/// track, track a document in transit, recall, health, route question, log checkpoint.
///
/// Why each answer:
/// - Anything whose chain does not validate now for the node or clerk profile (no
///   certificate, another root, expired, not yet valid, revoked by a CRL the node holds, a
///   seal or person certificate) never completes the handshake.
/// - A valid node certificate on the node ALPN is accepted only from a neighbour (parent,
///   child, configured peer); the node's own certificate and every other node get
///   NOT_NEIGHBOUR. A clerk certificate on the node ALPN, and a node certificate on the clerk
///   ALPN, get WRONG_PROFILE. A clerk of any other agency gets FOREIGN_CLERK.
/// - Documents: a child or peer hands over only documents of its own subtree (a document of
///   the Government Office from them is refused with a signed 02); the parent relays the
///   rest of the country. Only the parent pushes CRLs. CRLs are public: any neighbour may
///   fetch them. Any neighbour may ask whether a recipient can be reached (it asks on its
///   clerk's behalf; the answer is what routing would do, which a neighbour learns anyway).
/// - A node witnesses the transparency logs of its children, and of its parent (the national
///   hub names level-1 nodes as its witnesses): each may ask it to co-sign a checkpoint of its
///   own log, signed by its own seal; a direct peer may not (Forbidden). Only a child may read
///   the entries of this node's log that name it (for its audit): the parent and peers are
///   Forbidden. The log proofs of a document (for a bundle's evidence) go only to a neighbour
///   the document passed between: asked back toward the sender, only the neighbour it was
///   routed to (here the parent) is answered; the child and peers are Forbidden. The own
///   clerk reads its node's log (checkpoint, proofs, audit).
/// - Notices travel from anyone's neighbour, but a status binds only its rightful signer: a
///   recall request (13) only from the document's sender, an arrival (01) only from the
///   recipient it names. Neither decides anything at this node otherwise (Forbidden).
/// - The own clerk may do everything the clerk protocol offers for its agency's documents,
///   but cannot submit another agency's document (BadRequest: "this node sends for …
///   only"), nor read a document that only passes through its node — a commune's letter to
///   the province is not the district's to read — which gets the answer of a document not
///   held here (BadRequest: "no document … at this agency"). Posting a status on, or
///   recalling, a document the agency did not receive or send is refused the same way
///   (`clerk_protocol.rs` tests those messages).
#[rustfmt::skip]
pub(super) const TABLE: [(Who, [Expect; N]); 20] = [
    //                       node protocol                                                             clerk protocol
    //                       conn    deliv   relay   notice  13!snd  01!rcp  push    crls    route   cosign  entries path    conn    submit  sub!    inbox   sent    fetch   fetch!  status  track   track!  recall  health  route   log
    (Who::NoCertificate,    [H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::ForeignNode,      [H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::ForeignClerk,     [H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::ExpiredNode,      [H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::NotYetValidNode,  [H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::RevokedNode,      [H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::ExpiredClerk,     [H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::NotYetValidClerk, [H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::RevokedClerk,     [H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::OwnSeal,          [H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::OwnPerson,        [H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::OwnNode,          [NN,     NN,     NN,     NN,     NN,     NN,     NN,     NN,     NN,     NN,     NN,     NN,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP]),
    (Who::OwnClerk,         [WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     OK,     OK,     BR,     OK,     OK,     OK,     BR,     OK,     OK,     BR,     OK,     OK,     OK,     OK]),
    (Who::ChildClerk,       [WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC]),
    (Who::ParentClerk,      [WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC]),
    (Who::Parent,           [OK,     OK,     OK,     OK,     FB,     FB,     OK,     OK,     OK,     OK,     FB,     OK,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP]),
    (Who::Child,            [OK,     OK,     R02,    OK,     FB,     FB,     FB,     OK,     OK,     OK,     OK,     FB,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP]),
    (Who::Peer,             [OK,     OK,     R02,    OK,     FB,     FB,     FB,     OK,     OK,     FB,     FB,     FB,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP]),
    (Who::Sibling,          [NN,     NN,     NN,     NN,     NN,     NN,     NN,     NN,     NN,     NN,     NN,     NN,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP]),
    (Who::Stranger,         [NN,     NN,     NN,     NN,     NN,     NN,     NN,     NN,     NN,     NN,     NN,     NN,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP]),
];
