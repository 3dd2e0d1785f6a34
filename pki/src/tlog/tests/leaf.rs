//! The leaf format: round trips, the pinned encoding, and hostile bytes.

use ciborium::Value;
use proptest::prelude::*;
use time::macros::datetime;

use super::super::leaf::{LeafError, LogEntry, MAX_LEAF_BYTES, Via};
use crate::document::cbor::{self, CborError};
use crate::document::{ReceiptKind, StatusCode};

fn entries() -> Vec<LogEntry> {
    let at = datetime!(2026-11-23 08:15:00 UTC);
    vec![
        LogEntry::Document {
            envelope: [0xab; 32],
            document: "000.01.41.H49,2026/11/23,123/UBND-VP".parse().unwrap(),
            via: Via::Clerk,
            at,
        },
        LogEntry::Document {
            envelope: [1; 32],
            document: "000.01.41.H49,2026/11/23,124/UBND-VP".parse().unwrap(),
            via: Via::Node("000.00.41.H49".parse().unwrap()),
            at,
        },
        LogEntry::Signed { receipt: [2; 32], kind: ReceiptKind::Hop, envelope: [3; 32], at },
        LogEntry::Signed { receipt: [4; 32], kind: ReceiptKind::Status(StatusCode::Arrived), envelope: [5; 32], at },
        LogEntry::Recorded {
            receipt: [6; 32],
            kind: ReceiptKind::Status(StatusCode::RefusedByRecipient),
            by: "000.00.00.G22".parse().unwrap(),
            envelope: [7; 32],
            at,
        },
        LogEntry::Recorded {
            receipt: [8; 32],
            kind: ReceiptKind::Hop,
            by: "000.00.00.H49".parse().unwrap(),
            envelope: [9; 32],
            at,
        },
    ]
}

#[test]
fn every_entry_round_trips_through_its_one_encoding() {
    for entry in entries() {
        let bytes = entry.to_bytes();
        assert!(bytes.len() < 250, "{} bytes", bytes.len());
        cbor::scan(&bytes, cbor::CborLimits::RECEIPT, true).unwrap();
        assert_eq!(LogEntry::from_bytes(&bytes).unwrap(), entry);
        assert_eq!(entry.leaf_hash(), super::super::leaf_hash(&bytes));
    }
}

#[test]
fn the_encoding_is_pinned() {
    // Version 1's bytes for a document a clerk sent. If this changes, leaves already in
    // logs would no longer match: bump LEAF_VERSION instead. Checked independently with
    // Python's cbor2: it decodes to {"t": "document", "v": 1, "at": 1795421700, "doc":
    // "000.01.41.H49,2026/11/23,123/UBND-VP", "env": h'abab…', "via": "clerk"} and its
    // canonical encoding of that map is these very bytes.
    let bytes = entries()[0].to_bytes();
    assert_eq!(
        hex::encode(&bytes),
        concat!(
            "a6617468646f63756d656e74617601",
            "6261741a6b03f604",
            "63646f637824",
            "3030302e30312e34312e4834392c323032362f31312f32332c3132332f55424e442d5650",
            "63656e765820abababababababababababababababababababababababababababababababab",
            "6376696165636c65726b"
        )
    );
}

fn with(entry: &LogEntry, change: impl FnOnce(&mut Vec<(Value, Value)>)) -> Vec<u8> {
    let value: Value = ciborium::from_reader(entry.to_bytes().as_slice()).unwrap();
    let Value::Map(mut map) = value else { panic!() };
    change(&mut map);
    cbor::encode(&Value::Map(map))
}

fn set(map: &mut Vec<(Value, Value)>, key: &str, value: Value) {
    map.retain(|(k, _)| k.as_text() != Some(key));
    map.push((Value::Text(key.to_owned()), value));
}

fn refused(bytes: &[u8], field: &str) {
    match LogEntry::from_bytes(bytes) {
        Err(LeafError::Field { field: f, .. }) => assert_eq!(f, field, "{:?}", LogEntry::from_bytes(bytes)),
        other => panic!("expected a refusal of {field}, got {other:?}"),
    }
}

#[test]
fn wrong_fields_are_refused_by_name() {
    let all = entries();
    let (doc, signed, recorded) = (&all[0], &all[3], &all[4]);
    refused(&with(doc, |m| set(m, "v", Value::Integer(2.into()))), "v");
    refused(&with(doc, |m| set(m, "t", Value::Text("other".into()))), "t");
    refused(&with(doc, |m| set(m, "env", Value::Bytes(vec![0; 31]))), "env");
    refused(&with(doc, |m| set(m, "env", Value::Text("x".into()))), "env");
    refused(&with(doc, |m| m.retain(|(k, _)| k.as_text() != Some("at"))), "at");
    refused(&with(doc, |m| set(m, "at", Value::Integer(i64::MAX.into()))), "at");
    refused(&with(doc, |m| set(m, "doc", Value::Text("not an id".into()))), "doc");
    refused(&with(doc, |m| set(m, "via", Value::Text("000.00.41.h49".into()))), "via");
    refused(&with(doc, |m| set(m, "extra", Value::Null)), "(top level)");
    // A key of another entry type.
    refused(&with(doc, |m| set(m, "rcpt", Value::Bytes(vec![0; 32]))), "(top level)");
    refused(&with(signed, |m| set(m, "by", Value::Text("000.00.00.G22".into()))), "(top level)");
    refused(&with(signed, |m| set(m, "kind", Value::Text("receipt".into()))), "kind");
    refused(&with(signed, |m| set(m, "status", Value::Integer(7.into()))), "status");
    refused(&with(signed, |m| set(m, "status", Value::Integer((-1).into()))), "status");
    refused(&with(&all[2], |m| set(m, "status", Value::Integer(1.into()))), "status");
    refused(&with(recorded, |m| m.retain(|(k, _)| k.as_text() != Some("by"))), "by");
    // A document id in a form that parses but is not its own: two encodings, one entry.
    refused(&with(doc, |m| set(m, "doc", Value::Text("000.01.41.H49,2026/11/23,0123/UBND-VP".into()))), "(top level)");
}

#[test]
fn non_deterministic_or_oversized_cbor_is_refused() {
    let bytes = entries()[0].to_bytes();
    // The same map with its keys in another order.
    let value: Value = ciborium::from_reader(bytes.as_slice()).unwrap();
    let Value::Map(mut map) = value else { panic!() };
    map.reverse();
    let mut unsorted = Vec::new();
    ciborium::into_writer(&Value::Map(map), &mut unsorted).unwrap();
    assert!(matches!(LogEntry::from_bytes(&unsorted), Err(LeafError::Cbor(CborError::NotDeterministic { .. }))));
    let big = vec![0x40; MAX_LEAF_BYTES + 1];
    assert!(matches!(LogEntry::from_bytes(&big), Err(LeafError::Cbor(CborError::TooLarge { .. }))));
    assert!(matches!(LogEntry::from_bytes(&[]), Err(LeafError::Cbor(CborError::Empty))));
    assert!(matches!(LogEntry::from_bytes(&[0x01]), Err(LeafError::Field { .. })));
}

proptest! {
    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = LogEntry::from_bytes(&bytes);
    }

    /// Any one changed byte of a valid leaf is refused or reads as another entry (its hash
    /// changes with it): never the same entry from other bytes.
    #[test]
    fn a_changed_byte_never_reads_as_the_same_entry(which in 0usize..6, pos in any::<usize>(), xor in 1u8..=255) {
        let entry = entries()[which].clone();
        let mut bytes = entry.to_bytes();
        let pos = pos % bytes.len();
        bytes[pos] ^= xor;
        if let Ok(other) = LogEntry::from_bytes(&bytes) {
            prop_assert_ne!(other, entry);
        }
    }
}
