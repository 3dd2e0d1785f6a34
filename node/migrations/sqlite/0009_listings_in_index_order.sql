-- A clerk's inbox and sent listings read the first rows of an index in their order, not
-- every document the node holds: before, the inbox listing joined each of its documents
-- (whose rows carry the envelope, several KiB each) for its urgency and sorted them all,
-- and the sent listing read the whole documents table, on every look (182 ms for 20 rows at
-- 200,000 documents on SQLite, hot cache). The inbox keeps its document's urgency beside
-- the arrival, which the intake copies from the document.
ALTER TABLE inbox ADD COLUMN urgency INTEGER NOT NULL DEFAULT 0;
UPDATE inbox SET urgency = (SELECT d.urgency FROM documents d WHERE d.id = inbox.document);
CREATE INDEX inbox_listing ON inbox (urgency, arrived_at);
CREATE INDEX documents_sent ON documents (received_at) WHERE outgoing = 1;
