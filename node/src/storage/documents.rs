//! Documents, their attachments, per-recipient routes and the inbox.

use pki::AgencyCode;
use pki::document::manifest::{Attachment, Manifest};
use pki::document::verify::VerifiedEnvelope;
use sqlx::Row as _;

use super::inline::{InlineBlob, StoredAttachment};
use super::values::{padded, rows_per_statement, unshared_values, values};
use super::{Arg, Row};
use super::{Store, StoreError, Tx, join_codes, split_codes};
use crate::protocol::DocumentSummary;

/// The columns of a document's row, in the order of [`document_args`].
const INSERT_DOCUMENTS: &str = "INSERT INTO documents (doc_id, digest, sender, sender_name, envelope, number, notation, type_name, subject, urgency, due, business, business_of, recipients, received_from, received_at, provisional, outgoing) VALUES ";

/// The placeholders of one document's row.
const DOCUMENT_ROW: &str = "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})";

/// How many values a document's row binds.
const DOCUMENT_COLUMNS: usize = 18;

/// [`Tx::insert_document`]'s statement: one row, inserted unless it conflicts.
static INSERT_DOCUMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("{INSERT_DOCUMENTS}{} ON CONFLICT DO NOTHING RETURNING id", values(DOCUMENT_ROW, 0, 1))
});

/// The values of `d`'s row, in the order of [`INSERT_DOCUMENTS`].
fn document_args(d: &NewDocument<'_>) -> Vec<Arg> {
    let m = d.document.manifest();
    let (business_of, due) = (m.business.target().map(ToString::to_string), m.due.map(|d| d.to_string()));
    vec![
        Arg::from(m.id().to_string()),
        Arg::from(d.document.envelope().digest().to_vec()),
        Arg::from(m.from.to_string()),
        Arg::from(d.document.sender_name()),
        Arg::from(d.document.envelope().as_bytes().to_vec()),
        Arg::from(i64::from(m.number)),
        Arg::from(m.notation.as_str()),
        Arg::from(m.type_name.as_str()),
        Arg::from(m.subject.as_str()),
        Arg::from(i64::from(m.urgency.code())),
        Arg::from(due),
        Arg::from(i64::from(m.business.code())),
        Arg::from(business_of),
        Arg::from(join_codes(&m.to)),
        Arg::from(d.received_from),
        Arg::from(d.received_at),
        Arg::from(i64::from(d.provisional)),
        Arg::from(i64::from(d.outgoing)),
    ]
}

/// A document to record.
#[derive(Debug)]
pub struct NewDocument<'a> {
    /// The document, verified: storage keeps nothing else (the manifest, the digest and the
    /// sender's name recorded are those of the envelope that verified).
    pub document: &'a VerifiedEnvelope,
    /// The neighbour it came from, or `clerk` for a local submission.
    pub received_from: &'a str,
    /// Local time, ms.
    pub received_at: i64,
    /// Verified with missing or old CRLs.
    pub provisional: bool,
    /// Submitted by this agency's clerk.
    pub outgoing: bool,
    /// The bytes of its attachments kept in the database (see `storage::inline`); the others
    /// are already files in the blob store.
    pub inline: &'a [InlineBlob],
}

/// A recipient's route to record (see [`Tx::add_routes`]).
#[derive(Debug, Clone, Copy)]
pub struct NewRoute<'a> {
    /// The recipient.
    pub recipient: &'a AgencyCode,
    /// Where its copy goes from here; `None` when it goes nowhere (delivered here, refused).
    pub next_hop: Option<&'a AgencyCode>,
    /// Its state: pending, delivered, refused.
    pub state: &'a str,
}

/// What inserting a document found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocInsert {
    /// Stored now, with this row id.
    New(i64),
    /// The same envelope was already stored (a retry).
    Existing(i64),
    /// Another envelope with the same document id is stored.
    Conflict,
}

/// A stored document.
#[derive(Debug, Clone)]
pub struct StoredDocument {
    /// Row id.
    pub id: i64,
    /// Document id.
    pub doc_id: String,
    /// Envelope SHA-256.
    pub digest: [u8; 32],
    /// The sender.
    pub sender: AgencyCode,
    /// The envelope's exact bytes.
    pub envelope: Vec<u8>,
    /// Whether it was submitted here.
    pub outgoing: bool,
    /// Whether verification was provisional.
    pub provisional: bool,
    /// All recipients named in the manifest.
    pub recipients: Vec<AgencyCode>,
}

impl StoredDocument {
    /// The manifest of the stored envelope (which was verified when it was taken, so a failure
    /// here means a damaged database).
    pub fn manifest(&self) -> Result<Manifest, StoreError> {
        let corrupt = |e: String| StoreError::Corrupt(format!("stored envelope of {}: {e}", self.doc_id));
        let envelope = pki::document::Envelope::from_bytes(&self.envelope).map_err(|e| corrupt(e.to_string()))?;
        envelope.manifest().map_err(|e| corrupt(e.to_string()))
    }
}

/// The query of [`Store::attachments`], run for every document sent on that its intake did not
/// hand to the outbox in memory. Each attachment's bytes are looked up by their own key, one
/// index search an attachment: written as a join, PostgreSQL's generic plan for it (which a
/// prepared statement settles on after five runs) and its plan before the first statistics
/// read the whole `inline_blobs` table into a hash for every document (0.24 ms a read on
/// average over 6,000 documents in a benchmark, 1.6 ms at 20,000 small attachments, growing
/// with every one the node ever kept). Public so that the integration tests can ask
/// PostgreSQL's planner for its plan.
pub const ATTACHMENTS: &str = "SELECT a.name, a.media_type, a.size, a.sha256,
            (SELECT b.bytes FROM inline_blobs b WHERE b.sha256 = a.sha256) AS bytes
     FROM attachments a WHERE a.document = $1 ORDER BY a.position";

fn digest_of(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| StoreError::Corrupt("digest is not 32 bytes".into()))
}

fn stored_document(row: &Row) -> Result<StoredDocument, StoreError> {
    Ok(StoredDocument {
        id: row.try_get("id")?,
        doc_id: row.try_get("doc_id")?,
        digest: digest_of(row.try_get("digest")?)?,
        sender: row
            .try_get::<String, _>("sender")?
            .parse()
            .map_err(|e: pki::AgencyCodeError| StoreError::Corrupt(e.to_string()))?,
        envelope: row.try_get("envelope")?,
        outgoing: row.try_get::<i64, _>("outgoing")? != 0,
        provisional: row.try_get::<i64, _>("provisional")? != 0,
        recipients: split_codes(&row.try_get::<String, _>("recipients")?)?,
    })
}

macro_rules! select_documents {
    ($where:literal) => {
        concat!(
            "SELECT id, doc_id, digest, sender, envelope, outgoing, provisional, recipients FROM documents WHERE ",
            $where
        )
    };
}

/// The statement inserting `routes` of `document` (at most one statement's worth), and its
/// arguments; `tail` ends it (a conflict clause, what it returns).
fn routes_insert(document: i64, routes: &[NewRoute<'_>], now: i64, tail: &str) -> (String, Vec<Arg>) {
    let sql = format!(
        "INSERT INTO routes (document, recipient, next_hop, state, updated_at) VALUES {}{tail}",
        values("($1, {}, {}, {}, $2)", 2, routes.len())
    );
    let mut args = Vec::with_capacity(2 + 3 * routes.len());
    args.extend([Arg::from(document), Arg::from(now)]);
    for r in routes {
        args.extend([
            Arg::from(r.recipient.to_string()),
            Arg::from(r.next_hop.map(ToString::to_string)),
            Arg::from(r.state),
        ]);
    }
    (sql, args)
}

/// What a later document did to the one it names, by its business code (1 revoke, 2 update,
/// 3 replace), as the inbox shows it ("revoked by …").
pub fn superseded_verb(business: i64) -> &'static str {
    match business {
        1 => "revoked",
        2 => "updated",
        _ => "replaced",
    }
}

/// The insert of [`Tx::inbox_add_new`]: `$1` the document's row, `$2` the time, `$3` its id;
/// its mark, if any, is [`SUPERSEDER`]'s answer in the words of [`superseded_verb`].
static INBOX_ADD_NEW: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO inbox (document, arrived_at, urgency, superseded_by) SELECT $1, $2, urgency,
         (SELECT CASE d.business WHEN 1 THEN '{}' WHEN 2 THEN '{}' ELSE '{}' END || ' by ' || d.doc_id
          FROM documents d JOIN inbox i ON i.document = d.id WHERE d.business_of = $3 ORDER BY d.id LIMIT 1)
         FROM documents WHERE id = $1",
        superseded_verb(1),
        superseded_verb(2),
        superseded_verb(3)
    )
});

/// The query of [`Tx::inbox_superseder_of`], run for every document taken into an inbox: it
/// must find its row through `documents_business_of`, in order, not by reading the table
/// (migration 0008). Public so that the integration tests can ask PostgreSQL's planner for
/// its plan.
pub const SUPERSEDER: &str = "SELECT d.business, d.doc_id FROM documents d JOIN inbox i ON i.document = d.id
     WHERE d.business_of = $1 ORDER BY d.id LIMIT 1";

/// The columns of a [`DocumentSummary`] that come from the document itself, as
/// `Store::summaries` reads them; each listing adds its time, status, superseder and recall.
macro_rules! summary_columns {
    () => {
        "SELECT d.doc_id, d.digest, d.sender, d.sender_name, d.recipients, d.number, d.notation, d.type_name, d.subject, d.urgency, d.due, "
    };
}

/// The query of [`Store::inbox`]: the first `$1` rows of `inbox_listing` (urgency, arrival),
/// read backwards, each joined to its document by id; before migration 0009 the listing
/// joined every document of the inbox (its envelope in the same rows) and sorted them all,
/// on every look at the inbox. Public so that the integration tests can ask PostgreSQL's
/// planner for its plan.
pub const INBOX: &str = concat!(
    summary_columns!(),
    "i.arrived_at AS at_ms, i.status, d.provisional, i.superseded_by, i.recall_requested
     FROM inbox i JOIN documents d ON d.id = i.document
     ORDER BY i.urgency DESC, i.arrived_at DESC LIMIT $1"
);

/// The query of [`Store::sent`]: the first `$1` rows of `documents_sent`, read backwards (it
/// read and sorted every document the node holds before migration 0009). Public as
/// [`INBOX`] is.
pub const SENT: &str = concat!(
    summary_columns!(),
    "d.received_at AS at_ms,
     (SELECT MAX(r.status) FROM receipts r WHERE r.envelope = d.digest AND r.kind = 'status') AS status,
     d.provisional, NULL AS superseded_by, 0 AS recall_requested
     FROM documents d WHERE d.outgoing = 1 ORDER BY d.received_at DESC LIMIT $1"
);

/// The route states in the order a route moves through them: a change is kept only if it
/// moves the route further (`pending` → `forwarded` → `refused` → `delivered`). A route's
/// state is then the furthest of every change it was given, whatever their order: the
/// statuses and hop receipts of one document come back over different paths and at
/// different times (a hop receipt recorded after the recipient's 01, a request of notices
/// passed on in the order of its keys, a transfer retried), and each order must end alike.
/// `delivered` is last: the recipient's agency signed that the document arrived, so a system
/// refusal (02) that reaches the sender after it (a node that gave up on a copy the next hop
/// had taken) does not undo it; the refusal stays stored, with its log leaf.
const ROUTE_STATES: [&str; 4] = ["pending", "forwarded", "refused", "delivered"];

/// Where `state` is in [`ROUTE_STATES`].
fn route_rank(state: &str) -> usize {
    let rank = ROUTE_STATES.iter().position(|s| *s == state);
    debug_assert!(rank.is_some(), "unknown route state {state:?}");
    rank.unwrap_or(ROUTE_STATES.len())
}

/// SQL: the rank of the route state in `expr` (see [`ROUTE_STATES`]).
fn route_rank_sql(expr: &str) -> String {
    let whens: String = ROUTE_STATES.iter().enumerate().map(|(i, s)| format!(" WHEN '{s}' THEN {i}")).collect();
    format!("(CASE {expr}{whens} ELSE {} END)", ROUTE_STATES.len())
}

/// The statements of [`Tx::set_route_state`]: one per [`rows_per_statement`] recipients.
fn route_state_updates(
    document: i64,
    recipients: &[AgencyCode],
    state: &str,
    now: i64,
) -> impl Iterator<Item = (String, Vec<Arg>)> {
    let before: Vec<String> = ROUTE_STATES[..route_rank(state)].iter().map(|s| format!("'{s}'")).collect();
    // A state that moves no route on (`pending`) matches none.
    let earlier = if before.is_empty() { "NULL".to_owned() } else { before.join(", ") };
    recipients.chunks(rows_per_statement(1, 3)).map(move |chunk| {
        let sql = format!(
            "UPDATE routes SET state = $1, updated_at = $2 WHERE document = $3 AND recipient IN ({}) AND state IN ({earlier})",
            values("{}", 3, chunk.len())
        );
        let mut args = Vec::with_capacity(3 + chunk.len());
        args.extend([Arg::from(state), Arg::from(now), Arg::from(document)]);
        args.extend(chunk.iter().map(|r| Arg::from(r.to_string())));
        (sql, args)
    })
}

impl Tx<'_> {
    /// Records a document, its attachments' metadata and the bytes of those kept in the
    /// database (the others are already files in the blob store), and appends it to the
    /// node's log. Idempotent by envelope digest.
    pub async fn insert_document(&mut self, d: &NewDocument<'_>) -> Result<DocInsert, StoreError> {
        let doc_id = d.document.manifest().id().to_string();
        let digest = d.document.envelope().digest();
        // Insert-or-nothing, then look: correct also when two transactions race (PostgreSQL).
        let inserted = self.fetch_optional(&INSERT_DOCUMENT, document_args(d)).await?;
        let Some(row) = inserted else {
            let row = self
                .fetch_one(
                    "SELECT id, digest FROM documents WHERE doc_id = $1 OR digest = $2",
                    vec![Arg::from(&doc_id), Arg::from(digest.to_vec())],
                )
                .await?;
            let existing: Vec<u8> = row.try_get("digest")?;
            return Ok(if existing == digest { DocInsert::Existing(row.try_get("id")?) } else { DocInsert::Conflict });
        };
        let id: i64 = row.try_get("id")?;
        self.keep_document_rows(id, d).await?;
        self.insert_inline(d.inline).await?;
        Ok(DocInsert::New(id))
    }

    /// Documents new to this node, several in one statement (more only past the parameter
    /// limit): each one's row id, or `None` for one not inserted (stored before, another
    /// envelope with its id stored, or its id earlier in `docs`), which the caller takes
    /// through [`Tx::insert_document`] to learn which. The rows of the inserted ones
    /// (attachments, their bytes, the log's leaves) are kept as [`Tx::insert_document`]
    /// keeps them. The caller gives them in the order of their ids: two transactions
    /// inserting some of the same wait for each other in one order, never in a cycle.
    pub async fn insert_new_documents(&mut self, docs: &[NewDocument<'_>]) -> Result<Vec<Option<i64>>, StoreError> {
        let mut ids = vec![None; docs.len()];
        let most = rows_per_statement(DOCUMENT_COLUMNS, 0);
        for (c, chunk) in docs.chunks(most).enumerate() {
            // The last row again is a conflict with itself, inserted once: padded to few texts.
            let rows = padded(chunk.len(), most);
            let sql = format!(
                "{INSERT_DOCUMENTS}{} ON CONFLICT DO NOTHING RETURNING id, doc_id",
                unshared_values(self.backend, DOCUMENT_ROW, rows)
            );
            let args = (0..rows).flat_map(|k| document_args(&chunk[k.min(chunk.len() - 1)])).collect();
            let mut inserted = std::collections::HashMap::new();
            for row in self.fetch_all(&sql, args).await? {
                inserted.insert(row.try_get::<String, _>("doc_id")?, row.try_get::<i64, _>("id")?);
            }
            // The row inserted is the first of its id (the others conflicted with it).
            for (i, d) in chunk.iter().enumerate() {
                ids[c * most + i] = inserted.remove(&d.document.manifest().id().to_string());
            }
        }
        for (id, d) in ids.iter().zip(docs) {
            if let Some(id) = id {
                self.keep_document_rows(*id, d).await?;
            }
        }
        // The small attachments' bytes of all of them in one hash order (two transactions
        // inserting some of the same wait for each other in one order, never in a cycle).
        let inline = ids.iter().zip(docs).filter(|(id, _)| id.is_some()).flat_map(|(_, d)| d.inline);
        self.insert_inline(inline).await?;
        Ok(ids)
    }

    /// Keeps the rows a document inserted as `id` brings with it: its attachments', the log's
    /// leaf (the bytes of its small attachments are the caller's, see `Tx::insert_inline`).
    async fn keep_document_rows(&mut self, id: i64, d: &NewDocument<'_>) -> Result<(), StoreError> {
        let m = d.document.manifest();
        // One statement for all the attachments (more only past the parameter limit), sent
        // with the transaction's next statement (see `Tx::defer`).
        let per_statement = rows_per_statement(5, 1);
        for (n, chunk) in m.attachments.chunks(per_statement).enumerate() {
            let sql = format!(
                "INSERT INTO attachments (document, position, name, media_type, size, sha256) VALUES {}",
                values("($1, {}, {}, {}, {}, {})", 1, chunk.len())
            );
            let mut args = Vec::with_capacity(1 + 5 * chunk.len());
            args.push(Arg::from(id));
            for (i, a) in chunk.iter().enumerate() {
                args.extend([
                    Arg::from((n * per_statement + i) as i64),
                    Arg::from(a.name.as_str()),
                    Arg::from(a.media_type.as_str()),
                    Arg::from(a.size as i64),
                    Arg::from(a.sha256.to_vec()),
                ]);
            }
            self.defer(&sql, args).await?;
        }
        // The transparency log's leaf, in this transaction: it exists iff the document does.
        self.log_document(d)
    }

    /// A document by envelope digest, inside the transaction.
    pub async fn document_by_digest(&mut self, digest: &[u8; 32]) -> Result<Option<StoredDocument>, StoreError> {
        let row = self.fetch_optional(select_documents!("digest = $1"), vec![Arg::from(digest.to_vec())]).await?;
        row.as_ref().map(stored_document).transpose()
    }

    /// The rows of the documents of several envelope digests, in one statement (more only
    /// past the parameter limit); those not stored are not in the answer. For the statuses
    /// of a request of notices that set routes here (`notices::keep_all`), which need no more
    /// of their documents.
    pub async fn document_rows_by_digests(
        &mut self,
        digests: &[[u8; 32]],
    ) -> Result<std::collections::HashMap<[u8; 32], i64>, StoreError> {
        let mut found = std::collections::HashMap::with_capacity(digests.len());
        let most = rows_per_statement(1, 0);
        for chunk in digests.chunks(most) {
            // The last digest again: padded to few texts.
            let rows = padded(chunk.len(), most);
            let sql = format!("SELECT id, digest FROM documents WHERE digest IN ({})", values("{}", 0, rows));
            let args = (0..rows).map(|k| Arg::from(chunk[k.min(chunk.len() - 1)].to_vec())).collect();
            for row in self.fetch_all(&sql, args).await? {
                let digest: Vec<u8> = row.try_get("digest")?;
                if let Ok(digest) = <[u8; 32]>::try_from(digest.as_slice()) {
                    found.insert(digest, row.try_get::<i64, _>("id")?);
                }
            }
        }
        Ok(found)
    }

    /// Records where a recipient's copy goes from here; false if it was already recorded. One
    /// route of [`Tx::add_routes`].
    pub async fn add_route(
        &mut self,
        document: i64,
        recipient: &AgencyCode,
        next_hop: Option<&AgencyCode>,
        state: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let route = NewRoute { recipient, next_hop, state };
        Ok(!self.add_routes(document, &[route], now).await?.is_empty())
    }

    /// Records where each recipient's copy goes from here, in one statement; returns the
    /// recipients routed now (in the order given, each once), leaving out those already
    /// recorded.
    pub async fn add_routes(
        &mut self,
        document: i64,
        routes: &[NewRoute<'_>],
        now: i64,
    ) -> Result<Vec<AgencyCode>, StoreError> {
        let mut added = std::collections::HashSet::new();
        for chunk in routes.chunks(rows_per_statement(3, 2)) {
            let (sql, args) = routes_insert(
                document,
                chunk,
                now,
                " ON CONFLICT (document, recipient) DO NOTHING RETURNING recipient",
            );
            for row in self.fetch_all(&sql, args).await? {
                added.insert(row.try_get::<String, _>("recipient")?);
            }
        }
        let mut routed = Vec::with_capacity(added.len());
        for r in routes {
            if added.remove(&r.recipient.to_string()) {
                routed.push(*r.recipient);
            }
        }
        Ok(routed)
    }

    /// [`Tx::add_routes`] for a document this transaction inserted ([`DocInsert::New`]):
    /// none of its routes can be recorded yet, so every recipient is routed now, each once
    /// with the first route given for it, and the rows are written with the transaction's
    /// next statement (see [`Tx::defer`]): no answer to wait for.
    pub async fn add_routes_of_new(
        &mut self,
        document: i64,
        routes: &[NewRoute<'_>],
        now: i64,
    ) -> Result<Vec<AgencyCode>, StoreError> {
        let mut routed: Vec<AgencyCode> = Vec::with_capacity(routes.len());
        let mut first = Vec::with_capacity(routes.len());
        for r in routes {
            if !routed.contains(r.recipient) {
                routed.push(*r.recipient);
                first.push(*r);
            }
        }
        // Kept writes go together in no set order: no two of them may hold the same route.
        for chunk in first.chunks(rows_per_statement(3, 2)) {
            let (sql, args) = routes_insert(document, chunk, now, "");
            self.defer(&sql, args).await?;
        }
        Ok(routed)
    }

    /// Updates the state of recipients' routes (forwarded, delivered, refused), in one
    /// statement, only those it moves further ([`ROUTE_STATES`]): `forwarded` (the next hop's
    /// hop receipt) moves only a `pending` route on (the recipient's status may come back
    /// before the hop receipt is recorded: the next hop answered a later attempt from its
    /// storage, see `outbound::cut_through`), and nothing moves a `delivered` route back.
    pub async fn set_route_state(
        &mut self,
        document: i64,
        recipients: &[AgencyCode],
        state: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        for (sql, args) in route_state_updates(document, recipients, state, now) {
            self.execute(&sql, args).await?;
        }
        Ok(())
    }

    /// [`Tx::set_route_state`] for a state a status sets (`delivered`, `refused`), kept with
    /// the transaction's next statement (see [`Tx::defer`]): one round trip fewer for each
    /// status addressed here. Writes kept together must not meet, and every other statement
    /// sends what is kept first: the caller keeps no other write to these routes before the
    /// transaction's next statement. `notices::apply` keeps one, right after storing its
    /// receipt (a statement that needs an answer), and the next receipt's storing comes
    /// before any other change.
    pub async fn keep_route_state(
        &mut self,
        document: i64,
        recipients: &[AgencyCode],
        state: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        debug_assert_ne!(state, "forwarded", "a hop receipt's state moves only pending routes: set_route_state");
        let changes: Vec<(i64, AgencyCode, &str)> = recipients.iter().map(|r| (document, *r, state)).collect();
        self.keep_route_states(&changes, now).await
    }

    /// Sets the state of many documents' routes in one statement, kept with the
    /// transaction's next (see [`Tx::defer`]): what [`Tx::set_route_state`] and
    /// [`Tx::keep_route_state`] do one document and state at a time, for a batch of next hops'
    /// answers (`outbound::answers`). Each change is (document, recipient, state); as with
    /// [`Tx::set_route_state`], a change is kept only where it moves the route further
    /// ([`ROUTE_STATES`]), so a route changed twice ends at the further of the two, in any
    /// order. The caller keeps no other write to these routes before the transaction's next
    /// statement.
    pub async fn keep_route_states(&mut self, changes: &[(i64, AgencyCode, &str)], now: i64) -> Result<(), StoreError> {
        // A route with one change a statement: PostgreSQL applies one of two updates of a row
        // in one statement, and not a chosen one. The furthest change of each route is the
        // one that could win.
        let mut furthest: std::collections::BTreeMap<(i64, AgencyCode), usize> = Default::default();
        for (i, (document, recipient, state)) in changes.iter().enumerate() {
            furthest
                .entry((*document, *recipient))
                .and_modify(|kept| {
                    if route_rank(state) > route_rank(changes[*kept].2) {
                        *kept = i;
                    }
                })
                .or_insert(i);
        }
        // In the order of the routes' keys (the map's): two transactions changing some of the
        // same routes wait for each other in one order, never in a cycle.
        let kept: Vec<usize> = furthest.into_values().collect();
        let further = format!("{} < {}", route_rank_sql("routes.state"), route_rank_sql("v.column3"));
        let most = rows_per_statement(4, 0);
        for chunk in kept.chunks(most) {
            // The last change again is the same change: padded to few texts.
            let rows = padded(chunk.len(), most);
            // `v.column1` and `v.column2` compare with a BIGINT and a TEXT column: PostgreSQL
            // takes the values' types from the parameters, which sqlx declares (an untyped
            // parameter there would be text, and `bigint = text` has no operator).
            let sql = format!(
                "UPDATE routes SET state = v.column3, updated_at = v.column4 FROM (VALUES {}) AS v
                 WHERE routes.document = v.column1 AND routes.recipient = v.column2 AND {further}",
                unshared_values(self.backend, "({}, {}, {}, {})", rows)
            );
            let mut args = Vec::with_capacity(4 * rows);
            for k in 0..rows {
                let (document, recipient, state) = &changes[chunk[k.min(chunk.len() - 1)]];
                args.extend([
                    Arg::from(*document),
                    Arg::from(recipient.to_string()),
                    Arg::from(*state),
                    Arg::from(now),
                ]);
            }
            self.defer(&sql, args).await?;
        }
        Ok(())
    }

    /// Puts a document in this agency's inbox, with the document's urgency for the listing's
    /// order; false if already there. `document` is the id of a stored document (the intake
    /// passes its own insert's): for an id of none nothing is added and the answer is false
    /// too (before migration 0009 the foreign key refused it).
    pub async fn inbox_add(&mut self, document: i64, now: i64) -> Result<bool, StoreError> {
        let done = self
            .execute(
                "INSERT INTO inbox (document, arrived_at, urgency) SELECT $1, $2, urgency FROM documents WHERE id = $1
                 ON CONFLICT (document) DO NOTHING",
                vec![Arg::from(document), Arg::from(now)],
            )
            .await?;
        Ok(done > 0)
    }

    /// [`Tx::inbox_add`] for a document this transaction inserted ([`DocInsert::New`], whose
    /// id is `doc_id`), which cannot be in the inbox yet: written with the transaction's next
    /// statement (see [`Tx::defer`]), marked at once if a document in the inbox revokes,
    /// updates or replaces it (one that overtook it on the way: what
    /// [`Tx::inbox_superseder_of`] finds, without a statement of its own).
    pub async fn inbox_add_new(&mut self, document: i64, doc_id: &str, now: i64) -> Result<(), StoreError> {
        self.defer(&INBOX_ADD_NEW, vec![Arg::from(document), Arg::from(now), Arg::from(doc_id)]).await
    }

    /// Records the latest status this agency posted on a received document.
    pub async fn inbox_status(&mut self, document: i64, status: u8, now: i64) -> Result<(), StoreError> {
        self.execute(
            "UPDATE inbox SET status = $1, status_at = $2 WHERE document = $3",
            vec![Arg::from(i64::from(status)), Arg::from(now), Arg::from(document)],
        )
        .await?;
        Ok(())
    }

    /// Marks an inbox document as revoked, updated, replaced or recalled.
    pub async fn inbox_supersede(&mut self, doc_id: &str, by: &str) -> Result<bool, StoreError> {
        let done = self
            .execute(
                "UPDATE inbox SET superseded_by = $1 WHERE document = (SELECT id FROM documents WHERE doc_id = $2)",
                vec![Arg::from(by), Arg::from(doc_id)],
            )
            .await?;
        Ok(done > 0)
    }

    /// A document in this inbox that revokes, updates or replaces `doc_id`, as (its business
    /// code, its id): one that arrived before the document it acts on (documents overtake
    /// each other on the way), so the later arrival is marked at once.
    pub async fn inbox_superseder_of(&mut self, doc_id: &str) -> Result<Option<(i64, String)>, StoreError> {
        let row = self.fetch_optional(SUPERSEDER, vec![Arg::from(doc_id)]).await?;
        match row {
            Some(r) => Ok(Some((r.try_get::<i64, _>("business")?, r.try_get::<String, _>("doc_id")?))),
            None => Ok(None),
        }
    }

    /// Clears the recall request once this agency has answered it (15 or 16).
    pub async fn inbox_recall_answered(&mut self, doc_id: &str) -> Result<(), StoreError> {
        self.execute(
            "UPDATE inbox SET recall_requested = 0 WHERE document = (SELECT id FROM documents WHERE doc_id = $1)",
            vec![Arg::from(doc_id)],
        )
        .await?;
        Ok(())
    }

    /// Marks that the sender asked for a recall.
    pub async fn inbox_recall_requested(&mut self, doc_id: &str) -> Result<(), StoreError> {
        self.execute(
            "UPDATE inbox SET recall_requested = 1 WHERE document = (SELECT id FROM documents WHERE doc_id = $1)",
            vec![Arg::from(doc_id)],
        )
        .await?;
        Ok(())
    }
}

impl Store {
    /// A document by envelope digest.
    pub async fn document_by_digest(&self, digest: &[u8; 32]) -> Result<Option<StoredDocument>, StoreError> {
        let rows = self.fetch_all(select_documents!("digest = $1"), vec![Arg::from(digest.to_vec())]).await?;
        rows.first().map(stored_document).transpose()
    }

    /// A document by id.
    pub async fn document_by_id(&self, doc_id: &str) -> Result<Option<StoredDocument>, StoreError> {
        let rows = self.fetch_all(select_documents!("doc_id = $1"), vec![Arg::from(doc_id)]).await?;
        rows.first().map(stored_document).transpose()
    }

    /// The documents of several ids, in one statement (more only past the parameter limit);
    /// those not stored are not in the answer. For the duplicate checks of several intakes
    /// at once (`intake::together`).
    pub async fn documents_by_ids(&self, doc_ids: &[&str]) -> Result<Vec<StoredDocument>, StoreError> {
        let mut found = Vec::with_capacity(doc_ids.len());
        let most = rows_per_statement(1, 0);
        for chunk in doc_ids.chunks(most) {
            // The last id again: padded to few texts.
            let rows = padded(chunk.len(), most);
            let sql = format!(concat!(select_documents!("doc_id IN ("), "{})"), values("{}", 0, rows));
            let args = (0..rows).map(|k| Arg::from(chunk[k.min(chunk.len() - 1)])).collect();
            for row in self.fetch_all(&sql, args).await? {
                found.push(stored_document(&row)?);
            }
        }
        Ok(found)
    }

    /// A document by row id.
    pub async fn document(&self, id: i64) -> Result<StoredDocument, StoreError> {
        stored_document(&self.fetch_one(select_documents!("id = $1"), vec![Arg::from(id)]).await?)
    }

    /// A document's attachments, in manifest order, with the bytes of those kept in the
    /// database (one query for both, [`ATTACHMENTS`]).
    pub async fn attachments(&self, document: i64) -> Result<Vec<StoredAttachment>, StoreError> {
        let rows = self.fetch_all(ATTACHMENTS, vec![Arg::from(document)]).await?;
        rows.iter()
            .map(|r| {
                let attachment = Attachment {
                    name: r.try_get("name")?,
                    media_type: r.try_get("media_type")?,
                    size: u64::try_from(r.try_get::<i64, _>("size")?)
                        .map_err(|_| StoreError::Corrupt("negative size".into()))?,
                    sha256: digest_of(r.try_get("sha256")?)?,
                };
                Ok(StoredAttachment::new(attachment, r.try_get("bytes")?))
            })
            .collect()
    }

    /// A document's routes as (recipient, next hop, state), by recipient: where each
    /// recipient's copy went from here and how far it got.
    pub async fn routes(&self, document: i64) -> Result<Vec<(String, Option<String>, String)>, StoreError> {
        let rows = sqlx::query("SELECT recipient, next_hop, state FROM routes WHERE document = $1 ORDER BY recipient")
            .bind(document)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get("recipient")?, r.try_get("next_hop")?, r.try_get("state")?))).collect()
    }

    /// Whether the document is in this agency's inbox (it was addressed here).
    pub async fn in_inbox(&self, document: i64) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT 1 AS one FROM inbox WHERE document = $1")
            .bind(document)
            .fetch_optional(self.pool())
            .await?
            .is_some())
    }

    async fn summaries(&self, sql: &'static str, limit: u32) -> Result<Vec<DocumentSummary>, StoreError> {
        let rows = sqlx::query(sql).bind(i64::from(limit)).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(DocumentSummary {
                    document: r.try_get("doc_id")?,
                    digest: hex::encode(r.try_get::<Vec<u8>, _>("digest")?),
                    sender: r.try_get("sender")?,
                    sender_name: r.try_get("sender_name")?,
                    recipients: split_codes(&r.try_get::<String, _>("recipients")?)?
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    number: format!("{}/{}", r.try_get::<i64, _>("number")?, r.try_get::<String, _>("notation")?),
                    type_name: r.try_get("type_name")?,
                    subject: r.try_get("subject")?,
                    urgency: u8::try_from(r.try_get::<i64, _>("urgency")?).unwrap_or(0),
                    due: r.try_get("due")?,
                    at_ms: r.try_get("at_ms")?,
                    status: r.try_get::<Option<i64>, _>("status")?.and_then(|s| u8::try_from(s).ok()),
                    provisional: r.try_get::<i64, _>("provisional")? != 0,
                    superseded: r.try_get("superseded_by")?,
                    recall_requested: r.try_get::<i64, _>("recall_requested")? != 0,
                    waiting: Vec::new(),
                })
            })
            .collect()
    }

    /// The inbox: most urgent first, then newest.
    pub async fn inbox(&self, limit: u32) -> Result<Vec<DocumentSummary>, StoreError> {
        self.summaries(INBOX, limit).await
    }

    /// Documents this agency sent, newest first, with the highest status code received.
    pub async fn sent(&self, limit: u32) -> Result<Vec<DocumentSummary>, StoreError> {
        self.summaries(SENT, limit).await
    }
}
