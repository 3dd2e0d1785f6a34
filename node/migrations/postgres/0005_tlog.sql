-- The transparency log (pki::tlog): what this node did, as an append-only Merkle tree whose
-- checkpoints the parent co-signs.
--
-- A leaf is written into `tlog_pending` in the transaction that records its event (so it
-- exists if and only if the event committed); the checkpointer later gives pending leaves
-- their index in commit order (`tlog_leaves`), stores every complete subtree's hash once
-- (`tlog_nodes`, level 0 being the leaf hashes) so that roots and proofs never read the
-- leaves again, and signs a checkpoint.
CREATE TABLE tlog_pending (
    id    BIGSERIAL PRIMARY KEY,
    entry BYTEA   NOT NULL
);

CREATE TABLE tlog_leaves (
    idx      BIGINT PRIMARY KEY,
    entry    BYTEA   NOT NULL,
    envelope BYTEA   NOT NULL,
    kind     TEXT    NOT NULL,
    -- document leaves: 'clerk' or the neighbour's agency code
    via      TEXT
);
CREATE INDEX tlog_leaves_envelope ON tlog_leaves (envelope);
CREATE INDEX tlog_leaves_via ON tlog_leaves (via);

CREATE TABLE tlog_nodes (
    level BIGINT NOT NULL,
    idx   BIGINT NOT NULL,
    hash  BYTEA   NOT NULL,
    PRIMARY KEY (level, idx)
);

-- The number of indexed leaves; its row is what the checkpointer locks.
CREATE TABLE tlog_head (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL
);
INSERT INTO tlog_head (id, size) VALUES (1, 0);

-- Checkpoints this node signed: the signed note, with the parent's cosignature once it gave
-- one; or why the parent refused.
CREATE TABLE tlog_checkpoints (
    size         BIGINT PRIMARY KEY,
    note         TEXT    NOT NULL,
    signed_at    BIGINT NOT NULL,
    witnessed_at BIGINT,
    refused      TEXT
);

-- The witnesses that co-signed this node's checkpoints: each one's seal chain (DER
-- certificates, each preceded by its 4-byte length, for proofs a verifier checks offline) and
-- the size it last co-signed (where the next consistency proof starts from).
CREATE TABLE tlog_cosigners (
    agency TEXT    PRIMARY KEY,
    chain  BYTEA   NOT NULL,
    size   BIGINT  NOT NULL,
    at     BIGINT  NOT NULL
);

-- As a witness: the latest checkpoint co-signed for each neighbour's log, and the neighbour's
-- seal chain.
CREATE TABLE tlog_witnessed (
    agency TEXT    PRIMARY KEY,
    note   TEXT    NOT NULL,
    size   BIGINT NOT NULL,
    chain  BYTEA   NOT NULL,
    at     BIGINT NOT NULL
);

-- As a witness: checkpoints refused because they do not extend the one co-signed (a fork,
-- a rollback, a rewritten history): both signed checkpoints, and the request as presented
-- (old size, consistency proof, checkpoint) in `proof`.
CREATE TABLE tlog_forks (
    id        BIGSERIAL PRIMARY KEY,
    agency    TEXT    NOT NULL,
    reason    TEXT    NOT NULL,
    witnessed TEXT    NOT NULL,
    presented TEXT    NOT NULL,
    proof     TEXT    NOT NULL,
    at        BIGINT NOT NULL
);
