//! Checkpoints: the C2SP `tlog-checkpoint` body (origin, tree size, base64 root hash,
//! optional extension lines) in a C2SP `signed-note`, signed by the agency seal.
//!
//! The origin names the agency and the log: `lienthong.gov.vn/log/<agency code>` for an
//! agency's first log, `lienthong.gov.vn/log/<agency code>/<generation>` (2, 3, …) for a log
//! started again after the previous one was lost (a log can never be rewound: witnesses
//! refuse a checkpoint that does not extend the last one, so a node restored from an old
//! backup must start a new generation). The log's signature line carries the origin as key
//! name, as `tlog-checkpoint` recommends; which seal may sign it is decided by the agency
//! code in the origin and the certificate the verifier validates.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::agency::AgencyCode;
use crate::algorithm::PublicKey;
use crate::keys::PrivateKey;

use super::Hash;
use super::cosignature::Cosignature;
use super::hash::{EMPTY_ROOT, MAX_TREE_SIZE};
use super::note::{Note, NoteError, NoteSignatureMismatch};

/// The fixed start of every lienthong log origin.
pub const LOG_ORIGIN_PREFIX: &str = "lienthong.gov.vn/log/";
/// Most extension lines read in a checkpoint (lienthong writes none).
pub const MAX_EXTENSION_LINES: usize = 4;
/// Longest extension line, in bytes.
pub const MAX_EXTENSION_BYTES: usize = 256;

/// Which log: the agency that keeps it and the generation (1 for its first log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogOrigin {
    /// The agency whose node keeps the log and whose seal signs its checkpoints.
    pub agency: AgencyCode,
    /// 1 for the agency's first log, then 2, 3, … after a log was lost.
    pub generation: u32,
}

impl LogOrigin {
    /// The first log of `agency`.
    pub fn first(agency: AgencyCode) -> Self {
        LogOrigin { agency, generation: 1 }
    }
}

impl fmt::Display for LogOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{LOG_ORIGIN_PREFIX}{}", self.agency)?;
        if self.generation != 1 {
            write!(f, "/{}", self.generation)?;
        }
        Ok(())
    }
}

impl FromStr for LogOrigin {
    type Err = CheckpointError;

    fn from_str(s: &str) -> Result<Self, CheckpointError> {
        let bad = || CheckpointError::Origin { origin: s.chars().take(80).collect() };
        let rest = s.strip_prefix(LOG_ORIGIN_PREFIX).ok_or_else(bad)?;
        let (code, generation) = match rest.split_once('/') {
            None => (rest, 1),
            Some((code, generation)) => {
                // Decimal without leading zeros, at least 2: generation 1 has no suffix, so
                // every log has exactly one origin string.
                if generation.starts_with('0') || !generation.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                let generation = generation.parse::<u32>().map_err(|_| bad())?;
                if generation < 2 {
                    return Err(bad());
                }
                (code, generation)
            }
        };
        let agency = code.parse::<AgencyCode>().map_err(|_| bad())?;
        // The code's own text form only: one origin string per log.
        if agency.to_string() != code {
            return Err(bad());
        }
        Ok(LogOrigin { agency, generation })
    }
}

/// Why a checkpoint is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The note around it.
    #[error("checkpoint note: {0}")]
    Note(#[from] NoteError),
    /// The origin is not a lienthong log origin.
    #[error("checkpoint origin {origin:?} is not lienthong.gov.vn/log/<agency code>[/<generation>]")]
    Origin {
        /// What it says (cut to 80 characters).
        origin: String,
    },
    /// The body lacks a line or has an empty one.
    #[error("checkpoint body: {0}")]
    Body(&'static str),
    /// The tree size line.
    #[error("checkpoint tree size {0:?} is not a decimal without leading zeros up to 2^63-1")]
    Size(String),
    /// The root hash line.
    #[error("checkpoint root hash is not the canonical base64 of 32 bytes")]
    Root,
    /// A tree of size 0 with another root than the empty tree's.
    #[error("a checkpoint of size 0 must have the empty tree's root")]
    EmptyTreeRoot,
    /// Too many or too long extension lines.
    #[error("checkpoint extension lines: at most {MAX_EXTENSION_LINES}, non-empty, up to {MAX_EXTENSION_BYTES} bytes")]
    Extensions,
    /// No signature line of the log's key.
    #[error("the checkpoint carries no signature of {origin}'s key")]
    NotSignedByLog {
        /// The origin.
        origin: String,
    },
    /// The log's signature does not verify.
    #[error(transparent)]
    BadSignature(#[from] NoteSignatureMismatch),
}

/// A checkpoint: a log's tree head at a size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Which log.
    pub origin: LogOrigin,
    /// Number of leaves.
    pub size: u64,
    /// The RFC 9162 root hash of those leaves.
    pub root: Hash,
    /// Extension lines (lienthong writes none; they are signed but carry no meaning here).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    pub fn new(origin: LogOrigin, size: u64, root: Hash) -> Self {
        Checkpoint { origin, size, root, extensions: Vec::new() }
    }

    /// The note text: origin, size, base64 root, extension lines, each ending in a newline.
    pub fn body(&self) -> String {
        let mut out = format!("{}\n{}\n{}\n", self.origin, self.size, BASE64.encode(self.root));
        for line in &self.extensions {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// Reads a checkpoint body (a note's text).
    pub fn parse_body(text: &str) -> Result<Self, CheckpointError> {
        let body = text.strip_suffix('\n').ok_or(CheckpointError::Body("no final newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().ok_or(CheckpointError::Body("no origin line"))?.parse::<LogOrigin>()?;
        let size_line = lines.next().ok_or(CheckpointError::Body("no tree size line"))?;
        let size =
            parse_decimal(size_line).ok_or_else(|| CheckpointError::Size(size_line.chars().take(30).collect()))?;
        let root_line = lines.next().ok_or(CheckpointError::Body("no root hash line"))?;
        let root = decode_hash(root_line).ok_or(CheckpointError::Root)?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.len() > MAX_EXTENSION_LINES
            || extensions.iter().any(|l| l.is_empty() || l.len() > MAX_EXTENSION_BYTES)
        {
            return Err(CheckpointError::Extensions);
        }
        if size == 0 && root != EMPTY_ROOT {
            return Err(CheckpointError::EmptyTreeRoot);
        }
        Ok(Checkpoint { origin, size, root, extensions })
    }

    /// Signs the checkpoint with the log's seal: a note whose one signature line is named
    /// after the origin.
    pub fn sign(&self, key: &PrivateKey) -> Result<SignedCheckpoint, CheckpointError> {
        let mut note = Note::new(self.body())?;
        note.sign(&self.origin.to_string(), key)?;
        Ok(SignedCheckpoint { checkpoint: self.clone(), note })
    }
}

/// A decimal without leading zeros (`0` alone allowed), at most [`MAX_TREE_SIZE`].
pub(crate) fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if text.len() > 1 && text.starts_with('0') {
        return None;
    }
    text.parse::<u64>().ok().filter(|n| *n <= MAX_TREE_SIZE)
}

/// A canonical base64 SHA-256 hash.
pub(crate) fn decode_hash(text: &str) -> Option<Hash> {
    let bytes = BASE64.decode(text).ok()?;
    <Hash>::try_from(bytes.as_slice()).ok()
}

/// A checkpoint with its note: the log's signature and any cosignatures. Reading does not
/// verify; call [`SignedCheckpoint::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    checkpoint: Checkpoint,
    note: Note,
}

impl SignedCheckpoint {
    /// Reads a signed checkpoint from untrusted bytes (within the note limits).
    pub fn parse(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let note = Note::parse(bytes)?;
        let checkpoint = Checkpoint::parse_body(note.text())?;
        Ok(SignedCheckpoint { checkpoint, note })
    }

    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The note: text and every signature line.
    pub fn note(&self) -> &Note {
        &self.note
    }

    /// The note as text, as stored and sent.
    pub fn to_text(&self) -> String {
        self.note.to_text()
    }

    /// Verifies the log's signature with its seal's public key: at least one line named after
    /// the origin with this key's ID, and every such line verifies. Other lines (cosignatures)
    /// are not looked at.
    pub fn verify(&self, log_key: &PublicKey) -> Result<(), CheckpointError> {
        let origin = self.checkpoint.origin.to_string();
        match self.note.verify_by(&origin, log_key)? {
            0 => Err(CheckpointError::NotSignedByLog { origin }),
            _ => Ok(()),
        }
    }

    /// The lines named after the origin: the log's own signatures.
    pub fn log_signatures(&self) -> impl Iterator<Item = &super::NoteSignature> {
        let origin = self.checkpoint.origin.to_string();
        self.note.signatures().iter().filter(move |s| s.name == origin)
    }

    /// Adds a cosignature line.
    pub fn add_cosignature(&mut self, cosignature: &Cosignature) -> Result<(), CheckpointError> {
        Ok(self.note.push(cosignature.to_note_signature())?)
    }

    /// The same checkpoint with only the log's own signature lines: what a witness keeps.
    pub fn without_cosignatures(&self) -> SignedCheckpoint {
        let origin = self.checkpoint.origin.to_string();
        let mut note = self.note.clone();
        note.retain_signatures(|s| s.name == origin);
        SignedCheckpoint { checkpoint: self.checkpoint.clone(), note }
    }
}
