-- The transparency log (pki::tlog): what this node did, as an append-only Merkle tree whose
-- checkpoints the parent co-signs.
--
-- A leaf is written into `tlog_pending` in the transaction that records its event (so it
-- exists if and only if the event committed); the checkpointer later gives pending leaves
-- their index in commit order (`tlog_leaves`), stores every complete subtree's hash once
-- (`tlog_nodes`, level 0 being the leaf hashes) so that roots and proofs never read the
-- leaves again, and signs a checkpoint.
CREATE TABLE tlog_pending (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    entry BLOB    NOT NULL
);

CREATE TABLE tlog_leaves (
    idx      INTEGER PRIMARY KEY,
    entry    BLOB    NOT NULL,
    envelope BLOB    NOT NULL,
    kind     TEXT    NOT NULL,
    -- document leaves: 'clerk' or the neighbour's agency code
    via      TEXT
);
CREATE INDEX tlog_leaves_envelope ON tlog_leaves (envelope);
CREATE INDEX tlog_leaves_via ON tlog_leaves (via);

CREATE TABLE tlog_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB    NOT NULL,
    PRIMARY KEY (level, idx)
);

-- The number of indexed leaves; its row is what the checkpointer locks.
CREATE TABLE tlog_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL
);
INSERT INTO tlog_head (id, size) VALUES (1, 0);

-- Checkpoints this node signed: the signed note, with the parent's cosignature once it gave
-- one; or why the parent refused.
CREATE TABLE tlog_checkpoints (
    size         INTEGER PRIMARY KEY,
    note         TEXT    NOT NULL,
    signed_at    INTEGER NOT NULL,
    witnessed_at INTEGER,
    refused      TEXT
);

-- The witnesses that co-signed this node's checkpoints: each one's seal chain (DER
-- certificates, each preceded by its 4-byte length, for proofs a verifier checks offline) and
-- the size it last co-signed (where the next consistency proof starts from).
CREATE TABLE tlog_cosigners (
    agency TEXT    PRIMARY KEY,
    chain  BLOB    NOT NULL,
    size   INTEGER NOT NULL,
    at     INTEGER NOT NULL
);

-- As a witness: the latest checkpoint co-signed for each neighbour's log, and the neighbour's
-- seal chain.
CREATE TABLE tlog_witnessed (
    agency TEXT    PRIMARY KEY,
    note   TEXT    NOT NULL,
    size   INTEGER NOT NULL,
    chain  BLOB    NOT NULL,
    at     INTEGER NOT NULL
);

-- As a witness: checkpoints refused because they do not extend the one co-signed (a fork,
-- a rollback, a rewritten history): both signed checkpoints, and the request as presented
-- (old size, consistency proof, checkpoint) in `proof`.
CREATE TABLE tlog_forks (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    agency    TEXT    NOT NULL,
    reason    TEXT    NOT NULL,
    witnessed TEXT    NOT NULL,
    presented TEXT    NOT NULL,
    proof     TEXT    NOT NULL,
    at        INTEGER NOT NULL
);
