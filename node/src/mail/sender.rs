//! The mail worker: claims due notifications, talks SMTP to the relay (lettre over rustls with
//! *ring*; STARTTLS required, implicit TLS, or clear text to a loopback relay), records the
//! outcome, and runs the periodic checks.
//!
//! Failures: the relay is checked once per batch (a pooled connection answering NOOP), so an
//! outage costs one connection attempt per round, not one per notification; every claimed
//! notification is then retried after its own exponential backoff with jitter. A notification
//! the relay refuses with a permanent (5xx) answer to the message itself is dead-lettered at
//! once; anything else is retried until the policy's attempts are spent, then dead-lettered.
//! Dead notifications stay in the table and in the health read-out.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::Tls;
use lettre::transport::smtp::{AsyncSmtpTransport, PoolConfig};
use lettre::{AsyncTransport, Tokio1Executor};

use super::config::{MailConfig, TlsMode};
use super::periodic::Schedule;
use super::queue::{self, QueuedMail};
use crate::Node;
use crate::storage::millis;

/// Notifications claimed per round.
const BATCH: i64 = 16;

/// The longest the worker sleeps between looks at the queue: a notification queued by a
/// document waits at most this long before its SMTP conversation starts.
const POLL: Duration = Duration::from_millis(500);

/// Why the relay did not take a notification.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The relay cannot be used right now (connection, TLS, greeting, authentication): every
    /// notification waits, none is charged more than its attempt.
    #[error("relay {server}: {error}")]
    Relay {
        /// `host:port`.
        server: String,
        /// What failed.
        error: String,
    },
    /// The relay refused this notification for good (a 5xx answer to the message).
    #[error("relay {server} refused the message: {error}")]
    Refused {
        /// `host:port`.
        server: String,
        /// Its answer.
        error: String,
    },
    /// This notification failed for now (a 4xx answer to it).
    #[error("relay {server}: {error}")]
    Transient {
        /// `host:port`.
        server: String,
        /// What failed.
        error: String,
    },
    /// The queued row cannot be made into an email (a damaged row).
    #[error("the queued notification cannot be made into an email: {0}")]
    Unusable(String),
}

/// The SMTP transport for `mail`: pooled connections, the configured TLS and credentials, and
/// `mail.timeout` on every step.
pub fn transport(mail: &MailConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
    let tls = match mail.tls {
        TlsMode::Starttls => Tls::Required(mail.tls_parameters()?),
        TlsMode::Implicit => Tls::Wrapper(mail.tls_parameters()?),
        TlsMode::DangerCleartextLoopback => Tls::None,
    };
    // `builder_dangerous` only means "no TLS chosen yet": the TLS mode is set right below.
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(mail.server.clone())
        .port(mail.port)
        .tls(tls)
        .timeout(Some(mail.timeout))
        .pool_config(PoolConfig::new().max_size(2).idle_timeout(Duration::from_secs(60)));
    if let Some(c) = &mail.credentials {
        builder = builder.credentials(Credentials::new(c.username.clone(), c.password().to_owned()));
    }
    Ok(builder.build())
}

fn relay_name(mail: &MailConfig) -> String {
    format!("{}:{}", mail.server, mail.port)
}

/// Sends one claimed notification.
async fn send(
    mail: &MailConfig,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    queued: &QueuedMail,
) -> Result<(), SendError> {
    let recipients: Vec<Mailbox> = queued
        .recipients
        .lines()
        .map(|l| l.parse::<Mailbox>().map_err(|e| SendError::Unusable(format!("recipient {l:?}: {e}"))))
        .collect::<Result<_, _>>()?;
    let email = super::message::email(
        &mail.from,
        &recipients,
        &queued.kind,
        &queued.subject,
        &queued.body,
        &queued.message_id,
        super::from_millis(queued.created_at),
    )
    .map_err(|e| SendError::Unusable(e.to_string()))?;
    let server = relay_name(mail);
    transport.send(email).await.map(|_| ()).map_err(|e| {
        if e.is_permanent() {
            SendError::Refused { server, error: e.to_string() }
        } else if e.status().is_some() {
            SendError::Transient { server, error: e.to_string() }
        } else {
            // No SMTP answer at all: the connection or TLS broke, so the relay is unusable.
            SendError::Relay { server, error: e.to_string() }
        }
    })
}

/// Checks the relay with a pooled connection (connect, TLS, EHLO, AUTH, NOOP).
async fn check_relay(mail: &MailConfig, transport: &AsyncSmtpTransport<Tokio1Executor>) -> Result<(), SendError> {
    let server = relay_name(mail);
    match transport.test_connection().await {
        Ok(true) => Ok(()),
        Ok(false) => Err(SendError::Relay { server, error: "did not answer NOOP".into() }),
        Err(e) => Err(SendError::Relay { server, error: e.to_string() }),
    }
}

/// Records a failure of `queued`: retried after its backoff, or dead-lettered (at once when
/// `dead_now`).
async fn failed(node: &Node, mail: &MailConfig, queued: &QueuedMail, error: &SendError, dead_now: bool) {
    let attempt = queued.attempts.saturating_add(1);
    let dead = dead_now || attempt >= mail.retry.max_attempts;
    let delay = mail.retry.delay(attempt, node.outbound.jitter_draw());
    let now = millis(node.now());
    let next = now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
    tracing::warn!(mail = queued.id, kind = %queued.kind, attempt, retry_in = %humantime::format_duration(delay), dead, error = %error, "notification not sent");
    if let Err(e) =
        queue::mark_failed(&node.store, queued.id, node.outbound.lease_owner(), &error.to_string(), now, next, dead)
            .await
    {
        tracing::error!(mail = queued.id, error = %e, "cannot record a failed notification; it is retried");
    }
}

/// Gives untried claims back (shutdown began).
async fn release(node: &Node, claims: Vec<QueuedMail>) {
    for q in claims {
        if let Err(e) = queue::release(&node.store, q.id, node.outbound.lease_owner()).await {
            tracing::warn!(mail = q.id, error = %e, "cannot release a mail claim; it is taken again when its lease runs out");
        }
    }
}

/// One round: claim what is due and send it. Returns how long to wait before the next round.
async fn round(node: &Node, mail: &MailConfig, transport: &AsyncSmtpTransport<Tokio1Executor>) -> Duration {
    let now = millis(node.now());
    // A claim holds for `limits.outbox_lease` and is renewed before each message while the
    // batch runs (PostgreSQL; SQLite claims hold no lease), so a dead process's notifications
    // are taken over after one lease, as its transfers are.
    let lease = node.config.limits.outbox_lease;
    let until = |now: i64| now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
    let lease_until = until(now);
    let batch = match queue::claim(&node.store, node.outbound.lease_owner(), now, lease_until, BATCH).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the mail queue");
            return POLL;
        }
    };
    if batch.is_empty() {
        return match node.store.next_due(crate::storage::Leased::Mail, now).await {
            Ok(Some(due)) => {
                Duration::from_millis(u64::try_from(due - now).unwrap_or(0)).clamp(Duration::from_millis(10), POLL)
            }
            _ => POLL,
        };
    }
    // Shutdown cuts an SMTP conversation short: the notification stays queued and is sent after
    // the restart (a message cut before the relay's final answer is not delivered). Recording an
    // outcome is never cut short.
    let mut stop = node.shutdown_signal();
    let checked = tokio::select! {
        r = check_relay(mail, transport) => Some(r),
        _ = stop.wait_for(|s| *s) => None,
    };
    match checked {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            for queued in &batch {
                failed(node, mail, queued, &e, false).await;
            }
            return POLL;
        }
        None => {
            release(node, batch).await;
            return POLL;
        }
    }
    let full = batch.len() as i64 == BATCH;
    let mut renewed = tokio::time::Instant::now();
    let mut rest = batch.into_iter();
    while let Some(queued) = rest.next() {
        if node.store.backend() == crate::storage::Backend::Postgres && renewed.elapsed() >= lease / 3 {
            let ids: Vec<i64> = std::iter::once(queued.id).chain(rest.as_slice().iter().map(|q| q.id)).collect();
            let until = until(millis(node.now()));
            if let Err(e) =
                node.store.renew_leases(crate::storage::Leased::Mail, node.outbound.lease_owner(), &ids, until).await
            {
                tracing::warn!(error = %e, "cannot renew mail claims");
            }
            renewed = tokio::time::Instant::now();
        }
        let sent = tokio::select! {
            r = send(mail, transport, &queued) => Some(r),
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(sent) = sent else {
            release(node, std::iter::once(queued).chain(rest).collect()).await;
            return POLL;
        };
        match sent {
            Ok(()) => {
                let now = millis(node.now());
                match queue::mark_sent(&node.store, queued.id, node.outbound.lease_owner(), now).await {
                    Ok(true) => {
                        tracing::info!(mail = queued.id, kind = %queued.kind, message_id = %queued.message_id, "notification sent")
                    }
                    Ok(false) => tracing::warn!(mail = queued.id, "notification sent after its claim was lost"),
                    Err(e) => {
                        tracing::error!(mail = queued.id, error = %e, "notification sent but not recorded; it may be sent again (same Message-ID)")
                    }
                }
            }
            Err(e @ (SendError::Refused { .. } | SendError::Unusable(_))) => {
                failed(node, mail, &queued, &e, true).await
            }
            Err(e @ SendError::Relay { .. }) => {
                // The relay went away mid-batch: the rest waits too, untried, rather than each
                // notification waiting for its own connection to time out.
                for q in std::iter::once(queued).chain(rest.by_ref()) {
                    failed(node, mail, &q, &e, false).await;
                }
                break;
            }
            Err(e) => failed(node, mail, &queued, &e, false).await,
        }
    }
    if full { Duration::ZERO } else { POLL }
}

/// Runs the mail worker until shutdown; returns at once when `[mail]` is not configured.
pub async fn run(node: Arc<Node>) {
    let Some(mail) = node.config.mail.clone() else { return };
    let transport = match transport(&mail) {
        Ok(t) => t,
        Err(e) => {
            // Validation built the same TLS setup, so this is not expected; say so loudly.
            tracing::error!(error = %e, "cannot set up SMTP; notifications stay queued");
            return;
        }
    };
    tracing::info!(relay = %relay_name(&mail), tls = %mail.tls, "mail worker started");
    let mut shutdown = node.shutdown_signal();
    let mut schedule = Schedule::default();
    loop {
        if node.stopping() {
            break;
        }
        schedule.run(&node, node.now()).await;
        let wait = round(&node, &mail, &transport).await;
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    transport.shutdown().await;
    tracing::info!("mail worker stopped");
}
