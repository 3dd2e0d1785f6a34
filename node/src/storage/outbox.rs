//! The durable outbox: each transfer of a document or notice to a next hop, until the next
//! hop has taken responsibility for it.
//!
//! Work is claimed with a lease (owner and expiry) so that several node processes on one
//! PostgreSQL never send the same transfer at once, and a transfer claimed by a process that
//! died is picked up again when its lease runs out. Only the holder of a claim may finish it,
//! so a late answer to an expired claim changes nothing. Each transfer is deduplicated by a key
//! (document and recipients, or receipt; and next hop), so a retried or replayed hand-over adds
//! nothing.

use pki::AgencyCode;
use sqlx::Row as _;

use super::values::{padded, rows_per_statement, unshared_values, values};
use super::{Arg, Row};
use super::{Backend, Store, StoreError, Tx, join_codes, split_codes};

/// The queues whose rows are claimed with leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leased {
    /// Transfers to next hops (`outbox`).
    Outbox,
    /// Notification mail (`mail_outbox`).
    Mail,
}

impl Leased {
    fn table(self) -> &'static str {
        match self {
            Leased::Outbox => "outbox",
            Leased::Mail => "mail_outbox",
        }
    }
}

/// What a transfer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferKind {
    /// A document (by row id).
    Document(i64),
    /// A receipt or status (by row id).
    Notice(i64),
}

/// What a claim of the outbox found: the transfers claimed, and what the claim's own read
/// says of the rows after them.
#[derive(Debug)]
pub struct Claim {
    /// The transfers claimed, oldest due first.
    pub transfers: Vec<Transfer>,
    /// When the next pending row not claimed falls due, if the claim could tell.
    pub next: NextDue,
}

/// When the outbox's next row falls due, as a claim saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextDue {
    /// The claim cannot tell: ask [`Store::next_due_except`] (a row past the claimed ones
    /// was due already, left for lack of room).
    Unknown,
    /// No pending row other than those claimed and those running (on PostgreSQL, none not
    /// due yet: rows due but held by another process's lease are not counted).
    Never,
    /// The earliest pending row after those claimed falls due then (ms), in the future.
    At(i64),
}

/// A transfer to queue with [`Tx::enqueue_all_due`].
#[derive(Debug, Clone, Copy)]
pub struct NewTransfer<'a> {
    /// What it carries.
    pub kind: TransferKind,
    /// Where to.
    pub next_hop: &'a AgencyCode,
    /// The recipients it carries for.
    pub recipients: &'a [AgencyCode],
    /// When it falls due (ms; see [`Tx::enqueue_due`]).
    pub due: i64,
}

/// The columns of an outbox row queued, in the order of [`transfer_args`].
const INSERT_TRANSFERS: &str = "INSERT INTO outbox (dedup_key, kind, document, receipt, next_hop, recipients, next_attempt_at, created_at, state, attempts) VALUES ";

/// The placeholders of one queued transfer's row.
const TRANSFER_ROW: &str = "({}, {}, {}, {}, {}, {}, {}, {}, 'pending', 0)";

/// How many values a queued transfer's row binds.
const TRANSFER_COLUMNS: usize = 8;

/// [`Tx::enqueue_due`]'s statement: one row, queued unless the same transfer is.
static ENQUEUE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("{INSERT_TRANSFERS}{} ON CONFLICT (dedup_key) DO NOTHING RETURNING id", values(TRANSFER_ROW, 0, 1))
});

/// What makes a transfer the same as another: a repeat is not queued again.
fn transfer_key(kind: TransferKind, next_hop: &AgencyCode, recipients: &[AgencyCode]) -> String {
    match kind {
        // The recipients are part of the key: the same document reaching this node again
        // for other recipients behind the same next hop is a new transfer.
        TransferKind::Document(d) => format!("d:{d}:{next_hop}:{}", join_codes(recipients)),
        TransferKind::Notice(r) => format!("n:{r}:{next_hop}"),
    }
}

/// The values of a queued transfer's row, in the order of [`INSERT_TRANSFERS`].
fn transfer_args(kind: TransferKind, next_hop: &AgencyCode, recipients: &[AgencyCode], now: i64, due: i64) -> Vec<Arg> {
    let (kind_name, document, receipt) = match kind {
        TransferKind::Document(d) => ("document", Some(d), None),
        TransferKind::Notice(r) => ("notice", None, Some(r)),
    };
    vec![
        Arg::from(transfer_key(kind, next_hop, recipients)),
        Arg::from(kind_name),
        Arg::from(document),
        Arg::from(receipt),
        Arg::from(next_hop.to_string()),
        Arg::from(join_codes(recipients)),
        Arg::from(due),
        Arg::from(now),
    ]
}

/// One claimed transfer.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// Row id.
    pub id: i64,
    /// What it carries.
    pub kind: TransferKind,
    /// Where to.
    pub next_hop: AgencyCode,
    /// The recipients it carries for.
    pub recipients: Vec<AgencyCode>,
    /// Failed attempts so far.
    pub attempts: u32,
}

impl Tx<'_> {
    /// Queues a transfer, due at once, unless the same transfer is already queued (or done);
    /// returns the new row's id, `None` when it was already there.
    pub async fn enqueue(
        &mut self,
        kind: TransferKind,
        next_hop: &AgencyCode,
        recipients: &[AgencyCode],
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.enqueue_due(kind, next_hop, recipients, now, now).await
    }

    /// [`Tx::enqueue`], the transfer due only at `due`: for one the caller hands to the outbox
    /// itself once this transaction commits (`outbound::Client::hand_over`), so that the
    /// outbox's claims leave it to the hand-off until then (a claim in the instant between
    /// the commit and the hand-off would send it, reading it back from the database), and
    /// take it after that if the hand-off never came (the queue was full, the node stopped).
    pub async fn enqueue_due(
        &mut self,
        kind: TransferKind,
        next_hop: &AgencyCode,
        recipients: &[AgencyCode],
        now: i64,
        due: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row = self.fetch_optional(&ENQUEUE, transfer_args(kind, next_hop, recipients, now, due)).await?;
        self.queued |= row.is_some();
        row.map(|r| r.try_get::<i64, _>("id")).transpose()
    }

    /// [`Tx::enqueue_due`] of several transfers in one statement (more only past the
    /// parameter limit): each one's row id, `None` for one already queued (or done, or
    /// earlier in `transfers`). In the order of their keys: two transactions queueing some of
    /// the same wait for each other in one order, never in a cycle.
    pub async fn enqueue_all_due(
        &mut self,
        transfers: &[NewTransfer<'_>],
        now: i64,
    ) -> Result<Vec<Option<i64>>, StoreError> {
        let keys: Vec<String> = transfers.iter().map(|t| transfer_key(t.kind, t.next_hop, t.recipients)).collect();
        let mut order: Vec<usize> = (0..transfers.len()).collect();
        order.sort_by(|a, b| keys[*a].cmp(&keys[*b]));
        let most = rows_per_statement(TRANSFER_COLUMNS, 0);
        let mut queued = std::collections::HashMap::with_capacity(transfers.len());
        for chunk in order.chunks(most) {
            // The last row again is a conflict with itself, queued once: padded to few texts.
            let rows = padded(chunk.len(), most);
            let sql = format!(
                "{INSERT_TRANSFERS}{} ON CONFLICT (dedup_key) DO NOTHING RETURNING id, dedup_key",
                unshared_values(self.backend, TRANSFER_ROW, rows)
            );
            let args = (0..rows)
                .map(|k| &transfers[chunk[k.min(chunk.len() - 1)]])
                .flat_map(|t| transfer_args(t.kind, t.next_hop, t.recipients, now, t.due))
                .collect();
            for row in self.fetch_all(&sql, args).await? {
                queued.insert(row.try_get::<String, _>("dedup_key")?, row.try_get::<i64, _>("id")?);
            }
        }
        self.queued |= !queued.is_empty();
        // The row queued is the first of its key (the others conflicted with it).
        Ok(keys.iter().map(|k| queued.remove(k)).collect())
    }

    /// Queues receipts (by row) as notices, each to its neighbour, due now: one statement for
    /// them all ([`Tx::enqueue_all_due`]), for the receipts a batch passes on toward their
    /// addressees (`notices::keep_all`, `outbound::answers`).
    pub async fn enqueue_notices(&mut self, notices: &[(i64, AgencyCode)], now: i64) -> Result<(), StoreError> {
        if notices.is_empty() {
            return Ok(());
        }
        let transfers: Vec<NewTransfer<'_>> = notices
            .iter()
            .map(|(row, n)| NewTransfer { kind: TransferKind::Notice(*row), next_hop: n, recipients: &[], due: now })
            .collect();
        self.enqueue_all_due(&transfers, now).await.map(drop)
    }

    /// Whether this transaction queued an outbox row so far (a transfer or a notice, new):
    /// once it commits, the outbox is to be woken for it, and only then. A node taking
    /// documents for its own agency queues nothing, and each wake-up of the outbox is a claim
    /// (a transaction of five statements on PostgreSQL) that finds nothing.
    pub fn queued(&self) -> bool {
        self.queued
    }

    /// Queues the notice of a receipt stored in this transaction, named by its digest, to
    /// `next_hop`: [`Tx::enqueue`] of [`TransferKind::Notice`] without asking for the
    /// receipt's row id first (the statement finds it).
    pub async fn enqueue_notice_of(
        &mut self,
        digest: &[u8; 32],
        next_hop: &AgencyCode,
        now: i64,
    ) -> Result<(), StoreError> {
        let queued = self.execute(
            "INSERT INTO outbox (dedup_key, kind, receipt, next_hop, recipients, state, attempts, next_attempt_at, created_at)
             SELECT 'n:' || id || ':' || $1, 'notice', id, $1, '', 'pending', 0, $2, $2 FROM receipts WHERE digest = $3
             ON CONFLICT (dedup_key) DO NOTHING",
            vec![Arg::from(next_hop.to_string()), Arg::from(now), Arg::from(digest.to_vec())],
        )
        .await?;
        self.queued |= queued > 0;
        Ok(())
    }

    /// Queues the notices of the statuses 01 and 02 this node (`by`) signed for a document's
    /// `sender` to `next_hop`, each once ever (the same key as [`Tx::enqueue_notice_of`]'s):
    /// for a repeated delivery that does not take them with its hop receipt, when the first
    /// one may have (its answer lost), so that they still reach the sender.
    pub async fn enqueue_sender_statuses(
        &mut self,
        envelope: &[u8; 32],
        by: &AgencyCode,
        sender: &AgencyCode,
        next_hop: &AgencyCode,
        now: i64,
    ) -> Result<(), StoreError> {
        let queued = self.execute(
            concat!(
                "INSERT INTO outbox (dedup_key, kind, receipt, next_hop, recipients, state, attempts, next_attempt_at, created_at)
                 SELECT 'n:' || id || ':' || $1, 'notice', id, $1, '', 'pending', 0, $2, $2 FROM receipts WHERE ",
                super::receipts::sender_statuses_where!("$3", "$4", "$5"),
                " ON CONFLICT (dedup_key) DO NOTHING"
            ),
            vec![
                Arg::from(next_hop.to_string()),
                Arg::from(now),
                Arg::from(envelope.to_vec()),
                Arg::from(by.to_string()),
                Arg::from(sender.to_string()),
            ],
        )
        .await?;
        self.queued |= queued > 0;
        Ok(())
    }

    /// Marks a transfer claimed by `owner` finished: `done` (handed over) or `refused`. False
    /// when the claim was lost (its lease ran out and another worker took the transfer): the
    /// caller then rolls back and records nothing.
    pub async fn finish_transfer(&mut self, id: i64, owner: &str, state: &str, now: i64) -> Result<bool, StoreError> {
        Ok(self.finish_transfers(&[id], owner, state, now).await? > 0)
    }

    /// [`Tx::finish_transfer`] for many transfers at once (the notices of one batch the
    /// neighbour took), in one statement per [`rows_per_statement`] ids instead of one each;
    /// returns how many were still held by `owner` (the others' claims were lost).
    pub async fn finish_transfers(
        &mut self,
        ids: &[i64],
        owner: &str,
        state: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        Ok(self.finish_held(ids, owner, state, now).await?.len() as u64)
    }

    /// [`Tx::finish_transfers`], answering which of `ids` were still held by `owner` and are
    /// finished now: a batch of next hops' answers records the others' nothing (see
    /// `outbound::answers`).
    pub async fn finish_held(
        &mut self,
        ids: &[i64],
        owner: &str,
        state: &str,
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut finished = Vec::with_capacity(ids.len());
        let most = rows_per_statement(1, 3);
        for chunk in ids.chunks(most) {
            // An id twice in the list is one row: padded to few texts.
            let rows = padded(chunk.len(), most);
            let sql = format!(
                concat!(
                    "UPDATE outbox SET state = $2, done_at = $3, lease_owner = NULL, lease_until = NULL WHERE ",
                    held_by!(owner = "$1"),
                    " AND id IN ({}) RETURNING id"
                ),
                values("{}", 3, rows)
            );
            let mut args = Vec::with_capacity(3 + rows);
            args.extend([Arg::from(owner), Arg::from(state), Arg::from(now)]);
            args.extend((0..rows).map(|i| Arg::from(chunk[i.min(chunk.len() - 1)])));
            for row in self.fetch_all(&sql, args).await? {
                finished.push(row.try_get("id")?);
            }
        }
        Ok(finished)
    }

    /// Records a failed attempt of a transfer claimed by `owner`: retried at
    /// `next_attempt_at`, or dead-lettered. `counted` is false for an attempt cut short by
    /// shutdown. False when the claim was lost.
    pub async fn fail_transfer(
        &mut self,
        id: i64,
        owner: &str,
        error: &str,
        next_attempt_at: i64,
        dead: bool,
        counted: bool,
    ) -> Result<bool, StoreError> {
        let done = self.execute(concat!(
            "UPDATE outbox SET attempts = attempts + $3, last_error = $4, next_attempt_at = $5, state = $6, lease_owner = NULL, lease_until = NULL WHERE ",
            held_by!()
        ), vec![Arg::from(id), Arg::from(owner), Arg::from(i64::from(counted)), Arg::from(error), Arg::from(next_attempt_at), Arg::from(if dead { "dead" } else { "pending" })]).await?;
        Ok(done > 0)
    }
}

/// A subquery answering the row ids `ids` (transfers this process is running), bound as one
/// JSON array in parameter `$n`, and that argument. The statement's text is the same whatever
/// the ids, so it is prepared once and kept: with the ids written into the text (sqlx's Any
/// driver binds no arrays), every claim under load was a statement never seen before,
/// prepared again and pushing the kept ones out of the cache.
fn ids(backend: Backend, n: usize, ids: &[i64]) -> (String, Arg) {
    let list = format!("[{}]", ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
    let sql = match backend {
        Backend::Sqlite => format!("(SELECT value FROM json_each(${n}))"),
        Backend::Postgres => format!("(SELECT value::bigint FROM json_array_elements_text(${n}::json))"),
    };
    (sql, Arg::from(list))
}

/// ` AND id NOT IN (…)` leaving out the row ids `except` (see [`ids`]), and its argument.
fn not_in(backend: Backend, n: usize, except: &[i64]) -> (String, Arg) {
    let (sql, arg) = ids(backend, n, except);
    (format!(" AND id NOT IN {sql}"), arg)
}

fn transfer(row: &Row) -> Result<Transfer, StoreError> {
    let kind = match row.try_get::<String, _>("kind")?.as_str() {
        "document" => TransferKind::Document(
            row.try_get::<Option<i64>, _>("document")?
                .ok_or_else(|| StoreError::Corrupt("document transfer without document".into()))?,
        ),
        "notice" => TransferKind::Notice(
            row.try_get::<Option<i64>, _>("receipt")?
                .ok_or_else(|| StoreError::Corrupt("notice transfer without receipt".into()))?,
        ),
        other => return Err(StoreError::Corrupt(format!("unknown transfer kind {other}"))),
    };
    Ok(Transfer {
        id: row.try_get("id")?,
        kind,
        next_hop: row
            .try_get::<String, _>("next_hop")?
            .parse()
            .map_err(|e: pki::AgencyCodeError| StoreError::Corrupt(e.to_string()))?,
        recipients: split_codes(&row.try_get::<String, _>("recipients")?)?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
    })
}

/// What [`Store::depths`] finds in a leased queue.
#[derive(Debug, Default)]
pub(crate) struct Depths {
    by_state: std::collections::HashMap<String, i64>,
    /// Pending rows that failed at least once.
    pub(crate) retrying: i64,
    /// Age of the oldest pending row, seconds.
    pub(crate) oldest_pending_seconds: i64,
}

impl Depths {
    /// Rows in `state`.
    pub(crate) fn count(&self, state: &str) -> i64 {
        self.by_state.get(state).copied().unwrap_or(0)
    }
}

/// Queue depths for the health read-out.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct QueueDepths {
    /// Transfers waiting.
    pub pending: i64,
    /// Of which already failed at least once.
    pub retrying: i64,
    /// Dead-lettered (gave up after the retry policy).
    pub dead: i64,
    /// Refused by the next hop.
    pub refused: i64,
    /// Handed over.
    pub done: i64,
    /// Oldest pending transfer's age, seconds.
    pub oldest_pending_seconds: i64,
    /// Pending for longer than `health.backlog_age` (set by the health read-out).
    pub backlog: i64,
    /// Attempts running now (a running node's read-out).
    pub in_flight: i64,
    /// Of which running longer than `health.stuck_after`.
    pub stuck: i64,
}

/// The outbox toward one next hop, for the health read-out.
#[derive(Debug, Clone)]
pub struct HopQueue {
    /// The next hop.
    pub next_hop: String,
    /// Transfers waiting.
    pub pending: i64,
    /// Of which failed at least once.
    pub retrying: i64,
    /// Of which created before the backlog cut-off.
    pub aged: i64,
    /// The oldest waiting transfer's age, seconds.
    pub oldest_pending_seconds: i64,
    /// When it last took a transfer, ms.
    pub last_done: Option<i64>,
    /// The error of its latest failed transfer still waiting.
    pub last_error: Option<String>,
}

/// The query of [`Store::outbox_by_hop`], which every health read-out runs (`status`,
/// `/metrics`, the console, a clerk's `Health`): each next hop the outbox ever named, found
/// by stepping through `outbox_by_hop` from one to the next (neither SQLite nor PostgreSQL
/// skips through an index by itself, so a `GROUP BY` read every transfer ever queued: 322–394
/// ms at 400,000 transfers on SQLite before migration 0010), its waiting transfers from the
/// pending rows alone, and its latest hand-over from the end of its range of done rows in
/// `outbox_by_hop`. Public so that the integration tests can ask PostgreSQL's planner for its
/// plan.
pub const OUTBOX_BY_HOP: &str = "WITH RECURSIVE hops (next_hop) AS (
         SELECT MIN(next_hop) FROM outbox
         UNION ALL
         SELECT (SELECT MIN(o.next_hop) FROM outbox o WHERE o.next_hop > h.next_hop) FROM hops h WHERE h.next_hop IS NOT NULL
     )
     SELECT h.next_hop, p.pending, p.retrying, p.aged, p.oldest,
            (SELECT MAX(o.done_at) FROM outbox o WHERE o.next_hop = h.next_hop AND o.state = 'done') AS last_done
     FROM hops h
     LEFT JOIN (SELECT next_hop, COUNT(*) AS pending,
                       SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) AS retrying,
                       SUM(CASE WHEN created_at < $1 THEN 1 ELSE 0 END) AS aged,
                       MIN(created_at) AS oldest
                FROM outbox WHERE state = 'pending' GROUP BY next_hop) p ON p.next_hop = h.next_hop
     WHERE h.next_hop IS NOT NULL ORDER BY h.next_hop";

impl Store {
    /// Claims up to `limit` due transfers for `owner` until `lease_until` (ms).
    pub async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<Transfer>, StoreError> {
        Ok(self.claim_due_except(owner, now, lease_until, limit, &[]).await?.transfers)
    }

    /// [`Store::claim_due`], leaving out the transfers `running` (those this process is
    /// sending now): on SQLite a claim is a plain read, so without this every wake-up would
    /// read the running transfers again (they are still pending and the oldest due) before
    /// reaching new work.
    ///
    /// On SQLite the claim's statement also reads the first row not due yet, so it tells when
    /// the next one falls due ([`Claim::next`]) and the outbox need not ask with a second
    /// read after every wake-up. On PostgreSQL a claim that took fewer rows than it asked
    /// for reads it in its own transaction, an index search: [`Store::next_due_except`] there
    /// reads every pending row for their leases (5–6 ms with 20,000 transfers backed off
    /// behind a neighbour that is down, at every wake-up of the outbox).
    pub async fn claim_due_except(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
        running: &[i64],
    ) -> Result<Claim, StoreError> {
        const COLUMNS: &str = "id, kind, document, receipt, next_hop, recipients, attempts";
        if self.backend() == Backend::Sqlite {
            // As `claim_rows_except` on SQLite, one due row more than asked for (to tell that
            // some were left), and beside them the first row not due yet: both index searches
            // stop where they should, however many rows back off (a neighbour down for hours).
            let (except, ids) = not_in(Backend::Sqlite, 3, running);
            let rows = self
                .fetch_all(
                    &format!(
                        "SELECT * FROM (SELECT {COLUMNS}, next_attempt_at FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1{except} ORDER BY next_attempt_at, id LIMIT $2) \
                         UNION ALL SELECT * FROM (SELECT {COLUMNS}, next_attempt_at FROM outbox WHERE state = 'pending' AND next_attempt_at > $1{except} ORDER BY next_attempt_at, id LIMIT 1) \
                         ORDER BY next_attempt_at, id"
                    ),
                    vec![Arg::from(now), Arg::from(limit.max(0).saturating_add(1)), ids],
                )
                .await?;
            let mut transfers = Vec::with_capacity(rows.len());
            let mut next = NextDue::Never;
            for row in &rows {
                let due: i64 = row.try_get("next_attempt_at")?;
                if due > now {
                    next = NextDue::At(due);
                    break;
                }
                if transfers.len() as i64 == limit {
                    next = NextDue::Unknown;
                    break;
                }
                transfers.push(transfer(row)?);
            }
            return Ok(Claim { transfers, next });
        }
        let (rows, next) =
            self.claim_rows_except(Leased::Outbox, COLUMNS, owner, (now, lease_until, limit), running, true).await?;
        Ok(Claim { transfers: rows.iter().map(transfer).collect::<Result<_, _>>()?, next })
    }

    /// Claims up to `limit` due rows of `queue` for `owner` until `lease_until` (ms), oldest
    /// due first, returning `columns` of each.
    pub(crate) async fn claim_rows(
        &self,
        queue: Leased,
        columns: &'static str,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<Row>, StoreError> {
        Ok(self.claim_rows_except(queue, columns, owner, (now, lease_until, limit), &[], false).await?.0)
    }

    /// [`Store::claim_rows`] leaving out the rows `except`; `window` is (now, lease until,
    /// limit). With `next` on PostgreSQL, a claim that took fewer rows than `limit` also
    /// reads, in its transaction, when the first pending row not due yet falls due
    /// ([`NextDue::At`], or [`NextDue::Never`]): one index search however many rows wait.
    /// Rows due but held by another process's lease are not counted: the outbox waits at
    /// most a second between claims anyway. Otherwise the next due time is
    /// [`NextDue::Unknown`].
    async fn claim_rows_except(
        &self,
        queue: Leased,
        columns: &'static str,
        owner: &str,
        (now, lease_until, limit): (i64, i64, i64),
        except: &[i64],
        next: bool,
    ) -> Result<(Vec<Row>, NextDue), StoreError> {
        let table = queue.table();
        // The table name and columns are constants of this crate.
        match self.backend() {
            // One process owns a SQLite database (leases are released at start): claiming is a
            // read, and the worker keeps a row from running twice. No write, no fsync per claim.
            Backend::Sqlite => {
                let (except, ids) = not_in(Backend::Sqlite, 3, except);
                let rows = self
                    .fetch_all(
                        &format!(
                            "SELECT {columns} FROM {table} WHERE state = 'pending' AND next_attempt_at <= $1{except} ORDER BY next_attempt_at, id LIMIT $2"
                        ),
                        vec![Arg::from(now), Arg::from(limit), ids],
                    )
                    .await?;
                Ok((rows, NextDue::Unknown))
            }
            // Several processes may share PostgreSQL: a lease marks the claim, and rows another
            // process is claiming at this instant are skipped.
            Backend::Postgres => {
                let (not_running, ids) = not_in(Backend::Postgres, 5, except);
                let mut tx = self.begin_claim().await?;
                let mut rows = tx.fetch_all(&format!(
                    // `= ANY(ARRAY(…))`: the rows taken are leased by their key (with `IN`, a plan
                    // made on a small table joined them against all of it).
                    "UPDATE {table} SET lease_owner = $1, lease_until = $2 WHERE id = ANY(ARRAY(\
                     SELECT id FROM {table} WHERE state = 'pending' AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until < $3){not_running} \
                     ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)) RETURNING {columns}, next_attempt_at"
                ), vec![Arg::from(owner), Arg::from(lease_until), Arg::from(now), Arg::from(limit), ids]).await?;
                let due = if next && (rows.len() as i64) < limit {
                    let (not_running, ids) = not_in(Backend::Postgres, 2, except);
                    let first = tx
                        .fetch_all(
                            &format!(
                                "SELECT next_attempt_at FROM {table} WHERE state = 'pending' AND next_attempt_at > $1{not_running} ORDER BY next_attempt_at, id LIMIT 1"
                            ),
                            vec![Arg::from(now), ids],
                        )
                        .await?;
                    match first.first() {
                        Some(row) => NextDue::At(row.try_get("next_attempt_at")?),
                        None => NextDue::Never,
                    }
                } else {
                    NextDue::Unknown
                };
                tx.commit().await?;
                // RETURNING keeps no order: put them back in the order they were due.
                rows.sort_by_cached_key(|r| {
                    (r.try_get::<i64, _>("next_attempt_at").unwrap_or(0), r.try_get::<i64, _>("id").unwrap_or(0))
                });
                Ok((rows, due))
            }
        }
    }

    /// Extends this owner's claims on the work still running (`ids`, rows of `queue`) until
    /// `until`; returns how many claims were extended. A claim that expired and was taken by
    /// another process stays with it (the guarded finish keeps the two from both recording).
    pub async fn renew_leases(&self, queue: Leased, owner: &str, ids: &[i64], until: i64) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let (list, running) = self::ids(self.backend(), 3, ids);
        let mut tx = self.begin_unsynced().await?;
        let done = tx
            .execute(
                &format!(
                    "UPDATE {} SET lease_until = $1 WHERE lease_owner = $2 AND state = 'pending' AND id IN {list}",
                    queue.table()
                ),
                vec![Arg::from(until), Arg::from(owner), running],
            )
            .await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Claims for `owner` until `lease_until` the outbox rows `ids`, transfers this process
    /// queued itself a moment ago (a document it just took, handed to its outbox with the
    /// document in memory, see `Outbound::hand_over`); returns the ids it may run. Left out:
    /// rows no longer pending, rows due by `now` (from then on the claims take them, as any
    /// row), and rows another process of a scaled-out node claimed since (they are its to
    /// send). Rows `owner` holds already are returned again: a claim whose `COMMIT` answer was
    /// lost and that is made again (the caller's in-flight set keeps one running once). One statement for all of them, its commit not waited on (a
    /// lease, like [`Store::claim_due_except`]'s). On SQLite one process owns the outbox and
    /// claims nothing: every id is returned.
    pub async fn claim_handed(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        handed: &[i64],
    ) -> Result<Vec<i64>, StoreError> {
        if handed.is_empty() || self.backend() == Backend::Sqlite {
            return Ok(handed.to_vec());
        }
        let (list, arg) = ids(self.backend(), 4, handed);
        let mut tx = self.begin_unsynced().await?;
        let rows = tx
            .fetch_all(
                &format!(
                    "UPDATE outbox SET lease_owner = $1, lease_until = $2 WHERE state = 'pending' \
                     AND next_attempt_at > $3 AND (lease_until IS NULL OR lease_until < $3 OR lease_owner = $1) \
                     AND id IN {list} RETURNING id"
                ),
                vec![Arg::from(owner), Arg::from(lease_until), Arg::from(now), arg],
            )
            .await?;
        tx.commit().await?;
        rows.iter().map(|r| r.try_get::<i64, _>("id")).collect()
    }

    /// Releases the leases of a previous run, in every leased queue: all of them (a
    /// single-process SQLite node), or those whose owner is `instance/…` (a restarted process
    /// of a scaled-out node; its previous run cannot be sending anything any more).
    pub async fn release_leases(&self, instance: Option<&str>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for queue in [Leased::Outbox, Leased::Mail] {
            let table = queue.table();
            match instance {
                None => {
                    tx.execute(
                        &format!("UPDATE {table} SET lease_owner = NULL, lease_until = NULL WHERE state = 'pending'"),
                        vec![],
                    )
                    .await?;
                }
                Some(instance) => {
                    // Compared as a prefix without LIKE, so no character of the name is a
                    // pattern.
                    let prefix = format!("{instance}/");
                    tx.execute(&format!(
                        "UPDATE {table} SET lease_owner = NULL, lease_until = NULL WHERE state = 'pending' AND SUBSTR(lease_owner, 1, CAST($1 AS INTEGER)) = $2"
                    ), vec![Arg::from(prefix.chars().count() as i64), Arg::from(prefix)]).await?;
                }
            }
        }
        tx.commit().await
    }

    /// The earliest time a pending row of `queue` becomes available to claim (due and not
    /// held by another process), ms.
    pub async fn next_due(&self, queue: Leased, now: i64) -> Result<Option<i64>, StoreError> {
        self.next_due_except(queue, now, &[]).await
    }

    /// [`Store::next_due`] among the rows other than `running` (those this process is working
    /// on now, which would otherwise always look due).
    pub async fn next_due_except(&self, queue: Leased, now: i64, running: &[i64]) -> Result<Option<i64>, StoreError> {
        let table = queue.table();
        let (sql, args) = match self.backend() {
            // A point read in this task (see `Store::fetch_all`): no SQLite row holds a lease
            // (one process owns the database, its claims are plain reads, and it frees every
            // lease at start), so the earliest due row is the first one in the `outbox_due`
            // index past the running ones, whatever the backlog.
            Backend::Sqlite => {
                let (except, ids) = not_in(Backend::Sqlite, 1, running);
                let sql = format!(
                    "SELECT next_attempt_at AS t FROM {table} WHERE state = 'pending'{except} ORDER BY next_attempt_at LIMIT 1"
                );
                (sql, vec![ids])
            }
            Backend::Postgres => {
                let (except, ids) = not_in(Backend::Postgres, 2, running);
                let sql = format!(
                    "SELECT MIN(CASE WHEN lease_until IS NULL OR lease_until < $1 THEN next_attempt_at ELSE lease_until END) AS t FROM {table} WHERE state = 'pending'{except}"
                );
                (sql, vec![Arg::from(now), ids])
            }
        };
        // No row (SQLite, nothing pending) or a NULL minimum (PostgreSQL): nothing due.
        let rows = self.fetch_all(&sql, args).await?;
        Ok(rows.first().map(|r| r.try_get::<Option<i64>, _>("t")).transpose()?.flatten())
    }

    /// Rows of `queue` per state, with how many pending rows failed at least once and the
    /// age of the oldest pending row (seconds; never negative, though processes' clocks may
    /// differ a little).
    pub(crate) async fn depths(&self, queue: Leased, now: i64) -> Result<Depths, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT state, COUNT(*) AS n, MIN(created_at) AS oldest, SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) AS retrying FROM {} GROUP BY state",
            queue.table()
        )))
        .fetch_all(self.pool())
        .await?;
        let mut d = Depths::default();
        for r in rows {
            let state: String = r.try_get("state")?;
            if state == "pending" {
                d.retrying = r.try_get::<Option<i64>, _>("retrying")?.unwrap_or(0);
                d.oldest_pending_seconds =
                    r.try_get::<Option<i64>, _>("oldest")?.map_or(0, |o| (now - o).max(0) / 1000);
            }
            d.by_state.insert(state, r.try_get("n")?);
        }
        Ok(d)
    }

    /// Queue depths.
    pub async fn queue_depths(&self, now: i64) -> Result<QueueDepths, StoreError> {
        let d = self.depths(Leased::Outbox, now).await?;
        Ok(QueueDepths {
            pending: d.count("pending"),
            retrying: d.retrying,
            dead: d.count("dead"),
            refused: d.count("refused"),
            done: d.count("done"),
            oldest_pending_seconds: d.oldest_pending_seconds,
            ..QueueDepths::default()
        })
    }

    /// The outbox per next hop: waiting, retrying, waiting since before `aged_before` (ms), the
    /// oldest, the latest hand-over and the latest error.
    pub async fn outbox_by_hop(&self, now: i64, aged_before: i64) -> Result<Vec<HopQueue>, StoreError> {
        let rows = sqlx::query(OUTBOX_BY_HOP).bind(aged_before).fetch_all(self.pool()).await?;
        let mut hops = Vec::with_capacity(rows.len());
        for r in rows {
            let next_hop: String = r.try_get("next_hop")?;
            let retrying = r.try_get::<Option<i64>, _>("retrying")?.unwrap_or(0);
            let last_error = if retrying > 0 {
                sqlx::query(
                    "SELECT last_error FROM outbox WHERE next_hop = $1 AND state = 'pending' AND attempts > 0 ORDER BY next_attempt_at DESC, id DESC LIMIT 1",
                )
                .bind(&next_hop)
                .fetch_optional(self.pool())
                .await?
                .map(|row| row.try_get::<Option<String>, _>("last_error"))
                .transpose()?
                .flatten()
            } else {
                None
            };
            hops.push(HopQueue {
                pending: r.try_get::<Option<i64>, _>("pending")?.unwrap_or(0),
                retrying,
                aged: r.try_get::<Option<i64>, _>("aged")?.unwrap_or(0),
                oldest_pending_seconds: r.try_get::<Option<i64>, _>("oldest")?.map_or(0, |o| (now - o).max(0) / 1000),
                last_done: r.try_get("last_done")?,
                last_error,
                next_hop,
            });
        }
        Ok(hops)
    }

    /// Dead-lettered transfers, for the operator.
    pub async fn dead_letters(&self, limit: i64) -> Result<Vec<(i64, String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.id, COALESCE(d.doc_id, r.doc_id) AS doc_id, o.next_hop, COALESCE(o.last_error, '') AS last_error
             FROM outbox o LEFT JOIN documents d ON d.id = o.document LEFT JOIN receipts r ON r.id = o.receipt
             WHERE o.state = 'dead' ORDER BY o.id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("doc_id")?, r.try_get("next_hop")?, r.try_get("last_error")?)))
            .collect()
    }
}
