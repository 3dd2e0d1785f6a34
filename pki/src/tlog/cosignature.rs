//! Cosignatures: a witness's signed statement, with its own time, that a checkpoint is the
//! largest consistent tree head it has seen for that log (C2SP `tlog-cosignature`, v1).
//!
//! A cosignature is a note signature line on the checkpoint:
//! `— lienthong.gov.vn/witness/<agency code> base64(key ID || u64 time || signature)`, the
//! signature being over `cosignature/v1\ntime <time>\n` followed by the checkpoint body. An
//! Ed25519 seal makes exactly the `tlog-cosignature` type `0x04`; ECDSA and RSA seals use the
//! same message and layout under lienthong's `0xff` key IDs (see `signing.rs`).
//!
//! What one seal key signs never passes for another kind of statement: a cosignature's
//! message starts with `cosignature/v1`, a checkpoint's with `lienthong.gov.vn/log/` (no
//! origin can be `cosignature/v1`), and the COSE signature structures of documents and
//! receipts with a CBOR array byte. Checkpoint and cosignature lines of one key also carry
//! different key IDs.

use std::fmt;

use time::OffsetDateTime;

use crate::agency::AgencyCode;
use crate::algorithm::PublicKey;
use crate::keys::PrivateKey;

use super::checkpoint::Checkpoint;
use super::note::{NoteError, NoteSignature};
use super::signing;

/// The fixed start of every witness's key name.
pub const WITNESS_NAME_PREFIX: &str = "lienthong.gov.vn/witness/";

/// Why a cosignature is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CosignatureError {
    /// The line itself.
    #[error("cosignature line: {0}")]
    Note(#[from] NoteError),
    /// The key name is not a lienthong witness name.
    #[error("cosignature key name {name:?} is not lienthong.gov.vn/witness/<agency code>")]
    Name {
        /// What it says (cut to 80 characters).
        name: String,
    },
    /// Too short to hold a time and a signature.
    #[error("cosignature of {len} bytes is too short for a time and a signature")]
    TooShort {
        /// Its length after the key ID.
        len: usize,
    },
    /// A time beyond 2^63 − 1 or before 1970.
    #[error("cosignature time is out of range")]
    Time,
    /// The key ID is not that of this witness key.
    #[error("cosignature key ID {got:08x} is not {expected:08x}, that of the witness's key")]
    KeyId {
        /// The key's ID.
        expected: u32,
        /// The line's.
        got: u32,
    },
    /// The key cannot make cosignatures.
    #[error("this key type cannot make cosignatures")]
    UnsupportedKey,
    /// The signature does not verify.
    #[error("the cosignature by {witness} does not verify: checkpoint or time altered")]
    BadSignature {
        /// The witness.
        witness: AgencyCode,
    },
    /// The key failed to sign (ring refused; nothing the input can cause).
    #[error("the key could not sign")]
    Signing,
}

/// The key name of `witness`'s cosignatures.
pub fn witness_key_name(witness: &AgencyCode) -> String {
    format!("{WITNESS_NAME_PREFIX}{witness}")
}

/// The agency a witness key name stands for, if it is one.
pub fn witness_from_key_name(name: &str) -> Option<AgencyCode> {
    let code = name.strip_prefix(WITNESS_NAME_PREFIX)?;
    let agency = code.parse::<AgencyCode>().ok()?;
    (agency.to_string() == code).then_some(agency)
}

/// The key ID `witness`'s cosignatures with `key` carry.
pub fn cosignature_key_id(witness: &AgencyCode, key: &PublicKey) -> Option<u32> {
    signing::cosignature_key_id(&witness_key_name(witness), key)
}

/// What a cosignature signs: `cosignature/v1\ntime <seconds>\n` and the checkpoint body.
pub fn signed_message(checkpoint: &Checkpoint, time: u64) -> Vec<u8> {
    let mut out = format!("cosignature/v1\ntime {time}\n").into_bytes();
    out.extend_from_slice(checkpoint.body().as_bytes());
    out
}

/// One witness's cosignature. Reading does not verify; call [`Cosignature::verify`].
#[derive(Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness agency (from the key name).
    pub witness: AgencyCode,
    /// The key ID.
    pub key_id: u32,
    /// When the witness signed, in seconds since 1970 (at most 2^63 − 1).
    pub time: u64,
    /// The signature proper.
    pub signature: Vec<u8>,
}

impl fmt::Debug for Cosignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cosignature({} {:08x} at {})", self.witness, self.key_id, self.time)
    }
}

impl Cosignature {
    /// The witness `witness` co-signs `checkpoint` at `at` with its seal. The caller has
    /// checked the checkpoint first ([`super::check_checkpoint`]).
    pub fn sign(
        checkpoint: &Checkpoint,
        witness: AgencyCode,
        key: &PrivateKey,
        at: OffsetDateTime,
    ) -> Result<Self, CosignatureError> {
        let time = u64::try_from(at.unix_timestamp()).map_err(|_| CosignatureError::Time)?;
        let key_id = cosignature_key_id(&witness, key.public_key()).ok_or(CosignatureError::UnsupportedKey)?;
        let signature = signing::sign(key, &signed_message(checkpoint, time)).map_err(|_| CosignatureError::Signing)?;
        Ok(Cosignature { witness, key_id, time, signature })
    }

    /// Reads a note signature line as a cosignature. `Ok(None)`: the name is not a witness
    /// name (the log's own line, or another kind of signature).
    pub fn from_note_signature(sig: &NoteSignature) -> Result<Option<Self>, CosignatureError> {
        let Some(witness) = witness_from_key_name(&sig.name) else {
            return Ok(None);
        };
        if sig.signature.len() < 9 {
            return Err(CosignatureError::TooShort { len: sig.signature.len() });
        }
        let (time, signature) = sig.signature.split_at(8);
        let mut be = [0u8; 8];
        be.copy_from_slice(time);
        let time = u64::from_be_bytes(be);
        if time > i64::MAX as u64 {
            return Err(CosignatureError::Time);
        }
        Ok(Some(Cosignature { witness, key_id: sig.key_id, time, signature: signature.to_vec() }))
    }

    /// Reads one cosignature line from untrusted text (with or without its final newline).
    pub fn parse_line(line: &str) -> Result<Self, CosignatureError> {
        let sig = NoteSignature::parse_line(line)?;
        Self::from_note_signature(&sig)?
            .ok_or_else(|| CosignatureError::Name { name: sig.name.chars().take(80).collect() })
    }

    /// The note signature line it is.
    pub fn to_note_signature(&self) -> NoteSignature {
        let mut signature = self.time.to_be_bytes().to_vec();
        signature.extend_from_slice(&self.signature);
        NoteSignature { name: witness_key_name(&self.witness), key_id: self.key_id, signature }
    }

    /// The line as written in a note, with its final newline.
    pub fn line(&self) -> String {
        self.to_note_signature().line()
    }

    /// When the witness signed.
    pub fn at(&self) -> OffsetDateTime {
        // `time` is at most 2^63 − 1 seconds, which `time` cannot represent beyond year 9999:
        // such a cosignature is clamped to the largest date, far in anyone's future.
        i64::try_from(self.time)
            .ok()
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
    }

    /// Verifies the cosignature over `checkpoint` with the witness seal's public key.
    pub fn verify(&self, checkpoint: &Checkpoint, key: &PublicKey) -> Result<(), CosignatureError> {
        let expected = cosignature_key_id(&self.witness, key).ok_or(CosignatureError::UnsupportedKey)?;
        if expected != self.key_id {
            return Err(CosignatureError::KeyId { expected, got: self.key_id });
        }
        if !signing::verify(key, &signed_message(checkpoint, self.time), &self.signature) {
            return Err(CosignatureError::BadSignature { witness: self.witness });
        }
        Ok(())
    }
}
