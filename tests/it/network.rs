//! The demo network, in-process: real QUIC on loopback, on SQLite and on PostgreSQL.

use std::time::Duration;

use harness::network::{Database, NetOptions, TestNet, topology, wait_for};
use pki::AgencyCode;
use pki::document::{ReceiptKind, SignedReceipt, StatusCode};

const PHONG_DU: &str = "000.01.41.H49";
const THANH_SON: &str = "000.01.42.H49";
const GOV: &str = "000.00.00.G22";

fn code(s: &str) -> AgencyCode {
    s.parse().unwrap()
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
    wait_for("the sender to hold every hop receipt and both delivery receipts", Duration::from_secs(30), || async {
        let held = receipts(&net, PHONG_DU, &doc.digest).await;
        let hops = held.iter().filter(|r| r.0 == ReceiptKind::Hop).count();
        let arrived = held.iter().filter(|r| r.0 == ReceiptKind::Status(StatusCode::Arrived)).count();
        if hops != 5 || arrived != 2 {
            eprintln!("sender holds {held:?}");
        }
        hops == 5 && arrived == 2
    })
    .await;
    // Every node on each path holds, in its own database, the hop receipts of the hops after it
    // and the delivery receipt of the recipient at the end of the path.
    for path in paths {
        let recipient = code(path[path.len() - 1]);
        for (i, at) in path.iter().enumerate() {
            let held = receipts(&net, at, &doc.digest).await;
            for pair in path[i..].windows(2) {
                let hop = (ReceiptKind::Hop, code(pair[1]), code(pair[0]));
                assert!(held.contains(&hop), "{at} lacks the hop receipt of {} to {}: {held:?}", pair[1], pair[0]);
            }
            let arrived = (ReceiptKind::Status(StatusCode::Arrived), recipient, code(PHONG_DU));
            assert!(held.contains(&arrived), "{at} lacks the delivery receipt of {recipient}: {held:?}");
        }
    }

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
