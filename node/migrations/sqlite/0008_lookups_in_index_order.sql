-- Two lookups take the first of a few rows by order (`WHERE x = $1 … ORDER BY id LIMIT n`)
-- and must find them through an index, in that order. With indexes on `x` alone PostgreSQL
-- did not: for the superseder lookup of every arrival (`business_of`) it walked the primary
-- key from the lowest id and filtered each row, expecting an early match, until the table's
-- first statistics; as almost no document acts on another, that read the whole table on
-- every arrival (10 to 26 ms at 10,700 documents, growing with the table). For a page of the
-- log entries a child audits (`via`) it read every entry of that child and sorted them, on
-- every page. With the ordering column in the index the rows come in order from it, and no
-- plan that reads more is cheaper. Same indexes on SQLite (where the rowid, which these
-- columns are, was in them already), so that both schemas stay one.
DROP INDEX documents_business_of;
CREATE INDEX documents_business_of ON documents (business_of, id) WHERE business_of IS NOT NULL;
DROP INDEX tlog_leaves_via;
CREATE INDEX tlog_leaves_via ON tlog_leaves (via, idx);
