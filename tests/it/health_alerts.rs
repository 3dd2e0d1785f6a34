//! The health read-out alerts (issue 10: it "never alerted in any scenario"): a transfer
//! attempt that hangs, a neighbour that is down, a backlog, a free-space reserve that refuses
//! documents before anything is written; and `lienthong-node status` on storage it cannot
//! read prints one clean line and fails.

use std::time::Duration;

use harness::network::{Database, NetOptions, SignedDocument, TestNet, only, topology, wait_for};
use harness::silent_peer::SilentPeer;
use harness::tmpfs::Tmpfs;
use node::clerk_client::ClerkError;
use node::protocol::ErrorKind;
use pki::AgencyCode;

const TIEN_YEN: &str = "000.00.41.H49";
const PHONG_DU: &str = "000.01.41.H49";

fn code(s: &str) -> AgencyCode {
    s.parse().unwrap()
}

/// `lienthong-node status` of `code`: its JSON, or its exit code and stderr.
fn status(net: &TestNet, code: &AgencyCode) -> Result<serde_json::Value, (i32, String)> {
    let out = std::process::Command::new(harness::bin("lienthong-node"))
        .args(["status", "--json", "--config", "node.toml"])
        .current_dir(net.node_dir(code))
        .output()
        .unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err((out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned()))
    }
}

fn alerts(health: &serde_json::Value) -> Vec<String> {
    health["alerts"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect()
}

async fn live(net: &TestNet, code: &str) -> serde_json::Value {
    serde_json::to_value(node::health::report(net.node(code)).await.unwrap()).unwrap()
}

/// Polls the running node's read-out until `accept` takes it.
async fn live_until(
    net: &TestNet,
    code: &str,
    what: &str,
    timeout: Duration,
    accept: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let health = live(net, code).await;
        if accept(&health) {
            return health;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}: {health}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn options(database: Database, extra: &str) -> NetOptions {
    NetOptions {
        database,
        extra_config: format!("{}{extra}", NetOptions::default().extra_config),
        ..NetOptions::default()
    }
}

on_both_backends!(
    a_hanging_attempt_and_a_neighbour_down_raise_alerts,
    the_reserve_refuses_documents_before_anything_is_written
);

/// A first attempt that hangs counts as stuck and as retrying; a neighbour that stops
/// answering is "down" in the running node's read-out and, from the database alone, in
/// `status`; the waiting transfers are a backlog.
async fn a_hanging_attempt_and_a_neighbour_down_raise_alerts(database: Database) {
    harness::logging();
    let extra = "[limits]\nrequest_timeout = \"6s\"\nconnect_timeout = \"1s\"\n\n[health]\nbacklog_age = \"1s\"\nneighbour_down_after = \"1s\"\nstuck_after = \"1s\"\n";
    let mut net = TestNet::prepare(only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]), options(database, extra));
    net.start_node(&code(PHONG_DU)).await;
    let silent = SilentPeer::start(&mut net, &code(TIEN_YEN));
    let clerk = net.clerk(PHONG_DU).await;
    let doc: SignedDocument = net.document(PHONG_DU, &[TIEN_YEN], 1);
    doc.submit(&clerk).await.unwrap();

    // The first attempt hangs: it has not failed yet (0 attempts in the database), but it is
    // stuck, and counted as retrying.
    let health =
        live_until(&net, PHONG_DU, "a stuck attempt", Duration::from_secs(5), |h| h["queue"]["stuck"] == 1).await;
    assert_eq!(health["queue"]["retrying"], 1, "{health}");
    assert!(alerts(&health).iter().any(|a| a.contains("running for more than 1s")), "{:?}", alerts(&health));

    // The neighbour goes away entirely: attempts fail, and after a second it is down.
    drop(silent);
    let down = format!("neighbour {TIEN_YEN} looks down");
    let health = live_until(&net, PHONG_DU, "the neighbour down", Duration::from_secs(20), |h| {
        alerts(h).iter().any(|a| a.starts_with(&down))
    })
    .await;
    assert!(alerts(&health).iter().any(|a| a.starts_with("backlog: 1 transfer(s)")), "{:?}", alerts(&health));
    let neighbour = &health["neighbours"][0];
    assert_eq!((neighbour["agency"].as_str(), neighbour["pending"].as_i64()), (Some(TIEN_YEN), Some(1)), "{health}");
    assert!(neighbour["failed_attempts"].as_u64().unwrap() >= 1, "{health}");

    // From the database alone (another process): transfers to it keep failing and nothing was
    // handed over.
    wait_for("the neighbour down in status", Duration::from_secs(10), || async {
        status(&net, &code(PHONG_DU)).is_ok_and(|s| alerts(&s).iter().any(|a| a.starts_with(&down)))
    })
    .await;

    // It comes back: the document goes, the alerts clear.
    net.start_node(&code(TIEN_YEN)).await;
    wait_for("the document delivered", Duration::from_secs(20), || async {
        live(&net, PHONG_DU).await["queue"]["pending"] == 0
    })
    .await;
    let health = live(&net, PHONG_DU).await;
    assert!(
        !alerts(&health).iter().any(|a| a.contains("looks down") || a.contains("backlog") || a.contains("running for")),
        "{:?}",
        alerts(&health)
    );
    net.stop().await;
}

/// `limits.min_free_bytes`: a document that would leave less free is refused for now, with a
/// retryable error that says so, before any of it is written; `status` shows the shortfall;
/// once the filesystem grows the same document is taken.
async fn the_reserve_refuses_documents_before_anything_is_written(database: Database) {
    harness::logging();
    const MIB: u64 = 1024 * 1024;
    let extra = format!("[limits]\nmin_free_bytes = {}\n", 12 * MIB);
    let mut net =
        TestNet::prepare(only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]), options(database, &extra));
    let sender = code(PHONG_DU);
    let disk = Tmpfs::mount_at(&net.node_dir(&sender).join("data"), 16 * MIB);
    for c in [TIEN_YEN, PHONG_DU] {
        net.start_node(&code(c)).await;
    }
    let clerk = net.clerk(PHONG_DU).await;
    let mut refused = None;
    for n in 1..=8u32 {
        let base = net.document(PHONG_DU, &[TIEN_YEN], n);
        let body = vec![n as u8; MIB as usize];
        let mut manifest = base.manifest.clone();
        manifest.attachments[0].size = body.len() as u64;
        manifest.attachments[0].sha256 = pki::sha256(&body);
        let doc = net.sign(manifest, vec![body]);
        let free_before = disk.free();
        match doc.submit(&clerk).await {
            Ok(_) => assert!(free_before >= 13 * MIB, "taken with {free_before} bytes free"),
            Err(ClerkError::Refused { kind: ErrorKind::Unavailable, message }) => {
                assert!(message.contains("limits.min_free_bytes"), "{message}");
                assert!(free_before < 13 * MIB + 64 * 1024, "refused with {free_before} bytes free: {message}");
                // Refused before anything was written: no attachment, not even a temporary one.
                let hash: String = doc.manifest.attachments[0].sha256.iter().map(|b| format!("{b:02x}")).collect();
                assert!(!disk.path().join("blobs").join(&hash[..2]).join(&hash).exists(), "the attachment is stored");
                assert_eq!(std::fs::read_dir(disk.path().join("blobs/tmp")).unwrap().count(), 0, "a temporary file");
                eprintln!("refused with {free_before} bytes free: {message}");
                refused = Some(doc);
                break;
            }
            Err(e) => panic!("not a retryable refusal: {e}"),
        }
    }
    let refused = refused.expect("the reserve refused nothing");
    // The running node's read-out says so at once; `status` (from the database) once the node
    // has written it down.
    let shortfall = |alerts: Vec<String>| {
        alerts.iter().any(|a| a.contains("storage failures") && a.contains("limits.min_free_bytes"))
    };
    let read = live(&net, PHONG_DU).await;
    assert!(shortfall(alerts(&read)), "{:?}", alerts(&read));
    wait_for("the shortfall in status", Duration::from_secs(15), || async {
        status(&net, &sender).is_ok_and(|s| shortfall(alerts(&s)))
    })
    .await;

    disk.resize(64 * MIB);
    refused.submit(&clerk).await.unwrap();
    for c in [PHONG_DU, TIEN_YEN] {
        net.stop_node(&code(c)).await;
    }
    // Unmounted before the network's directory goes (a mount point cannot be removed).
    drop(disk);
}

/// `lienthong-node status` on a database it cannot read: one line, no terminal escapes, a
/// non-zero exit. (It used to print sqlx's multi-line error with colour codes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_on_unreadable_storage_is_one_clean_line() {
    let mut net = TestNet::prepare(only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]), NetOptions::default());
    let sender = code(PHONG_DU);
    let disk = Tmpfs::mount_at(&net.node_dir(&sender).join("data"), 8 << 20);
    net.start_node(&sender).await;
    net.stop_node(&sender).await;
    let clean = |(code, stderr): (i32, String)| {
        assert_ne!(code, 0);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "more than one line: {stderr:?}");
        assert!(lines[0].starts_with("error: cannot read the health of"), "{stderr:?}");
        assert!(!stderr.contains('\u{1b}'), "terminal escapes: {stderr:?}");
        eprintln!("{}", lines[0]);
    };

    // A read-only filesystem: the database's write-ahead log cannot be opened for writing.
    disk.read_only(true);
    match status(&net, &sender) {
        // SQLite may still read it; then the read-out is whole.
        Ok(read) => assert!(read["alerts"].is_array(), "{read}"),
        Err(failed) => clean(failed),
    }
    disk.read_only(false);

    // A database file that is not one.
    std::fs::write(disk.path().join("node.db"), vec![0x5a; 64 * 1024]).unwrap();
    for name in ["node.db-wal", "node.db-shm"] {
        let _ = std::fs::remove_file(disk.path().join(name));
    }
    clean(status(&net, &sender).expect_err("status read a damaged database"));
}
