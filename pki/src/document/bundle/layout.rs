//! The one byte layout of a bundle's ZIP container (APPNOTE 6.3.10 with every choice fixed):
//! how the writer encodes it and how the reader checks raw bytes against it.
//!
//! ```text
//! offset 0   local header 1 | name 1 | data 1
//!            local header 2 | name 2 | data 2      each record right after the previous one
//!            …
//!            central header 1 | name 1             same entries, same order, same fields
//!            …
//!            end of central directory              the last 22 bytes of the file, no comment
//! ```
//!
//! Every header has version 2.0, flags 0x0800 (names are UTF-8) and nothing else, method 0
//! (stored), the DOS time 1980-01-01 00:00, equal sizes, no extra field and no comment; the
//! central header adds "made by Unix 2.0", disk 0, internal attributes 0 and external
//! attributes "regular file, mode 0644" (so no entry is a link or a directory). Nothing uses
//! ZIP64: every size and offset stays below 0xFFFF_FFFF, which the default
//! [`super::BundleLimits`] guarantee with room to spare.
//!
//! The reader walks the local records from offset 0 in the central directory's order and
//! requires each to start where the previous ended, to repeat its central header exactly, and
//! the last to end where the central directory starts, so every byte of the file belongs to
//! exactly one record. Memory is bounded: the central directory is at most
//! [`super::BundleLimits::max_entries`] headers of at most 46 + 255 bytes; entries' data is
//! never read here.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

use super::BundleError;
use super::layout_error::{HeaderField, LayoutError};
use super::names::{self, MAX_NAME_BYTES, NameRule};

const LOCAL_SIGNATURE: [u8; 4] = *b"PK\x03\x04";
const CENTRAL_SIGNATURE: [u8; 4] = *b"PK\x01\x02";
const END_SIGNATURE: [u8; 4] = *b"PK\x05\x06";
const ZIP64_END_SIGNATURE: [u8; 4] = *b"PK\x06\x06";
const ZIP64_LOCATOR_SIGNATURE: [u8; 4] = *b"PK\x06\x07";
const DESCRIPTOR_SIGNATURE: [u8; 4] = *b"PK\x07\x08";

/// Length of a local header before its name.
pub(super) const LOCAL_HEADER_LEN: u64 = 30;
/// Length of a central header before its name.
const CENTRAL_HEADER_LEN: u64 = 46;
/// Length of the end-of-central-directory record (it has no comment).
const END_RECORD_LEN: u64 = 22;
/// Where the CRC-32 sits in a local header: the writer streams an attachment, then fills it.
pub(super) const LOCAL_CRC_OFFSET: u64 = 14;
/// How far back from the end the reader looks for a misplaced end record, to say why the file
/// does not end with one (a ZIP comment is at most 64 KiB; trailing data could be anything).
const END_SEARCH_WINDOW: u64 = 1024 * 1024;

/// Version made by: host 3 (Unix), spec 2.0. Host 0 (MS-DOS) would make Info-ZIP `unzip`
/// read UTF-8 names as code page 437 and garble every Vietnamese name (seen with UnZip 6.00).
const VERSION_MADE_BY: u16 = (3 << 8) | 20;
/// External attributes: a regular file, mode 0644, in the Unix half. Fixed, so no entry is a
/// link, a directory or executable; Unix tools need a mode (0 extracts as `----------`) and
/// Windows tools ignore it.
const EXTERNAL_ATTRIBUTES: u32 = 0o100644 << 16;
/// Version needed to extract: 2.0, what stored entries with UTF-8 names need in practice.
const VERSION_NEEDED: u16 = 20;
/// General-purpose flags: bit 11 only, "the name is UTF-8".
const FLAGS: u16 = 0x0800;
/// Flag bits that mean encryption: traditional, strong, and masked local headers.
const FLAGS_ENCRYPTION: u16 = 0x0001 | 0x0040 | 0x2000;
/// Flag bit 3: sizes and CRC follow the data in a data descriptor.
const FLAG_DATA_DESCRIPTOR: u16 = 0x0008;
/// Method 0: stored.
const METHOD_STORED: u16 = 0;
/// Method 99: WinZip AES encryption.
const METHOD_AES: u16 = 99;
/// DOS time 00:00:00 and date 1980-01-01 (day 1, month 1, year 0): fixed, so bundles are
/// reproducible byte for byte and `pki` reads no clock.
const DOS_TIME: u16 = 0;
const DOS_DATE: u16 = (1 << 5) | 1;
/// The ZIP64 extended-information extra field.
const ZIP64_EXTRA_ID: u16 = 0x0001;

/// Largest size or offset a bundle holds: in a ZIP header 0xFFFF_FFFF means "see the ZIP64
/// record", and a bundle has none. So a whole bundle is under 4 GiB.
pub const MAX_BUNDLE_OFFSET: u64 = 0xFFFF_FFFE;
/// Most entries: 0xFFFF in the end record means "see the ZIP64 record".
pub(super) const MAX_ENTRY_COUNT: usize = 0xFFFE;

/// The fields local and central headers share, in the same order in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Common {
    needed: u16,
    flags: u16,
    method: u16,
    time: u16,
    date: u16,
    crc32: u32,
    compressed: u32,
    size: u32,
    name_len: u16,
    extra_len: u16,
}

/// Length of [`Common`] encoded.
const COMMON_LEN: usize = 26;

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

impl Common {
    /// The layout's values for an entry.
    fn canonical(crc32: u32, size: u32, name_len: u16) -> Common {
        Common {
            needed: VERSION_NEEDED,
            flags: FLAGS,
            method: METHOD_STORED,
            time: DOS_TIME,
            date: DOS_DATE,
            crc32,
            compressed: size,
            size,
            name_len,
            extra_len: 0,
        }
    }

    /// Decodes the [`COMMON_LEN`] bytes at the start of `b`.
    fn parse(b: &[u8]) -> Common {
        Common {
            needed: u16_at(b, 0),
            flags: u16_at(b, 2),
            method: u16_at(b, 4),
            time: u16_at(b, 6),
            date: u16_at(b, 8),
            crc32: u32_at(b, 10),
            compressed: u32_at(b, 14),
            size: u32_at(b, 18),
            name_len: u16_at(b, 22),
            extra_len: u16_at(b, 24),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        for v in [self.needed, self.flags, self.method, self.time, self.date] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [self.crc32, self.compressed, self.size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.name_len.to_le_bytes());
        out.extend_from_slice(&self.extra_len.to_le_bytes());
    }

    /// Every field with its name, in header order.
    fn fields(&self) -> [(HeaderField, u64); 10] {
        [
            (HeaderField::VersionNeeded, self.needed.into()),
            (HeaderField::Flags, self.flags.into()),
            (HeaderField::Method, self.method.into()),
            (HeaderField::Time, self.time.into()),
            (HeaderField::Date, self.date.into()),
            (HeaderField::Crc32, self.crc32.into()),
            (HeaderField::CompressedSize, self.compressed.into()),
            (HeaderField::Size, self.size.into()),
            (HeaderField::NameLength, self.name_len.into()),
            (HeaderField::ExtraLength, self.extra_len.into()),
        ]
    }
}

/// One entry as the central directory lists it, its local header checked against it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    /// Its name, checked against [`names::check_entry_name`].
    pub(super) name: String,
    /// The CRC-32 of its data.
    pub(super) crc32: u32,
    /// Its data's length.
    pub(super) size: u64,
    /// Where its local header starts.
    pub(super) header_offset: u64,
    central: Common,
}

impl Entry {
    /// Where its data starts.
    pub(super) fn data_offset(&self) -> u64 {
        self.header_offset + LOCAL_HEADER_LEN + self.name.len() as u64
    }
}

/// Converts a size or offset for a header, refusing what would need ZIP64.
pub(super) fn fit(value: u64, what: &str) -> Result<u32, BundleError> {
    if value > MAX_BUNDLE_OFFSET {
        return Err(BundleError::Limit(format!(
            "{what} would be at {value} bytes, past the {MAX_BUNDLE_OFFSET} a bundle holds without ZIP64"
        )));
    }
    u32::try_from(value).map_err(|_| BundleError::Limit(format!("{what} does not fit a ZIP header")))
}

/// The name's length for a header (names are at most [`MAX_NAME_BYTES`], checked before).
fn name_len(name: &str) -> Result<u16, BundleError> {
    u16::try_from(name.len()).map_err(|_| BundleError::Limit(format!("entry name {name:?} is too long")))
}

/// The local header of an entry, its name included.
pub(super) fn local_header(name: &str, crc32: u32, size: u32) -> Result<Vec<u8>, BundleError> {
    let mut out = Vec::with_capacity(LOCAL_HEADER_LEN as usize + name.len());
    out.extend_from_slice(&LOCAL_SIGNATURE);
    Common::canonical(crc32, size, name_len(name)?).encode(&mut out);
    out.extend_from_slice(name.as_bytes());
    Ok(out)
}

/// Appends the central header of an entry, its name included, to `out`.
pub(super) fn central_header(
    out: &mut Vec<u8>,
    name: &str,
    crc32: u32,
    size: u32,
    offset: u32,
) -> Result<(), BundleError> {
    out.extend_from_slice(&CENTRAL_SIGNATURE);
    out.extend_from_slice(&VERSION_MADE_BY.to_le_bytes());
    Common::canonical(crc32, size, name_len(name)?).encode(out);
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    out.extend_from_slice(&0u16.to_le_bytes()); // disk number
    out.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
    out.extend_from_slice(&EXTERNAL_ATTRIBUTES.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    Ok(())
}

/// The end-of-central-directory record.
pub(super) fn end_record(entries: usize, directory_size: u32, directory_offset: u32) -> Result<Vec<u8>, BundleError> {
    let count = u16::try_from(entries).ok().filter(|&c| usize::from(c) <= MAX_ENTRY_COUNT).ok_or_else(|| {
        BundleError::Limit(format!("{entries} entries, more than the {MAX_ENTRY_COUNT} a bundle holds"))
    })?;
    let mut out = Vec::with_capacity(END_RECORD_LEN as usize);
    out.extend_from_slice(&END_SIGNATURE);
    out.extend_from_slice(&0u16.to_le_bytes()); // this disk
    out.extend_from_slice(&0u16.to_le_bytes()); // the directory's disk
    out.extend_from_slice(&count.to_le_bytes()); // entries on this disk
    out.extend_from_slice(&count.to_le_bytes()); // entries in all
    out.extend_from_slice(&directory_size.to_le_bytes());
    out.extend_from_slice(&directory_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    Ok(out)
}

/// Checks that names are unique, also ignoring case (Windows and macOS extract names that
/// differ only in case to one file).
pub(super) fn check_unique<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<(), LayoutError> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for name in names {
        if let Some(other) = seen.insert(name.to_lowercase(), name) {
            return Err(if other == name {
                LayoutError::Duplicate { entry: name.to_owned() }
            } else {
                LayoutError::CaseDuplicate { entry: name.to_owned(), other: other.to_owned() }
            });
        }
    }
    Ok(())
}

fn read_at<R: Read + Seek>(reader: &mut R, offset: u64, len: u64) -> Result<Vec<u8>, BundleError> {
    reader.seek(SeekFrom::Start(offset))?;
    let mut out = Vec::new();
    reader.take(len).read_to_end(&mut out)?;
    if out.len() as u64 != len {
        // The layout checks keep every read inside the file; a file that shrinks while it is
        // read ends here.
        return Err(BundleError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(out)
}

/// Reads and checks the whole container structure: the end record, the central directory and
/// every local header. Returns the entries in file order. `max_entries` bounds the central
/// directory read into memory.
pub(super) fn read_directory<R: Read + Seek>(reader: &mut R, max_entries: usize) -> Result<Vec<Entry>, BundleError> {
    let file_len = reader.seek(SeekFrom::End(0))?;
    let end_at = find_end_record(reader, file_len)?;
    let end = read_at(reader, end_at, END_RECORD_LEN)?;
    let (count, size, offset) = check_end_record(&end)?;
    // Whatever the offsets say (a self-extracting stub may or may not be counted in them), a
    // bundle's first bytes are its first local header.
    if count > 0 && read_at(reader, 0, 4)? != LOCAL_SIGNATURE {
        return Err(LayoutError::LeadingData.into());
    }
    let directory_end = offset + size;
    if directory_end > end_at {
        return Err(LayoutError::DirectoryBounds { offset, size, end_record: end_at }.into());
    }
    if directory_end < end_at {
        return Err(between_directory_and_end(reader, directory_end, end_at)?.into());
    }
    let max = max_entries.min(MAX_ENTRY_COUNT);
    if count > max {
        return Err(BundleError::Limit(format!("{count} entries, more than {max}")));
    }
    let max_size = count as u64 * (CENTRAL_HEADER_LEN + MAX_NAME_BYTES as u64);
    if size > max_size {
        return Err(BundleError::Limit(format!(
            "a central directory of {size} bytes for {count} entries, more than {max_size}"
        )));
    }
    let directory = read_at(reader, offset, size)?;
    let entries = parse_directory(&directory, count)?;
    walk_local_records(reader, &entries, offset)?;
    Ok(entries)
}

/// Finds the end record, which must be the file's last 22 bytes; if it is elsewhere, says why.
fn find_end_record<R: Read + Seek>(reader: &mut R, file_len: u64) -> Result<u64, BundleError> {
    if file_len < END_RECORD_LEN {
        return Err(LayoutError::NotZip.into());
    }
    let at = file_len - END_RECORD_LEN;
    let tail = read_at(reader, at, END_RECORD_LEN)?;
    if tail[..4] == END_SIGNATURE {
        return Ok(at);
    }
    let window = file_len.min(END_SEARCH_WINDOW);
    let start = file_len - window;
    let buffer = read_at(reader, start, window)?;
    let last = buffer.len() - END_RECORD_LEN as usize;
    let found = (0..=last).rev().find(|&i| buffer[i..i + 4] == END_SIGNATURE);
    let Some(i) = found else {
        return Err(LayoutError::NotZip.into());
    };
    let record_end = start + i as u64 + END_RECORD_LEN;
    let after = file_len - record_end;
    let comment = u64::from(u16_at(&buffer, i + 20));
    Err(if comment > 0 && comment == after {
        LayoutError::ArchiveComment { bytes: comment }
    } else {
        LayoutError::TrailingData { bytes: after }
    }
    .into())
}

/// Checks the end record's fields; returns the entry count, directory size and offset.
fn check_end_record(end: &[u8]) -> Result<(usize, u64, u64), LayoutError> {
    let disk = u16_at(end, 4);
    let directory_disk = u16_at(end, 6);
    let on_disk = u16_at(end, 8);
    let total = u16_at(end, 10);
    let size = u32_at(end, 12);
    let offset = u32_at(end, 16);
    let comment = u16_at(end, 20);
    if [disk, directory_disk, on_disk, total].contains(&u16::MAX) || [size, offset].contains(&u32::MAX) {
        return Err(LayoutError::Zip64 { what: "a 0xFFFF count or 0xFFFFFFFF size or offset in the end record" });
    }
    let field = |field, found: u16, expected: u16| {
        if found == expected {
            Ok(())
        } else {
            Err(LayoutError::EndRecord { field, found: found.into(), expected: expected.into() })
        }
    };
    field(HeaderField::CommentLength, comment, 0)?;
    field(HeaderField::DiskNumber, disk, 0)?;
    field(HeaderField::DiskNumber, directory_disk, 0)?;
    field(HeaderField::EntryCount, on_disk, total)?;
    Ok((total.into(), size.into(), offset.into()))
}

/// Why there are bytes between the central directory and the end record.
fn between_directory_and_end<R: Read + Seek>(reader: &mut R, from: u64, to: u64) -> Result<LayoutError, BundleError> {
    let head = read_at(reader, from, (to - from).min(4))?;
    Ok(if head[..] == ZIP64_END_SIGNATURE || head[..] == ZIP64_LOCATOR_SIGNATURE {
        LayoutError::Zip64 { what: "a ZIP64 end record or locator" }
    } else if head[..] == END_SIGNATURE {
        // An end record, then more: the bytes after the first one are trailing data.
        LayoutError::TrailingData { bytes: to - from }
    } else {
        LayoutError::Gap { offset: from, bytes: to - from }
    })
}

/// Parses and checks the central directory's `count` headers, which must fill it exactly.
fn parse_directory(directory: &[u8], count: usize) -> Result<Vec<Entry>, LayoutError> {
    let mut entries = Vec::with_capacity(count);
    let mut at = 0usize;
    for index in 1..=count {
        let rest = &directory[at..];
        if rest.len() < CENTRAL_HEADER_LEN as usize || rest[..4] != CENTRAL_SIGNATURE {
            return Err(LayoutError::DirectoryHeader { index });
        }
        let made_by = u16_at(rest, 4);
        let common = Common::parse(&rest[6..6 + COMMON_LEN]);
        let comment_len = u16_at(rest, 32);
        let disk = u16_at(rest, 34);
        let internal = u16_at(rest, 36);
        let external = u32_at(rest, 38);
        let offset = u32_at(rest, 42);
        let name_end = CENTRAL_HEADER_LEN as usize + usize::from(common.name_len);
        let extra_end = name_end + usize::from(common.extra_len);
        let record_len = extra_end + usize::from(comment_len);
        if rest.len() < record_len {
            return Err(LayoutError::DirectoryHeader { index });
        }
        let name_bytes = &rest[CENTRAL_HEADER_LEN as usize..name_end];
        let extra = &rest[name_end..extra_end];
        at += record_len;

        let name = std::str::from_utf8(name_bytes)
            .map_err(|_| LayoutError::Name {
                entry: String::from_utf8_lossy(name_bytes).into_owned(),
                rule: NameRule::NotUtf8,
            })?
            .to_owned();
        let entry = || name.clone();
        if [common.compressed, common.size, offset].contains(&u32::MAX) || disk == u16::MAX {
            return Err(LayoutError::Zip64Entry { entry: entry(), what: "a 0xFFFFFFFF size or offset" });
        }
        if extra.len() >= 2 && u16_at(extra, 0) == ZIP64_EXTRA_ID {
            return Err(LayoutError::Zip64Entry { entry: entry(), what: "a ZIP64 extra field" });
        }
        if common.flags & FLAGS_ENCRYPTION != 0 || common.method == METHOD_AES {
            return Err(LayoutError::Encrypted { entry: entry() });
        }
        if common.method != METHOD_STORED {
            return Err(LayoutError::Compressed { entry: entry(), method: common.method });
        }
        if common.flags & FLAG_DATA_DESCRIPTOR != 0 {
            return Err(LayoutError::DataDescriptor { entry: entry() });
        }
        names::check_entry_name(&name).map_err(|rule| LayoutError::Name { entry: entry(), rule })?;
        if !extra.is_empty() {
            return Err(LayoutError::ExtraField { entry: entry(), bytes: extra.len() as u64 });
        }
        let expected = Common::canonical(common.crc32, common.size, common.name_len);
        let central_only = [
            (HeaderField::VersionMadeBy, u64::from(made_by), u64::from(VERSION_MADE_BY)),
            (HeaderField::CommentLength, comment_len.into(), 0),
            (HeaderField::DiskNumber, disk.into(), 0),
            (HeaderField::InternalAttributes, internal.into(), 0),
            (HeaderField::ExternalAttributes, external.into(), EXTERNAL_ATTRIBUTES.into()),
        ];
        let shared = common.fields().into_iter().zip(expected.fields()).map(|((f, found), (_, exp))| (f, found, exp));
        if let Some((field, found, expected)) = shared.chain(central_only).find(|(_, found, exp)| found != exp) {
            return Err(LayoutError::Field { entry: entry(), field, found, expected });
        }
        entries.push(Entry {
            name,
            crc32: common.crc32,
            size: common.size.into(),
            header_offset: offset.into(),
            central: common,
        });
    }
    if at != directory.len() {
        return Err(LayoutError::DirectorySize { declared: directory.len() as u64, used: at as u64 });
    }
    check_unique(entries.iter().map(|e| e.name.as_str()))?;
    Ok(entries)
}

/// Walks the local records from offset 0 in the central directory's order: each must start
/// where the previous ended, repeat its central header, and the last must end where the
/// central directory starts.
fn walk_local_records<R: Read + Seek>(reader: &mut R, entries: &[Entry], directory_at: u64) -> Result<(), BundleError> {
    let mut expected = 0u64;
    let mut previous: Option<&str> = None;
    for e in entries {
        let entry = || e.name.clone();
        if e.header_offset < expected {
            return Err(LayoutError::Overlap { entry: entry(), offset: e.header_offset, expected }.into());
        }
        if e.header_offset > expected {
            return Err(unaccounted(reader, expected, e.header_offset, previous)?.into());
        }
        let overrun = |end: u64| LayoutError::Overrun { entry: entry(), end, limit: directory_at };
        let header_end = e.header_offset + LOCAL_HEADER_LEN;
        if header_end > directory_at {
            return Err(overrun(header_end).into());
        }
        let header = read_at(reader, e.header_offset, LOCAL_HEADER_LEN)?;
        if header[..4] != LOCAL_SIGNATURE {
            return Err(if e.header_offset == 0 {
                LayoutError::LeadingData
            } else {
                LayoutError::NoLocalHeader { entry: entry(), offset: e.header_offset }
            }
            .into());
        }
        let local = Common::parse(&header[4..4 + COMMON_LEN]);
        let name_end = header_end + u64::from(local.name_len);
        if name_end > directory_at {
            return Err(overrun(name_end).into());
        }
        let local_name = read_at(reader, header_end, local.name_len.into())?;
        if local_name != e.name.as_bytes() {
            let local = String::from_utf8_lossy(&local_name).into_owned();
            return Err(LayoutError::NameMismatch { entry: entry(), local }.into());
        }
        let mismatch = local.fields().into_iter().zip(e.central.fields()).find(|((_, l), (_, c))| l != c);
        if let Some(((field, local), (_, central))) = mismatch {
            return Err(LayoutError::Mismatch { entry: entry(), field, local, central }.into());
        }
        let end = e.data_offset() + e.size;
        if end > directory_at {
            return Err(overrun(end).into());
        }
        expected = end;
        previous = Some(&e.name);
    }
    if expected != directory_at {
        return Err(unaccounted(reader, expected, directory_at, previous)?.into());
    }
    Ok(())
}

/// Names what fills bytes `from..to` that no listed record covers.
fn unaccounted<R: Read + Seek>(
    reader: &mut R,
    from: u64,
    to: u64,
    previous: Option<&str>,
) -> Result<LayoutError, BundleError> {
    let head = read_at(reader, from, (to - from).min(LOCAL_HEADER_LEN))?;
    if head.starts_with(&LOCAL_SIGNATURE) {
        let name = if head.len() as u64 == LOCAL_HEADER_LEN {
            let len = u64::from(u16_at(&head, 26)).min(to - from - LOCAL_HEADER_LEN);
            String::from_utf8_lossy(&read_at(reader, from + LOCAL_HEADER_LEN, len)?).into_owned()
        } else {
            String::new()
        };
        return Ok(LayoutError::UnlistedEntry { offset: from, name });
    }
    if let Some(entry) = previous
        && head.starts_with(&DESCRIPTOR_SIGNATURE)
    {
        return Ok(LayoutError::DataDescriptor { entry: entry.to_owned() });
    }
    Ok(if from == 0 { LayoutError::LeadingData } else { LayoutError::Gap { offset: from, bytes: to - from } })
}
