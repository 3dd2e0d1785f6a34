//! Notifications no single event causes: certificates close to expiry (hourly check), and the
//! daily digest of documents past their due date (once a day from `digest_at`, Vietnam time).
//!
//! Both take the time as an argument, so tests can ask "what would be queued on that day", and
//! both rely on bucketed dedup keys (the certificate and its reminder step; the date), so any
//! number of checks, restarts or processes queue each reminder once.

use std::time::Duration;

use sqlx::Row;
use time::{Date, OffsetDateTime};

use super::message::{self, ICT, Overdue};
use crate::Node;
use crate::storage::{StoreError, millis};

/// How often certificates are checked.
pub const CERTIFICATE_CHECK: Duration = Duration::from_secs(3600);

/// Most documents listed one by one in a digest; the rest are counted.
const DIGEST_LIST: i64 = 100;

/// The inbox documents due before `$1` and not done: not superseded, and no status after which
/// a received document needs nothing more (06 completed, 15 recall accepted, 16 refused). Due
/// dates are stored as ISO dates, so text order is date order.
macro_rules! overdue_from {
    () => {
        "FROM inbox i JOIN documents d ON d.id = i.document
         WHERE d.due IS NOT NULL AND d.due < $1 AND i.superseded_by IS NULL
           AND (i.status IS NULL OR i.status NOT IN (6, 15, 16))"
    };
}

/// The certificates watched: the node's and the seal's (as loaded at start), and the leaf of
/// every file in `mail.certificates` (read again at each check, so a renewed file is noticed).
fn watched(node: &Node) -> Vec<(String, pki::Certificate)> {
    let mut out = Vec::new();
    if let Some(c) = node.config.tls.chain.first() {
        out.push(("Chứng thư nút liên thông (TLS)".to_owned(), c.clone()));
    }
    if let Some(c) = node.config.seal.chain.first() {
        out.push(("Chứng thư con dấu của cơ quan".to_owned(), c.clone()));
    }
    for path in node.config.mail.iter().flat_map(|m| &m.certificates) {
        let leaf = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| pki::Certificate::from_pem_all(&t).map_err(|e| e.to_string()))
            .map(|certs| certs.into_iter().next());
        match leaf {
            Ok(Some(c)) => {
                let file = path.file_name().map_or_else(|| path.display().to_string(), |f| f.to_string_lossy().into());
                let who = c.common_name.clone().unwrap_or_else(|| c.subject.clone());
                out.push((format!("Chứng thư số của {who} (tệp {file})"), c));
            }
            Ok(None) => tracing::warn!(file = %path.display(), "certificate file holds no certificate"),
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "cannot read a watched certificate"),
        }
    }
    out
}

/// Queues an expiry warning for every watched certificate that entered a new reminder step at
/// `now`. Returns how many were queued.
pub async fn check_certificates(node: &Node, now: OffsetDateTime) -> Result<usize, StoreError> {
    let Some(mail) = &node.config.mail else { return Ok(0) };
    let due: Vec<message::Notification> = watched(node)
        .iter()
        .filter_map(|(what, cert)| {
            let days_left = (cert.not_after - now).whole_days() - i64::from(cert.not_after <= now);
            message::expiry_step(days_left, mail.expiry_warning_days)
                .map(|step| message::expiry(super::agency(node), what, cert, now, step))
        })
        .collect();
    if due.is_empty() {
        return Ok(0);
    }
    let mut queued = 0;
    let mut tx = node.store.begin().await?;
    for n in &due {
        queued += usize::from(super::enqueue(&mut tx, node, n, millis(now)).await?);
    }
    tx.commit().await?;
    if queued > 0 {
        tracing::warn!(count = queued, "certificate expiry warnings queued for the operators");
    }
    Ok(queued)
}

fn parse_date(text: &str) -> Option<Date> {
    Date::parse(text, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

/// The inbox documents due before `day` and not done: (the first [`DIGEST_LIST`], how many).
pub async fn overdue(node: &Node, day: Date) -> Result<(Vec<Overdue>, usize), StoreError> {
    let today = day.to_string();
    let total: i64 = sqlx::query(concat!("SELECT COUNT(*) AS n ", overdue_from!()))
        .bind(&today)
        .fetch_one(node.store.pool())
        .await?
        .try_get("n")?;
    let rows = sqlx::query(concat!(
        "SELECT d.doc_id, d.number, d.notation, d.subject, d.sender, d.sender_name, d.urgency, d.due, i.status ",
        overdue_from!(),
        " ORDER BY d.due, d.urgency DESC, d.id LIMIT $2"
    ))
    .bind(&today)
    .bind(DIGEST_LIST)
    .fetch_all(node.store.pool())
    .await?;
    let mut entries = Vec::with_capacity(rows.len());
    for r in rows {
        let due: String = r.try_get("due")?;
        let Some(due) = parse_date(&due) else {
            tracing::warn!(due = %due, "a stored due date does not parse; left out of the digest");
            continue;
        };
        let sender_name: String = r.try_get("sender_name")?;
        entries.push(Overdue {
            doc_id: r.try_get("doc_id")?,
            number: format!("{}/{}", r.try_get::<i64, _>("number")?, r.try_get::<String, _>("notation")?),
            subject: r.try_get("subject")?,
            sender: if sender_name.is_empty() { r.try_get("sender")? } else { sender_name },
            urgency: u8::try_from(r.try_get::<i64, _>("urgency")?).unwrap_or(0),
            due,
            status: r.try_get::<Option<i64>, _>("status")?.and_then(|s| u8::try_from(s).ok()),
        });
    }
    Ok((entries, usize::try_from(total).unwrap_or(0)))
}

/// The daily digest: from `digest_at` (Vietnam time) on, the day's digest of overdue documents
/// is queued once, if there are any. Returns the Vietnam date when that day is settled (queued
/// now or before, or nothing overdue), `None` before `digest_at` or with the digest off.
pub async fn check_digest(node: &Node, now: OffsetDateTime) -> Result<Option<Date>, StoreError> {
    let Some(at) = node.config.mail.as_ref().and_then(|m| m.digest_at) else { return Ok(None) };
    let local = now.to_offset(ICT);
    if local.time() < at {
        return Ok(None);
    }
    let day = local.date();
    if super::queue::queued(&node.store, &format!("digest:{day}")).await? {
        return Ok(Some(day));
    }
    let (entries, total) = overdue(node, day).await?;
    if total == 0 {
        return Ok(Some(day));
    }
    let n = message::digest(super::agency(node), day, &entries, total);
    let mut tx = node.store.begin().await?;
    let queued = super::enqueue(&mut tx, node, &n, millis(now)).await?;
    tx.commit().await?;
    if queued {
        tracing::info!(overdue = total, day = %day, "daily digest queued");
    }
    Ok(Some(day))
}

/// Queues a mail to the operators for every revocation alert raised since the last round
/// (at most one per certificate and outcome per alert window). Returns how many were queued.
pub async fn mail_alerts(node: &Node) -> Result<usize, StoreError> {
    let raised = node.observed.watch().take_unmailed();
    if raised.is_empty() || node.config.mail.is_none() {
        return Ok(0);
    }
    let mut queued = 0;
    let mut tx = node.store.begin().await?;
    for (who, gap, accepted, at) in &raised {
        let when = crate::storage::from_millis(*at).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let window = at / crate::health::UNCHECKED_ALERT_FOR;
        let n = message::revocation_alert(super::agency(node), who, gap, *accepted, when, window);
        queued += usize::from(super::enqueue(&mut tx, node, &n, *at).await?);
    }
    tx.commit().await?;
    tracing::warn!(count = queued, "revocation alerts queued for the operators");
    Ok(queued)
}

/// When the worker runs the periodic checks next.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    certificates_checked: Option<OffsetDateTime>,
    digest_settled: Option<Date>,
}

impl Schedule {
    /// Runs whatever check is due at `now`; failures are logged and retried at the next round.
    pub(crate) async fn run(&mut self, node: &Node, now: OffsetDateTime) {
        let hour = time::Duration::try_from(CERTIFICATE_CHECK).unwrap_or(time::Duration::HOUR);
        if self.certificates_checked.is_none_or(|t| now - t >= hour) {
            match check_certificates(node, now).await {
                Ok(_) => self.certificates_checked = Some(now),
                Err(e) => tracing::error!(error = %e, "cannot check certificate expiry"),
            }
        }
        if let Err(e) = mail_alerts(node).await {
            tracing::error!(error = %e, "cannot queue alert mail for the operators");
        }
        if self.digest_settled != Some(now.to_offset(ICT).date()) {
            match check_digest(node, now).await {
                Ok(settled) => self.digest_settled = settled.or(self.digest_settled),
                Err(e) => tracing::error!(error = %e, "cannot build the daily digest"),
            }
        }
    }
}
