-- Notification mail (issue 7): a durable queue of its own, beside the document outbox, so an
-- SMTP outage delays mail and never a document. Rows are written in the transaction of the
-- event that causes them, deduplicated by `dedup_key` (a retried delivery or a restart adds
-- nothing); `message_id` is derived from the key, so the one unavoidable duplicate (a crash
-- between the SMTP server's acceptance and `state = 'sent'`) carries the same Message-ID.
-- Times are Unix milliseconds of this node's clock.

CREATE TABLE mail_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key       TEXT    NOT NULL UNIQUE,
    kind            TEXT    NOT NULL,
    message_id      TEXT    NOT NULL,
    recipients      TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    last_attempt_at INTEGER,
    lease_owner     TEXT,
    lease_until     INTEGER,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX mail_outbox_due ON mail_outbox (state, next_attempt_at);
