//! The authorisation matrix (issue 10, item 5): every identity a node can meet × every
//! operation of both protocols, with the answer the node must give written in each cell, so
//! that no operation can be added without deciding who may call it.
//!
//! The node under test is the district Tiên Yên (000.00.41.H49): it has a parent (the
//! province), children (the communes Phong Dụ and Hà Lâu), a configured direct peer (the
//! province of Lạng Sơn), a sibling (the district Ba Chẽ) and strangers. It runs alone,
//! in-process, on SQLite and on PostgreSQL; every other party is played by a raw client
//! (`harness::probe`) presenting that party's genuine certificate — or a broken one — which
//! is all the node ever sees of it. Its neighbours do not run, so nothing the node forwards
//! comes back to change its database behind the test's back.
//!
//! Each cell is one request on a fresh connection. The node's database is read before and
//! after: a refused request must change nothing, a served one must have its effect (the
//! document or receipt stored, the status signed, the CRL kept), and a served read nothing.
//! The whole matrix is printed (✓ served, `H<alert>` refused in the TLS handshake, `0x..`
//! closed with that application code, F/B/U an error response, 02 a signed refusal), with
//! every disagreement and the database rows it changed.

mod snapshot;

use std::time::{Duration, Instant};

use harness::identities::{ForeignPki, Window, out_of_window, revoked};
use harness::network::{Database, NetOptions, SignedDocument, TestNet, topology};
use harness::probe::{NoAnswer, Probe, Protocol};
use node::config::Identity;
use node::protocol::{ClerkRequest, ClerkResponse, ErrorKind, NodeRequest, NodeResponse};
use node::server::close;
use pki::document::{Receipt, ReceiptKind, SignedReceipt, StatusCode};
use pki::{AgencyCode, Profile};
use serde_bytes::ByteBuf;

use snapshot::{NodeData, Snapshot};

/// The node under test.
const TIEN_YEN: &str = "000.00.41.H49";
/// Its parent.
const PROVINCE: &str = "000.00.00.H49";
/// Its configured direct peer (another province).
const LANG_SON: &str = "000.00.00.H37";
/// A sibling district, not a neighbour.
const BA_CHE: &str = "000.00.42.H49";
/// A child.
const PHONG_DU: &str = "000.01.41.H49";
/// Another child, a co-recipient of the documents Tiên Yên sends.
const HA_LAU: &str = "000.02.41.H49";
/// A commune of another district: unrelated, not a neighbour.
const THANH_SON: &str = "000.01.42.H49";
/// The Government Office: a third party whose documents reach Tiên Yên only through its parent.
const HUB: &str = "000.00.00.G22";

fn code(s: &str) -> AgencyCode {
    s.parse().unwrap()
}

/// The operations: every request of both protocols (some in two forms: the request a caller
/// may make and one it may not), and the connection itself on each ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Handshake on the node ALPN and a first stream (an empty frame: any answer means the
    /// connection was accepted).
    NodeConnect,
    /// `Deliver` of a document sealed by the caller's own agency, for Tiên Yên.
    Deliver,
    /// `Deliver` of a document sealed by a third party (the Government Office): only a parent
    /// relays for others.
    Relay,
    /// `Notice`: status 03 on a document Tiên Yên sent, signed by a recipient of it.
    Notice,
    /// `Notice`: status 13 (recall requested) on a document in Tiên Yên's inbox, signed by an
    /// agency that did not send it.
    RecallByNonSender,
    /// `Notice`: status 01 (arrived) on a document Tiên Yên sent, signed by one agency for
    /// another recipient.
    ArrivedForAnother,
    /// `CrlPush` of a genuine, newer CRL.
    CrlPush,
    /// `CrlFetch`.
    CrlFetch,
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
}

/// Number of columns; every row of [`TABLE`] has exactly this many cells.
const N: usize = 20;

/// The columns, in table order.
const OPS: [Op; N] = [
    Op::NodeConnect,
    Op::Deliver,
    Op::Relay,
    Op::Notice,
    Op::RecallByNonSender,
    Op::ArrivedForAnother,
    Op::CrlPush,
    Op::CrlFetch,
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
];

impl Op {
    /// The column (no `_` arm: a new operation needs a column, and `N` grows with it, which
    /// makes every row of the table too short until it has a cell for it).
    fn column(self) -> usize {
        match self {
            Op::NodeConnect => 0,
            Op::Deliver => 1,
            Op::Relay => 2,
            Op::Notice => 3,
            Op::RecallByNonSender => 4,
            Op::ArrivedForAnother => 5,
            Op::CrlPush => 6,
            Op::CrlFetch => 7,
            Op::ClerkConnect => 8,
            Op::Submit => 9,
            Op::SubmitForeign => 10,
            Op::Inbox => 11,
            Op::Sent => 12,
            Op::Fetch => 13,
            Op::FetchTransit => 14,
            Op::PostStatus => 15,
            Op::Track => 16,
            Op::TrackTransit => 17,
            Op::Recall => 18,
            Op::Health => 19,
        }
    }

    /// The column heading (six characters at most).
    fn header(self) -> &'static str {
        match self {
            Op::NodeConnect | Op::ClerkConnect => "conn",
            Op::Deliver => "deliv",
            Op::Relay => "relay",
            Op::Notice => "notice",
            Op::RecallByNonSender => "13!snd",
            Op::ArrivedForAnother => "01!rcp",
            Op::CrlPush => "push",
            Op::CrlFetch => "crls",
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
        }
    }

    fn protocol(self) -> Protocol {
        if self.column() < Op::ClerkConnect.column() { Protocol::Node } else { Protocol::Clerk }
    }

    /// The operation a request is judged under, whatever its content: the column of its
    /// variant. `None` for the connection columns, which send no request.
    fn variant(self) -> Option<Op> {
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
fn node_column(request: &NodeRequest) -> Op {
    match request {
        NodeRequest::Deliver { .. } => Op::Deliver,
        NodeRequest::Notice { .. } => Op::Notice,
        NodeRequest::CrlPush { .. } => Op::CrlPush,
        NodeRequest::CrlFetch { .. } => Op::CrlFetch,
        // Checkpoints (the transparency log's signed tree heads, pushed and fetched between
        // neighbours) do not exist yet. When `NodeRequest` gets them, their columns go here:
        // who may push a checkpoint, who may fetch one, who may ask for a proof.
    }
}

/// The column in which each clerk request is judged; exhaustive like [`node_column`].
fn clerk_column(request: &ClerkRequest) -> Op {
    match request {
        ClerkRequest::Submit { .. } => Op::Submit,
        ClerkRequest::Inbox { .. } => Op::Inbox,
        ClerkRequest::Sent { .. } => Op::Sent,
        ClerkRequest::Fetch { .. } => Op::Fetch,
        ClerkRequest::PostStatus { .. } => Op::PostStatus,
        ClerkRequest::Track { .. } => Op::Track,
        ClerkRequest::Recall { .. } => Op::Recall,
        ClerkRequest::Health => Op::Health,
    }
}

/// Who is at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
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
    fn label(self) -> &'static str {
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
    fn party(self) -> &'static str {
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
enum Expect {
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

const H: Expect = Expect::Handshake;
const OK: Expect = Expect::Served;
/// Not a neighbour of this node.
const NN: Expect = Expect::Closed(close::NOT_NEIGHBOUR);
/// A clerk of another agency.
const FC: Expect = Expect::Closed(close::FOREIGN_CLERK);
/// A certificate unusable for the ALPN.
const WP: Expect = Expect::Closed(close::WRONG_PROFILE);
const FB: Expect = Expect::Error(ErrorKind::Forbidden);
const BR: Expect = Expect::Error(ErrorKind::BadRequest);
const R02: Expect = Expect::Refused;

/// The table. Columns as in [`OPS`]:
/// node protocol: connect, deliver, relay, notice, 13 by a non-sender, 01 for another
/// recipient, CRL push, CRL fetch; clerk protocol: connect, submit, submit another agency's
/// document, inbox, sent, fetch, fetch a document in transit, post status, track, track a
/// document in transit, recall, health.
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
///   fetch them.
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
const TABLE: [(Who, [Expect; N]); 20] = [
    //                       node protocol                                                     clerk protocol
    //                       conn    deliv   relay   notice  13!snd  01!rcp  push    crls      conn    submit  sub!    inbox   sent    fetch   fetch!  status  track   track!  recall  health
    (Who::NoCertificate,    [H,      H,      H,      H,      H,      H,      H,      H,        H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::ForeignNode,      [H,      H,      H,      H,      H,      H,      H,      H,        H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::ForeignClerk,     [H,      H,      H,      H,      H,      H,      H,      H,        H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::ExpiredNode,      [H,      H,      H,      H,      H,      H,      H,      H,        H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::NotYetValidNode,  [H,      H,      H,      H,      H,      H,      H,      H,        H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::RevokedNode,      [H,      H,      H,      H,      H,      H,      H,      H,        H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::ExpiredClerk,     [H,      H,      H,      H,      H,      H,      H,      H,        H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::NotYetValidClerk, [H,      H,      H,      H,      H,      H,      H,      H,        H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::RevokedClerk,     [H,      H,      H,      H,      H,      H,      H,      H,        H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::OwnSeal,          [H,      H,      H,      H,      H,      H,      H,      H,        H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::OwnPerson,        [H,      H,      H,      H,      H,      H,      H,      H,        H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H,      H]),
    (Who::OwnNode,          [NN,     NN,     NN,     NN,     NN,     NN,     NN,     NN,       WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP]),
    (Who::OwnClerk,         [WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,       OK,     OK,     BR,     OK,     OK,     OK,     BR,     OK,     OK,     BR,     OK,     OK]),
    (Who::ChildClerk,       [WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,       FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC]),
    (Who::ParentClerk,      [WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,       FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC,     FC]),
    (Who::Parent,           [OK,     OK,     OK,     OK,     FB,     FB,     OK,     OK,       WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP]),
    (Who::Child,            [OK,     OK,     R02,    OK,     FB,     FB,     FB,     OK,       WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP]),
    (Who::Peer,             [OK,     OK,     R02,    OK,     FB,     FB,     FB,     OK,       WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP]),
    (Who::Sibling,          [NN,     NN,     NN,     NN,     NN,     NN,     NN,     NN,       WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP]),
    (Who::Stranger,         [NN,     NN,     NN,     NN,     NN,     NN,     NN,     NN,       WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP,     WP]),
];

/// What the node answered, as the table speaks of it.
#[derive(Debug, Clone)]
enum Seen {
    Served(String),
    Handshake(u8, String),
    Closed(u64, String),
    Error(ErrorKind, String),
    Refused(String),
    Broken(String),
}

impl Seen {
    fn from_no_answer(n: NoAnswer) -> Seen {
        match n {
            NoAnswer::Handshake { alert, reason } => Seen::Handshake(alert, reason),
            NoAnswer::Closed { code, reason } => Seen::Closed(code, reason),
            NoAnswer::Broken(e) => Seen::Broken(e),
        }
    }

    fn from_node(r: Result<NodeResponse, NoAnswer>) -> Seen {
        match r {
            Ok(NodeResponse::HopReceipt { .. }) => Seen::Served("hop receipt".into()),
            Ok(NodeResponse::Accepted) => Seen::Served("accepted".into()),
            Ok(NodeResponse::Crls { crls }) => Seen::Served(format!("{} CRLs", crls.len())),
            Ok(NodeResponse::Refused { receipt }) => Seen::Refused(
                SignedReceipt::from_bytes(&receipt)
                    .map(|r| r.receipt.note.unwrap_or_default())
                    .unwrap_or_else(|e| format!("unreadable refusal: {e}")),
            ),
            Ok(NodeResponse::Error { kind, message }) => Seen::Error(kind, message),
            Err(n) => Seen::from_no_answer(n),
        }
    }

    fn from_clerk(r: Result<ClerkResponse, NoAnswer>) -> Seen {
        match r {
            Ok(ClerkResponse::Submitted { document, .. }) => Seen::Served(format!("submitted {document}")),
            Ok(ClerkResponse::Documents { entries }) => Seen::Served(format!("{} documents", entries.len())),
            Ok(ClerkResponse::Document { envelope, receipts, .. }) => {
                let id = pki::document::Envelope::from_bytes(&envelope)
                    .map_err(|e| e.to_string())
                    .and_then(|e| e.manifest().map_err(|e| e.to_string()))
                    .map(|m| m.id().to_string())
                    .unwrap_or_else(|e| format!("an unreadable envelope ({e})"));
                Seen::Served(format!("{id} with its attachments and {} receipts", receipts.len()))
            }
            Ok(ClerkResponse::Receipts { receipts }) => Seen::Served(format!("{} receipts", receipts.len())),
            Ok(ClerkResponse::Done) => Seen::Served("done".into()),
            Ok(ClerkResponse::Health { json }) => Seen::Served(format!("health, {} bytes", json.len())),
            Ok(ClerkResponse::Error { kind, message }) => Seen::Error(kind, message),
            Err(n) => Seen::from_no_answer(n),
        }
    }

    fn agrees(&self, expect: Expect) -> bool {
        match (expect, self) {
            (Expect::Handshake, Seen::Handshake(..)) => true,
            (Expect::Closed(c), Seen::Closed(code, _)) => u64::from(c) == *code,
            (Expect::Error(k), Seen::Error(kind, _)) => k == *kind,
            (Expect::Refused, Seen::Refused(_)) => true,
            (Expect::Served, Seen::Served(_)) => true,
            _ => false,
        }
    }

    /// The short form printed in the matrix.
    fn short(&self) -> String {
        match self {
            Seen::Served(_) => "✓".into(),
            Seen::Handshake(alert, _) => format!("H{alert}"),
            Seen::Closed(code, _) => format!("{code:#x}"),
            Seen::Error(ErrorKind::Forbidden, _) => "F".into(),
            Seen::Error(ErrorKind::BadRequest, _) => "B".into(),
            Seen::Error(ErrorKind::Unavailable, _) => "U".into(),
            Seen::Refused(_) => "02".into(),
            Seen::Broken(_) => "?".into(),
        }
    }

    fn detail(&self) -> String {
        match self {
            Seen::Served(what) => format!("served ({what})"),
            Seen::Handshake(alert, reason) => format!("refused in the handshake, TLS alert {alert} ({reason})"),
            Seen::Closed(code, reason) => format!("closed with {code:#x} ({reason})"),
            Seen::Error(kind, message) => format!("error {kind:?}: {message}"),
            Seen::Refused(note) => format!("signed refusal: {note}"),
            Seen::Broken(e) => format!("no decision: {e}"),
        }
    }
}

fn expect_text(e: Expect) -> String {
    match e {
        Expect::Handshake => "refused in the handshake".into(),
        Expect::Closed(c) => format!("closed with {c:#x}"),
        Expect::Error(k) => format!("error {k:?}"),
        Expect::Refused => "a signed refusal (02)".into(),
        Expect::Served => "served".into(),
    }
}

/// What a served request must have done, read from the node's database.
enum Effect {
    /// Nothing: a read, or the connection alone.
    Nothing,
    /// The document is stored (outgoing for a clerk's submission).
    Document { id: String, digest: [u8; 32], outgoing: bool },
    /// The receipt is kept.
    Receipt { envelope: [u8; 32], digest: [u8; 32] },
    /// The node signed this status on the document.
    Status { envelope: [u8; 32], status: StatusCode },
    /// The CRL is kept.
    Crl([u8; 32]),
}

/// A request ready to send.
enum Request {
    /// An empty frame: any answer means the connection was accepted.
    Connect(Protocol),
    Node(NodeRequest, Vec<u8>),
    Clerk(ClerkRequest, Vec<u8>),
}

/// The documents a row works on, made through the legitimate paths before the matrix runs.
struct Fixture {
    /// A document of the Government Office in Tiên Yên's inbox (delivered by the parent).
    received: SignedDocument,
    /// A document Tiên Yên sent to the row's party and to Hà Lâu (submitted by its clerk).
    sent: SignedDocument,
    /// A document of Phong Dụ for the province, stored at Tiên Yên only to be forwarded
    /// (delivered by the child).
    transit: SignedDocument,
}

/// One cell's outcome.
struct Cell {
    seen: Seen,
    /// Why the cell disagrees with the table, if it does.
    problem: Option<String>,
    /// Database rows the request changed.
    diff: Vec<String>,
}

/// The network, the node under test, the callers' identities and the fixtures.
struct World {
    net: TestNet,
    probe: Probe,
    data: NodeData,
    identities: Vec<Option<Identity>>,
    fixtures: Vec<Fixture>,
    next_number: u32,
    crl_pushes: i64,
    crl_base: time::OffsetDateTime,
}

impl World {
    async fn start(database: Database) -> World {
        let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let mut net = TestNet::prepare(topology("quang-ninh-2024"), NetOptions { database, ..NetOptions::default() });
        let tien_yen = code(TIEN_YEN);
        let phong_du = code(PHONG_DU);
        let mut foreign = ForeignPki::new(now);
        let mut identities = Vec::with_capacity(TABLE.len());
        for (who, _) in &TABLE {
            let genuine = |net: &TestNet, c: &str, p: Profile| Some(net.identity(&code(c), p));
            let identity = match who {
                Who::NoCertificate => None,
                Who::ForeignNode => Some(foreign.issue(&phong_du, Profile::Node)),
                Who::ForeignClerk => Some(foreign.issue(&tien_yen, Profile::Clerk)),
                Who::ExpiredNode => Some(out_of_window(&mut net.pki, &phong_du, Profile::Node, Window::Expired, now)),
                Who::NotYetValidNode => {
                    Some(out_of_window(&mut net.pki, &phong_du, Profile::Node, Window::NotYetValid, now))
                }
                Who::RevokedNode => Some(revoked(&mut net.pki, &phong_du, Profile::Node, now)),
                Who::ExpiredClerk => Some(out_of_window(&mut net.pki, &tien_yen, Profile::Clerk, Window::Expired, now)),
                Who::NotYetValidClerk => {
                    Some(out_of_window(&mut net.pki, &tien_yen, Profile::Clerk, Window::NotYetValid, now))
                }
                Who::RevokedClerk => Some(revoked(&mut net.pki, &tien_yen, Profile::Clerk, now)),
                Who::OwnSeal => genuine(&net, TIEN_YEN, Profile::Seal),
                Who::OwnPerson => genuine(&net, TIEN_YEN, Profile::Person),
                Who::OwnNode => genuine(&net, TIEN_YEN, Profile::Node),
                Who::OwnClerk => genuine(&net, TIEN_YEN, Profile::Clerk),
                Who::ChildClerk => genuine(&net, PHONG_DU, Profile::Clerk),
                Who::ParentClerk => genuine(&net, PROVINCE, Profile::Clerk),
                Who::Parent => genuine(&net, PROVINCE, Profile::Node),
                Who::Child => genuine(&net, PHONG_DU, Profile::Node),
                Who::Peer => genuine(&net, LANG_SON, Profile::Node),
                Who::Sibling => genuine(&net, BA_CHE, Profile::Node),
                Who::Stranger => genuine(&net, THANH_SON, Profile::Node),
            };
            identities.push(identity);
        }
        // The revocations above go into the CRL file the node loads when it starts.
        net.publish_crls();
        // Lạng Sơn is Tiên Yên's configured direct peer (it is in no one's tree of neighbours).
        let config = net.config_path(&tien_yen);
        let text = std::fs::read_to_string(&config).unwrap();
        let peer = format!("\n[[peer]]\nagency = \"{LANG_SON}\"\naddress = \"{}\"\n", net.addrs[&code(LANG_SON)]);
        std::fs::write(&config, text + &peer).unwrap();
        net.start_node(&tien_yen).await;

        let node = net.node(TIEN_YEN);
        assert_eq!(node.routes.relation(&code(LANG_SON)), Some(node::routing::Relation::Peer));
        for (i, (who, _)) in TABLE.iter().enumerate() {
            if matches!(who, Who::RevokedNode | Who::RevokedClerk) {
                let serial = &identities[i].as_ref().unwrap().chain[0].serial;
                assert!(
                    node.trust.validator().crls().iter().any(|c| c.lookup(serial).is_some()),
                    "the node did not load the CRL revoking the {} certificate",
                    who.label()
                );
            }
        }
        let probe = Probe::new(net.addrs[&tien_yen], tien_yen, vec![net.pki.root.cert.clone()]);
        let data = NodeData::open(&node.config.database, &node.config.data_dir).await;
        let mut world = World {
            net,
            probe,
            data,
            identities,
            fixtures: Vec::new(),
            next_number: 1,
            crl_pushes: 0,
            crl_base: now - time::Duration::minutes(30),
        };
        world.make_fixtures().await;
        world
    }

    fn identity_of(&self, who: Who) -> Option<&Identity> {
        let row = TABLE.iter().position(|(w, _)| *w == who).unwrap();
        self.identities[row].as_ref()
    }

    fn document(&mut self, from: &str, to: &[&str]) -> SignedDocument {
        self.next_number += 1;
        self.net.document(from, to, self.next_number)
    }

    /// Per row, a received and a sent document, through the paths the table says are open
    /// (the parent delivers, the own clerk submits): the fixtures are themselves two cells
    /// that must be served.
    async fn make_fixtures(&mut self) {
        for (who, _) in &TABLE {
            let received = self.document(HUB, &[TIEN_YEN]);
            let answer = self
                .probe
                .node(self.identity_of(Who::Parent), &deliver(&received, &[TIEN_YEN]), &body(&received))
                .await;
            assert!(matches!(answer, Ok(NodeResponse::HopReceipt { .. })), "fixture for {who:?}: {answer:?}");
            let sent = self.document(TIEN_YEN, &[who.party(), HA_LAU]);
            let answer = self.probe.clerk(self.identity_of(Who::OwnClerk), &submit(&sent), &body(&sent)).await;
            assert!(matches!(answer, Ok(ClerkResponse::Submitted { .. })), "fixture for {who:?}: {answer:?}");
            let transit = self.document(PHONG_DU, &[PROVINCE]);
            let answer =
                self.probe.node(self.identity_of(Who::Child), &deliver(&transit, &[PROVINCE]), &body(&transit)).await;
            assert!(matches!(answer, Ok(NodeResponse::HopReceipt { .. })), "fixture for {who:?}: {answer:?}");
            self.fixtures.push(Fixture { received, sent, transit });
        }
    }

    /// A status signed by `by`'s seal.
    fn status(
        &self,
        by: &str,
        doc: &SignedDocument,
        status: StatusCode,
        recipients: &[&str],
        note: String,
    ) -> SignedReceipt {
        let a = &self.net.pki.agencies[&code(by)];
        let receipt = Receipt {
            kind: ReceiptKind::Status(status),
            document: doc.manifest.id(),
            envelope: doc.digest,
            by: code(by),
            to: code(TIEN_YEN),
            at: time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap(),
            recipients: recipients.iter().map(|r| code(r)).collect(),
            note: Some(note),
        };
        receipt.sign(&a.seal.key, &a.chain(&a.seal.cert)).unwrap()
    }

    /// The request of `row`'s cell in column `op`, and what it must do if served.
    fn request(&mut self, row: usize, op: Op) -> (Request, Effect) {
        let who = TABLE[row].0;
        let party = who.party();
        let note = format!("{} / {}", who.label(), op.header());
        let fixture = &self.fixtures[row];
        let (received, sent, transit) = (fixture.received.clone(), fixture.sent.clone(), fixture.transit.clone());
        let notice = |r: &SignedReceipt| {
            let request = NodeRequest::Notice { receipt: ByteBuf::from(r.as_bytes().to_vec()), crls: Vec::new() };
            (Request::Node(request, Vec::new()), Effect::Receipt { envelope: r.receipt.envelope, digest: r.digest() })
        };
        let stored =
            |d: &SignedDocument, outgoing: bool| Effect::Document { id: d.id.clone(), digest: d.digest, outgoing };
        match op {
            Op::NodeConnect => (Request::Connect(Protocol::Node), Effect::Nothing),
            Op::ClerkConnect => (Request::Connect(Protocol::Clerk), Effect::Nothing),
            Op::Deliver | Op::Relay => {
                let from = if op == Op::Relay { HUB } else { party };
                let doc = self.document(from, &[TIEN_YEN]);
                (Request::Node(deliver(&doc, &[TIEN_YEN]), body(&doc)), stored(&doc, false))
            }
            Op::Notice => notice(&self.status(party, &sent, StatusCode::Accepted, &[party], note)),
            Op::RecallByNonSender => {
                notice(&self.status(party, &received, StatusCode::RecallRequested, &[TIEN_YEN], note))
            }
            Op::ArrivedForAnother => notice(&self.status(party, &sent, StatusCode::Arrived, &[HA_LAU], note)),
            Op::CrlPush => {
                self.crl_pushes += 1;
                let at = self.crl_base + time::Duration::seconds(self.crl_pushes);
                let ca = self.net.pki.cas.get_mut(&code(PROVINCE)).unwrap();
                let crl = ca.crl(at, at + time::Duration::days(7)).unwrap();
                let request = NodeRequest::CrlPush { crls: vec![ByteBuf::from(crl.der().to_vec())] };
                (Request::Node(request, Vec::new()), Effect::Crl(crl.fingerprint()))
            }
            Op::CrlFetch => (Request::Node(NodeRequest::CrlFetch { known: Vec::new() }, Vec::new()), Effect::Nothing),
            Op::Submit | Op::SubmitForeign => {
                let doc = if op == Op::Submit {
                    self.document(TIEN_YEN, &[party])
                } else {
                    self.document(party, &[TIEN_YEN])
                };
                (Request::Clerk(submit(&doc), body(&doc)), stored(&doc, true))
            }
            Op::Inbox => (Request::Clerk(ClerkRequest::Inbox { limit: 5 }, Vec::new()), Effect::Nothing),
            Op::Sent => (Request::Clerk(ClerkRequest::Sent { limit: 5 }, Vec::new()), Effect::Nothing),
            Op::Fetch | Op::FetchTransit => {
                let document = if op == Op::Fetch { received.id } else { transit.id };
                (Request::Clerk(ClerkRequest::Fetch { document }, Vec::new()), Effect::Nothing)
            }
            Op::PostStatus => (
                Request::Clerk(
                    ClerkRequest::PostStatus { document: received.id.clone(), status: 3, note: Some(note) },
                    Vec::new(),
                ),
                Effect::Status { envelope: received.digest, status: StatusCode::Accepted },
            ),
            Op::Track | Op::TrackTransit => {
                let document = if op == Op::Track { sent.id.clone() } else { transit.id };
                (Request::Clerk(ClerkRequest::Track { document }, Vec::new()), Effect::Nothing)
            }
            Op::Recall => (
                Request::Clerk(ClerkRequest::Recall { document: sent.id.clone(), note: Some(note) }, Vec::new()),
                Effect::Status { envelope: sent.digest, status: StatusCode::RecallRequested },
            ),
            Op::Health => (Request::Clerk(ClerkRequest::Health, Vec::new()), Effect::Nothing),
        }
    }

    /// Whether a served request did what it must, judged from the database.
    async fn check(&self, effect: &Effect, diff: &[String]) -> Result<(), String> {
        let store = &self.net.node(TIEN_YEN).store;
        let own = code(TIEN_YEN);
        match effect {
            Effect::Nothing if diff.is_empty() => Ok(()),
            Effect::Nothing => Err("a read changed the database".into()),
            Effect::Document { id, digest, outgoing } => match store.document_by_id(id).await.unwrap() {
                Some(d) if d.digest == *digest && d.outgoing == *outgoing => Ok(()),
                Some(_) => Err(format!("{id} is stored, but not as this document (or not outgoing={outgoing})")),
                None => Err(format!("{id} was answered as taken but is not stored")),
            },
            Effect::Receipt { envelope, digest } => {
                let held = store.receipts_for(envelope).await.unwrap();
                if held.iter().any(|r| pki::sha256(&r.bytes) == *digest) {
                    Ok(())
                } else {
                    Err("the receipt was accepted but is not kept".into())
                }
            }
            Effect::Status { envelope, status } => {
                let held = store.receipts_for(envelope).await.unwrap();
                let signed = held
                    .iter()
                    .filter_map(|r| SignedReceipt::from_bytes(&r.bytes).ok())
                    .any(|r| r.receipt.by == own && r.receipt.kind == ReceiptKind::Status(*status));
                if signed { Ok(()) } else { Err(format!("no status {status} signed by this node")) }
            }
            Effect::Crl(fingerprint) => {
                if store.crls().await.unwrap().iter().any(|c| c.fingerprint() == *fingerprint) {
                    Ok(())
                } else {
                    Err("the CRL was accepted but is not kept".into())
                }
            }
        }
    }

    async fn cell(&mut self, row: usize, op: Op) -> Cell {
        let expect = TABLE[row].1[op.column()];
        let (request, effect) = self.request(row, op);
        let protocol = match &request {
            Request::Connect(p) => *p,
            Request::Node(..) => Protocol::Node,
            Request::Clerk(..) => Protocol::Clerk,
        };
        assert_eq!(protocol, op.protocol(), "the request built for {op:?} is on the wrong protocol");
        let identity = self.identities[row].as_ref();
        let before: Snapshot = self.data.snapshot().await;
        let seen = match &request {
            Request::Connect(protocol) => match self.probe.exchange(identity, *protocol, &[0, 0, 0, 0]).await {
                Ok(_) => Seen::Served("connection accepted".into()),
                Err(n) => Seen::from_no_answer(n),
            },
            Request::Node(r, after) => {
                assert_eq!(Some(node_column(r)), op.variant(), "the request built for {op:?}");
                Seen::from_node(self.probe.node(identity, r, after).await)
            }
            Request::Clerk(r, after) => {
                assert_eq!(Some(clerk_column(r)), op.variant(), "the request built for {op:?}");
                Seen::from_clerk(self.probe.clerk(identity, r, after).await)
            }
        };
        let diff = before.diff(&self.data.snapshot().await);
        let problem = if !seen.agrees(expect) {
            Some(format!("expected {}, saw {}", expect_text(expect), seen.detail()))
        } else if let Seen::Served(_) = seen {
            self.check(&effect, &diff).await.err().map(|e| format!("{}: {e}", seen.detail()))
        } else if !diff.is_empty() {
            Some(format!("{}, yet the database changed", seen.detail()))
        } else {
            None
        };
        Cell { seen, problem, diff }
    }
}

fn deliver(doc: &SignedDocument, recipients: &[&str]) -> NodeRequest {
    NodeRequest::Deliver {
        envelope: ByteBuf::from(doc.envelope.clone()),
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
        crls: Vec::new(),
    }
}

fn submit(doc: &SignedDocument) -> ClerkRequest {
    ClerkRequest::Submit { envelope: ByteBuf::from(doc.envelope.clone()), crls: Vec::new() }
}

fn body(doc: &SignedDocument) -> Vec<u8> {
    doc.bodies.concat()
}

fn pad(s: &str, width: usize) -> String {
    let len = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(len)))
}

/// The matrix as text: one line per identity, one column per operation; a cell that
/// disagrees with the table is marked ✗ and listed below with its evidence.
fn render(cells: &[Vec<Cell>], database: Database, elapsed: Duration, setup: Duration) -> String {
    const LABEL: usize = 32;
    const WIDTH: usize = 7;
    let mut out = format!(
        "authorisation matrix at Tiên Yên ({TIEN_YEN}) on {database:?}: {} identities × {} operations, {} cells in {:.1?} (setup {:.1?})\n",
        TABLE.len(),
        N,
        TABLE.len() * N,
        elapsed,
        setup,
    );
    let split = Op::ClerkConnect.column();
    out.push_str(&pad("", LABEL));
    out.push_str(&pad("| node protocol", WIDTH * split + 2));
    out.push_str("| clerk protocol\n");
    out.push_str(&pad("identity", LABEL));
    for op in OPS {
        if op.column() == 0 || op.column() == split {
            out.push_str("| ");
        }
        out.push_str(&pad(op.header(), WIDTH));
    }
    out.push('\n');
    for (row, (who, _)) in TABLE.iter().enumerate() {
        out.push_str(&pad(who.label(), LABEL));
        for op in OPS {
            if op.column() == 0 || op.column() == split {
                out.push_str("| ");
            }
            let cell = &cells[row][op.column()];
            let mark = if cell.problem.is_some() { "✗" } else { "" };
            out.push_str(&pad(&format!("{mark}{}", cell.seen.short()), WIDTH));
        }
        out.push('\n');
    }
    out.push_str(
        "columns: relay = a third party's document; 13!snd = a recall request signed by an agency that did not send the \
         document; 01!rcp = an arrival signed for another recipient; sub! = another agency's document; fetch!, track! = \
         a document only passing through\n\
         cells: ✓ served; H<n> refused in the TLS handshake with alert n; 0x10 not a neighbour, 0x11 clerk of another \
         agency, 0x13 certificate not for this protocol (application close codes); F/B/U error Forbidden/BadRequest/\
         Unavailable; 02 signed refusal; ? no decision; ✗ disagrees with the table\n",
    );
    let mut problems = 0;
    for (row, (who, _)) in TABLE.iter().enumerate() {
        for op in OPS {
            let cell = &cells[row][op.column()];
            if let Some(p) = &cell.problem {
                problems += 1;
                out.push_str(&format!("✗ {} × {} ({op:?}): {p}\n", who.label(), op.header()));
                for line in &cell.diff {
                    out.push_str(&format!("      {line}\n"));
                }
            }
        }
    }
    if problems == 0 {
        out.push_str("every cell agrees with the table\n");
    }
    out
}

on_both_backends!(authorisation_matrix);

/// Every identity × every operation, at one node, against [`TABLE`].
async fn authorisation_matrix(database: Database) {
    harness::logging();
    // Every operation has a column, and every column is where its operation says.
    for (i, op) in OPS.iter().enumerate() {
        assert_eq!(op.column(), i, "{op:?} is listed in the wrong column of OPS");
    }
    let started = Instant::now();
    let mut world = World::start(database).await;
    let setup = started.elapsed();
    let mut cells: Vec<Vec<Cell>> = Vec::with_capacity(TABLE.len());
    for row in 0..TABLE.len() {
        let mut line = Vec::with_capacity(N);
        for op in OPS {
            line.push(world.cell(row, op).await);
        }
        cells.push(line);
    }
    // Printed whatever the outcome: the test's output shows it on failure (and with
    // `--nocapture`), with the run time.
    println!("{}", render(&cells, database, started.elapsed(), setup));
    let disagreements = cells.iter().flatten().filter(|c| c.problem.is_some()).count();
    let World { mut net, data, .. } = world;
    data.close().await;
    // A short grace: the node's only in-flight work is forwarding to neighbours that do not
    // run, which a stop abandons safely (it is retried after a restart).
    if let Some(handle) = net.nodes.remove(&code(TIEN_YEN)) {
        handle.shutdown(Duration::from_millis(500)).await;
    }
    net.stop().await;
    assert_eq!(disagreements, 0, "cells disagree with the authorisation table: see the matrix printed above");
}
