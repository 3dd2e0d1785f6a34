//! The bundle: one self-contained file a verifier can be sent, in the spirit of ETSI ASiC-E.
//!
//! A ZIP container whose first entry is `mimetype` (stored, so `file` and other tools can
//! recognise it), the envelope and the CRLs and receipts that make it verifiable offline under
//! `META-INF/`, and the attachments at the top level under their own names, so any ZIP tool
//! opens them. Entries are stored uncompressed: attachments are usually PDFs that do not
//! compress, and a reader that never inflates cannot be hit by a decompression bomb.
//!
//! ```text
//! mimetype                       application/vnd.lienthong.bundle+zip
//! META-INF/envelope.cose         the COSE_Sign envelope
//! META-INF/crl/001.crl ...       DER CRLs used to verify the signers
//! META-INF/receipts/001.cose ... signed receipts, as they are collected
//! Công văn 123.pdf ...           the attachments named in the manifest
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Seek, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::envelope::{Envelope, EnvelopeError};
use super::manifest::{Manifest, ManifestError};

/// The `mimetype` entry's content.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.lienthong.bundle+zip";
/// Conventional file extension of a bundle.
pub const BUNDLE_EXTENSION: &str = "ltd";
const ENVELOPE_ENTRY: &str = "META-INF/envelope.cose";
const CRL_DIR: &str = "META-INF/crl/";
const RECEIPT_DIR: &str = "META-INF/receipts/";

/// Bounds on reading a bundle. Every default is explicit and has a reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleLimits {
    /// Largest single attachment. 256 MiB holds a scanned dossier of several hundred pages.
    pub max_attachment_bytes: u64,
    /// Largest sum of attachments. 1 GiB.
    pub max_total_bytes: u64,
    /// Most CRLs carried (one per CA on two signers' paths is 6; 64 leaves room for history).
    pub max_crls: usize,
    /// Most receipts carried (hop, delivery and status receipts of up to 200 recipients).
    pub max_receipts: usize,
}

impl Default for BundleLimits {
    fn default() -> Self {
        BundleLimits {
            max_attachment_bytes: 256 * 1024 * 1024,
            max_total_bytes: 1024 * 1024 * 1024,
            max_crls: 64,
            max_receipts: 4096,
        }
    }
}

/// Why a bundle cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The ZIP container is unreadable.
    #[error("not a lienthong bundle (ZIP): {0}")]
    Zip(String),
    /// I/O failed.
    #[error("bundle I/O: {0}")]
    Io(#[from] io::Error),
    /// `mimetype` missing, not first, or wrong.
    #[error("not a lienthong bundle: the first entry must be `mimetype` holding {BUNDLE_MEDIA_TYPE}")]
    MediaType,
    /// An entry is compressed, encrypted, a directory or a link.
    #[error("bundle entry {0:?} is compressed, encrypted, a directory or a link; lienthong bundles store plain files")]
    EntryKind(String),
    /// An entry that has no place in a bundle.
    #[error("bundle has an unexpected entry {0:?} (not an attachment named in the manifest)")]
    Unexpected(String),
    /// An entry's bytes do not match its ZIP checksum.
    #[error("bundle entry {0:?} is damaged or altered (its checksum does not match)")]
    Checksum(String),
    /// An entry appears twice.
    #[error("bundle has the entry {0:?} twice")]
    Duplicate(String),
    /// A limit is exceeded.
    #[error("bundle exceeds a limit: {0}")]
    Limit(String),
    /// No envelope.
    #[error("bundle has no {ENVELOPE_ENTRY}")]
    NoEnvelope,
    /// The envelope is refused.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The manifest is refused.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// An attachment named in the manifest is absent.
    #[error("attachment {0:?} named in the manifest is missing from the bundle")]
    MissingAttachment(String),
    /// An attachment's size differs from the manifest.
    #[error("attachment {name:?} is {actual} bytes, the manifest says {declared}")]
    AttachmentSize {
        /// Its name.
        name: String,
        /// What the manifest says.
        declared: u64,
        /// What it is.
        actual: u64,
    },
    /// An attachment is longer than the manifest says (reading stopped there, so its full
    /// size is not known).
    #[error("attachment {name:?} is longer than the {declared} bytes the manifest says")]
    AttachmentTooLong {
        /// Its name.
        name: String,
        /// What the manifest says.
        declared: u64,
    },
    /// An attachment's hash differs from the manifest.
    #[error("attachment {0:?} does not match its SHA-256 in the manifest (altered)")]
    AttachmentHash(String),
    /// A CRL carried in the bundle is unreadable.
    #[error("CRL #{index} in the bundle is unreadable: {error}")]
    Crl {
        /// Its position, from 1.
        index: usize,
        /// Why.
        error: crate::crl::CrlParseError,
    },
}

fn zip_err(e: zip::result::ZipError) -> BundleError {
    match e {
        zip::result::ZipError::Io(io) => BundleError::Io(io),
        other => BundleError::Zip(other.to_string()),
    }
}

fn stored() -> SimpleFileOptions {
    // Fixed timestamps keep bundles byte-for-byte reproducible, and pki reads no clock.
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default())
        .large_file(false)
}

/// Why a streamed copy stopped.
enum CopyError {
    /// More bytes came than the limit.
    TooLong,
    /// The source or sink failed (a ZIP entry whose CRC does not match reads as InvalidData).
    Io(io::Error),
}

/// Copies `reader` into `out` while hashing, failing as soon as more than `limit` bytes come;
/// returns (size, sha256).
fn copy_hashed(reader: &mut dyn Read, out: &mut dyn Write, limit: u64) -> Result<(u64, [u8; 32]), CopyError> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(CopyError::Io)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > limit {
            return Err(CopyError::TooLong);
        }
        ctx.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(CopyError::Io)?;
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(ctx.finish().as_ref());
    Ok((total, hash))
}

/// Turns a failed copy of attachment `name` into the error a user can act on.
fn copy_failure(name: &str, declared: u64, e: CopyError) -> BundleError {
    match e {
        CopyError::TooLong => BundleError::AttachmentTooLong { name: name.to_owned(), declared },
        // The ZIP reader's CRC check fails on altered bytes before our hash does.
        CopyError::Io(e) if e.kind() == io::ErrorKind::InvalidData => BundleError::AttachmentHash(name.to_owned()),
        CopyError::Io(e) => BundleError::Io(e),
    }
}

/// A writer that counts and hashes what passes through and refuses to pass more than its
/// limit: how attachments are checked against the manifest while they stream into a bundle.
struct Checked<'a> {
    inner: &'a mut dyn Write,
    ctx: ring::digest::Context,
    written: u64,
    limit: u64,
}

impl Write for Checked<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("more than the declared {} bytes", self.limit),
            ));
        }
        let n = self.inner.write(buf)?;
        self.ctx.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a bundle: the envelope, the CRLs, the receipts and the attachments. `attachment` is
/// called once per attachment of the manifest to write its bytes; they are checked against the
/// manifest's size and SHA-256 as they stream, and a mismatch aborts the bundle.
pub fn write_bundle<W: Write + Seek>(
    out: W,
    envelope: &Envelope,
    crls: &[Vec<u8>],
    receipts: &[Vec<u8>],
    mut attachment: impl FnMut(&super::manifest::Attachment, &mut dyn Write) -> Result<(), BundleError>,
) -> Result<W, BundleError> {
    let manifest = envelope.manifest()?;
    let mut zip = ZipWriter::new(out);
    zip.start_file("mimetype", stored()).map_err(zip_err)?;
    zip.write_all(BUNDLE_MEDIA_TYPE.as_bytes())?;
    zip.start_file(ENVELOPE_ENTRY, stored()).map_err(zip_err)?;
    zip.write_all(envelope.as_bytes())?;
    for (i, crl) in crls.iter().enumerate() {
        zip.start_file(format!("{CRL_DIR}{:03}.crl", i + 1), stored()).map_err(zip_err)?;
        zip.write_all(crl)?;
    }
    for (i, receipt) in receipts.iter().enumerate() {
        zip.start_file(format!("{RECEIPT_DIR}{:03}.cose", i + 1), stored()).map_err(zip_err)?;
        zip.write_all(receipt)?;
    }
    for declared in &manifest.attachments {
        let options = stored().large_file(declared.size >= u64::from(u32::MAX));
        zip.start_file(declared.name.as_str(), options).map_err(zip_err)?;
        let mut checked = Checked {
            inner: &mut zip,
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            written: 0,
            limit: declared.size,
        };
        match attachment(declared, &mut checked) {
            Ok(()) => {}
            Err(BundleError::Io(e)) if e.kind() == io::ErrorKind::FileTooLarge => {
                return Err(BundleError::AttachmentTooLong { name: declared.name.clone(), declared: declared.size });
            }
            Err(e) => return Err(e),
        }
        let written = checked.written;
        let hash = checked.ctx.finish();
        if written != declared.size {
            return Err(BundleError::AttachmentSize {
                name: declared.name.clone(),
                declared: declared.size,
                actual: written,
            });
        }
        if hash.as_ref() != declared.sha256 {
            return Err(BundleError::AttachmentHash(declared.name.clone()));
        }
    }
    zip.finish().map_err(zip_err)
}

/// An opened bundle: the small parts read into memory, the attachments left in the archive to
/// be streamed.
pub struct Bundle<R: Read + Seek> {
    archive: ZipArchive<R>,
    /// The envelope.
    pub envelope: Envelope,
    /// The manifest, decoded from the envelope's payload (not yet verified).
    pub manifest: Manifest,
    /// DER CRLs carried.
    pub crls: Vec<Vec<u8>>,
    /// Receipts carried (COSE bytes).
    pub receipts: Vec<Vec<u8>>,
    attachment_index: BTreeMap<String, usize>,
    limits: BundleLimits,
}

impl<R: Read + Seek> std::fmt::Debug for Bundle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle").field("document", &self.manifest.id().to_string()).finish_non_exhaustive()
    }
}

fn read_small<R: Read>(entry: &mut R, name: &str, max: u64) -> Result<Vec<u8>, BundleError> {
    let mut out = Vec::new();
    entry.take(max + 1).read_to_end(&mut out).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData => BundleError::Checksum(name.to_owned()),
        _ => BundleError::Io(e),
    })?;
    if out.len() as u64 > max {
        return Err(BundleError::Limit(format!("{name} is larger than {max} bytes")));
    }
    Ok(out)
}

impl<R: Read + Seek> Bundle<R> {
    /// Opens a bundle from untrusted input, checking its structure against `limits`.
    pub fn open(reader: R, limits: BundleLimits) -> Result<Self, BundleError> {
        let mut archive = ZipArchive::new(reader).map_err(zip_err)?;
        let max_entries = 2 + super::manifest::MAX_ATTACHMENTS + limits.max_crls + limits.max_receipts;
        if archive.len() > max_entries {
            return Err(BundleError::Limit(format!("{} entries, more than {max_entries}", archive.len())));
        }
        let mut names = BTreeSet::new();
        let mut envelope = None;
        let mut crls = Vec::new();
        let mut receipts = Vec::new();
        let mut attachment_index = BTreeMap::new();
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).map_err(zip_err)?;
            let name = entry.name().map_err(zip_err)?.into_owned();
            if entry.is_dir()
                || entry.is_symlink()
                || entry.encrypted()
                || entry.compression() != CompressionMethod::Stored
            {
                return Err(BundleError::EntryKind(name));
            }
            if !names.insert(name.clone()) {
                return Err(BundleError::Duplicate(name));
            }
            if i == 0 {
                let media = read_small(&mut entry, "mimetype", 128)?;
                if name != "mimetype" || media != BUNDLE_MEDIA_TYPE.as_bytes() {
                    return Err(BundleError::MediaType);
                }
                continue;
            }
            if name == ENVELOPE_ENTRY {
                envelope = Some(read_small(&mut entry, &name, super::cbor::CborLimits::ENVELOPE.max_bytes as u64)?);
            } else if let Some(rest) = name.strip_prefix(CRL_DIR) {
                if rest.contains('/') || crls.len() >= limits.max_crls {
                    return Err(BundleError::Unexpected(name));
                }
                crls.push(read_small(&mut entry, &name, crate::crl::MAX_CRL_LEN as u64)?);
            } else if let Some(rest) = name.strip_prefix(RECEIPT_DIR) {
                if rest.contains('/') || receipts.len() >= limits.max_receipts {
                    return Err(BundleError::Unexpected(name));
                }
                receipts.push(read_small(&mut entry, &name, super::cbor::CborLimits::SIGNED_RECEIPT.max_bytes as u64)?);
            } else if name.starts_with("META-INF/") {
                return Err(BundleError::Unexpected(name));
            } else {
                attachment_index.insert(name, i);
            }
        }
        let envelope = Envelope::from_bytes(&envelope.ok_or(BundleError::NoEnvelope)?)?;
        let manifest = envelope.manifest()?;
        if let Some(extra) = attachment_index.keys().find(|n| !manifest.attachments.iter().any(|a| &a.name == *n)) {
            return Err(BundleError::Unexpected(extra.clone()));
        }
        let total: u64 = manifest.attachments.iter().map(|a| a.size).sum();
        if total > limits.max_total_bytes {
            return Err(BundleError::Limit(format!(
                "attachments total {total} bytes, more than {}",
                limits.max_total_bytes
            )));
        }
        Ok(Bundle { archive, envelope, manifest, crls, receipts, attachment_index, limits })
    }

    /// Streams the attachment `name` into `out`, verifying its size and hash against the
    /// manifest as it goes. On a mismatch, `out` has received bytes that must be discarded.
    pub fn copy_attachment(&mut self, name: &str, out: &mut dyn Write) -> Result<u64, BundleError> {
        let declared = self
            .manifest
            .attachments
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| BundleError::Unexpected(name.to_owned()))?
            .clone();
        if declared.size > self.limits.max_attachment_bytes {
            return Err(BundleError::Limit(format!(
                "attachment {name:?} is {} bytes, more than {}",
                declared.size, self.limits.max_attachment_bytes
            )));
        }
        let index = *self.attachment_index.get(name).ok_or_else(|| BundleError::MissingAttachment(name.to_owned()))?;
        let mut entry = self.archive.by_index(index).map_err(zip_err)?;
        if entry.size() != declared.size {
            return Err(BundleError::AttachmentSize {
                name: name.to_owned(),
                declared: declared.size,
                actual: entry.size(),
            });
        }
        let (size, hash) =
            copy_hashed(&mut entry, out, declared.size).map_err(|e| copy_failure(name, declared.size, e))?;
        if size != declared.size {
            return Err(BundleError::AttachmentSize { name: name.to_owned(), declared: declared.size, actual: size });
        }
        if hash != declared.sha256 {
            return Err(BundleError::AttachmentHash(name.to_owned()));
        }
        Ok(size)
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
