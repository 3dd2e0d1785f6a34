//! What a node holds, as text rows per table, read from outside the node through its database
//! URL (SQLite or PostgreSQL) and its attachment directory: to prove that a refused request
//! changed nothing, and to show what a wrongly served one did.
//!
//! Only what requests write is compared. Columns that the node's own background work moves
//! (an outbox transfer's attempts, next attempt and last error while a neighbour is down) are
//! left out, so two snapshots differ only through the request between them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// One query per table, each row rendered as one text (portable SQL: `||`, `CAST`, `COALESCE`).
const TABLES: &[(&str, &str)] = &[
    (
        "documents",
        "SELECT doc_id || ' from ' || received_from || ' outgoing=' || CAST(outgoing AS TEXT) FROM documents",
    ),
    (
        "attachments",
        "SELECT d.doc_id || ' #' || CAST(a.position AS TEXT) || ' ' || a.name FROM attachments a JOIN documents d ON d.id = a.document",
    ),
    (
        "routes",
        "SELECT d.doc_id || ' to ' || r.recipient || ' via ' || COALESCE(r.next_hop, '-') || ': ' || r.state FROM routes r JOIN documents d ON d.id = r.document",
    ),
    (
        "inbox",
        "SELECT d.doc_id || ' status=' || COALESCE(CAST(i.status AS TEXT), '-') || ' superseded=' || COALESCE(i.superseded_by, '-') || ' recall_requested=' || CAST(i.recall_requested AS TEXT) FROM inbox i JOIN documents d ON d.id = i.document",
    ),
    (
        "receipts",
        "SELECT CAST(id AS TEXT) || ' ' || kind || COALESCE(' ' || CAST(status AS TEXT), '') || ' on ' || doc_id || ' by ' || by_agency || ' to ' || to_agency || ' for ' || recipients || ' from ' || received_from FROM receipts",
    ),
    ("outbox", "SELECT dedup_key || ' ' || kind || ' to ' || next_hop FROM outbox"),
    ("crls", "SELECT issuer_name || ' of ' || CAST(this_update AS TEXT) FROM crls"),
    ("ca_certs", "SELECT 'known CA certificates: ' || CAST(COUNT(*) AS TEXT) FROM ca_certs"),
    ("mail_outbox", "SELECT dedup_key || ' ' || kind FROM mail_outbox"),
    ("counters", "SELECT name || '=' || CAST(value AS TEXT) FROM counters"),
    ("tlog_witnessed", "SELECT agency || ' size ' || CAST(size AS TEXT) FROM tlog_witnessed"),
];

/// A node's database and attachment directory, opened read-side.
pub(super) struct NodeData {
    pool: AnyPool,
    blobs: PathBuf,
}

/// The rows of every table at one moment (plus the attachment files as `blobs`).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Snapshot(BTreeMap<&'static str, BTreeSet<String>>);

fn files(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(root, &path, out);
        } else {
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            out.insert(format!("{} ({size} bytes)", path.strip_prefix(root).unwrap_or(&path).display()));
        }
    }
}

impl NodeData {
    /// Opens the database at `url` (the node's `database`) and the attachment store under
    /// `data_dir`.
    pub(super) async fn open(url: &str, data_dir: &Path) -> NodeData {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new().max_connections(1).connect(url).await.unwrap();
        NodeData { pool, blobs: data_dir.join("blobs") }
    }

    /// Reads everything now.
    pub(super) async fn snapshot(&self) -> Snapshot {
        let mut tables = BTreeMap::new();
        for (name, query) in TABLES {
            let rows: Vec<(String,)> = sqlx::query_as(*query).fetch_all(&self.pool).await.unwrap();
            tables.insert(*name, rows.into_iter().map(|(r,)| r).collect());
        }
        let mut blobs = BTreeSet::new();
        files(&self.blobs, &self.blobs, &mut blobs);
        tables.insert("blobs", blobs);
        Snapshot(tables)
    }

    /// Closes the pool.
    pub(super) async fn close(self) {
        self.pool.close().await;
    }
}

impl Snapshot {
    /// What changed from `self` to `after`, one line per row: `table: - row` or `table: + row`.
    pub(super) fn diff(&self, after: &Snapshot) -> Vec<String> {
        let empty = BTreeSet::new();
        let mut out = Vec::new();
        for (table, rows) in &after.0 {
            let was = self.0.get(table).unwrap_or(&empty);
            out.extend(was.difference(rows).map(|r| format!("{table}: - {r}")));
            out.extend(rows.difference(was).map(|r| format!("{table}: + {r}")));
        }
        out
    }
}
