-- Notification mail (issue 7), PostgreSQL: the same table as SQLite, PostgreSQL types.
-- A durable queue of its own, beside the document outbox, so an SMTP outage delays mail and
-- never a document. Rows are written in the transaction of the event that causes them,
-- deduplicated by `dedup_key`; `message_id` is derived from the key. Several node processes
-- sharing this database claim rows with `FOR UPDATE SKIP LOCKED` and a lease.
-- Times are Unix milliseconds of this node's clock.

CREATE TABLE mail_outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key       TEXT    NOT NULL UNIQUE,
    kind            TEXT    NOT NULL,
    message_id      TEXT    NOT NULL,
    recipients      TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    last_error      TEXT,
    last_attempt_at BIGINT,
    lease_owner     TEXT,
    lease_until     BIGINT,
    created_at      BIGINT  NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX mail_outbox_due ON mail_outbox (state, next_attempt_at);
