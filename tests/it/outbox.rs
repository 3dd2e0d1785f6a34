//! The outbox under load: transfers waiting for one neighbour do not hold up the transfers to
//! the others.

use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use harness::network::{Database, NetOptions, RawPeer, SignedDocument, TestNet, only, submit_all, topology, wait_for};
use harness::silent_peer::SilentPeer;
use pki::AgencyCode;
use pki::Profile;

const TIEN_YEN: &str = "000.00.41.H49";
const PHONG_DU: &str = "000.01.41.H49";
const HA_LAU: &str = "000.02.41.H49";

fn code(s: &str) -> AgencyCode {
    s.parse().unwrap()
}

on_both_backends!(
    a_hung_neighbour_does_not_hold_up_the_others,
    receipts_for_one_neighbour_go_in_batches,
    a_quiet_nodes_receipts_gather_for_the_linger,
    a_document_goes_on_from_its_intake_without_being_read_back,
    next_hops_answers_are_recorded_together,
    an_answer_the_database_refuses_fails_only_its_transfer,
    statuses_stored_apart_from_their_hop_receipt_are_lost_only_if_refused_alone,
    a_hand_off_that_falls_due_is_sent_with_its_document,
    a_request_of_notices_is_kept_and_passed_on_together
);

/// Tiên Yên has 124 documents for Phong Dụ, whose node hangs (accepts and never answers):
/// they stay in flight, 32 attempts hanging and the rest waiting for a slot. A document for
/// Hà Lâu, submitted after them, still goes within seconds. (On SQLite a claim is a plain read
/// that returns the running transfers too; asking for only as many rows as there was room for
/// returned the oldest, running ones, and new work waited until the hung attempts timed out.
/// And with 124 of the outbox's 128 places taken, fewer than `CLAIM_AT_LEAST` are free: a
/// wake-up claims nothing, and the claim comes when the outbox's wait runs out.)
async fn a_hung_neighbour_does_not_hold_up_the_others(database: Database) {
    harness::logging();
    let mut options = NetOptions { database, ..NetOptions::default() };
    // The hung attempts last the whole test.
    options.extra_config.push_str("\n[limits]\nrequest_timeout = \"120s\"\n");
    let mut net = TestNet::prepare(only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU, HA_LAU]), options);
    net.start_node(&code(TIEN_YEN)).await;
    net.start_node(&code(HA_LAU)).await;
    let _silent = SilentPeer::start(&mut net, &code(PHONG_DU));
    let clerk = net.clerk(TIEN_YEN).await;
    for i in 1..=124 {
        net.document(TIEN_YEN, &[PHONG_DU], i).submit(&clerk).await.unwrap();
    }
    let doc = net.document(TIEN_YEN, &[HA_LAU], 1_000);
    doc.submit(&clerk).await.unwrap();
    let ha_lau = net.node(HA_LAU);
    wait_for("the document for Hà Lâu delivered", Duration::from_secs(15), || async {
        ha_lau.store.document_by_id(&doc.id).await.unwrap().is_some()
    })
    .await;
    clerk.close().await;
    net.stop().await;
}

/// Phong Dụ's node hands Tiên Yên 200 documents for it, 64 at a time; each delivery receipt
/// goes back with its hop receipt (Tiên Yên's node answers the node that is the way back to
/// the sender). Then Tiên Yên's clerk accepts all 200, 64 at a time: Tiên Yên owes Phong Dụ
/// 200 statuses 03, and sends them in batches — while one batch is on its way, those falling
/// due wait and go together in the next — instead of one request each. All 200 arrive.
async fn receipts_for_one_neighbour_go_in_batches(database: Database) {
    let mut net = TestNet::prepare(
        only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]),
        NetOptions { database, ..NetOptions::default() },
    );
    net.start_node(&code(PHONG_DU)).await;
    net.start_node(&code(TIEN_YEN)).await;
    let identity = net.identity(&code(PHONG_DU), Profile::Node);
    let peer = Arc::new(RawPeer::connect(&net, &identity, TIEN_YEN).await);
    let slots = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    for i in 1..=200 {
        let doc = Arc::new(net.document(PHONG_DU, &[TIEN_YEN], i));
        let permit = slots.clone().acquire_owned().await.unwrap();
        let peer = peer.clone();
        tasks.push(tokio::spawn(async move {
            let (_, statuses) = peer.taken(&doc, &[TIEN_YEN], true).await;
            drop(permit);
            assert_eq!(statuses.len(), 1, "{statuses:?}");
            doc.id.clone()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    let clerk = Arc::new(net.clerk(TIEN_YEN).await);
    let mut tasks = Vec::new();
    for id in ids {
        let permit = slots.clone().acquire_owned().await.unwrap();
        let clerk = clerk.clone();
        tasks.push(tokio::spawn(async move {
            clerk.post_status(&id, 3, None).await.unwrap();
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let phong_du = net.node(PHONG_DU);
    wait_for("the 200 statuses at Phong Dụ", Duration::from_secs(60), || async {
        phong_du.observed.metrics().notices_in.load(Ordering::Relaxed) >= 200
    })
    .await;
    let (notices, batches) = (
        phong_du.observed.metrics().notices_in.load(Ordering::Relaxed),
        phong_du.observed.metrics().notice_batches_in.load(Ordering::Relaxed),
    );
    println!("{notices} receipts came in {batches} requests");
    assert_eq!(notices, 200, "all 200 statuses");
    assert!(batches <= 100, "{notices} receipts in {batches} requests: not batched");
    net.stop().await;
}

/// A quiet node gathers its receipts for one neighbour for `limits.notice_linger`: Tiên Yên's
/// clerk accepts four documents from Phong Dụ, 40 ms apart. With a linger of a second the four
/// statuses 03 reach Phong Dụ in one request; with none, each goes as soon as it is due, in
/// requests of their own.
async fn a_quiet_nodes_receipts_gather_for_the_linger(database: Database) {
    for (linger, gathered) in [("1s", true), ("0s", false)] {
        let mut options = NetOptions { database, ..NetOptions::default() };
        options.extra_config.push_str(&format!("\n[limits]\nnotice_linger = \"{linger}\"\n"));
        let mut net = TestNet::prepare(only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]), options);
        net.start_node(&code(PHONG_DU)).await;
        net.start_node(&code(TIEN_YEN)).await;
        let identity = net.identity(&code(PHONG_DU), Profile::Node);
        let peer = RawPeer::connect(&net, &identity, TIEN_YEN).await;
        let mut ids = Vec::new();
        for i in 1..=4 {
            let doc = net.document(PHONG_DU, &[TIEN_YEN], i);
            peer.taken(&doc, &[TIEN_YEN], true).await;
            ids.push(doc.id.clone());
        }
        let clerk = net.clerk(TIEN_YEN).await;
        for id in &ids {
            clerk.post_status(id, 3, None).await.unwrap();
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        let phong_du = net.node(PHONG_DU);
        let metrics = phong_du.observed.metrics();
        wait_for("the 4 statuses at Phong Dụ", Duration::from_secs(30), || async {
            metrics.notices_in.load(Ordering::Relaxed) >= 4
        })
        .await;
        let batches = metrics.notice_batches_in.load(Ordering::Relaxed);
        if gathered {
            assert_eq!(batches, 1, "linger {linger}: the 4 statuses in {batches} requests");
        } else {
            assert!(batches >= 2, "linger {linger}: the 4 statuses in {batches} request: gathered without a linger");
        }
        assert_eq!(metrics.notices_in.load(Ordering::Relaxed), 4);
        clerk.close().await;
        net.stop().await;
    }
}

/// Phong Dụ's clerk sends 64 documents to Hà Lâu through Tiên Yên, 16 at a time. Each node
/// on the way hands the transfer its intake queued straight to its outbox with the document
/// (`outbound::handoff`), instead of the outbox claiming it and reading it back: all of them,
/// although under this load the outbox claims from the database all the time (the transfers
/// are due only `HANDOFF_GRACE` after their intake, so a claim in the instant between a
/// commit and its hand-off does not take them first). Tiên Yên passes most on while it
/// commits them (`outbound::cut_through`). Every document arrives once, no node is sent one
/// twice, and each hand-over is recorded once.
async fn a_document_goes_on_from_its_intake_without_being_read_back(database: Database) {
    let net = TestNet::start(
        only(&topology("quang-ninh-2024"), &[PHONG_DU, TIEN_YEN, HA_LAU]),
        NetOptions { database, ..NetOptions::default() },
    )
    .await;
    let clerk = Arc::new(net.clerk(PHONG_DU).await);
    const N: u64 = 64;
    let docs: Vec<_> = (1..=N).map(|i| Arc::new(net.document(PHONG_DU, &[HA_LAU], i as u32))).collect();
    submit_all(&clerk, &docs, 16).await;
    let ha_lau = net.node(HA_LAU);
    wait_for("the documents at Hà Lâu", Duration::from_secs(30), || async {
        for doc in &docs {
            if ha_lau.store.document_by_id(&doc.id).await.unwrap().is_none() {
                return false;
            }
        }
        true
    })
    .await;
    for hop in [PHONG_DU, TIEN_YEN] {
        let m = net.node(hop).observed.metrics();
        wait_for("every hand-over recorded", Duration::from_secs(15), || async {
            m.documents_out.load(Ordering::Relaxed) >= N
        })
        .await;
        let (out, from_intake) = (m.documents_out.load(Ordering::Relaxed), m.sent_from_intake.load(Ordering::Relaxed));
        println!("{hop}: {out} handed over, {from_intake} of them sent from their intake");
        assert_eq!(out, N, "{hop}: each document handed over once");
        assert_eq!(from_intake, N, "{hop}: {from_intake} of {N} sent from their intake");
        // Tiên Yên takes them from a neighbour and passes them on while it commits, those for
        // which one of Hà Lâu's 32 places is free (Phong Dụ may have 32 on their way to it: 40
        // to 64 of the 64 went early in the runs seen); Phong Dụ takes them from its clerk
        // and never does.
        let early = m.passed_before_commit.load(Ordering::Relaxed);
        println!("{hop}: {early} passed on before their intake's commit");
        if hop == PHONG_DU {
            assert_eq!(early, 0, "a clerk's document went on before its agency's node took it");
        } else {
            assert!(early > 0, "{hop}: none of {N} passed on before the commit");
        }
    }
    // Each sent once: a hand-over whose answer was not recorded would be sent again once due,
    // and answered from storage.
    for hop in [TIEN_YEN, HA_LAU] {
        let again = net.node(hop).observed.metrics().duplicates_in.load(Ordering::Relaxed);
        assert_eq!(again, 0, "{hop} was sent {again} documents twice");
    }
    // Hà Lâu's status 01 for Phong Dụ came to Tiên Yên with each hop receipt: Tiên Yên records
    // those answers as plain ones (`outbound::answers`, several a transaction when they come
    // at once) and passes each status on to Phong Dụ as a notice, where it marks the route.
    let passing = net.node(TIEN_YEN).observed.metrics();
    let (recorded, statuses) = (
        passing.answer_transactions.load(Ordering::Relaxed),
        passing.statuses_with_receipts_in.load(Ordering::Relaxed),
    );
    println!("{TIEN_YEN}: {N} answers with a status to pass on recorded in {recorded} transactions");
    assert!((1..=N).contains(&recorded), "{TIEN_YEN}: {recorded} transactions of plain answers");
    assert_eq!(statuses, N, "{TIEN_YEN}: each status taken once");
    let phong_du = net.node(PHONG_DU);
    wait_for("every status 01 at Phong Dụ", Duration::from_secs(30), || async {
        for doc in &docs {
            let sent = phong_du.store.document_by_id(&doc.id).await.unwrap().unwrap();
            if phong_du.store.routes(sent.id).await.unwrap()[0].2 != "delivered" {
                return false;
            }
        }
        true
    })
    .await;
    if let Ok(clerk) = Arc::try_unwrap(clerk) {
        clerk.close().await;
    }
    net.stop().await;
}

/// `limits.pass_on_before_commit = false` (an operator who wants every document committed
/// before it leaves): Tiên Yên passes none on early, and all still arrive once, each handed
/// over from its intake after the commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_pass_on_before_commit_off_every_document_is_committed_before_it_leaves() {
    let mut options = NetOptions::default();
    options.extra_config = format!("[limits]\npass_on_before_commit = false\n\n{}", options.extra_config);
    let net = TestNet::start(only(&topology("quang-ninh-2024"), &[PHONG_DU, TIEN_YEN, HA_LAU]), options).await;
    let clerk = net.clerk(PHONG_DU).await;
    const N: u64 = 8;
    let docs: Vec<_> = (1..=N).map(|i| net.document(PHONG_DU, &[HA_LAU], i as u32)).collect();
    for doc in &docs {
        doc.submit(&clerk).await.unwrap();
    }
    let ha_lau = net.node(HA_LAU);
    wait_for("the documents at Hà Lâu", Duration::from_secs(30), || async {
        ha_lau.observed.metrics().documents_in.load(Ordering::Relaxed) >= N
    })
    .await;
    let m = net.node(TIEN_YEN).observed.metrics();
    wait_for("every hand-over recorded", Duration::from_secs(15), || async {
        m.documents_out.load(Ordering::Relaxed) >= N
    })
    .await;
    assert_eq!(m.passed_before_commit.load(Ordering::Relaxed), 0, "passed on before the commit although off");
    assert_eq!(m.sent_from_intake.load(Ordering::Relaxed), N, "each handed over from its intake after the commit");
    assert_eq!(ha_lau.observed.metrics().duplicates_in.load(Ordering::Relaxed), 0);
    clerk.close().await;
    net.stop().await;
}

/// Phong Dụ's clerk sends Tiên Yên 96 documents, 32 at a time; Tiên Yên's node answers each
/// with its hop receipt and its "arrived" status for Phong Dụ, which Phong Dụ's node serves:
/// plain answers, recorded several to a transaction (`outbound::answers`). Each transfer is
/// finished once, with its two receipts stored and the document's route delivered, and none
/// is sent twice.
async fn next_hops_answers_are_recorded_together(database: Database) {
    let net = TestNet::start(
        only(&topology("quang-ninh-2024"), &[PHONG_DU, TIEN_YEN]),
        NetOptions { database, ..NetOptions::default() },
    )
    .await;
    let clerk = Arc::new(net.clerk(PHONG_DU).await);
    const N: u64 = 96;
    let docs: Vec<_> = (1..=N).map(|i| Arc::new(net.document(PHONG_DU, &[TIEN_YEN], i as u32))).collect();
    submit_all(&clerk, &docs, 32).await;
    let phong_du = net.node(PHONG_DU);
    let m = phong_du.observed.metrics();
    wait_for("every hand-over recorded", Duration::from_secs(30), || async {
        m.documents_out.load(Ordering::Relaxed) >= N
    })
    .await;
    let transactions = m.answer_transactions.load(Ordering::Relaxed);
    println!("{N} answers recorded in {transactions} transactions");
    assert_eq!(m.documents_out.load(Ordering::Relaxed), N, "each document handed over once");
    // Answers that come while one is recorded wait and go together (19-31 transactions for
    // 96 in the runs seen): fewer transactions than answers.
    assert!((1..N).contains(&transactions), "{transactions} transactions of answers for {N}");
    assert_eq!(
        m.statuses_with_receipts_in.load(Ordering::Relaxed),
        N,
        "each arrived status taken with its hop receipt"
    );
    for doc in &docs {
        let stored = phong_du.store.document_by_id(&doc.id).await.unwrap().unwrap();
        let routes = phong_du.store.routes(stored.id).await.unwrap();
        assert_eq!(routes, [(TIEN_YEN.to_owned(), Some(TIEN_YEN.to_owned()), "delivered".to_owned())], "{}", doc.id);
        assert_eq!(
            phong_du.store.receipts_for(&doc.digest).await.unwrap().len(),
            2,
            "{}: hop receipt and status",
            doc.id
        );
    }
    assert_eq!(
        phong_du.store.queue_depths(node::storage::millis(time::OffsetDateTime::now_utc())).await.unwrap().done,
        N as i64,
        "every transfer finished"
    );
    let again = net.node(TIEN_YEN).observed.metrics().duplicates_in.load(Ordering::Relaxed);
    assert_eq!(again, 0, "Tiên Yên was sent {again} documents twice");
    if let Ok(clerk) = Arc::try_unwrap(clerk) {
        clerk.close().await;
    }
    net.stop().await;
}

/// Phong Dụ's database refuses (by a trigger) to store Tiên Yên's hop receipts for eight of 48
/// documents sent at once. A transaction of answers holding one of them fails and is done
/// again one answer at a time (`outbound::answers`): the others are finished with their
/// receipts and routes, and only the eight transfers fail, stay pending, and are recorded
/// once the database takes them again.
async fn an_answer_the_database_refuses_fails_only_its_transfer(database: Database) {
    harness::logging();
    let net = TestNet::start(
        only(&topology("quang-ninh-2024"), &[PHONG_DU, TIEN_YEN]),
        NetOptions { database, ..NetOptions::default() },
    )
    .await;
    const N: u32 = 48;
    let docs: Vec<_> = (1..=N).map(|i| Arc::new(net.document(PHONG_DU, &[TIEN_YEN], i))).collect();
    // Eight, so that some come while others are recorded (one alone is recorded alone).
    let refused: Vec<&Arc<SignedDocument>> = docs.iter().step_by(6).collect();
    let ids = refused.iter().map(|d| format!("'{}'", d.id)).collect::<Vec<_>>().join(", ");
    let db = net.raw_pool(&code(PHONG_DU)).await;
    let (create, drop_it) = match database {
        Database::Postgres => (
            format!(
                "CREATE FUNCTION refuse_receipt() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
                 CREATE TRIGGER refuse BEFORE INSERT ON receipts FOR EACH ROW WHEN (NEW.kind = 'hop' AND NEW.doc_id IN ({ids})) EXECUTE FUNCTION refuse_receipt()"
            ),
            "DROP TRIGGER refuse ON receipts",
        ),
        Database::Sqlite => (
            format!(
                "CREATE TRIGGER refuse BEFORE INSERT ON receipts WHEN NEW.kind = 'hop' AND NEW.doc_id IN ({ids})
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            ),
            "DROP TRIGGER refuse",
        ),
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(create)).execute(&db).await.unwrap();

    let clerk = Arc::new(net.clerk(PHONG_DU).await);
    submit_all(&clerk, &docs, N as usize).await;
    let phong_du = net.node(PHONG_DU);
    let m = phong_du.observed.metrics();
    let route = |doc: Arc<SignedDocument>| async move {
        let stored = phong_du.store.document_by_id(&doc.id).await.unwrap().unwrap();
        phong_du.store.routes(stored.id).await.unwrap().remove(0).2
    };
    let others = u64::from(N) - refused.len() as u64;
    wait_for("the others handed over", Duration::from_secs(30), || async {
        m.documents_out.load(Ordering::Relaxed) >= others
    })
    .await;
    wait_for("the refused answers' transfers tried again", Duration::from_secs(30), || async {
        m.retries.load(Ordering::Relaxed) >= 2 * refused.len() as u64
    })
    .await;
    assert_eq!(m.documents_out.load(Ordering::Relaxed), others, "all but the refused ones recorded");
    let redone = m.answer_transactions_redone.load(Ordering::Relaxed);
    assert!(redone >= 1, "no transaction of several answers held a refused one: the fallback did not run");
    for doc in &docs {
        let (state, receipts) = (route(doc.clone()).await, phong_du.store.receipts_for(&doc.digest).await.unwrap());
        if refused.iter().any(|r| r.id == doc.id) {
            assert_eq!(state, "pending", "the refused answer's route");
            assert!(receipts.is_empty(), "nothing of the refused answer kept: {receipts:?}");
        } else {
            assert_eq!((state.as_str(), receipts.len()), ("delivered", 2), "{}", doc.id);
        }
    }
    let errors: Vec<String> =
        sqlx::query_scalar("SELECT last_error FROM outbox WHERE state = 'pending'").fetch_all(&db).await.unwrap();
    assert_eq!(errors.len(), refused.len(), "the refused answers' transfers pending: {errors:?}");
    assert!(errors.iter().all(|e| e.contains("refused by the test")), "{errors:?}");

    sqlx::raw_sql(drop_it).execute(&db).await.unwrap();
    wait_for("the refused answers recorded once the database takes them", Duration::from_secs(30), || async {
        m.documents_out.load(Ordering::Relaxed) == u64::from(N)
    })
    .await;
    for doc in refused {
        assert_eq!(route(doc.clone()).await, "delivered");
        assert_eq!(phong_du.store.receipts_for(&doc.digest).await.unwrap().len(), 2);
    }
    let transactions = m.answer_transactions.load(Ordering::Relaxed);
    println!("{N} answers recorded in {transactions} transactions; {redone} redone one answer at a time");
    db.close().await;
    if let Ok(clerk) = Arc::try_unwrap(clerk) {
        clerk.close().await;
    }
    net.stop().await;
}

/// Tiên Yên's answer to a document carries its hop receipt and the recipient's delivery
/// receipt (01) for Phong Dụ, the sender's node, which records them in one transaction. When
/// the database refuses that transaction, the hop receipt is recorded without the status (a
/// status the database refuses must not hold the transfer back until it dies), and the status
/// is then stored in a transaction of its own: it rode in the answer only, and the refusal may
/// not have been its own. On PostgreSQL, first a document whose hop receipt's row is refused
/// once (a trigger counting with a sequence, which no rollback takes back): its 01 is kept and
/// its route delivered, nothing lost, no attempt failed. (Before, the 01 was dropped with the
/// refusal and the route stayed `forwarded` for good; the race of a refusal that goes away
/// between the two records, seen once in CI.) Then, on both backends, a document whose 01 the
/// database always refuses: its hop receipt is recorded at the transfer's first attempt, the
/// route stays `forwarded`, and the lost status is counted (`statuses_lost`). (SQLite has no
/// trigger that refuses once: a rollback takes back whatever it would count with.)
async fn statuses_stored_apart_from_their_hop_receipt_are_lost_only_if_refused_alone(database: Database) {
    harness::logging();
    let net = TestNet::start(
        only(&topology("quang-ninh-2024"), &[PHONG_DU, TIEN_YEN]),
        NetOptions { database, ..NetOptions::default() },
    )
    .await;
    let db = net.raw_pool(&code(PHONG_DU)).await;
    let clerk = net.clerk(PHONG_DU).await;
    let phong_du = net.node(PHONG_DU);
    let m = phong_du.observed.metrics();
    let route = |doc: &SignedDocument| {
        let id = doc.id.clone();
        async move {
            let stored = phong_du.store.document_by_id(&id).await.unwrap().unwrap();
            phong_du.store.routes(stored.id).await.unwrap().remove(0).2
        }
    };
    let mut sent = 0;
    if database == Database::Postgres {
        let once = net.document(PHONG_DU, &[TIEN_YEN], 1);
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE SEQUENCE refusals;
             CREATE FUNCTION refuse_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
                 IF nextval('refusals') = 1 THEN RAISE EXCEPTION 'refused once by the test'; END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_once BEFORE INSERT ON receipts FOR EACH ROW
                 WHEN (NEW.kind = 'hop' AND NEW.doc_id = '{}') EXECUTE FUNCTION refuse_once()",
            once.id
        )))
        .execute(&db)
        .await
        .unwrap();
        once.submit(&clerk).await.unwrap();
        sent += 1;
        wait_for("the document refused once handed over", Duration::from_secs(30), || async {
            m.documents_out.load(Ordering::Relaxed) >= sent
        })
        .await;
        let refusals: i64 = sqlx::query_scalar("SELECT last_value FROM refusals").fetch_one(&db).await.unwrap();
        assert_eq!(refusals, 2, "the hop receipt's row refused once, then taken");
        assert_eq!(route(&once).await, "delivered", "the 01 kept although its first record was refused");
        assert_eq!(phong_du.store.receipts_for(&once.digest).await.unwrap().len(), 2, "the hop receipt and the 01");
        assert_eq!(m.statuses_lost.load(Ordering::Relaxed), 0);
    }

    let refused = net.document(PHONG_DU, &[TIEN_YEN], 2);
    let create = match database {
        Database::Postgres => format!(
            "CREATE FUNCTION refuse_status() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'status refused by the test'; END $$;
             CREATE TRIGGER refuse_status BEFORE INSERT ON receipts FOR EACH ROW
                 WHEN (NEW.kind = 'status' AND NEW.doc_id = '{}') EXECUTE FUNCTION refuse_status()",
            refused.id
        ),
        Database::Sqlite => format!(
            "CREATE TRIGGER refuse_status BEFORE INSERT ON receipts WHEN NEW.kind = 'status' AND NEW.doc_id = '{}'
             BEGIN SELECT RAISE(ABORT, 'status refused by the test'); END",
            refused.id
        ),
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(create)).execute(&db).await.unwrap();
    refused.submit(&clerk).await.unwrap();
    sent += 1;
    wait_for("the document whose 01 is refused handed over", Duration::from_secs(30), || async {
        m.documents_out.load(Ordering::Relaxed) >= sent
    })
    .await;
    assert_eq!(route(&refused).await, "forwarded", "the hop receipt recorded, the 01 not");
    assert_eq!(phong_du.store.receipts_for(&refused.digest).await.unwrap().len(), 1, "the hop receipt alone");
    assert_eq!(m.statuses_lost.load(Ordering::Relaxed), 1, "the refused 01 counted as lost");
    let attempts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, attempts FROM outbox WHERE document IN (SELECT id FROM documents WHERE doc_id = $1)",
    )
    .bind(&refused.id)
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(
        attempts,
        [("done".to_string(), 0)],
        "the transfer finished at its first attempt, not held back by its 01"
    );
    db.close().await;
    clerk.close().await;
    net.stop().await;
}

/// Phong Dụ's clerk sends 1,000 documents to Tiên Yên, which Phong Dụ's node passes on one at
/// a time (`limits.max_in_flight_per_peer = 1`): most wait in the hand-off queue longer than
/// its grace, fall due and are claimed from the database. Each is still sent with the document
/// its intake held (`outbound::handoff`), none read back, and each arrives once.
async fn a_hand_off_that_falls_due_is_sent_with_its_document(database: Database) {
    let mut options = NetOptions { database, ..NetOptions::default() };
    options.extra_config.push_str("\n[limits]\nmax_in_flight_per_peer = 1\n");
    let net = TestNet::start(only(&topology("quang-ninh-2024"), &[PHONG_DU, TIEN_YEN]), options).await;
    let clerk = Arc::new(net.clerk(PHONG_DU).await);
    const N: u64 = 1_000;
    let docs: Vec<_> = (1..=N).map(|i| Arc::new(net.document(PHONG_DU, &[TIEN_YEN], i as u32))).collect();
    let start = std::time::Instant::now();
    submit_all(&clerk, &docs, 32).await;
    let submitted = start.elapsed();
    let m = net.node(PHONG_DU).observed.metrics();
    wait_for("every hand-over recorded", Duration::from_secs(120), || async {
        m.documents_out.load(Ordering::Relaxed) >= N
    })
    .await;
    let drained = start.elapsed();
    let from_intake = m.sent_from_intake.load(Ordering::Relaxed);
    println!(
        "{N} documents taken in {submitted:?}, handed over in {drained:?}, {from_intake} sent with their document in memory"
    );
    assert!(
        drained > submitted + Duration::from_millis(1_500),
        "the documents were passed on within the hand-off's grace after the last was taken: nothing fell due"
    );
    assert_eq!(from_intake, N, "{} documents read back from the database", N - from_intake);
    assert_eq!(m.documents_out.load(Ordering::Relaxed), N);
    assert_eq!(net.node(TIEN_YEN).observed.metrics().duplicates_in.load(Ordering::Relaxed), 0);
    if let Ok(clerk) = Arc::try_unwrap(clerk) {
        clerk.close().await;
    }
    net.stop().await;
}

/// Hà Lâu (a raw peer) sends Tiên Yên one request of notices about eight documents Phong Dụ
/// sent it through Tiên Yên: a status 03 of each for Phong Dụ (to pass on), the first of them
/// twice, Hà Lâu's delivery receipt of one (Tiên Yên kept it when it came with the hop
/// receipt) and a hop receipt addressed to Tiên Yên (kept there). Tiên Yên keeps them
/// together (`notices::keep_all`; the statements are counted by the four-hop measurements,
/// BENCHMARKS.md): each new one is taken once, each status 03 queued once toward Phong Dụ and
/// kept there, and nothing else leaves.
async fn a_request_of_notices_is_kept_and_passed_on_together(database: Database) {
    use node::protocol::{NodeRequest, NodeResponse};
    use pki::document::{ReceiptKind, StatusCode};
    use serde_bytes::ByteBuf;
    let net = TestNet::start(
        only(&topology("quang-ninh-2024"), &[PHONG_DU, TIEN_YEN, HA_LAU]),
        NetOptions { database, ..NetOptions::default() },
    )
    .await;
    let clerk = Arc::new(net.clerk(PHONG_DU).await);
    const N: usize = 8;
    let docs: Vec<_> = (1..=N).map(|i| Arc::new(net.document(PHONG_DU, &[HA_LAU], i as u32))).collect();
    submit_all(&clerk, &docs, N).await;
    let tien_yen = net.node(TIEN_YEN);
    // The receipts `node` keeps about `doc`, as bytes.
    let kept = |node: &'static str, doc: Arc<SignedDocument>| {
        let node = net.node(node);
        async move { node.store.receipts_for(&doc.digest).await.unwrap().into_iter().map(|r| r.bytes).collect::<Vec<_>>() }
    };
    let kind = |bytes: &[u8]| pki::document::SignedReceipt::from_bytes(bytes).unwrap().receipt.kind;
    // How many of the documents' receipts at `node` are of `status`, each document's at most once.
    let with_status = |node: &'static str, status: StatusCode| {
        let docs = docs.clone();
        async move {
            let mut n = 0;
            for doc in docs {
                n += usize::from(kept(node, doc).await.iter().any(|b| kind(b) == ReceiptKind::Status(status)));
            }
            n
        }
    };
    wait_for("every delivery receipt at Phong Dụ", Duration::from_secs(30), || async {
        with_status(PHONG_DU, StatusCode::Arrived).await == N
    })
    .await;
    let now = || node::storage::millis(time::OffsetDateTime::now_utc());
    wait_for("Tiên Yên's outbox drained", Duration::from_secs(30), || async {
        tien_yen.store.queue_depths(now()).await.unwrap().pending == 0
    })
    .await;
    let (done, notices_in) = (
        tien_yen.store.queue_depths(now()).await.unwrap().done,
        tien_yen.observed.metrics().notices_in.load(Ordering::Relaxed),
    );

    let accepted: Vec<_> = docs
        .iter()
        .map(|d| net.receipt(ReceiptKind::Status(StatusCode::Accepted), d, HA_LAU, PHONG_DU, &[HA_LAU]))
        .collect();
    let delivered = kept(TIEN_YEN, Arc::clone(&docs[0]))
        .await
        .into_iter()
        .find(|b| kind(b) == ReceiptKind::Status(StatusCode::Arrived))
        .unwrap();
    let hop = net.receipt(ReceiptKind::Hop, &docs[1], HA_LAU, TIEN_YEN, &[HA_LAU]);
    let mut receipts: Vec<ByteBuf> = accepted.iter().map(|r| ByteBuf::from(r.as_bytes().to_vec())).collect();
    receipts.push(ByteBuf::from(accepted[0].as_bytes().to_vec()));
    receipts.push(ByteBuf::from(delivered));
    receipts.push(ByteBuf::from(hop.as_bytes().to_vec()));
    let peer = RawPeer::connect(&net, &net.identity(&code(HA_LAU), Profile::Node), TIEN_YEN).await;
    let request = NodeRequest::Notices { receipts, crls: Vec::new(), crls_asked: Vec::new() };
    match peer.request(&request, &[]).await.unwrap() {
        NodeResponse::NoticesTaken { refused } => assert!(refused.is_empty(), "{refused:?}"),
        other => panic!("expected the notices taken, got {other}"),
    }
    let taken = tien_yen.observed.metrics().notices_in.load(Ordering::Relaxed) - notices_in;
    assert_eq!(taken, N as u64 + 1, "each status 03 and the hop receipt new, once");
    wait_for("every status 03 at Phong Dụ", Duration::from_secs(30), || async {
        with_status(PHONG_DU, StatusCode::Accepted).await == N
    })
    .await;
    // Tiên Yên records each notice finished once Phong Dụ answered: a moment after it is there.
    wait_for("Tiên Yên's notices finished", Duration::from_secs(30), || async {
        tien_yen.store.queue_depths(now()).await.unwrap().pending == 0
    })
    .await;
    let depths = tien_yen.store.queue_depths(now()).await.unwrap();
    assert_eq!(depths.done - done, N as i64, "each status 03 queued once, nothing else");
    for doc in &docs {
        let at = kept(TIEN_YEN, Arc::clone(doc)).await;
        let here = at.iter().filter(|b| kind(b) == ReceiptKind::Status(StatusCode::Accepted)).count();
        assert_eq!(here, 1, "{}: the status 03 kept once at Tiên Yên", doc.id);
    }
    let hops_kept = kept(TIEN_YEN, Arc::clone(&docs[1])).await.iter().filter(|b| kind(b) == ReceiptKind::Hop).count();
    assert_eq!(hops_kept, 3, "Tiên Yên's own for Phong Dụ, Hà Lâu's with its answer and the one sent now");
    if let Ok(clerk) = Arc::try_unwrap(clerk) {
        clerk.close().await;
    }
    net.stop().await;
}
