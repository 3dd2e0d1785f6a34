//! Documents taken several to a transaction (`intake::together`, PostgreSQL): each still
//! taken once, with its rows, its receipts and its transfer, and one the database refuses
//! fails only its own intake. On SQLite every document is taken alone (its writer commits
//! them together already).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use harness::network::{Database, NetOptions, RawPeer, SignedDocument, TestNet, only, submit_all, topology, wait_for};
use node::protocol::NodeResponse;
use pki::Profile;

const TIEN_YEN: &str = "000.00.41.H49";
const PHONG_DU: &str = "000.01.41.H49";

on_both_backends!(
    documents_are_taken_together,
    a_document_the_database_refuses_fails_only_its_intake,
    a_document_delivered_several_times_at_once_is_taken_once
);

/// Phong Dụ's clerk submits 96 documents for Tiên Yên, 32 at a time. On PostgreSQL both nodes
/// take them several to a transaction (fewer transactions than documents at each); on SQLite
/// none. Either way each document is stored once at each node, in Tiên Yên's inbox once, its
/// route delivered, with both receipts (hop receipt, arrived) at Phong Dụ; none sent twice.
async fn documents_are_taken_together(database: Database) {
    let net = TestNet::start(
        only(&topology("quang-ninh-2024"), &[PHONG_DU, TIEN_YEN]),
        NetOptions { database, ..NetOptions::default() },
    )
    .await;
    let clerk = Arc::new(net.clerk(PHONG_DU).await);
    const N: u64 = 96;
    let docs: Vec<_> = (1..=N).map(|i| Arc::new(net.document(PHONG_DU, &[TIEN_YEN], i as u32))).collect();
    submit_all(&clerk, &docs, 32).await;
    let (phong_du, tien_yen) = (net.node(PHONG_DU), net.node(TIEN_YEN));
    wait_for("every document at Tiên Yên and answered", Duration::from_secs(30), || async {
        phong_du.observed.metrics().documents_out.load(Ordering::Relaxed) >= N
    })
    .await;
    for (name, node) in [(PHONG_DU, phong_du), (TIEN_YEN, tien_yen)] {
        let m = node.observed.metrics();
        let (taken, transactions) =
            (m.documents_in.load(Ordering::Relaxed), m.intake_transactions.load(Ordering::Relaxed));
        println!("{name}: {taken} documents taken in {transactions} transactions together");
        assert_eq!(taken, N, "{name} took each document once");
        assert_eq!(m.duplicates_in.load(Ordering::Relaxed), 0, "{name} was sent documents twice");
        assert_eq!(m.intake_transactions_redone.load(Ordering::Relaxed), 0, "{name}");
        // No repeats were sent: a document found stored by its transaction of several was
        // wrongly left to be taken alone.
        assert_eq!(m.intake_found_stored.load(Ordering::Relaxed), 0, "{name}: new documents left out");
        match database {
            // Documents that come while others are written wait and go together.
            Database::Postgres => assert!((1..N).contains(&transactions), "{name}: {transactions} for {N}"),
            Database::Sqlite => assert_eq!(transactions, 0, "{name}: taken alone on SQLite"),
        }
    }
    assert_eq!(tien_yen.store.inbox(1000).await.unwrap().len(), N as usize);
    for doc in &docs {
        let here = tien_yen.store.document_by_id(&doc.id).await.unwrap().unwrap();
        assert_eq!((here.digest, here.envelope.as_slice()), (doc.digest, doc.envelope.as_slice()));
        assert_eq!(tien_yen.store.attachments(here.id).await.unwrap().len(), 1, "{}", doc.id);
        let sent = phong_du.store.document_by_id(&doc.id).await.unwrap().unwrap();
        let routes = phong_du.store.routes(sent.id).await.unwrap();
        assert_eq!(routes, [(TIEN_YEN.to_owned(), Some(TIEN_YEN.to_owned()), "delivered".to_owned())], "{}", doc.id);
        assert_eq!(phong_du.store.receipts_for(&doc.digest).await.unwrap().len(), 2, "{}", doc.id);
        assert_eq!(tien_yen.store.receipts_for(&doc.digest).await.unwrap().len(), 2, "{}", doc.id);
    }
    let done = phong_du.store.queue_depths(node::storage::millis(time::OffsetDateTime::now_utc())).await.unwrap();
    assert_eq!((done.done, done.pending), (N as i64, 0), "every transfer queued once and finished");
    if let Ok(clerk) = Arc::try_unwrap(clerk) {
        clerk.close().await;
    }
    net.stop().await;
}

/// Tiên Yên's database refuses (by a trigger) to store eight of 48 documents Phong Dụ passes
/// on at once. On PostgreSQL a transaction of documents holding one of them fails and is done
/// again one document at a time (`intake::together`): the others are taken, with their
/// receipts, and only the eight are refused for now; Phong Dụ tries them again and they are
/// taken once the database takes them.
async fn a_document_the_database_refuses_fails_only_its_intake(database: Database) {
    let net = TestNet::start(
        only(&topology("quang-ninh-2024"), &[PHONG_DU, TIEN_YEN]),
        NetOptions { database, ..NetOptions::default() },
    )
    .await;
    const N: u32 = 48;
    let docs: Vec<_> = (1..=N).map(|i| Arc::new(net.document(PHONG_DU, &[TIEN_YEN], i))).collect();
    let refused: Vec<&Arc<SignedDocument>> = docs.iter().step_by(6).collect();
    let ids = refused.iter().map(|d| format!("'{}'", d.id)).collect::<Vec<_>>().join(", ");
    let db = net.raw_pool(&TIEN_YEN.parse().unwrap()).await;
    let (create, drop_it) = match database {
        Database::Postgres => (
            format!(
                "CREATE FUNCTION refuse_document() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
                 CREATE TRIGGER refuse BEFORE INSERT ON documents FOR EACH ROW WHEN (NEW.doc_id IN ({ids})) EXECUTE FUNCTION refuse_document()"
            ),
            "DROP TRIGGER refuse ON documents",
        ),
        Database::Sqlite => (
            format!(
                "CREATE TRIGGER refuse BEFORE INSERT ON documents WHEN NEW.doc_id IN ({ids})
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            ),
            "DROP TRIGGER refuse",
        ),
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(create)).execute(&db).await.unwrap();

    let clerk = Arc::new(net.clerk(PHONG_DU).await);
    submit_all(&clerk, &docs, N as usize).await;
    let (phong_du, tien_yen) = (net.node(PHONG_DU), net.node(TIEN_YEN));
    let (sent, taken) = (phong_du.observed.metrics(), tien_yen.observed.metrics());
    let others = u64::from(N) - refused.len() as u64;
    wait_for("the others taken", Duration::from_secs(30), || async {
        sent.documents_out.load(Ordering::Relaxed) >= others
    })
    .await;
    wait_for("the refused documents tried again", Duration::from_secs(30), || async {
        sent.retries.load(Ordering::Relaxed) >= 2 * refused.len() as u64
    })
    .await;
    assert_eq!(taken.documents_in.load(Ordering::Relaxed), others, "all but the refused ones taken");
    let redone = taken.intake_transactions_redone.load(Ordering::Relaxed);
    if matches!(database, Database::Postgres) {
        assert!(redone >= 1, "no transaction of several documents held a refused one: the fallback did not run");
    }
    for doc in &docs {
        let here = tien_yen.store.document_by_id(&doc.id).await.unwrap();
        if refused.iter().any(|r| r.id == doc.id) {
            assert!(here.is_none(), "{}: nothing of a refused document kept", doc.id);
            assert!(phong_du.store.receipts_for(&doc.digest).await.unwrap().is_empty(), "{}", doc.id);
        } else {
            assert!(here.is_some(), "{}", doc.id);
            assert_eq!(phong_du.store.receipts_for(&doc.digest).await.unwrap().len(), 2, "{}", doc.id);
        }
    }
    let now = node::storage::millis(time::OffsetDateTime::now_utc());
    assert_eq!(phong_du.store.queue_depths(now).await.unwrap().pending, refused.len() as i64);

    sqlx::raw_sql(drop_it).execute(&db).await.unwrap();
    wait_for("the refused documents taken once the database takes them", Duration::from_secs(60), || async {
        sent.documents_out.load(Ordering::Relaxed) == u64::from(N)
    })
    .await;
    for doc in refused {
        assert!(tien_yen.store.document_by_id(&doc.id).await.unwrap().is_some(), "{}", doc.id);
        assert_eq!(phong_du.store.receipts_for(&doc.digest).await.unwrap().len(), 2, "{}", doc.id);
    }
    assert_eq!(taken.documents_in.load(Ordering::Relaxed), u64::from(N), "each taken once");
    println!(
        "{N} documents taken in {} transactions together; {redone} redone one document at a time",
        taken.intake_transactions.load(Ordering::Relaxed)
    );
    db.close().await;
    if let Ok(clerk) = Arc::try_unwrap(clerk) {
        clerk.close().await;
    }
    net.stop().await;
}

/// Phong Dụ (a raw peer, on two connections) delivers each of 16 documents for Tiên Yên three
/// times at once, 48 deliveries in flight: the duplicate checks beside the verifications find
/// nothing for most, so the deliveries of one document meet in the transactions that take them
/// (on PostgreSQL in one transaction of several, or in two writers' at once; 31–32 of the 32
/// repeats in the runs seen). Each document is
/// taken once (one row, one inbox entry, one hop receipt and one status 01 kept) and every
/// delivery of it is answered alike: the same hop receipt, the same statuses.
async fn a_document_delivered_several_times_at_once_is_taken_once(database: Database) {
    let net = TestNet::start(
        only(&topology("quang-ninh-2024"), &[PHONG_DU, TIEN_YEN]),
        NetOptions { database, ..NetOptions::default() },
    )
    .await;
    const N: u32 = 16;
    const TIMES: usize = 3;
    let identity = net.identity(&PHONG_DU.parse().unwrap(), Profile::Node);
    let peers = Arc::new([
        RawPeer::connect(&net, &identity, TIEN_YEN).await,
        RawPeer::connect(&net, &identity, TIEN_YEN).await,
    ]);
    let docs: Vec<_> = (1..=N).map(|i| Arc::new(net.document(PHONG_DU, &[TIEN_YEN], i))).collect();
    let mut deliveries = tokio::task::JoinSet::new();
    for doc in &docs {
        for k in 0..TIMES {
            let (peers, doc) = (Arc::clone(&peers), Arc::clone(doc));
            deliveries.spawn(async move {
                let answer = peers[k % 2].deliver(&doc, &[TIEN_YEN]).await;
                (doc, answer)
            });
        }
    }
    let answers = deliveries.join_all().await;
    // Each document's answers: its hop receipt and the statuses with it, as bytes.
    type Answer = (Vec<u8>, Vec<Vec<u8>>);
    let mut answered: std::collections::HashMap<String, Vec<Answer>> = Default::default();
    for (doc, answer) in answers {
        match answer {
            Ok(NodeResponse::HopReceipt { receipt, statuses }) => answered
                .entry(doc.id.clone())
                .or_default()
                .push((receipt.into_vec(), statuses.into_iter().map(serde_bytes::ByteBuf::into_vec).collect())),
            other => panic!("{}: a delivery not taken: {other:?}", doc.id),
        }
    }
    let tien_yen = net.node(TIEN_YEN);
    let m = tien_yen.observed.metrics();
    println!(
        "{} deliveries: {} taken, {} answered as repeats, {} found stored by a transaction of several",
        N as usize * TIMES,
        m.documents_in.load(Ordering::Relaxed),
        m.duplicates_in.load(Ordering::Relaxed),
        m.intake_found_stored.load(Ordering::Relaxed)
    );
    assert_eq!(m.documents_in.load(Ordering::Relaxed), u64::from(N), "each document taken once");
    assert_eq!(m.duplicates_in.load(Ordering::Relaxed), u64::from(N) * (TIMES as u64 - 1), "the others repeats");
    assert_eq!(tien_yen.store.inbox(1000).await.unwrap().len(), N as usize, "one inbox entry a document");
    for doc in &docs {
        let answers = &answered[doc.id.as_str()];
        assert_eq!(answers.len(), TIMES, "{}", doc.id);
        assert!(answers.iter().all(|a| a == &answers[0]), "{}: deliveries answered differently", doc.id);
        assert_eq!(answers[0].1.len(), 1, "{}: the status 01 goes back with the hop receipt", doc.id);
        let kept = tien_yen.store.receipts_for(&doc.digest).await.unwrap();
        assert_eq!(kept.len(), 2, "{}: one hop receipt and one status 01 kept", doc.id);
        assert_eq!(
            tien_yen
                .store
                .attachments(tien_yen.store.document_by_id(&doc.id).await.unwrap().unwrap().id)
                .await
                .unwrap()
                .len(),
            1
        );
    }
    net.stop().await;
}
