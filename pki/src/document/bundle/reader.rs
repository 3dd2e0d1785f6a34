//! Opening a bundle: the container checked byte for byte against the layout, the entries
//! checked against the order the writer produces, the small parts read into memory and the
//! attachments left in the file to be streamed.

use std::io::{self, Read, Seek, SeekFrom, Write};

use super::layout::{self, Entry};
use super::{
    BUNDLE_MEDIA_TYPE, BundleError, BundleLimits, CRL_DIR, ENVELOPE_ENTRY, LOG_PROOF_DIR, MEDIA_TYPE_ENTRY,
    RECEIPT_DIR, crl_entry, log_proof_entry, receipt_entry,
};
use crate::document::cbor::CborLimits;
use crate::document::envelope::Envelope;
use crate::document::manifest::Manifest;

/// An opened bundle: the small parts read into memory, the attachments left in the file to be
/// streamed. Only a bundle in the one canonical layout opens.
pub struct Bundle<R: Read + Seek> {
    reader: R,
    /// The envelope.
    pub envelope: Envelope,
    /// The manifest, decoded from the envelope's payload (not yet verified).
    pub manifest: Manifest,
    /// DER CRLs carried.
    pub crls: Vec<Vec<u8>>,
    /// Receipts carried (COSE bytes).
    pub receipts: Vec<Vec<u8>>,
    /// Transparency-log proofs carried (encoded `crate::tlog::LogProof`s, not yet verified).
    pub log_proofs: Vec<Vec<u8>>,
    /// The attachments' entries, in the manifest's order.
    attachments: Vec<Entry>,
    limits: BundleLimits,
}

impl<R: Read + Seek> std::fmt::Debug for Bundle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle").field("document", &self.manifest.id().to_string()).finish_non_exhaustive()
    }
}

/// Reads a small entry whole, refusing one larger than `max` before reading it, and checks its
/// CRC-32.
fn read_small<R: Read + Seek>(reader: &mut R, entry: &Entry, max: usize) -> Result<Vec<u8>, BundleError> {
    if entry.size > max as u64 {
        return Err(BundleError::Limit(format!("{} is {} bytes, more than {max}", entry.name, entry.size)));
    }
    reader.seek(SeekFrom::Start(entry.data_offset()))?;
    let mut out = Vec::new();
    reader.take(entry.size).read_to_end(&mut out)?;
    if out.len() as u64 != entry.size {
        return Err(BundleError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    if crc32fast::hash(&out) != entry.crc32 {
        return Err(BundleError::Checksum(entry.name.clone()));
    }
    Ok(out)
}

/// Reads the numbered entries under `dir` (`001…`, `002…`) that start at `entries[*next]`;
/// each must have exactly the name `name_of(k)` for the `k`-th, at most `max` of them.
fn read_numbered<R: Read + Seek>(
    reader: &mut R,
    entries: &[Entry],
    next: &mut usize,
    dir: &str,
    name_of: fn(usize) -> String,
    max: usize,
    max_bytes: usize,
) -> Result<Vec<Vec<u8>>, BundleError> {
    let mut out = Vec::new();
    while let Some(e) = entries.get(*next).filter(|e| e.name.starts_with(dir)) {
        let expected = name_of(out.len() + 1);
        if e.name != expected {
            return Err(BundleError::Order { position: *next + 1, found: e.name.clone(), expected });
        }
        if out.len() >= max {
            return Err(BundleError::Limit(format!("more than {max} entries under {dir}")));
        }
        out.push(read_small(reader, e, max_bytes)?);
        *next += 1;
    }
    Ok(out)
}

impl<R: Read + Seek> Bundle<R> {
    /// Opens a bundle from untrusted input, checking its container against the one layout and
    /// its size against `limits`. Memory stays bounded: the central directory is bounded by
    /// `limits`, the envelope, CRLs, receipts and log proofs by their own size limits, and attachments are
    /// not read until [`Bundle::copy_attachment`].
    pub fn open(mut reader: R, limits: BundleLimits) -> Result<Self, BundleError> {
        let entries = layout::read_directory(&mut reader, limits.max_entries())?;

        // 1. `mimetype`, holding the media type.
        let first = entries
            .first()
            .filter(|e| e.name == MEDIA_TYPE_ENTRY && e.size == BUNDLE_MEDIA_TYPE.len() as u64)
            .ok_or(BundleError::MediaType)?;
        if read_small(&mut reader, first, BUNDLE_MEDIA_TYPE.len())? != BUNDLE_MEDIA_TYPE.as_bytes() {
            return Err(BundleError::MediaType);
        }
        // 2. The envelope.
        let Some(envelope_entry) = entries.get(1).filter(|e| e.name == ENVELOPE_ENTRY) else {
            return Err(match (entries.get(1), entries.iter().any(|e| e.name == ENVELOPE_ENTRY)) {
                (Some(found), true) => {
                    BundleError::Order { position: 2, found: found.name.clone(), expected: ENVELOPE_ENTRY.into() }
                }
                _ => BundleError::NoEnvelope,
            });
        };
        let envelope = read_small(&mut reader, envelope_entry, CborLimits::ENVELOPE.max_bytes)?;
        let envelope = Envelope::from_bytes(&envelope)?;
        let manifest = envelope.manifest()?;
        // 3. CRLs, then 4. receipts, then 5. log proofs, each numbered from 001.
        let mut next = 2;
        let crls = read_numbered(
            &mut reader,
            &entries,
            &mut next,
            CRL_DIR,
            crl_entry,
            limits.max_crls,
            crate::crl::MAX_CRL_LEN,
        )?;
        let receipts = read_numbered(
            &mut reader,
            &entries,
            &mut next,
            RECEIPT_DIR,
            receipt_entry,
            limits.max_receipts,
            CborLimits::SIGNED_RECEIPT.max_bytes,
        )?;
        let log_proofs = read_numbered(
            &mut reader,
            &entries,
            &mut next,
            LOG_PROOF_DIR,
            log_proof_entry,
            limits.max_log_proofs,
            crate::tlog::MAX_LOG_PROOF_BYTES,
        )?;
        // 6. The attachments, exactly the manifest's, in its order.
        let rest = &entries[next..];
        for (i, e) in rest.iter().enumerate() {
            let position = next + i + 1;
            let declared = manifest.attachments.get(i);
            if declared.is_some_and(|d| d.name == e.name) {
                continue;
            }
            // An entry the bundle may hold, in the wrong place, or one it may not hold at all.
            let belongs = manifest.attachments.iter().any(|a| a.name == e.name)
                || e.name == ENVELOPE_ENTRY
                || e.name.strip_prefix(CRL_DIR).is_some_and(|n| n.ends_with(".crl"))
                || e.name.strip_prefix(RECEIPT_DIR).is_some_and(|n| n.ends_with(".cose"))
                || e.name.strip_prefix(LOG_PROOF_DIR).is_some_and(|n| n.ends_with(".proof"));
            if !belongs {
                return Err(BundleError::Unexpected(e.name.clone()));
            }
            let expected = match declared {
                Some(d) => format!("the attachment {:?}", d.name),
                None => format!("nothing (the manifest names {} attachments)", manifest.attachments.len()),
            };
            return Err(BundleError::Order { position, found: e.name.clone(), expected });
        }
        if let Some(missing) = manifest.attachments.get(rest.len()) {
            return Err(BundleError::MissingAttachment(missing.name.clone()));
        }
        let total: u64 = manifest.attachments.iter().map(|a| a.size).sum();
        if total > limits.max_total_bytes {
            return Err(BundleError::Limit(format!(
                "attachments total {total} bytes, more than {}",
                limits.max_total_bytes
            )));
        }
        let attachments = rest.to_vec();
        Ok(Bundle { reader, envelope, manifest, crls, receipts, log_proofs, attachments, limits })
    }

    /// Streams the attachment `name` into `out`, verifying its size, hash and ZIP checksum as
    /// it goes. On a mismatch, `out` has received bytes that must be discarded.
    pub fn copy_attachment(&mut self, name: &str, out: &mut dyn Write) -> Result<u64, BundleError> {
        let index = self
            .manifest
            .attachments
            .iter()
            .position(|a| a.name == name)
            .ok_or_else(|| BundleError::Unexpected(name.to_owned()))?;
        let declared = &self.manifest.attachments[index];
        if declared.size > self.limits.max_attachment_bytes {
            return Err(BundleError::Limit(format!(
                "attachment {name:?} is {} bytes, more than {}",
                declared.size, self.limits.max_attachment_bytes
            )));
        }
        let entry = self.attachments.get(index).ok_or_else(|| BundleError::MissingAttachment(name.to_owned()))?;
        if entry.size != declared.size {
            return Err(BundleError::AttachmentSize {
                name: name.to_owned(),
                declared: declared.size,
                actual: entry.size,
            });
        }
        self.reader.seek(SeekFrom::Start(entry.data_offset()))?;
        let mut sha256 = ring::digest::Context::new(&ring::digest::SHA256);
        let mut crc = crc32fast::Hasher::new();
        let mut source = (&mut self.reader).take(entry.size);
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = source.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n as u64;
            sha256.update(&buf[..n]);
            crc.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
        if total != entry.size {
            return Err(BundleError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        if sha256.finish().as_ref() != declared.sha256 {
            return Err(BundleError::AttachmentHash(name.to_owned()));
        }
        if crc.finalize() != entry.crc32 {
            return Err(BundleError::Checksum(name.to_owned()));
        }
        Ok(total)
    }

    /// Verifies every attachment's presence, size and hash without keeping the bytes.
    pub fn check_attachments(&mut self) -> Result<(), BundleError> {
        let names: Vec<String> = self.manifest.attachments.iter().map(|a| a.name.clone()).collect();
        for name in names {
            self.copy_attachment(&name, &mut io::sink())?;
        }
        Ok(())
    }
}
