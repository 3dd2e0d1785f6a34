//! The bundle layout: the writer's output, byte for byte; every hostile layout built byte by
//! byte and refused with its own error; limits at their edge; a round trip over random
//! bundles; every single-byte change refused.

use std::io::{Cursor, Write};

use proptest::prelude::*;
use time::macros::date;
use unicode_normalization::UnicodeNormalization;

use super::names::NameRule;
use super::*;
use crate::Certificate;
use crate::document::envelope::Envelope;
use crate::document::manifest::{Attachment, Business, DocumentKind, Manifest, Urgency};
use crate::keys::PrivateKey;
use crate::testing::{TestCa, day};

// ---------------------------------------------------------------------------------------------
// Fixtures: a signed envelope, and a ZIP builder that can write any header field.

/// An official's key and chain, made once per test.
struct Signer {
    key: PrivateKey,
    chain: Vec<Certificate>,
}

fn signer() -> Signer {
    let mut root = TestCa::root();
    let mut province = root.sub_ca("000.00.00.H49", "Ủy ban nhân dân tỉnh Quảng Ninh");
    let mut district = province.sub_ca("000.00.41.H49", "Ủy ban nhân dân huyện Tiên Yên");
    let person = district.issue_person("000.01.41.H49", "Nguyễn Văn An", "Chủ tịch", "Ủy ban nhân dân xã Phong Dụ");
    Signer { key: person.key, chain: vec![person.cert, district.cert.clone(), province.cert.clone()] }
}

fn manifest(attachments: &[(&str, &[u8])]) -> Manifest {
    Manifest {
        from: "000.01.41.H49".parse().unwrap(),
        to: vec!["000.01.42.H49".parse().unwrap()],
        number: 123,
        notation: "UBND-VP".into(),
        place: "Phong Dụ".into(),
        date: date!(2026 - 01 - 10),
        kind: DocumentKind::Administrative,
        type_name: "Công văn".into(),
        subject: "Về việc chủ động ứng phó với bão số 3".into(),
        signer_name: "Nguyễn Văn An".into(),
        signer_position: "Chủ tịch".into(),
        due: None,
        urgency: Urgency::Normal,
        steering: 0,
        business: Business::New,
        attachments: attachments
            .iter()
            .map(|(name, data)| Attachment {
                name: (*name).into(),
                media_type: "application/pdf".into(),
                size: data.len() as u64,
                sha256: crate::sha256(data),
            })
            .collect(),
    }
}

fn envelope(s: &Signer, attachments: &[(&str, &[u8])]) -> Envelope {
    Envelope::sign_person(&manifest(attachments).to_cbor().unwrap(), &s.key, &s.chain, day(10)).unwrap()
}

const PDF: &[u8] = b"%PDF-1.7 Cong van so 123 ve viec phong chong bao so 3";
const ANNEX: &[u8] = b"%PDF-1.7 Phu luc: danh sach cac ho dan can di doi";
const PDF_NAME: &str = "Công văn 123.pdf";
const ANNEX_NAME: &str = "Phụ lục.pdf";

/// What a document consists of: the envelope, CRLs, receipts and attachments.
struct Parts {
    envelope: Envelope,
    crls: Vec<Vec<u8>>,
    receipts: Vec<Vec<u8>>,
    log_proofs: Vec<Vec<u8>>,
    attachments: Vec<(String, Vec<u8>)>,
}

/// A document with two CRLs, one receipt and two attachments (the bundle layout reads CRLs and
/// receipts as opaque bytes; verification parses them).
fn parts(s: &Signer) -> Parts {
    Parts {
        envelope: envelope(s, &[(PDF_NAME, PDF), (ANNEX_NAME, ANNEX)]),
        crls: vec![b"crl one".to_vec(), b"crl two".to_vec()],
        receipts: vec![b"receipt one".to_vec()],
        log_proofs: vec![],
        attachments: vec![(PDF_NAME.into(), PDF.to_vec()), (ANNEX_NAME.into(), ANNEX.to_vec())],
    }
}

fn write(p: &Parts) -> Result<Vec<u8>, BundleError> {
    write_with(p, BundleLimits::default())
}

fn write_with(p: &Parts, limits: BundleLimits) -> Result<Vec<u8>, BundleError> {
    let fill = |a: &Attachment, w: &mut dyn Write| {
        let (_, data) =
            p.attachments.iter().find(|(n, _)| *n == a.name).ok_or(BundleError::Unexpected(a.name.clone()))?;
        w.write_all(data).map_err(BundleError::Io)
    };
    let carried = Carried { crls: &p.crls, receipts: &p.receipts, log_proofs: &p.log_proofs };
    Ok(write_bundle_carrying(Cursor::new(Vec::new()), limits, &p.envelope, carried, fill)?.into_inner())
}

/// One entry as the test writes it: every field of both headers can be set on its own.
#[derive(Clone, Debug)]
pub(crate) struct Raw {
    name: Vec<u8>,
    local_name: Vec<u8>,
    data: Vec<u8>,
    local: Fields,
    central: Fields,
    made_by: u16,
    comment: Vec<u8>,
    disk: u16,
    internal: u16,
    external: u32,
    local_extra: Vec<u8>,
    central_extra: Vec<u8>,
    /// The central header's offset, when not where the local header really is.
    offset: Option<u32>,
    /// Whether the central directory lists it.
    listed: bool,
    /// Bytes written right before its local header.
    before: Vec<u8>,
    /// Bytes written right after its data.
    after: Vec<u8>,
}

#[derive(Clone, Copy, Debug)]
struct Fields {
    needed: u16,
    flags: u16,
    method: u16,
    time: u16,
    date: u16,
    crc32: u32,
    compressed: u32,
    size: u32,
}

impl Raw {
    /// The canonical entry for `name` holding `data`.
    pub(crate) fn new(name: &str, data: &[u8]) -> Raw {
        let fields = Fields {
            needed: 20,
            flags: 0x0800,
            method: 0,
            time: 0,
            date: 0x21,
            crc32: crc32fast::hash(data),
            compressed: data.len() as u32,
            size: data.len() as u32,
        };
        Raw {
            name: name.as_bytes().to_vec(),
            local_name: name.as_bytes().to_vec(),
            data: data.to_vec(),
            local: fields,
            central: fields,
            made_by: 0x0314,
            comment: Vec::new(),
            disk: 0,
            internal: 0,
            external: 0o100644 << 16,
            local_extra: Vec::new(),
            central_extra: Vec::new(),
            offset: None,
            listed: true,
            before: Vec::new(),
            after: Vec::new(),
        }
    }

    /// Renames it in both headers.
    fn named(mut self, name: &[u8]) -> Raw {
        self.name = name.to_vec();
        self.local_name = name.to_vec();
        self
    }

    /// Sets a field in both headers.
    fn both(mut self, set: impl Fn(&mut Fields)) -> Raw {
        set(&mut self.local);
        set(&mut self.central);
        self
    }
}

/// Archive-level choices.
#[derive(Clone, Debug, Default)]
pub(crate) struct Archive {
    /// Bytes before the first local header; offsets count them when `shift` is set.
    prefix: Vec<u8>,
    shift: bool,
    /// Bytes between the central directory and the end record.
    before_end: Vec<u8>,
    comment: Vec<u8>,
    /// Bytes after the end record.
    suffix: Vec<u8>,
    /// The end record's entry counts, when not the real count.
    count: Option<u16>,
}

fn fields(out: &mut Vec<u8>, f: &Fields, name: &[u8], extra: &[u8]) {
    for v in [f.needed, f.flags, f.method, f.time, f.date] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in [f.crc32, f.compressed, f.size] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&(extra.len() as u16).to_le_bytes());
}

pub(crate) fn build(entries: &[Raw], archive: &Archive) -> Vec<u8> {
    let mut out = archive.prefix.clone();
    let base = if archive.shift { 0 } else { archive.prefix.len() };
    let mut directory = Vec::new();
    let mut listed = 0u16;
    for e in entries {
        out.extend_from_slice(&e.before);
        let at = (out.len() - base) as u32;
        out.extend_from_slice(b"PK\x03\x04");
        fields(&mut out, &e.local, &e.local_name, &e.local_extra);
        out.extend_from_slice(&e.local_name);
        out.extend_from_slice(&e.local_extra);
        out.extend_from_slice(&e.data);
        out.extend_from_slice(&e.after);
        if !e.listed {
            continue;
        }
        listed += 1;
        directory.extend_from_slice(b"PK\x01\x02");
        directory.extend_from_slice(&e.made_by.to_le_bytes());
        fields(&mut directory, &e.central, &e.name, &e.central_extra);
        directory.extend_from_slice(&(e.comment.len() as u16).to_le_bytes());
        directory.extend_from_slice(&e.disk.to_le_bytes());
        directory.extend_from_slice(&e.internal.to_le_bytes());
        directory.extend_from_slice(&e.external.to_le_bytes());
        directory.extend_from_slice(&e.offset.unwrap_or(at).to_le_bytes());
        directory.extend_from_slice(&e.name);
        directory.extend_from_slice(&e.central_extra);
        directory.extend_from_slice(&e.comment);
    }
    let directory_at = (out.len() - base) as u32;
    out.extend_from_slice(&directory);
    out.extend_from_slice(&archive.before_end);
    let count = archive.count.unwrap_or(listed);
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&(directory.len() as u32).to_le_bytes());
    out.extend_from_slice(&directory_at.to_le_bytes());
    out.extend_from_slice(&(archive.comment.len() as u16).to_le_bytes());
    out.extend_from_slice(&archive.comment);
    out.extend_from_slice(&archive.suffix);
    out
}

/// The entries the writer produces for `p`, one by one.
fn entries(p: &Parts) -> Vec<Raw> {
    let mut out =
        vec![Raw::new("mimetype", BUNDLE_MEDIA_TYPE.as_bytes()), Raw::new(ENVELOPE_ENTRY, p.envelope.as_bytes())];
    out.extend(p.crls.iter().enumerate().map(|(i, c)| Raw::new(&crl_entry(i + 1), c)));
    out.extend(p.receipts.iter().enumerate().map(|(i, r)| Raw::new(&receipt_entry(i + 1), r)));
    out.extend(p.log_proofs.iter().enumerate().map(|(i, r)| Raw::new(&log_proof_entry(i + 1), r)));
    out.extend(p.attachments.iter().map(|(n, d)| Raw::new(n, d)));
    out
}

/// Index of the first attachment in [`entries`] of [`parts`].
const PDF_AT: usize = 5;

fn open(bytes: &[u8]) -> Result<Bundle<Cursor<&[u8]>>, BundleError> {
    Bundle::open(Cursor::new(bytes), BundleLimits::default())
}

/// Opens and checks every attachment; the error if any.
fn refusal(bytes: &[u8]) -> BundleError {
    match open(bytes).and_then(|mut b| b.check_attachments()) {
        Ok(()) => panic!("accepted"),
        Err(e) => e,
    }
}

/// The layout error `bytes` is refused with.
fn layout_error(bytes: &[u8]) -> LayoutError {
    match refusal(bytes) {
        BundleError::Layout(e) => e,
        other => panic!("refused for another reason: {other}"),
    }
}

fn assert_accepted(bytes: &[u8]) {
    let mut b = open(bytes).unwrap();
    b.check_attachments().unwrap();
}

// ---------------------------------------------------------------------------------------------
// The writer's output.

#[test]
fn the_writer_produces_exactly_the_layout_and_it_reads_back() {
    let s = signer();
    let p = parts(&s);
    let written = write(&p).unwrap();
    // The test's own encoder of the layout gives the same bytes: the hostile cases below differ
    // from a real bundle only where they say.
    assert_eq!(written, build(&entries(&p), &Archive::default()));
    let mut b = open(&written).unwrap();
    assert_eq!(b.envelope.as_bytes(), p.envelope.as_bytes());
    assert_eq!(b.crls, p.crls);
    assert_eq!(b.receipts, p.receipts);
    for (name, data) in &p.attachments {
        let mut out = Vec::new();
        assert_eq!(b.copy_attachment(name, &mut out).unwrap(), data.len() as u64);
        assert_eq!(&out, data);
    }
    // `mimetype` is first and stored, so its bytes sit at offset 38 as ASiC and EPUB expect.
    assert_eq!(&written[30..38], b"mimetype");
    assert_eq!(&written[38..38 + BUNDLE_MEDIA_TYPE.len()], BUNDLE_MEDIA_TYPE.as_bytes());
    // Writing is deterministic.
    assert_eq!(write(&p).unwrap(), written);
}

#[test]
fn an_independent_zip_reader_sees_the_same_entries_and_bytes() {
    let s = signer();
    let p = parts(&s);
    let written = write(&p).unwrap();
    let mut zip = zip::ZipArchive::new(Cursor::new(&written)).unwrap();
    let expected = entries(&p);
    assert_eq!(zip.len(), expected.len());
    for (i, e) in expected.iter().enumerate() {
        let mut entry = zip.by_index(i).unwrap();
        assert_eq!(entry.name().unwrap().as_bytes(), e.name.as_slice());
        assert_eq!(entry.compression(), zip::CompressionMethod::Stored);
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        assert_eq!(data, e.data);
    }
}

#[test]
fn a_bundle_without_crls_receipts_or_attachments_is_the_same_layout() {
    let s = signer();
    let p =
        Parts { envelope: envelope(&s, &[]), crls: vec![], receipts: vec![], log_proofs: vec![], attachments: vec![] };
    let written = write(&p).unwrap();
    assert_eq!(written, build(&entries(&p), &Archive::default()));
    assert_accepted(&written);
}

// ---------------------------------------------------------------------------------------------
// Hostile layouts, one by one.

#[test]
fn two_entries_with_the_same_name_are_refused() {
    let s = signer();
    let p = parts(&s);
    let mut e = entries(&p);
    // An altered copy before the real attachment: the reader before this layout took the last
    // one and verified the document, `zipfile` and `unzip` show the first.
    let mut altered = PDF.to_vec();
    altered[0] = b'#';
    e.insert(PDF_AT, Raw::new(PDF_NAME, &altered));
    assert_eq!(layout_error(&build(&e, &Archive::default())), LayoutError::Duplicate { entry: PDF_NAME.into() });
    // Names that differ only in case are one file on Windows and macOS.
    let mut e = entries(&p);
    e.push(Raw::new(&PDF_NAME.to_uppercase(), PDF));
    assert_eq!(
        layout_error(&build(&e, &Archive::default())),
        LayoutError::CaseDuplicate { entry: PDF_NAME.to_uppercase(), other: PDF_NAME.into() }
    );
}

#[test]
fn a_local_entry_the_central_directory_does_not_list_is_refused() {
    let s = signer();
    let p = parts(&s);
    let mut hidden = Raw::new("hidden.pdf", b"seen only by streaming readers");
    hidden.listed = false;
    // Between two listed entries…
    let mut e = entries(&p);
    e.insert(PDF_AT, hidden.clone());
    let offset = local_len(&e[..PDF_AT]);
    assert_eq!(
        layout_error(&build(&e, &Archive::default())),
        LayoutError::UnlistedEntry { offset, name: "hidden.pdf".into() }
    );
    // …and after the last one, before the central directory.
    let mut e = entries(&p);
    let offset = local_len(&e);
    e.push(hidden);
    assert_eq!(
        layout_error(&build(&e, &Archive::default())),
        LayoutError::UnlistedEntry { offset, name: "hidden.pdf".into() }
    );
}

/// Length of the local records of `entries` in the canonical layout: where the next one starts.
fn local_len(entries: &[Raw]) -> u64 {
    entries.iter().map(|e| 30 + e.name.len() as u64 + e.data.len() as u64).sum()
}

#[test]
fn a_local_name_that_differs_from_the_central_name_is_refused() {
    let s = signer();
    let p = parts(&s);
    let mut e = entries(&p);
    // Same length, so nothing else moves.
    e[PDF_AT].local_name = "Công văn 124.pdf".as_bytes().to_vec();
    assert_eq!(
        layout_error(&build(&e, &Archive::default())),
        LayoutError::NameMismatch { entry: PDF_NAME.into(), local: "Công văn 124.pdf".into() }
    );
    let mut e = entries(&p);
    e[PDF_AT].local_name = b"virus.exe".to_vec();
    assert_eq!(
        layout_error(&build(&e, &Archive::default())),
        LayoutError::NameMismatch { entry: PDF_NAME.into(), local: "virus.exe".into() }
    );
}

#[test]
fn local_and_central_headers_must_agree_on_every_field() {
    let s = signer();
    let p = parts(&s);
    let len = PDF.len() as u64;
    let crc = u64::from(crc32fast::hash(PDF));
    // Each field changed in the local header only: (field, change, local value, central value).
    type Case = (HeaderField, fn(&mut Fields), u64, u64);
    let cases: [Case; 8] = [
        (HeaderField::VersionNeeded, |f| f.needed = 10, 10, 20),
        (HeaderField::Flags, |f| f.flags = 0, 0, 0x800),
        (HeaderField::Method, |f| f.method = 8, 8, 0),
        (HeaderField::Time, |f| f.time = 1, 1, 0),
        (HeaderField::Date, |f| f.date = 0x22, 0x22, 0x21),
        (HeaderField::Crc32, |f| f.crc32 ^= 1, crc ^ 1, crc),
        (HeaderField::CompressedSize, |f| f.compressed -= 1, len - 1, len),
        (HeaderField::Size, |f| f.size -= 1, len - 1, len),
    ];
    for (field, set, local, central) in cases {
        let mut e = entries(&p);
        set(&mut e[PDF_AT].local);
        assert_eq!(
            layout_error(&build(&e, &Archive::default())),
            LayoutError::Mismatch { entry: PDF_NAME.into(), field, local, central },
            "{field}"
        );
    }
}

#[test]
fn offsets_that_point_elsewhere_are_refused() {
    let s = signer();
    let p = parts(&s);
    let real = local_len(&entries(&p)[..PDF_AT]) as u32;
    // One byte late: that byte belongs to no entry.
    let mut e = entries(&p);
    e[PDF_AT].offset = Some(real + 1);
    assert_eq!(layout_error(&build(&e, &Archive::default())), LayoutError::Gap { offset: real.into(), bytes: 1 });
    // Past the whole record: the real local header is left unlisted.
    let mut e = entries(&p);
    e[PDF_AT].offset = Some(real + 30 + PDF_NAME.len() as u32 + PDF.len() as u32);
    assert_eq!(
        layout_error(&build(&e, &Archive::default())),
        LayoutError::UnlistedEntry { offset: real.into(), name: PDF_NAME.into() }
    );
    // One byte early: inside the previous record.
    let mut e = entries(&p);
    e[PDF_AT].offset = Some(real - 1);
    assert_eq!(
        layout_error(&build(&e, &Archive::default())),
        LayoutError::Overlap { entry: PDF_NAME.into(), offset: (real - 1).into(), expected: real.into() }
    );
    // Two entries on one local record.
    let mut e = entries(&p);
    e[PDF_AT + 1].offset = Some(real);
    let next = u64::from(real) + 30 + PDF_NAME.len() as u64 + PDF.len() as u64;
    assert_eq!(
        layout_error(&build(&e, &Archive::default())),
        LayoutError::Overlap { entry: ANNEX_NAME.into(), offset: real.into(), expected: next }
    );
}

#[test]
fn bytes_between_records_are_refused() {
    let s = signer();
    let p = parts(&s);
    let mut e = entries(&p);
    e[PDF_AT].before = b"JUNK!".to_vec();
    let offset = local_len(&entries(&p)[..PDF_AT]);
    assert_eq!(layout_error(&build(&e, &Archive::default())), LayoutError::Gap { offset, bytes: 5 });
    // Between the central directory and the end record.
    let archive = Archive { before_end: b"JUNK!".to_vec(), ..Archive::default() };
    let bytes = build(&entries(&p), &archive);
    assert_eq!(layout_error(&bytes), LayoutError::Gap { offset: bytes.len() as u64 - 22 - 5, bytes: 5 });
}

#[test]
fn data_before_the_first_record_is_refused() {
    let s = signer();
    let p = parts(&s);
    // A self-extracting stub, offsets counting it (what `zip -A` does) or not.
    for shift in [true, false] {
        let archive = Archive { prefix: b"#!/bin/sh\nexec evil\n".to_vec(), shift, ..Archive::default() };
        assert_eq!(layout_error(&build(&entries(&p), &archive)), LayoutError::LeadingData, "shift {shift}");
    }
}

#[test]
fn data_after_the_end_record_is_refused() {
    let s = signer();
    let p = parts(&s);
    let archive = Archive { suffix: b"appended".to_vec(), ..Archive::default() };
    assert_eq!(layout_error(&build(&entries(&p), &archive)), LayoutError::TrailingData { bytes: 8 });
    // A whole second end record appended (what a reader searching from the end takes).
    let good = build(&entries(&p), &Archive::default());
    let mut twice = good.clone();
    twice.extend_from_slice(&good[good.len() - 22..]);
    assert_eq!(layout_error(&twice), LayoutError::TrailingData { bytes: 22 });
}

#[test]
fn an_archive_comment_is_refused() {
    let s = signer();
    let p = parts(&s);
    let archive = Archive { comment: b"signed by nobody".to_vec(), ..Archive::default() };
    assert_eq!(layout_error(&build(&entries(&p), &archive)), LayoutError::ArchiveComment { bytes: 16 });
    // A comment that holds a fake end record (what a reader searching from the end takes):
    // the real one is followed by bytes.
    let good = build(&entries(&p), &Archive::default());
    let fake = good[good.len() - 22..].to_vec();
    let archive = Archive { comment: fake, ..Archive::default() };
    assert_eq!(layout_error(&build(&entries(&p), &archive)), LayoutError::TrailingData { bytes: 22 });
    // An end record that announces a comment the file does not have.
    let mut announced = good.clone();
    let at = announced.len() - 2;
    announced[at] = 5;
    assert_eq!(
        layout_error(&announced),
        LayoutError::EndRecord { field: HeaderField::CommentLength, found: 5, expected: 0 }
    );
}

#[test]
fn data_descriptors_are_refused() {
    let s = signer();
    let p = parts(&s);
    let mut e = entries(&p);
    e[PDF_AT] = e[PDF_AT].clone().both(|f| f.flags |= 0x0008);
    assert_eq!(layout_error(&build(&e, &Archive::default())), LayoutError::DataDescriptor { entry: PDF_NAME.into() });
    // A descriptor after the data with the flag clear is bytes no record accounts for.
    let mut e = entries(&p);
    let mut descriptor = b"PK\x07\x08".to_vec();
    descriptor.extend_from_slice(&crc32fast::hash(PDF).to_le_bytes());
    descriptor.extend_from_slice(&(PDF.len() as u32).to_le_bytes());
    descriptor.extend_from_slice(&(PDF.len() as u32).to_le_bytes());
    e[PDF_AT].after = descriptor;
    assert_eq!(layout_error(&build(&e, &Archive::default())), LayoutError::DataDescriptor { entry: PDF_NAME.into() });
}

#[test]
fn encrypted_entries_are_refused() {
    let s = signer();
    let p = parts(&s);
    let sets: [fn(&mut Fields); 3] = [|f| f.flags |= 0x0001, |f| f.flags |= 0x0040, |f| f.method = 99];
    for set in sets {
        let mut e = entries(&p);
        e[PDF_AT] = e[PDF_AT].clone().both(set);
        assert_eq!(layout_error(&build(&e, &Archive::default())), LayoutError::Encrypted { entry: PDF_NAME.into() });
    }
}

#[test]
fn compressed_entries_are_refused() {
    let s = signer();
    let p = parts(&s);
    for method in [8u16, 12, 14, 93] {
        let mut e = entries(&p);
        e[PDF_AT] = e[PDF_AT].clone().both(|f| f.method = method);
        assert_eq!(
            layout_error(&build(&e, &Archive::default())),
            LayoutError::Compressed { entry: PDF_NAME.into(), method }
        );
    }
    // Stored, but with a compressed size that differs from the size.
    let mut e = entries(&p);
    e[PDF_AT] = e[PDF_AT].clone().both(|f| f.compressed += 1);
    let len = PDF.len() as u64;
    assert_eq!(
        layout_error(&build(&e, &Archive::default())),
        LayoutError::Field {
            entry: PDF_NAME.into(),
            field: HeaderField::CompressedSize,
            found: len + 1,
            expected: len
        }
    );
}

#[test]
fn zip64_is_refused() {
    let s = signer();
    let p = parts(&s);
    let mut zip64_extra = vec![0x01, 0x00, 16, 0];
    zip64_extra.extend_from_slice(&(PDF.len() as u64).to_le_bytes());
    zip64_extra.extend_from_slice(&(PDF.len() as u64).to_le_bytes());
    // Sizes deferred to a ZIP64 extra field.
    let mut e = entries(&p);
    e[PDF_AT] = e[PDF_AT].clone().both(|f| {
        f.size = u32::MAX;
        f.compressed = u32::MAX;
    });
    e[PDF_AT].local_extra = zip64_extra.clone();
    e[PDF_AT].central_extra = zip64_extra.clone();
    assert_eq!(
        layout_error(&build(&e, &Archive::default())),
        LayoutError::Zip64Entry { entry: PDF_NAME.into(), what: "a 0xFFFFFFFF size or offset" }
    );
    // A ZIP64 extra field with ordinary sizes.
    let mut e = entries(&p);
    e[PDF_AT].central_extra = zip64_extra;
    assert_eq!(
        layout_error(&build(&e, &Archive::default())),
        LayoutError::Zip64Entry { entry: PDF_NAME.into(), what: "a ZIP64 extra field" }
    );
    // A ZIP64 end record and locator before the end record.
    let mut records = b"PK\x06\x06".to_vec();
    records.extend_from_slice(&[0; 52]);
    let archive = Archive { before_end: records, ..Archive::default() };
    assert_eq!(
        layout_error(&build(&entries(&p), &archive)),
        LayoutError::Zip64 { what: "a ZIP64 end record or locator" }
    );
    // The end record's "see ZIP64" count.
    let archive = Archive { count: Some(u16::MAX), ..Archive::default() };
    assert_eq!(
        layout_error(&build(&entries(&p), &archive)),
        LayoutError::Zip64 { what: "a 0xFFFF count or 0xFFFFFFFF size or offset in the end record" }
    );
}

#[test]
fn names_that_are_not_plain_nfc_file_names_are_refused() {
    let s = signer();
    let p = parts(&s);
    let nfd: String = "Công văn.pdf".nfd().collect();
    let long = "a".repeat(256);
    let mut cases: Vec<(Vec<u8>, NameRule)> = vec![
        (b"C\xf4ng v\xe0n.pdf".to_vec(), NameRule::NotUtf8),
        (b"a/b.pdf".to_vec(), NameRule::Separator),
        (b"a\\b.pdf".to_vec(), NameRule::Backslash),
        (b"../../etc/passwd".to_vec(), NameRule::DotSegment),
        (b"META-INF/../x.pdf".to_vec(), NameRule::DotSegment),
        (b"META-INF//x.pdf".to_vec(), NameRule::DotSegment),
        (b"/etc/passwd".to_vec(), NameRule::Absolute),
        (b"C:x.pdf".to_vec(), NameRule::Absolute),
        (b"x\x01.pdf".to_vec(), NameRule::Control(1)),
        ("x\u{85}.pdf".as_bytes().to_vec(), NameRule::Control(0x85)),
        (nfd.as_bytes().to_vec(), NameRule::NotNfc),
        (b"META-INF/".to_vec(), NameRule::Directory),
        (b"".to_vec(), NameRule::Empty),
        (long.as_bytes().to_vec(), NameRule::TooLong { len: 256 }),
    ];
    for c in ['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}']
        .into_iter()
        .chain(['\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}'])
    {
        cases.push((format!("invoice{c}fdp.exe").into_bytes(), NameRule::Bidi(c as u32)));
    }
    for (name, rule) in cases {
        let mut e = entries(&p);
        e.push(Raw::new("x", b"payload").named(&name));
        let entry = String::from_utf8_lossy(&name).into_owned();
        assert_eq!(layout_error(&build(&e, &Archive::default())), LayoutError::Name { entry, rule }, "{name:?}");
    }
}

#[test]
fn other_header_values_are_refused() {
    let s = signer();
    let p = parts(&s);
    let check = |set: &dyn Fn(&mut Raw), expected: LayoutError| {
        let mut e = entries(&p);
        set(&mut e[PDF_AT]);
        assert_eq!(layout_error(&build(&e, &Archive::default())), expected);
    };
    let entry = || PDF_NAME.to_owned();
    // An Info-ZIP Unicode Path extra field: some readers take the name from it.
    let mut unicode_path = vec![0x75, 0x70, 10, 0, 1, 0, 0, 0, 0];
    unicode_path.extend_from_slice(b"x.e");
    check(&|r| r.central_extra = unicode_path.clone(), LayoutError::ExtraField { entry: entry(), bytes: 12 });
    // The extra field in the local header only: a local/central mismatch.
    check(
        &|r| r.local_extra = unicode_path.clone(),
        LayoutError::Mismatch { entry: entry(), field: HeaderField::ExtraLength, local: 12, central: 0 },
    );
    let field = |field, found, expected| LayoutError::Field { entry: entry(), field, found, expected };
    check(&|r| r.comment = b"hi".to_vec(), field(HeaderField::CommentLength, 2, 0));
    check(&|r| *r = r.clone().both(|f| f.flags = 0), field(HeaderField::Flags, 0, 0x800));
    check(&|r| *r = r.clone().both(|f| f.flags |= 0x0002), field(HeaderField::Flags, 0x802, 0x800));
    check(&|r| *r = r.clone().both(|f| f.needed = 45), field(HeaderField::VersionNeeded, 45, 20));
    check(&|r| *r = r.clone().both(|f| f.time = 0x6000), field(HeaderField::Time, 0x6000, 0));
    check(&|r| *r = r.clone().both(|f| f.date = 0x5b7a), field(HeaderField::Date, 0x5b7a, 0x21));
    // MS-DOS as the host: `unzip` then garbles UTF-8 names.
    check(&|r| r.made_by = 20, field(HeaderField::VersionMadeBy, 20, 0x0314));
    // A symbolic link's, a directory's and an executable's mode in the external attributes.
    for mode in [0o120777u32, 0o040755, 0o100755] {
        check(
            &|r| r.external = mode << 16,
            field(HeaderField::ExternalAttributes, (mode << 16).into(), 0o100644 << 16),
        );
    }
    check(&|r| r.internal = 1, field(HeaderField::InternalAttributes, 1, 0));
    check(&|r| r.disk = 1, field(HeaderField::DiskNumber, 1, 0));
}

#[test]
fn entries_in_another_order_than_the_writers_are_refused() {
    let s = signer();
    let p = parts(&s);
    let order = |e: Vec<Raw>| refusal(&build(&e, &Archive::default()));
    let position_of = |e: &BundleError| match e {
        BundleError::Order { position, found, .. } => (*position, found.clone()),
        other => panic!("{other}"),
    };
    // The envelope first, `mimetype` second.
    let mut e = entries(&p);
    e.swap(0, 1);
    assert!(matches!(order(e), BundleError::MediaType));
    // The envelope after the CRLs.
    let mut e = entries(&p);
    e.swap(1, 2);
    assert_eq!(position_of(&order(e)), (2, crl_entry(1)));
    // CRLs swapped, or numbered with a gap.
    let mut e = entries(&p);
    e.swap(2, 3);
    assert_eq!(position_of(&order(e)), (3, crl_entry(2)));
    let mut e = entries(&p);
    e[3] = Raw::new(&crl_entry(3), b"crl two");
    assert_eq!(position_of(&order(e)), (4, crl_entry(3)));
    // A receipt before the CRLs.
    let mut e = entries(&p);
    let receipt = e.remove(4);
    e.insert(2, receipt);
    assert_eq!(position_of(&order(e)), (4, crl_entry(1)));
    // Attachments in another order than the manifest's.
    let mut e = entries(&p);
    e.swap(PDF_AT, PDF_AT + 1);
    let err = order(e);
    assert_eq!(position_of(&err), (PDF_AT + 1, ANNEX_NAME.into()));
    assert!(err.to_string().contains(PDF_NAME), "{err}");
    // A CRL after the attachments.
    let mut e = entries(&p);
    let crl = e.remove(3);
    e.push(crl);
    assert_eq!(position_of(&order(e)), (PDF_AT + 2, crl_entry(2)));
}

#[test]
fn entries_the_manifest_does_not_name_or_misses_are_refused() {
    let s = signer();
    let p = parts(&s);
    let mut e = entries(&p);
    e.push(Raw::new("virus.exe", b"MZ"));
    assert!(matches!(refusal(&build(&e, &Archive::default())), BundleError::Unexpected(n) if n == "virus.exe"));
    let mut e = entries(&p);
    e.insert(PDF_AT, Raw::new("META-INF/manifest.xml", b"<x/>"));
    assert!(
        matches!(refusal(&build(&e, &Archive::default())), BundleError::Unexpected(n) if n == "META-INF/manifest.xml")
    );
    let mut e = entries(&p);
    e.pop();
    assert!(matches!(refusal(&build(&e, &Archive::default())), BundleError::MissingAttachment(n) if n == ANNEX_NAME));
    let e = entries(&p)[..1].to_vec();
    assert!(matches!(refusal(&build(&e, &Archive::default())), BundleError::NoEnvelope));
    assert!(matches!(refusal(&build(&[], &Archive::default())), BundleError::MediaType));
    let mut e = entries(&p);
    e[0] = Raw::new("mimetype", b"application/zip");
    assert!(matches!(refusal(&build(&e, &Archive::default())), BundleError::MediaType));
    assert_eq!(layout_error(b"hello"), LayoutError::NotZip);
    assert_eq!(layout_error(b""), LayoutError::NotZip);
}

#[test]
fn damaged_entries_fail_their_checksum() {
    let s = signer();
    let p = parts(&s);
    // A flipped byte in the envelope.
    let mut e = entries(&p);
    e[1].data[40] ^= 1;
    assert!(matches!(refusal(&build(&e, &Archive::default())), BundleError::Checksum(n) if n == ENVELOPE_ENTRY));
    // An attachment whose bytes are right but whose CRC is not: the bundle opens (the CRC is
    // checked as the attachment streams) and the check refuses it.
    let mut e = entries(&p);
    e[PDF_AT] = e[PDF_AT].clone().both(|f| f.crc32 ^= 1);
    let bytes = build(&e, &Archive::default());
    assert!(matches!(refusal(&bytes), BundleError::Checksum(n) if n == PDF_NAME));
    // An attachment altered with its CRC recomputed: the manifest's SHA-256 refuses it.
    let mut e = entries(&p);
    let mut altered = PDF.to_vec();
    altered[0] = b'#';
    e[PDF_AT] = Raw::new(PDF_NAME, &altered);
    assert!(matches!(refusal(&build(&e, &Archive::default())), BundleError::AttachmentHash(n) if n == PDF_NAME));
}

#[test]
fn every_single_byte_change_is_refused_and_every_cut_too() {
    let s = signer();
    let p = parts(&s);
    let good = write(&p).unwrap();
    for i in 0..good.len() {
        for flip in [0x01u8, 0x80] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            assert!(open(&bad).and_then(|mut b| b.check_attachments()).is_err(), "byte {i} ^ {flip:#x} accepted");
        }
    }
    for cut in 0..good.len() {
        assert!(open(&good[..cut]).is_err(), "cut at {cut} accepted");
    }
}

// ---------------------------------------------------------------------------------------------
// The writer's own refusals and the limits.

#[test]
fn the_writer_refuses_names_the_layout_refuses() {
    let s = signer();
    // The manifest takes a name with a right-to-left override; the bundle does not.
    let name = "invoice\u{202E}fdp.exe";
    let p = Parts {
        envelope: envelope(&s, &[(name, PDF)]),
        crls: vec![],
        receipts: vec![],
        log_proofs: vec![],
        attachments: vec![(name.into(), PDF.to_vec())],
    };
    let err = write(&p).unwrap_err();
    assert!(
        matches!(&err, BundleError::Layout(LayoutError::Name { entry, rule: NameRule::Bidi(0x202E) }) if entry == name),
        "{err}"
    );
    // An attachment `MIMETYPE` would overwrite `mimetype` where case does not count.
    let p = Parts {
        envelope: envelope(&s, &[("MIMETYPE", PDF)]),
        crls: vec![],
        receipts: vec![],
        log_proofs: vec![],
        attachments: vec![("MIMETYPE".into(), PDF.to_vec())],
    };
    let err = write(&p).unwrap_err();
    assert!(matches!(&err, BundleError::Layout(LayoutError::CaseDuplicate { .. })), "{err}");
}

#[test]
fn crl_and_receipt_counts_are_refused_past_their_limit() {
    let s = signer();
    let mut p = parts(&s);
    let limits = BundleLimits { max_crls: 2, max_receipts: 1, ..BundleLimits::default() };
    let at_limit = write_with(&p, limits).unwrap();
    Bundle::open(Cursor::new(&at_limit), limits).unwrap();
    p.crls.push(b"crl three".to_vec());
    assert!(matches!(write_with(&p, limits), Err(BundleError::Limit(_))));
    let over = write(&p).unwrap();
    assert!(matches!(Bundle::open(Cursor::new(&over), limits), Err(BundleError::Limit(_))));
    p.crls.pop();
    p.receipts.push(b"receipt two".to_vec());
    assert!(matches!(write_with(&p, limits), Err(BundleError::Limit(_))));
    let over = write(&p).unwrap();
    assert!(matches!(Bundle::open(Cursor::new(&over), limits), Err(BundleError::Limit(_))));
}

#[test]
fn log_proofs_come_after_the_receipts_numbered_and_bounded() {
    let s = signer();
    let mut p = parts(&s);
    p.log_proofs = vec![b"proof one".to_vec(), b"proof two".to_vec()];
    // Written in the one layout, read back in order.
    let written = write(&p).unwrap();
    assert_eq!(written, build(&entries(&p), &Archive::default()));
    let b = open(&written).unwrap();
    assert_eq!(b.log_proofs, p.log_proofs);
    assert_eq!(b.receipts, p.receipts);
    // At the limit and past it, on both sides.
    let limits = BundleLimits { max_log_proofs: 2, ..BundleLimits::default() };
    Bundle::open(Cursor::new(&write_with(&p, limits).unwrap()), limits).unwrap();
    p.log_proofs.push(b"proof three".to_vec());
    assert!(matches!(write_with(&p, limits), Err(BundleError::Limit(m)) if m.contains("log proofs")));
    let over = write(&p).unwrap();
    assert!(matches!(Bundle::open(Cursor::new(&over), limits), Err(BundleError::Limit(_))));
    p.log_proofs.pop();
    let order = |e: Vec<Raw>| refusal(&build(&e, &Archive::default()));
    // A proof before the receipts, numbered with a gap, or after the attachments.
    let first_proof = 2 + p.crls.len() + p.receipts.len();
    let mut e = entries(&p);
    e.swap(first_proof - 1, first_proof);
    assert!(matches!(order(e), BundleError::Order { found, .. } if found == receipt_entry(1)));
    let mut e = entries(&p);
    e[first_proof + 1] = Raw::new(&log_proof_entry(3), b"proof two");
    assert!(matches!(order(e), BundleError::Order { found, .. } if found == log_proof_entry(3)));
    let mut e = entries(&p);
    let proof = e.remove(first_proof);
    e.remove(first_proof);
    e.push(proof);
    assert!(matches!(order(e), BundleError::Order { found, .. } if found == log_proof_entry(1)));
    // A proof larger than a proof may be is refused before it is read.
    p.log_proofs = vec![vec![0; crate::tlog::MAX_LOG_PROOF_BYTES + 1]];
    assert!(matches!(write(&p), Err(BundleError::Limit(_))));
    assert!(matches!(order(entries(&p)), BundleError::Limit(_)));
}

#[test]
fn attachment_sizes_are_refused_past_their_limit() {
    let s = signer();
    let p = parts(&s);
    let at_limit = BundleLimits {
        max_attachment_bytes: PDF.len().max(ANNEX.len()) as u64,
        max_total_bytes: (PDF.len() + ANNEX.len()) as u64,
        ..BundleLimits::default()
    };
    let bytes = write_with(&p, at_limit).unwrap();
    Bundle::open(Cursor::new(&bytes), at_limit).unwrap().check_attachments().unwrap();
    for over in [
        BundleLimits { max_attachment_bytes: at_limit.max_attachment_bytes - 1, ..at_limit },
        BundleLimits { max_total_bytes: at_limit.max_total_bytes - 1, ..at_limit },
    ] {
        assert!(matches!(write_with(&p, over), Err(BundleError::Limit(_))));
        let err = Bundle::open(Cursor::new(&bytes), over).and_then(|mut b| b.check_attachments()).unwrap_err();
        assert!(matches!(err, BundleError::Limit(_)), "{err}");
    }
}

#[test]
fn the_entry_count_is_bounded_before_the_directory_is_read() {
    let s = signer();
    let p = parts(&s);
    let limits = BundleLimits { max_crls: 0, max_receipts: 0, ..BundleLimits::default() };
    let max = limits.max_entries();
    // A central directory claiming one entry more than the limit is refused before it is read.
    let archive = Archive { count: Some(max as u16 + 1), ..Archive::default() };
    let bytes = build(&entries(&p), &archive);
    let err = Bundle::open(Cursor::new(&bytes), limits).unwrap_err();
    assert!(matches!(&err, BundleError::Limit(m) if m.contains(&format!("more than {max}"))), "{err}");
    // At the limit the count is taken, and the directory then does not hold that many headers.
    let archive = Archive { count: Some(max as u16), ..Archive::default() };
    let bytes = build(&entries(&p), &archive);
    let err = Bundle::open(Cursor::new(&bytes), limits).unwrap_err();
    assert!(matches!(err, BundleError::Layout(LayoutError::DirectoryHeader { index }) if index == 8), "{err}");
}

#[test]
fn sizes_and_offsets_stop_below_the_zip64_marker() {
    assert_eq!(layout::fit(MAX_BUNDLE_OFFSET, "x").unwrap(), 0xFFFF_FFFE);
    assert!(matches!(layout::fit(MAX_BUNDLE_OFFSET + 1, "x"), Err(BundleError::Limit(_))));
    // The default limits cannot reach it: attachments, CRLs and receipts at their maximum.
    let limits = BundleLimits::default();
    let most = limits.max_total_bytes
        + limits.max_crls as u64 * crate::crl::MAX_CRL_LEN as u64
        + limits.max_receipts as u64 * crate::document::cbor::CborLimits::SIGNED_RECEIPT.max_bytes as u64
        + limits.max_log_proofs as u64 * crate::tlog::MAX_LOG_PROOF_BYTES as u64
        + crate::document::cbor::CborLimits::ENVELOPE.max_bytes as u64
        + limits.max_entries() as u64 * 2 * (46 + 255)
        + 22;
    assert!(most < MAX_BUNDLE_OFFSET, "{most}");
}

// ---------------------------------------------------------------------------------------------
// Every bundle the writer produces reads back.

/// Attachment names as clerks type them: Vietnamese letters (precomposed or not, normalised to
/// NFC as the manifest wants), digits, spaces, dashes.
fn attachment_name() -> impl Strategy<Value = String> {
    proptest::string::string_regex(
        "[a-zA-Z0-9ăâđêôơưĂÂĐÊÔƠƯàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵ _-]{1,40}",
    )
    .unwrap()
    .prop_map(|base| format!("{}.pdf", base.trim().nfc().collect::<String>()))
    .prop_filter("a valid attachment name", |n| {
        crate::document::manifest::check_attachment_name(n).is_ok() && !n.starts_with(' ')
    })
}

#[test]
fn every_written_bundle_reads_back() {
    let s = signer();
    let strategy = (
        proptest::collection::vec((attachment_name(), proptest::collection::vec(any::<u8>(), 0..3000)), 0..5),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..4),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..4),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..3),
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 64, ..ProptestConfig::default() });
    runner
        .run(&strategy, |(mut attachments, crls, receipts, log_proofs)| {
            let mut seen = std::collections::BTreeSet::new();
            attachments.retain(|(n, _)| seen.insert(n.to_lowercase()));
            let listed: Vec<(&str, &[u8])> = attachments.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
            let p =
                Parts { envelope: envelope(&s, &listed), crls, receipts, log_proofs, attachments: attachments.clone() };
            let written = write(&p).unwrap();
            prop_assert_eq!(&written, &build(&entries(&p), &Archive::default()));
            let mut b = open(&written).unwrap();
            prop_assert_eq!(b.envelope.as_bytes(), p.envelope.as_bytes());
            prop_assert_eq!(&b.crls, &p.crls);
            prop_assert_eq!(&b.log_proofs, &p.log_proofs);
            prop_assert_eq!(&b.receipts, &p.receipts);
            for (name, data) in &attachments {
                let mut out = Vec::new();
                b.copy_attachment(name, &mut out).unwrap();
                prop_assert_eq!(&out, data);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn random_damage_never_panics() {
    let s = signer();
    let good = write(&parts(&s)).unwrap();
    let damage = proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8);
    let mut runner =
        proptest::test_runner::TestRunner::new(ProptestConfig { cases: 2000, ..ProptestConfig::default() });
    runner
        .run(&damage, |changes| {
            let mut bytes = good.clone();
            for (at, value, how) in changes {
                let i = at.index(bytes.len());
                match how {
                    0 => bytes[i] = value,
                    1 => bytes.insert(i, value),
                    _ => {
                        bytes.remove(i);
                    }
                }
            }
            // Refused or not, never a panic (the fuzz target's entry point).
            if let Ok(mut b) = open(&bytes) {
                let _ = b.check_attachments();
            }
            Ok(())
        })
        .unwrap();
}
