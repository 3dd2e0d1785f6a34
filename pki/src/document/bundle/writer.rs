//! Writing a bundle: the one layout, with attachments checked against the manifest as they
//! stream in. Every name and limit is checked before the first byte is written.

use std::io::{self, Seek, SeekFrom, Write};

use super::LayoutError;
use super::layout::{self, LOCAL_CRC_OFFSET};
use super::{
    BUNDLE_MEDIA_TYPE, BundleError, BundleLimits, Carried, ENVELOPE_ENTRY, MEDIA_TYPE_ENTRY, crl_entry,
    log_proof_entry, names, receipt_entry,
};
use crate::document::cbor::CborLimits;
use crate::document::envelope::Envelope;
use crate::document::manifest::Attachment;

/// Writes a bundle within the default [`BundleLimits`]: the envelope, the CRLs, the receipts
/// and the attachments. `attachment` is called once per attachment of the manifest, in its
/// order, to write its bytes; they are checked against the manifest's size and SHA-256 as they
/// stream, and a mismatch aborts the bundle (the output is then incomplete and must be
/// discarded).
pub fn write_bundle<W: Write + Seek>(
    out: W,
    envelope: &Envelope,
    crls: &[Vec<u8>],
    receipts: &[Vec<u8>],
    attachment: impl FnMut(&Attachment, &mut dyn Write) -> Result<(), BundleError>,
) -> Result<W, BundleError> {
    write_bundle_carrying(
        out,
        BundleLimits::default(),
        envelope,
        Carried { crls, receipts, log_proofs: &[] },
        attachment,
    )
}

/// [`write_bundle`] with everything a bundle may carry (log proofs too), within `limits`: it
/// refuses to write what [`super::Bundle::open`] with the same limits would refuse to read,
/// so every bundle it writes opens.
pub fn write_bundle_carrying<W: Write + Seek>(
    out: W,
    limits: BundleLimits,
    envelope: &Envelope,
    carried: Carried<'_>,
    mut attachment: impl FnMut(&Attachment, &mut dyn Write) -> Result<(), BundleError>,
) -> Result<W, BundleError> {
    let Carried { crls, receipts, log_proofs } = carried;
    let manifest = envelope.manifest()?;
    check_sizes(&limits, envelope, &carried, &manifest.attachments)?;
    let mut names: Vec<String> = vec![MEDIA_TYPE_ENTRY.into(), ENVELOPE_ENTRY.into()];
    names.extend((1..=crls.len()).map(crl_entry));
    names.extend((1..=receipts.len()).map(receipt_entry));
    names.extend((1..=log_proofs.len()).map(log_proof_entry));
    names.extend(manifest.attachments.iter().map(|a| a.name.clone()));
    for name in &names {
        names::check_entry_name(name).map_err(|rule| LayoutError::Name { entry: name.clone(), rule })?;
    }
    layout::check_unique(names.iter().map(String::as_str))?;

    let mut zip = ZipOut::new(out)?;
    zip.small(MEDIA_TYPE_ENTRY, BUNDLE_MEDIA_TYPE.as_bytes())?;
    zip.small(ENVELOPE_ENTRY, envelope.as_bytes())?;
    for (i, crl) in crls.iter().enumerate() {
        zip.small(&crl_entry(i + 1), crl)?;
    }
    for (i, receipt) in receipts.iter().enumerate() {
        zip.small(&receipt_entry(i + 1), receipt)?;
    }
    for (i, proof) in log_proofs.iter().enumerate() {
        zip.small(&log_proof_entry(i + 1), proof)?;
    }
    for declared in &manifest.attachments {
        zip.attachment(declared, &mut attachment)?;
    }
    zip.finish()
}

/// Refuses, before anything is written, parts the reader would refuse.
fn check_sizes(
    limits: &BundleLimits,
    envelope: &Envelope,
    carried: &Carried<'_>,
    attachments: &[Attachment],
) -> Result<(), BundleError> {
    let Carried { crls, receipts, log_proofs } = *carried;
    let too_big = |what: &str, len: usize, max: usize| {
        if len > max { Err(BundleError::Limit(format!("{what} is {len} bytes, more than {max}"))) } else { Ok(()) }
    };
    too_big(ENVELOPE_ENTRY, envelope.as_bytes().len(), CborLimits::ENVELOPE.max_bytes)?;
    let count = |what: &str, len: usize, max: usize| {
        if len > max { Err(BundleError::Limit(format!("{len} {what}, more than {max}"))) } else { Ok(()) }
    };
    count("CRLs", crls.len(), limits.max_crls)?;
    count("receipts", receipts.len(), limits.max_receipts)?;
    count("log proofs", log_proofs.len(), limits.max_log_proofs)?;
    for (i, crl) in crls.iter().enumerate() {
        too_big(&crl_entry(i + 1), crl.len(), crate::crl::MAX_CRL_LEN)?;
    }
    for (i, receipt) in receipts.iter().enumerate() {
        too_big(&receipt_entry(i + 1), receipt.len(), CborLimits::SIGNED_RECEIPT.max_bytes)?;
    }
    for (i, proof) in log_proofs.iter().enumerate() {
        too_big(&log_proof_entry(i + 1), proof.len(), crate::tlog::MAX_LOG_PROOF_BYTES)?;
    }
    for a in attachments {
        if a.size > limits.max_attachment_bytes {
            return Err(BundleError::Limit(format!(
                "attachment {:?} is {} bytes, more than {}",
                a.name, a.size, limits.max_attachment_bytes
            )));
        }
    }
    let total: u64 = attachments.iter().map(|a| a.size).sum();
    if total > limits.max_total_bytes {
        return Err(BundleError::Limit(format!(
            "attachments total {total} bytes, more than {}",
            limits.max_total_bytes
        )));
    }
    Ok(())
}

/// The ZIP being written: local records go straight out, central headers are collected and
/// written at the end.
struct ZipOut<W: Write + Seek> {
    out: W,
    /// Where the bundle starts in `out`: offsets in the ZIP are relative to it.
    start: u64,
    /// Bytes written so far.
    offset: u64,
    directory: Vec<u8>,
    entries: usize,
}

impl<W: Write + Seek> ZipOut<W> {
    fn new(mut out: W) -> Result<Self, BundleError> {
        let start = out.stream_position()?;
        Ok(ZipOut { out, start, offset: 0, directory: Vec::new(), entries: 0 })
    }

    /// Writes a local header for `size` bytes (checking that the record fits the layout) and
    /// returns the header's offset.
    fn header(&mut self, name: &str, crc32: u32, size: u64) -> Result<u32, BundleError> {
        let header_offset = layout::fit(self.offset, name)?;
        let size32 = layout::fit(size, name)?;
        let header = layout::local_header(name, crc32, size32)?;
        layout::fit(self.offset + header.len() as u64 + size, name)?;
        self.out.write_all(&header)?;
        self.offset += header.len() as u64;
        Ok(header_offset)
    }

    fn central(&mut self, name: &str, crc32: u32, size: u64, header_offset: u32) -> Result<(), BundleError> {
        layout::central_header(&mut self.directory, name, crc32, layout::fit(size, name)?, header_offset)?;
        self.entries += 1;
        Ok(())
    }

    /// An entry whose bytes are in memory.
    fn small(&mut self, name: &str, data: &[u8]) -> Result<(), BundleError> {
        let crc32 = crc32fast::hash(data);
        let header_offset = self.header(name, crc32, data.len() as u64)?;
        self.out.write_all(data)?;
        self.offset += data.len() as u64;
        self.central(name, crc32, data.len() as u64, header_offset)
    }

    /// An attachment, streamed by `fill` and checked against `declared`; its CRC-32 is written
    /// into the local header once the data has passed.
    fn attachment(
        &mut self,
        declared: &Attachment,
        fill: &mut impl FnMut(&Attachment, &mut dyn Write) -> Result<(), BundleError>,
    ) -> Result<(), BundleError> {
        let header_offset = self.header(&declared.name, 0, declared.size)?;
        let mut checked = Checked {
            inner: &mut self.out,
            sha256: ring::digest::Context::new(&ring::digest::SHA256),
            crc: crc32fast::Hasher::new(),
            written: 0,
            limit: declared.size,
        };
        match fill(declared, &mut checked) {
            Ok(()) => {}
            Err(BundleError::Io(e)) if e.kind() == io::ErrorKind::FileTooLarge => {
                return Err(BundleError::AttachmentTooLong { name: declared.name.clone(), declared: declared.size });
            }
            Err(e) => return Err(e),
        }
        let (written, sha256, crc32) = (checked.written, checked.sha256.finish(), checked.crc.finalize());
        if written != declared.size {
            return Err(BundleError::AttachmentSize {
                name: declared.name.clone(),
                declared: declared.size,
                actual: written,
            });
        }
        if sha256.as_ref() != declared.sha256 {
            return Err(BundleError::AttachmentHash(declared.name.clone()));
        }
        self.offset += written;
        let end = self.start + self.offset;
        self.out.seek(SeekFrom::Start(self.start + u64::from(header_offset) + LOCAL_CRC_OFFSET))?;
        self.out.write_all(&crc32.to_le_bytes())?;
        self.out.seek(SeekFrom::Start(end))?;
        self.central(&declared.name, crc32, written, header_offset)
    }

    /// Writes the central directory and the end record.
    fn finish(mut self) -> Result<W, BundleError> {
        let directory_offset = layout::fit(self.offset, "the central directory")?;
        let directory_size = layout::fit(self.directory.len() as u64, "the central directory")?;
        layout::fit(self.offset + self.directory.len() as u64, "the end record")?;
        let end = layout::end_record(self.entries, directory_size, directory_offset)?;
        self.out.write_all(&self.directory)?;
        self.out.write_all(&end)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A writer that counts and hashes what passes through and refuses to pass more than its
/// limit: how attachments are checked against the manifest while they stream into a bundle.
struct Checked<'a> {
    inner: &'a mut dyn Write,
    sha256: ring::digest::Context,
    crc: crc32fast::Hasher,
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
        self.sha256.update(&buf[..n]);
        self.crc.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
