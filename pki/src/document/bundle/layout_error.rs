//! How a ZIP container departs from the bundle layout (`layout.rs`): one variant per
//! rule, each naming the entry where there is one, and the header fields they name.

use super::names::NameRule;

/// A field of a ZIP header, as named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderField {
    /// "Version made by" (central header).
    VersionMadeBy,
    /// "Version needed to extract".
    VersionNeeded,
    /// General-purpose bit flags.
    Flags,
    /// Compression method.
    Method,
    /// Last-modified DOS time.
    Time,
    /// Last-modified DOS date.
    Date,
    /// CRC-32 of the data.
    Crc32,
    /// Compressed size.
    CompressedSize,
    /// Uncompressed size.
    Size,
    /// Name length.
    NameLength,
    /// Extra-field length.
    ExtraLength,
    /// Comment length (central header or end record).
    CommentLength,
    /// Disk number (central header or end record).
    DiskNumber,
    /// Internal file attributes.
    InternalAttributes,
    /// External file attributes (where Unix modes, links and directories hide).
    ExternalAttributes,
    /// Entry counts of the end record.
    EntryCount,
}

impl std::fmt::Display for HeaderField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HeaderField::VersionMadeBy => "version made by",
            HeaderField::VersionNeeded => "version needed",
            HeaderField::Flags => "flags",
            HeaderField::Method => "method",
            HeaderField::Time => "time",
            HeaderField::Date => "date",
            HeaderField::Crc32 => "CRC-32",
            HeaderField::CompressedSize => "compressed size",
            HeaderField::Size => "size",
            HeaderField::NameLength => "name length",
            HeaderField::ExtraLength => "extra-field length",
            HeaderField::CommentLength => "comment length",
            HeaderField::DiskNumber => "disk number",
            HeaderField::InternalAttributes => "internal attributes",
            HeaderField::ExternalAttributes => "external attributes",
            HeaderField::EntryCount => "entry count",
        })
    }
}

/// How a ZIP container departs from the bundle layout. Each names the rule and, where there is
/// one, the entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// No end-of-central-directory record anywhere near the end: not a ZIP file, or a cut one.
    #[error("no ZIP end-of-central-directory record at the end of the file (not a ZIP, or cut short)")]
    NotZip,
    /// Bytes follow the end record.
    #[error("{bytes} bytes follow the end of the ZIP archive; a bundle ends with its end record")]
    TrailingData {
        /// How many.
        bytes: u64,
    },
    /// The archive has a comment.
    #[error("the ZIP archive has a {bytes}-byte comment; a bundle has none")]
    ArchiveComment {
        /// Its length.
        bytes: u64,
    },
    /// A field of the end record has another value than the layout's.
    #[error("the end record's {field} is {found}, the layout requires {expected}")]
    EndRecord {
        /// Which field.
        field: HeaderField,
        /// Its value.
        found: u64,
        /// The layout's value.
        expected: u64,
    },
    /// The central directory does not end right where the end record starts.
    #[error("the central directory ({size} bytes at offset {offset}) runs past the end record at {end_record}")]
    DirectoryBounds {
        /// Its offset, as the end record says.
        offset: u64,
        /// Its size, as the end record says.
        size: u64,
        /// Where the end record is.
        end_record: u64,
    },
    /// A central header is missing or cut short.
    #[error("central-directory header #{index} is missing or cut short")]
    DirectoryHeader {
        /// Its position, from 1.
        index: usize,
    },
    /// The central headers do not fill the central directory.
    #[error("the central directory is {declared} bytes, its headers take {used}")]
    DirectorySize {
        /// The size the end record gives.
        declared: u64,
        /// What the headers take.
        used: u64,
    },
    /// A ZIP64 record or marker at the archive level.
    #[error("ZIP64 ({what}); a bundle is under 4 GiB and uses none")]
    Zip64 {
        /// What was found.
        what: &'static str,
    },
    /// An entry uses ZIP64.
    #[error("entry {entry:?} uses ZIP64 ({what}); a bundle is under 4 GiB and uses none")]
    Zip64Entry {
        /// The entry.
        entry: String,
        /// What was found.
        what: &'static str,
    },
    /// An entry is encrypted.
    #[error("entry {entry:?} is encrypted; bundle entries are plain")]
    Encrypted {
        /// The entry.
        entry: String,
    },
    /// An entry is compressed.
    #[error("entry {entry:?} is compressed (method {method}); bundle entries are stored")]
    Compressed {
        /// The entry.
        entry: String,
        /// The compression method.
        method: u16,
    },
    /// An entry's sizes and CRC follow its data in a data descriptor.
    #[error("entry {entry:?} uses a data descriptor; bundle headers carry sizes and CRC")]
    DataDescriptor {
        /// The entry.
        entry: String,
    },
    /// An entry has an extra field (where ZIP64 sizes, Unix modes and alternative Unicode
    /// names hide).
    #[error("entry {entry:?} has a {bytes}-byte extra field; bundle entries have none")]
    ExtraField {
        /// The entry.
        entry: String,
        /// Its length.
        bytes: u64,
    },
    /// A header field has another value than the layout's.
    #[error("entry {entry:?}: its {field} is {found:#x}, the layout requires {expected:#x}")]
    Field {
        /// The entry.
        entry: String,
        /// Which field.
        field: HeaderField,
        /// Its value.
        found: u64,
        /// The layout's value.
        expected: u64,
    },
    /// An entry's name breaks a rule.
    #[error("entry {entry:?}: {rule}")]
    Name {
        /// The name (invalid UTF-8 replaced).
        entry: String,
        /// The rule.
        rule: NameRule,
    },
    /// Two central headers have the same name.
    #[error("entry {entry:?} appears twice")]
    Duplicate {
        /// The name.
        entry: String,
    },
    /// Two names differ only in case: one overwrites the other on Windows and macOS.
    #[error("entries {entry:?} and {other:?} differ only in case")]
    CaseDuplicate {
        /// The later name.
        entry: String,
        /// The earlier name.
        other: String,
    },
    /// The file does not start with the first entry's local header.
    #[error("data before the first entry; a bundle starts with its first local header at offset 0")]
    LeadingData,
    /// No local header where the central directory says.
    #[error("entry {entry:?} has no local header at offset {offset}")]
    NoLocalHeader {
        /// The entry.
        entry: String,
        /// Where the central directory puts it.
        offset: u64,
    },
    /// The local header names the entry differently.
    #[error("entry {entry:?} is named {local:?} in its local header")]
    NameMismatch {
        /// The central directory's name.
        entry: String,
        /// The local header's (invalid UTF-8 replaced).
        local: String,
    },
    /// The local header disagrees with the central header on a field.
    #[error("entry {entry:?}: the local header's {field} is {local:#x}, the central directory's {central:#x}")]
    Mismatch {
        /// The entry.
        entry: String,
        /// Which field.
        field: HeaderField,
        /// The local header's value.
        local: u64,
        /// The central header's value.
        central: u64,
    },
    /// A local record the central directory does not list.
    #[error("a local entry {name:?} at offset {offset} is not in the central directory")]
    UnlistedEntry {
        /// Where it is.
        offset: u64,
        /// Its local name (invalid UTF-8 replaced).
        name: String,
    },
    /// Bytes between records that belong to none.
    #[error("{bytes} bytes at offset {offset} belong to no entry")]
    Gap {
        /// Where they start.
        offset: u64,
        /// How many.
        bytes: u64,
    },
    /// A record starts before the previous one ended.
    #[error("entry {entry:?} starts at offset {offset}, inside the previous record, which ends at {expected}")]
    Overlap {
        /// The entry.
        entry: String,
        /// Where it starts.
        offset: u64,
        /// Where the previous record ends.
        expected: u64,
    },
    /// A record runs into the central directory.
    #[error("entry {entry:?} runs to offset {end}, past the central directory's start at {limit}")]
    Overrun {
        /// The entry.
        entry: String,
        /// Where it ends.
        end: u64,
        /// Where the central directory starts.
        limit: u64,
    },
}
