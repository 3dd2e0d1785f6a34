-- Every health read-out (`status`, `/metrics`, the console, a clerk's `Health`) lists the
-- outbox per next hop: how many transfers wait, and when the hop last took one. Grouped over
-- the whole table, that read every transfer ever queued (185 ms at 400,000 on SQLite, on
-- every scrape). With this index the read steps from one next hop to the next, and finds
-- each hop's latest hand-over at the end of its done rows.
CREATE INDEX outbox_by_hop ON outbox (next_hop, state, done_at);
-- A clerk's sent listing asks, for each document no recipient has answered for, which of its
-- transfers still wait: that read every waiting transfer of the node and sorted them, for
-- each such document. Transfers of documents only: those of notices (receipts going back)
-- name no document.
CREATE INDEX outbox_document ON outbox (document, id) WHERE kind = 'document';
