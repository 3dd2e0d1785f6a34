//! The rules every entry name of a bundle follows, whatever the entry.
//!
//! A name is what an unpacking tool turns into a path and what a person reads in a file list,
//! so it must mean one thing everywhere: valid UTF-8 (the ZIP header says so), in NFC (the form
//! the manifest uses, so that lookups by name agree), no control characters, no
//! bidirectional-text controls (which make `fdp.exe` read as `exe.pdf`), no absolute paths, no
//! backslashes, no `.` or `..` segments, no directories. A `/` appears only in the bundle's own
//! `META-INF/` entries; attachments are one path component.

use unicode_normalization::is_nfc;

use super::META_DIR;

/// Longest entry name, in bytes of UTF-8: the common file-system limit, and what the manifest
/// allows for attachment names. It also bounds the central directory's size.
pub(super) const MAX_NAME_BYTES: usize = 255;

/// The rule an entry name breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameRule {
    /// The name's bytes are not UTF-8.
    #[error("the name is not valid UTF-8")]
    NotUtf8,
    /// The name is empty.
    #[error("the name is empty")]
    Empty,
    /// The name is longer than 255 bytes.
    #[error("the name is {len} bytes, more than 255")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The name ends with `/`: a directory entry.
    #[error("a directory entry; a bundle holds only files")]
    Directory,
    /// The name starts with `/` or a drive letter.
    #[error("an absolute path")]
    Absolute,
    /// The name holds a backslash, a path separator on Windows.
    #[error("a backslash, which Windows reads as a path separator")]
    Backslash,
    /// The name holds a `/` outside the bundle's own `META-INF/` entries.
    #[error("a path separator `/`; attachments are single file names")]
    Separator,
    /// A path segment is empty, `.` or `..`.
    #[error("an empty, `.` or `..` path segment")]
    DotSegment,
    /// The name holds a control character.
    #[error("the control character U+{0:04X}")]
    Control(u32),
    /// The name holds a bidirectional-text control, which makes it display as another name.
    #[error("the bidirectional-text control U+{0:04X}, which makes a name display as another")]
    Bidi(u32),
    /// The name is not in Unicode NFC.
    #[error("the name is not in Unicode NFC (the form the manifest uses)")]
    NotNfc,
}

/// Whether `c` changes the display order of text: the embeddings and overrides
/// U+202A–U+202E, the isolates U+2066–U+2069, the marks U+200E, U+200F and U+061C.
pub(super) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Checks a bundle entry name against the rules above; the writer refuses to write, and the
/// reader to read, a name that breaks one. Public so that whoever accepts attachment names
/// early (a form, a manifest) can apply the same rules.
pub fn check_entry_name(name: &str) -> Result<(), NameRule> {
    if name.is_empty() {
        return Err(NameRule::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameRule::TooLong { len: name.len() });
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(NameRule::Control(c as u32));
    }
    if let Some(c) = name.chars().find(|&c| is_bidi_control(c)) {
        return Err(NameRule::Bidi(c as u32));
    }
    let bytes = name.as_bytes();
    if bytes[0] == b'/' || (bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':') {
        return Err(NameRule::Absolute);
    }
    if name.contains('\\') {
        return Err(NameRule::Backslash);
    }
    if name.ends_with('/') {
        return Err(NameRule::Directory);
    }
    if name.split('/').any(|segment| matches!(segment, "" | "." | "..")) {
        return Err(NameRule::DotSegment);
    }
    if name.contains('/') && !name.starts_with(META_DIR) {
        return Err(NameRule::Separator);
    }
    if !is_nfc(name) {
        return Err(NameRule::NotNfc);
    }
    Ok(())
}
