-- Small attachments (at most limits.inline_attachment_bytes) are kept here, written in the
-- transaction that takes their document, instead of as files in the attachment store: a file
-- costs its own sync and its directory's on every hop, the database's commit one for all.
-- Named by SHA-256 like the files, so an attachment sent twice is kept once.
CREATE TABLE inline_blobs (
    sha256 BLOB PRIMARY KEY,
    bytes  BLOB NOT NULL
);
