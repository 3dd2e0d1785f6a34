//! CBOR rules for what lienthong signs and reads.
//!
//! Two jobs. First, a bounded pre-scan ([`scan`]) that walks the item headers of untrusted
//! input before any decoder sees it: every declared length must fit in the input, nesting and
//! item counts stay under limits, indefinite lengths and floats are refused. A hostile bundle
//! therefore gets a clear error and never a deep recursion or a large allocation. Second,
//! deterministic encoding (RFC 8949 §4.2.1, "core deterministic"): shortest-form heads,
//! definite lengths, map keys sorted by their encoded bytes, and no bignums (an integer has one
//! spelling). [`encode`] writes it and [`scan`] with `canonical` checks it, so one manifest has
//! exactly one encoding.

use ciborium::Value;

/// Bounds on a CBOR input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CborLimits {
    /// Largest input, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of arrays, maps and tags.
    pub max_depth: usize,
    /// Most data items in all.
    pub max_items: usize,
}

impl CborLimits {
    /// Limits for a manifest: 256 KiB is some 500 attachments with long names; a manifest
    /// nests at most 4 deep (map → attachments array → attachment map → values).
    pub const MANIFEST: CborLimits = CborLimits { max_bytes: 256 * 1024, max_depth: 8, max_items: 20_000 };
    /// Limits for a COSE envelope: the manifest plus two signatures with chains of up to 8
    /// certificates of up to 16 KiB.
    pub const ENVELOPE: CborLimits = CborLimits { max_bytes: 512 * 1024, max_depth: 8, max_items: 20_000 };
    /// Limits for a receipt or status message.
    pub const RECEIPT: CborLimits = CborLimits { max_bytes: 64 * 1024, max_depth: 8, max_items: 1_000 };
    /// Limits for a signed receipt (COSE_Sign1: the receipt plus the seal's chain of up to 8
    /// certificates of up to 16 KiB), the same wherever one is read (from a neighbour, from
    /// a bundle), so a receipt a node keeps always fits a bundle.
    pub const SIGNED_RECEIPT: CborLimits = CborLimits { max_bytes: 256 * 1024, max_depth: 8, max_items: 2_000 };
}

/// Why CBOR input was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CborError {
    /// Input over the size limit.
    #[error("CBOR input is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Empty input.
    #[error("CBOR input is empty")]
    Empty,
    /// Nesting over the limit.
    #[error("CBOR nesting deeper than {max} at byte {offset}")]
    TooDeep {
        /// The limit.
        max: usize,
        /// Where.
        offset: usize,
    },
    /// Too many items.
    #[error("more than {max} CBOR items")]
    TooManyItems {
        /// The limit.
        max: usize,
    },
    /// A length runs past the end of the input.
    #[error("CBOR input truncated: an item at byte {offset} declares {declared} bytes, {available} remain")]
    Truncated {
        /// Where the item starts.
        offset: usize,
        /// What it declares.
        declared: u64,
        /// What is left.
        available: usize,
    },
    /// Something other than well-formed, definite-length CBOR without floats.
    #[error("malformed CBOR at byte {offset}: {what}")]
    Malformed {
        /// Where.
        offset: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// Bytes after the one top-level item.
    #[error("{0} bytes after the CBOR item")]
    Trailing(usize),
    /// Well formed but not in deterministic encoding.
    #[error("CBOR at byte {offset} is not in deterministic encoding: {what}")]
    NotDeterministic {
        /// Where.
        offset: usize,
        /// What is wrong.
        what: &'static str,
    },
}

/// One container being walked: how many items it still expects, and for a map, where the
/// previous key started and ended (to check ordering).
struct Open {
    remaining: u64,
    is_map: bool,
    /// Items seen so far in a map (even: keys).
    seen: u64,
    /// Where the key being read started.
    key_start: usize,
    /// Where the previous key started and ended.
    last_key: Option<(usize, usize)>,
}

/// Walks `bytes` as exactly one CBOR item under `limits`; with `canonical`, also requires
/// deterministic encoding. Never allocates more than the nesting depth.
pub fn scan(bytes: &[u8], limits: CborLimits, canonical: bool) -> Result<(), CborError> {
    if bytes.is_empty() {
        return Err(CborError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(CborError::TooLarge { len: bytes.len(), max: limits.max_bytes });
    }
    let mut pos = 0usize;
    let mut stack: Vec<Open> = Vec::new();
    let mut items = 0usize;
    loop {
        // Record where the current item starts if it is a map key.
        let start = pos;
        if let Some(top) = stack.last_mut()
            && top.is_map
            && top.seen % 2 == 0
        {
            top.key_start = start;
        }
        items += 1;
        if items > limits.max_items {
            return Err(CborError::TooManyItems { max: limits.max_items });
        }
        let (major, arg) = head(bytes, &mut pos, canonical)?;
        match major {
            0 | 1 => {}
            2 | 3 => {
                let available = bytes.len() - pos;
                if arg > available as u64 {
                    return Err(CborError::Truncated { offset: start, declared: arg, available });
                }
                if major == 3 && std::str::from_utf8(&bytes[pos..pos + arg as usize]).is_err() {
                    return Err(CborError::Malformed { offset: start, what: "text string is not UTF-8" });
                }
                pos += arg as usize;
            }
            4 | 5 => {
                let count = if major == 5 { arg.saturating_mul(2) } else { arg };
                // Every item takes at least one byte: a count beyond the input is a lie.
                if count > (bytes.len() - pos) as u64 {
                    return Err(CborError::Truncated { offset: start, declared: count, available: bytes.len() - pos });
                }
                if count > 0 {
                    if stack.len() >= limits.max_depth {
                        return Err(CborError::TooDeep { max: limits.max_depth, offset: start });
                    }
                    stack.push(Open { remaining: count, is_map: major == 5, seen: 0, key_start: 0, last_key: None });
                    continue;
                }
            }
            6 => {
                // A bignum can spell an integer a second way (found by fuzzing: a manifest
                // whose number was `0xc2 0x41 0x01` decoded, and re-encoded as `0x01`).
                // Nothing lienthong signs uses bignums, so deterministic input has none.
                if canonical && (arg == 2 || arg == 3) {
                    return Err(CborError::NotDeterministic {
                        offset: start,
                        what: "bignums are not used (an integer is written as an integer)",
                    });
                }
                if stack.len() >= limits.max_depth {
                    return Err(CborError::TooDeep { max: limits.max_depth, offset: start });
                }
                stack.push(Open { remaining: 1, is_map: false, seen: 0, key_start: 0, last_key: None });
                continue;
            }
            _ => match arg {
                // false, true, null.
                20..=22 => {}
                _ => {
                    return Err(CborError::Malformed {
                        offset: start,
                        what: "floats and simple values other than false, true and null are not used",
                    });
                }
            },
        }
        // The item is complete: pop finished containers.
        loop {
            let Some(top) = stack.last_mut() else {
                if pos != bytes.len() {
                    return Err(CborError::Trailing(bytes.len() - pos));
                }
                return Ok(());
            };
            if top.is_map && top.seen % 2 == 0 {
                // A key just ended: check ordering against the previous key.
                let this = (top.key_start, pos);
                if canonical
                    && let Some((ps, pe)) = top.last_key
                    && bytes[ps..pe] >= bytes[this.0..this.1]
                {
                    return Err(CborError::NotDeterministic {
                        offset: this.0,
                        what: "map keys are not in ascending order of their encoding (or repeat)",
                    });
                }
                top.last_key = Some(this);
            }
            top.seen += 1;
            top.remaining -= 1;
            if top.remaining > 0 {
                break;
            }
            stack.pop();
        }
        if pos >= bytes.len() {
            return Err(CborError::Truncated { offset: pos, declared: 1, available: 0 });
        }
    }
}

/// Reads one item head, returning (major type, argument).
fn head(bytes: &[u8], pos: &mut usize, canonical: bool) -> Result<(u8, u64), CborError> {
    let start = *pos;
    let initial = *bytes.get(start).ok_or(CborError::Truncated { offset: start, declared: 1, available: 0 })?;
    *pos += 1;
    let major = initial >> 5;
    let info = initial & 0x1f;
    let extra = match info {
        0..=23 => return Ok((major, u64::from(info))),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        31 => return Err(CborError::Malformed { offset: start, what: "indefinite lengths are not allowed" }),
        _ => return Err(CborError::Malformed { offset: start, what: "reserved additional information" }),
    };
    if major == 7 {
        return Err(CborError::Malformed { offset: start, what: "floats are not used" });
    }
    let available = bytes.len() - *pos;
    if extra > available {
        return Err(CborError::Truncated { offset: start, declared: extra as u64, available });
    }
    let arg = bytes[*pos..*pos + extra].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    *pos += extra;
    if canonical {
        let shortest = match arg {
            0..=23 => 0,
            24..=0xff => 1,
            0x100..=0xffff => 2,
            0x1_0000..=0xffff_ffff => 4,
            _ => 8,
        };
        if extra != shortest {
            return Err(CborError::NotDeterministic { offset: start, what: "a head is not in its shortest form" });
        }
    }
    Ok((major, arg))
}

/// Encodes `value` deterministically: map keys sorted by their encoded bytes, recursively.
pub fn encode(value: &Value) -> Vec<u8> {
    let sorted = sort_maps(value.clone());
    let mut out = Vec::new();
    // Writing to a Vec cannot fail, and every Value we build is encodable.
    if ciborium::into_writer(&sorted, &mut out).is_err() {
        out.clear();
    }
    out
}

fn sort_maps(value: Value) -> Value {
    match value {
        Value::Map(entries) => {
            let mut keyed: Vec<(Vec<u8>, Value, Value)> = entries
                .into_iter()
                .map(|(k, v)| {
                    let k = sort_maps(k);
                    let mut enc = Vec::new();
                    let _ = ciborium::into_writer(&k, &mut enc);
                    (enc, k, sort_maps(v))
                })
                .collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Map(keyed.into_iter().map(|(_, k, v)| (k, v)).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_maps).collect()),
        Value::Tag(t, inner) => Value::Tag(t, Box::new(sort_maps(*inner))),
        other => other,
    }
}

/// Decodes `bytes` into a `Value` after [`scan`] has passed.
pub fn decode(bytes: &[u8], limits: CborLimits, canonical: bool) -> Result<Value, CborError> {
    scan(bytes, limits, canonical)?;
    ciborium::from_reader(bytes).map_err(|_| CborError::Malformed { offset: 0, what: "undecodable" })
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: CborLimits = CborLimits { max_bytes: 1024, max_depth: 4, max_items: 100 };

    #[test]
    fn accepts_deterministic_and_refuses_the_rest() {
        let v = Value::Map(vec![
            (Value::Text("to".into()), Value::Array(vec![Value::Integer(1.into())])),
            (Value::Text("a".into()), Value::Bytes(vec![1, 2, 3])),
        ]);
        let bytes = encode(&v);
        assert!(scan(&bytes, L, true).is_ok());
        // "a" sorts before "to" (shorter encoding first).
        assert_eq!(bytes[1], 0x61);
        // Same map with keys swapped is well formed but not deterministic.
        let mut swapped = Vec::new();
        ciborium::into_writer(&v, &mut swapped).unwrap();
        assert!(scan(&swapped, L, false).is_ok());
        assert!(matches!(scan(&swapped, L, true), Err(CborError::NotDeterministic { .. })));
        // A non-shortest head: 5 encoded as 0x18 0x05.
        assert!(matches!(scan(&[0x18, 0x05], L, true), Err(CborError::NotDeterministic { .. })));
        assert!(scan(&[0x18, 0x05], L, false).is_ok());
        // A bignum: 1 written as tag 2 over one byte.
        assert!(matches!(scan(&[0xc2, 0x41, 0x01], L, true), Err(CborError::NotDeterministic { .. })));
        assert!(matches!(scan(&[0xc3, 0x41, 0x01], L, true), Err(CborError::NotDeterministic { .. })));
        assert!(scan(&[0xc2, 0x41, 0x01], L, false).is_ok());
    }

    #[test]
    fn hostile_inputs_get_clear_errors() {
        // A byte string claiming 2^62 bytes.
        let huge = [0x5b, 0x40, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(scan(&huge, L, false), Err(CborError::Truncated { .. })));
        // An array claiming a billion items.
        assert!(matches!(scan(&[0x9a, 0x3b, 0x9a, 0xca, 0x00], L, false), Err(CborError::Truncated { .. })));
        // Deep nesting: [[[[[1]]]]].
        assert!(matches!(
            scan(&[0x81, 0x81, 0x81, 0x81, 0x81, 0x01], L, false),
            Err(CborError::TooDeep { max: 4, .. })
        ));
        // Deep tags.
        assert!(matches!(scan(&[0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0x01], L, false), Err(CborError::TooDeep { .. })));
        // Indefinite length, floats, reserved info, trailing data, truncation, bad UTF-8.
        assert!(matches!(scan(&[0x9f, 0x01, 0xff], L, false), Err(CborError::Malformed { .. })));
        assert!(matches!(scan(&[0xf9, 0x3c, 0x00], L, false), Err(CborError::Malformed { .. })));
        assert!(matches!(scan(&[0x1c], L, false), Err(CborError::Malformed { .. })));
        assert!(matches!(scan(&[0x01, 0x02], L, false), Err(CborError::Trailing(1))));
        assert!(matches!(scan(&[0x82, 0x01], L, false), Err(CborError::Truncated { .. })));
        assert!(matches!(scan(&[0x62, 0xff, 0xfe], L, false), Err(CborError::Malformed { .. })));
        assert!(matches!(scan(&[], L, false), Err(CborError::Empty)));
        assert!(matches!(scan(&vec![0x40; 2000], L, false), Err(CborError::TooLarge { .. })));
        // Too many items.
        let mut many = vec![0x98, 200];
        many.extend(std::iter::repeat_n(0x01, 200));
        assert!(matches!(
            scan(&many, CborLimits { max_bytes: 1024, max_depth: 4, max_items: 100 }, false),
            Err(CborError::TooManyItems { .. })
        ));
    }

    #[test]
    fn scan_never_panics_on_arbitrary_bytes() {
        use proptest::prelude::*;
        proptest!(|(bytes in proptest::collection::vec(any::<u8>(), 0..200))| {
            let _ = scan(&bytes, L, true);
            let _ = scan(&bytes, L, false);
        });
    }
}
