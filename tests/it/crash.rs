//! Crash safety with real processes, on SQLite and on PostgreSQL: documents in flight while the province node is killed
//! with SIGKILL and restarted arrive exactly once, with every receipt.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use harness::network::{Database, NetOptions, TestNet, only, topology, wait_for};
use pki::AgencyCode;
use pki::document::{ReceiptKind, StatusCode};

const PHONG_DU: &str = "000.01.41.H49";
const THANH_SON: &str = "000.01.42.H49";
const PROVINCE: &str = "000.00.00.H49";
const DOCUMENTS: u32 = 200;

on_both_backends!(two_hundred_documents_survive_a_sigkill_of_the_province_exactly_once);

async fn two_hundred_documents_survive_a_sigkill_of_the_province_exactly_once(database: Database) {
    harness::logging();
    let topology =
        only(&topology("quang-ninh-2024"), &[PROVINCE, "000.00.41.H49", "000.00.42.H49", PHONG_DU, THANH_SON]);
    let mut net = TestNet::prepare(topology, NetOptions { database, ..NetOptions::default() });
    let mut processes: BTreeMap<AgencyCode, harness::network::NodeProcess> = BTreeMap::new();
    for code in net.topology.codes() {
        processes.insert(code, net.spawn_process(&code));
    }
    let sender = net.wait_ready(PHONG_DU).await;
    let recipient = net.wait_ready(THANH_SON).await;

    let t0 = std::time::Instant::now();
    let docs: Vec<_> = (1..=DOCUMENTS).map(|n| net.document(PHONG_DU, &[THANH_SON], n)).collect();
    // Kill the province while documents are still on their way through it: as soon as the
    // first arrives, while the clerk is still submitting (submitted first, the documents could
    // all be through before the first was seen).
    let province: AgencyCode = PROVINCE.parse().unwrap();
    let submitting = async {
        for d in &docs {
            d.submit(&sender).await.unwrap();
        }
    };
    let killing = async {
        wait_for("the first documents to arrive", Duration::from_secs(60), || async {
            !recipient.inbox(1).await.unwrap().is_empty()
        })
        .await;
        processes.get_mut(&province).unwrap().kill();
        recipient.inbox(10_000).await.unwrap().len()
    };
    let ((), arrived_at_kill) = tokio::join!(submitting, killing);
    assert!(arrived_at_kill < DOCUMENTS as usize, "all documents arrived before the kill; the test proves nothing");
    eprintln!("killed at {:?}", t0.elapsed());
    tokio::time::sleep(Duration::from_millis(500)).await;
    processes.insert(province, net.spawn_process(&province));

    wait_for("all documents at Thanh Sơn", Duration::from_secs(120), || async {
        recipient.inbox(10_000).await.unwrap().len() >= DOCUMENTS as usize
    })
    .await;
    eprintln!("all arrived at {:?}", t0.elapsed());
    // Every document is there (the inbox cannot hold one twice: exactly once is shown by the
    // receipts, where a document taken twice would leave a second, differently signed one).
    let inbox = recipient.inbox(10_000).await.unwrap();
    let ids: HashSet<&str> = inbox.iter().map(|e| e.document.as_str()).collect();
    assert!(docs.iter().all(|d| ids.contains(d.id.as_str())), "a document is missing at Thanh Sơn");

    // Every receipt present, exactly once, at the sender: four hops and the delivery.
    let expected_hops: HashSet<AgencyCode> =
        ["000.00.41.H49", PROVINCE, "000.00.42.H49", THANH_SON].iter().map(|c| c.parse().unwrap()).collect();
    for d in &docs {
        let mut complete = false;
        for _ in 0..600 {
            let track = sender.track(&d.id).await.unwrap();
            let hops: Vec<AgencyCode> =
                track.iter().filter(|r| r.receipt.kind == ReceiptKind::Hop).map(|r| r.receipt.by).collect();
            let arrived = track.iter().filter(|r| r.receipt.kind == ReceiptKind::Status(StatusCode::Arrived)).count();
            let distinct: HashSet<AgencyCode> = hops.iter().copied().collect();
            assert_eq!(hops.len(), distinct.len(), "{}: a hop receipt twice: {hops:?}", d.id);
            assert!(arrived <= 1, "{}: the delivery receipt twice", d.id);
            if distinct == expected_hops && arrived == 1 {
                complete = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            complete,
            "{}: receipts incomplete: {:?}",
            d.id,
            sender.track(&d.id).await.unwrap().iter().map(|r| (r.receipt.kind, r.receipt.by)).collect::<Vec<_>>()
        );
    }
    eprintln!(
        "receipts complete at {:?}; {arrived_at_kill} of {DOCUMENTS} had arrived when the province was killed",
        t0.elapsed()
    );
}
