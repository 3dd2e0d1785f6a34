//! What a node refuses: foreign and revoked certificates at the handshake; documents it may not
//! take from that neighbour, tampered and oversized ones with a signed refusal. In every case
//! nothing is stored.

use std::time::Duration;

use harness::network::{NetOptions, RawPeer, TestNet, only, topology, wait_for};
use node::protocol::NodeResponse;
use pki::document::{ReceiptKind, SignedReceipt, StatusCode};
use pki::testing::TestCa;
use pki::{AgencyCode, Profile};

const TIEN_YEN: &str = "000.00.41.H49";
const PHONG_DU: &str = "000.01.41.H49";
const HA_LAU: &str = "000.02.41.H49";

fn small_net_options() -> NetOptions {
    let mut o = NetOptions::default();
    o.extra_config.push_str("\n[limits]\nmax_attachment_bytes = 4000\n");
    o
}

async fn network() -> TestNet {
    let topology = only(&topology("quang-ninh-2024"), &["000.00.00.H49", TIEN_YEN, PHONG_DU, HA_LAU]);
    TestNet::start(topology, small_net_options()).await
}

/// Nothing of `doc` at `at`: no document row, no attachment bytes, no temporary files.
async fn nothing_stored(net: &TestNet, at: &str, doc: &harness::network::SignedDocument) {
    let node = net.node(at);
    assert!(node.store.document_by_id(&doc.id).await.unwrap().is_none(), "{at} stored {}", doc.id);
    for a in &doc.manifest.attachments {
        assert!(!node.store.has_attachment_bytes(&a.sha256).await.unwrap(), "{at} kept the bytes of {}", a.name);
    }
    let tmp = net.node_dir(&at.parse().unwrap()).join("data/blobs/tmp");
    assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0, "temporary files left at {at}");
}

fn refusal_reason(response: NodeResponse) -> String {
    match response {
        NodeResponse::Refused { receipt } => {
            let r = SignedReceipt::from_bytes(&receipt).unwrap();
            assert_eq!(r.receipt.kind, ReceiptKind::Status(StatusCode::Refused));
            assert_eq!(r.receipt.by, TIEN_YEN.parse::<AgencyCode>().unwrap(), "signed by the refusing node");
            r.receipt.note.unwrap_or_default()
        }
        other => panic!("expected a signed refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_from_another_hierarchy_or_revoked_are_refused_in_the_handshake() {
    harness::logging();
    let mut net = network().await;
    let doc = net.document(PHONG_DU, &["000.00.00.H49"], 1);

    // A node certificate for Phong Dụ's code from another root.
    let mut other_root = TestCa::root();
    let mut other_ca = other_root.sub_ca("000.00.41.H49", "Tiên Yên (giả)");
    let fake = other_ca.issue(Profile::Node, PHONG_DU, "Phong Dụ (giả)");
    let identity = node::config::Identity { chain: vec![fake.cert.clone(), other_ca.cert.clone()], key: fake.key };
    let peer = RawPeer::connect(&net, &identity, TIEN_YEN).await;
    // TLS 1.3 client authentication completes late: the refusal shows on the first stream.
    let result = peer.deliver(&doc, &["000.00.00.H49"]).await;
    assert!(result.is_err(), "a foreign certificate was served: {result:?}");
    nothing_stored(&net, TIEN_YEN, &doc).await;

    // The genuine node works until its certificate is revoked...
    let genuine = net.identity(&PHONG_DU.parse().unwrap(), Profile::Node);
    let serial = genuine.chain[0].serial.clone();
    let ok = RawPeer::connect(&net, &genuine, TIEN_YEN).await;
    assert!(matches!(ok.deliver(&doc, &["000.00.00.H49"]).await, Ok(NodeResponse::HopReceipt { .. })));
    // ...then the new CRL reaches Tiên Yên (through its CRL file) and the next handshake fails.
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    net.pki.cas.get_mut(&TIEN_YEN.parse().unwrap()).unwrap().revoke(
        &serial,
        now - time::Duration::minutes(1),
        pki::RevocationReason::KeyCompromise,
    );
    net.publish_crls();
    let tien_yen = net.node(TIEN_YEN);
    wait_for("Tiên Yên to load the new CRL", Duration::from_secs(10), || async {
        tien_yen.trust.trust().validator().crls().iter().any(|c| c.lookup(&serial).is_some())
    })
    .await;
    let doc2 = net.document(PHONG_DU, &["000.00.00.H49"], 2);
    let revoked = RawPeer::connect(&net, &genuine, TIEN_YEN).await;
    let result = revoked.deliver(&doc2, &["000.00.00.H49"]).await;
    assert!(result.is_err(), "a revoked certificate was served: {result:?}");
    nothing_stored(&net, TIEN_YEN, &doc2).await;
    net.stop_node(&PHONG_DU.parse().unwrap()).await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_a_neighbour_may_not_send_tampered_or_oversized_are_refused_with_a_signed_reason() {
    harness::logging();
    let net = network().await;
    let phong_du = RawPeer::connect(&net, &net.identity(&PHONG_DU.parse().unwrap(), Profile::Node), TIEN_YEN).await;
    let ha_lau = RawPeer::connect(&net, &net.identity(&HA_LAU.parse().unwrap(), Profile::Node), TIEN_YEN).await;

    // Hà Lâu's node relaying a document sealed by Phong Dụ (its sibling).
    let doc = net.document(PHONG_DU, &["000.00.00.H49"], 10);
    let reason = refusal_reason(ha_lau.deliver(&doc, &["000.00.00.H49"]).await.unwrap());
    assert!(reason.contains("may only send documents of its own subtree"), "{reason}");
    nothing_stored(&net, TIEN_YEN, &doc).await;

    // A tampered attachment (same size, one byte changed).
    let mut tampered = net.document(PHONG_DU, &["000.00.00.H49"], 11);
    tampered.bodies[0][3] ^= 0x20;
    let reason = refusal_reason(phong_du.deliver(&tampered, &["000.00.00.H49"]).await.unwrap());
    assert!(reason.contains("altered"), "{reason}");
    nothing_stored(&net, TIEN_YEN, &tampered).await;

    // A tampered manifest under the original signatures.
    let good = net.document(PHONG_DU, &["000.00.00.H49"], 12);
    let mut sign: coset::CoseSign = coset::TaggedCborSerializable::from_tagged_slice(&good.envelope).unwrap();
    let mut m = good.manifest.clone();
    m.subject = "Nội dung đã bị sửa".into();
    sign.payload = Some(m.to_cbor().unwrap());
    let mut forged = good.clone();
    forged.envelope = coset::TaggedCborSerializable::to_tagged_vec(sign).unwrap();
    let reason = refusal_reason(phong_du.deliver(&forged, &["000.00.00.H49"]).await.unwrap());
    assert!(reason.contains("verification failed") && reason.contains("does not verify"), "{reason}");
    nothing_stored(&net, TIEN_YEN, &good).await;

    // An oversized attachment (the limit here is 4000 bytes).
    let big_body = vec![b'x'; 5000];
    let mut manifest = good.manifest.clone();
    manifest.number = 13;
    manifest.attachments[0].size = big_body.len() as u64;
    manifest.attachments[0].sha256 = pki::sha256(&big_body);
    let big = net.sign(manifest, vec![big_body]);
    let reason = refusal_reason(phong_du.deliver(&big, &["000.00.00.H49"]).await.unwrap());
    assert!(reason.contains("over this node's limit of 4000"), "{reason}");
    nothing_stored(&net, TIEN_YEN, &big).await;

    // A recipient the document does not name.
    let doc = net.document(PHONG_DU, &["000.00.00.H49"], 14);
    let reason = refusal_reason(phong_du.deliver(&doc, &["000.02.41.H49"]).await.unwrap());
    assert!(reason.contains("is not a recipient"), "{reason}");

    // The node keeps serving genuine traffic afterwards.
    let fine = net.document(PHONG_DU, &["000.00.00.H49"], 15);
    assert!(matches!(phong_du.deliver(&fine, &["000.00.00.H49"]).await, Ok(NodeResponse::HopReceipt { .. })));
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_recipient_comes_back_to_the_sender_as_a_signed_refusal() {
    harness::logging();
    let net = network().await;
    let sender = net.clerk(PHONG_DU).await;
    // 000.09.41.H49 would be a commune of Tiên Yên, but it runs no node.
    let doc = net.document(PHONG_DU, &["000.09.41.H49", HA_LAU], 20);
    doc.submit(&sender).await.unwrap();
    wait_for("the refusal and the delivery to reach the sender", Duration::from_secs(20), || async {
        let track = sender.track(&doc.id).await.unwrap();
        let refused = track.iter().any(|r| {
            r.receipt.kind == ReceiptKind::Status(StatusCode::Refused)
                && r.receipt.recipients == vec!["000.09.41.H49".parse::<AgencyCode>().unwrap()]
                && r.receipt.note.as_deref().is_some_and(|n| n.contains("no route to 000.09.41.H49"))
        });
        let arrived = track.iter().any(|r| {
            r.receipt.kind == ReceiptKind::Status(StatusCode::Arrived)
                && r.receipt.by == HA_LAU.parse::<AgencyCode>().unwrap()
        });
        refused && arrived
    })
    .await;
    net.stop().await;
}
