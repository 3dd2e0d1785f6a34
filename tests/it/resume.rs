//! Large attachments resume from the bytes the receiver kept when a transfer broke off, on
//! both legs: the clerk's upload to its node, and one node to the next (through a real UDP
//! fault proxy whose link is cut halfway). The bytes of the second attempt are counted (the
//! clerk's progress, the proxy's byte counter) and must be about the size less what was kept;
//! the stored blob must hash right and exactly one hop receipt result. A damaged partial file
//! is detected by the final hash and the document taken after a full resend.

use std::time::{Duration, Instant};

use harness::fault_net::Links;
use harness::fault_proxy::{FaultSeed, Faults};
use harness::network::{Database, NetOptions, SignedDocument, TestNet, only, topology, wait_for};
use node::clerk_client::{ClerkClient, ClerkError};
use node::protocol::ErrorKind;
use pki::AgencyCode;
use pki::document::manifest::Attachment;
use pki::document::{ReceiptKind, SignedReceipt};

const PHONG_DU: &str = "000.01.41.H49";
const TIEN_YEN: &str = "000.00.41.H49";

const MIB: usize = 1 << 20;

/// Fast retries and short transport timeouts (as the fault scenarios use), so a cut link is
/// noticed in seconds.
const FAST: &str = "[retry]\ninitial = \"100ms\"\nmax = \"1s\"\nmultiplier = 2.0\njitter = 0.2\nmax_attempts = 1000\njitter_seed = 7\n\n[limits]\nidle_timeout = \"3s\"\nkeep_alive = \"1s\"\nconnect_timeout = \"2s\"\nrequest_timeout = \"20s\"\n";

fn code(s: &str) -> AgencyCode {
    s.parse().unwrap()
}

fn network(database: Database) -> TestNet {
    TestNet::prepare(
        only(&topology("quang-ninh-2024"), &[PHONG_DU, TIEN_YEN]),
        NetOptions { database, extra_config: FAST.into(), ..NetOptions::default() },
    )
}

/// A document from Phong Dụ to Tiên Yên with one attachment of `size` bytes.
fn large_document(net: &TestNet, number: u32, size: usize) -> SignedDocument {
    let body: Vec<u8> = (0..size).map(|i| ((i as u64 * 2_654_435_761) >> 13) as u8).collect();
    let mut doc = net.document(PHONG_DU, &[TIEN_YEN], number);
    doc.manifest.attachments = vec![Attachment {
        name: format!("ho-so-{number}.pdf"),
        media_type: "application/pdf".into(),
        size: size as u64,
        sha256: pki::sha256(&body),
    }];
    net.sign(doc.manifest, vec![body])
}

/// The node's partial files (of interrupted transfers): their lengths.
fn partials(net: &TestNet, at: &str) -> Vec<u64> {
    let dir = net.node(at).config.data_dir.join("blobs").join("partial");
    let mut lens: Vec<u64> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).collect())
        .unwrap_or_default();
    lens.sort();
    lens
}

/// A reader of `body` that fails after `upto` bytes, as a clerk's machine losing its link.
struct FailsAfter {
    body: Vec<u8>,
    at: usize,
    upto: usize,
}

impl tokio::io::AsyncRead for FailsAfter {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.at >= this.upto {
            return std::task::Poll::Ready(Err(std::io::Error::other("the clerk's link went down")));
        }
        let n = buf.remaining().min(this.upto - this.at);
        buf.put_slice(&this.body[this.at..this.at + n]);
        this.at += n;
        std::task::Poll::Ready(Ok(()))
    }
}

/// Submits `doc`, its attachment failing after `upto` bytes when given; returns the answer
/// and the attachment bytes that went out.
async fn submit(clerk: &ClerkClient, doc: &SignedDocument, upto: Option<usize>) -> (Result<String, ClerkError>, u64) {
    let body = doc.bodies[0].clone();
    let mut sent = 0u64;
    let answer = clerk
        .submit(
            &doc.envelope,
            Vec::new(),
            |_| Ok(FailsAfter { upto: upto.unwrap_or(body.len()), body: body.clone(), at: 0 }),
            |n| sent += n,
        )
        .await
        .map(|(id, _)| id);
    (answer, sent)
}

/// The hop receipts `at` holds for `doc`.
async fn hop_receipts(net: &TestNet, at: &str, doc: &SignedDocument) -> usize {
    let held = net.node(at).store.receipts_for(&doc.digest).await.unwrap();
    held.iter().filter(|r| SignedReceipt::from_bytes(&r.bytes).unwrap().receipt.kind == ReceiptKind::Hop).count()
}

async fn wait_stored(net: &TestNet, at: &str, doc: &SignedDocument) {
    let node = net.node(at);
    wait_for(&format!("{} stored at {at}", doc.id), Duration::from_secs(120), || async {
        node.store.document_by_id(&doc.id).await.unwrap().is_some()
    })
    .await;
    let a = &doc.manifest.attachments[0];
    let stored = std::fs::read(node.store.blobs().path(&a.sha256)).unwrap();
    assert_eq!(pki::sha256(&stored), a.sha256, "the blob at {at} hashes right");
}

/// The clerk's upload breaks off after 10 of 24 MiB; the next submission of the same signed
/// document sends only what the node did not keep, and the document is taken once.
async fn clerk_upload_resumes(database: Database) {
    let mut net = network(database);
    net.start_node(&code(PHONG_DU)).await;
    net.start_node(&code(TIEN_YEN)).await;
    let clerk = net.clerk(PHONG_DU).await;
    let doc = large_document(&net, 1, 24 * MIB);

    let (first, _) = submit(&clerk, &doc, Some(10 * MIB)).await;
    assert!(first.is_err(), "{first:?}");
    let kept = partials(&net, PHONG_DU);
    assert_eq!(kept.len(), 1, "one partial file kept: {kept:?}");
    // The stream window lets at most a few MiB be in flight unread when the upload fails.
    assert!((4 * MIB as u64..=10 * MIB as u64).contains(&kept[0]), "kept {kept:?}");

    let (second, sent) = submit(&clerk, &doc, None).await;
    assert_eq!(second.unwrap(), doc.id);
    assert_eq!(sent, 24 * MIB as u64 - kept[0], "only the bytes the node did not keep went again");
    println!("[resume] clerk upload: kept {} of {} bytes, sent {sent} on resuming", kept[0], 24 * MIB);
    wait_stored(&net, PHONG_DU, &doc).await;
    assert!(partials(&net, PHONG_DU).is_empty(), "the partial file moved into the store");
    wait_stored(&net, TIEN_YEN, &doc).await;
    wait_for("the hop receipt back at Phong Dụ", Duration::from_secs(30), || async {
        hop_receipts(&net, PHONG_DU, &doc).await == 1
    })
    .await;
    assert_eq!(hop_receipts(&net, TIEN_YEN, &doc).await, 1, "one hop receipt issued");
    clerk.close().await;
    net.stop().await;
}

/// A partial file damaged between the attempts: the resumed upload's hash does not match, the
/// node discards the kept bytes and says to send again (transient, not a refusal of the
/// document), and the next, full, upload is taken.
async fn a_damaged_partial_file_costs_one_full_resend(database: Database) {
    let mut net = network(database);
    net.start_node(&code(PHONG_DU)).await;
    net.start_node(&code(TIEN_YEN)).await;
    let clerk = net.clerk(PHONG_DU).await;
    let doc = large_document(&net, 2, 8 * MIB);

    let (first, _) = submit(&clerk, &doc, Some(5 * MIB)).await;
    assert!(first.is_err(), "{first:?}");
    let dir = net.node(PHONG_DU).config.data_dir.join("blobs").join("partial");
    let file = std::fs::read_dir(&dir).unwrap().flatten().next().expect("a partial file").path();
    let mut kept = std::fs::read(&file).unwrap();
    assert!(kept.len() > MIB, "kept {} bytes", kept.len());
    kept[MIB / 2] ^= 0x40;
    std::fs::write(&file, &kept).unwrap();

    let (second, sent) = submit(&clerk, &doc, None).await;
    match second {
        Err(ClerkError::Refused { kind: ErrorKind::Unavailable, message }) => {
            assert!(message.contains("discarded"), "{message}")
        }
        other => panic!("a damaged prefix must be refused for now, not taken: {other:?}"),
    }
    assert_eq!(sent, (8 * MIB - kept.len()) as u64, "the second attempt resumed");
    assert!(partials(&net, PHONG_DU).is_empty(), "the damaged partial file is gone");
    assert!(net.node(PHONG_DU).store.document_by_id(&doc.id).await.unwrap().is_none());

    let (third, sent) = submit(&clerk, &doc, None).await;
    assert_eq!(third.unwrap(), doc.id);
    assert_eq!(sent, 8 * MIB as u64, "the third attempt sent everything");
    wait_stored(&net, PHONG_DU, &doc).await;
    wait_stored(&net, TIEN_YEN, &doc).await;
    clerk.close().await;
    net.stop().await;
}

/// Node to node: the link is cut when about half of a 24 MiB attachment has passed the proxy,
/// and healed once the receiver has let the broken transfer go (with `restart`, after
/// restarting the receiving node too). The next attempt carries about the size less what the
/// receiver kept, and exactly one hop receipt results.
async fn forwarding_resumes_after_a_cut(database: Database, restart: bool) {
    let mut net = network(database);
    let seed = FaultSeed::from_env();
    let links = Links::install(&net, &[(code(PHONG_DU), code(TIEN_YEN))], Faults::none(), &seed).await;
    net.start_node(&code(PHONG_DU)).await;
    net.start_node(&code(TIEN_YEN)).await;
    let clerk = net.clerk(PHONG_DU).await;
    let size = 24 * MIB;
    let doc = large_document(&net, 3, size);
    let proxy = links.proxy(&code(PHONG_DU), &code(TIEN_YEN));
    let before = proxy.counts().to_target.bytes;
    let submitting = {
        let doc = doc.clone();
        tokio::spawn(async move {
            let answer = doc.submit(&clerk).await;
            clerk.close().await;
            answer
        })
    };
    let started = Instant::now();
    while proxy.counts().to_target.bytes - before < (size / 2) as u64 {
        assert!(started.elapsed() < Duration::from_secs(60), "the transfer did not get halfway");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    links.cut(&code(PHONG_DU), &code(TIEN_YEN));
    assert_eq!(submitting.await.unwrap().unwrap(), doc.id);
    // The receiver lets the broken transfer go when its connection times out (3 s).
    wait_for("the receiver to keep the broken transfer", Duration::from_secs(30), || async {
        partials(&net, TIEN_YEN).first().is_some_and(|&len| len > 0)
            && std::fs::read_dir(net.node(TIEN_YEN).config.data_dir.join("blobs").join("partial"))
                .unwrap()
                .flatten()
                .all(|e| std::fs::File::open(e.path()).unwrap().try_lock().is_ok())
    })
    .await;
    if restart {
        net.stop_node(&code(TIEN_YEN)).await;
        net.start_node(&code(TIEN_YEN)).await;
    }
    let kept = partials(&net, TIEN_YEN)[0];
    assert!(kept > (size / 8) as u64 && kept < size as u64, "kept {kept} of {size}");
    let healed_at = proxy.counts().to_target.bytes;
    links.heal(&code(PHONG_DU), &code(TIEN_YEN));
    wait_stored(&net, TIEN_YEN, &doc).await;
    let resent = proxy.counts().to_target.bytes - healed_at;
    println!(
        "[resume] node to node{}: kept {kept} of {size} bytes, {resent} bytes through the link after healing",
        if restart { ", receiver restarted" } else { "" }
    );
    let rest = size as u64 - kept;
    // The rest, plus QUIC's headers and retransmissions, the frame and a few notices.
    assert!(resent >= rest, "{resent} bytes cannot carry the {rest} missing");
    assert!(resent < rest + rest / 10 + 2 * MIB as u64, "{resent} bytes for the {rest} missing: not resumed");
    assert!(partials(&net, TIEN_YEN).is_empty(), "the partial file moved into the store");
    wait_for("the hop receipt back at Phong Dụ", Duration::from_secs(30), || async {
        hop_receipts(&net, PHONG_DU, &doc).await == 1
    })
    .await;
    assert_eq!(hop_receipts(&net, TIEN_YEN, &doc).await, 1, "one hop receipt issued");
    net.stop().await;
}

async fn forwarding_resumes(database: Database) {
    forwarding_resumes_after_a_cut(database, false).await;
}

async fn forwarding_resumes_across_a_restart(database: Database) {
    forwarding_resumes_after_a_cut(database, true).await;
}

on_both_backends!(
    clerk_upload_resumes,
    a_damaged_partial_file_costs_one_full_resend,
    forwarding_resumes,
    forwarding_resumes_across_a_restart
);
