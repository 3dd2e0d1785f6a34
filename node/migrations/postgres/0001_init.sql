-- lienthong node schema, PostgreSQL (the same tables as SQLite, PostgreSQL types). Times local to this node are Unix milliseconds; times inside
-- signed receipts are the signed Unix seconds.

CREATE TABLE documents (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    doc_id        TEXT    NOT NULL UNIQUE,
    digest        BYTEA    NOT NULL UNIQUE,
    sender        TEXT    NOT NULL,
    sender_name   TEXT    NOT NULL,
    envelope      BYTEA    NOT NULL,
    number        BIGINT NOT NULL,
    notation      TEXT    NOT NULL,
    type_name     TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    urgency       BIGINT NOT NULL,
    due           TEXT,
    business      BIGINT NOT NULL,
    business_of   TEXT,
    recipients    TEXT    NOT NULL,
    received_from TEXT    NOT NULL,
    received_at   BIGINT NOT NULL,
    provisional   BIGINT NOT NULL DEFAULT 0,
    outgoing      BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE attachments (
    document   BIGINT NOT NULL REFERENCES documents(id),
    position   BIGINT NOT NULL,
    name       TEXT    NOT NULL,
    media_type TEXT    NOT NULL,
    size       BIGINT NOT NULL,
    sha256     BYTEA    NOT NULL,
    PRIMARY KEY (document, position)
);

CREATE TABLE routes (
    document   BIGINT NOT NULL REFERENCES documents(id),
    recipient  TEXT    NOT NULL,
    next_hop   TEXT,
    state      TEXT    NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (document, recipient)
);

CREATE TABLE inbox (
    document         BIGINT PRIMARY KEY REFERENCES documents(id),
    arrived_at       BIGINT NOT NULL,
    status           BIGINT,
    status_at        BIGINT,
    superseded_by    TEXT,
    recall_requested BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE receipts (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    digest        BYTEA    NOT NULL UNIQUE,
    doc_id        TEXT    NOT NULL,
    envelope      BYTEA    NOT NULL,
    kind          TEXT    NOT NULL,
    status        BIGINT,
    by_agency     TEXT    NOT NULL,
    to_agency     TEXT    NOT NULL,
    at            BIGINT NOT NULL,
    recipients    TEXT    NOT NULL,
    note          TEXT,
    bytes         BYTEA    NOT NULL,
    received_at   BIGINT NOT NULL,
    received_from TEXT    NOT NULL
);
CREATE INDEX receipts_doc ON receipts (doc_id);

CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key       TEXT    NOT NULL UNIQUE,
    kind            TEXT    NOT NULL,
    document        BIGINT REFERENCES documents(id),
    receipt         BIGINT REFERENCES receipts(id),
    next_hop        TEXT    NOT NULL,
    recipients      TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     BIGINT,
    created_at      BIGINT NOT NULL,
    done_at         BIGINT
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

CREATE TABLE crls (
    issuer      BYTEA    PRIMARY KEY,
    issuer_name TEXT    NOT NULL,
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL,
    der         BYTEA    NOT NULL,
    stored_at   BIGINT NOT NULL
);

CREATE TABLE ca_certs (
    fingerprint BYTEA PRIMARY KEY,
    subject     BYTEA NOT NULL,
    der         BYTEA NOT NULL
);

CREATE TABLE counters (
    name  TEXT    PRIMARY KEY,
    value BIGINT NOT NULL
);
