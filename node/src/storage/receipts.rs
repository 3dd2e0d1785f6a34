//! Receipts and statuses (each agency keeps every one it sees), CRLs and learned CA
//! certificates.

use pki::document::{ReceiptKind, SignedReceipt};
use sqlx::Row as _;

use pki::AgencyCode;

use super::values::{padded, rows_per_statement, unshared_values};
use super::{Arg, Row};
use super::{Store, StoreError, Tx, join_codes, split_codes};

/// A stored receipt.
#[derive(Debug, Clone)]
pub struct StoredReceipt {
    /// Row id.
    pub id: i64,
    /// Its exact signed bytes.
    pub bytes: Vec<u8>,
}

/// The hop receipts `by` gave `to` for an envelope ([`Store::hop_receipt_covering`]): the
/// query, for the store and a transaction alike.
fn hop_receipts(envelope: &[u8; 32], by: &AgencyCode, to: &AgencyCode) -> (&'static str, Vec<Arg>) {
    (
        "SELECT recipients, bytes FROM receipts WHERE envelope = $1 AND kind = 'hop' AND by_agency = $2 AND to_agency = $3 ORDER BY id",
        vec![Arg::from(envelope.to_vec()), Arg::from(by.to_string()), Arg::from(to.to_string())],
    )
}

/// The first of `rows` (of [`hop_receipts`]) that covers every one of `recipients`.
fn covering(rows: Vec<Row>, recipients: &[AgencyCode]) -> Result<Option<Vec<u8>>, StoreError> {
    for row in rows {
        let covered = split_codes(&row.try_get::<String, _>("recipients")?)?;
        if recipients.iter().all(|r| covered.contains(r)) {
            return Ok(Some(row.try_get("bytes")?));
        }
    }
    Ok(None)
}

/// The query of [`Store::status_held`], for the store and a transaction alike.
fn status_query(envelope: &[u8; 32], by: &AgencyCode, to: &AgencyCode, code: u8) -> (&'static str, Vec<Arg>) {
    (
        "SELECT id FROM receipts WHERE envelope = $1 AND kind = 'status' AND by_agency = $2 AND to_agency = $3 AND status = $4 LIMIT 1",
        vec![
            Arg::from(envelope.to_vec()),
            Arg::from(by.to_string()),
            Arg::from(to.to_string()),
            Arg::from(i64::from(code)),
        ],
    )
}

/// The condition on `receipts` of the statuses 01 and 02 that `by` signed for `to` (the
/// sender) about an envelope, with the placeholders of those three.
macro_rules! sender_statuses_where {
    ($envelope:literal, $by:literal, $to:literal) => {
        concat!(
            "envelope = ",
            $envelope,
            " AND kind = 'status' AND status IN (1, 2) AND by_agency = ",
            $by,
            " AND to_agency = ",
            $to
        )
    };
}
pub(super) use sender_statuses_where;

/// The statuses 01 and 02 `by` signed for `to` (the sender) about an envelope, oldest first
/// ([`Store::statuses_for_sender`]): what a retried delivery carries back with its hop receipt.
fn sender_statuses(envelope: &[u8; 32], by: &AgencyCode, to: &AgencyCode) -> (&'static str, Vec<Arg>) {
    (
        concat!("SELECT bytes FROM receipts WHERE ", sender_statuses_where!("$1", "$2", "$3"), " ORDER BY id"),
        vec![Arg::from(envelope.to_vec()), Arg::from(by.to_string()), Arg::from(to.to_string())],
    )
}

/// The bytes column of `rows`.
fn bytes_of(rows: Vec<Row>) -> Result<Vec<Vec<u8>>, StoreError> {
    rows.into_iter().map(|row| row.try_get("bytes")).collect()
}

/// The insert of receipts up to its `VALUES`, in the order of [`receipt_args`].
macro_rules! insert_receipts {
    () => {
        "INSERT INTO receipts (digest, doc_id, envelope, kind, status, by_agency, to_agency, at, recipients, note, bytes, received_at, received_from)
         VALUES "
    };
}

/// The statement storing a receipt, without its conflict clause (`$1` … `$13`: see
/// [`receipt_args`]).
macro_rules! insert_receipt {
    () => {
        concat!(insert_receipts!(), "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
    };
}

/// One row of [`insert_receipts!`], for [`unshared_values`].
const RECEIPT_ROW: &str = "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})";

/// The arguments of [`insert_receipt!`] for `r`.
fn receipt_args(r: &SignedReceipt, received_from: &str, now: i64) -> Vec<Arg> {
    let c = &r.receipt;
    let (kind, status) = match c.kind {
        ReceiptKind::Hop => ("hop", None),
        ReceiptKind::Status(s) => ("status", Some(i64::from(s.code()))),
    };
    vec![
        Arg::from(r.digest().to_vec()),
        Arg::from(c.document.to_string()),
        Arg::from(c.envelope.to_vec()),
        Arg::from(kind),
        Arg::from(status),
        Arg::from(c.by.to_string()),
        Arg::from(c.to.to_string()),
        Arg::from(c.at.unix_timestamp()),
        Arg::from(join_codes(&c.recipients)),
        Arg::from(c.note.clone()),
        Arg::from(r.as_bytes().to_vec()),
        Arg::from(now),
        Arg::from(received_from),
    ]
}

impl Tx<'_> {
    /// See [`Store::status_held`], inside the transaction.
    pub async fn status_held(
        &mut self,
        envelope: &[u8; 32],
        by: &AgencyCode,
        to: &AgencyCode,
        code: u8,
    ) -> Result<bool, StoreError> {
        let (sql, args) = status_query(envelope, by, to, code);
        Ok(!self.fetch_all(sql, args).await?.is_empty())
    }

    /// See [`Store::hop_receipt_covering`], inside the transaction.
    pub async fn hop_receipt_covering(
        &mut self,
        envelope: &[u8; 32],
        by: &AgencyCode,
        to: &AgencyCode,
        recipients: &[AgencyCode],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let (sql, args) = hop_receipts(envelope, by, to);
        covering(self.fetch_all(sql, args).await?, recipients)
    }

    /// See [`Store::statuses_for_sender`], inside the transaction.
    pub async fn statuses_for_sender(
        &mut self,
        envelope: &[u8; 32],
        by: &AgencyCode,
        sender: &AgencyCode,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let (sql, args) = sender_statuses(envelope, by, sender);
        bytes_of(self.fetch_all(sql, args).await?)
    }

    /// Stores a receipt; returns its row id and whether it is new (receipts are deduplicated by
    /// the digest of their bytes, also when two transactions race).
    pub async fn insert_receipt(
        &mut self,
        r: &SignedReceipt,
        received_from: &str,
        now: i64,
    ) -> Result<(i64, bool), StoreError> {
        let inserted = self
            .fetch_optional(
                concat!(insert_receipt!(), " ON CONFLICT (digest) DO NOTHING RETURNING id"),
                receipt_args(r, received_from, now),
            )
            .await?;
        if let Some(row) = inserted {
            // The transparency log's leaf, in this transaction: it exists iff the receipt does.
            self.log_receipt(r, now);
            return Ok((row.try_get("id")?, true));
        }
        let row =
            self.fetch_one("SELECT id FROM receipts WHERE digest = $1", vec![Arg::from(r.digest().to_vec())]).await?;
        Ok((row.try_get("id")?, false))
    }

    /// Stores `receipts` (each with the agency it came from) in one statement per
    /// [`rows_per_statement`] of them, where [`Tx::insert_receipt`] takes one or two each;
    /// answers, in their order, the row of each that is new (the first of equal ones only;
    /// `None` for the others), and logs those. For the records of next hops' answers taken
    /// together (`outbound::answers`): a status passed on is queued by its row.
    pub async fn insert_receipts(
        &mut self,
        receipts: &[(&SignedReceipt, &str)],
        now: i64,
    ) -> Result<Vec<Option<i64>>, StoreError> {
        let digests: Vec<[u8; 32]> = receipts.iter().map(|(r, _)| r.digest()).collect();
        // Each digest offered once: the insert's answer names the digests it stored.
        let mut offered = std::collections::HashSet::with_capacity(receipts.len());
        let first: Vec<usize> = (0..receipts.len()).filter(|i| offered.insert(digests[*i])).collect();
        // Inserted in the order of their digests: two transactions inserting some of the same
        // receipts wait for each other's rows in one order, never in a cycle.
        let mut by_digest = first.clone();
        by_digest.sort_unstable_by_key(|i| digests[*i]);
        let mut stored = std::collections::HashMap::with_capacity(first.len());
        let most = rows_per_statement(13, 0);
        for chunk in by_digest.chunks(most) {
            // The last row again is a conflict with itself, stored once: padded to few texts.
            let rows = padded(chunk.len(), most);
            let sql = format!(
                concat!(insert_receipts!(), "{} ON CONFLICT (digest) DO NOTHING RETURNING id, digest"),
                unshared_values(self.backend, RECEIPT_ROW, rows)
            );
            let args = (0..rows)
                .map(|k| chunk[k.min(chunk.len() - 1)])
                .flat_map(|i| receipt_args(receipts[i].0, receipts[i].1, now))
                .collect();
            for row in self.fetch_all(&sql, args).await? {
                stored.insert(row.try_get::<Vec<u8>, _>("digest")?, row.try_get::<i64, _>("id")?);
            }
        }
        let mut new = vec![None; receipts.len()];
        for i in first {
            if let Some(id) = stored.get(digests[i].as_slice()) {
                new[i] = Some(*id);
                // The transparency log's leaf, in this transaction, in the order given.
                self.log_receipt(receipts[i].0, now);
            }
        }
        Ok(new)
    }

    /// Stores a receipt this node has just signed, whose row id nobody needs (one statement,
    /// where [`Tx::insert_receipt`] may take two, sent with the transaction's next: see
    /// [`Tx::defer`]). For callers that know it is not stored
    /// yet: intake stores its hop receipt only for a new document or when no stored one
    /// covers the delivery, and its "arrived" status only with a new inbox entry. If the same
    /// bytes were stored anyway, the insert fails the transaction (the digest is unique)
    /// rather than log the receipt twice.
    pub async fn insert_own_receipt(
        &mut self,
        r: &SignedReceipt,
        received_from: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.defer(insert_receipt!(), receipt_args(r, received_from, now)).await?;
        self.log_receipt(r, now);
        Ok(())
    }

    /// Stores a CRL if it is newer than the one held for its issuer; true when stored.
    pub async fn store_crl(&mut self, crl: &pki::Crl, now: i64) -> Result<bool, StoreError> {
        let this_update = crl.this_update.unix_timestamp();
        let held = self
            .fetch_optional(
                "SELECT this_update, der FROM crls WHERE issuer = $1",
                vec![Arg::from(crl.issuer_raw.clone())],
            )
            .await?;
        // Newer means a later thisUpdate, or the same second with a higher cRLNumber.
        let newer = |row: &Row| -> Result<bool, StoreError> {
            let held_update: i64 = row.try_get("this_update")?;
            if held_update != this_update {
                return Ok(this_update > held_update);
            }
            let held_number = pki::Crl::from_der(&row.try_get::<Vec<u8>, _>("der")?).ok().and_then(|c| c.number);
            let key = |n: Option<pki::Serial>| n.map(|n| (n.as_bytes().len(), n.as_bytes().to_vec()));
            Ok(key(crl.number.clone()) > key(held_number))
        };
        match held {
            Some(row) if !newer(&row)? => Ok(false),
            Some(_) => {
                self.execute("UPDATE crls SET issuer_name = $1, this_update = $2, next_update = $3, der = $4, stored_at = $5 WHERE issuer = $6", vec![Arg::from(&crl.issuer), Arg::from(this_update), Arg::from(crl.next_update.unix_timestamp()), Arg::from(crl.der().to_vec()), Arg::from(now), Arg::from(crl.issuer_raw.clone())]).await?;
                Ok(true)
            }
            None => {
                // Another process of this node (PostgreSQL) may store the same issuer's CRL at
                // this instant; its copy stands and the next push or fetch settles any order.
                let done = self.execute("INSERT INTO crls (issuer, issuer_name, this_update, next_update, der, stored_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (issuer) DO NOTHING", vec![Arg::from(crl.issuer_raw.clone()), Arg::from(&crl.issuer), Arg::from(this_update), Arg::from(crl.next_update.unix_timestamp()), Arg::from(crl.der().to_vec()), Arg::from(now)]).await?;
                Ok(done > 0)
            }
        }
    }

    /// Remembers a CA certificate seen on a validated path, to check CRLs against later.
    pub async fn learn_ca(&mut self, cert: &pki::Certificate) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO ca_certs (fingerprint, subject, der) VALUES ($1, $2, $3) ON CONFLICT (fingerprint) DO NOTHING",
            vec![
                Arg::from(cert.fingerprint().to_vec()),
                Arg::from(cert.subject_raw.clone()),
                Arg::from(cert.der().to_vec()),
            ],
        )
        .await?;
        Ok(())
    }

    /// Adds to a named counter (deliveries, refusals...), for the health read-out.
    pub async fn count(&mut self, name: &str, by: i64) -> Result<(), StoreError> {
        self.execute("INSERT INTO counters (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = counters.value + $2", vec![Arg::from(name), Arg::from(by)]).await?;
        Ok(())
    }
}

impl Store {
    /// Every receipt held for a document (by envelope digest), oldest first.
    pub async fn receipts_for(&self, envelope: &[u8; 32]) -> Result<Vec<StoredReceipt>, StoreError> {
        let rows = sqlx::query("SELECT id, bytes FROM receipts WHERE envelope = $1 ORDER BY at, id")
            .bind(envelope.to_vec())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok(StoredReceipt { id: r.try_get("id")?, bytes: r.try_get("bytes")? })).collect()
    }

    /// A receipt by row id; an error if there is none.
    pub async fn receipt(&self, id: i64) -> Result<StoredReceipt, StoreError> {
        self.receipts(&[id]).await?.pop().ok_or_else(super::no_row)
    }

    /// The receipts of these row ids that exist, in no particular order, read in one statement
    /// per [`rows_per_statement`] ids: the receipts of a batch of notices, which were read one
    /// by one (about 16 to a batch under load over four hops).
    pub async fn receipts(&self, ids: &[i64]) -> Result<Vec<StoredReceipt>, StoreError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(rows_per_statement(1, 0)) {
            let sql = format!(
                "SELECT id, bytes FROM receipts WHERE id IN ({})",
                unshared_values(self.backend(), "{}", chunk.len())
            );
            for r in self.fetch_all(&sql, chunk.iter().map(|id| Arg::from(*id)).collect()).await? {
                found.push(StoredReceipt { id: r.try_get("id")?, bytes: r.try_get("bytes")? });
            }
        }
        Ok(found)
    }

    /// The hop receipt this node issued to `to` for a document covering all of `recipients`,
    /// if any: what a retried delivery is answered with.
    pub async fn hop_receipt_covering(
        &self,
        envelope: &[u8; 32],
        by: &AgencyCode,
        to: &AgencyCode,
        recipients: &[AgencyCode],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let (sql, args) = hop_receipts(envelope, by, to);
        covering(self.fetch_all(sql, args).await?, recipients)
    }

    /// The statuses 01 (arrived) and 02 (refused) `by` signed for the document's `sender`:
    /// what a retried delivery gets back beside its hop receipt, as the first one did (see
    /// `NodeResponse::HopReceipt`).
    pub async fn statuses_for_sender(
        &self,
        envelope: &[u8; 32],
        by: &AgencyCode,
        sender: &AgencyCode,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let (sql, args) = sender_statuses(envelope, by, sender);
        bytes_of(self.fetch_all(sql, args).await?)
    }

    /// Whether this node already holds a status `code` by `by` to `to` for a document: how a
    /// clerk's retried status or recall is recognised.
    pub async fn status_held(
        &self,
        envelope: &[u8; 32],
        by: &AgencyCode,
        to: &AgencyCode,
        code: u8,
    ) -> Result<bool, StoreError> {
        let (sql, args) = status_query(envelope, by, to, code);
        Ok(!self.fetch_all(sql, args).await?.is_empty())
    }

    /// Every stored CRL.
    pub async fn crls(&self) -> Result<Vec<pki::Crl>, StoreError> {
        let rows = sqlx::query("SELECT der FROM crls").fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                pki::Crl::from_der(&r.try_get::<Vec<u8>, _>("der")?).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    /// Every learned CA certificate.
    pub async fn ca_certs(&self) -> Result<Vec<pki::Certificate>, StoreError> {
        let rows = sqlx::query("SELECT der FROM ca_certs").fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                pki::Certificate::from_der(&r.try_get::<Vec<u8>, _>("der")?)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    /// Counter values.
    pub async fn counters(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT name, value FROM counters ORDER BY name").fetch_all(self.pool()).await?;
        rows.iter().map(|r| Ok((r.try_get("name")?, r.try_get("value")?))).collect()
    }
}
