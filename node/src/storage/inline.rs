//! Small attachments kept in the database instead of as files.
//!
//! A file in the attachment store costs, on every hop, its creation, its sync and its shard
//! directory's sync before the document's transaction commits with a sync of its own: three
//! syncs where one does. An attachment of at most `limits.inline_attachment_bytes` (at most
//! [`MAX_INLINE_BYTES`]) is received whole into memory and checked against its SHA-256 like
//! any other ([`super::blobs::read_checked`]), then written in the document's own transaction
//! ([`super::NewDocument::inline`]), into `inline_blobs`, named by its SHA-256 like a file.
//! So the invariant stays the one the files keep: a committed document has its bytes, and a
//! refused or rolled-back one leaves none.
//!
//! Readers do not choose: [`super::Store::attachments`] returns each attachment with its bytes
//! when they are in the database, and [`BlobStore::reader`] reads either kind from an offset.

use std::io::Cursor;
use std::sync::Arc;

use pki::document::manifest::Attachment;
use tokio::io::{AsyncRead, AsyncReadExt, BufReader, Take};
use tokio_util::either::Either;

use super::Arg;
use super::blobs::{BlobStore, PendingBlob, ReceiveError, read_checked};
use super::values::{rows_per_statement, unshared_values};
use super::{StoreError, Tx};

/// The largest attachment that may be kept in the database: it is received whole in memory,
/// and a row this size is still cheap to write and read.
pub const MAX_INLINE_BYTES: usize = 256 * 1024;

/// A received attachment whose bytes checked out, held in memory for its document's
/// transaction.
#[derive(Debug)]
pub struct InlineBlob {
    sha256: [u8; 32],
    bytes: Vec<u8>,
}

impl InlineBlob {
    /// Reads exactly `size` bytes from `reader` and checks them against `sha256`; nothing is
    /// written anywhere.
    pub async fn receive<R: AsyncRead + Unpin>(
        name: &str,
        reader: &mut R,
        size: u64,
        sha256: &[u8; 32],
    ) -> Result<InlineBlob, ReceiveError> {
        let size = usize::try_from(size).ok().filter(|&s| s <= MAX_INLINE_BYTES).ok_or_else(|| {
            StoreError::Io(std::io::Error::other(format!("attachment {name:?}: too large to keep in the database")))
        })?;
        Ok(InlineBlob { sha256: *sha256, bytes: read_checked(name, reader, size, sha256).await? })
    }
}

/// A received attachment: durable in a file waiting to be moved into the store, or in memory
/// waiting for its document's transaction.
#[derive(Debug)]
pub enum Received {
    /// A file (see [`PendingBlob`]).
    File(PendingBlob),
    /// Bytes for `inline_blobs`.
    Inline(InlineBlob),
}

impl Received {
    /// Moves the files into the store (see [`PendingBlob::commit_all`]) and hands back the
    /// attachments kept in the database, which the document's transaction must insert
    /// ([`super::NewDocument::inline`]) for the document to have its bytes.
    pub async fn commit_files(received: Vec<Received>) -> Result<Vec<InlineBlob>, StoreError> {
        let (mut files, mut inline) = (Vec::new(), Vec::new());
        for r in received {
            match r {
                Received::File(f) => files.push(f),
                Received::Inline(i) => inline.push(i),
            }
        }
        PendingBlob::commit_all(files).await?;
        Ok(inline)
    }
}

/// A stored attachment: its manifest entry and, when it is kept in the database, its bytes.
#[derive(Debug, Clone)]
pub struct StoredAttachment {
    /// As the manifest lists it.
    pub attachment: Attachment,
    /// Shared, so that each attempt to send it reads it without a copy.
    inline: Option<Arc<[u8]>>,
}

impl StoredAttachment {
    pub(crate) fn new(attachment: Attachment, inline: Option<Vec<u8>>) -> StoredAttachment {
        StoredAttachment { attachment, inline: inline.map(Arc::from) }
    }

    /// The attachments of a document just taken, in manifest order, as
    /// [`super::Store::attachments`] reads them back: with their bytes those its transaction
    /// wrote to the database (`inline`), the others from their files.
    pub(crate) fn just_taken(attachments: &[Attachment], inline: &[InlineBlob]) -> Vec<StoredAttachment> {
        attachments
            .iter()
            .map(|a| StoredAttachment {
                attachment: a.clone(),
                inline: inline.iter().find(|b| b.sha256 == a.sha256).map(|b| Arc::from(b.bytes.as_slice())),
            })
            .collect()
    }

    /// How many bytes of it are held in memory (those kept in the database; a file's none).
    pub fn inline_len(&self) -> usize {
        self.inline.as_ref().map_or(0, |b| b.len())
    }

    /// True when the bytes are in the database rather than in a file.
    pub fn is_inline(&self) -> bool {
        self.inline.is_some()
    }
}

/// A stored attachment's bytes from an offset on, from the database or from its file.
pub type AttachmentReader = Either<Cursor<Arc<[u8]>>, BufReader<Take<DropBehind>>>;

/// How many bytes read from a stored file before the pages that held them are let go.
const DROP_BEHIND_EVERY: u64 = 8 << 20;

/// A stored attachment's file read once, front to back, to be sent: the pages behind the
/// reader are dropped from the page cache (`POSIX_FADV_DONTNEED`) every
/// [`DROP_BEHIND_EVERY`] bytes, so the next reads land in the pages just freed instead of
/// taking new ones. Caching a file nobody reads twice buys nothing, and taking new pages costs:
/// on the 2-vCPU benchmark VM, reading a GiB into never-touched pages took 1.6–2.3 s of CPU
/// against 0.2 s read direct (`dd`). Advice that fails changes nothing but the cost.
pub struct DropBehind {
    file: tokio::fs::File,
    /// The first byte not yet let go, and the next byte to be read.
    dropped: u64,
    at: u64,
}

impl DropBehind {
    fn new(file: tokio::fs::File, offset: u64) -> DropBehind {
        DropBehind { file, dropped: offset, at: offset }
    }
}

impl AsyncRead for DropBehind {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.file).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = polled {
            self.at += (buf.filled().len() - before) as u64;
            if self.at - self.dropped >= DROP_BEHIND_EVERY {
                let (from, len) = (self.dropped, std::num::NonZeroU64::new(self.at - self.dropped));
                // On a blocking thread: dropping pages may wait for every CPU to drain its
                // page lists.
                use std::os::fd::AsFd;
                if let Ok(fd) = self.file.as_fd().try_clone_to_owned() {
                    tokio::task::spawn_blocking(move || {
                        let _ = rustix::fs::fadvise(&fd, from, len, rustix::fs::Advice::DontNeed);
                    });
                }
                self.dropped = self.at;
            }
        }
        polled
    }
}

impl BlobStore {
    /// Reads the stored attachment `a` from byte `offset` on (where a next hop that kept part
    /// of an interrupted transfer continues), a file through a buffer of `buffer` bytes.
    pub async fn reader(
        &self,
        a: &StoredAttachment,
        offset: u64,
        buffer: usize,
    ) -> Result<AttachmentReader, StoreError> {
        let size = a.attachment.size;
        if offset > size {
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("attachment {:?} read from byte {offset}, past its {size} bytes", a.attachment.name),
            )));
        }
        if let Some(bytes) = &a.inline {
            // A row of another length would shift every byte sent after it.
            if bytes.len() as u64 != size {
                return Err(StoreError::Corrupt(format!(
                    "attachment {:?}: {} bytes kept in the database, {size} in its manifest",
                    a.attachment.name,
                    bytes.len()
                )));
            }
            let mut cursor = Cursor::new(Arc::clone(bytes));
            cursor.set_position(offset);
            return Ok(Either::Left(cursor));
        }
        use tokio::io::AsyncSeekExt;
        let mut file = self.open_blob(&a.attachment.sha256).await?;
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        Ok(Either::Right(BufReader::with_capacity(buffer, DropBehind::new(file, offset).take(size - offset))))
    }
}

impl super::Store {
    /// Whether the bytes of the attachment with this hash are stored, in the database or as a
    /// file: what a refusal must not leave behind.
    pub async fn has_attachment_bytes(&self, sha256: &[u8; 32]) -> Result<bool, StoreError> {
        let inline: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inline_blobs WHERE sha256 = $1")
            .bind(sha256.to_vec())
            .fetch_one(self.pool())
            .await?;
        Ok(inline > 0 || self.blobs().contains(sha256))
    }
}

impl Tx<'_> {
    /// Keeps the bytes of a document's small attachments (one statement, sent with the
    /// transaction's next, see `Tx::defer`; an attachment already kept, by another document,
    /// is kept once). In hash order, each once: two
    /// transactions inserting the same attachments wait for each other in one order, never
    /// in a cycle (PostgreSQL would end one of them as a deadlock).
    /// Several documents' attachments go in one call, so that their order is one.
    pub(crate) async fn insert_inline<'b>(
        &mut self,
        blobs: impl IntoIterator<Item = &'b InlineBlob>,
    ) -> Result<(), StoreError> {
        let mut blobs: Vec<&InlineBlob> = blobs.into_iter().collect();
        blobs.sort_by_key(|b| b.sha256);
        blobs.dedup_by_key(|b| b.sha256);
        for chunk in blobs.chunks(rows_per_statement(2, 0)) {
            let sql = format!(
                "INSERT INTO inline_blobs (sha256, bytes) VALUES {} ON CONFLICT (sha256) DO NOTHING",
                unshared_values(self.backend, "({}, {})", chunk.len())
            );
            let mut args = Vec::with_capacity(2 * chunk.len());
            for b in chunk {
                args.extend([Arg::from(b.sha256.to_vec()), Arg::from(b.bytes.to_vec())]);
            }
            self.defer(&sql, args).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    fn stored(bytes: &[u8], size: u64) -> StoredAttachment {
        let attachment = Attachment {
            name: "cv.pdf".into(),
            media_type: "application/pdf".into(),
            size,
            sha256: pki::sha256(bytes),
        };
        StoredAttachment::new(attachment, Some(bytes.to_vec()))
    }

    #[tokio::test]
    async fn an_inline_attachment_reads_from_an_offset_and_a_row_of_another_length_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let a = stored(b"0123456789", 10);
        for (offset, rest) in [(0, &b"0123456789"[..]), (4, b"456789"), (10, b"")] {
            let mut read = Vec::new();
            blobs.reader(&a, offset, 4).await.unwrap().read_to_end(&mut read).await.unwrap();
            assert_eq!(read, rest, "from {offset}");
        }
        assert!(blobs.reader(&a, 11, 4).await.is_err(), "past the end");
        // A row longer or shorter than the manifest says would shift what follows it.
        for damaged in [stored(b"0123456789!", 10), stored(b"012345678", 10)] {
            let error = blobs.reader(&damaged, 0, 4).await.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains("in the database, 10 in its manifest"), "{error}");
        }
    }

    #[tokio::test]
    async fn a_stored_file_reads_whole_from_an_offset_and_lets_go_of_the_pages_behind() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let body: Vec<u8> = (0..(2 * DROP_BEHIND_EVERY + 12_345) as usize).map(|i| (i % 241) as u8).collect();
        let sha256 = pki::sha256(&body);
        blobs
            .receive("plan.pdf", &mut body.as_slice(), body.len() as u64, &sha256)
            .await
            .unwrap()
            .commit()
            .await
            .unwrap();
        let attachment = Attachment {
            name: "plan.pdf".into(),
            media_type: "application/pdf".into(),
            size: body.len() as u64,
            sha256,
        };
        let a = StoredAttachment::new(attachment, None);
        for offset in [0, 3 * 1024 * 1024 + 5] {
            let mut read = Vec::new();
            blobs.reader(&a, offset, 64 * 1024).await.unwrap().read_to_end(&mut read).await.unwrap();
            assert!(read == body[offset as usize..], "from {offset}: {} bytes read", read.len());
        }
        // The advice covers every whole step read (the rest, under a step, stays cached).
        let mut behind = DropBehind::new(blobs.open_blob(&sha256).await.unwrap(), 0);
        let read = behind.read_to_end(&mut Vec::new()).await.unwrap();
        assert_eq!(read, body.len());
        assert!(behind.dropped >= 2 * DROP_BEHIND_EVERY && behind.at == body.len() as u64, "{}", behind.dropped);
    }
}
