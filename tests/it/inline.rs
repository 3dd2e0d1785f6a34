//! Small attachments kept in the database (`limits.inline_attachment_bytes`,
//! `node::storage::inline`): at the limit an attachment goes into the database at every node
//! on its path, one byte over it is a file; a relay forwards both, the recipient's clerk
//! fetches both byte for byte; an attachment shared by two documents (and twice in one) is
//! kept once. On both backends.

use std::time::Duration;

use harness::network::{Database, NetOptions, TestNet, fetch_all, only, topology, wait_for};

const TIEN_YEN: &str = "000.00.41.H49";
const PHONG_DU: &str = "000.01.41.H49";
const HA_LAU: &str = "000.02.41.H49";

/// The limit of this test's nodes.
const LIMIT: usize = 1024;

on_both_backends!(attachments_up_to_the_limit_are_kept_in_the_database_and_larger_ones_as_files);

async fn attachments_up_to_the_limit_are_kept_in_the_database_and_larger_ones_as_files(database: Database) {
    harness::logging();
    let mut options = NetOptions { database, ..NetOptions::default() };
    options.extra_config.push_str("\n[limits]\ninline_attachment_bytes = \"1KiB\"\n");
    let topology = only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU, HA_LAU]);
    let net = TestNet::start(topology, options).await;

    // Phong Dụ → Tiên Yên (a relay) → Hà Lâu, with one attachment at the limit and one over.
    let at_limit = vec![1u8; LIMIT];
    let over = vec![2u8; LIMIT + 1];
    let mut manifest = net.document(PHONG_DU, &[HA_LAU], 1).manifest;
    let mut second = manifest.attachments[0].clone();
    manifest.attachments[0].size = at_limit.len() as u64;
    manifest.attachments[0].sha256 = pki::sha256(&at_limit);
    second.name = "phu-luc.pdf".into();
    second.size = over.len() as u64;
    second.sha256 = pki::sha256(&over);
    manifest.attachments.push(second);
    let doc = net.sign(manifest, vec![at_limit.clone(), over.clone()]);
    let sender = net.clerk(PHONG_DU).await;
    doc.submit(&sender).await.unwrap();
    let recipient = net.clerk(HA_LAU).await;
    wait_for("the document at Hà Lâu", Duration::from_secs(30), || async {
        recipient.inbox(10).await.unwrap().iter().any(|e| e.document == doc.id)
    })
    .await;

    for at in [PHONG_DU, TIEN_YEN, HA_LAU] {
        let store = &net.node(at).store;
        let stored = store.document_by_id(&doc.id).await.unwrap().unwrap_or_else(|| panic!("not at {at}"));
        let attachments = store.attachments(stored.id).await.unwrap();
        let kept: Vec<(bool, bool)> =
            attachments.iter().map(|a| (a.is_inline(), store.blobs().contains(&a.attachment.sha256))).collect();
        assert_eq!(kept, [(true, false), (false, true)], "at {at}: (in the database, a file) for each attachment");
    }
    let (_, bodies) = fetch_all(&recipient, &doc.id).await.unwrap();
    assert_eq!(bodies, [at_limit.clone(), over], "fetched at the recipient");

    // A second document carrying the first one's small attachment twice: kept once at each
    // node (the same hash), and every copy delivered.
    let mut manifest = net.document(PHONG_DU, &[HA_LAU], 2).manifest;
    manifest.attachments[0].size = at_limit.len() as u64;
    manifest.attachments[0].sha256 = pki::sha256(&at_limit);
    let mut again = manifest.attachments[0].clone();
    again.name = "ban-sao.pdf".into();
    manifest.attachments.push(again);
    let twice = net.sign(manifest, vec![at_limit.clone(), at_limit.clone()]);
    twice.submit(&sender).await.unwrap();
    wait_for("the second document at Hà Lâu", Duration::from_secs(30), || async {
        recipient.inbox(10).await.unwrap().iter().any(|e| e.document == twice.id)
    })
    .await;
    let (_, bodies) = fetch_all(&recipient, &twice.id).await.unwrap();
    assert_eq!(bodies, [at_limit.clone(), at_limit], "both copies fetched at the recipient");
    net.stop().await;
}
