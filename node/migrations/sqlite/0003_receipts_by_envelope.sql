-- Receipts are looked up by the envelope they concern (retried deliveries, tracking, recall
-- checks, the sent list); the first schema indexed doc_id, which no query uses.
CREATE INDEX receipts_envelope ON receipts (envelope);
DROP INDEX receipts_doc;
