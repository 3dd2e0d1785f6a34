-- The last storage failure the node saw (a full disk, a database refusing writes), for
-- `lienthong-node status`; how many there were is the counter `storage_errors`. The node
-- writes it once the database takes writes again, so it stays visible after recovery.
CREATE TABLE storage_faults (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    at    BIGINT NOT NULL,
    error TEXT   NOT NULL
);
