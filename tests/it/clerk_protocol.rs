//! The clerk protocol at the library level: inbox order, fetch with attachments, statuses,
//! tracking, recall, revoke/update/replace acting on earlier documents, health.

use std::time::Duration;

use harness::network::{NetOptions, TestNet, fetch_all, only, topology, wait_for};
use pki::document::{Business, ReceiptKind, StatusCode, Urgency};

const PHONG_DU: &str = "000.01.41.H49";
const HA_LAU: &str = "000.02.41.H49";

async fn network() -> TestNet {
    TestNet::start(only(&topology("quang-ninh-2024"), &["000.00.41.H49", PHONG_DU, HA_LAU]), NetOptions::default())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_fetch_statuses_track_and_recall() {
    harness::logging();
    let net = network().await;
    let sender = net.clerk(PHONG_DU).await;
    let recipient = net.clerk(HA_LAU).await;

    // Three documents: the flash one must come first in the inbox.
    let normal = net.document(PHONG_DU, &[HA_LAU], 1);
    let mut manifest = net.document(PHONG_DU, &[HA_LAU], 2).manifest;
    manifest.urgency = Urgency::Flash;
    let body = b"%PDF hoa toc".to_vec();
    manifest.attachments[0].size = body.len() as u64;
    manifest.attachments[0].sha256 = pki::sha256(&body);
    let flash = net.sign(manifest, vec![body.clone()]);
    let third = net.document(PHONG_DU, &[HA_LAU], 3);
    for d in [&normal, &flash, &third] {
        d.submit(&sender).await.unwrap();
    }
    // Submitting again is harmless: the same document id comes back.
    assert_eq!(normal.submit(&sender).await.unwrap(), normal.id);
    wait_for("three documents in Hà Lâu's inbox", Duration::from_secs(20), || async {
        recipient.inbox(10).await.unwrap().len() == 3
    })
    .await;
    let inbox = recipient.inbox(10).await.unwrap();
    assert_eq!(inbox[0].document, flash.id, "urgent first");
    assert_eq!(inbox[0].urgency, 3);
    assert_eq!(sender.sent(10).await.unwrap().len(), 3);

    // Fetch streams the attachments exactly as signed.
    let (fetched, received) = fetch_all(&recipient, &flash.id).await.unwrap();
    assert_eq!(received, vec![body]);
    assert_eq!(fetched.envelope, flash.envelope);
    assert!(!fetched.receipts.is_empty(), "the recipient holds at least its hop receipt");

    // Statuses: a clerk's mistakes are explained; good ones travel back.
    let err = recipient.post_status(&flash.id, 13, None).await.unwrap_err().to_string();
    assert!(err.contains("a clerk posts 03 accepted"), "{err}");
    let err = recipient.post_status("000.01.41.H49,2026/01/01,999/UBND-VP", 3, None).await.unwrap_err().to_string();
    assert!(err.contains("no document") && err.contains("at this agency"), "{err}");
    let err = sender.post_status(&flash.id, 3, None).await.unwrap_err().to_string();
    assert!(err.contains("was not received by this agency"), "{err}");
    recipient.post_status(&flash.id, 3, Some("Đã tiếp nhận".into())).await.unwrap();
    recipient.post_status(&flash.id, 3, Some("Đã tiếp nhận".into())).await.unwrap();
    // The recipient's node signed and kept one 03: the repeat was recognised where it was posted.
    let held_03 = |held: Vec<node::storage::StoredReceipt>| {
        held.iter()
            .filter(|r| {
                pki::document::SignedReceipt::from_bytes(&r.bytes)
                    .is_ok_and(|s| s.receipt.kind == ReceiptKind::Status(StatusCode::Accepted))
            })
            .count()
    };
    assert_eq!(
        held_03(net.node(HA_LAU).store.receipts_for(&flash.digest).await.unwrap()),
        1,
        "a repeated status is signed twice"
    );
    wait_for("status 03 at the sender", Duration::from_secs(20), || async {
        sender
            .track(&flash.id)
            .await
            .unwrap()
            .iter()
            .any(|r| r.receipt.kind == ReceiptKind::Status(StatusCode::Accepted))
    })
    .await;
    let accepted = sender
        .track(&flash.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.receipt.kind == ReceiptKind::Status(StatusCode::Accepted))
        .count();
    assert_eq!(accepted, 1, "a repeated status is sent twice");

    // Recall: the sender asks, the recipient sees the request and accepts it.
    let err = recipient.recall(&flash.id, None).await.unwrap_err().to_string();
    assert!(err.contains("only the sender can recall it"), "{err}");
    sender.recall(&third.id, Some("Ban hành nhầm".into())).await.unwrap();
    wait_for("the recall request at Hà Lâu", Duration::from_secs(20), || async {
        recipient.inbox(10).await.unwrap().iter().any(|e| e.document == third.id && e.recall_requested)
    })
    .await;
    recipient.post_status(&third.id, 15, None).await.unwrap();
    let entry = recipient.inbox(10).await.unwrap().into_iter().find(|e| e.document == third.id).unwrap();
    assert_eq!(entry.superseded.as_deref(), Some("recalled"));
    assert!(!entry.recall_requested);
    wait_for("status 15 at the sender", Duration::from_secs(20), || async {
        let track = sender.track(&third.id).await.unwrap();
        track.iter().any(|r| r.receipt.kind == ReceiptKind::Status(StatusCode::RecallRequested))
            && track.iter().any(|r| r.receipt.kind == ReceiptKind::Status(StatusCode::RecallAccepted))
    })
    .await;

    // The health read-out.
    let health: serde_json::Value = serde_json::from_str(&sender.health().await.unwrap()).unwrap();
    assert_eq!(health["agency"], PHONG_DU);
    assert!(health["queue"]["done"].as_i64().unwrap() >= 3);
    assert!(health["certificates"].as_array().unwrap().len() == 2);
    assert!(!health["crls"].as_array().unwrap().is_empty());
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_update_and_replace_act_on_the_earlier_document() {
    harness::logging();
    let net = network().await;
    let sender = net.clerk(PHONG_DU).await;
    let recipient = net.clerk(HA_LAU).await;
    let originals: Vec<_> = (10..13).map(|n| net.document(PHONG_DU, &[HA_LAU], n)).collect();
    for d in &originals {
        d.submit(&sender).await.unwrap();
    }
    for (i, (business, verb)) in
        [(Business::Revoke as fn(_) -> _, "revoked"), (Business::Update, "updated"), (Business::Replace, "replaced")]
            .into_iter()
            .enumerate()
    {
        let mut later = net.document(PHONG_DU, &[HA_LAU], 20 + i as u32);
        later.manifest.business = business(originals[i].manifest.id());
        let later = net.sign(later.manifest.clone(), later.bodies.clone());
        later.submit(&sender).await.unwrap();
        let expected = format!("{verb} by {}", later.id);
        let target = originals[i].id.clone();
        wait_for(&format!("{target} to be {verb}"), Duration::from_secs(20), || {
            let (recipient, target, expected) = (&recipient, target.clone(), expected.clone());
            async move {
                recipient
                    .inbox(20)
                    .await
                    .unwrap()
                    .iter()
                    .any(|e| e.document == target && e.superseded.as_deref() == Some(expected.as_str()))
            }
        })
        .await;
    }
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_that_overtakes_its_document_still_marks_it() {
    harness::logging();
    let net = network().await;
    let sender = net.clerk(PHONG_DU).await;
    let recipient = net.clerk(HA_LAU).await;
    // Documents on the way can overtake each other: here the revocation arrives first.
    let original = net.document(PHONG_DU, &[HA_LAU], 30);
    let mut revoke = net.document(PHONG_DU, &[HA_LAU], 31);
    revoke.manifest.business = Business::Revoke(original.manifest.id());
    let revoke = net.sign(revoke.manifest.clone(), revoke.bodies.clone());
    revoke.submit(&sender).await.unwrap();
    wait_for("the revocation at Hà Lâu", Duration::from_secs(20), || async {
        recipient.inbox(20).await.unwrap().iter().any(|e| e.document == revoke.id)
    })
    .await;
    original.submit(&sender).await.unwrap();
    let expected = format!("revoked by {}", revoke.id);
    wait_for("the late original to arrive marked as revoked", Duration::from_secs(20), || async {
        recipient
            .inbox(20)
            .await
            .unwrap()
            .iter()
            .any(|e| e.document == original.id && e.superseded.as_deref() == Some(expected.as_str()))
    })
    .await;
    net.stop().await;
}

/// Issue 14: the route question, at the library level — answered along the way (Phong Dụ asks
/// Tiên Yên), each outcome in its shape, and the recipients limit at its edge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_question_is_answered_along_the_way_within_its_limits() {
    use node::clerk_client::ClerkError;
    use node::protocol::{ErrorKind, RouteOutcome};
    use node::route_check::MAX_ROUTE_RECIPIENTS;
    harness::logging();
    let net = network().await;
    let clerk = net.clerk(PHONG_DU).await;
    let codes = |list: &[&str]| list.iter().map(|c| c.parse().unwrap()).collect::<Vec<pki::AgencyCode>>();
    let answers = clerk.route(&codes(&[HA_LAU, "000.05.41.H49", PHONG_DU])).await.unwrap();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0].recipient, HA_LAU);
    assert_eq!(
        answers[0].outcome,
        RouteOutcome::Reachable { path: vec![PHONG_DU.into(), "000.00.41.H49".into(), HA_LAU.into()] }
    );
    match &answers[1].outcome {
        RouteOutcome::NoRoute { path, reason } => {
            assert_eq!(path, &vec![PHONG_DU.to_owned(), "000.00.41.H49".to_owned()]);
            assert!(reason.contains("no route to 000.05.41.H49"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(answers[2].outcome, RouteOutcome::Reachable { path: vec![PHONG_DU.into()] });
    // The limit is a document's own: as many recipients as a document may have, not one more.
    let many: Vec<pki::AgencyCode> = (0..MAX_ROUTE_RECIPIENTS).map(|_| HA_LAU.parse().unwrap()).collect();
    assert_eq!(clerk.route(&many).await.unwrap().len(), MAX_ROUTE_RECIPIENTS);
    let too_many: Vec<pki::AgencyCode> = (0..=MAX_ROUTE_RECIPIENTS).map(|_| HA_LAU.parse().unwrap()).collect();
    match clerk.route(&too_many).await {
        Err(ClerkError::Refused { kind: ErrorKind::BadRequest, message }) => {
            assert!(message.contains("more than 200"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    net.stop().await;
}
