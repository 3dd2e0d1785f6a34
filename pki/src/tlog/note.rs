//! C2SP `signed-note`: a text ending in a newline, a blank line, then one or more signature
//! lines `— <key name> base64(key ID || signature)`.
//!
//! [`Note::parse`] reads untrusted bytes within [`MAX_NOTE_BYTES`] and
//! [`MAX_NOTE_SIGNATURES`] (the specification asks verifiers to accept at least 16) and
//! refuses control characters, malformed lines, non-canonical base64 and a key (name and ID)
//! that signs twice. Which keys are trusted is the caller's business: a checkpoint is checked
//! against its log's seal ([`super::SignedCheckpoint::verify`]), cosignatures against the
//! witnesses' seals. The signature types are in `signing.rs`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::algorithm::PublicKey;
use crate::keys::PrivateKey;

use super::signing;

/// Largest note read, in bytes: a checkpoint with [`MAX_NOTE_SIGNATURES`] signature lines
/// by RSA-8192 keys (about 1,450 bytes each) fits, with room.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
/// Most signature lines in a note. `signed-note` requires accepting at least 16; the log's
/// own signature plus [`super::evidence::MAX_COSIGNATURES`] cosignatures fit twice over.
pub const MAX_NOTE_SIGNATURES: usize = 32;
/// Longest key name, in bytes (C2SP key names are short URLs; ours are under 60 bytes).
pub const MAX_KEY_NAME_BYTES: usize = 256;

/// Why a note is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// Over [`MAX_NOTE_BYTES`].
    #[error("the note is {len} bytes, over the {MAX_NOTE_BYTES}-byte limit")]
    TooLarge {
        /// Its size.
        len: usize,
    },
    /// Not UTF-8.
    #[error("the note is not UTF-8")]
    NotUtf8,
    /// A control character other than newline.
    #[error("the note holds control character U+{code:04X} at byte {offset}")]
    ControlCharacter {
        /// The character's code point.
        code: u32,
        /// Where.
        offset: usize,
    },
    /// No blank line separates the text from signature lines, or no signature follows.
    #[error("the note has no signature block (a blank line, then signature lines)")]
    NoSignatures,
    /// The text is empty or does not end in a newline.
    #[error("the note text is empty or does not end in a newline")]
    BadText,
    /// A signature line is not `— <name> <base64>`.
    #[error("signature line {line} is malformed: {problem}")]
    BadSignatureLine {
        /// 1-based, counting signature lines.
        line: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// A key name is empty, too long, or holds a space or `+`.
    #[error("key name {name:?} is not allowed (non-empty, at most {MAX_KEY_NAME_BYTES} bytes, no spaces or '+')")]
    BadKeyName {
        /// The name.
        name: String,
    },
    /// Over [`MAX_NOTE_SIGNATURES`].
    #[error("the note has more than {MAX_NOTE_SIGNATURES} signatures")]
    TooManySignatures,
    /// The same key (name and ID) signs twice.
    #[error("key {name} ({key_id:08x}) signs the note twice")]
    DuplicateSignature {
        /// The name.
        name: String,
        /// The key ID.
        key_id: u32,
    },
    /// The key is not one notes can be signed with.
    #[error("this key type cannot sign notes")]
    UnsupportedKey,
    /// The key failed to sign (ring refused; nothing the input can cause).
    #[error("the key could not sign")]
    Signing,
}

/// One signature line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key ID (first four bytes of the decoded value).
    pub key_id: u32,
    /// The signature proper (the rest of the decoded value).
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The line as written in a note, with its final newline.
    pub fn line(&self) -> String {
        let mut value = self.key_id.to_be_bytes().to_vec();
        value.extend_from_slice(&self.signature);
        format!("— {} {}\n", self.name, BASE64.encode(value))
    }

    /// Reads one signature line (with or without its final newline).
    pub fn parse_line(line: &str) -> Result<Self, NoteError> {
        parse_signature_line(line.strip_suffix('\n').unwrap_or(line), 1)
    }
}

/// A signed note: its text and signature lines, in order. Reading does not verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

/// Checks a key name: non-empty, bounded, no Unicode spaces, no `+`.
pub(crate) fn check_key_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.len() > MAX_KEY_NAME_BYTES || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(NoteError::BadKeyName { name: name.chars().take(80).collect() });
    }
    Ok(())
}

fn check_characters(text: &str) -> Result<(), NoteError> {
    match text.char_indices().find(|(_, c)| c.is_control() && *c != '\n') {
        Some((offset, c)) => Err(NoteError::ControlCharacter { code: u32::from(c), offset }),
        None => Ok(()),
    }
}

fn parse_signature_line(line: &str, number: usize) -> Result<NoteSignature, NoteError> {
    let bad = |problem| NoteError::BadSignatureLine { line: number, problem };
    let rest = line.strip_prefix("— ").ok_or(bad("does not start with an em dash and a space"))?;
    let (name, value) = rest.split_once(' ').ok_or(bad("no space between key name and signature"))?;
    check_key_name(name)?;
    let value = BASE64.decode(value).map_err(|_| bad("the signature is not canonical base64"))?;
    if value.len() < 5 {
        return Err(bad("the signature is shorter than a key ID and one byte"));
    }
    let key_id = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
    Ok(NoteSignature { name: name.to_owned(), key_id, signature: value[4..].to_vec() })
}

impl Note {
    /// A note with `text` and no signatures yet. The text must end in a newline and hold no
    /// control character other than newlines.
    pub fn new(text: String) -> Result<Self, NoteError> {
        if text.is_empty() || !text.ends_with('\n') {
            return Err(NoteError::BadText);
        }
        if text.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge { len: text.len() });
        }
        check_characters(&text)?;
        Ok(Note { text, signatures: Vec::new() })
    }

    /// Reads a note from untrusted bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, NoteError> {
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge { len: bytes.len() });
        }
        let all = std::str::from_utf8(bytes).map_err(|_| NoteError::NotUtf8)?;
        check_characters(all)?;
        // The text ends at the last blank line; its final newline is part of it.
        let split = all.rfind("\n\n").ok_or(NoteError::NoSignatures)?;
        let (text, block) = (&all[..=split], &all[split + 2..]);
        if block.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let Some(block) = block.strip_suffix('\n') else {
            return Err(NoteError::BadSignatureLine { line: block.split('\n').count(), problem: "no final newline" });
        };
        let mut note = Note::new(text.to_owned())?;
        for (i, line) in block.split('\n').enumerate() {
            if i >= MAX_NOTE_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            note.push(parse_signature_line(line, i + 1)?)?;
        }
        Ok(note)
    }

    /// The signed text, final newline included.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds a signature line (a cosignature, say), refusing a key that already signed and
    /// more than [`MAX_NOTE_SIGNATURES`].
    pub fn push(&mut self, sig: NoteSignature) -> Result<(), NoteError> {
        check_key_name(&sig.name)?;
        if self.signatures.iter().any(|s| s.name == sig.name && s.key_id == sig.key_id) {
            return Err(NoteError::DuplicateSignature { name: sig.name, key_id: sig.key_id });
        }
        if self.signatures.len() >= MAX_NOTE_SIGNATURES {
            return Err(NoteError::TooManySignatures);
        }
        self.signatures.push(sig);
        Ok(())
    }

    /// Keeps only the signature lines `keep` accepts.
    pub fn retain_signatures(&mut self, keep: impl FnMut(&NoteSignature) -> bool) {
        self.signatures.retain(keep);
    }

    /// The note as text: the text, a blank line, the signature lines.
    pub fn to_text(&self) -> String {
        let mut out = self.text.clone();
        out.push('\n');
        for sig in &self.signatures {
            out.push_str(&sig.line());
        }
        out
    }

    /// Signs the text with `key` under `name` (signature types in `signing.rs`) and adds the
    /// line.
    pub fn sign(&mut self, name: &str, key: &PrivateKey) -> Result<(), NoteError> {
        check_key_name(name)?;
        let key_id = signing::note_key_id(name, key.public_key()).ok_or(NoteError::UnsupportedKey)?;
        let signature = signing::sign(key, self.text.as_bytes()).map_err(|_| NoteError::Signing)?;
        self.push(NoteSignature { name: name.to_owned(), key_id, signature })
    }

    /// The signature lines made by `key` under `name` (matching name and key ID), each
    /// verified: `Ok(n)` with how many verified, `Ok(0)` when none is by this key, `Err` with
    /// the first that does not verify.
    pub fn verify_by(&self, name: &str, key: &PublicKey) -> Result<usize, NoteSignatureMismatch> {
        let Some(key_id) = signing::note_key_id(name, key) else {
            return Ok(0);
        };
        let mut verified = 0;
        for sig in self.signatures.iter().filter(|s| s.name == name && s.key_id == key_id) {
            if !signing::verify(key, self.text.as_bytes(), &sig.signature) {
                return Err(NoteSignatureMismatch { name: name.to_owned(), key_id });
            }
            verified += 1;
        }
        Ok(verified)
    }
}

/// A signature line of a known key (name and key ID match) that does not verify: the note
/// was altered or forged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the signature of {name} ({key_id:08x}) does not verify: the note was altered")]
pub struct NoteSignatureMismatch {
    /// The key name.
    pub name: String,
    /// The key ID.
    pub key_id: u32,
}
