//! The node's arrival check: a node judges a document at the time it takes it, by its own
//! clock, not at the signing time the signer claims.
//!
//! Every signer's chain is validated at the arrival time, so a signer revoked (or expired) by
//! then is refused whatever `iat` says, and a signature claiming to be older than
//! [`Arrival::max_age`] is refused too. The hop receipt a node signs after this check is the
//! proof of existence later verifiers rely on ([`super::poe`]): it can only say "this existed
//! at my arrival time" because the node checked the signers were good at that time.

use time::{Duration, OffsetDateTime};

use crate::cert::CertId;
use crate::crl::RevocationReason;
use crate::document::envelope::Envelope;
use crate::document::verify::{DocumentError, MAX_CLOCK_SKEW, Role, VerifiedEnvelope, verify_chains_at};
use crate::format_utc;
use crate::validate::{ChainError, Validator};

/// A suggested default for [`Arrival::max_age`]: three days covers an official signing on a
/// Friday and the clerk sealing and sending on the Monday, and outbox retries (hours at most
/// under the default retry policy), while a signature claimed to be older is refused rather
/// than taken on its word.
pub const DEFAULT_MAX_SIGNATURE_AGE: Duration = Duration::days(3);

/// When a document arrives and how old its signatures may claim to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// The node's clock when the document is taken.
    pub at: OffsetDateTime,
    /// The oldest claimed signing time accepted, before `at`.
    pub max_age: Duration,
}

impl Arrival {
    /// Arrival at `at` with [`DEFAULT_MAX_SIGNATURE_AGE`].
    pub fn new(at: OffsetDateTime) -> Arrival {
        Arrival { at, max_age: DEFAULT_MAX_SIGNATURE_AGE }
    }
}

/// Why a node refuses a document at arrival.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArrivalError {
    /// The envelope, a signature, a chain at arrival (other than revocation), or signer
    /// fidelity.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// A certificate of a signer's chain is revoked at arrival.
    #[error(
        "the {role} (signature #{index}): certificate {cert} was revoked at {} ({reason}); a node refuses a revoked signer at arrival ({}), whatever signing time the signature claims ({})",
        format_utc(*revoked_at),
        format_utc(*arrival),
        format_utc(*claimed)
    )]
    Revoked {
        /// 1-based position of the signature.
        index: usize,
        /// Whose.
        role: Role,
        /// The revoked certificate (the signer's or a CA above it).
        cert: CertId,
        /// When it was revoked.
        revoked_at: OffsetDateTime,
        /// Why.
        reason: RevocationReason,
        /// The signing time the signature claims.
        claimed: OffsetDateTime,
        /// The arrival time.
        arrival: OffsetDateTime,
    },
    /// A signature claims a signing time later than arrival plus the allowed clock skew: the
    /// signer's clock (or this node's) is wrong. Not the document's fault for good: the
    /// sender may try again once the clocks agree.
    #[error(
        "the {role} (signature #{index}) claims to be made at {}, after it arrived here ({}) by more than the {} of clock skew allowed; check the clocks of the signer and of this node",
        format_utc(*claimed),
        format_utc(*arrival),
        describe(MAX_CLOCK_SKEW)
    )]
    InFuture {
        /// 1-based position of the signature.
        index: usize,
        /// Whose.
        role: Role,
        /// The signing time the signature claims.
        claimed: OffsetDateTime,
        /// The arrival time.
        arrival: OffsetDateTime,
    },
    /// A signature claims a signing time older than the maximum age before arrival.
    #[error(
        "the {role} (signature #{index}) claims to be made at {}, {} before it arrived ({}); a node takes signatures made at most {} before arrival",
        format_utc(*claimed),
        describe(*arrival - *claimed),
        format_utc(*arrival),
        describe(*max_age)
    )]
    TooOld {
        /// 1-based position of the signature.
        index: usize,
        /// Whose.
        role: Role,
        /// The signing time the signature claims.
        claimed: OffsetDateTime,
        /// The arrival time.
        arrival: OffsetDateTime,
        /// The limit.
        max_age: Duration,
    },
}

impl ArrivalError {
    /// A short stable name of the refusal, for logs and scripts.
    pub fn kind(&self) -> &'static str {
        match self {
            ArrivalError::Document(e) => e.kind(),
            ArrivalError::Revoked { .. } => "revoked_at_arrival",
            ArrivalError::TooOld { .. } => "signature_too_old",
            ArrivalError::InFuture { .. } => "signing_time_in_future",
        }
    }

    /// True when the refusal may go away by itself (clocks brought into agreement), so a node
    /// answers it as a transient failure rather than with a signed, final refusal.
    pub fn is_transient(&self) -> bool {
        matches!(self, ArrivalError::InFuture { .. })
    }
}

/// A duration for people: `3 days`, `2 h 5 min`, `40 s`.
pub(crate) fn describe(d: Duration) -> String {
    let secs = d.whole_seconds().max(0);
    let (days, hours, mins, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours, mins, s) {
        (d, 0, 0, 0) if d > 0 => format!("{d} day{}", if d == 1 { "" } else { "s" }),
        (0, 0, 0, s) => format!("{s} s"),
        (0, 0, m, 0) => format!("{m} min"),
        (0, 0, m, s) => format!("{m} min {s} s"),
        (0, h, m, _) => format!("{h} h {m} min"),
        (d, h, _, _) => format!("{d} d {h} h"),
    }
}

/// Verifies an envelope as a node taking it at `arrival.at`: the envelope's structure, every
/// signature, every signer's chain validated **at the arrival time** with `validator` (its
/// CRLs and revocation mode), signer fidelity, and every claimed signing time no later than
/// arrival plus clock skew and no earlier than `arrival.max_age` before it. A revoked
/// certificate in a signer's chain is [`ArrivalError::Revoked`].
pub fn verify_arrival(
    envelope: &Envelope,
    validator: &Validator,
    arrival: &Arrival,
) -> Result<VerifiedEnvelope, ArrivalError> {
    let headers = envelope.headers().map_err(DocumentError::from)?;
    // A claimed time in the future of arrival first: the chain check would otherwise report
    // it as a malformed signing time, which is final.
    if let Some(h) = headers.iter().find(|h| h.signing_time > arrival.at + MAX_CLOCK_SKEW) {
        let role = if h.index == 1 { Role::Person } else { Role::Seal };
        return Err(ArrivalError::InFuture { index: h.index, role, claimed: h.signing_time, arrival: arrival.at });
    }
    let verified = verify_chains_at(envelope, validator, arrival.at, |_| arrival.at).map_err(|e| match e {
        DocumentError::Chain { index, role, error: ChainError::Revoked { cert, revoked_at, reason } } => {
            let claimed = headers.iter().find(|h| h.index == index).map_or(arrival.at, |h| h.signing_time);
            ArrivalError::Revoked { index, role, cert, revoked_at, reason, claimed, arrival: arrival.at }
        }
        other => ArrivalError::Document(other),
    })?;
    for (header, signer) in headers.iter().zip(verified.signers()) {
        if arrival.at - header.signing_time > arrival.max_age {
            return Err(ArrivalError::TooOld {
                index: header.index,
                role: signer.role,
                claimed: header.signing_time,
                arrival: arrival.at,
                max_age: arrival.max_age,
            });
        }
    }
    Ok(verified)
}
