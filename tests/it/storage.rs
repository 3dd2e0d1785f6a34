//! The storage suite: the node's `Store` on SQLite and on PostgreSQL, the same tests on both
//! (`NAME::sqlite`, `NAME::postgres`). Concurrency is real: several transactions race on one
//! database, and on PostgreSQL several stores stand for several node processes.

use std::sync::Arc;

use harness::network::{Database, NetOptions, SignedDocument, TestNet, only, topology};
use node::config::Config;
use node::storage::{DocInsert, Leased, NewDocument, NewRoute, NewTransfer, Store, TransferKind};
use pki::AgencyCode;
use pki::document::verify::VerifiedEnvelope;
use pki::document::{ReceiptKind, SignedReceipt, StatusCode};

const TIEN_YEN: &str = "000.00.41.H49";
const PHONG_DU: &str = "000.01.41.H49";
const HA_LAU: &str = "000.02.41.H49";

fn code(s: &str) -> AgencyCode {
    s.parse().unwrap()
}

/// A test network (for its PKI and database) and Tiên Yên's store, opened as its node would.
async fn open(database: Database) -> (TestNet, Arc<Store>) {
    let net = TestNet::prepare(
        only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU, HA_LAU]),
        NetOptions { database, ..NetOptions::default() },
    );
    let store = open_again(&net).await;
    (net, store)
}

/// Another store on Tiên Yên's database: what a second node process would open.
async fn open_again(net: &TestNet) -> Arc<Store> {
    Arc::new(net.open_store(&code(TIEN_YEN)).await)
}

/// A verified document to record, as a node records what it took from Phong Dụ.
pub(crate) fn new_document(doc: &VerifiedEnvelope, at: i64) -> NewDocument<'_> {
    NewDocument {
        document: doc,
        received_from: PHONG_DU,
        received_at: at,
        provisional: false,
        outgoing: false,
        inline: &[],
    }
}

/// A receipt signed by `by`'s seal.
fn receipt(net: &TestNet, kind: ReceiptKind, doc: &SignedDocument, by: &str, to: &str, rcpt: &[&str]) -> SignedReceipt {
    net.receipt(kind, doc, by, to, rcpt)
}

on_both_backends!(
    a_document_is_stored_once_per_envelope,
    racing_deliveries_store_one_document,
    receipts_are_stored_once,
    the_outbox_deduplicates_retries_and_dead_letters,
    a_second_process_never_sends_the_same_transfer,
    only_newer_crls_replace_older_ones,
    counters_add_up_under_concurrency,
    a_documents_rows_go_in_multi_row_statements_past_the_parameter_limit,
    the_outbox_leaves_out_the_transfers_running_here,
    a_handed_over_transfer_is_left_to_the_process_that_claimed_it,
    concurrent_writes_are_each_visible_when_their_commit_returns,
    a_write_dropped_halfway_leaves_the_others_in_its_batch,
    a_write_cancelled_while_it_holds_the_writer_blocks_nobody,
    a_write_whose_statement_fails_fails_alone,
    a_receipts_notice_is_queued_once_by_digest_or_by_id,
    a_new_documents_unanswered_rows_are_read_back_and_kept_with_their_transaction,
    a_routes_state_is_the_furthest_of_its_changes_in_any_order,
    answers_recorded_together_take_one_statement_a_table,
    a_new_inbox_entry_is_marked_by_the_revocation_that_overtook_it,
    documents_taken_together_take_one_statement_a_table,
);

async fn a_document_is_stored_once_per_envelope(database: Database) {
    let (net, store) = open(database).await;
    let doc = net.document(PHONG_DU, &[HA_LAU], 1);

    let mut tx = store.begin().await.unwrap();
    let DocInsert::New(id) = tx.insert_document(&new_document(&net.verified(&doc), 1)).await.unwrap() else {
        panic!("first insert is not new")
    };
    assert!(tx.add_route(id, &code(HA_LAU), Some(&code(HA_LAU)), "pending", 1).await.unwrap());
    tx.commit().await.unwrap();

    // The same envelope again is recognised; the same document id with another envelope (the
    // same manifest signed again) is a conflict.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.insert_document(&new_document(&net.verified(&doc), 2)).await.unwrap(), DocInsert::Existing(id));
    assert!(!tx.add_route(id, &code(HA_LAU), Some(&code(HA_LAU)), "pending", 2).await.unwrap());
    let resigned = net.sign(doc.manifest.clone(), doc.bodies.clone());
    assert_ne!(resigned.digest, doc.digest);
    assert_eq!(tx.insert_document(&new_document(&net.verified(&resigned), 2)).await.unwrap(), DocInsert::Conflict);
    tx.commit().await.unwrap();

    let stored = store.document_by_id(&doc.id).await.unwrap().unwrap();
    assert_eq!((stored.id, stored.digest, stored.envelope.as_slice()), (id, doc.digest, doc.envelope.as_slice()));
    assert_eq!(stored.recipients, vec![code(HA_LAU)]);
    let attachments = store.attachments(id).await.unwrap();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].attachment.sha256, doc.manifest.attachments[0].sha256);

    // A transaction dropped without commit leaves nothing behind.
    let other = net.document(PHONG_DU, &[HA_LAU], 2);
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(tx.insert_document(&new_document(&net.verified(&other), 3)).await.unwrap(), DocInsert::New(_)));
    drop(tx);
    assert!(store.document_by_id(&other.id).await.unwrap().is_none());

    // The inbox holds a document once.
    let mut tx = store.begin().await.unwrap();
    assert!(tx.inbox_add(id, 4).await.unwrap());
    assert!(!tx.inbox_add(id, 5).await.unwrap());
    tx.inbox_status(id, 3, 6).await.unwrap();
    tx.commit().await.unwrap();
    let inbox = store.inbox(10).await.unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!((inbox[0].document.as_str(), inbox[0].status), (doc.id.as_str(), Some(3)));
    assert_eq!(inbox[0].subject, doc.manifest.subject);
    store.close().await;
}

async fn racing_deliveries_store_one_document(database: Database) {
    let (net, store) = open(database).await;
    // Two stores: on PostgreSQL, two node processes racing; on SQLite, one process's
    // connections.
    let second = open_again(&net).await;
    let doc = Arc::new(net.verified(&net.document(PHONG_DU, &[HA_LAU], 7)));
    let mut racers = Vec::new();
    for i in 0..8i64 {
        let store = if i % 2 == 0 { store.clone() } else { second.clone() };
        let doc = doc.clone();
        racers.push(tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            let inserted = tx.insert_document(&new_document(&doc, i)).await.unwrap();
            let id = match inserted {
                DocInsert::New(id) | DocInsert::Existing(id) => id,
                DocInsert::Conflict => panic!("the same envelope is not a conflict"),
            };
            let routed = tx.add_route(id, &code(HA_LAU), None, "delivered", i).await.unwrap();
            tx.enqueue(TransferKind::Document(id), &code(HA_LAU), &[code(HA_LAU)], i).await.unwrap();
            let boxed = tx.inbox_add(id, i).await.unwrap();
            tx.commit().await.unwrap();
            (matches!(inserted, DocInsert::New(_)), routed, boxed)
        }));
    }
    let mut outcomes = Vec::new();
    for r in racers {
        outcomes.push(r.await.unwrap());
    }
    let count = |f: fn(&(bool, bool, bool)) -> bool| outcomes.iter().filter(|o| f(o)).count();
    assert_eq!(count(|o| o.0), 1, "exactly one racer stores the document: {outcomes:?}");
    assert_eq!(count(|o| o.1), 1, "exactly one racer routes it: {outcomes:?}");
    assert_eq!(count(|o| o.2), 1, "exactly one racer puts it in the inbox: {outcomes:?}");
    let queued = store.claim_due("a", 1000, 31_000, 10).await.unwrap();
    assert_eq!(queued.len(), 1, "the racers queued one transfer: {queued:?}");
    second.close().await;
    store.close().await;
}

async fn receipts_are_stored_once(database: Database) {
    let (net, store) = open(database).await;
    let second = open_again(&net).await;
    let doc = net.document(PHONG_DU, &[HA_LAU, TIEN_YEN], 3);
    let hop = Arc::new(receipt(&net, ReceiptKind::Hop, &doc, TIEN_YEN, PHONG_DU, &[HA_LAU, TIEN_YEN]));

    let mut racers = Vec::new();
    for i in 0..8i64 {
        let store = if i % 2 == 0 { store.clone() } else { second.clone() };
        let hop = hop.clone();
        racers.push(tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            let (id, new) = tx.insert_receipt(&hop, PHONG_DU, i).await.unwrap();
            tx.commit().await.unwrap();
            (id, new)
        }));
    }
    let mut outcomes = Vec::new();
    for r in racers {
        outcomes.push(r.await.unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| o.1).count(), 1, "one racer stores the receipt: {outcomes:?}");
    assert!(outcomes.iter().all(|o| o.0 == outcomes[0].0), "every racer sees the same row: {outcomes:?}");
    let held = store.receipts_for(&doc.digest).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].bytes, hop.as_bytes());

    // What a retried delivery is answered with: the receipt covering its recipients.
    let (by, to) = (code(TIEN_YEN), code(PHONG_DU));
    let covered = store.hop_receipt_covering(&doc.digest, &by, &to, &[code(HA_LAU)]).await.unwrap();
    assert_eq!(covered.as_deref(), Some(hop.as_bytes()));
    assert!(store.hop_receipt_covering(&doc.digest, &by, &to, &[code(PHONG_DU)]).await.unwrap().is_none());
    assert!(store.hop_receipt_covering(&doc.digest, &to, &by, &[code(HA_LAU)]).await.unwrap().is_none());

    // Statuses are found by who, to whom and which.
    let accepted = receipt(&net, ReceiptKind::Status(StatusCode::Accepted), &doc, HA_LAU, PHONG_DU, &[HA_LAU]);
    let mut tx = store.begin().await.unwrap();
    let (id, new) = tx.insert_receipt(&accepted, TIEN_YEN, 9).await.unwrap();
    assert!(new);
    tx.commit().await.unwrap();
    assert!(store.status_held(&doc.digest, &code(HA_LAU), &code(PHONG_DU), 3).await.unwrap());
    assert!(!store.status_held(&doc.digest, &code(HA_LAU), &code(PHONG_DU), 4).await.unwrap());
    assert_eq!(store.receipt(id).await.unwrap().bytes, accepted.as_bytes());
    assert_eq!(store.receipts_for(&doc.digest).await.unwrap().len(), 2);
    // A batch of notices reads its receipts at once; an id with no row is left out.
    let mut batch = store.receipts(&[id, outcomes[0].0, id + 1_000]).await.unwrap();
    batch.sort_by_key(|r| r.id);
    let mut want = vec![(id, accepted.as_bytes().to_vec()), (outcomes[0].0, hop.as_bytes().to_vec())];
    want.sort();
    assert_eq!(batch.into_iter().map(|r| (r.id, r.bytes)).collect::<Vec<_>>(), want);
    second.close().await;
    store.close().await;
}

async fn the_outbox_deduplicates_retries_and_dead_letters(database: Database) {
    let (net, store) = open(database).await;
    let doc = net.document(PHONG_DU, &[HA_LAU, TIEN_YEN], 4);
    let mut tx = store.begin().await.unwrap();
    let DocInsert::New(id) = tx.insert_document(&new_document(&net.verified(&doc), 0)).await.unwrap() else { panic!() };
    let (hop, rcpt) = (code(HA_LAU), [code(HA_LAU)]);
    tx.enqueue(TransferKind::Document(id), &hop, &rcpt, 1000).await.unwrap();
    // A replayed hand-over is the same transfer (counted by the claims below).
    tx.enqueue(TransferKind::Document(id), &hop, &rcpt, 1001).await.unwrap();
    // The same document for other recipients behind the same hop is another transfer.
    tx.enqueue(TransferKind::Document(id), &hop, &[code(TIEN_YEN)], 1000).await.unwrap();
    tx.commit().await.unwrap();

    assert!(store.claim_due("a", 999, 31_000, 10).await.unwrap().is_empty(), "nothing is due before its time");
    assert_eq!(store.next_due(Leased::Outbox, 999).await.unwrap(), Some(1000));
    let claimed = store.claim_due("a", 1000, 31_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|t| t.kind == TransferKind::Document(id) && t.next_hop == hop && t.attempts == 0));
    let (first, second) = (claimed[0].id, claimed[1].id);

    // A failure backs off; a finished transfer stays finished.
    let mut tx = store.begin().await.unwrap();
    assert!(tx.fail_transfer(first, "a", "Hà Lâu did not answer", 5000, false, true).await.unwrap());
    // Finished with others at once (a batch of notices): an id with no transfer counts for nothing.
    assert_eq!(tx.finish_transfers(&[second, first + second + 1], "a", "done", 1100).await.unwrap(), 1);
    assert!(!tx.finish_transfer(second, "a", "done", 1200).await.unwrap(), "finished twice");
    assert_eq!(tx.finish_transfers(&[second], "a", "done", 1200).await.unwrap(), 0, "finished twice");
    tx.commit().await.unwrap();
    let depths = store.queue_depths(2000).await.unwrap();
    assert_eq!((depths.pending, depths.retrying, depths.done, depths.dead), (1, 1, 1, 0));
    assert_eq!(depths.oldest_pending_seconds, 1);
    assert!(store.claim_due("a", 4999, 35_000, 10).await.unwrap().is_empty(), "backing off");
    let again = store.claim_due("a", 5000, 35_000, 10).await.unwrap();
    assert_eq!((again.len(), again[0].id, again[0].attempts), (1, first, 1));

    // After the policy's attempts it is dead-lettered, and the operator sees why.
    let mut tx = store.begin().await.unwrap();
    assert!(tx.fail_transfer(first, "a", "Hà Lâu refused the connection", 9000, true, true).await.unwrap());
    tx.commit().await.unwrap();
    assert!(store.claim_due("a", 100_000, 130_000, 10).await.unwrap().is_empty());
    let depths = store.queue_depths(100_000).await.unwrap();
    assert_eq!((depths.pending, depths.dead, depths.done), (0, 1, 1));
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead, vec![(first, doc.id.clone(), HA_LAU.to_owned(), "Hà Lâu refused the connection".to_owned())]);
    store.close().await;
}

/// Two processes must never both send a transfer. On PostgreSQL two stores claim disjoint
/// work under leases, an expired lease passes to the other, and the first's late answer is
/// ignored. On SQLite a second node process on the same data is refused at start.
async fn a_second_process_never_sends_the_same_transfer(database: Database) {
    let (mut net, store) = open(database).await;
    match database {
        Database::Sqlite => {
            net.start_node(&code(TIEN_YEN)).await;
            let config = Config::load(&net.config_path(&code(TIEN_YEN))).unwrap();
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let refused = node::Node::start(config, socket).await.expect_err("a second process started");
            assert!(
                refused.to_string().contains("another lienthong-node is already running"),
                "unexpected error: {refused}"
            );
            net.stop().await;
        }
        Database::Postgres => {
            let other = open_again(&net).await;
            let doc = net.document(PHONG_DU, &[HA_LAU], 5);
            let mut tx = store.begin().await.unwrap();
            let DocInsert::New(id) = tx.insert_document(&new_document(&net.verified(&doc), 0)).await.unwrap() else {
                panic!()
            };
            for r in [HA_LAU, TIEN_YEN, PHONG_DU] {
                tx.enqueue(TransferKind::Document(id), &code(HA_LAU), &[code(r)], 0).await.unwrap();
            }
            tx.commit().await.unwrap();

            let a = store.claim_due("a", 10, 1000, 2).await.unwrap();
            let b = other.claim_due("b", 10, 1000, 10).await.unwrap();
            assert_eq!((a.len(), b.len()), (2, 1), "claims are disjoint");
            assert!(a.iter().all(|t| t.id != b[0].id));
            assert!(other.claim_due("b", 500, 1500, 10).await.unwrap().is_empty(), "a's claims hold");

            // a renews one claim; the other runs out and b takes it over.
            let (kept, lapsed) = (a[0].id, a[1].id);
            assert_eq!(store.renew_leases(Leased::Outbox, "a", &[kept], 3000).await.unwrap(), 1);
            assert_eq!(other.renew_leases(Leased::Outbox, "b", &[b[0].id], 3000).await.unwrap(), 1);
            let taken = other.claim_due("b", 1001, 4000, 10).await.unwrap();
            assert_eq!(taken.iter().map(|t| t.id).collect::<Vec<_>>(), vec![lapsed]);
            assert_eq!(store.renew_leases(Leased::Outbox, "a", &[lapsed], 5000).await.unwrap(), 0, "a lost that claim");
            let mut tx = store.begin().await.unwrap();
            assert!(
                !tx.finish_transfer(lapsed, "a", "done", 1100).await.unwrap(),
                "a's late answer counts for nothing"
            );
            // Finishing several at once (a batch of notices) finishes only those still held.
            assert_eq!(tx.finish_transfers(&[lapsed, kept], "a", "done", 1100).await.unwrap(), 1);
            tx.commit().await.unwrap();
            let mut tx = other.begin().await.unwrap();
            assert!(tx.finish_transfer(lapsed, "b", "done", 1200).await.unwrap());
            assert!(!tx.fail_transfer(kept, "b", "not b's", 2000, false, true).await.unwrap());
            tx.commit().await.unwrap();
            let depths = store.queue_depths(2000).await.unwrap();
            assert_eq!((depths.pending, depths.done), (1, 2));

            // A restarted process frees what its previous run held, and only that.
            let last = b[0].id;
            assert_eq!(other.claim_due("h@a/127.0.0.1:10/1-f", 5000, 9000, 10).await.unwrap()[0].id, last);
            other.release_leases(Some("h@a/127.0.0.1:1")).await.unwrap();
            assert!(store.claim_due("c", 5001, 9000, 10).await.unwrap().is_empty(), "another instance's claim holds");
            other.release_leases(Some("h@a/127.0.0.1:10")).await.unwrap();
            assert_eq!(store.claim_due("c", 5001, 9000, 10).await.unwrap()[0].id, last);
            other.close().await;
        }
    }
    store.close().await;
}

async fn only_newer_crls_replace_older_ones(database: Database) {
    let (mut net, store) = open(database).await;
    let t0 = time::OffsetDateTime::now_utc();
    let older = net.pki.crls(t0).unwrap().remove(0);
    let newer = net.pki.crls(t0 + time::Duration::minutes(5)).unwrap().remove(0);
    let same_second = net.pki.crls(t0 + time::Duration::minutes(5)).unwrap().remove(0);
    assert_eq!(older.issuer, newer.issuer);

    let mut tx = store.begin().await.unwrap();
    assert!(tx.store_crl(&older, 1).await.unwrap());
    assert!(!tx.store_crl(&older, 2).await.unwrap(), "the same CRL again");
    assert!(tx.store_crl(&newer, 3).await.unwrap());
    assert!(!tx.store_crl(&older, 4).await.unwrap(), "an older CRL never replaces a newer one");
    assert!(tx.store_crl(&same_second, 5).await.unwrap(), "same thisUpdate, higher cRLNumber");
    tx.commit().await.unwrap();
    let held = store.crls().await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].der(), same_second.der());
    store.close().await;
}

async fn counters_add_up_under_concurrency(database: Database) {
    let (net, store) = open(database).await;
    let second = open_again(&net).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { store.clone() } else { second.clone() };
        tasks.push(tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            tx.count("deliveries", 1).await.unwrap();
            tx.count("refusals", 2).await.unwrap();
            tx.commit().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.counters().await.unwrap(), vec![("deliveries".to_owned(), 20), ("refusals".to_owned(), 40)]);
    second.close().await;
    store.close().await;
}

/// A document's attachments, routes and route states are written with multi-row statements,
/// split where a statement would bind more than `MAX_BINDS` (999) parameters: the most
/// attachments a manifest may list (64, one statement: 199 would fit), 1,000 routes (332 per
/// statement) and their states (996 per statement) all land, in order, each once; a route
/// already recorded is not reported new.
async fn a_documents_rows_go_in_multi_row_statements_past_the_parameter_limit(database: Database) {
    let (net, store) = open(database).await;
    let doc = net.document(PHONG_DU, &[HA_LAU], 1);
    let mut manifest = doc.manifest.clone();
    let template = manifest.attachments.first().cloned().expect("the test document has an attachment");
    manifest.attachments = (0..pki::document::manifest::MAX_ATTACHMENTS as u32)
        .map(|i| {
            let mut a = template.clone();
            a.name = format!("phu-luc-{i:03}.pdf");
            a.size = u64::from(i) + 1;
            a.sha256 = pki::sha256(&i.to_be_bytes());
            a
        })
        .collect();
    let doc = net.verified(&net.sign(manifest.clone(), Vec::new()));
    let mut tx = store.begin().await.unwrap();
    let id = match tx.insert_document(&new_document(&doc, 1)).await.unwrap() {
        DocInsert::New(id) => id,
        other => panic!("{other:?}"),
    };
    let recipients: Vec<AgencyCode> =
        (0..1000).map(|i| code(&format!("{:03}.{:02}.41.H49", i / 99, i % 99 + 1))).collect();
    let hop = code(PHONG_DU);
    let route = |r| NewRoute { recipient: r, next_hop: Some(&hop), state: "pending" };
    // The new document's first routes unanswered (on PostgreSQL, kept: two statements' worth
    // with the 64 attachments', in one statement), then every route asked after.
    let first: Vec<NewRoute> = recipients[..500].iter().map(route).collect();
    assert_eq!(tx.add_routes_of_new(id, &first, 2).await.unwrap(), recipients[..500]);
    let all: Vec<NewRoute> = recipients.iter().map(route).collect();
    assert_eq!(tx.add_routes(id, &all, 3).await.unwrap(), recipients[500..], "only the routes not recorded before");
    tx.set_route_state(id, &recipients[..3], "refused", 4).await.unwrap();
    tx.set_route_state(id, &recipients[3..], "delivered", 4).await.unwrap();
    tx.commit().await.unwrap();

    let stored: Vec<_> = store.attachments(id).await.unwrap().into_iter().map(|a| a.attachment).collect();
    assert_eq!(stored, manifest.attachments, "every attachment, in manifest order");
    let routes = store.routes(id).await.unwrap();
    assert_eq!(routes.len(), 1000);
    for (i, (recipient, next_hop, state)) in routes.iter().enumerate() {
        assert_eq!(recipient, &recipients[i].to_string());
        assert_eq!(next_hop.as_deref(), Some(PHONG_DU));
        assert_eq!(state, if i < 3 { "refused" } else { "delivered" }, "{recipient}");
    }
}

/// A wake-up of the outbox reads only transfers not already running in this process: those
/// running are left out of the claim (on SQLite a claim is a plain read, so before they came
/// back first on every wake-up) and out of the next due time (which otherwise stays "now"
/// while they run). The claim tells when the next row falls due (on SQLite its own read, on
/// PostgreSQL a read in its transaction), so the outbox need not ask again: "unknown" when a
/// due row was left for lack of room (then the outbox asks), the time of the first row not
/// due yet, or nothing left.
async fn the_outbox_leaves_out_the_transfers_running_here(database: Database) {
    use node::storage::NextDue;
    let (net, store) = open(database).await;
    let sqlite = store.backend() == node::storage::Backend::Sqlite;
    let doc = net.document(PHONG_DU, &[HA_LAU, TIEN_YEN], 4);
    let mut tx = store.begin().await.unwrap();
    let DocInsert::New(id) = tx.insert_document(&new_document(&net.verified(&doc), 0)).await.unwrap() else { panic!() };
    let hop = code(HA_LAU);
    for (r, at) in [(HA_LAU, 1000), (TIEN_YEN, 1000), (PHONG_DU, 3000)] {
        tx.enqueue(TransferKind::Document(id), &hop, &[code(r)], at).await.unwrap();
    }
    tx.commit().await.unwrap();

    if sqlite {
        // A plain read on SQLite (on PostgreSQL this claim would lease both).
        let both = store.claim_due_except("a", 1000, 31_000, 2, &[]).await.unwrap();
        assert_eq!(both.transfers.len(), 2, "the two due, as many as asked for");
        assert_eq!(both.next, NextDue::At(3000), "and when the third falls due");
    }
    let first = store.claim_due_except("a", 1000, 31_000, 1, &[]).await.unwrap();
    assert_eq!(first.next, NextDue::Unknown, "a second due transfer left for lack of room");
    let running: Vec<i64> = first.transfers.iter().map(|t| t.id).collect();
    assert_eq!(running.len(), 1);
    let second = store.claim_due_except("a", 1000, 31_000, 10, &running).await.unwrap();
    let next = second.transfers;
    assert_eq!(next.len(), 1, "only the other due transfer: {next:?}");
    assert!(!running.contains(&next[0].id));
    assert_eq!(second.next, NextDue::At(3000), "the third falls due at 3000");
    let running: Vec<i64> = running.into_iter().chain([next[0].id]).collect();
    let later = store.claim_due_except("a", 2000, 32_000, 10, &running).await.unwrap();
    assert!(later.transfers.is_empty(), "nothing new is due");
    assert_eq!(later.next, NextDue::At(3000));
    assert_eq!(store.next_due_except(Leased::Outbox, 2000, &running).await.unwrap(), Some(3000), "the one not running");
    let third = store.claim_due_except("a", 3000, 33_000, 10, &running).await.unwrap();
    assert_eq!(third.transfers.len(), 1);
    assert_eq!(third.next, NextDue::Never, "all the others are running");
    if sqlite {
        // Without the exclusion a SQLite wake-up reads the running transfers again.
        assert_eq!(store.claim_due("a", 2000, 32_000, 10).await.unwrap().len(), 2);
        assert_eq!(store.next_due(Leased::Outbox, 2000).await.unwrap(), Some(1000));
    }
}

/// An intake hands the transfers it queued to its outbox (`Outbound::hand_over`);
/// `enqueue_due` says which are new and makes them due a little later (until then claims
/// leave them to the hand-off; after, a hand-off that never came is claimed as any transfer),
/// and `claim_handed` gives back the ones this process may run: on
/// PostgreSQL not those another process claimed in the meantime, nor those no longer
/// pending or due already, and the ones it returns are leased (nobody else claims them; the
/// same process claiming them again gets them again); on SQLite, where
/// one process owns the outbox, all of them.
async fn a_handed_over_transfer_is_left_to_the_process_that_claimed_it(database: Database) {
    let (net, store) = open(database).await;
    let doc = net.document(PHONG_DU, &[HA_LAU, TIEN_YEN], 5);
    let mut tx = store.begin().await.unwrap();
    let DocInsert::New(id) = tx.insert_document(&new_document(&net.verified(&doc), 0)).await.unwrap() else { panic!() };
    let hop = code(HA_LAU);
    let mut ids = Vec::new();
    for r in [&[HA_LAU][..], &[TIEN_YEN], &[HA_LAU, TIEN_YEN]] {
        let r: Vec<_> = r.iter().map(|r| code(r)).collect();
        let queued = tx.enqueue_due(TransferKind::Document(id), &hop, &r, 1000, 2000).await.unwrap();
        ids.push(queued.expect("a new transfer"));
    }
    // Queued already: no new row, nothing to hand over.
    assert_eq!(tx.enqueue(TransferKind::Document(id), &hop, &[code(HA_LAU)], 1000).await.unwrap(), None);
    tx.commit().await.unwrap();

    // Until they are due, the claims leave them to the hand-off.
    let early = store.claim_due_except("b", 1999, 31_000, 10, &[]).await.unwrap();
    assert!(early.transfers.is_empty());
    if store.backend() == node::storage::Backend::Sqlite {
        assert_eq!(early.next, node::storage::NextDue::At(2000));
    }
    assert_eq!(store.next_due_except(Leased::Outbox, 1000, &[]).await.unwrap(), Some(2000));
    // A hand-off that never came: once due, another process claims the oldest; the third is
    // finished before the hand-off is taken.
    let taken = store.claim_due_except("b", 2000, 31_000, 1, &[]).await.unwrap().transfers;
    assert_eq!(taken.iter().map(|t| t.id).collect::<Vec<_>>(), [ids[0]]);
    let mut tx = store.begin().await.unwrap();
    assert!(tx.finish_transfer(ids[2], "a", "done", 1000).await.unwrap());
    tx.commit().await.unwrap();

    let postgres = store.backend() == node::storage::Backend::Postgres;
    if postgres {
        // Once due, a hand-off is the claims' to take, not a claim by id.
        assert!(store.claim_handed("c", 2000, 31_000, &ids).await.unwrap().is_empty(), "due: left to the claims");
    }
    let mine = store.claim_handed("a", 1000, 31_000, &ids).await.unwrap();
    if postgres {
        assert_eq!(mine, [ids[1]], "only the one still pending and not claimed by b");
        // A claim made again (its COMMIT's answer lost) gets back what a holds.
        assert_eq!(store.claim_handed("a", 1001, 31_001, &ids).await.unwrap(), [ids[1]]);
        assert!(
            store.claim_due_except("b", 2001, 32_000, 10, &[ids[0]]).await.unwrap().transfers.is_empty(),
            "a holds it now"
        );
    } else {
        assert_eq!(mine, ids, "one process owns a SQLite outbox");
    }
    assert!(store.claim_handed("a", 1000, 31_000, &[]).await.unwrap().is_empty());
}

/// The value of counter `name`, read through the pool (another connection than the writer's):
/// what any reader of the database sees.
async fn counter(store: &Store, name: &str) -> Option<i64> {
    store.counters().await.unwrap().into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// Group commit (SQLite) keeps each write's promise: 64 writes racing, each reads its own
/// work back through another connection the moment its `commit` returns (a write is never
/// told "committed" before the `COMMIT` that holds it). On SQLite they were committed in fewer
/// batches than writes: the first write holds the writer while the others queue behind it,
/// and they join one batch.
async fn concurrent_writes_are_each_visible_when_their_commit_returns(database: Database) {
    let (_net, store) = open(database).await;
    let before = store.write_batches();
    let first = store.begin().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            tx.count(&format!("write-{i}"), i + 1).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(
                counter(&store, &format!("write-{i}")).await,
                Some(i + 1),
                "write {i} not visible after its commit"
            );
        }));
    }
    // Let the writes queue behind the first one (no correctness depends on it).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    first.commit().await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    match (before, store.write_batches()) {
        (Some((b0, w0)), Some((b1, w1))) => {
            let (batches, writes) = (b1 - b0, w1 - w0);
            println!("65 writes: {writes} committed in {batches} batches");
            assert_eq!(writes, 65);
            assert!(batches < writes, "{writes} writes took {batches} batches: no group commit");
        }
        (None, None) => {}
        other => panic!("{other:?}"),
    }
    store.close().await;
}

/// A write that fails halfway (dropped without `commit`, as `?` on a failed statement does)
/// is rolled back alone: the write queued behind it joins the same batch and is kept, and an
/// explicit rollback in the same batch keeps nothing of its own.
async fn a_write_dropped_halfway_leaves_the_others_in_its_batch(database: Database) {
    let (_net, store) = open(database).await;
    let before = store.write_batches();
    let mut dropped = store.begin().await.unwrap();
    dropped.count("dropped", 1).await.unwrap();
    let queued = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut rolled = store.begin().await.unwrap();
            rolled.count("rolled-back", 1).await.unwrap();
            rolled.rollback().await.unwrap();
            let mut tx = store.begin().await.unwrap();
            tx.count("kept", 1).await.unwrap();
            tx.commit().await.unwrap();
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    drop(dropped);
    queued.await.unwrap();
    assert_eq!(counter(&store, "kept").await, Some(1));
    assert_eq!(counter(&store, "dropped").await, None, "a dropped write was kept");
    assert_eq!(counter(&store, "rolled-back").await, None, "a rolled-back write was kept");
    // And the writer goes on: a later write commits on its own.
    let mut tx = store.begin().await.unwrap();
    tx.count("later", 1).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(counter(&store, "later").await, Some(1));
    if let (Some((b0, w0)), Some((b1, w1))) = (before, store.write_batches()) {
        assert_eq!(w1 - w0, 2, "kept and later, and nothing else, were committed");
        assert!(b1 - b0 <= 2);
    }
    store.close().await;
}

/// A task cancelled while its write holds the writer (a request timing out mid-transaction)
/// leaves nothing behind: its work is rolled back and the next writes go through at once.
async fn a_write_cancelled_while_it_holds_the_writer_blocks_nobody(database: Database) {
    let (_net, store) = open(database).await;
    let (held_tx, held) = tokio::sync::oneshot::channel();
    let stuck = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            tx.count("cancelled", 1).await.unwrap();
            let _ = held_tx.send(());
            std::future::pending::<()>().await;
            tx.commit().await.unwrap();
        })
    };
    held.await.unwrap();
    let next = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            tx.count("next", 1).await.unwrap();
            tx.commit().await.unwrap();
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stuck.abort();
    tokio::time::timeout(std::time::Duration::from_secs(30), next)
        .await
        .expect("the next write waited for good")
        .unwrap();
    assert_eq!(counter(&store, "next").await, Some(1));
    assert_eq!(counter(&store, "cancelled").await, None);
    store.close().await;
}

/// A write whose statement fails fails alone. In one batch on SQLite: writes dropped or
/// rolled back end without a trace; a write failing at its first statement, or after another
/// one ran, fails alone (rolled back to its savepoint); the writes around them are kept, and
/// the writer goes on.
async fn a_write_whose_statement_fails_fails_alone(database: Database) {
    let (net, store) = open(database).await;
    let doc = net.document(PHONG_DU, &[HA_LAU], 5);
    let hop = receipt(&net, ReceiptKind::Hop, &doc, TIEN_YEN, PHONG_DU, &[HA_LAU]);
    let mut tx = store.begin().await.unwrap();
    tx.insert_own_receipt(&hop, PHONG_DU, 1).await.unwrap();
    tx.commit().await.unwrap();
    let rid = store.receipts_for(&doc.digest).await.unwrap()[0].id;
    let before = store.write_batches();

    let mut first = store.begin().await.unwrap();
    first.count("first", 1).await.unwrap();
    let queued = {
        let (store, hop) = (store.clone(), hop.clone());
        tokio::spawn(async move {
            let neighbour = code(HA_LAU);
            let mut dropped = store.begin().await.unwrap();
            dropped.enqueue(TransferKind::Notice(rid), &neighbour, &[], 10).await.unwrap();
            drop(dropped);
            let mut rolled = store.begin().await.unwrap();
            rolled.enqueue(TransferKind::Notice(rid), &neighbour, &[], 11).await.unwrap();
            rolled.rollback().await.unwrap();
            // The same signed bytes again: the insert fails (unique digest), first as the
            // write's first statement, then after another one. A failed write is dropped, as
            // `?` does: it holds SQLite's writer until it ends.
            let mut alone = store.begin().await.unwrap();
            let alone = match alone.insert_own_receipt(&hop, PHONG_DU, 2).await {
                Ok(()) => alone.commit().await,
                Err(e) => {
                    drop(alone);
                    Err(e)
                }
            };
            let mut after = store.begin().await.unwrap();
            after.count("failing", 1).await.unwrap();
            let after = match after.insert_own_receipt(&hop, PHONG_DU, 3).await {
                Ok(()) => after.commit().await,
                Err(e) => {
                    drop(after);
                    Err(e)
                }
            };
            let mut kept = store.begin().await.unwrap();
            kept.count("kept", 1).await.unwrap();
            kept.commit().await.unwrap();
            (alone.is_err(), after.is_err())
        })
    };
    // The others are queued behind the first, so all are in one batch on SQLite.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    first.commit().await.unwrap();
    assert_eq!(queued.await.unwrap(), (true, true), "a duplicate receipt was stored");
    assert_eq!(counter(&store, "first").await, Some(1));
    assert_eq!(counter(&store, "kept").await, Some(1));
    assert_eq!(counter(&store, "failing").await, None, "part of a failed write was kept");
    assert_eq!(store.receipts_for(&doc.digest).await.unwrap().len(), 1);
    assert!(
        store.claim_due("a", 1000, 31_000, 10).await.unwrap().is_empty(),
        "a dropped or rolled-back write was kept"
    );
    if let (Some((b0, w0)), Some((b1, w1))) = (before, store.write_batches()) {
        assert_eq!(w1 - w0, 2, "first and kept, and nothing else, were committed");
        assert!(b1 - b0 <= 2, "{} batches", b1 - b0);
    }
    // A write ending without committing, in the batch of a write waiting for its commit: it
    // must not fail that batch, and the batch must still commit.
    for end_by_drop in [true, false] {
        let name = if end_by_drop { "before a drop" } else { "before a rollback" };
        let mut waiting = store.begin().await.unwrap();
        waiting.count(name, 1).await.unwrap();
        let mut next = std::pin::pin!(store.begin());
        // Polled once: on SQLite it is then queued behind `waiting` (which leaves its batch open
        // for it); PostgreSQL's transactions do not queue, and it may even be ready.
        let mut began = None;
        std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(tx) = next.as_mut().poll(cx) {
                began = Some(tx);
            }
            std::task::Poll::Ready(())
        })
        .await;
        assert!(began.is_none() || store.write_batches().is_none(), "on SQLite the next write waits for the writer");
        let (committed, ()) = tokio::join!(waiting.commit(), async {
            let mut silent = match began {
                Some(tx) => tx.unwrap(),
                None => next.await.unwrap(),
            };
            silent.enqueue(TransferKind::Notice(rid), &code(HA_LAU), &[], 12).await.unwrap();
            if end_by_drop {
                drop(silent);
            } else {
                silent.rollback().await.unwrap();
            }
        });
        committed.unwrap_or_else(|e| panic!("the write {name} failed: {e}"));
        assert_eq!(counter(&store, name).await, Some(1));
    }
    assert!(store.claim_due("a", 1000, 31_000, 10).await.unwrap().is_empty());
    let mut tx = store.begin().await.unwrap();
    tx.count("after", 1).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(counter(&store, "after").await, Some(1));
    store.close().await;
}

/// A notice queued by the digest of a receipt this write stored (without asking for its row
/// id first), by its id, or as one of the statuses for a document's sender (a repeated
/// delivery that does not take them with its hop receipt, however often it comes) is one
/// transfer: queued once.
async fn a_receipts_notice_is_queued_once_by_digest_or_by_id(database: Database) {
    let (net, store) = open(database).await;
    let doc = net.document(PHONG_DU, &[HA_LAU], 6);
    let arrived = receipt(&net, ReceiptKind::Status(StatusCode::Arrived), &doc, HA_LAU, PHONG_DU, &[HA_LAU]);
    let hop = code(TIEN_YEN);
    let (by, sender) = (code(HA_LAU), code(PHONG_DU));
    let mut tx = store.begin().await.unwrap();
    tx.insert_own_receipt(&arrived, HA_LAU, 1000).await.unwrap();
    tx.enqueue_notice_of(&arrived.digest(), &hop, 1000).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let (id, new) = tx.insert_receipt(&arrived, HA_LAU, 1001).await.unwrap();
    assert!(!new);
    tx.enqueue(TransferKind::Notice(id), &hop, &[], 1001).await.unwrap();
    tx.enqueue_notice_of(&arrived.digest(), &hop, 1002).await.unwrap();
    tx.enqueue_sender_statuses(&doc.digest, &by, &sender, &hop, 1003).await.unwrap();
    tx.enqueue_sender_statuses(&doc.digest, &by, &sender, &hop, 1004).await.unwrap();
    tx.commit().await.unwrap();
    let claimed = store.claim_due("a", 2000, 32_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!((claimed[0].kind, claimed[0].next_hop), (TransferKind::Notice(id), hop));
    // A status stored without a notice (it went with a hop receipt) is queued by the sender's
    // statuses, once.
    let other = net.document(PHONG_DU, &[HA_LAU], 7);
    let carried = receipt(&net, ReceiptKind::Status(StatusCode::Arrived), &other, HA_LAU, PHONG_DU, &[HA_LAU]);
    let mut tx = store.begin().await.unwrap();
    tx.insert_own_receipt(&carried, HA_LAU, 1005).await.unwrap();
    tx.commit().await.unwrap();
    for at in [1006, 1007] {
        let mut tx = store.begin().await.unwrap();
        tx.enqueue_sender_statuses(&other.digest, &by, &sender, &hop, at).await.unwrap();
        tx.commit().await.unwrap();
    }
    // (On SQLite a claim is a plain read: the first notice, still pending, comes again.)
    let claimed = store.claim_due("b", 2000, 32_000, 10).await.unwrap();
    let new: Vec<_> = claimed.iter().filter(|t| t.kind != TransferKind::Notice(id)).collect();
    assert_eq!(new.len(), 1, "{claimed:?}");
    assert_eq!(new[0].next_hop, hop);
    store.close().await;
}

/// A hop receipt promises its document is on disk. On PostgreSQL that rests on
/// `synchronous_commit`, which a DBA may turn off for a database, a role or the server: the
/// node's sessions turn it back on, so a commit of the node returns only once the server
/// flushed its WAL past it; and a server running with `fsync = off` is refused with the
/// reason. The WAL writer is slowed to 10 s so that only a synchronous commit flushes in
/// the test's time, and an asynchronous commit of another session shows it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_commits_wait_for_the_flush_whatever_the_database_is_set_to() {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    // No autovacuum, whose workers commit and flush on their own.
    let cluster = harness::postgres::PgCluster::start_with(
        "-c wal_writer_delay=10s -c wal_writer_flush_after=1GB -c autovacuum=off",
    );
    let url = cluster.database("lienthong");
    let mut admin = sqlx::AnyConnection::connect(&url).await.unwrap();
    for statement in ["ALTER DATABASE lienthong SET synchronous_commit = off", "CREATE TABLE probe (x int)"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut admin).await.unwrap();
    }
    let lsn = async |conn: &mut sqlx::AnyConnection, which: &str| -> i64 {
        let sql = format!("SELECT (pg_current_wal_{which}_lsn() - '0/0'::pg_lsn)::bigint");
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(conn).await.unwrap()
    };
    // Another application's session, with the database's setting: its commit returns before
    // the flush (else this test would prove nothing). Three tries: the WAL writer's own
    // round, every 10 s, may fall between a commit and the look at the flush.
    let mut other = sqlx::AnyConnection::connect(&url).await.unwrap();
    let mut unflushed = false;
    for _ in 0..3 {
        let before = lsn(&mut admin, "insert").await;
        sqlx::raw_sql("INSERT INTO probe VALUES (1)").execute(&mut other).await.unwrap();
        unflushed |= lsn(&mut admin, "flush").await <= before;
    }
    assert!(unflushed, "every asynchronous commit was flushed at once: this server cannot show the difference");

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&url, dir.path()).await.unwrap();
    let before = lsn(&mut admin, "insert").await;
    let mut tx = store.begin().await.unwrap();
    tx.count("probe", 1).await.unwrap();
    tx.commit().await.unwrap();
    assert!(lsn(&mut admin, "flush").await > before, "the node's commit returned before the WAL's flush");
    store.close().await;

    let unsafe_server = harness::postgres::PgCluster::start_with("-c fsync=off");
    let url = unsafe_server.database("lienthong");
    let Err(refused) = Store::open(&url, dir.path()).await else { panic!("a server without fsync was taken") };
    assert!(refused.to_string().contains("fsync = off"), "{refused}");
}

/// On PostgreSQL a `COMMIT` whose connection dies before the server answers (the backend
/// killed: a crash of the server, or a lost link), or that the server answers by ending the
/// session (`FATAL`), has an unknown outcome, and the error says so (`is_in_doubt`), so that
/// the node tells its sender the document may have been kept rather than that nothing was.
/// The store then carries on with fresh connections once the server has recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_commit_the_server_did_not_answer_is_in_doubt() {
    /// The server process of the one session of the database inside a transaction, and a
    /// connection of another session to act on it.
    async fn open_transactions_backend(url: &str) -> (sqlx::AnyConnection, i32) {
        use sqlx::Connection;
        let mut admin = sqlx::AnyConnection::connect(url).await.unwrap();
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert_eq!(pids.len(), 1, "the transaction's session: {pids:?}");
        (admin, pids[0])
    }
    sqlx::any::install_default_drivers();
    let cluster = harness::postgres::PgCluster::start();
    let url = cluster.database("lienthong");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&url, dir.path()).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.count("in doubt", 1).await.unwrap();
    // SIGKILL: the backend ends without a word (a SIGTERM would send the client the server's
    // error first, which is an answer).
    let (_, backend) = open_transactions_backend(&url).await;
    let killed = std::process::Command::new("kill").args(["-KILL", &backend.to_string()]).status().unwrap();
    assert!(killed.success());
    let error = tx.commit().await.unwrap_err();
    assert!(error.is_in_doubt(), "not in doubt: {error}");
    assert!(error.to_string().contains("may have done"), "{error}");
    // The server restarts its sessions after a backend's crash; the store's next transaction
    // gets a fresh connection.
    let start = std::time::Instant::now();
    loop {
        let next = async {
            let mut tx = store.begin().await?;
            tx.count("after", 1).await?;
            tx.commit().await
        };
        match next.await {
            Ok(()) => break,
            Err(e) => {
                assert!(start.elapsed() < std::time::Duration::from_secs(30), "the store did not carry on: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    let counters = store.counters().await.unwrap();
    assert!(counters.iter().any(|(name, _)| name == "after"), "{counters:?}");

    // A session the server ends (an administrator's termination, FATAL; the server also ends
    // a session so after committing, while it waits for a synchronous standby) leaves the
    // outcome open too, whether the client reads the server's FATAL first or finds the
    // connection closed (which of the two is a race of the sockets).
    let mut tx = store.begin().await.unwrap();
    tx.count("terminated", 1).await.unwrap();
    let (mut admin, backend) = open_transactions_backend(&url).await;
    let ended: bool =
        sqlx::query_scalar("SELECT pg_terminate_backend($1)").bind(backend).fetch_one(&mut admin).await.unwrap();
    assert!(ended);
    let error = tx.commit().await.unwrap_err();
    assert!(error.is_in_doubt(), "not in doubt: {error}");
    eprintln!("the store is told: {error}");
    store.close().await;
}

/// Documents numbered `from` to `to` in the inbox, acting on `business_of` (SQL), of urgency 0
/// to 3 in turn, one in ten sent by this agency: filler for the PostgreSQL plan tests.
fn documents_sql(from: u32, to: u32, business_of: &str) -> String {
    format!(
        r"INSERT INTO documents (doc_id, digest, sender, sender_name, envelope, number, notation, type_name,
                                subject, urgency, business, business_of, recipients, received_from, received_at, outgoing)
          SELECT 'QN-' || i || '/2026', sha256(i::text::bytea), '000.01.41.H49', 'Phong Dụ', '\x00', i, 'UBND',
                 'Công văn', 'Về việc ' || i, i % 4, 3, {business_of}, '000.00.41.H49', '000.01.41.H49', i,
                 CASE WHEN i % 10 = 0 THEN 1 ELSE 0 END
          FROM generate_series({from}, {to}) i;
          INSERT INTO inbox (document, arrived_at, urgency) SELECT id, received_at, urgency FROM documents WHERE id >= {from};"
    )
}

/// A neighbour back after an outage: transfers of documents 1 to 20,000 due to it, a hundred
/// at each time (transfers queued together fall due together), the first at 0.
const BACKLOG: &str = r"INSERT INTO outbox (dedup_key, kind, document, next_hop, recipients, state, attempts,
                                        next_attempt_at, created_at)
    SELECT 'backlog-' || i, 'document', i, '000.03.41.H49', '000.03.41.H49', 'pending', 1, i / 100, i
    FROM generate_series(1, 20000) i;";

/// A store on a throwaway PostgreSQL server that logs the plan of every statement as run
/// (`auto_explain`, read back with [`logged_plans`]), without autovacuum (the statistics are
/// taken when the test says), and a connection of the test's own beside it.
struct Explained {
    cluster: harness::postgres::PgCluster,
    _dir: tempfile::TempDir,
    store: Store,
    admin: sqlx::AnyConnection,
}

impl Explained {
    async fn start() -> Explained {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let cluster = harness::postgres::PgCluster::start_with(
            "-c autovacuum=off -c shared_preload_libraries=auto_explain -c auto_explain.log_min_duration=0 \
             -c auto_explain.log_analyze=on -c auto_explain.log_timing=off",
        );
        let url = cluster.database("lienthong");
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&url, dir.path()).await.unwrap();
        let admin = sqlx::AnyConnection::connect(&url).await.unwrap();
        Explained { cluster, _dir: dir, store, admin }
    }
}

/// The plans the server's `auto_explain` logged, each as logged and with its spaces squashed
/// (the log indents a query's lines): one entry per statement, its lines after the first
/// indented.
fn logged_plans(cluster: &harness::postgres::PgCluster) -> Vec<(String, String)> {
    let log = std::fs::read_to_string(cluster.socket_dir().join("server.log")).unwrap();
    let mut entries: Vec<String> = Vec::new();
    for line in log.lines() {
        match entries.last_mut() {
            Some(entry) if line.starts_with(['\t', ' ']) => {
                entry.push('\n');
                entry.push_str(line);
            }
            _ => entries.push(line.to_owned()),
        }
    }
    entries
        .into_iter()
        .map(|e| {
            let squashed = squash(&e);
            (e, squashed)
        })
        .collect()
}

/// `text` with its runs of white space made one space.
fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a PostgreSQL plan (EXPLAIN ANALYZE's text) reads its rows from `index` without
/// reading a table whole, dropping at most 40 rows in filters (twice a listing's page of 20),
/// and sorting nothing unless `may_sort`; `Err` says what is wrong. The rows a filter drops
/// are counted over every loop of the node (EXPLAIN prints the average of a loop).
fn plan_problem(plan: &str, index: &str, may_sort: bool) -> Result<(), String> {
    let name = index.split(' ').next().unwrap_or(index);
    if !plan.contains(&format!("using {index}")) && !plan.contains(&format!("Bitmap Index Scan on {name}")) {
        return Err(format!("does not read {index}"));
    }
    if plan.contains("Seq Scan") {
        return Err("reads a table whole".into());
    }
    let (mut loops, mut removed) = (1u64, 0u64);
    for line in plan.lines() {
        if let Some(at) = line.find(" loops=") {
            let digits: String = line[at + 7..].chars().take_while(char::is_ascii_digit).collect();
            loops = digits.parse().unwrap_or(1);
        }
        if let Some(n) = line.trim().strip_prefix("Rows Removed by Filter: ") {
            removed = removed.saturating_add(n.parse::<u64>().unwrap_or(u64::MAX).saturating_mul(loops));
        }
    }
    // The sent listing drops each document's hop receipt when it looks for its status (20
    // documents a page), the next hops' recursion its last, empty row; a table read through
    // drops thousands.
    if removed > 40 {
        return Err(format!("reads {removed} rows it does not return"));
    }
    if !may_sort && plan.lines().any(|l| l.contains("Sort") && !l.contains("Sort Key")) {
        return Err("sorts".into());
    }
    if plan.contains("Sort Method: external") {
        return Err("sorts on disk".into());
    }
    Ok(())
}

/// The queries that take the first rows of many by an order read them from an index in
/// that order on PostgreSQL, whatever its statistics, so that they cost the same however many
/// documents the node holds. With an index on `x` alone, `WHERE x = $1 … ORDER BY id LIMIT n`
/// may walk the primary key from the lowest id and filter every row, expecting an early
/// match, and so read the whole table when matches are few. The planner did so for the
/// superseder lookup every arrival runs (`node::storage::SUPERSEDER`: is there a document
/// revoking, updating or replacing this one?) until the table's first statistics, which
/// autovacuum takes within about a minute of a node's start: 10 to 26 ms a lookup at 10,700
/// documents in a benchmark, and the node's rate fell as its table grew. The page of log
/// entries a parent shows a child auditing it (`node::storage::tlog::DOCUMENTS_VIA`) read and
/// sorted every entry of the child; a clerk's inbox and sent listings (`INBOX`, `SENT`) read
/// and sorted every document, and the waiting transfers of each unanswered sent document
/// (`WAITING`) every waiting transfer; the health read-out's outbox per next hop
/// (`OUTBOX_BY_HOP`) grouped every transfer ever queued, and now steps through the next hops
/// on its index, sorting only them and grouping only the waiting transfers. A document's
/// attachments (`ATTACHMENTS`, read for every document sent on from the database) read every
/// small attachment the node keeps into a hash, before the statistics (1.6 ms at 20,000),
/// and in the generic plan a node settled on in a benchmark. The outbox's claim of its
/// earliest due transfers sorted every due transfer for each claim (38 ms a claim with
/// 100,000 due) until migration 0011; its plans are checked with a backlog of 20,000, due and
/// then backed off, with the claim's read of when the next falls due (which read every
/// pending transfer before).
///
/// Planned here on 20,000 documents, log entries, transfers and receipts, before the first
/// statistics and after, as the custom plan for the values and, for prepared statements, as
/// the generic plan they may settle on; then the store's own calls, eight of each after the
/// statistics (past the five custom plans after which PostgreSQL may settle on a generic
/// one), as the server's `auto_explain` logged them. The answers are checked too: the
/// earliest of several documents acting on the same one, a child's entries in log order, the
/// most urgent and newest of the inbox first, the newest sent first, a document's waiting
/// transfer, each next hop's waiting transfers and latest hand-over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lookups_and_listings_read_an_index_however_large_the_table() {
    use sqlx::Row;
    let Explained { cluster, _dir, store, mut admin } = Explained::start().await;
    // 20,000 documents in the inbox acting on none (as almost all do), of urgency 0 to 3 in
    // turn, one in ten sent by this agency; then three acting on QN-1/2026 (ids 20,001 to
    // 20,003); 20,000 log leaves, one in ten handed over by Phong Dụ.
    let leaves = r"INSERT INTO tlog_leaves (idx, entry, envelope, kind, via)
        SELECT i, '\x00', sha256(i::text::bytea), 'document', CASE WHEN i % 10 = 0 THEN '000.01.41.H49' ELSE 'clerk' END
        FROM generate_series(0, 19999) i;";
    // 20,000 transfers of documents done, to three next hops in turn; three waiting, to one
    // of them and to a fourth (the first of sent document 20,000).
    let outbox = r"INSERT INTO outbox (dedup_key, kind, document, next_hop, recipients, state, attempts, next_attempt_at,
                               created_at, done_at)
        SELECT 'done-' || i, 'document', i, '000.0' || (i % 3) || '.41.H49', '000.00.41.H49', 'done', 1, i, i, i
        FROM generate_series(1, 20000) i;
        INSERT INTO outbox (dedup_key, kind, document, next_hop, recipients, state, attempts, next_attempt_at, created_at,
                            last_error)
        VALUES ('wait-1', 'document', 20000, '000.01.41.H49', '000.01.41.H49', 'pending', 2, 30000, 3, 'no answer'),
               ('wait-2', 'document', 19990, '000.01.41.H49', '000.01.41.H49', 'pending', 0, 30000, 9, NULL),
               ('wait-3', 'document', 5, '000.09.41.H49', '000.09.41.H49', 'pending', 1, 30000, 4, 'refused');";
    // A hop receipt for every document, and status 3 (received) for those sent.
    let receipts = r"INSERT INTO receipts (digest, doc_id, envelope, kind, status, by_agency, to_agency, at, recipients, bytes,
                                 received_at, received_from)
        SELECT sha256(('receipt ' || i || k)::bytea), 'QN-' || i || '/2026', sha256(i::text::bytea), k,
               CASE WHEN k = 'status' THEN 3 END, '000.00.41.H49', '000.01.41.H49', i, '000.00.41.H49', '\x00', i, '000.00.41.H49'
        FROM generate_series(1, 20000) i, (VALUES ('hop'), ('status')) AS kinds (k)
        WHERE k = 'hop' OR i % 10 = 0;";
    // One small attachment for each document, its bytes kept in the database.
    let attachments = r"INSERT INTO inline_blobs (sha256, bytes) SELECT sha256(('bytes ' || i)::bytea), ('bytes ' || i)::bytea
        FROM generate_series(1, 20000) i;
        INSERT INTO attachments (document, position, name, media_type, size, sha256)
        SELECT i, 0, 'cv-' || i || '.pdf', 'application/pdf', length('bytes ' || i), sha256(('bytes ' || i)::bytea)
        FROM generate_series(1, 20000) i;";
    let fill = [
        documents_sql(1, 20_000, "NULL"),
        attachments.into(),
        documents_sql(20_001, 20_003, "'QN-1/2026'"),
        leaves.into(),
        outbox.into(),
        receipts.into(),
    ];
    for statement in fill {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut admin).await.unwrap();
    }
    // The page of entries runs unprepared, planned for its values each time; the others are
    // prepared statements, which may settle on a generic plan. (query, its parameters' types,
    // values, the index it must read, the plans to look at, whether it may sort)
    let both = &["force_custom_plan", "force_generic_plan"][..];
    let lookups = [
        (node::storage::SUPERSEDER, "text", "'QN-1/2026'", "documents_business_of on documents", both, false),
        (
            node::storage::tlog::DOCUMENTS_VIA,
            "text, bigint, bigint",
            "'000.01.41.H49', 5000, 1001",
            "tlog_leaves_via on tlog_leaves",
            &["force_custom_plan"][..],
            // Before the statistics the server may read the child's entries from `$2` on
            // through the index (none of another child, none before `$2`) and sort them.
            true,
        ),
        (node::storage::INBOX, "bigint", "20", "inbox_listing on inbox", both, false),
        (node::storage::SENT, "bigint", "20", "documents_sent on documents", both, false),
        // A document's own transfers, sorted (a handful).
        (node::storage::WAITING, "bytea", "sha256('20000'::bytea)", "outbox_document on outbox", both, true),
        (node::storage::OUTBOX_BY_HOP, "bigint", "5", "outbox_by_hop on outbox", both, true),
        // A document's attachments, sorted (a handful), each one's bytes by its key.
        (node::storage::ATTACHMENTS, "bigint", "12345", "inline_blobs_pkey on inline_blobs", both, true),
    ];
    // A new node's tables have no statistics until autovacuum's first `ANALYZE` (and none
    // after a restore); then they have them.
    for (stage, before) in [("no statistics", ""), ("after ANALYZE", "ANALYZE; ")] {
        for (query, types, values, index, modes, may_sort) in lookups {
            let prepare = format!("{before}DEALLOCATE ALL; PREPARE lookup ({types}) AS {query}");
            sqlx::raw_sql(sqlx::AssertSqlSafe(prepare)).execute(&mut admin).await.unwrap();
            for mode in modes {
                let explain = format!(
                    "SET plan_cache_mode = {mode}; EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE lookup ({values})"
                );
                let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(explain)).fetch_all(&mut admin).await.unwrap();
                let plan: Vec<String> = rows.iter().map(|r| r.try_get::<String, _>(0).unwrap()).collect();
                let plan = plan.join("\n");
                if let Err(problem) = plan_problem(&plan, index, may_sort) {
                    panic!("{stage}, {mode}: {problem}: {query}\n{plan}");
                }
            }
        }
    }

    // The store's own calls, as the node makes them, with their answers.
    let digest = pki::sha256(b"20000");
    for _ in 0..8 {
        let mut tx = store.begin().await.unwrap();
        assert_eq!(tx.inbox_superseder_of("QN-1/2026").await.unwrap(), Some((3, "QN-20001/2026".to_owned())));
        assert_eq!(tx.inbox_superseder_of("QN-2/2026").await.unwrap(), None);
        tx.commit().await.unwrap();
        let page = store.log_documents_via("000.01.41.H49", 5000, 1001).await.unwrap();
        assert_eq!(page.iter().map(|(i, _)| *i).collect::<Vec<_>>(), (500..1501).map(|i| i * 10).collect::<Vec<u64>>());
        let ids =
            |listing: Vec<node::protocol::DocumentSummary>| listing.into_iter().map(|d| d.document).collect::<Vec<_>>();
        let names = |numbers: &[u32]| numbers.iter().map(|i| format!("QN-{i}/2026")).collect::<Vec<_>>();
        assert_eq!(ids(store.inbox(5).await.unwrap()), names(&[20_003, 19_999, 19_995, 19_991, 19_987]));
        let sent = store.sent(3).await.unwrap();
        assert!(sent.iter().all(|d| d.status == Some(3)), "{sent:?}");
        assert_eq!(ids(sent), names(&[20_000, 19_990, 19_980]));
        let waiting = store.waiting_transfers(&digest).await.unwrap();
        assert_eq!(
            waiting.iter().map(|w| (w.next_hop.as_str(), w.attempts)).collect::<Vec<_>>(),
            [("000.01.41.H49", 2)]
        );
        let hops: Vec<_> = store
            .outbox_by_hop(10_000, 5)
            .await
            .unwrap()
            .into_iter()
            .map(|h| (h.next_hop, h.pending, h.retrying, h.aged, h.oldest_pending_seconds, h.last_done, h.last_error))
            .collect();
        let expected = [
            ("000.00.41.H49", 0, 0, 0, 0, Some(19_998), None),
            ("000.01.41.H49", 2, 1, 1, 9, Some(19_999), Some("no answer")),
            ("000.02.41.H49", 0, 0, 0, 0, Some(20_000), None),
            ("000.09.41.H49", 1, 1, 1, 9, None, Some("refused")),
        ]
        .map(|(hop, pending, retrying, aged, oldest, done, error)| {
            (hop.to_owned(), pending, retrying, aged, oldest, done, error.map(str::to_owned))
        });
        assert_eq!(hops, expected);
        let attached = store.attachments(12_345).await.unwrap();
        assert_eq!(attached.len(), 1);
        assert_eq!(attached[0].attachment.name, "cv-12345.pdf");
        assert_eq!(attached[0].inline_len(), b"bytes 12345".len(), "the bytes kept in the database");
    }
    // A backlog of 20,000 due. Each claim takes the earliest eight (the lease of the one
    // before has run out), before the statistics of the backlog and after.
    sqlx::raw_sql(BACKLOG).execute(&mut admin).await.unwrap();
    let mut now = 100_000;
    for (stage, before) in [("no statistics of the backlog", None), ("after ANALYZE", Some("ANALYZE outbox"))] {
        if let Some(analyze) = before {
            sqlx::raw_sql(analyze).execute(&mut admin).await.unwrap();
        }
        for _ in 0..8 {
            now += 1;
            let claimed = store.claim_due("bench", now, now, 8).await.unwrap();
            let ids: Vec<i64> = claimed.iter().map(|t| t.id).collect();
            let first: i64 = sqlx::query_scalar("SELECT id FROM outbox WHERE dedup_key = 'backlog-1'")
                .fetch_one(&mut admin)
                .await
                .unwrap();
            assert_eq!(ids, (first..first + 8).collect::<Vec<_>>(), "{stage}: the earliest due, in order");
        }
    }
    // The neighbour down again: the backlog backed off, due in about a quarter of an hour.
    // A claim takes the three transfers due (fewer than it asked for) and tells when the next
    // falls due, from the first of the backlog.
    let backed_off = "UPDATE outbox SET next_attempt_at = next_attempt_at + 1000000 WHERE dedup_key LIKE 'backlog-%'";
    sqlx::raw_sql(backed_off).execute(&mut admin).await.unwrap();
    for (stage, before) in [("backed off, old statistics", None), ("after ANALYZE", Some("ANALYZE outbox"))] {
        if let Some(analyze) = before {
            sqlx::raw_sql(analyze).execute(&mut admin).await.unwrap();
        }
        for _ in 0..8 {
            now += 1;
            let claim = store.claim_due_except("bench", now, now, 8, &[]).await.unwrap();
            assert_eq!(claim.transfers.len(), 3, "{stage}: the transfers due");
            assert_eq!(claim.next, node::storage::NextDue::At(1_000_000), "{stage}: the first of the backlog");
        }
    }
    store.close().await;
    let (entries, squashed): (Vec<String>, Vec<String>) = logged_plans(&cluster).into_iter().unzip();
    // The plans logged of the statements whose text holds `text` (squashed).
    let logged = |text: &str| -> Vec<&String> {
        entries.iter().zip(&squashed).filter(|(_, s)| s.contains(text)).map(|(e, _)| e).collect()
    };
    for (query, _, _, index, _, may_sort) in lookups {
        let planned = logged(&format!("plan: Query Text: {}", squash(query)));
        assert!(planned.len() >= 8, "{} plans of the store's calls in the server's log: {query}", planned.len());
        for plan in planned {
            if let Err(problem) = plan_problem(plan, index, may_sort) {
                panic!("the store's call: {problem}:\n{plan}");
            }
        }
    }
    // The claims: the due transfers read in order from the index, up to the eighth; and the
    // reads of when the next falls due, past the backlog's first.
    let claims = logged("UPDATE outbox SET lease_owner");
    assert_eq!(claims.len(), 32, "plans of the claims in the server's log");
    let next_due = logged("SELECT next_attempt_at FROM outbox WHERE state = 'pending' AND next_attempt_at >");
    assert_eq!(next_due.len(), 16, "plans of the reads of the next due time in the server's log");
    for plan in claims.into_iter().chain(next_due) {
        if let Err(problem) = plan_problem(plan, "outbox_due on outbox", false) {
            panic!("a claim: {problem}:\n{plan}");
        }
    }
}

/// A node's tables grow from nothing, and a prepared statement may keep the plan it was
/// first given: the outbox's claim, planned while the outbox held a few transfers, read and
/// sorted the whole table for every claim once a backlog came (a sequential scan and a sort
/// of all 20,000 here, and another sequential scan to find the eight it took). The claim's
/// transaction turns sorting and sequential scans off (`Store::begin_claim`), so every plan
/// it makes reads the due transfers in order from `outbox_due` and the ones taken by their
/// key, whatever the table held when it was planned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_claim_planned_on_a_small_outbox_reads_a_backlog_by_index() {
    let Explained { cluster, _dir, store, mut admin } = Explained::start().await;
    // Twenty transfers, with their statistics; claims planned on them, past the five custom
    // plans after which the server may keep a generic one.
    sqlx::raw_sql(sqlx::AssertSqlSafe(documents_sql(1, 20_000, "NULL"))).execute(&mut admin).await.unwrap();
    let early = "INSERT INTO outbox (dedup_key, kind, document, next_hop, recipients, state, attempts, next_attempt_at,
                                     created_at)
        SELECT 'early-' || i, 'document', i, '000.03.41.H49', '000.03.41.H49', 'done', 1, i, i FROM generate_series(1, 20) i;
        UPDATE outbox SET state = 'pending' WHERE id <= 10; ANALYZE outbox;";
    sqlx::raw_sql(early).execute(&mut admin).await.unwrap();
    let mut now = 100_000;
    let mut claim = async |expected: usize| {
        now += 1;
        assert_eq!(store.claim_due("bench", now, now, 8).await.unwrap().len(), expected);
    };
    for _ in 0..8 {
        claim(8).await;
    }
    sqlx::raw_sql(BACKLOG).execute(&mut admin).await.unwrap();
    for _ in 0..8 {
        claim(8).await;
    }
    store.close().await;
    let claims: Vec<String> = logged_plans(&cluster)
        .into_iter()
        .filter(|(_, squashed)| squashed.contains("UPDATE outbox SET lease_owner"))
        .map(|(plan, _)| plan)
        .collect();
    assert_eq!(claims.len(), 16, "plans of the claims in the server's log");
    for plan in &claims {
        if let Err(problem) = plan_problem(plan, "outbox_due on outbox", false) {
            panic!("a claim: {problem}:\n{plan}");
        }
    }
}

/// The rows a new document's intake writes without reading an answer (its attachments, the
/// small attachments' bytes, its routes and inbox entry, the receipts the node signs, the
/// log's leaves; on PostgreSQL kept and sent together before the transaction's next
/// statement) are what the rest of its transaction reads, as if each had run at once; and
/// when one of them fails, the transaction fails at that statement or at its commit, and
/// nothing of it is kept.
async fn a_new_documents_unanswered_rows_are_read_back_and_kept_with_their_transaction(database: Database) {
    let (net, store) = open(database).await;
    let doc = net.document(PHONG_DU, &[HA_LAU, TIEN_YEN], 7);
    let verified = net.verified(&doc);
    let bytes = doc.bodies[0].clone();
    let attachment = &doc.manifest.attachments[0];
    let inline = [node::storage::inline::InlineBlob::receive(
        &attachment.name,
        &mut bytes.as_slice(),
        attachment.size,
        &attachment.sha256,
    )
    .await
    .unwrap()];
    let hop = receipt(&net, ReceiptKind::Hop, &doc, TIEN_YEN, PHONG_DU, &[HA_LAU, TIEN_YEN]);
    let (ha_lau, tien_yen) = (code(HA_LAU), code(TIEN_YEN));
    let mut tx = store.begin().await.unwrap();
    let DocInsert::New(id) =
        tx.insert_document(&NewDocument { inline: &inline, ..new_document(&verified, 1) }).await.unwrap()
    else {
        panic!("not new")
    };
    // Ha Lau twice: the first route given stands, and it is routed once.
    let routes = [
        NewRoute { recipient: &ha_lau, next_hop: Some(&ha_lau), state: "pending" },
        NewRoute { recipient: &tien_yen, next_hop: None, state: "delivered" },
        NewRoute { recipient: &ha_lau, next_hop: None, state: "refused" },
    ];
    assert_eq!(tx.add_routes_of_new(id, &routes, 2).await.unwrap(), vec![ha_lau, tien_yen]);
    tx.inbox_add_new(id, &doc.id, 3).await.unwrap();
    // Two receipts kept together: their rows' ids follow the order they were kept in.
    let arrived = receipt(&net, ReceiptKind::Status(StatusCode::Arrived), &doc, TIEN_YEN, PHONG_DU, &[TIEN_YEN]);
    tx.insert_own_receipt(&arrived, PHONG_DU, 4).await.unwrap();
    tx.insert_own_receipt(&hop, PHONG_DU, 4).await.unwrap();
    // Read back in the same transaction.
    assert!(tx.add_routes(id, &routes, 5).await.unwrap().is_empty(), "routes kept were not seen");
    assert!(!tx.inbox_add(id, 6).await.unwrap(), "the inbox entry kept was not seen");
    let (by, to) = (code(TIEN_YEN), code(PHONG_DU));
    let covering = tx.hop_receipt_covering(&doc.digest, &by, &to, &[ha_lau]).await.unwrap();
    assert_eq!(covering.as_deref(), Some(hop.as_bytes()), "the receipt kept was not seen");
    tx.commit().await.unwrap();

    let routes = store.routes(id).await.unwrap();
    assert_eq!(
        routes,
        vec![
            (TIEN_YEN.to_owned(), None, "delivered".to_owned()),
            (HA_LAU.to_owned(), Some(HA_LAU.to_owned()), "pending".to_owned())
        ]
    );
    assert!(store.in_inbox(id).await.unwrap());
    let attachments = store.attachments(id).await.unwrap();
    assert_eq!(attachments.len(), 1);
    assert!(attachments[0].is_inline() && attachments[0].inline_len() == bytes.len(), "the small attachment's bytes");
    let mut held = store.receipts_for(&doc.digest).await.unwrap();
    held.sort_by_key(|r| r.id);
    let name = |bytes: &[u8]| if bytes == arrived.as_bytes() { "arrived" } else { "hop" };
    let held: Vec<&str> = held.iter().map(|r| name(&r.bytes)).collect();
    assert_eq!(held, ["arrived", "hop"], "the receipts' ids in the order kept");

    // A write of the same receipt again fails (its digest is unique): on PostgreSQL at the
    // commit, which it goes with; the document, its routes and inbox entry before it go too.
    let other = net.document(PHONG_DU, &[HA_LAU], 8);
    let other_verified = net.verified(&other);
    let mut tx = store.begin().await.unwrap();
    let DocInsert::New(other_id) = tx.insert_document(&new_document(&other_verified, 7)).await.unwrap() else {
        panic!("not new")
    };
    tx.add_routes_of_new(other_id, &[NewRoute { recipient: &ha_lau, next_hop: None, state: "delivered" }], 8)
        .await
        .unwrap();
    tx.inbox_add_new(other_id, &other.id, 8).await.unwrap();
    let failed = match tx.insert_own_receipt(&hop, PHONG_DU, 9).await {
        Ok(()) => tx.commit().await,
        Err(e) => {
            drop(tx);
            Err(e)
        }
    };
    assert!(failed.is_err(), "a receipt stored twice");
    assert!(store.document_by_id(&other.id).await.unwrap().is_none(), "the failed transaction's document was kept");
    assert!(store.routes(other_id).await.unwrap().is_empty());
    assert!(!store.in_inbox(other_id).await.unwrap());
    assert_eq!(store.receipts_for(&doc.digest).await.unwrap().len(), 2);
    store.close().await;
}

/// A route's state is the furthest its changes took it (`pending` → `forwarded` → `refused`
/// → `delivered`), whatever their order and however they were written: kept with the
/// transaction's next statement (`Tx::keep_route_state`), at once (`Tx::set_route_state`),
/// a batch (`Tx::keep_route_states`), in later transactions. Statuses and hop receipts come
/// back over different paths; a system refusal that reaches the sender after the recipient's
/// delivery receipt (a node gave up on a copy the next hop had taken) leaves it `delivered`.
async fn a_routes_state_is_the_furthest_of_its_changes_in_any_order(database: Database) {
    let (net, store) = open(database).await;
    let doc = net.document(PHONG_DU, &[HA_LAU, TIEN_YEN], 9);
    let [a, b, c, d, e] =
        ["000.01.41.H49", "000.02.41.H49", "000.03.41.H49", "000.04.41.H49", "000.05.41.H49"].map(code);
    let mut tx = store.begin().await.unwrap();
    let DocInsert::New(id) = tx.insert_document(&new_document(&net.verified(&doc), 1)).await.unwrap() else {
        panic!("not new")
    };
    let hop = code(HA_LAU);
    let routes: Vec<NewRoute> =
        [&a, &b, &c, &d, &e].map(|r| NewRoute { recipient: r, next_hop: Some(&hop), state: "pending" }).into();
    tx.add_routes(id, &routes, 1).await.unwrap();
    tx.commit().await.unwrap();
    let states = || {
        let store = store.clone();
        async move {
            let mut states: Vec<(String, String)> =
                store.routes(id).await.unwrap().into_iter().map(|(r, _, state)| (r, state)).collect();
            states.sort();
            states.into_iter().map(|(_, state)| state).collect::<Vec<_>>()
        }
    };

    let mut tx = store.begin().await.unwrap();
    tx.keep_route_state(id, &[a], "delivered", 2).await.unwrap();
    tx.set_route_state(id, &[a, b], "refused", 3).await.unwrap();
    tx.set_route_state(id, &[b, c], "forwarded", 4).await.unwrap();
    tx.keep_route_states(&[(id, d, "delivered"), (id, d, "refused"), (id, c, "refused"), (id, c, "forwarded")], 5)
        .await
        .unwrap();
    tx.set_route_state(id, &[e], "refused", 5).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        states().await,
        ["delivered", "refused", "refused", "delivered", "refused"],
        "a: delivered, then refused; b: refused, then forwarded; c: forwarded, then refused and \
         forwarded in one batch; d: delivered and refused in one batch; e: refused"
    );

    let mut tx = store.begin().await.unwrap();
    tx.set_route_state(id, &[a, b, c, d], "refused", 6).await.unwrap();
    tx.set_route_state(id, &[a, b, c, d, e], "forwarded", 6).await.unwrap();
    tx.keep_route_states(&[(id, b, "delivered"), (id, e, "refused")], 7).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.keep_route_state(id, &[c], "delivered", 8).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        states().await,
        ["delivered", "delivered", "delivered", "delivered", "refused"],
        "in later transactions: nothing moves a route back; a delivery receipt after a refusal \
         moves it on, kept with the commit"
    );
    store.close().await;
}

/// What a batch of next hops' answers records (`outbound::answers`), each step one statement
/// for all of them: the transfers still held finished (those whose claim was lost left out),
/// the receipts stored once each with a leaf for each new one, and the routes set as the
/// records one by one would set them.
async fn answers_recorded_together_take_one_statement_a_table(database: Database) {
    let leased = matches!(database, Database::Postgres);
    let (net, store) = open(database).await;
    store.keep_log(code(TIEN_YEN));
    let (ha_lau, phong_du) = (code(HA_LAU), code(PHONG_DU));
    let first = net.document(TIEN_YEN, &[HA_LAU, PHONG_DU], 11);
    let second = net.document(TIEN_YEN, &[HA_LAU], 12);
    let mut tx = store.begin().await.unwrap();
    let mut ids = Vec::new();
    for doc in [&first, &second] {
        let DocInsert::New(id) = tx.insert_document(&new_document(&net.verified(doc), 1)).await.unwrap() else {
            panic!("not new")
        };
        ids.push(id);
    }
    let (one, two) = (ids[0], ids[1]);
    let pending = |r| NewRoute { recipient: r, next_hop: Some(&ha_lau), state: "pending" };
    tx.add_routes(one, &[pending(&ha_lau), pending(&phong_du)], 1).await.unwrap();
    // Already delivered (a status that overtook the hop receipt): `forwarded` leaves it.
    tx.add_routes(two, &[NewRoute { recipient: &ha_lau, next_hop: Some(&ha_lau), state: "delivered" }], 1)
        .await
        .unwrap();
    tx.enqueue(TransferKind::Document(one), &ha_lau, &[ha_lau, phong_du], 1).await.unwrap();
    tx.enqueue(TransferKind::Document(two), &ha_lau, &[ha_lau], 1).await.unwrap();
    tx.commit().await.unwrap();
    let claimed: Vec<i64> = store.claim_due("a", 1, 31_000, 10).await.unwrap().iter().map(|t| t.id).collect();
    assert_eq!(claimed.len(), 2);

    let hop_one = receipt(&net, ReceiptKind::Hop, &first, HA_LAU, TIEN_YEN, &[HA_LAU, PHONG_DU]);
    let arrived = receipt(&net, ReceiptKind::Status(StatusCode::Arrived), &first, HA_LAU, TIEN_YEN, &[HA_LAU]);
    let hop_two = receipt(&net, ReceiptKind::Hop, &second, HA_LAU, TIEN_YEN, &[HA_LAU]);
    let known = receipt(&net, ReceiptKind::Status(StatusCode::Arrived), &second, HA_LAU, TIEN_YEN, &[HA_LAU]);
    let mut tx = store.begin().await.unwrap();
    tx.insert_receipt(&known, HA_LAU, 1).await.unwrap();
    tx.commit().await.unwrap();
    let leaves = store.log_sizes().await.unwrap().1;

    let mut tx = store.begin().await.unwrap();
    let nobody = claimed[0] + claimed[1] + 1;
    if leased {
        // SQLite's claims are plain reads, held by nobody.
        assert!(tx.finish_held(&claimed, "b", "done", 2).await.unwrap().is_empty(), "leased to a, not b");
    }
    let mut held = tx.finish_held(&[claimed[1], nobody, claimed[0]], "a", "done", 2).await.unwrap();
    held.sort_unstable();
    assert_eq!(held, claimed, "the transfers a holds, finished; an id of no transfer left out");
    assert!(tx.finish_held(&claimed, "a", "done", 2).await.unwrap().is_empty(), "finished already");
    let new = tx
        .insert_receipts(
            &[(&hop_one, HA_LAU), (&arrived, HA_LAU), (&hop_two, HA_LAU), (&hop_one, HA_LAU), (&known, HA_LAU)],
            2,
        )
        .await
        .unwrap();
    let is_new: Vec<bool> = new.iter().map(Option::is_some).collect();
    assert_eq!(is_new, [true, true, true, false, false], "each new once; one stored before is not new");
    // Each new one's row, as a look-up of its digest finds it.
    for (r, id) in [&hop_one, &arrived, &hop_two].into_iter().zip(&new) {
        assert_eq!(Some(tx.insert_receipt(r, HA_LAU, 2).await.unwrap()), id.map(|id| (id, false)));
    }
    // Phong Du's status came with the first answer, the hand-over of its route with a later
    // one (a repeat of another transfer of the document): in turn, `forwarded` found the
    // route delivered and did nothing.
    let changes = [
        (one, ha_lau, "forwarded"),
        (one, phong_du, "delivered"),
        (one, ha_lau, "delivered"),
        (two, ha_lau, "forwarded"),
        (one, phong_du, "forwarded"),
    ];
    tx.keep_route_states(&changes, 3).await.unwrap();
    tx.commit().await.unwrap();

    let states = |id| {
        let store = store.clone();
        async move { store.routes(id).await.unwrap().into_iter().map(|(r, _, state)| (r, state)).collect::<Vec<_>>() }
    };
    let mut want = vec![(HA_LAU.to_owned(), "delivered".to_owned()), (PHONG_DU.to_owned(), "delivered".to_owned())];
    want.sort();
    assert_eq!(states(one).await, want, "a route changed twice ends as the changes in turn leave it");
    assert_eq!(
        states(two).await,
        [(HA_LAU.to_owned(), "delivered".to_owned())],
        "forwarded moves only a pending route"
    );
    assert_eq!(store.receipts_for(&first.digest).await.unwrap().len(), 2);
    assert_eq!(store.receipts_for(&second.digest).await.unwrap().len(), 2);
    assert_eq!(store.log_sizes().await.unwrap().1, leaves + 3, "a leaf for each new receipt");
    assert_eq!(store.queue_depths(4).await.unwrap().done, 2);

    // More than a statement's worth of each (76 receipts, 249 route changes): several
    // statements a step, every row once.
    let many: Vec<AgencyCode> = (0..300).map(|i| code(&format!("{:03}.{:02}.41.H49", i / 99, i % 99 + 1))).collect();
    let third = net.document(TIEN_YEN, &[HA_LAU], 13);
    let mut tx = store.begin().await.unwrap();
    let DocInsert::New(three) = tx.insert_document(&new_document(&net.verified(&third), 5)).await.unwrap() else {
        panic!("not new")
    };
    let routes: Vec<NewRoute> =
        many.iter().map(|r| NewRoute { recipient: r, next_hop: Some(&ha_lau), state: "pending" }).collect();
    tx.add_routes(three, &routes, 5).await.unwrap();
    tx.commit().await.unwrap();
    // ECDSA signatures differ each time: 100 receipts of one content, 100 digests.
    let hops: Vec<SignedReceipt> =
        (0..100).map(|_| receipt(&net, ReceiptKind::Hop, &third, HA_LAU, TIEN_YEN, &[HA_LAU])).collect();
    let mut offered: Vec<(&SignedReceipt, &str)> = hops.iter().map(|r| (r, HA_LAU)).collect();
    offered.push((&hops[7], HA_LAU));
    let leaves = store.log_sizes().await.unwrap().1;
    let mut tx = store.begin().await.unwrap();
    let new = tx.insert_receipts(&offered, 6).await.unwrap();
    let rows: std::collections::HashSet<i64> = new.iter().flatten().copied().collect();
    assert_eq!(rows.len(), 100, "each once, each its own row, the repeat not new");
    assert_eq!(new[100], None);
    let changes: Vec<(i64, AgencyCode, &str)> =
        many.iter().enumerate().map(|(i, r)| (three, *r, if i % 3 == 0 { "delivered" } else { "forwarded" })).collect();
    tx.keep_route_states(&changes, 7).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.receipts_for(&third.digest).await.unwrap().len(), 100);
    assert_eq!(store.log_sizes().await.unwrap().1, leaves + 100);
    let states = store.routes(three).await.unwrap();
    assert_eq!(states.len(), 300);
    let delivered = states.iter().filter(|(_, _, s)| s == "delivered").count();
    let forwarded = states.iter().filter(|(_, _, s)| s == "forwarded").count();
    assert_eq!((delivered, forwarded), (100, 200));
    store.close().await;
}

/// A revocation that overtook its document on the way is in the inbox when the document comes:
/// the document's new inbox entry (`Tx::inbox_add_new`, kept with the next statement) is
/// written marked, in the words the inbox shows.
async fn a_new_inbox_entry_is_marked_by_the_revocation_that_overtook_it(database: Database) {
    let (net, store) = open(database).await;
    let original = net.document(PHONG_DU, &[TIEN_YEN], 20);
    let mut revoke = net.document(PHONG_DU, &[TIEN_YEN], 21);
    revoke.manifest.business = pki::document::Business::Revoke(original.manifest.id());
    let revoke = net.sign(revoke.manifest.clone(), revoke.bodies.clone());
    for (i, doc) in [&revoke, &original].into_iter().enumerate() {
        let at = i as i64 + 1;
        let mut tx = store.begin().await.unwrap();
        let DocInsert::New(id) = tx.insert_document(&new_document(&net.verified(doc), at)).await.unwrap() else {
            panic!("not new")
        };
        tx.inbox_add_new(id, &doc.id, at).await.unwrap();
        tx.commit().await.unwrap();
    }
    let inbox = store.inbox(10).await.unwrap();
    let marked = |id: &str| inbox.iter().find(|e| e.document == id).map(|e| e.superseded.clone());
    assert_eq!(marked(&original.id), Some(Some(format!("revoked by {}", revoke.id))));
    assert_eq!(marked(&revoke.id), Some(None), "the revocation itself is not marked");
    store.close().await;
}

/// Documents taken together (`intake::together`): their rows in one statement a table. Each
/// new document gets its row, with its attachments and its log leaf; one stored before, one
/// whose id came earlier in the same insert, and another envelope with a stored id get none
/// (their intakes take them alone). Their transfers the same way: each queued once, a repeat
/// in the statement or one queued before not. Past a statement's worth (60 documents, 130
/// transfers) several statements, every row once.
async fn documents_taken_together_take_one_statement_a_table(database: Database) {
    let (net, store) = open(database).await;
    store.keep_log(code(TIEN_YEN));
    let ha_lau = code(HA_LAU);
    let docs: Vec<SignedDocument> = (1..=4).map(|i| net.document(PHONG_DU, &[HA_LAU], 20 + i)).collect();
    let verified: Vec<VerifiedEnvelope> = docs.iter().map(|d| net.verified(d)).collect();
    let resigned = net.verified(&net.sign(docs[1].manifest.clone(), docs[1].bodies.clone()));
    let mut tx = store.begin().await.unwrap();
    let DocInsert::New(before) = tx.insert_document(&new_document(&verified[0], 1)).await.unwrap() else {
        panic!("not new")
    };
    tx.enqueue(TransferKind::Document(before), &ha_lau, &[ha_lau], 1).await.unwrap();
    tx.commit().await.unwrap();
    let leaves = store.log_sizes().await.unwrap().1;

    let offered = [&verified[1], &verified[0], &verified[2], &verified[1], &resigned, &verified[3]];
    let new: Vec<NewDocument> = offered.iter().map(|v| new_document(v, 2)).collect();
    let mut tx = store.begin().await.unwrap();
    let ids = tx.insert_new_documents(&new).await.unwrap();
    let inserted: Vec<bool> = ids.iter().map(Option::is_some).collect();
    assert_eq!(inserted, [true, false, true, false, false, true], "{ids:?}");
    let (one, two, three) = (ids[0].unwrap(), ids[2].unwrap(), ids[5].unwrap());
    let transfer =
        |id, recipients| NewTransfer { kind: TransferKind::Document(id), next_hop: &ha_lau, recipients, due: 9 };
    let only_ha_lau = [ha_lau];
    let queued = tx
        .enqueue_all_due(
            &[
                transfer(three, &only_ha_lau),
                transfer(one, &only_ha_lau),
                transfer(before, &only_ha_lau),
                transfer(two, &only_ha_lau),
                transfer(one, &only_ha_lau),
            ],
            2,
        )
        .await
        .unwrap();
    let fresh: Vec<bool> = queued.iter().map(Option::is_some).collect();
    assert_eq!(fresh, [true, true, false, true, false], "{queued:?}");
    assert!(tx.queued(), "rows queued: the outbox is to be woken");
    tx.commit().await.unwrap();
    for (doc, id) in [(&docs[1], one), (&docs[2], two), (&docs[3], three)] {
        let stored = store.document_by_id(&doc.id).await.unwrap().unwrap();
        assert_eq!((stored.id, stored.digest, stored.envelope.as_slice()), (id, doc.digest, doc.envelope.as_slice()));
        assert_eq!(store.attachments(id).await.unwrap().len(), 1, "{}", doc.id);
    }
    assert_eq!(store.log_sizes().await.unwrap().1, leaves + 3, "a leaf for each document inserted");
    // The duplicate checks of several intakes in one statement: each stored document once,
    // whatever the order and repeats asked; one never stored is not in the answer.
    let asked = [docs[3].id.as_str(), "000.01.41.H49-2026-999", docs[1].id.as_str(), docs[3].id.as_str()];
    let mut found: Vec<(String, i64)> =
        store.documents_by_ids(&asked).await.unwrap().into_iter().map(|d| (d.doc_id, d.id)).collect();
    found.sort();
    let mut want = vec![(docs[1].id.clone(), one), (docs[3].id.clone(), three)];
    want.sort();
    assert_eq!(found, want);
    assert!(store.documents_by_ids(&[]).await.unwrap().is_empty());
    // The same by envelope digest, inside a transaction (the statuses of a request of notices
    // that set routes): rows of those stored, whatever the repeats; an unknown digest left out.
    let mut tx = store.begin().await.unwrap();
    let rows = tx.document_rows_by_digests(&[docs[3].digest, [7; 32], docs[1].digest, docs[3].digest]).await.unwrap();
    assert_eq!(rows, [(docs[1].digest, one), (docs[3].digest, three)].into_iter().collect());
    assert!(tx.document_rows_by_digests(&[]).await.unwrap().is_empty());
    tx.rollback().await.unwrap();
    let depths = store.queue_depths(3).await.unwrap();
    assert_eq!(depths.pending, 4, "one queued before and three now: {depths:?}");
    assert!(store.claim_due("a", 3, 31_000, 10).await.unwrap().len() == 1, "only the one due before 9 is claimed");

    // Nothing new: nothing inserted, nothing queued.
    let mut tx = store.begin().await.unwrap();
    let again = tx.insert_new_documents(&new[..3]).await.unwrap();
    assert_eq!(again, [None, None, None]);
    assert!(tx.enqueue_all_due(&[transfer(one, &only_ha_lau)], 4).await.unwrap()[0].is_none());
    assert!(!tx.queued());
    tx.rollback().await.unwrap();

    // Past a statement's worth of each.
    let many: Vec<SignedDocument> = (0..60).map(|i| net.document(PHONG_DU, &[HA_LAU], 100 + i)).collect();
    let many_verified: Vec<VerifiedEnvelope> = many.iter().map(|d| net.verified(d)).collect();
    let new: Vec<NewDocument> = many_verified.iter().map(|v| new_document(v, 5)).collect();
    let recipients: Vec<[AgencyCode; 1]> =
        (0..130).map(|i| [code(&format!("{:03}.{:02}.43.H49", i / 99, i % 99 + 1))]).collect();
    let leaves = store.log_sizes().await.unwrap().1;
    let mut tx = store.begin().await.unwrap();
    let ids = tx.insert_new_documents(&new).await.unwrap();
    assert!(ids.iter().all(Option::is_some), "{ids:?}");
    let distinct: std::collections::HashSet<i64> = ids.iter().flatten().copied().collect();
    assert_eq!(distinct.len(), 60);
    let transfers: Vec<NewTransfer> = recipients.iter().map(|r| transfer(one, r)).collect();
    let queued = tx.enqueue_all_due(&transfers, 5).await.unwrap();
    assert_eq!(queued.iter().flatten().collect::<std::collections::HashSet<_>>().len(), 130);
    tx.commit().await.unwrap();
    for (doc, id) in many.iter().zip(&ids) {
        assert_eq!(store.document_by_id(&doc.id).await.unwrap().map(|d| d.id), *id, "{}", doc.id);
    }
    assert_eq!(store.log_sizes().await.unwrap().1, leaves + 60);
    assert_eq!(store.queue_depths(6).await.unwrap().pending, 4 + 130);
    store.close().await;
}
