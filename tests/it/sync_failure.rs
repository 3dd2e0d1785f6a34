//! A sync the disk fails (`EIO`), on a node process with its database on SQLite: what the node
//! answered as not stored must not be there after a crash.
//!
//! SQLite commits a batch by writing its frames to the log, the commit mark included, and then
//! syncing the log. When that sync fails, the `COMMIT` fails and the batch is rolled back in
//! the process, but its frames stay in the log file (the kernel keeps them in its cache even
//! when they never reached the disk): a process that crashes before its next commit overwrites
//! them comes back with the batch committed, and a clerk told "nothing was taken" finds the
//! document sent. The node empties the log (a checkpoint of what did commit, the log cut)
//! after such a failure, and takes no write while it cannot; when it cannot right away, the
//! clerk is told the document may have been kept.
//!
//! SQLite only. PostgreSQL stops itself (`PANIC`) on a failed sync of its log, and the node
//! takes a `COMMIT` that got no answer, or a `FATAL` or `PANIC` one, as in doubt
//! (`storage::postgres_a_commit_the_server_did_not_answer_is_in_doubt`).

use std::time::Duration;

use harness::fail_sync::FailSync;
use harness::fault_net::spawn_process_env;
use harness::network::{NetOptions, NodeProcess, SignedDocument, TestNet, only, topology, wait_for};
use node::clerk_client::{ClerkClient, ClerkError};
use node::protocol::ErrorKind;
use pki::AgencyCode;
use pki::document::ReceiptKind;

const TIEN_YEN: &str = "000.00.41.H49";
const PHONG_DU: &str = "000.01.41.H49";

fn code(s: &str) -> AgencyCode {
    s.parse().unwrap()
}

/// Phong Dụ (its log's syncs failing when the test says) and Tiên Yên, as processes, with
/// `n` documents from Phong Dụ to Tiên Yên, the first submitted and its way done (Tiên Yên's
/// status receipt back at Phong Dụ), so that no write of the node's is due when the disk
/// starts failing.
struct Net {
    net: TestNet,
    disk: FailSync,
    sender_process: NodeProcess,
    _recipient_process: NodeProcess,
    sender: ClerkClient,
    recipient: ClerkClient,
    docs: Vec<SignedDocument>,
}

async fn start(n: u32) -> Net {
    harness::logging();
    let (sender_code, recipient_code) = (code(PHONG_DU), code(TIEN_YEN));
    // The transparency log's checkpoint (a write, every 5 s by default) once at start only, so
    // that no write of the node's own takes the failures meant for the clerk's.
    let extra_config = format!("{}[log]\ncheckpoint_interval = \"1h\"\n", NetOptions::default().extra_config);
    let mut net = TestNet::prepare(
        only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]),
        NetOptions { extra_config, ..NetOptions::default() },
    );
    let disk = FailSync::build(&net.node_dir(&sender_code), "/node.db-wal");
    let recipient_process = net.spawn_process(&recipient_code);
    let sender_process = spawn_process_env(&mut net, &sender_code, &disk.env());
    let sender = net.wait_ready(PHONG_DU).await;
    let recipient = net.wait_ready(TIEN_YEN).await;
    let docs: Vec<_> = (1..=n).map(|n| net.document(PHONG_DU, &[TIEN_YEN], n)).collect();
    docs[0].submit(&sender).await.unwrap();
    wait_for("the first document's status receipt at Phong Dụ", Duration::from_secs(30), || async {
        sender.track(&docs[0].id).await.unwrap().iter().any(|r| matches!(r.receipt.kind, ReceiptKind::Status(_)))
    })
    .await;
    // And the sync of the log for what the node recorded without one (within 0.2 s).
    tokio::time::sleep(Duration::from_millis(500)).await;
    Net { net, disk, sender_process, _recipient_process: recipient_process, sender, recipient, docs }
}

/// Submits `doc` and returns what the clerk is told, which must be a retryable refusal.
async fn refused(doc: &SignedDocument, sender: &ClerkClient) -> String {
    match doc.submit(sender).await {
        Err(ClerkError::Refused { kind: ErrorKind::Unavailable, message }) => {
            eprintln!("{}: the clerk is told: {message}", doc.id);
            message
        }
        Err(e) => panic!("{}: not a retryable refusal: {e}", doc.id),
        Ok(_) => panic!("{} was taken while the syncs of the node's log failed", doc.id),
    }
}

impl Net {
    /// Kills Phong Dụ (SIGKILL, as a crash ends it), lets the disk heal, and checks what a
    /// restart finds (the store opened on the files the crash left; SQLite's recovery reads
    /// the log as the node would): the documents in `kept`, not those in `not_kept`.
    /// (Killed with the syncs still failing, the node could not empty its log first.)
    async fn crash(&mut self, kept: &[&SignedDocument], not_kept: &[&SignedDocument]) {
        self.sender_process.kill();
        self.disk.heal();
        let store = self.net.open_store(&code(PHONG_DU)).await;
        for d in kept {
            assert!(store.document_by_id(&d.id).await.unwrap().is_some(), "{} was taken but is lost", d.id);
        }
        for d in not_kept {
            assert!(
                store.document_by_id(&d.id).await.unwrap().is_none(),
                "{} was refused as not taken (a sync of the log failed) but is stored after the crash",
                d.id
            );
        }
        store.close().await;
    }

    /// Restarts Phong Dụ, submits `again` (the same signed documents) and waits for every
    /// document at Tiên Yên, each exactly once.
    async fn restart_and_deliver(mut self, again: &[&SignedDocument]) {
        self.sender_process = spawn_process_env(&mut self.net, &code(PHONG_DU), &self.disk.env());
        let sender = self.net.wait_ready(PHONG_DU).await;
        for d in again {
            d.submit(&sender).await.unwrap_or_else(|e| panic!("{} after the disk healed: {e}", d.id));
        }
        let expected = self.docs.len();
        wait_for("every document at Tiên Yên", Duration::from_secs(30), || async {
            self.recipient.inbox(100).await.unwrap().len() >= expected
        })
        .await;
        let mut arrived: Vec<String> =
            self.recipient.inbox(100).await.unwrap().into_iter().map(|s| s.document).collect();
        arrived.sort();
        let mut sent: Vec<String> = self.docs.iter().map(|d| d.id.clone()).collect();
        sent.sort();
        assert_eq!(arrived, sent, "each document exactly once at Tiên Yên");
    }
}

/// One sync of the log fails, as the kernel reports a failed write-back (once): the clerk is
/// told nothing was taken, and after a crash nothing was. Before the fix the document was in
/// the store after the crash (and sent on by the restarted node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_sync_failed_once_is_not_there_after_a_crash() {
    let mut net = start(2).await;
    net.disk.fail_next(1);
    let told = refused(&net.docs[1], &net.sender).await;
    assert!(told.contains("disk I/O error") && told.contains("nothing was taken"), "{told}");
    assert_eq!(net.disk.failed().len(), 1, "{:?}", net.disk.failed());
    let docs = net.docs.clone();
    net.crash(&[&docs[0]], &[&docs[1]]).await;
    net.restart_and_deliver(&[&docs[1]]).await;
}

/// The syncs keep failing. The first refusal says the document may have been kept (the log
/// that holds its commit cannot be emptied: a crash now would bring it back); the next
/// submission is refused before anything is written, as not taken. Once the disk heals, the
/// node empties its log before its next write, which is taken; after a crash then, neither
/// refused document is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_syncs_keep_failing_no_write_is_taken_and_none_comes_back() {
    let mut net = start(4).await;
    net.disk.fail();
    let told = refused(&net.docs[1], &net.sender).await;
    assert!(told.contains("may have kept the document") && told.contains("send the same document again"), "{told}");
    let told = refused(&net.docs[2], &net.sender).await;
    assert!(told.contains("cannot be emptied yet") && told.contains("nothing was taken"), "{told}");
    let failed = net.disk.failed().len();
    assert!(failed >= 2, "{failed} syncs failed");
    net.disk.heal();
    net.docs[3].submit(&net.sender).await.unwrap();
    assert_eq!(net.disk.failed().len(), failed, "a sync failed after the disk healed");
    let docs = net.docs.clone();
    net.crash(&[&docs[0], &docs[3]], &[&docs[1], &docs[2]]).await;
    net.restart_and_deliver(&[&docs[1], &docs[2]]).await;
}

/// The case the clerk is warned of: the node is killed while the syncs still fail, before it
/// could empty its log. The document it answered "may have kept" is there after the restart
/// (SQLite's recovery replays the commit from the log), and the clerk sending the same
/// document again is only confirmed: Tiên Yên gets it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_in_doubt_may_come_back_after_a_crash_and_is_delivered_once() {
    let mut net = start(2).await;
    net.disk.fail();
    let told = refused(&net.docs[1], &net.sender).await;
    assert!(told.contains("may have kept the document"), "{told}");
    let docs = net.docs.clone();
    net.crash(&[&docs[0], &docs[1]], &[]).await;
    net.restart_and_deliver(&[&docs[1]]).await;
}
