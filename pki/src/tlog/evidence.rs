//! Proofs in the evidence: "this envelope is leaf `i` of log `L`, here is the inclusion proof
//! into checkpoint `C`, co-signed by witnesses `W1 … Wn`", checked offline.
//!
//! The core is the C2SP `tlog-proof` v1 text ([`TlogProof`]): `c2sp.org/tlog-proof@v1`, an
//! `extra` line holding the leaf's bytes (a [`LogEntry`]), `index <i>`, the inclusion proof one
//! base64 hash per line, a blank line, and the co-signed checkpoint. Standard tools can check
//! it given the keys. Those keys are in X.509 certificates here, so a [`LogProof`] wraps the
//! text with the seal chains of the log and its witnesses, as a deterministic CBOR map:
//! `{"v": 1, "proof": <tlog-proof text>, "chains": [[cert DER, …], …]}` (leaf certificate
//! first in each chain), within [`MAX_LOG_PROOF_BYTES`].
//!
//! [`LogProof::verify`] checks, for a given envelope digest: the entry names it; the entry is
//! leaf `i` of the checkpoint; the checkpoint carries a valid signature of the log's seal
//! (chain valid for the log's agency at the earliest cosignature time: the witness attests
//! it saw the signed checkpoint then); each cosignature of a carried witness chain verifies
//! (a line that fails is altered bytes: the whole proof is refused) and its chain is valid
//! at the cosignature's time (a chain that is not is reported, not counted). At least one
//! witness other than the log's agency must remain. The result, [`LogEvidence`], lists the
//! witnesses by time: the earliest is the proof of existence the verifier can use.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ciborium::Value;
use time::{Duration, OffsetDateTime};

use crate::agency::AgencyCode;
use crate::cert::{Certificate, Profile};
use crate::document::cbor::{self, CborError, CborLimits};
use crate::validate::{ChainError, DEFAULT_MAX_CHAIN_LEN, Validator, VerifiedChain};

use super::checkpoint::{CheckpointError, LogOrigin, SignedCheckpoint, decode_hash, parse_decimal};
use super::cosignature::{Cosignature, CosignatureError, cosignature_key_id};
use super::leaf::{LeafError, LogEntry};
use super::note::NoteSignatureMismatch;
use super::proof::{ProofError, verify_inclusion};
use super::{Hash, MAX_PROOF_HASHES, signing};

/// Most cosignatures a proof may carry.
pub const MAX_COSIGNATURES: usize = 16;
/// Largest encoded [`LogProof`]: a checkpoint note (at most 64 KiB) and up to
/// `1 + MAX_COSIGNATURES` seal chains of a few certificates each.
pub const MAX_LOG_PROOF_BYTES: usize = 256 * 1024;
/// How far in the verifier's future a cosignature time may be (clock skew between agencies).
pub const MAX_COSIGNATURE_SKEW: Duration = Duration::minutes(5);
/// The first line of a `tlog-proof`.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// The log proof format version written.
pub const LOG_PROOF_VERSION: u64 = 1;
const LOG_PROOF_LIMITS: CborLimits = CborLimits {
    max_bytes: MAX_LOG_PROOF_BYTES,
    max_depth: 4,
    max_items: 8 + (1 + MAX_COSIGNATURES) * (DEFAULT_MAX_CHAIN_LEN + 1),
};

/// Why a proof is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogProofError {
    /// The CBOR wrapper (size, depth, deterministic encoding).
    #[error("log proof: {0}")]
    Cbor(#[from] CborError),
    /// A field of the wrapper or a line of the `tlog-proof` text.
    #[error("log proof: {0}")]
    Format(String),
    /// The checkpoint.
    #[error("log proof checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The leaf.
    #[error("log proof leaf: {0}")]
    Leaf(#[from] LeafError),
    /// The entry is about another envelope.
    #[error("the log entry is about envelope {found}, not this document's")]
    OtherEnvelope {
        /// The entry's envelope digest, hex.
        found: String,
    },
    /// The inclusion proof does not lead to the checkpoint's root.
    #[error("the inclusion proof does not hold: {0}")]
    Inclusion(#[from] ProofError),
    /// No carried chain is the log's seal with a signature line on the checkpoint.
    #[error("no carried certificate of {origin}'s seal signed the checkpoint")]
    NotSignedByLog {
        /// The origin.
        origin: String,
    },
    /// A signature line by a carried key does not verify.
    #[error(transparent)]
    BadLogSignature(#[from] NoteSignatureMismatch),
    /// The log's seal chain is not valid.
    #[error("the log's seal ({agency}): {error}")]
    LogChain {
        /// The log's agency.
        agency: AgencyCode,
        /// Why.
        error: ChainError,
    },
    /// A cosignature line is malformed or does not verify.
    #[error(transparent)]
    Cosignature(#[from] CosignatureError),
    /// More cosignatures than [`MAX_COSIGNATURES`].
    #[error("more than {MAX_COSIGNATURES} cosignatures")]
    TooManyCosignatures,
    /// A cosignature dated after the verification time (beyond the allowed skew).
    #[error("the cosignature by {witness} is dated {at}, after the verification time")]
    FutureCosignature {
        /// The witness.
        witness: AgencyCode,
        /// Its time.
        at: String,
    },
    /// No independent witness remains.
    #[error("no valid cosignature by a witness other than the log ({} refused)", rejected.len())]
    NotWitnessed {
        /// The cosignatures that were not counted, and why.
        rejected: Vec<Rejected>,
    },
}

fn format_error(what: impl Into<String>) -> LogProofError {
    LogProofError::Format(what.into())
}

/// The C2SP `tlog-proof` v1 text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// The `extra` data: lienthong puts the leaf's bytes here.
    pub extra: Option<Vec<u8>>,
    /// The leaf index.
    pub index: u64,
    /// The inclusion proof, leaf's sibling first.
    pub proof: Vec<Hash>,
    /// The checkpoint with its signatures and cosignatures.
    pub checkpoint: SignedCheckpoint,
}

impl TlogProof {
    /// The text.
    pub fn to_text(&self) -> String {
        let mut out = format!("{TLOG_PROOF_HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", BASE64.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for hash in &self.proof {
            out.push_str(&BASE64.encode(hash));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint.to_text());
        out
    }

    /// Reads the text from untrusted bytes (at most [`MAX_LOG_PROOF_BYTES`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, LogProofError> {
        if bytes.len() > MAX_LOG_PROOF_BYTES {
            return Err(CborError::TooLarge { len: bytes.len(), max: MAX_LOG_PROOF_BYTES }.into());
        }
        let blank = bytes
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or_else(|| format_error("no blank line before the checkpoint"))?;
        let head = std::str::from_utf8(&bytes[..blank]).map_err(|_| format_error("the head is not UTF-8"))?;
        let mut lines = head.split('\n').peekable();
        if lines.next() != Some(TLOG_PROOF_HEADER) {
            return Err(format_error(format!("the first line is not {TLOG_PROOF_HEADER}")));
        }
        let extra = match lines.peek().and_then(|l| l.strip_prefix("extra ")) {
            Some(value) => {
                let data = BASE64.decode(value).map_err(|_| format_error("the extra line is not canonical base64"))?;
                lines.next();
                Some(data)
            }
            None => None,
        };
        let index = lines
            .next()
            .and_then(|l| l.strip_prefix("index "))
            .and_then(parse_decimal)
            .ok_or_else(|| format_error("no \"index <n>\" line"))?;
        let mut proof = Vec::new();
        for (i, line) in lines.enumerate() {
            if i >= MAX_PROOF_HASHES {
                return Err(ProofError::TooManyHashes { len: i + 1 }.into());
            }
            proof.push(decode_hash(line).ok_or_else(|| format_error(format!("proof line {} is not a hash", i + 1)))?);
        }
        let checkpoint = SignedCheckpoint::parse(&bytes[blank + 2..])?;
        Ok(TlogProof { extra, index, proof, checkpoint })
    }
}

/// A `tlog-proof` with the seal chains needed to check it offline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogProof {
    /// The standard proof; its `extra` is the leaf.
    pub proof: TlogProof,
    /// The log's and the witnesses' seal chains (DER, leaf first), in any order.
    pub chains: Vec<Vec<Vec<u8>>>,
}

/// A cosignature that was not counted, and why.
#[derive(Clone, Debug)]
pub struct Rejected {
    /// The key name on the line.
    pub name: String,
    /// Why it was not counted.
    pub reason: RejectReason,
}

/// Why a cosignature was not counted.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum RejectReason {
    /// No carried chain holds this witness's key.
    NoCertificate,
    /// The witness is the log's own agency: not independent.
    SelfWitness,
    /// The witness's chain is not valid at the cosignature's time.
    Chain(ChainError),
    /// The validated chain certifies another agency than the key name says.
    WrongAgency {
        /// The agency the chain certifies.
        certified: AgencyCode,
    },
}

/// One verified witness.
#[derive(Clone, Debug)]
pub struct Witnessed {
    /// The witness agency.
    pub agency: AgencyCode,
    /// When it co-signed.
    pub at: OffsetDateTime,
    /// Its seal chain, validated at that time.
    pub chain: VerifiedChain,
}

/// What a verified proof establishes.
#[derive(Clone, Debug)]
pub struct LogEvidence {
    /// The log.
    pub origin: LogOrigin,
    /// The log's seal chain, validated at the earliest cosignature time.
    pub log_chain: VerifiedChain,
    /// The entry.
    pub entry: LogEntry,
    /// Its leaf index.
    pub index: u64,
    /// The checkpoint's tree size.
    pub tree_size: u64,
    /// The witnesses that count, earliest first, each once (never empty).
    pub witnesses: Vec<Witnessed>,
    /// Cosignatures not counted, with the reason.
    pub rejected: Vec<Rejected>,
}

impl LogEvidence {
    /// The earliest witness: its time is when the entry provably existed. Always there in
    /// evidence [`LogProof::verify`] returned (it refuses a proof without a witness).
    pub fn earliest(&self) -> Option<&Witnessed> {
        self.witnesses.first()
    }

    /// The earliest witness other than `agency` (the document's signer, say), if any.
    pub fn earliest_other_than(&self, agency: &AgencyCode) -> Option<&Witnessed> {
        self.witnesses.iter().find(|w| w.agency != *agency)
    }
}

impl LogProof {
    /// A proof of `entry` at `index` under `checkpoint` (with its cosignatures), carrying
    /// `chains`.
    pub fn new(
        entry: &LogEntry,
        index: u64,
        inclusion: Vec<Hash>,
        checkpoint: SignedCheckpoint,
        chains: Vec<Vec<Vec<u8>>>,
    ) -> Self {
        LogProof { proof: TlogProof { extra: Some(entry.to_bytes()), index, proof: inclusion, checkpoint }, chains }
    }

    /// The encoding: a deterministic CBOR map.
    pub fn to_bytes(&self) -> Vec<u8> {
        let text = |s: &str| Value::Text(s.to_owned());
        let chains = self
            .chains
            .iter()
            .map(|chain| Value::Array(chain.iter().map(|der| Value::Bytes(der.clone())).collect()))
            .collect();
        cbor::encode(&Value::Map(vec![
            (text("v"), Value::Integer(LOG_PROOF_VERSION.into())),
            (text("proof"), Value::Text(self.proof.to_text())),
            (text("chains"), Value::Array(chains)),
        ]))
    }

    /// Reads a proof from untrusted bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LogProofError> {
        let Value::Map(entries) = cbor::decode(bytes, LOG_PROOF_LIMITS, true)? else {
            return Err(format_error("not a map"));
        };
        if entries.len() != 3 {
            return Err(format_error("expected exactly the keys v, proof, chains"));
        }
        let get = |k: &str| entries.iter().find(|(key, _)| matches!(key, Value::Text(t) if t == k)).map(|(_, v)| v);
        match get("v") {
            Some(Value::Integer(v)) if u64::try_from(*v).ok() == Some(LOG_PROOF_VERSION) => {}
            _ => return Err(format_error("missing or unsupported version")),
        }
        let Some(Value::Text(text)) = get("proof") else {
            return Err(format_error("missing proof text"));
        };
        let Some(Value::Array(chains)) = get("chains") else {
            return Err(format_error("missing chains"));
        };
        if chains.len() > 1 + MAX_COSIGNATURES {
            return Err(format_error(format!("more than {} chains", 1 + MAX_COSIGNATURES)));
        }
        let chains = chains
            .iter()
            .map(|chain| match chain {
                Value::Array(certs) if !certs.is_empty() && certs.len() <= DEFAULT_MAX_CHAIN_LEN => certs
                    .iter()
                    .map(|c| match c {
                        Value::Bytes(der) => Ok(der.clone()),
                        _ => Err(format_error("a certificate is not bytes")),
                    })
                    .collect::<Result<Vec<_>, _>>(),
                _ => Err(format_error(format!("a chain is not 1 to {DEFAULT_MAX_CHAIN_LEN} certificates"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let proof = TlogProof::parse(text.as_bytes())?;
        if proof.extra.is_none() {
            return Err(format_error("no extra line holding the leaf"));
        }
        Ok(LogProof { proof, chains })
    }

    /// Verifies the proof for the document whose envelope digest is `envelope`, with chains
    /// validated by `validator`; `now` bounds the cosignature times.
    pub fn verify(
        &self,
        envelope: &Hash,
        validator: &Validator,
        now: OffsetDateTime,
    ) -> Result<LogEvidence, LogProofError> {
        let leaf = self.proof.extra.as_deref().ok_or_else(|| format_error("no extra line holding the leaf"))?;
        let entry = LogEntry::from_bytes(leaf)?;
        if entry.envelope() != envelope {
            return Err(LogProofError::OtherEnvelope { found: hex::encode(entry.envelope()) });
        }
        let signed = &self.proof.checkpoint;
        let checkpoint = signed.checkpoint();
        verify_inclusion(
            &super::leaf_hash(leaf),
            self.proof.index,
            checkpoint.size,
            &self.proof.proof,
            &checkpoint.root,
        )?;

        // The carried chains' leaves, parsed once; a chain that does not parse is simply
        // never matched and shows up as the witness or log without a certificate.
        let leaves: Vec<(usize, std::sync::Arc<Certificate>)> = self
            .chains
            .iter()
            .enumerate()
            .filter_map(|(i, chain)| Some((i, validator.certificate(chain.first()?).ok()?)))
            .collect();

        // The log's signature, by a carried chain of the origin's agency.
        let origin = checkpoint.origin;
        let origin_name = origin.to_string();
        let mut log_chain = None;
        for (i, cert) in &leaves {
            let Ok(key) = &cert.public_key else { continue };
            if cert.agency != Some(origin.agency) || signing::note_key_id(&origin_name, key).is_none() {
                continue;
            }
            if signed.note().verify_by(&origin_name, key)? > 0 {
                log_chain = Some(*i);
                break;
            }
        }
        let log_chain = log_chain.ok_or(LogProofError::NotSignedByLog { origin: origin_name.clone() })?;

        // The cosignatures.
        let mut witnesses = Vec::new();
        let mut rejected = Vec::new();
        let mut seen = 0usize;
        for sig in signed.note().signatures() {
            let Some(cosig) = Cosignature::from_note_signature(sig)? else { continue };
            seen += 1;
            if seen > MAX_COSIGNATURES {
                return Err(LogProofError::TooManyCosignatures);
            }
            let reject = |reason| Rejected { name: sig.name.clone(), reason };
            if cosig.witness == origin.agency {
                rejected.push(reject(RejectReason::SelfWitness));
                continue;
            }
            let matching = leaves.iter().find(|(_, cert)| {
                cert.agency == Some(cosig.witness)
                    && cert
                        .public_key
                        .as_ref()
                        .is_ok_and(|k| cosignature_key_id(&cosig.witness, k) == Some(cosig.key_id))
            });
            let Some((chain_index, cert)) = matching else {
                rejected.push(reject(RejectReason::NoCertificate));
                continue;
            };
            let Ok(key) = &cert.public_key else { continue };
            cosig.verify(checkpoint, key)?;
            let at = cosig.at();
            if at > now + MAX_COSIGNATURE_SKEW {
                return Err(LogProofError::FutureCosignature { witness: cosig.witness, at: crate::format_utc(at) });
            }
            match validator.validate(&self.chains[*chain_index], at, Profile::Seal) {
                Ok(chain) if chain.agency == cosig.witness => {
                    witnesses.push(Witnessed { agency: cosig.witness, at, chain });
                }
                Ok(chain) => rejected.push(reject(RejectReason::WrongAgency { certified: chain.agency })),
                Err(error) => rejected.push(reject(RejectReason::Chain(error))),
            }
        }
        if witnesses.is_empty() {
            return Err(LogProofError::NotWitnessed { rejected });
        }
        // Earliest first, one line per witness (a witness whose seal was renewed may have
        // co-signed with both keys): its earliest time is what it attests.
        witnesses.sort_by_key(|w| w.at);
        let mut seen_agencies = Vec::new();
        witnesses.retain(|w| {
            let first = !seen_agencies.contains(&w.agency);
            seen_agencies.push(w.agency);
            first
        });
        let first = witnesses.first().map_or(now, |w| w.at);
        let log_chain = validator
            .validate(&self.chains[log_chain], first, Profile::Seal)
            .map_err(|error| LogProofError::LogChain { agency: origin.agency, error })?;
        if log_chain.agency != origin.agency {
            return Err(LogProofError::NotSignedByLog { origin: origin_name });
        }
        Ok(LogEvidence {
            origin,
            log_chain,
            entry,
            index: self.proof.index,
            tree_size: checkpoint.size,
            witnesses,
            rejected,
        })
    }
}
