//! CRLs by reference (`node::crl_refs`): documents and notices name their CRLs (issuer, number,
//! SHA-256); a receiver lacking one asks the sending neighbour once and keeps it; what a
//! neighbour sends when asked is bounded and checked, and a bad answer leaves nothing behind.

use std::sync::atomic::Ordering;
use std::time::Duration;

use harness::network::{Database, NetOptions, RawPeer, SignedDocument, TestNet, only, topology, wait_for};
use node::protocol::{ByteBuf, CrlRef, ErrorKind, NodeRequest, NodeResponse};
use pki::{AgencyCode, Crl, Profile};

const TIEN_YEN: &str = "000.00.41.H49";
const PHONG_DU: &str = "000.01.41.H49";

/// The CA that issued `code`'s certificates in the test PKI: its own, or its nearest
/// ancestor's.
fn issuer_of(net: &TestNet, code: &str) -> AgencyCode {
    let code: AgencyCode = code.parse().unwrap();
    std::iter::once(code).chain(code.ancestors()).find(|c| net.pki.cas.contains_key(c)).unwrap()
}

/// A new CRL of `code`'s issuing CA (its number one higher than the last), issued now.
fn newer_crl(net: &mut TestNet, code: &str) -> Crl {
    let ca = issuer_of(net, code);
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    net.pki.cas.get_mut(&ca).unwrap().crl(now - time::Duration::minutes(1), now + time::Duration::days(7)).unwrap()
}

fn network(database: Database, extra: &str) -> NetOptions {
    let mut options = NetOptions { database, ..NetOptions::default() };
    options.extra_config = format!("{extra}{}", options.extra_config);
    options
}

fn deliver(doc: &SignedDocument, refs: &[&Crl], asked: &[&[u8]]) -> NodeRequest {
    NodeRequest::Deliver {
        envelope: ByteBuf::from(doc.envelope.clone()),
        recipients: vec![TIEN_YEN.to_owned()],
        crls: refs.iter().map(|c| node::crl_refs::reference(c)).collect(),
        crls_asked: asked.iter().map(|d| ByteBuf::from(d.to_vec())).collect(),
        resume: false,
        statuses_back: true,
    }
}

fn sha256s(crls: &[&Crl]) -> Vec<ByteBuf> {
    crls.iter().map(|c| ByteBuf::from(c.fingerprint().to_vec())).collect()
}

/// Whether `at`'s database holds a CRL with `crl`'s bytes.
async fn stored(net: &TestNet, at: &str, crl: &Crl) -> bool {
    net.node(at).store.crls().await.unwrap().iter().any(|c| c.fingerprint() == crl.fingerprint())
}

async fn a_receiver_lacking_a_referenced_crl_asks_once_and_keeps_it(database: Database) {
    harness::logging();
    // The commune sends up to its district. The district is the commune's parent, so it never
    // asks the commune for CRLs by any other way than the document's own exchange.
    let topology = only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]);
    let mut net = TestNet::start(topology, network(database, "")).await;
    // A newer CRL of the commune's CA, known to the sender only.
    let crl = newer_crl(&mut net, PHONG_DU);
    let kept = node::crls::store_checked(net.node(PHONG_DU), std::slice::from_ref(&crl), true).await;
    assert_eq!(kept.len(), 1, "the sender keeps the new CRL");
    assert!(!stored(&net, TIEN_YEN, &crl).await);
    let receiver = net.node(TIEN_YEN).observed.metrics();
    let (asks, fetched) =
        (|| receiver.crl_asks.load(Ordering::Relaxed), || receiver.crls_fetched.load(Ordering::Relaxed));
    assert_eq!((asks(), fetched()), (0, 0));

    let sender = net.clerk(PHONG_DU).await;
    let recipient = net.clerk(TIEN_YEN).await;
    for n in 1..=3 {
        net.document(PHONG_DU, &[TIEN_YEN], n).submit(&sender).await.unwrap();
        wait_for(&format!("document {n} at Tiên Yên"), Duration::from_secs(30), || async {
            recipient.inbox(10).await.unwrap().len() == n as usize
        })
        .await;
        // Asked for once, with the first document; the next ones find it held.
        assert_eq!((asks(), fetched()), (1, 1), "after document {n}");
    }
    assert!(stored(&net, TIEN_YEN, &crl).await, "the fetched CRL is kept");
    assert!(
        net.node(TIEN_YEN).trust.trust().validator().crls().iter().any(|c| c.fingerprint() == crl.fingerprint()),
        "and used"
    );
    // The delivery receipts went back as notices referencing CRLs the commune holds: no ask.
    assert_eq!(net.node(PHONG_DU).observed.metrics().crl_asks.load(Ordering::Relaxed), 0);
    net.stop().await;
}

async fn a_bad_answer_to_an_ask_refuses_the_document_for_now_and_keeps_nothing(database: Database) {
    harness::logging();
    let topology = only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]);
    let mut net = TestNet::start(topology, network(database, "")).await;
    let crl = newer_crl(&mut net, PHONG_DU);
    // The same CA's name with another key: a CRL no CA this node knows signed.
    let other = demo::DemoPki::build(&net.topology, time::OffsetDateTime::now_utc()).unwrap();
    let mut other_cas = other.cas;
    let forged = {
        let ca = issuer_of(&net, PHONG_DU);
        let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let forger = other_cas.get_mut(&ca).unwrap();
        for _ in 0..5 {
            forger.crl(now, now + time::Duration::days(7)).unwrap();
        }
        forger.crl(now, now + time::Duration::days(7)).unwrap()
    };
    assert_eq!(forged.issuer_raw, crl.issuer_raw, "the forgery names the genuine CA");
    let peer = RawPeer::connect(&net, &net.identity(&PHONG_DU.parse().unwrap(), Profile::Node), TIEN_YEN).await;
    let doc = net.document(PHONG_DU, &[TIEN_YEN], 1);
    let attachments = doc.bodies.concat();

    // Asked for, before the attachments are read.
    match peer.request(&deliver(&doc, &[&crl], &[]), &attachments).await.unwrap() {
        NodeResponse::CrlsWanted { sha256 } => assert_eq!(sha256, sha256s(&[&crl])),
        other => panic!("{other}"),
    }
    // Answered with another CRL than the one referenced (a genuine one, of the root).
    let root_crl = net.node(TIEN_YEN).trust.trust().validator().crls().iter().next().unwrap().clone();
    match peer.request(&deliver(&doc, &[&crl], &[root_crl.der()]), &attachments).await.unwrap() {
        NodeResponse::Error { kind: ErrorKind::Unavailable, message } => {
            assert!(message.contains("matches no reference"), "{message}")
        }
        other => panic!("a CRL not asked for: {other}"),
    }
    // A CRL with the referenced digest, signed by an unknown key.
    match peer.request(&deliver(&doc, &[&forged], &[]), &attachments).await.unwrap() {
        NodeResponse::CrlsWanted { sha256 } => assert_eq!(sha256, sha256s(&[&forged])),
        other => panic!("{other}"),
    }
    match peer.request(&deliver(&doc, &[&forged], &[forged.der()]), &attachments).await.unwrap() {
        NodeResponse::Error { kind: ErrorKind::Unavailable, message } => {
            assert!(message.contains("not signed by a CA this node knows"), "{message}")
        }
        other => panic!("a forged CRL: {other}"),
    }
    let receiver = net.node(TIEN_YEN);
    assert!(receiver.store.document_by_id(&doc.id).await.unwrap().is_none(), "the document was not taken");
    for c in [&crl, &forged] {
        assert!(!stored(&net, TIEN_YEN, c).await, "no CRL was kept");
        assert!(!receiver.trust.trust().validator().crls().iter().any(|h| h.fingerprint() == c.fingerprint()));
    }
    assert_eq!(receiver.observed.metrics().crls_fetched.load(Ordering::Relaxed), 0);

    // The genuine answer is taken, and the CRL kept.
    match peer.request(&deliver(&doc, &[&crl], &[crl.der()]), &attachments).await.unwrap() {
        NodeResponse::HopReceipt { .. } => {}
        other => panic!("the genuine CRL: {other}"),
    }
    assert!(stored(&net, TIEN_YEN, &crl).await);
    assert_eq!(receiver.observed.metrics().crls_fetched.load(Ordering::Relaxed), 1);
    net.stop().await;
}

async fn a_revoked_signer_whose_crl_is_only_referenced_is_refused(database: Database) {
    harness::logging();
    let topology = only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]);
    let mut net = TestNet::start(topology, network(database, "")).await;
    let doc = net.document(PHONG_DU, &[TIEN_YEN], 1);
    // The commune's seal is revoked; the receiver has not heard of it.
    let code: AgencyCode = PHONG_DU.parse().unwrap();
    let seal = net.pki.agencies[&code].seal.cert.serial.clone();
    let ca = issuer_of(&net, PHONG_DU);
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    net.pki.cas.get_mut(&ca).unwrap().revoke(
        &seal,
        now - time::Duration::hours(2),
        pki::RevocationReason::KeyCompromise,
    );
    let crl = newer_crl(&mut net, PHONG_DU);
    let peer = RawPeer::connect(&net, &net.identity(&code, Profile::Node), TIEN_YEN).await;
    let attachments = doc.bodies.concat();
    match peer.request(&deliver(&doc, &[&crl], &[]), &attachments).await.unwrap() {
        NodeResponse::CrlsWanted { .. } => {}
        other => panic!("{other}"),
    }
    match peer.request(&deliver(&doc, &[&crl], &[crl.der()]), &attachments).await.unwrap() {
        NodeResponse::Refused { receipt } => {
            let note = pki::document::SignedReceipt::from_bytes(&receipt).unwrap().receipt.note.unwrap_or_default();
            assert!(note.contains("revoked"), "{note}");
        }
        other => panic!("a revoked seal: {other}"),
    }
    assert!(net.node(TIEN_YEN).store.document_by_id(&doc.id).await.unwrap().is_none());
    net.stop().await;
}

async fn notices_name_their_crls_and_a_missing_one_is_asked_for_once(database: Database) {
    harness::logging();
    let topology = only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]);
    let mut net = TestNet::start(topology, network(database, "")).await;
    let crl = newer_crl(&mut net, PHONG_DU);
    let code: AgencyCode = PHONG_DU.parse().unwrap();
    let seal = net.identity(&code, Profile::Seal);
    let peer = RawPeer::connect(&net, &net.identity(&code, Profile::Node), TIEN_YEN).await;
    // Statuses 01 of documents the district sent the commune, sealed by the commune.
    let arrived = |n: u32| {
        let doc = net.document(TIEN_YEN, &[PHONG_DU], n);
        let receipt = pki::document::Receipt {
            kind: pki::document::ReceiptKind::Status(pki::document::StatusCode::Arrived),
            document: doc.manifest.id(),
            envelope: doc.digest,
            by: code,
            to: TIEN_YEN.parse().unwrap(),
            at: time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap(),
            recipients: vec![code],
            note: None,
        };
        receipt.sign(&seal.key, &seal.chain).unwrap()
    };
    let notices = |r: &pki::document::SignedReceipt, asked: &[&[u8]]| NodeRequest::Notices {
        receipts: vec![ByteBuf::from(r.as_bytes().to_vec())],
        crls: vec![node::crl_refs::reference(&crl)],
        crls_asked: asked.iter().map(|d| ByteBuf::from(d.to_vec())).collect(),
    };
    let first = arrived(1);
    match peer.request(&notices(&first, &[]), &[]).await.unwrap() {
        NodeResponse::CrlsWanted { sha256 } => assert_eq!(sha256, sha256s(&[&crl])),
        other => panic!("{other}"),
    }
    match peer.request(&notices(&first, &[crl.der()]), &[]).await.unwrap() {
        NodeResponse::NoticesTaken { refused } => assert!(refused.is_empty(), "{refused:?}"),
        other => panic!("{other}"),
    }
    assert!(stored(&net, TIEN_YEN, &crl).await, "the CRL fetched with notices is kept");
    // The next batch finds it held.
    match peer.request(&notices(&arrived(2), &[]), &[]).await.unwrap() {
        NodeResponse::NoticesTaken { refused } => assert!(refused.is_empty(), "{refused:?}"),
        other => panic!("the second batch: {other}"),
    }
    let metrics = net.node(TIEN_YEN).observed.metrics();
    assert_eq!((metrics.crl_asks.load(Ordering::Relaxed), metrics.crls_fetched.load(Ordering::Relaxed)), (1, 1));
    net.stop().await;
}

async fn a_node_sends_its_notices_again_with_the_crls_its_neighbour_asks_for(database: Database) {
    harness::logging();
    // The district sends the commune a document; the commune's clerk accepts it, and the
    // status 03 goes back as a notice naming a CRL of the commune's CA that only the commune
    // holds. (The status 01 goes back with the hop receipt, checked as the hop receipt is.)
    let topology = only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]);
    let mut net = TestNet::start(topology, network(database, "")).await;
    let crl = newer_crl(&mut net, PHONG_DU);
    node::crls::store_checked(net.node(PHONG_DU), std::slice::from_ref(&crl), true).await;
    let sender = net.clerk(TIEN_YEN).await;
    let doc = net.document(TIEN_YEN, &[PHONG_DU], 1);
    doc.submit(&sender).await.unwrap();
    let district = net.node(TIEN_YEN);
    let status_at_district = |code: pki::document::StatusCode| async move {
        district.store.receipts_for(&doc.digest).await.unwrap().iter().any(|r| {
            pki::document::SignedReceipt::from_bytes(&r.bytes).unwrap().receipt.kind
                == pki::document::ReceiptKind::Status(code)
        })
    };
    wait_for("the commune's status 01 at the district", Duration::from_secs(30), || {
        status_at_district(pki::document::StatusCode::Arrived)
    })
    .await;
    assert_eq!(district.observed.metrics().crl_asks.load(Ordering::Relaxed), 0, "nothing to ask yet");
    net.clerk(PHONG_DU).await.post_status(&doc.id, 3, None).await.unwrap();
    wait_for("the commune's status 03 at the district", Duration::from_secs(30), || {
        status_at_district(pki::document::StatusCode::Accepted)
    })
    .await;
    assert_eq!(district.observed.metrics().crl_asks.load(Ordering::Relaxed), 1, "asked once");
    assert_eq!(district.observed.metrics().crls_fetched.load(Ordering::Relaxed), 1);
    // Kept in a transaction of its own right after the notices' (a crash between them only
    // makes the next batch ask again), so it may be a moment behind the status.
    wait_for("the fetched CRL kept at the district", Duration::from_secs(10), || stored(&net, TIEN_YEN, &crl)).await;
    net.stop().await;
}

on_both_backends!(
    a_node_sends_its_notices_again_with_the_crls_its_neighbour_asks_for,
    notices_name_their_crls_and_a_missing_one_is_asked_for_once,
    a_receiver_lacking_a_referenced_crl_asks_once_and_keeps_it,
    a_bad_answer_to_an_ask_refuses_the_document_for_now_and_keeps_nothing,
    a_revoked_signer_whose_crl_is_only_referenced_is_refused,
);

/// `limits.max_crl_fetch_count` and `limits.max_crl_fetch_bytes` at their edges: exactly the
/// limit is taken, one more is refused for now (and the neighbour is not even asked when more
/// CRLs are missing than it may send).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_neighbour_sends_when_asked_is_bounded_by_count_and_bytes() {
    harness::logging();
    let topology = only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]);
    let mut net = TestNet::prepare(topology, network(Database::Sqlite, ""));
    let first = newer_crl(&mut net, PHONG_DU);
    // Set the byte limit to the first CRL's size exactly; the second is one revocation larger.
    let limit = first.der().len();
    let config = net.config_path(&TIEN_YEN.parse().unwrap());
    let text = std::fs::read_to_string(&config).unwrap();
    let limits = format!("[limits]\nmax_crl_fetch_count = 1\nmax_crl_fetch_bytes = {limit}\n");
    let text = if text.contains("[limits]\n") {
        text.replacen("[limits]\n", &limits, 1)
    } else {
        text.replace("[retry]", &format!("{limits}\n[retry]"))
    };
    std::fs::write(&config, text).unwrap();
    for code in net.topology.codes() {
        net.start_node(&code).await;
    }
    let peer = RawPeer::connect(&net, &net.identity(&PHONG_DU.parse().unwrap(), Profile::Node), TIEN_YEN).await;

    // One CRL of exactly the byte limit: taken.
    let doc = net.document(PHONG_DU, &[TIEN_YEN], 1);
    let answer = peer.request(&deliver(&doc, &[&first], &[first.der()]), &doc.bodies.concat()).await.unwrap();
    assert!(matches!(answer, NodeResponse::HopReceipt { .. }), "{answer}");

    // One byte over: refused for now, nothing kept.
    let ca = issuer_of(&net, PHONG_DU);
    let victim = pki::Serial::from_bytes(&[0x7f, 0x11, 0x22, 0x33]);
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    net.pki.cas.get_mut(&ca).unwrap().revoke(
        &victim,
        now - time::Duration::hours(1),
        pki::RevocationReason::Superseded,
    );
    let larger = newer_crl(&mut net, PHONG_DU);
    assert!(larger.der().len() > limit, "{} bytes", larger.der().len());
    let doc = net.document(PHONG_DU, &[TIEN_YEN], 2);
    match peer.request(&deliver(&doc, &[&larger], &[larger.der()]), &doc.bodies.concat()).await.unwrap() {
        NodeResponse::Error { kind: ErrorKind::Unavailable, message } => {
            assert!(message.contains("limits.max_crl_fetch_bytes"), "{message}")
        }
        other => panic!("over the byte limit: {other}"),
    }
    assert!(!stored(&net, TIEN_YEN, &larger).await);

    // Two CRLs missing with a count limit of one: refused for now without asking.
    let root_crl = {
        let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        net.pki.root.crl(now - time::Duration::minutes(1), now + time::Duration::days(7)).unwrap()
    };
    let asks = net.node(TIEN_YEN).observed.metrics().crl_asks.load(Ordering::Relaxed);
    match peer.request(&deliver(&doc, &[&larger, &root_crl], &[]), &doc.bodies.concat()).await.unwrap() {
        NodeResponse::Error { kind: ErrorKind::Unavailable, message } => {
            assert!(message.contains("limits.max_crl_fetch_count"), "{message}")
        }
        other => panic!("over the count limit: {other}"),
    }
    assert_eq!(net.node(TIEN_YEN).observed.metrics().crl_asks.load(Ordering::Relaxed), asks, "not asked");
    // And two sent where one is allowed.
    let refs: Vec<CrlRef> = [&larger, &root_crl].iter().map(|c| node::crl_refs::reference(c)).collect();
    let request = NodeRequest::Deliver {
        envelope: ByteBuf::from(doc.envelope.clone()),
        recipients: vec![TIEN_YEN.to_owned()],
        crls: refs,
        crls_asked: vec![ByteBuf::from(larger.der().to_vec()), ByteBuf::from(root_crl.der().to_vec())],
        resume: false,
        statuses_back: true,
    };
    match peer.request(&request, &doc.bodies.concat()).await.unwrap() {
        NodeResponse::Error { kind: ErrorKind::Unavailable, message } => {
            assert!(message.contains("limits.max_crl_fetch_count"), "{message}")
        }
        other => panic!("two sent, one allowed: {other}"),
    }
    assert!(net.node(TIEN_YEN).store.document_by_id(&doc.id).await.unwrap().is_none());
    net.stop().await;
}

/// How the request frames that carry a document or a receipt to a neighbour shrink when CRLs
/// are named instead of carried: measured on the test network's documents and printed (the
/// figures in the README come from here); a reference is smaller than any CRL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_and_notices_name_their_crls_in_fewer_bytes_than_they_carried_them() {
    /// The request as `lienthong/2` sent it: the CRLs' DER with every document and batch.
    #[derive(serde::Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Carried {
        Deliver { envelope: ByteBuf, recipients: Vec<String>, crls: Vec<ByteBuf> },
        Notices { receipts: Vec<ByteBuf>, crls: Vec<ByteBuf> },
    }
    harness::logging();
    let topology = only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]);
    let net = TestNet::start(topology, network(Database::Sqlite, "")).await;
    let sender = net.node(PHONG_DU);
    let doc = net.document(PHONG_DU, &[TIEN_YEN], 1);
    let envelope = pki::document::Envelope::from_bytes(&doc.envelope).unwrap();
    let chains: Vec<Vec<Vec<u8>>> = envelope.headers().unwrap().into_iter().map(|h| h.chain).collect();
    let carried: Vec<ByteBuf> = sender.trust.crls_for(&chains).into_iter().map(ByteBuf::from).collect();
    let named = sender.trust.crl_refs_for(&chains);
    assert_eq!(named.refs.len(), carried.len(), "the same CRLs, named");
    let old = node::protocol::encode(&Carried::Deliver {
        envelope: ByteBuf::from(doc.envelope.clone()),
        recipients: vec![TIEN_YEN.into()],
        crls: carried.clone(),
    });
    let new = node::protocol::encode(&NodeRequest::Deliver {
        envelope: ByteBuf::from(doc.envelope.clone()),
        recipients: vec![TIEN_YEN.into()],
        crls: named.refs.clone(),
        crls_asked: Vec::new(),
        resume: false,
        statuses_back: true,
    });
    let attachments: usize = doc.bodies.iter().map(Vec::len).sum();
    let crl_bytes: usize = carried.iter().map(|c| c.len()).sum();
    println!(
        "Deliver frame: {} bytes carrying {} CRLs ({crl_bytes} bytes of DER), {} bytes naming them; envelope {} bytes, attachments {attachments} bytes",
        old.len(),
        carried.len(),
        new.len(),
        doc.envelope.len()
    );
    assert!(new.len() < old.len());
    // The same with 1,000 revocations on the commune's CA's CRL: each cost every document
    // some 40 bytes when carried, nothing when named.
    let mut net = net;
    let ca = issuer_of(&net, PHONG_DU);
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    for i in 0u32..1000 {
        let serial = pki::Serial::from_bytes(&[&[0x5a][..], &i.to_be_bytes()].concat());
        net.pki.cas.get_mut(&ca).unwrap().revoke(&serial, now, pki::RevocationReason::Superseded);
    }
    let big = newer_crl(&mut net, PHONG_DU);
    let sender = net.node(PHONG_DU);
    let with_big: Vec<ByteBuf> = carried
        .iter()
        .map(|c| match Crl::from_der(c) {
            Ok(parsed) if parsed.issuer_raw == big.issuer_raw => ByteBuf::from(big.der().to_vec()),
            _ => c.clone(),
        })
        .collect();
    let old_big = node::protocol::encode(&Carried::Deliver {
        envelope: ByteBuf::from(doc.envelope.clone()),
        recipients: vec![TIEN_YEN.into()],
        crls: with_big,
    });
    println!(
        "with 1,000 revocations on the CA's CRL ({} bytes): {} bytes carrying, {} bytes naming",
        big.der().len(),
        old_big.len(),
        new.len()
    );

    // One receipt (a status 01 sealed by the commune) in a batch of notices.
    let seal = net.identity(&PHONG_DU.parse().unwrap(), Profile::Seal);
    let receipt = pki::document::Receipt {
        kind: pki::document::ReceiptKind::Status(pki::document::StatusCode::Arrived),
        document: doc.manifest.id(),
        envelope: doc.digest,
        by: PHONG_DU.parse().unwrap(),
        to: TIEN_YEN.parse().unwrap(),
        at: time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap(),
        recipients: vec![PHONG_DU.parse().unwrap()],
        note: None,
    }
    .sign(&seal.key, &seal.chain)
    .unwrap();
    let chains = vec![receipt.chain_der().to_vec()];
    let receipts = vec![ByteBuf::from(receipt.as_bytes().to_vec())];
    let carried: Vec<ByteBuf> = sender.trust.crls_for(&chains).into_iter().map(ByteBuf::from).collect();
    let old = node::protocol::encode(&Carried::Notices { receipts: receipts.clone(), crls: carried });
    let new = node::protocol::encode(&NodeRequest::Notices {
        receipts,
        crls: sender.trust.crl_refs_for(&chains).refs.clone(),
        crls_asked: Vec::new(),
    });
    println!("Notices frame of one receipt: {} bytes carrying CRLs, {} bytes naming them", old.len(), new.len());
    assert!(new.len() < old.len());
    net.stop().await;
}
