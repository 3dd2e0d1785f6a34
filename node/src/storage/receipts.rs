//! Receipts and statuses (each agency keeps every one it sees), CRLs and learned CA
//! certificates.

use pki::document::{ReceiptKind, SignedReceipt};
use sqlx::Row;

use super::{Store, StoreError, Tx, join_codes};

/// A stored receipt.
#[derive(Debug, Clone)]
pub struct StoredReceipt {
    /// Row id.
    pub id: i64,
    /// Its exact signed bytes.
    pub bytes: Vec<u8>,
}

impl Tx<'_> {
    /// Stores a receipt; returns its row id and whether it is new (receipts are deduplicated by
    /// the digest of their bytes).
    pub async fn insert_receipt(
        &mut self,
        r: &SignedReceipt,
        received_from: &str,
        now: i64,
    ) -> Result<(i64, bool), StoreError> {
        let digest = r.digest().to_vec();
        if let Some(row) = sqlx::query("SELECT id FROM receipts WHERE digest = $1")
            .bind(digest.clone())
            .fetch_optional(self.conn())
            .await?
        {
            return Ok((row.try_get("id")?, false));
        }
        let c = &r.receipt;
        let (kind, status) = match c.kind {
            ReceiptKind::Hop => ("hop", None),
            ReceiptKind::Status(s) => ("status", Some(i64::from(s.code()))),
        };
        let row = sqlx::query(
            "INSERT INTO receipts (digest, doc_id, envelope, kind, status, by_agency, to_agency, at, recipients, note, bytes, received_at, received_from)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(digest)
        .bind(c.document.to_string())
        .bind(c.envelope.to_vec())
        .bind(kind)
        .bind(status)
        .bind(c.by.to_string())
        .bind(c.to.to_string())
        .bind(c.at.unix_timestamp())
        .bind(join_codes(&c.recipients))
        .bind(c.note.clone())
        .bind(r.as_bytes().to_vec())
        .bind(now)
        .bind(received_from)
        .fetch_one(self.conn())
        .await?;
        Ok((row.try_get("id")?, true))
    }

    /// Stores a CRL if it is newer than the one held for its issuer; true when stored.
    pub async fn store_crl(&mut self, crl: &pki::Crl, now: i64) -> Result<bool, StoreError> {
        let this_update = crl.this_update.unix_timestamp();
        let held = sqlx::query("SELECT this_update FROM crls WHERE issuer = $1")
            .bind(crl.issuer_raw.clone())
            .fetch_optional(self.conn())
            .await?;
        match held {
            Some(row) if row.try_get::<i64, _>("this_update")? >= this_update => Ok(false),
            Some(_) => {
                sqlx::query("UPDATE crls SET issuer_name = $1, this_update = $2, next_update = $3, der = $4, stored_at = $5 WHERE issuer = $6")
                    .bind(&crl.issuer)
                    .bind(this_update)
                    .bind(crl.next_update.unix_timestamp())
                    .bind(crl.der().to_vec())
                    .bind(now)
                    .bind(crl.issuer_raw.clone())
                    .execute(self.conn())
                    .await?;
                Ok(true)
            }
            None => {
                sqlx::query("INSERT INTO crls (issuer, issuer_name, this_update, next_update, der, stored_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(crl.issuer_raw.clone())
                    .bind(&crl.issuer)
                    .bind(this_update)
                    .bind(crl.next_update.unix_timestamp())
                    .bind(crl.der().to_vec())
                    .bind(now)
                    .execute(self.conn())
                    .await?;
                Ok(true)
            }
        }
    }

    /// Remembers a CA certificate seen on a validated path, to check CRLs against later.
    pub async fn learn_ca(&mut self, cert: &pki::Certificate) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ca_certs (fingerprint, subject, der) VALUES ($1, $2, $3) ON CONFLICT (fingerprint) DO NOTHING",
        )
        .bind(cert.fingerprint().to_vec())
        .bind(cert.subject_raw.clone())
        .bind(cert.der().to_vec())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Adds to a named counter (deliveries, refusals...), for the health read-out.
    pub async fn count(&mut self, name: &str, by: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO counters (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = counters.value + $2")
            .bind(name)
            .bind(by)
            .execute(self.conn())
            .await?;
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

    /// A receipt by row id.
    pub async fn receipt(&self, id: i64) -> Result<StoredReceipt, StoreError> {
        let r = sqlx::query("SELECT id, bytes FROM receipts WHERE id = $1").bind(id).fetch_one(self.pool()).await?;
        Ok(StoredReceipt { id: r.try_get("id")?, bytes: r.try_get("bytes")? })
    }

    /// The hop receipt this node issued to `to` for a document, if any (re-sent on retries).
    pub async fn hop_receipt_issued(
        &self,
        envelope: &[u8; 32],
        by: &pki::AgencyCode,
        to: &pki::AgencyCode,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT bytes FROM receipts WHERE envelope = $1 AND kind = 'hop' AND by_agency = $2 AND to_agency = $3 ORDER BY id LIMIT 1")
            .bind(envelope.to_vec())
            .bind(by.to_string())
            .bind(to.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| r.try_get("bytes")).transpose().map_err(Into::into)
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
