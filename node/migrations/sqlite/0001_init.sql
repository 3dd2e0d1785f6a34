-- lienthong node schema, SQLite. Times local to this node are Unix milliseconds; times inside
-- signed receipts are the signed Unix seconds.

CREATE TABLE documents (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id        TEXT    NOT NULL UNIQUE,
    digest        BLOB    NOT NULL UNIQUE,
    sender        TEXT    NOT NULL,
    sender_name   TEXT    NOT NULL,
    envelope      BLOB    NOT NULL,
    number        INTEGER NOT NULL,
    notation      TEXT    NOT NULL,
    type_name     TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    urgency       INTEGER NOT NULL,
    due           TEXT,
    business      INTEGER NOT NULL,
    business_of   TEXT,
    recipients    TEXT    NOT NULL,
    received_from TEXT    NOT NULL,
    received_at   INTEGER NOT NULL,
    provisional   INTEGER NOT NULL DEFAULT 0,
    outgoing      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE attachments (
    document   INTEGER NOT NULL REFERENCES documents(id),
    position   INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    media_type TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    sha256     BLOB    NOT NULL,
    PRIMARY KEY (document, position)
);

CREATE TABLE routes (
    document   INTEGER NOT NULL REFERENCES documents(id),
    recipient  TEXT    NOT NULL,
    next_hop   TEXT,
    state      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (document, recipient)
);

CREATE TABLE inbox (
    document         INTEGER PRIMARY KEY REFERENCES documents(id),
    arrived_at       INTEGER NOT NULL,
    status           INTEGER,
    status_at        INTEGER,
    superseded_by    TEXT,
    recall_requested INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE receipts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    digest        BLOB    NOT NULL UNIQUE,
    doc_id        TEXT    NOT NULL,
    envelope      BLOB    NOT NULL,
    kind          TEXT    NOT NULL,
    status        INTEGER,
    by_agency     TEXT    NOT NULL,
    to_agency     TEXT    NOT NULL,
    at            INTEGER NOT NULL,
    recipients    TEXT    NOT NULL,
    note          TEXT,
    bytes         BLOB    NOT NULL,
    received_at   INTEGER NOT NULL,
    received_from TEXT    NOT NULL
);
CREATE INDEX receipts_doc ON receipts (doc_id);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key       TEXT    NOT NULL UNIQUE,
    kind            TEXT    NOT NULL,
    document        INTEGER REFERENCES documents(id),
    receipt         INTEGER REFERENCES receipts(id),
    next_hop        TEXT    NOT NULL,
    recipients      TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     INTEGER,
    created_at      INTEGER NOT NULL,
    done_at         INTEGER
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

CREATE TABLE crls (
    issuer      BLOB    PRIMARY KEY,
    issuer_name TEXT    NOT NULL,
    this_update INTEGER NOT NULL,
    next_update INTEGER NOT NULL,
    der         BLOB    NOT NULL,
    stored_at   INTEGER NOT NULL
);

CREATE TABLE ca_certs (
    fingerprint BLOB PRIMARY KEY,
    subject     BLOB NOT NULL,
    der         BLOB NOT NULL
);

CREATE TABLE counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);
