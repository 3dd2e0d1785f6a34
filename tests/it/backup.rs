//! Backup and restore, as an operator does it with `lienthong-node backup` and `restore`: a
//! node backed up while it runs, restored onto a new machine (a fresh directory and, on
//! PostgreSQL, a fresh database), comes back with every document, attachment and receipt,
//! and carries on. On both backends.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::network::{Database, NetOptions, TestNet, database_name, fetch_all, only, topology, wait_for};
use harness::{Cli, bin};
use pki::AgencyCode;

const TIEN_YEN: &str = "000.00.41.H49";
const PHONG_DU: &str = "000.01.41.H49";
const HA_LAU: &str = "000.02.41.H49";

fn code(s: &str) -> AgencyCode {
    s.parse().unwrap()
}

/// A new machine for `code`: its certificates, keys and config, no data; on PostgreSQL a new,
/// empty database named `database`.
fn new_machine(net: &TestNet, from: &Path, to: &Path, database: &str) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if path.is_file() && (name.ends_with(".pem") || name == "node.toml") {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
    if let Some(pg) = net.pg() {
        let old = pg.url(&database_name(&code(HA_LAU)));
        let new = pg.database(database);
        let config = std::fs::read_to_string(to.join("node.toml")).unwrap();
        assert!(config.contains(&old));
        std::fs::write(to.join("node.toml"), config.replace(&old, &new)).unwrap();
    }
}

fn node_cmd(net: &TestNet, args: &[&str]) -> harness::Run {
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    if let Some(pg) = net.pg() {
        all.extend(["--pg-bin".to_owned(), pg.bin_dir().display().to_string()]);
    }
    Cli::new().run(&bin("lienthong-node"), &all)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The inbox of `code` (ids) and every receipt its node holds for them (bytes).
async fn state(net: &TestNet, ids: &[String]) -> (BTreeSet<String>, BTreeSet<Vec<u8>>) {
    let clerk = net.clerk(HA_LAU).await;
    let inbox = clerk.inbox(100).await.unwrap().into_iter().map(|e| e.document).collect();
    let mut receipts = BTreeSet::new();
    for id in ids {
        let doc = net.node(HA_LAU).store.document_by_id(id).await.unwrap().unwrap();
        for r in net.node(HA_LAU).store.receipts_for(&doc.digest).await.unwrap() {
            receipts.insert(r.bytes);
        }
    }
    (inbox, receipts)
}

on_both_backends!(a_node_backed_up_while_running_is_restored_on_a_new_machine_with_nothing_lost);

async fn a_node_backed_up_while_running_is_restored_on_a_new_machine_with_nothing_lost(database: Database) {
    harness::logging();
    let topology = only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU, HA_LAU]);
    let mut net = TestNet::start(topology, NetOptions { database, ..NetOptions::default() }).await;
    let sender = net.clerk(PHONG_DU).await;
    // Four small attachments, kept in the database (`storage::inline`), and one file.
    let mut docs: Vec<_> = (1..=4).map(|n| net.document(PHONG_DU, &[HA_LAU], n)).collect();
    let large = vec![5u8; 200 * 1024];
    let mut manifest = net.document(PHONG_DU, &[HA_LAU], 5).manifest;
    manifest.attachments[0].size = large.len() as u64;
    manifest.attachments[0].sha256 = pki::sha256(&large);
    docs.push(net.sign(manifest, vec![large]));
    for d in &docs {
        d.submit(&sender).await.unwrap();
    }
    let ha_lau = net.clerk(HA_LAU).await;
    wait_for("the documents at Hà Lâu", Duration::from_secs(30), || async {
        ha_lau.inbox(100).await.unwrap().len() == docs.len()
    })
    .await;
    ha_lau.post_status(&docs[0].id, 3, Some("Đã tiếp nhận".into())).await.unwrap();
    let ids: Vec<String> = docs.iter().map(|d| d.id.clone()).collect();
    let before = state(&net, &ids).await;
    assert_eq!(before.0.len(), 5);

    // The operator's read-out from the database alone, as `lienthong-node status` prints it.
    let old_dir = net.node_dir(&code(HA_LAU));
    let status =
        Cli::new().run(&bin("lienthong-node"), ["status", "--json", "--config", path(&old_dir.join("node.toml"))]).ok();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["agency"], HA_LAU, "{status}");
    assert_eq!(status["queue"]["dead"], 0, "{status}");
    assert!(status["crls"].as_array().is_some_and(|c| !c.is_empty()), "{status}");
    assert!(status["crls"][0]["stale"].is_boolean() && status["alerts"].is_array(), "{status}");
    assert!(status.get("uptime_seconds").is_none(), "read from storage, not from a running node: {status}");

    // Backed up while it runs.
    let backup = net.dir.path().join("backup");
    let out = node_cmd(&net, &["backup", "--config", path(&old_dir.join("node.toml")), "--out", path(&backup)]).ok();
    assert!(
        out.contains("5 documents")
            && out.contains("1 attachment file")
            && out.contains("4 small attachments in the database"),
        "{out}"
    );
    // Issue 14: a backup holds every document of the agency; its owner's only.
    assert_private(&backup);
    let again = node_cmd(&net, &["backup", "--config", path(&old_dir.join("node.toml")), "--out", path(&backup)]);
    assert!(again.fails().contains("is not empty; a backup goes into a new directory"));

    // The old machine is gone; a new one gets the same certificates and config.
    net.stop_node(&code(HA_LAU)).await;
    let old_copy = net.dir.path().join("ha-lau-old");
    std::fs::rename(&old_dir, &old_copy).unwrap();
    new_machine(&net, &old_copy, &old_dir, "restored");

    // Mistakes change nothing: another agency's node, a node that already has data, a
    // directory that is not a backup.
    let phong_du_config = net.config_path(&code(PHONG_DU));
    let wrong = node_cmd(&net, &["restore", "--config", path(&phong_du_config), "--from", path(&backup)]).fails();
    assert!(
        wrong.contains("the backup is of agency 000.02.41.H49, but this node is configured as agency 000.01.41.H49"),
        "{wrong}"
    );
    let occupied =
        node_cmd(&net, &["restore", "--config", path(&old_copy.join("node.toml")), "--from", path(&backup)]).fails();
    assert!(occupied.contains("the node to restore onto is not empty"), "{occupied}");
    let nothing =
        node_cmd(&net, &["restore", "--config", path(&old_dir.join("node.toml")), "--from", path(&old_copy)]).fails();
    assert!(nothing.contains("is not a lienthong backup"), "{nothing}");
    assert!(!old_dir.join("data").exists(), "a refused restore wrote nothing");

    let restored =
        node_cmd(&net, &["restore", "--config", path(&old_dir.join("node.toml")), "--from", path(&backup)]).ok();
    assert!(restored.contains("5 documents") && restored.contains("5 attachments checked"), "{restored}");
    let twice = node_cmd(&net, &["restore", "--config", path(&old_dir.join("node.toml")), "--from", path(&backup)]);
    assert!(twice.fails().contains("not empty"));

    // The restored node has everything, byte for byte, and carries on.
    net.start_node(&code(HA_LAU)).await;
    let after = state(&net, &ids).await;
    assert_eq!(after, before, "inbox and receipts after restore");
    let clerk = net.clerk(HA_LAU).await;
    for d in &docs {
        let (_, bodies) = fetch_all(&clerk, &d.id).await.unwrap();
        assert_eq!(bodies, d.bodies, "attachments of {}", d.id);
    }
    let later = net.document(PHONG_DU, &[HA_LAU], 6);
    later.submit(&sender).await.unwrap();
    wait_for("a new document at the restored node", Duration::from_secs(30), || async {
        clerk.inbox(100).await.unwrap().len() == 6
    })
    .await;

    // A damaged backup is caught by the restore's check.
    let damaged_target = net.dir.path().join("ha-lau-third");
    new_machine(&net, &old_copy, &damaged_target, "damaged");
    let blob = first_file(&backup.join("blobs"));
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let damaged =
        node_cmd(&net, &["restore", "--config", path(&damaged_target.join("node.toml")), "--from", path(&backup)])
            .fails();
    assert!(damaged.contains("does not match its SHA-256 or size: damaged"), "{damaged}");

    // So is a small attachment damaged in the database's snapshot.
    if net.pg().is_none() {
        std::fs::write(
            &blob,
            std::fs::read(&blob)
                .map(|mut b| {
                    b[0] ^= 1;
                    b
                })
                .unwrap(),
        )
        .unwrap();
        let snapshot = format!("sqlite://{}", backup.join("node.db").display());
        let db = sqlx::AnyPool::connect(&snapshot).await.unwrap();
        let altered = sqlx::query("UPDATE inline_blobs SET bytes = $1 WHERE sha256 = $2")
            .bind(b"not the attachment".to_vec())
            .bind(docs[0].manifest.attachments[0].sha256.to_vec())
            .execute(&db)
            .await
            .unwrap();
        assert_eq!(altered.rows_affected(), 1, "the first document's attachment is in the database");
        db.close().await;
        let inline_target = net.dir.path().join("ha-lau-fourth");
        new_machine(&net, &old_copy, &inline_target, "damaged-inline");
        let damaged =
            node_cmd(&net, &["restore", "--config", path(&inline_target.join("node.toml")), "--from", path(&backup)])
                .fails();
        assert!(damaged.contains("does not match its SHA-256 or size: damaged"), "{damaged}");
    }
    net.stop().await;
}

fn first_file(dir: &Path) -> PathBuf {
    let path = std::fs::read_dir(dir).unwrap().next().unwrap_or_else(|| panic!("nothing under {}", dir.display()));
    let path = path.unwrap().path();
    if path.is_dir() { first_file(&path) } else { path }
}

/// Every directory under `dir` is 0700 and every file 0600 (issue 14: backups were 0644).
fn assert_private(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}: {mode:o}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_private(&path);
        } else {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}: {mode:o}", path.display());
        }
    }
}
