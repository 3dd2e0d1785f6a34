//! Questions about a document's path (`NodeRequest::PathEvidence`, behind `track` and
//! `fetch`): how many a node answers for its neighbours at once.

use std::time::{Duration, Instant};

use harness::network::{NetOptions, RawPeer, TestNet, only, topology, wait_for};
use harness::silent_peer::SilentPeer;
use node::protocol::{ErrorKind, NodeRequest, NodeResponse, Toward};
use pki::{AgencyCode, Profile};
use serde_bytes::ByteBuf;

const PHONG_DU: &str = "000.01.41.H49";
const TIEN_YEN: &str = "000.00.41.H49";
const PROVINCE: &str = "000.00.00.H49";

fn code(s: &str) -> AgencyCode {
    s.parse().unwrap()
}

/// Tiên Yên answers one question about paths at a time (`limits.max_path_questions = 1`).
/// Phong Dụ's document went on to the province, which now hangs: a question toward the
/// recipients keeps Tiên Yên waiting on it, and a second question meanwhile is told "busy"
/// (transient) at once. The first still gets Tiên Yên's own part (the hop receipt the
/// province gave it), and once it is answered the next question is served again. With
/// `max_path_questions = 4`, one neighbour may hold a quarter of them, one: the same holds for
/// the second question of the same neighbour, refused as beyond its share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_at_most_max_path_questions_at_once_and_says_busy_beyond() {
    harness::logging();
    one_neighbour_asks_twice(1, "limits.max_path_questions").await;
    one_neighbour_asks_twice(4, "its share of limits.max_path_questions").await;
}

async fn one_neighbour_asks_twice(limit: usize, refused_as: &str) {
    let path = [PHONG_DU, TIEN_YEN, PROVINCE];
    let mut net = TestNet::prepare(only(&topology("quang-ninh-2024"), &path), NetOptions::default());
    let file = net.config_path(&code(TIEN_YEN));
    let mut config = std::fs::read_to_string(&file).unwrap();
    assert!(!config.contains("[limits]"), "the test network's configuration has no [limits] table of its own");
    config.push_str(&format!("\n[limits]\nmax_path_questions = {limit}\n"));
    std::fs::write(&file, config).unwrap();
    for at in path {
        net.start_node(&code(at)).await;
    }
    let doc = net.document(PHONG_DU, &[PROVINCE], 77);
    doc.submit(&net.clerk(PHONG_DU).await).await.unwrap();
    wait_for("the province to hold the document", Duration::from_secs(30), || async {
        net.node(PROVINCE).store.document_by_digest(&doc.digest).await.unwrap().is_some()
    })
    .await;
    net.stop_node(&code(PROVINCE)).await;
    let _hanging = SilentPeer::start(&mut net, &code(PROVINCE));

    let peer = RawPeer::connect(&net, &net.identity(&code(PHONG_DU), Profile::Node), TIEN_YEN).await;
    let ask = NodeRequest::PathEvidence {
        envelope: ByteBuf::from(doc.digest.to_vec()),
        toward: Toward::Recipients,
        hops_left: 8,
    };
    let (first, second) = tokio::join!(
        async {
            let asked = Instant::now();
            (peer.request(&ask, &[]).await, asked.elapsed())
        },
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            peer.request(&ask, &[]).await
        }
    );
    let (first, waited) = first;
    match second.unwrap() {
        NodeResponse::Error { kind: ErrorKind::Unavailable, message } => {
            assert!(message.contains(refused_as), "{message}")
        }
        other => panic!("expected busy, got {other}"),
    }
    let own_part = |answer: NodeResponse| match answer {
        NodeResponse::PathEvidence { receipts, .. } => receipts
            .iter()
            .map(|r| pki::document::SignedReceipt::from_bytes(r).unwrap().receipt)
            .map(|r| (r.by, r.to))
            .collect::<Vec<_>>(),
        other => panic!("expected Tiên Yên's part, got {other}"),
    };
    assert_eq!(own_part(first.unwrap()), [(code(PROVINCE), code(TIEN_YEN))]);
    // Tiên Yên waited on the hanging province (0.5 s per node it could still ask, 8) before
    // answering with its own part; the second question came and went meanwhile.
    assert!(
        waited >= Duration::from_secs(3),
        "the first question was answered after {waited:?}, not held by the hanging province"
    );
    println!("PATH a question with a hanging next node answered in {waited:?}");
    assert_eq!(own_part(peer.request(&ask, &[]).await.unwrap()), [(code(PROVINCE), code(TIEN_YEN))]);
    net.stop().await;
}
