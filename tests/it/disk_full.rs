//! A full disk, for real: the node's data on a small tmpfs that the test fills up and then
//! frees or grows. What must hold: nothing is receipted that is not stored, no transaction is
//! left open on a pooled connection, no partial attachment is ever stored under its hash, and
//! the node recovers by itself when space returns.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use harness::network::{Database, NetOptions, NodeProcess, SignedDocument, TestNet, only, topology, wait_for};
use harness::tmpfs::Tmpfs;
use node::clerk_client::{ClerkClient, ClerkError};
use node::protocol::ErrorKind;
use node::storage::blobs::{BlobStore, ReceiveError};
use node::storage::{DocInsert, Store};
use pki::AgencyCode;
use pki::document::verify::VerifiedEnvelope;
use pki::document::{ReceiptKind, SignedReceipt, StatusCode};
use sqlx::Connection;

const TIEN_YEN: &str = "000.00.41.H49";
const PHONG_DU: &str = "000.01.41.H49";
const HA_LAU: &str = "000.02.41.H49";

fn code(s: &str) -> AgencyCode {
    s.parse().unwrap()
}

use crate::storage::new_document;

/// Records one document in its own transaction; Ok only when the COMMIT returned Ok.
async fn record(store: &Store, doc: &VerifiedEnvelope, at: i64) -> Result<(), String> {
    let mut tx = store.begin().await.map_err(|e| e.to_string())?;
    let id = match tx.insert_document(&new_document(doc, at)).await.map_err(|e| e.to_string())? {
        DocInsert::New(id) => id,
        other => return Err(format!("{} was {other:?}", doc.manifest().id())),
    };
    tx.inbox_add(id, at).await.map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())
}

/// The document ids in a SQLite database, read by a connection of its own, after checking
/// that no other connection holds the write lock (a transaction left open holds it forever).
async fn committed_ids(db: &std::path::Path) -> BTreeSet<String> {
    let url = format!("sqlite://{}?mode=rw", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("PRAGMA busy_timeout = 2000").execute(&mut conn).await.unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut conn).await.unwrap_or_else(|e| {
        panic!("another connection still holds the write lock of {} (a transaction left open): {e}", db.display())
    });
    let ids: Vec<(String,)> = sqlx::query_as("SELECT doc_id FROM documents").fetch_all(&mut conn).await.unwrap();
    sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    ids.into_iter().map(|(id,)| id).collect()
}

/// The SQLite store itself on a full disk: transactions fail (at a statement or at COMMIT)
/// while the disk is full; when space returns, every transaction commits for real, with no
/// restart. Before the fix, a pooled connection kept the failed transaction open (sqlx counted
/// it as still open after SQLite had rolled it back, so the next "transaction" on that
/// connection was a savepoint inside a stuck one): commits returned Ok, nothing was
/// committed, and the write lock was held forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_transactions_after_a_full_disk_commit_for_real() {
    harness::logging();
    let net =
        TestNet::prepare(only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU, HA_LAU]), NetOptions::default());
    let mut disk = Tmpfs::mount(4 << 20);
    let db = disk.path().join("node.db");
    let store = Store::open(&format!("sqlite://{}", db.display()), disk.path()).await.unwrap();
    let docs: Vec<SignedDocument> = (1..=120).map(|n| net.document(PHONG_DU, &[HA_LAU], n)).collect();
    let mut acknowledged = BTreeSet::new();
    let mut at = 0;
    for d in &docs[..10] {
        at += 1;
        record(&store, &net.verified(d), at).await.unwrap();
        acknowledged.insert(d.id.clone());
    }

    disk.fill();
    let mut refused = 0;
    for d in &docs[10..60] {
        at += 1;
        match record(&store, &net.verified(d), at).await {
            Ok(()) => {
                acknowledged.insert(d.id.clone());
            }
            Err(e) => {
                if refused == 0 {
                    eprintln!("first refusal: {e}");
                }
                refused += 1;
            }
        }
    }
    eprintln!("disk full: {refused} of 50 transactions refused");
    assert!(refused > 0, "the full disk refused nothing; the test proves nothing");

    disk.empty();
    for d in &docs[60..] {
        at += 1;
        record(&store, &net.verified(d), at).await.unwrap_or_else(|e| panic!("{} after space returned: {e}", d.id));
        acknowledged.insert(d.id.clone());
    }
    // Every acknowledged commit is visible to another connection, and nobody holds the lock.
    let seen = committed_ids(&db).await;
    let lost: Vec<&String> = acknowledged.difference(&seen).collect();
    assert!(lost.is_empty(), "{} committed documents are not in the database: {lost:?}", lost.len());
    store.close().await;
    // And they are still there after the pool closed (nothing was only in a stuck transaction).
    let seen = committed_ids(&db).await;
    assert!(acknowledged.is_subset(&seen), "documents lost when the pool closed");
    assert_eq!(seen.len(), acknowledged.len(), "a refused transaction left a document behind");
    drop(net);
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    pki::sha256(bytes)
}

/// Attachment writes on a full disk fail, and leave nothing under the hash. Before the fix a
/// small attachment (one write) was "received" with a 0-byte file: tokio's `File` parked the
/// write error and `sync_all` said Ok; the commit then stored the empty file under the hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachment_writes_on_a_full_disk_fail_and_store_nothing() {
    let mut disk = Tmpfs::mount(2 << 20);
    let store = BlobStore::open(&disk.path().join("blobs")).unwrap();
    disk.fill();
    for size in [20_000usize, 700_000] {
        let body: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let hash = sha256(&body);
        let received = store.receive("cv.pdf", &mut body.as_slice(), size as u64, &hash).await;
        let committed = match received {
            Ok(pending) => pending.commit().await,
            Err(ReceiveError::Store(e)) => Err(e),
            Err(other) => panic!("{size} bytes: not a storage error: {other}"),
        };
        let error = committed.expect_err("an attachment was stored on a full disk");
        assert!(error.is_disk_full(), "{size} bytes: not reported as a full disk: {error}");
        assert!(!store.path(&hash).exists(), "{size} bytes: a file is under the hash after a failed write");
    }
    assert_eq!(std::fs::read_dir(disk.path().join("blobs/tmp")).unwrap().count(), 0, "temporary files left");

    // With room again, the same bytes are stored whole; a 0-byte file found under the hash (as
    // the old write path left them in deployed stores) is replaced, not trusted.
    disk.empty();
    let body = b"%PDF-1.4 bytes that matter".to_vec();
    let hash = sha256(&body);
    std::fs::create_dir_all(store.path(&hash).parent().unwrap()).unwrap();
    std::fs::write(store.path(&hash), b"").unwrap();
    store.receive("cv.pdf", &mut body.as_slice(), body.len() as u64, &hash).await.unwrap().commit().await.unwrap();
    assert_eq!(std::fs::read(store.path(&hash)).unwrap(), body);
}

/// A document from `from` to `to` with one attachment of `size` bytes (distinct per number),
/// or none when `size` is 0.
fn document(net: &TestNet, from: &str, to: &str, number: u32, size: usize) -> SignedDocument {
    let base = net.document(from, &[to], number);
    let mut manifest = base.manifest.clone();
    if size == 0 {
        manifest.attachments.clear();
        return net.sign(manifest, Vec::new());
    }
    let body: Vec<u8> = (0..size).map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ number) as u8).collect();
    manifest.attachments[0].size = body.len() as u64;
    manifest.attachments[0].sha256 = sha256(&body);
    net.sign(manifest, vec![body])
}

/// What a node's `lienthong-node status` prints (as JSON), run beside its config.
fn status(net: &TestNet, code: &AgencyCode) -> Result<serde_json::Value, String> {
    let out = std::process::Command::new(harness::bin("lienthong-node"))
        .args(["status", "--json", "--config", "node.toml"])
        .current_dir(net.node_dir(code))
        .output()
        .unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn alerts(health: &serde_json::Value) -> Vec<String> {
    health["alerts"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect()
}

/// Hop receipts and statuses held by `store` for `doc`: (kind, by).
async fn receipts(store: &Store, doc: &SignedDocument) -> Vec<(ReceiptKind, AgencyCode)> {
    store
        .receipts_for(&doc.digest)
        .await
        .unwrap()
        .iter()
        .map(|r| SignedReceipt::from_bytes(&r.bytes).unwrap())
        .map(|r| (r.receipt.kind, r.receipt.by))
        .collect()
}

/// Every attachment of `doc` at `store` is there with all its bytes.
async fn check_attachments(store: &Store, doc: &SignedDocument, at: &str) {
    let stored = store.document_by_id(&doc.id).await.unwrap().unwrap_or_else(|| panic!("{} not at {at}", doc.id));
    let attachments = store.attachments(stored.id).await.unwrap();
    assert_eq!(attachments.len(), doc.bodies.len());
    for (a, body) in attachments.iter().zip(&doc.bodies) {
        let name = &a.attachment.name;
        let mut bytes = Vec::new();
        let mut reader = store.blobs().reader(a, 0, 64 * 1024).await.unwrap_or_else(|e| panic!("{name} at {at}: {e}"));
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut bytes).await.unwrap();
        assert!(bytes == *body, "{name} of {} at {at}: {} bytes stored, {} sent", doc.id, bytes.len(), body.len());
    }
}

/// No file in a blob store is shorter than its name says it should be: every file under a
/// hash hashes to it.
fn check_blob_store(blobs: &Path, at: &str) {
    let Ok(shards) = std::fs::read_dir(blobs) else { return };
    for shard in shards.flatten().filter(|e| e.file_name() != "tmp") {
        for file in std::fs::read_dir(shard.path()).unwrap().flatten() {
            let bytes = std::fs::read(file.path()).unwrap();
            assert_eq!(
                sha256(&bytes).iter().map(|b| format!("{b:02x}")).collect::<String>(),
                file.file_name().to_str().unwrap(),
                "{at}: {} holds {} bytes that are not its hash",
                file.path().display(),
                bytes.len()
            );
        }
    }
}

const FULL_DOCUMENTS: u32 = 20;
const ATTACHMENT: usize = 16 * 1024;
/// The recipient's attachments on SQLite: small, so that some still fit where the database's
/// commits (which grow the write-ahead log on the same disk) no longer do.
const SMALL_ATTACHMENT: usize = 2 * 1024;
/// What is left free on the recipient's disk: room for a few attachments and commits.
const NEARLY_FULL: u64 = 96 * 1024;

/// Health thresholds short enough for a test, and no free-space reserve (the real ENOSPC path).
const REAL_ENOSPC: &str = "[limits]\nmin_free_bytes = 0\n\n[health]\nbacklog_age = \"2s\"\nneighbour_down_after = \"2s\"\nstuck_after = \"30s\"\nstorage_error_window = \"1h\"\n";

/// The extra config of the disk-full tests: with `files`, every attachment is a file
/// (`limits.inline_attachment_bytes = 0`), else small ones are kept in the database. On
/// PostgreSQL the full disk holds only the attachment files (the database is elsewhere), so
/// there every attachment must be a file for the disk to be met at all.
fn enospc_config(database: Database, files: bool) -> String {
    let limits = match (database, files) {
        (Database::Sqlite, false) => REAL_ENOSPC.to_owned(),
        _ => REAL_ENOSPC.replacen("[limits]\n", "[limits]\ninline_attachment_bytes = 0\n", 1),
    };
    format!("{}{limits}", NetOptions::default().extra_config)
}

on_both_backends!(the_recipient_disk_full_loses_nothing, the_sender_disk_full_refuses_submissions_cleanly);

/// Issue 10: the receiving node's data on a small filesystem, filled up (SQLite: its database
/// and attachments; PostgreSQL: its attachments; every attachment a file here). Twenty documents sent while it is full are
/// refused with retryable errors, nothing is receipted that is not stored, `status` shows it;
/// after the filesystem grows (no restart) everything is delivered exactly once with every
/// receipt and every byte.
async fn the_recipient_disk_full_loses_nothing(database: Database) {
    harness::logging();
    let (sender_code, recipient_code) = (code(PHONG_DU), code(TIEN_YEN));
    let extra = enospc_config(database, true);
    let mut net = TestNet::prepare(
        only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]),
        NetOptions { database, extra_config: extra, ..NetOptions::default() },
    );
    let mut disk = Tmpfs::mount_at(&net.node_dir(&recipient_code).join("data"), 16 << 20);
    let mut processes: BTreeMap<AgencyCode, NodeProcess> = BTreeMap::new();
    for c in [recipient_code, sender_code] {
        processes.insert(c, net.spawn_process(&c));
    }
    let sender = net.wait_ready(PHONG_DU).await;
    let recipient = net.wait_ready(TIEN_YEN).await;

    // Three documents before the disk fills up, so the database has its working size.
    // On SQLite every other document has no attachment: only its database commit can fail.
    let size = |n: u32| match database {
        Database::Sqlite if n.is_multiple_of(2) => 0,
        Database::Sqlite => SMALL_ATTACHMENT,
        Database::Postgres => ATTACHMENT,
    };
    let (warm, full, sender_store) = fill_while_sending(&net, &sender, &recipient, TIEN_YEN, size, &mut disk).await;
    let hop = sender_store.outbox_by_hop(0, 0).await.unwrap().into_iter().find(|h| h.retrying > 0).unwrap();
    eprintln!(
        "while full: {} pending at the sender, {} retried; last error: {:?}",
        hop.pending, hop.retrying, hop.last_error
    );
    // Let the refusals go on for a while (several retries per document).
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Nothing was receipted that is not stored: every hop receipt the sender holds from the
    // recipient names a document the recipient has (its database read by another process).
    let recipient_store = net.open_store(&recipient_code).await;
    let mut receipted_while_full = 0;
    for d in &full {
        if receipts(&sender_store, d).await.iter().any(|(k, by)| *k == ReceiptKind::Hop && *by == recipient_code) {
            receipted_while_full += 1;
            check_attachments(&recipient_store, d, "the recipient (receipted while full)").await;
        }
    }
    eprintln!("while full: {receipted_while_full} of {FULL_DOCUMENTS} documents receipted (each stored whole)");
    assert!(receipted_while_full < FULL_DOCUMENTS, "the full disk refused nothing; the test proves nothing");

    // The operator sees it: `status` (another process, from the database and the disk) and the
    // running node's read-out.
    let read = status(&net, &recipient_code).expect("status while the disk is full");
    assert!(alerts(&read).iter().any(|a| a.starts_with("disk full")), "status: {:?}", alerts(&read));
    let live: serde_json::Value = serde_json::from_str(&recipient.health().await.unwrap()).unwrap();
    assert!(alerts(&live).iter().any(|a| a.contains("storage failures")), "health: {:?}", alerts(&live));
    let sender_health: serde_json::Value = serde_json::from_str(&sender.health().await.unwrap()).unwrap();
    assert!(alerts(&sender_health).iter().any(|a| a.starts_with("backlog")), "sender: {:?}", alerts(&sender_health));

    // Space returns: the filesystem grows under the running node.
    let grown = Instant::now();
    disk.resize(64 << 20);
    let all: Vec<&SignedDocument> = warm.iter().chain(&full).collect();
    wait_for("every document at the recipient", Duration::from_secs(60), || async {
        recipient.inbox(1000).await.unwrap().len() == all.len()
    })
    .await;
    wait_for("every receipt at the sender", Duration::from_secs(60), || async {
        for d in &all {
            let held = receipts(&sender_store, d).await;
            if !held.contains(&(ReceiptKind::Hop, recipient_code))
                || !held.contains(&(ReceiptKind::Status(StatusCode::Arrived), recipient_code))
            {
                return false;
            }
        }
        sender_store.queue_depths(0).await.unwrap().pending == 0
    })
    .await;
    let drained = grown.elapsed();
    // The failures stay visible in `status` once the database takes writes again.
    wait_for("the storage failures recorded", Duration::from_secs(20), || async {
        status(&net, &recipient_code).is_ok_and(|s| alerts(&s).iter().any(|a| a.contains("storage failures")))
    })
    .await;
    drop(processes);
    let log = std::fs::read_to_string(net.node_dir(&recipient_code).join("node.log")).unwrap();
    let failed = |what: &str| log.lines().filter(|l| l.contains("storage failure while") && l.contains(what)).count();
    eprintln!(
        "the recipient's storage failures: {} writing attachments, {} in the database",
        failed("attachment store"),
        failed("database")
    );

    // From the databases: each document once, with every byte, one hop receipt and one
    // delivery receipt each, nothing left in the outbox, nothing dead.
    let recipient_store = net.open_store(&recipient_code).await;
    let mut duplicated = 0;
    for d in &all {
        check_attachments(&recipient_store, d, "the recipient").await;
        let at_sender = receipts(&sender_store, d).await;
        let hops = at_sender.iter().filter(|r| **r == (ReceiptKind::Hop, recipient_code)).count();
        let arrived =
            at_sender.iter().filter(|r| **r == (ReceiptKind::Status(StatusCode::Arrived), recipient_code)).count();
        assert_eq!((hops, arrived), (1, 1), "{}: hop receipts and delivery receipts at the sender", d.id);
        let issued = receipts(&recipient_store, d).await;
        duplicated += issued.iter().filter(|r| **r == (ReceiptKind::Hop, recipient_code)).count() - 1;
    }
    assert_eq!(duplicated, 0, "a document was taken twice");
    let inbox = recipient_store.inbox(1000).await.unwrap();
    assert_eq!(inbox.len(), all.len());
    let depths = sender_store.queue_depths(0).await.unwrap();
    assert_eq!((depths.pending, depths.dead, depths.refused), (0, 0, 0), "sender's outbox: {depths:?}");
    check_blob_store(&disk.path().join("blobs"), "the recipient");
    eprintln!(
        "recipient disk full ({}): sent {}, delivered {}, duplicated {duplicated}, lost {}; drained {:.1} s after space returned",
        database_name(database),
        all.len(),
        inbox.len(),
        all.len() - inbox.len(),
        drained.as_secs_f64()
    );
    recipient_store.close().await;
    sender_store.close().await;
}

/// Phong Dụ's clerk sends three documents to `to` and waits until `recipient` (the node of
/// `to`) has them, so that the full node's database has its working size; then `disk` is
/// filled nearly (a few attachments still fit, and then the database's commits fail too),
/// `FULL_DOCUMENTS` more are sent, and Phong Dụ's transfers are seen refused with retryable
/// errors that say why. The documents before and while full, and Phong Dụ's store.
async fn fill_while_sending(
    net: &TestNet,
    sender: &ClerkClient,
    recipient: &ClerkClient,
    to: &str,
    size: impl Fn(u32) -> usize,
    disk: &mut Tmpfs,
) -> (Vec<SignedDocument>, Vec<SignedDocument>, Store) {
    let warm: Vec<SignedDocument> = (1..=3).map(|n| document(net, PHONG_DU, to, n, size(n))).collect();
    for d in &warm {
        d.submit(sender).await.unwrap();
    }
    wait_for("the first documents", Duration::from_secs(30), || async {
        recipient.inbox(100).await.unwrap().len() == warm.len()
    })
    .await;
    disk.fill_leaving(NEARLY_FULL);
    let full: Vec<SignedDocument> =
        (100..100 + FULL_DOCUMENTS).map(|n| document(net, PHONG_DU, to, n, size(n))).collect();
    for d in &full {
        d.submit(sender).await.unwrap();
    }
    let sender_store = net.open_store(&code(PHONG_DU)).await;
    wait_for("retryable refusals at Phong Dụ", Duration::from_secs(30), || async {
        let hops = sender_store.outbox_by_hop(0, 0).await.unwrap();
        hops.iter().any(|h| {
            h.retrying > 0 && h.last_error.as_deref().is_some_and(|e| e.contains("cannot store documents now"))
        })
    })
    .await;
    (warm, full, sender_store)
}

fn database_name(database: Database) -> &'static str {
    match database {
        Database::Sqlite => "SQLite",
        Database::Postgres => "PostgreSQL",
    }
}

/// The sending node's disk full: every submission is refused with a clear, retryable error and
/// nothing is kept (no document, no partial attachment under its hash; on SQLite the small
/// attachments go into the database, whose commits fail); once the filesystem
/// grows, the same documents are submitted again and delivered with every byte.
async fn the_sender_disk_full_refuses_submissions_cleanly(database: Database) {
    harness::logging();
    let (sender_code, recipient_code) = (code(PHONG_DU), code(TIEN_YEN));
    let extra = enospc_config(database, false);
    let mut net = TestNet::prepare(
        only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]),
        NetOptions { database, extra_config: extra, ..NetOptions::default() },
    );
    let mut disk = Tmpfs::mount_at(&net.node_dir(&sender_code).join("data"), 16 << 20);
    let mut processes: BTreeMap<AgencyCode, NodeProcess> = BTreeMap::new();
    for c in [recipient_code, sender_code] {
        processes.insert(c, net.spawn_process(&c));
    }
    let sender = net.wait_ready(PHONG_DU).await;
    let recipient = net.wait_ready(TIEN_YEN).await;
    let first = document(&net, PHONG_DU, TIEN_YEN, 1, ATTACHMENT);
    first.submit(&sender).await.unwrap();

    disk.fill();
    let docs: Vec<SignedDocument> =
        (100..100 + FULL_DOCUMENTS).map(|n| document(&net, PHONG_DU, TIEN_YEN, n, ATTACHMENT)).collect();
    let mut refused = 0;
    let mut taken = Vec::new();
    for d in &docs {
        match d.submit(&sender).await {
            Err(ClerkError::Refused { kind: ErrorKind::Unavailable, message }) => {
                assert!(
                    message.contains("cannot store documents now") && message.contains("send again later"),
                    "unclear refusal: {message}"
                );
                if refused == 0 {
                    eprintln!("the clerk is told: {message}");
                }
                refused += 1;
            }
            Err(e) => panic!("{}: not a retryable refusal: {e}", d.id),
            Ok(_) => taken.push(d),
        }
    }
    eprintln!("sender disk full: {refused} of {FULL_DOCUMENTS} submissions refused, {} taken", taken.len());
    assert!(refused > 0, "the full disk refused nothing; the test proves nothing");
    // What was refused is not there, and no blob under any hash is short.
    let sender_store = net.open_store(&sender_code).await;
    for d in &docs {
        if !taken.iter().any(|t| t.id == d.id) {
            assert!(sender_store.document_by_id(&d.id).await.unwrap().is_none(), "{} refused but stored", d.id);
        }
    }
    check_blob_store(&disk.path().join("blobs"), "the sender while full");
    let read = status(&net, &sender_code).expect("status while the disk is full");
    assert!(alerts(&read).iter().any(|a| a.starts_with("disk full")), "status: {:?}", alerts(&read));

    // Space returns; the clerk sends the refused documents again (the same signed bytes).
    let grown = Instant::now();
    disk.resize(64 << 20);
    for d in &docs {
        d.submit(&sender).await.unwrap_or_else(|e| panic!("{} after space returned: {e}", d.id));
    }
    let all: Vec<&SignedDocument> = std::iter::once(&first).chain(&docs).collect();
    wait_for("every document at the recipient", Duration::from_secs(60), || async {
        recipient.inbox(1000).await.unwrap().len() == all.len()
    })
    .await;
    let drained = grown.elapsed();
    drop(processes);
    let recipient_store = net.open_store(&recipient_code).await;
    for d in &all {
        check_attachments(&sender_store, d, "the sender").await;
        check_attachments(&recipient_store, d, "the recipient").await;
    }
    check_blob_store(&disk.path().join("blobs"), "the sender");
    eprintln!(
        "sender disk full ({}): sent {}, delivered {}, lost 0; delivered {:.1} s after space returned",
        database_name(database),
        all.len(),
        recipient_store.inbox(1000).await.unwrap().len(),
        drained.as_secs_f64()
    );
    recipient_store.close().await;
    sender_store.close().await;
}

/// A node in the middle (Tiên Yên, between Phong Dụ and Hà Lâu) passes a document it takes
/// from a neighbour on while it commits it (`outbound::cut_through`). Here its disk fills up:
/// its commits fail after the documents have gone on, so Hà Lâu holds documents Tiên Yên never
/// took, and Phong Dụ, which got no hop receipt, keeps sending them. When space returns, Tiên
/// Yên takes them, passes them on again, and Hà Lâu answers from its storage with the hop
/// receipt it gave the first time: each document once at Hà Lâu, each hop receipt once at the
/// node it is addressed to, every delivery receipt back at Phong Dụ, both outboxes empty.
///
/// SQLite only: a commit fails after the send only where the database itself is on the full
/// disk. On PostgreSQL the full disk holds the attachment files, which are written before the
/// document is passed on (their failure refuses it before anything leaves).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_passed_on_before_a_failed_commit_is_delivered_once() {
    harness::logging();
    let (sender_code, middle_code, recipient_code) = (code(PHONG_DU), code(TIEN_YEN), code(HA_LAU));
    let extra = enospc_config(Database::Sqlite, false);
    let mut net = TestNet::prepare(
        only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU, HA_LAU]),
        NetOptions { database: Database::Sqlite, extra_config: extra, ..NetOptions::default() },
    );
    let mut disk = Tmpfs::mount_at(&net.node_dir(&middle_code).join("data"), 16 << 20);
    let mut processes: BTreeMap<AgencyCode, NodeProcess> = BTreeMap::new();
    for c in [recipient_code, middle_code, sender_code] {
        processes.insert(c, net.spawn_process(&c));
    }
    let sender = net.wait_ready(PHONG_DU).await;
    let recipient = net.wait_ready(HA_LAU).await;
    net.wait_ready(TIEN_YEN).await;
    // Every other document without an attachment: only its database commit can fail.
    let size = |n: u32| if n.is_multiple_of(2) { 0 } else { SMALL_ATTACHMENT };
    let (warm, full, sender_store) = fill_while_sending(&net, &sender, &recipient, HA_LAU, size, &mut disk).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Hà Lâu has documents Tiên Yên could not store: passed on before their commit failed.
    let (middle_store, recipient_store) = (net.open_store(&middle_code).await, net.open_store(&recipient_code).await);
    let mut ahead = 0;
    for d in &full {
        let at_middle = middle_store.document_by_id(&d.id).await.unwrap().is_some();
        if !at_middle && recipient_store.document_by_id(&d.id).await.unwrap().is_some() {
            ahead += 1;
        }
    }
    eprintln!("while Tiên Yên's disk is full: {ahead} of {FULL_DOCUMENTS} documents at Hà Lâu and not at Tiên Yên");
    assert!(ahead > 0, "no document went on before a failed commit; the test proves nothing");
    middle_store.close().await;
    recipient_store.close().await;

    let grown = Instant::now();
    disk.resize(64 << 20);
    let all: Vec<&SignedDocument> = warm.iter().chain(&full).collect();
    wait_for("every receipt", Duration::from_secs(90), || async {
        for d in &all {
            let held = receipts(&sender_store, d).await;
            if !held.contains(&(ReceiptKind::Hop, middle_code))
                || !held.contains(&(ReceiptKind::Status(StatusCode::Arrived), recipient_code))
            {
                return false;
            }
        }
        sender_store.queue_depths(0).await.unwrap().pending == 0
    })
    .await;
    let drained = grown.elapsed();
    let middle_store = net.open_store(&middle_code).await;
    wait_for("Tiên Yên's outbox empty", Duration::from_secs(60), || async {
        middle_store.queue_depths(0).await.unwrap().pending == 0
    })
    .await;
    drop(processes);
    let recipient_store = net.open_store(&recipient_code).await;
    for d in &all {
        check_attachments(&middle_store, d, "Tiên Yên").await;
        check_attachments(&recipient_store, d, "Hà Lâu").await;
        let count =
            |held: &[(ReceiptKind, AgencyCode)], r: (ReceiptKind, AgencyCode)| held.iter().filter(|x| **x == r).count();
        let at_sender = receipts(&sender_store, d).await;
        let at_middle = receipts(&middle_store, d).await;
        let at_recipient = receipts(&recipient_store, d).await;
        assert_eq!(count(&at_sender, (ReceiptKind::Hop, middle_code)), 1, "{}: Tiên Yên's hop receipt", d.id);
        assert_eq!(count(&at_middle, (ReceiptKind::Hop, recipient_code)), 1, "{}: Hà Lâu's hop receipt", d.id);
        assert_eq!(count(&at_recipient, (ReceiptKind::Hop, recipient_code)), 1, "{}: taken twice at Hà Lâu", d.id);
        let arrived = (ReceiptKind::Status(StatusCode::Arrived), recipient_code);
        assert_eq!(count(&at_sender, arrived), 1, "{}: the delivery receipt at Phong Dụ", d.id);
        // Delivered, whichever came back first: the delivery receipt or the hop receipt.
        let row = sender_store.document_by_id(&d.id).await.unwrap().unwrap();
        let routes = sender_store.routes(row.id).await.unwrap();
        assert!(routes.iter().all(|(_, _, state)| state == "delivered"), "{}: routes at Phong Dụ {routes:?}", d.id);
    }
    let inbox = recipient_store.inbox(1000).await.unwrap();
    assert_eq!(inbox.len(), all.len(), "each document once at Hà Lâu");
    for store in [&sender_store, &middle_store] {
        let depths = store.queue_depths(0).await.unwrap();
        assert_eq!((depths.pending, depths.dead, depths.refused), (0, 0, 0), "outbox: {depths:?}");
    }
    eprintln!(
        "middle disk full: sent {}, delivered {}, {ahead} ahead of a failed commit; drained {:.1} s after space returned",
        all.len(),
        inbox.len(),
        drained.as_secs_f64()
    );
    recipient_store.close().await;
    middle_store.close().await;
    sender_store.close().await;
}
