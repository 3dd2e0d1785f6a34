//! The demo network, in-process: real QUIC on loopback, on SQLite and on PostgreSQL.

use std::time::Duration;

use harness::network::{Database, NetOptions, TestNet, topology, wait_for};
use pki::AgencyCode;
use pki::document::{ReceiptKind, SignedReceipt, StatusCode};

const PHONG_DU: &str = "000.01.41.H49";
const THANH_SON: &str = "000.01.42.H49";
const GOV: &str = "000.00.00.G22";
const TIEN_YEN: &str = "000.00.41.H49";
const HA_LAU: &str = "000.02.41.H49";
const QUANG_NINH: &str = "000.00.00.H49";

fn code(s: &str) -> AgencyCode {
    s.parse().unwrap()
}

/// Phong Dụ's and Tiên Yên's nodes, and a raw connection to Tiên Yên's with the identity of
/// Phong Dụ's: a neighbour whose answers the test reads, and drops, itself.
async fn commune_and_district_with_a_raw_commune() -> (TestNet, harness::network::RawPeer) {
    let net = TestNet::start(
        harness::network::only(&topology("quang-ninh-2024"), &[PHONG_DU, TIEN_YEN]),
        NetOptions::default(),
    )
    .await;
    let peer =
        harness::network::RawPeer::connect(&net, &net.identity(&code(PHONG_DU), pki::Profile::Node), TIEN_YEN).await;
    (net, peer)
}

/// Waits until Phong Dụ's node holds Tiên Yên's delivery receipt of `digest`.
async fn wait_for_delivery_receipt_at_phong_du(net: &TestNet, digest: &[u8; 32]) {
    wait_for("the delivery receipt at Phong Dụ's node", Duration::from_secs(30), || async {
        receipts(net, PHONG_DU, digest).await.iter().any(|r| r.0 == ReceiptKind::Status(StatusCode::Arrived))
    })
    .await;
}

/// Receipts a node holds for a document: (kind, by, to).
async fn receipts(net: &TestNet, at: &str, digest: &[u8; 32]) -> Vec<(ReceiptKind, AgencyCode, AgencyCode)> {
    net.node(at)
        .store
        .receipts_for(digest)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let s = SignedReceipt::from_bytes(&r.bytes).unwrap();
            (s.receipt.kind, s.receipt.by, s.receipt.to)
        })
        .collect()
}

on_both_backends!(a_document_crosses_the_quang_ninh_network_with_receipts_everywhere);

async fn a_document_crosses_the_quang_ninh_network_with_receipts_everywhere(database: Database) {
    harness::logging();
    let net = TestNet::start(topology("quang-ninh-2024"), NetOptions { database, ..NetOptions::default() }).await;
    let sender = net.clerk(PHONG_DU).await;
    let doc = net.document(PHONG_DU, &[THANH_SON, GOV], 101);
    let id = doc.submit(&sender).await.unwrap();
    assert_eq!(id, doc.id);

    let thanh_son = net.clerk(THANH_SON).await;
    let gov = net.clerk(GOV).await;
    wait_for("both recipients to have the document", Duration::from_secs(30), || async {
        thanh_son.inbox(10).await.unwrap().len() == 1 && gov.inbox(10).await.unwrap().len() == 1
    })
    .await;
    let entry = &thanh_son.inbox(10).await.unwrap()[0];
    assert_eq!(entry.document, doc.id);
    assert_eq!(entry.sender, PHONG_DU);
    assert!(!entry.provisional);

    // Every hop and both deliveries come back to the sender.
    let paths: &[&[&str]] = &[
        &[PHONG_DU, "000.00.41.H49", "000.00.00.H49", "000.00.42.H49", THANH_SON],
        &[PHONG_DU, "000.00.41.H49", "000.00.00.H49", GOV],
    ];
    wait_for("the sender to hold both delivery receipts", Duration::from_secs(30), || async {
        let held = receipts(&net, PHONG_DU, &doc.digest).await;
        held.iter().filter(|r| r.0 == ReceiptKind::Status(StatusCode::Arrived)).count() == 2
    })
    .await;
    // A hop receipt stays with the node it was given to: every node on each path holds, in its
    // own database, the hop receipt its next hop gave it and the one it gave (if any), no hop
    // receipt of a later hop, and the delivery receipt of the recipient at the end of the path.
    for path in paths {
        let recipient = code(path[path.len() - 1]);
        for (i, at) in path.iter().enumerate() {
            let held = receipts(&net, at, &doc.digest).await;
            for (j, pair) in path.windows(2).enumerate() {
                let hop = (ReceiptKind::Hop, code(pair[1]), code(pair[0]));
                let here = j == i || j + 1 == i;
                assert_eq!(
                    held.contains(&hop),
                    here,
                    "{at} and the hop receipt of {} to {}: {held:?}",
                    pair[1],
                    pair[0]
                );
            }
            let arrived = (ReceiptKind::Status(StatusCode::Arrived), recipient, code(PHONG_DU));
            assert!(held.contains(&arrived), "{at} lacks the delivery receipt of {recipient}: {held:?}");
        }
    }
    // The notices that travelled: each delivery receipt goes its first hop back with the hop
    // receipt the recipient's node gives, then one transfer per hop further back to the
    // sender (3 + 2), and nothing else. (As a notice from the recipient's node too it cost 2
    // more; hop receipts walking back to the sender cost 8 more.)
    let nodes = ["000.01.41.H49", "000.00.41.H49", "000.00.00.H49", "000.00.42.H49", THANH_SON, GOV];
    let sum = |metric: fn(&node::Metrics) -> &std::sync::atomic::AtomicU64| -> u64 {
        nodes.iter().map(|n| metric(net.node(n).observed.metrics()).load(std::sync::atomic::Ordering::Relaxed)).sum()
    };
    assert_eq!(sum(|m| &m.notices_in), 5, "notice transfers for one document to two recipients over 4 and 3 hops");
    assert_eq!(sum(|m| &m.statuses_with_receipts_in), 2, "delivery receipts that came with a hop receipt");
    // The five hand-overs were recorded as plain answers (`outbound::answers`), the two whose
    // answer carried a delivery receipt for a sender served elsewhere too (the receipt is
    // queued on in the same transaction); a transaction each, or one for the two answers of
    // the node where the paths part when they come at once.
    let recorded = sum(|m| &m.answer_transactions);
    assert!((4..=5).contains(&recorded), "the hand-overs recorded as plain answers in {recorded} transactions");
    // The sender's `track` asks along the paths and shows every hand-over.
    let track = sender.track(&doc.id).await.unwrap();
    let mut hops: Vec<(AgencyCode, AgencyCode)> =
        track.iter().filter(|r| r.receipt.kind == ReceiptKind::Hop).map(|r| (r.receipt.by, r.receipt.to)).collect();
    hops.sort();
    let mut expected: Vec<(AgencyCode, AgencyCode)> =
        paths.iter().flat_map(|p| p.windows(2).map(|w| (code(w[1]), code(w[0])))).collect();
    expected.sort();
    expected.dedup();
    assert_eq!(hops, expected, "the hop receipts track gathers along the paths");

    // Statuses 03–06 from Thanh Sơn reach the sender.
    for status in [3u8, 4, 5, 6] {
        thanh_son.post_status(&doc.id, status, Some(format!("bước {status}"))).await.unwrap();
    }
    wait_for("statuses 03-06 at the sender", Duration::from_secs(30), || async {
        let track = sender.track(&doc.id).await.unwrap();
        [StatusCode::Accepted, StatusCode::Assigned, StatusCode::Processing, StatusCode::Completed]
            .iter()
            .all(|s| track.iter().any(|r| r.receipt.kind == ReceiptKind::Status(*s) && r.receipt.by == code(THANH_SON)))
    })
    .await;
    let sent = sender.sent(10).await.unwrap();
    assert_eq!(sent[0].status, Some(6));
    net.stop().await;
}

/// The notices waiting for one neighbour travel in one request (`NodeRequest::Notices`, at
/// most `MAX_NOTICES`): each receipt is judged on its own — here a malformed one is refused
/// with its index while the delivery receipts beside it are taken — and a request with one
/// receipt too many is refused whole, before any is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_notices_is_judged_receipt_by_receipt_and_bounded() {
    use harness::network::{RawPeer, only};
    use node::protocol::{ErrorKind, MAX_NOTICES, NodeRequest, NodeResponse};
    use serde_bytes::ByteBuf;
    harness::logging();
    let net = TestNet::start(only(&topology("quang-ninh-2024"), &[PHONG_DU, TIEN_YEN]), NetOptions::default()).await;
    let doc = net.document(PHONG_DU, &[TIEN_YEN], 5);
    doc.submit(&net.clerk(PHONG_DU).await).await.unwrap();
    wait_for("the delivery receipt at the sender", Duration::from_secs(30), || async {
        receipts(&net, PHONG_DU, &doc.digest).await.iter().any(|r| r.0 == ReceiptKind::Status(StatusCode::Arrived))
    })
    .await;
    let arrived = net
        .node(PHONG_DU)
        .store
        .receipts_for(&doc.digest)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.bytes)
        .find(|b| SignedReceipt::from_bytes(b).unwrap().receipt.kind == ReceiptKind::Status(StatusCode::Arrived))
        .unwrap();
    let before = net.node(PHONG_DU).store.receipts_for(&doc.digest).await.unwrap().len();
    let peer = RawPeer::connect(&net, &net.identity(&code(TIEN_YEN), pki::Profile::Node), PHONG_DU).await;
    let batch = |n: usize| {
        let mut receipts = vec![ByteBuf::from(b"not a receipt".to_vec())];
        receipts.extend((1..n).map(|_| ByteBuf::from(arrived.clone())));
        NodeRequest::Notices { receipts, crls: Vec::new(), crls_asked: Vec::new() }
    };
    match peer.request(&batch(MAX_NOTICES), &[]).await.unwrap() {
        NodeResponse::NoticesTaken { refused } => {
            assert_eq!(refused.len(), 1, "{refused:?}");
            assert_eq!((refused[0].0, refused[0].1), (0, ErrorKind::BadRequest), "{refused:?}");
            assert!(refused[0].2.contains("malformed receipt"), "{refused:?}");
        }
        other => panic!("expected the batch taken but its first receipt, got {other}"),
    }
    match peer.request(&batch(MAX_NOTICES + 1), &[]).await.unwrap() {
        NodeResponse::Error { kind: ErrorKind::BadRequest, message } => {
            assert!(message.contains("at most 64"), "{message}")
        }
        other => panic!("expected a refusal of the whole batch, got {other}"),
    }
    // The delivery receipt was known already: taken again, stored once.
    assert_eq!(net.node(PHONG_DU).store.receipts_for(&doc.digest).await.unwrap().len(), before);
    net.stop().await;
}

/// The statuses a next hop sends with its hop receipt are judged one by one: Phong Dụ's node
/// (scripted) takes a document from Tiên Yên and answers with a good hop receipt and, beside
/// its good delivery receipt, one about another document, one sealed by another agency, a
/// status it may not send this way (06), one addressed to another agency than the sender, a
/// refusal for a recipient the transfer did not carry, a delivery receipt naming its
/// recipient twice (which only its signer's standing refuses), one whose signature was
/// altered and bytes that are no receipt. Tiên Yên records the hop receipt and the good delivery receipt (the
/// document is delivered) and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_with_a_hop_receipt_are_judged_one_by_one() {
    use std::sync::Arc;

    use harness::network::only;
    use harness::scripted_peer::ScriptedPeer;
    use node::protocol::{ErrorKind, NodeRequest, NodeResponse};
    use pki::document::{Envelope, Receipt};
    use serde_bytes::ByteBuf;
    harness::logging();
    let mut net =
        TestNet::prepare(only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU, HA_LAU]), NetOptions::default());
    net.start_node(&code(TIEN_YEN)).await;
    let seals = Arc::new([
        (code(PHONG_DU), net.identity(&code(PHONG_DU), pki::Profile::Seal)),
        (code(HA_LAU), net.identity(&code(HA_LAU), pki::Profile::Seal)),
    ]);
    let other = net.document(TIEN_YEN, &[PHONG_DU], 2);
    let script = move |request: NodeRequest| {
        let NodeRequest::Deliver { envelope, .. } = request else {
            return NodeResponse::Error { kind: ErrorKind::Unavailable, message: "scripted".into() };
        };
        let envelope = Envelope::from_bytes(&envelope).unwrap();
        let document = envelope.manifest().unwrap().id();
        let at = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let signed = |kind, envelope: [u8; 32], seal: usize, to: &str, recipients: Vec<AgencyCode>| {
            let (by, identity) = &seals[seal];
            let r = Receipt {
                kind,
                document: document.clone(),
                envelope,
                by: *by,
                to: code(to),
                at,
                recipients,
                note: None,
            };
            r.sign(&identity.key, &identity.chain).unwrap().as_bytes().to_vec()
        };
        let sign = |kind, envelope: [u8; 32], seal: usize| signed(kind, envelope, seal, TIEN_YEN, vec![seals[seal].0]);
        let arrived = ReceiptKind::Status(StatusCode::Arrived);
        let refused = ReceiptKind::Status(StatusCode::Refused);
        let good = sign(arrived, envelope.digest(), 0);
        let mut altered = good.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        let statuses = [
            sign(arrived, other.digest, 0),
            sign(arrived, envelope.digest(), 1),
            sign(ReceiptKind::Status(StatusCode::Completed), envelope.digest(), 0),
            signed(arrived, envelope.digest(), 0, HA_LAU, vec![code(PHONG_DU)]),
            signed(refused, envelope.digest(), 0, TIEN_YEN, vec![code(HA_LAU)]),
            signed(arrived, envelope.digest(), 0, TIEN_YEN, vec![code(PHONG_DU), code(PHONG_DU)]),
            altered,
            b"no receipt".to_vec(),
            good,
        ];
        NodeResponse::HopReceipt {
            receipt: ByteBuf::from(sign(ReceiptKind::Hop, envelope.digest(), 0)),
            statuses: statuses.into_iter().map(ByteBuf::from).collect(),
        }
    };
    let _peer = ScriptedPeer::start(&mut net, &code(PHONG_DU), Arc::new(script));
    let doc = net.document(TIEN_YEN, &[PHONG_DU], 1);
    let clerk = net.clerk(TIEN_YEN).await;
    doc.submit(&clerk).await.unwrap();
    wait_for(
        "the document delivered, by the status that came with its hop receipt",
        Duration::from_secs(30),
        || async { clerk.sent(10).await.unwrap().iter().any(|d| d.document == doc.id && d.status == Some(1)) },
    )
    .await;
    let mut held = receipts(&net, TIEN_YEN, &doc.digest).await;
    held.sort_by_key(|r| format!("{r:?}"));
    let (p, t) = (code(PHONG_DU), code(TIEN_YEN));
    assert_eq!(held, [(ReceiptKind::Hop, p, t), (ReceiptKind::Status(StatusCode::Arrived), p, t)]);
    assert!(receipts(&net, TIEN_YEN, &other.digest).await.is_empty(), "a status about another document kept");
    let metrics = net.node(TIEN_YEN).observed.metrics();
    assert_eq!(metrics.statuses_with_receipts_in.load(std::sync::atomic::Ordering::Relaxed), 1);
    net.stop().await;
}

/// A neighbour that does not say it keeps the statuses that come with a hop receipt (a node
/// from before they could, which would drop them) gets none with it: the delivery receipt
/// goes to it as a notice, as it always did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_neighbour_gets_the_delivery_receipt_as_a_notice() {
    use std::sync::atomic::Ordering;
    harness::logging();
    let (net, peer) = commune_and_district_with_a_raw_commune().await;
    let doc = net.document(PHONG_DU, &[TIEN_YEN], 9);
    let (_, statuses) = peer.taken(&doc, &[TIEN_YEN], false).await;
    assert!(statuses.is_empty(), "{statuses:?}");
    wait_for_delivery_receipt_at_phong_du(&net, &doc.digest).await;
    let metrics = net.node(PHONG_DU).observed.metrics();
    assert_eq!(metrics.notices_in.load(Ordering::Relaxed), 1);
    assert_eq!(metrics.statuses_with_receipts_in.load(Ordering::Relaxed), 0);
    net.stop().await;
}

/// A first delivery whose answer, with the delivery receipt in it, never reached the node
/// that sent it (here a raw peer that drops it), repeated by a node that does not take
/// statuses with its hop receipt (an older process of the same agency): the repeat gets the
/// same hop receipt, and the delivery receipt goes to the sender's node as a notice. (That it
/// is queued once however often the repeat comes is `storage`'s
/// `a_receipts_notice_is_queued_once_by_digest_or_by_id`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_that_does_not_take_the_statuses_gets_them_as_notices() {
    use std::sync::atomic::Ordering;
    harness::logging();
    let (net, peer) = commune_and_district_with_a_raw_commune().await;
    let doc = net.document(PHONG_DU, &[TIEN_YEN], 10);
    let (first, statuses) = peer.taken(&doc, &[TIEN_YEN], true).await;
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    let (again, statuses) = peer.taken(&doc, &[TIEN_YEN], false).await;
    assert_eq!(again, first, "the same hop receipt");
    assert!(statuses.is_empty(), "{statuses:?}");
    wait_for_delivery_receipt_at_phong_du(&net, &doc.digest).await;
    assert_eq!(net.node(PHONG_DU).observed.metrics().notices_in.load(Ordering::Relaxed), 1);
    assert_eq!(net.node(TIEN_YEN).observed.metrics().duplicates_in.load(Ordering::Relaxed), 1);
    net.stop().await;
}

/// A document taken first from a neighbour that is not the way back to its sender (the
/// province's node here, which may relay anything to a district), then from the one that is
/// (Phong Dụ's): the second delivery finds the document already stored only inside its own
/// transaction (no hop receipt to Phong Dụ's node answers it early), and its hop receipt comes
/// back with the delivery receipt the first one signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_taken_from_another_neighbour_first_sends_its_statuses_with_the_way_backs_receipt() {
    use harness::network::{RawPeer, only};
    harness::logging();
    let mut net =
        TestNet::prepare(only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU, QUANG_NINH]), NetOptions::default());
    net.start_node(&code(TIEN_YEN)).await;
    let province = RawPeer::connect(&net, &net.identity(&code(QUANG_NINH), pki::Profile::Node), TIEN_YEN).await;
    let phong_du = RawPeer::connect(&net, &net.identity(&code(PHONG_DU), pki::Profile::Node), TIEN_YEN).await;
    let doc = net.document(PHONG_DU, &[TIEN_YEN], 12);
    let (_, statuses) = province.taken(&doc, &[TIEN_YEN], true).await;
    assert!(statuses.is_empty(), "the province's node is not the way back: {statuses:?}");
    let (receipt, statuses) = phong_du.taken(&doc, &[TIEN_YEN], true).await;
    let hop = SignedReceipt::from_bytes(&receipt).unwrap().receipt;
    assert_eq!((hop.kind, hop.to), (ReceiptKind::Hop, code(PHONG_DU)));
    let back: Vec<_> = statuses.iter().map(|s| SignedReceipt::from_bytes(s).unwrap().receipt).collect();
    let got: Vec<_> = back.iter().map(|r| (r.kind, r.by, r.to, r.envelope)).collect();
    let arrived = ReceiptKind::Status(StatusCode::Arrived);
    assert_eq!(got, [(arrived, code(TIEN_YEN), code(PHONG_DU), doc.digest)]);
    net.stop().await;
}

/// A document whose next node has more statuses for its sender than a notice request holds
/// (its delivery receipt and 64 refusals for recipients it cannot route) sends them as
/// notices, none with the hop receipt, and every one reaches the sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_statuses_than_a_notice_request_holds_go_as_notices() {
    use harness::network::only;
    use std::sync::atomic::Ordering;
    harness::logging();
    let net = TestNet::start(only(&topology("quang-ninh-2024"), &[PHONG_DU, TIEN_YEN]), NetOptions::default()).await;
    // Communes under Tiên Yên that run no node in this network.
    let unknown: Vec<String> = (10..74).map(|n| format!("000.{n:02}.41.H49")).collect();
    let mut to = vec![TIEN_YEN];
    to.extend(unknown.iter().map(String::as_str));
    let doc = net.document(PHONG_DU, &to, 11);
    doc.submit(&net.clerk(PHONG_DU).await).await.unwrap();
    wait_for("the delivery receipt and 64 refusals at the sender's node", Duration::from_secs(60), || async {
        let held = receipts(&net, PHONG_DU, &doc.digest).await;
        let count = |kind| held.iter().filter(|r| r.0 == kind && r.1 == code(TIEN_YEN)).count();
        count(ReceiptKind::Status(StatusCode::Arrived)) == 1 && count(ReceiptKind::Status(StatusCode::Refused)) == 64
    })
    .await;
    let metrics = net.node(PHONG_DU).observed.metrics();
    assert_eq!(metrics.statuses_with_receipts_in.load(Ordering::Relaxed), 0);
    assert_eq!(metrics.notices_in.load(Ordering::Relaxed), 65);
    net.stop().await;
}
