//! The transparency log's storage: leaves appended with their events, indexed and hashed by
//! the checkpointer, checkpoints, and what a witness keeps of its neighbours' logs.
//!
//! The cost on a document's path is one row: [`Tx::log_entry`] keeps the leaf's bytes and
//! the transaction that records the events inserts them into `tlog_pending` (on SQLite in one
//! statement at its commit, on PostgreSQL with the writes it sends together, see
//! [`Tx::defer`]), so a leaf exists if and only if its event committed, and concurrent
//! transactions (several PostgreSQL processes) never wait on each other for an index.
//! [`Tx::integrate`] — one transaction, holding the log's head row — then gives pending
//! leaves their index in the order of their rows' ids among those committed (about the order
//! of their transactions; a leaf whose transaction commits after a later one's leaf was
//! indexed comes after it: the log is appended to, never reordered), hashes them, and stores
//! every complete subtree that now exists (`tlog_nodes`, from `pki::tlog::Frontier::append`),
//! about two rows per leaf in a few multi-row statements. Roots and proofs read a handful of
//! those hashes, never the leaves ([`Store::log_hashes`]).
//!
//! The frontier is read back from `tlog_nodes` at every integration rather than kept in
//! memory: another process of the agency may have integrated meanwhile, and what the node
//! signs is always what its database holds (so a history rewritten in the database shows in
//! the next checkpoint, where the parent catches it).

use pki::AgencyCode;
use pki::document::{ReceiptKind, SignedReceipt};
use pki::tlog::{Frontier, Hash, LogEntry, NodeId, Via};
use sqlx::Row as _;

use super::values::{rows_per_statement, unshared_values};
use super::{Arg, Row};
use super::{Backend, NewDocument, Store, StoreError, Tx, from_millis};

/// Most pending leaves one round of the log indexes (in writes of at most
/// [`INTEGRATE_PER_WRITE`]); the rest wait for the next round.
pub const MAX_INTEGRATE: i64 = 20_000;

/// Most pending leaves one write indexes. On SQLite each write is a savepoint whose journal
/// (the pages it changes, kept in memory: see `sqlite::Conn::open_writer`) grows with it: a
/// leaf changes a page of the leaves' envelope index at a random place, so 20,000 leaves in
/// one write could hold tens of MiB; 1,000 hold a few.
pub const INTEGRATE_PER_WRITE: i64 = 1_000;
/// An indexed leaf to insert: index, bytes, envelope, kind, via.
type LeafRow = (i64, Vec<u8>, Vec<u8>, &'static str, Option<String>);

/// A checkpoint this node signed.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    /// Tree size.
    pub size: u64,
    /// The signed note, with the parent's cosignature once given.
    pub note: String,
    /// When it was signed (ms).
    pub signed_at: i64,
    /// When the parent's cosignature was added (ms).
    pub witnessed_at: Option<i64>,
    /// Why the parent refused it, if it did.
    pub refused: Option<String>,
}

/// A checkpoint a witness refused as inconsistent with one it co-signed.
#[derive(Debug, Clone)]
pub struct StoredFork {
    /// The log's agency.
    pub agency: String,
    /// Why (fork, rollback, failed proof).
    pub reason: String,
    /// The checkpoint co-signed before.
    pub witnessed: String,
    /// The one presented.
    pub presented: String,
    /// The add-checkpoint request as presented (old size, consistency proof, checkpoint).
    pub proof: String,
    /// When (ms).
    pub at: i64,
}

/// What a witness keeps of one neighbour's log.
#[derive(Debug, Clone)]
pub struct WitnessedLog {
    /// The latest co-signed checkpoint (the log's note as presented).
    pub note: String,
    /// Its size.
    pub size: u64,
}

/// Encodes a certificate chain for a BLOB column: each DER preceded by its 4-byte length.
pub fn encode_chain(chain: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for der in chain {
        out.extend_from_slice(&(der.len() as u32).to_be_bytes());
        out.extend_from_slice(der);
    }
    out
}

/// Reads [`encode_chain`]'s encoding back.
pub fn decode_chain(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut chain = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_at_checked(4).ok_or_else(|| StoreError::Corrupt("stored chain".into()))?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (der, rest) = rest.split_at_checked(len).ok_or_else(|| StoreError::Corrupt("stored chain".into()))?;
        chain.push(der.to_vec());
        bytes = rest;
    }
    Ok(chain)
}

fn hash_of(bytes: Vec<u8>) -> Result<Hash, StoreError> {
    <Hash>::try_from(bytes.as_slice()).map_err(|_| StoreError::Corrupt("a log hash is not 32 bytes".into()))
}

fn int(v: u64) -> i64 {
    // Sizes and indexes are at most pki::tlog::MAX_TREE_SIZE = i64::MAX.
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uint(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative log size or index {v}")))
}

/// The query of the hashes of `nodes`, for the store and a transaction alike (see
/// [`hashes_in`]).
fn hashes_query(nodes: &[NodeId]) -> (String, Vec<Arg>) {
    let mut sql = String::from("SELECT level, idx, hash FROM tlog_nodes WHERE ");
    let mut args = Vec::with_capacity(2 * nodes.len());
    for (i, n) in nodes.iter().enumerate() {
        if i > 0 {
            sql.push_str(" OR ");
        }
        sql.push_str(&format!("(level = ${} AND idx = ${})", 2 * i + 1, 2 * i + 2));
        args.extend([Arg::from(i64::from(n.level)), Arg::from(int(n.index))]);
    }
    (sql, args)
}

/// The hashes of `nodes`, in that order, from the `rows` of [`hashes_query`].
fn hashes_in(rows: Vec<Row>, nodes: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
    let mut found = std::collections::HashMap::with_capacity(rows.len());
    for row in rows {
        let level: i64 = row.try_get("level")?;
        let index: i64 = row.try_get("idx")?;
        found.insert((level, index), hash_of(row.try_get("hash")?)?);
    }
    nodes
        .iter()
        .map(|n| {
            found.get(&(i64::from(n.level), int(n.index))).copied().ok_or_else(|| {
                StoreError::Corrupt(format!("the log has no hash for subtree {} at level {}", n.index, n.level))
            })
        })
        .collect()
}

fn kind_name(entry: &LogEntry) -> &'static str {
    match entry {
        LogEntry::Document { .. } => "document",
        LogEntry::Signed { .. } => "signed",
        LogEntry::Recorded { .. } => "recorded",
    }
}

fn via_column(entry: &LogEntry) -> Option<String> {
    match entry {
        LogEntry::Document { via: Via::Clerk, .. } => Some("clerk".into()),
        LogEntry::Document { via: Via::Node(code), .. } => Some(code.to_string()),
        _ => None,
    }
}

fn checkpoint_row(row: &sqlx::any::AnyRow) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        size: uint(row.try_get("size")?)?,
        note: row.try_get("note")?,
        signed_at: row.try_get("signed_at")?,
        witnessed_at: row.try_get("witnessed_at")?,
        refused: row.try_get("refused")?,
    })
}

/// The query of [`Store::log_documents_via`], a page of the entries a parent shows a child
/// auditing it: it must find its rows through `tlog_leaves_via`, in order, not by reading
/// every entry of the child and sorting them, nor by walking the log from `$2` (migration
/// 0008). It runs unprepared, planned for its values each time: the generic plan a prepared
/// statement may settle on after five runs cannot see how few entries `$1` matches, and
/// walks the log from `$2` (forced in a test: 990 entries read for 11 returned). In the
/// storage suite's data PostgreSQL kept to plans for the values anyway, so this is a guard
/// no test fails without. Public so that the integration tests can ask PostgreSQL's planner
/// for its plan.
pub const DOCUMENTS_VIA: &str = "SELECT idx, entry FROM tlog_leaves WHERE via = $1 AND idx >= $2 ORDER BY idx LIMIT $3";

const SELECT_CHECKPOINT: &str = "SELECT size, note, signed_at, witnessed_at, refused FROM tlog_checkpoints";

impl Store {
    /// From now on every write transaction appends its events to `agency`'s log. A node with
    /// `log.enabled = false` never calls it (measurements of the log's cost).
    pub fn keep_log(&self, agency: AgencyCode) {
        let _ = self.log.set(agency);
    }

    /// Whether events are logged.
    pub fn logging(&self) -> bool {
        self.log.get().is_some()
    }

    /// The hashes of complete subtrees, in the order asked (what `pki::tlog::ProofPlan` names).
    pub async fn log_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let (sql, args) = hashes_query(nodes);
        hashes_in(self.fetch_all(&sql, args).await?, nodes)
    }

    /// The latest checkpoint signed, if any.
    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_CHECKPOINT} ORDER BY size DESC LIMIT 1")))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(checkpoint_row).transpose()
    }

    /// The latest checkpoint the parent co-signed, if any.
    pub async fn latest_witnessed_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_CHECKPOINT} WHERE witnessed_at IS NOT NULL ORDER BY size DESC LIMIT 1"
        )))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(checkpoint_row).transpose()
    }

    /// The checkpoint of exactly `size` leaves, if one was signed.
    pub async fn checkpoint_at(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_CHECKPOINT} WHERE size = $1")))
            .bind(int(size))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(checkpoint_row).transpose()
    }

    /// The indexed leaves about an envelope: (index, leaf bytes), in log order.
    pub async fn log_leaves_for(&self, envelope: &[u8; 32]) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let rows = sqlx::query("SELECT idx, entry FROM tlog_leaves WHERE envelope = $1 ORDER BY idx")
            .bind(envelope.to_vec())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((uint(r.try_get("idx")?)?, r.try_get("entry")?))).collect()
    }

    /// The document leaves of documents handed over by `via` ("clerk" or a neighbour's code),
    /// at index `from` and beyond: (index, leaf bytes), in log order, at most `limit`.
    pub async fn log_documents_via(&self, via: &str, from: u64, limit: i64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let rows = sqlx::query(DOCUMENTS_VIA)
            .persistent(false)
            .bind(via)
            .bind(int(from))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((uint(r.try_get("idx")?)?, r.try_get("entry")?))).collect()
    }

    /// Whether this node holds the document of `envelope` and routed it to `hop`.
    pub async fn routed_to(&self, envelope: &[u8; 32], hop: &AgencyCode) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 FROM routes r JOIN documents d ON d.id = r.document WHERE d.digest = $1 AND r.next_hop = $2 LIMIT 1",
        )
        .bind(envelope.to_vec())
        .bind(hop.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Who handed this node the document of `envelope`: a neighbour's code, or "clerk"; `None`
    /// when it holds no such document.
    pub async fn received_from(&self, envelope: &[u8; 32]) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT received_from FROM documents WHERE digest = $1")
            .bind(envelope.to_vec())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// The neighbours this node routed the document of `envelope` to (its next hops, each
    /// once), by code.
    pub async fn routed_hops(&self, envelope: &[u8; 32]) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT r.next_hop FROM routes r JOIN documents d ON d.id = r.document WHERE d.digest = $1 AND r.next_hop IS NOT NULL ORDER BY r.next_hop",
        )
        .bind(envelope.to_vec())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Number of leaves indexed, and of leaves still pending.
    pub async fn log_sizes(&self) -> Result<(u64, u64), StoreError> {
        let size: i64 =
            sqlx::query("SELECT size FROM tlog_head WHERE id = 1").fetch_one(&self.pool).await?.try_get(0)?;
        let pending: i64 = sqlx::query("SELECT COUNT(*) FROM tlog_pending").fetch_one(&self.pool).await?.try_get(0)?;
        Ok((uint(size)?, uint(pending)?))
    }

    /// The witnesses that co-signed this node's checkpoints: (agency, seal chain, size last
    /// co-signed).
    pub async fn log_cosigners(&self) -> Result<Vec<(String, Vec<Vec<u8>>, u64)>, StoreError> {
        let rows =
            sqlx::query("SELECT agency, chain, size FROM tlog_cosigners ORDER BY agency").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok((r.try_get("agency")?, decode_chain(&r.try_get::<Vec<u8>, _>("chain")?)?, uint(r.try_get("size")?)?))
            })
            .collect()
    }

    /// Checkpoints refused as forks or rewrites by this node as a witness, newest first.
    pub async fn log_forks(&self, limit: i64) -> Result<Vec<StoredFork>, StoreError> {
        let rows = sqlx::query(
            "SELECT agency, reason, witnessed, presented, proof, at FROM tlog_forks ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredFork {
                    agency: r.try_get("agency")?,
                    reason: r.try_get("reason")?,
                    witnessed: r.try_get("witnessed")?,
                    presented: r.try_get("presented")?,
                    proof: r.try_get("proof")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    /// The latest co-signed checkpoint of each neighbour's log this node witnesses.
    pub async fn log_witnessed_all(&self) -> Result<Vec<(String, WitnessedLog)>, StoreError> {
        let rows =
            sqlx::query("SELECT agency, note, size FROM tlog_witnessed ORDER BY agency").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok((r.try_get("agency")?, WitnessedLog { note: r.try_get("note")?, size: uint(r.try_get("size")?)? }))
            })
            .collect()
    }
}

/// The statement inserting `rows` pending leaves of the log.
fn leaves_insert(backend: Backend, rows: usize) -> String {
    format!("INSERT INTO tlog_pending (entry) VALUES {}", unshared_values(backend, "({})", rows))
}

impl Tx<'_> {
    /// Appends `entry` to the log (pending its index) if this store keeps one. Called in the
    /// transaction that records the event; the row is written in it, with the transaction's
    /// other entries (a batch of 64 notices is one statement, not 64): on SQLite when it
    /// commits, on PostgreSQL with the writes it sends together (see [`Tx::defer`]). It
    /// exists if and only if the event committed.
    pub fn log_entry(&mut self, entry: &LogEntry) {
        if self.log.is_some() {
            self.log_pending.push(entry.to_bytes());
        }
    }

    /// SQLite: writes the entries [`Tx::log_entry`] kept, in their order, before the
    /// transaction commits (one statement when they are few). On PostgreSQL none is left by
    /// then: they went with the writes the transaction kept (see [`Tx::keep_log_entries`]).
    pub(crate) async fn insert_log_entries(&mut self) -> Result<(), StoreError> {
        let mut entries = std::mem::take(&mut self.log_pending);
        while !entries.is_empty() {
            let rest = entries.split_off(entries.len().min(rows_per_statement(1, 0)));
            let chunk = std::mem::replace(&mut entries, rest);
            self.execute(&leaves_insert(self.backend, chunk.len()), chunk.into_iter().map(Arg::from).collect()).await?;
        }
        Ok(())
    }

    /// PostgreSQL: the next statement's worth of the entries [`Tx::log_entry`] kept joins the
    /// writes the transaction keeps (see [`Tx::defer`]), unless it would not fit beside them;
    /// true if entries are left. One insert of leaves a statement, so that their ids keep
    /// their order (the sub-statements of one statement run in no set order).
    pub(crate) fn keep_log_entries(&mut self) -> bool {
        if self.log_pending.is_empty() {
            return false;
        }
        let n = self.log_pending.len().min(rows_per_statement(1, 0));
        if self.deferred.is_full_for(n) {
            return true;
        }
        let chunk: Vec<Arg> = self.log_pending.drain(..n).map(Arg::from).collect();
        self.deferred.push(&leaves_insert(self.backend, n), chunk);
        !self.log_pending.is_empty()
    }

    /// Logs a document just recorded (see [`Tx::insert_document`]).
    pub(crate) fn log_document(&mut self, d: &NewDocument<'_>) -> Result<(), StoreError> {
        if self.log.is_none() {
            return Ok(());
        }
        let via = match d.received_from {
            "clerk" => Via::Clerk,
            other => Via::Node(other.parse().map_err(|e: pki::AgencyCodeError| StoreError::Corrupt(e.to_string()))?),
        };
        let at = from_millis(d.received_at).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let (envelope, document) = (d.document.envelope().digest(), d.document.manifest().id());
        self.log_entry(&LogEntry::Document { envelope, document, via, at });
        Ok(())
    }

    /// Logs a receipt just stored (see [`Tx::insert_receipt`]): signed by this agency's seal,
    /// or recorded from another agency.
    pub(crate) fn log_receipt(&mut self, r: &SignedReceipt, now: i64) {
        let Some(own) = self.log else { return };
        let c = &r.receipt;
        let at = from_millis(now).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let kind: ReceiptKind = c.kind;
        let entry = if c.by == own {
            LogEntry::Signed { receipt: r.digest(), kind, envelope: c.envelope, at }
        } else {
            LogEntry::Recorded { receipt: r.digest(), kind, by: c.by, envelope: c.envelope, at }
        };
        self.log_entry(&entry);
    }

    /// Gives pending leaves (at most [`INTEGRATE_PER_WRITE`]) their index, in the order of
    /// their rows among those committed (see the module's doc),
    /// and stores every complete subtree they complete. Returns the frontier of the tree now
    /// and how many leaves it indexed. Holds the log's head row (PostgreSQL `FOR UPDATE`;
    /// SQLite has one writer) until the transaction ends, so two processes never index the
    /// same leaves.
    pub async fn integrate(&mut self) -> Result<(Frontier, i64), StoreError> {
        let lock = match self.backend {
            Backend::Sqlite => "SELECT size FROM tlog_head WHERE id = 1",
            Backend::Postgres => "SELECT size FROM tlog_head WHERE id = 1 FOR UPDATE",
        };
        let size = uint(self.fetch_one(lock, vec![]).await?.try_get(0)?)?;
        let ids = Frontier::node_ids(size);
        let hashes = match ids.is_empty() {
            true => Vec::new(),
            false => {
                let (sql, args) = hashes_query(&ids);
                hashes_in(self.fetch_all(&sql, args).await?, &ids)?
            }
        };
        let mut frontier =
            Frontier::from_hashes(size, hashes).map_err(|e| StoreError::Corrupt(format!("the log's frontier: {e}")))?;
        let pending = self
            .fetch_all("SELECT id, entry FROM tlog_pending ORDER BY id LIMIT $1", vec![Arg::from(INTEGRATE_PER_WRITE)])
            .await?;
        if pending.is_empty() {
            return Ok((frontier, 0));
        }
        let mut taken = Vec::with_capacity(pending.len());
        let mut leaves: Vec<LeafRow> = Vec::with_capacity(pending.len());
        let mut nodes: Vec<(i64, i64, Vec<u8>)> = Vec::with_capacity(pending.len() * 2);
        for row in &pending {
            let id: i64 = row.try_get("id")?;
            let bytes: Vec<u8> = row.try_get("entry")?;
            let entry = LogEntry::from_bytes(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("pending log entry {id}: {e}")))?;
            let index = int(frontier.size());
            for (node, hash) in
                frontier.append(pki::tlog::leaf_hash(&bytes)).map_err(|e| StoreError::Corrupt(e.to_string()))?
            {
                nodes.push((i64::from(node.level), int(node.index), hash.to_vec()));
            }
            leaves.push((index, bytes, entry.envelope().to_vec(), kind_name(&entry), via_column(&entry)));
            taken.push(id);
        }
        for chunk in leaves.chunks(rows_per_statement(5, 0)) {
            let sql = format!(
                "INSERT INTO tlog_leaves (idx, entry, envelope, kind, via) VALUES {}",
                unshared_values(self.backend, "({}, {}, {}, {}, {})", chunk.len())
            );
            let mut args = Vec::with_capacity(5 * chunk.len());
            for (index, bytes, envelope, kind, via) in chunk {
                args.extend([
                    Arg::from(*index),
                    Arg::from(bytes.clone()),
                    Arg::from(envelope.clone()),
                    Arg::from(*kind),
                    Arg::from(via.clone()),
                ]);
            }
            self.execute(&sql, args).await?;
        }
        for chunk in nodes.chunks(rows_per_statement(3, 0)) {
            let sql = format!(
                "INSERT INTO tlog_nodes (level, idx, hash) VALUES {}",
                unshared_values(self.backend, "({}, {}, {})", chunk.len())
            );
            let mut args = Vec::with_capacity(3 * chunk.len());
            for (level, index, hash) in chunk {
                args.extend([Arg::from(*level), Arg::from(*index), Arg::from(hash.clone())]);
            }
            self.execute(&sql, args).await?;
        }
        for chunk in taken.chunks(rows_per_statement(1, 0)) {
            let sql =
                format!("DELETE FROM tlog_pending WHERE id IN ({})", unshared_values(self.backend, "{}", chunk.len()));
            self.execute(&sql, chunk.iter().map(|id| Arg::from(*id)).collect()).await?;
        }
        self.execute("UPDATE tlog_head SET size = $1 WHERE id = 1", vec![Arg::from(int(frontier.size()))]).await?;
        Ok((frontier, taken.len() as i64))
    }

    /// Records a checkpoint this node signed (nothing if one of that size exists).
    pub async fn insert_checkpoint(&mut self, size: u64, note: &str, now: i64) -> Result<bool, StoreError> {
        let done = self.execute("INSERT INTO tlog_checkpoints (size, note, signed_at) VALUES ($1, $2, $3) ON CONFLICT (size) DO NOTHING", vec![Arg::from(int(size)), Arg::from(note), Arg::from(now)]).await?;
        Ok(done == 1)
    }

    /// Adds witness `agency`'s cosignature: the checkpoint of `size` gets the co-signed `note`,
    /// and the witness's chain and size are kept.
    pub async fn add_cosignature(
        &mut self,
        size: u64,
        note: &str,
        agency: &AgencyCode,
        chain: &[Vec<u8>],
        now: i64,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE tlog_checkpoints SET note = $1, witnessed_at = $2, refused = NULL WHERE size = $3",
            vec![Arg::from(note), Arg::from(now), Arg::from(int(size))],
        )
        .await?;
        self.execute(
            "INSERT INTO tlog_cosigners (agency, chain, size, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (agency) DO UPDATE SET chain = excluded.chain, size = excluded.size, at = excluded.at",
            vec![Arg::from(agency.to_string()), Arg::from(encode_chain(chain)), Arg::from(int(size)), Arg::from(now)],
        )
        .await?;
        Ok(())
    }

    /// The note of the checkpoint of `size`, inside the transaction.
    pub async fn checkpoint_note(&mut self, size: u64) -> Result<Option<String>, StoreError> {
        let row = self
            .fetch_optional("SELECT note FROM tlog_checkpoints WHERE size = $1", vec![Arg::from(int(size))])
            .await?;
        row.map(|r| r.try_get("note")).transpose()
    }

    /// Records why a witness refused the checkpoint of `size`.
    pub async fn checkpoint_refused(&mut self, size: u64, reason: &str) -> Result<(), StoreError> {
        self.execute(
            "UPDATE tlog_checkpoints SET refused = $1 WHERE size = $2",
            vec![Arg::from(reason), Arg::from(int(size))],
        )
        .await?;
        Ok(())
    }

    /// As a witness: the latest co-signed checkpoint of `agency`'s log, held for the rest of the
    /// transaction (PostgreSQL `FOR UPDATE`), so two requests are never checked against the
    /// same state.
    pub async fn witnessed_for_update(&mut self, agency: &AgencyCode) -> Result<Option<WitnessedLog>, StoreError> {
        let sql = match self.backend {
            Backend::Sqlite => "SELECT note, size FROM tlog_witnessed WHERE agency = $1",
            Backend::Postgres => "SELECT note, size FROM tlog_witnessed WHERE agency = $1 FOR UPDATE",
        };
        let row = self.fetch_optional(sql, vec![Arg::from(agency.to_string())]).await?;
        row.map(|r| Ok(WitnessedLog { note: r.try_get("note")?, size: uint(r.try_get("size")?)? })).transpose()
    }

    /// As a witness: `agency`'s log's latest co-signed checkpoint is now `note`.
    pub async fn set_witnessed(
        &mut self,
        agency: &AgencyCode,
        note: &str,
        size: u64,
        chain: &[Vec<u8>],
        now: i64,
    ) -> Result<(), StoreError> {
        self.execute("INSERT INTO tlog_witnessed (agency, note, size, chain, at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (agency) DO UPDATE SET note = excluded.note, size = excluded.size, chain = excluded.chain, at = excluded.at", vec![Arg::from(agency.to_string()), Arg::from(note), Arg::from(int(size)), Arg::from(encode_chain(chain)), Arg::from(now)]).await?;
        Ok(())
    }

    /// As a witness: keeps the evidence of a fork, rollback or rewrite.
    pub async fn insert_fork(&mut self, fork: &StoredFork) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO tlog_forks (agency, reason, witnessed, presented, proof, at) VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                Arg::from(&fork.agency),
                Arg::from(&fork.reason),
                Arg::from(&fork.witnessed),
                Arg::from(&fork.presented),
                Arg::from(&fork.proof),
                Arg::from(fork.at),
            ],
        )
        .await?;
        Ok(())
    }
}
