//! The node under test, the callers' identities, the documents each row works on, and one
//! cell: build the request, send it, read the node's database before and after, judge.

use harness::identities::{ForeignPki, Window, out_of_window, revoked};
use harness::network::{Database, NetOptions, SignedDocument, TestNet, topology};
use harness::probe::{NoAnswer, Probe, Protocol};
use node::config::Identity;
use node::protocol::{ClerkRequest, ClerkResponse, ErrorKind, NodeRequest, NodeResponse};
use pki::document::{Receipt, ReceiptKind, SignedReceipt, StatusCode};
use pki::{AgencyCode, Profile};
use serde_bytes::ByteBuf;

use super::snapshot::{NodeData, Snapshot};
use super::table::*;

/// What the node answered, as the table speaks of it.
#[derive(Debug, Clone)]
pub(super) enum Seen {
    Served(String),
    Handshake(u8, String),
    Closed(u64, String),
    Error(ErrorKind, String),
    Refused(String),
    Broken(String),
}

impl Seen {
    pub(super) fn from_no_answer(n: NoAnswer) -> Seen {
        match n {
            NoAnswer::Handshake { alert, reason } => Seen::Handshake(alert, reason),
            NoAnswer::Closed { code, reason } => Seen::Closed(code, reason),
            NoAnswer::Broken(e) => Seen::Broken(e),
        }
    }

    pub(super) fn from_node(r: Result<NodeResponse, NoAnswer>) -> Seen {
        match r {
            Ok(NodeResponse::HopReceipt { .. }) => Seen::Served("hop receipt".into()),
            Ok(NodeResponse::Accepted) => Seen::Served("accepted".into()),
            Ok(NodeResponse::ResumeFrom { offsets }) => Seen::Served(format!("resume from {offsets:?}")),
            // One notice a request here: taken, or refused with its reason.
            Ok(NodeResponse::NoticesTaken { refused }) => match refused.into_iter().next() {
                None => Seen::Served("notice taken".into()),
                Some((_, kind, message)) => Seen::Error(kind, message),
            },
            Ok(NodeResponse::Crls { crls }) => Seen::Served(format!("{} CRLs", crls.len())),
            Ok(NodeResponse::Routes { routes }) => Seen::Served(format!("{} routes", routes.len())),
            Ok(NodeResponse::Cosigned { .. }) => Seen::Served("cosignature".into()),
            Ok(NodeResponse::LogEntries { entries, .. }) => Seen::Served(format!("{} log entries", entries.len())),
            Ok(NodeResponse::PathEvidence { proofs, receipts, .. }) => {
                Seen::Served(format!("{} log proofs, {} hop receipts", proofs.len(), receipts.len()))
            }
            Ok(NodeResponse::WitnessRefused { reason, .. }) => Seen::Error(ErrorKind::BadRequest, reason),
            Ok(NodeResponse::Refused { receipt }) => Seen::Refused(
                SignedReceipt::from_bytes(&receipt)
                    .map(|r| r.receipt.note.unwrap_or_default())
                    .unwrap_or_else(|e| format!("unreadable refusal: {e}")),
            ),
            Ok(NodeResponse::Error { kind, message }) => Seen::Error(kind, message),
            // Nothing taken yet: the node asks for CRLs the request referenced.
            Ok(NodeResponse::CrlsWanted { sha256 }) => {
                Seen::Error(ErrorKind::Unavailable, format!("asks for {} CRLs first", sha256.len()))
            }
            Err(n) => Seen::from_no_answer(n),
        }
    }

    pub(super) fn from_clerk(r: Result<ClerkResponse, NoAnswer>) -> Seen {
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
            Ok(ClerkResponse::ResumeFrom { offsets }) => Seen::Served(format!("resume from {offsets:?}")),
            Ok(ClerkResponse::Health { json }) => Seen::Served(format!("health, {} bytes", json.len())),
            Ok(ClerkResponse::Routes { routes }) => Seen::Served(format!("{} routes", routes.len())),
            Ok(ClerkResponse::Log { answer }) => Seen::Served(format!(
                "log: {}",
                match answer {
                    node::protocol::LogAnswer::Checkpoint { note, .. } =>
                        note.lines().take(2).collect::<Vec<_>>().join(" "),
                    other => format!("{other:?}"),
                }
            )),
            Ok(ClerkResponse::Error { kind, message }) => Seen::Error(kind, message),
            Err(n) => Seen::from_no_answer(n),
        }
    }

    pub(super) fn agrees(&self, expect: Expect) -> bool {
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
    pub(super) fn short(&self) -> String {
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

    pub(super) fn detail(&self) -> String {
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

pub(super) fn expect_text(e: Expect) -> String {
    match e {
        Expect::Handshake => "refused in the handshake".into(),
        Expect::Closed(c) => format!("closed with {c:#x}"),
        Expect::Error(k) => format!("error {k:?}"),
        Expect::Refused => "a signed refusal (02)".into(),
        Expect::Served => "served".into(),
    }
}

/// What a served request must have done, read from the node's database.
pub(super) enum Effect {
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
    /// The node co-signed and keeps this agency's log checkpoint.
    Witnessed(AgencyCode),
}

/// A request ready to send.
pub(super) enum Request {
    /// An empty frame: any answer means the connection was accepted.
    Connect(Protocol),
    Node(NodeRequest, Vec<u8>),
    Clerk(ClerkRequest, Vec<u8>),
}

/// The documents a row works on, made through the legitimate paths before the matrix runs.
pub(super) struct Fixture {
    /// A document of the Government Office in Tiên Yên's inbox (delivered by the parent).
    pub(super) received: SignedDocument,
    /// A document Tiên Yên sent to the row's party and to Hà Lâu (submitted by its clerk).
    pub(super) sent: SignedDocument,
    /// A document of Phong Dụ for the province, stored at Tiên Yên only to be forwarded
    /// (delivered by the child).
    pub(super) transit: SignedDocument,
}

/// One cell's outcome.
pub(super) struct Cell {
    pub(super) seen: Seen,
    /// Why the cell disagrees with the table, if it does.
    pub(super) problem: Option<String>,
    /// Database rows the request changed.
    pub(super) diff: Vec<String>,
}

/// The network, the node under test, the callers' identities and the fixtures.
pub(super) struct World {
    pub(super) net: TestNet,
    pub(super) probe: Probe,
    pub(super) data: NodeData,
    pub(super) identities: Vec<Option<Identity>>,
    pub(super) fixtures: Vec<Fixture>,
    pub(super) next_number: u32,
    pub(super) crl_pushes: i64,
    pub(super) crl_base: time::OffsetDateTime,
}

impl World {
    pub(super) async fn start(database: Database) -> World {
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
                    node.trust.trust().validator().crls().iter().any(|c| c.lookup(serial).is_some()),
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

    pub(super) fn identity_of(&self, who: Who) -> Option<&Identity> {
        let row = TABLE.iter().position(|(w, _)| *w == who).unwrap();
        self.identities[row].as_ref()
    }

    pub(super) fn document(&mut self, from: &str, to: &[&str]) -> SignedDocument {
        self.next_number += 1;
        self.net.document(from, to, self.next_number)
    }

    /// Per row, a received and a sent document, through the paths the table says are open
    /// (the parent delivers, the own clerk submits): the fixtures are themselves two cells
    /// that must be served.
    pub(super) async fn make_fixtures(&mut self) {
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
    pub(super) fn status(
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
    pub(super) fn request(&mut self, row: usize, op: Op) -> (Request, Effect) {
        let who = TABLE[row].0;
        let party = who.party();
        let note = format!("{} / {}", who.label(), op.header());
        let fixture = &self.fixtures[row];
        let (received, sent, transit) = (fixture.received.clone(), fixture.sent.clone(), fixture.transit.clone());
        let notice = |r: &SignedReceipt| {
            let request = NodeRequest::Notices {
                receipts: vec![ByteBuf::from(r.as_bytes().to_vec())],
                crls: Vec::new(),
                crls_asked: Vec::new(),
            };
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
            Op::LogWitness => (Request::Node(self.log_witness(party), Vec::new()), Effect::Witnessed(code(party))),
            Op::LogEntries => (Request::Node(NodeRequest::LogEntries { from: 0 }, Vec::new()), Effect::Nothing),
            Op::PathEvidence => {
                let request = NodeRequest::PathEvidence {
                    envelope: ByteBuf::from(transit.digest.to_vec()),
                    toward: node::protocol::Toward::Sender,
                    hops_left: 0,
                };
                (Request::Node(request, Vec::new()), Effect::Nothing)
            }
            Op::ClerkLog => (
                Request::Clerk(ClerkRequest::Log { query: node::protocol::LogQuery::Checkpoint }, Vec::new()),
                Effect::Nothing,
            ),
            // About Tiên Yên itself: answered from its own table, without asking a neighbour.
            Op::Route => (
                Request::Node(NodeRequest::Route { recipients: vec![TIEN_YEN.into()], hops_left: 0 }, Vec::new()),
                Effect::Nothing,
            ),
            Op::ClerkRoute => {
                (Request::Clerk(ClerkRequest::Route { recipients: vec![TIEN_YEN.into()] }, Vec::new()), Effect::Nothing)
            }
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
                (Request::Clerk(ClerkRequest::Fetch { document, evidence: false }, Vec::new()), Effect::Nothing)
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

    /// A request to co-sign the first checkpoint of `by`'s log, signed by `by`'s seal.
    pub(super) fn log_witness(&self, by: &str) -> NodeRequest {
        let a = &self.net.pki.agencies[&code(by)];
        let root = pki::tlog::leaf_hash(by.as_bytes());
        let checkpoint =
            pki::tlog::Checkpoint::new(pki::tlog::LogOrigin::first(code(by)), 1, root).sign(&a.seal.key).unwrap();
        let request = pki::tlog::AddCheckpoint { old_size: 0, proof: Vec::new(), checkpoint };
        NodeRequest::LogWitness {
            add_checkpoint: ByteBuf::from(request.to_text().into_bytes()),
            seal_chain: a.chain(&a.seal.cert).iter().map(|c| ByteBuf::from(c.der().to_vec())).collect(),
        }
    }

    /// Whether a served request did what it must, judged from the database.
    pub(super) async fn check(&self, effect: &Effect, diff: &[String]) -> Result<(), String> {
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
            Effect::Witnessed(agency) => {
                let witnessed = store.log_witnessed_all().await.unwrap();
                if witnessed.iter().any(|(a, w)| *a == agency.to_string() && w.size == 1) {
                    Ok(())
                } else {
                    Err(format!("the checkpoint of {agency} was co-signed but is not kept"))
                }
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

    pub(super) async fn cell(&mut self, row: usize, op: Op) -> Cell {
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

pub(super) fn deliver(doc: &SignedDocument, recipients: &[&str]) -> NodeRequest {
    NodeRequest::Deliver {
        envelope: ByteBuf::from(doc.envelope.clone()),
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
        crls: Vec::new(),
        crls_asked: Vec::new(),
        resume: false,
        statuses_back: true,
    }
}

pub(super) fn submit(doc: &SignedDocument) -> ClerkRequest {
    ClerkRequest::Submit { envelope: ByteBuf::from(doc.envelope.clone()), crls: Vec::new(), resume: false }
}

pub(super) fn body(doc: &SignedDocument) -> Vec<u8> {
    doc.bodies.concat()
}
