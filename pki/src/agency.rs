//! Agency codes in the national format `V1V2V3.Z1Z2.Y1Y2.M1M2M3`.
//!
//! The code is read right to left: `M` names the level-1 body (a ministry or central body
//! `Gnn`, a province `Hnn`), `Y` the level-2 unit under it, `Z` level 3, `V` level 4. Zeros
//! fill the levels a unit does not use, so `000.00.41.H49` is a district of province `H49` and
//! `000.01.41.H49` a commune of that district. The whole system routes and constrains by this
//! type, so it can only be built valid: a parsed code always has a filled level 1 and no filled
//! level under an empty one.

use std::fmt;
use std::str::FromStr;

/// Longest input we look at before refusing it; a valid code has 13 characters, the margin
/// only lets the error say "too long" rather than point at a group.
pub const MAX_INPUT_LEN: usize = 35;

/// An agency's identity in the national code format.
///
/// Ordering is lexical on the four groups from level 1 down, so siblings sort together.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgencyCode {
    /// Level-1 body letter: `G` (ministry or central body) or `H` (province).
    kind: Level1Kind,
    /// Level-1 number `M2M3`, 1..=99.
    m: u8,
    /// Level-2 number `Y1Y2`, 0 when unused.
    y: u8,
    /// Level-3 number `Z1Z2`, 0 when unused.
    z: u8,
    /// Level-4 number `V1V2V3`, 0 when unused.
    v: u16,
}

/// What kind of body heads a level-1 code; the letter `M1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level1Kind {
    /// `G`: ministries, ministry-level agencies and central bodies (the Government Office is
    /// `G22`).
    Central,
    /// `H`: provinces and centrally-run cities.
    Province,
}

impl Level1Kind {
    fn letter(self) -> char {
        match self {
            Level1Kind::Central => 'G',
            Level1Kind::Province => 'H',
        }
    }
}

/// Why a string is not an agency code. Every variant says which part is wrong so the message
/// can point a clerk at the character to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgencyCodeError {
    /// Nothing to parse.
    #[error("agency code is empty; expected the form 000.00.00.H49")]
    Empty,
    /// Longer than any code could be.
    #[error("agency code is {len} characters long; a code has 13 (form 000.00.00.H49)")]
    TooLong {
        /// Length of the input in characters.
        len: usize,
    },
    /// Not four dot-separated groups.
    #[error("agency code {input:?} has {groups} dot-separated groups; expected 4 (form 000.00.00.H49)")]
    GroupCount {
        /// The input as given.
        input: String,
        /// How many groups it had.
        groups: usize,
    },
    /// A group has the wrong number of characters.
    #[error("agency code {input:?}: group {group} ({name}) is {found:?}, expected {expected} characters")]
    GroupWidth {
        /// The input as given.
        input: String,
        /// 1-based position of the group, left to right.
        group: usize,
        /// The group's name in the national format, e.g. `Y1Y2`.
        name: &'static str,
        /// What the group held.
        found: String,
        /// How many characters it must have.
        expected: usize,
    },
    /// A digit was expected.
    #[error("agency code {input:?}: group {name} must be digits, found {found:?}")]
    NotDigits {
        /// The input as given.
        input: String,
        /// The group's name in the national format.
        name: &'static str,
        /// What the group held.
        found: String,
    },
    /// The level-1 letter is lower case.
    #[error("agency code {input:?}: level-1 letter must be upper case ({upper:?}, not {found:?})")]
    LowerCase {
        /// The input as given.
        input: String,
        /// The letter as found.
        found: char,
        /// The letter it should be.
        upper: char,
    },
    /// The level-1 letter is not one we know.
    #[error("agency code {input:?}: unknown level-1 letter {found:?}; expected G (central body) or H (province)")]
    UnknownLetter {
        /// The input as given.
        input: String,
        /// The letter as found.
        found: char,
    },
    /// Level 1 is `00`: a code must name a level-1 body.
    #[error("agency code {input:?}: level-1 number must not be 00")]
    EmptyLevel1 {
        /// The input as given.
        input: String,
    },
    /// A lower level is filled while a level above it is empty.
    #[error("agency code {input:?}: level {filled} is filled but level {empty} above it is empty (00)")]
    FilledUnderEmpty {
        /// The input as given.
        input: String,
        /// The filled level.
        filled: u8,
        /// The empty level above it.
        empty: u8,
    },
}

impl AgencyCode {
    /// Builds a level-1 code from its kind and number; `None` if the number is 0 or above 99.
    pub fn level1(kind: Level1Kind, number: u8) -> Option<Self> {
        (1..=99).contains(&number).then_some(AgencyCode { kind, m: number, y: 0, z: 0, v: 0 })
    }

    /// The level this code names: 1 for a ministry or province, up to 4.
    pub fn level(&self) -> u8 {
        if self.v != 0 {
            4
        } else if self.z != 0 {
            3
        } else if self.y != 0 {
            2
        } else {
            1
        }
    }

    /// The code one level up, or `None` for a level-1 code (only the national root is above).
    pub fn parent(&self) -> Option<AgencyCode> {
        let mut up = *self;
        match self.level() {
            4 => up.v = 0,
            3 => up.z = 0,
            2 => up.y = 0,
            _ => return None,
        }
        Some(up)
    }

    /// Every ancestor from the parent up to the level-1 code.
    pub fn ancestors(&self) -> impl Iterator<Item = AgencyCode> {
        std::iter::successors(self.parent(), AgencyCode::parent)
    }

    /// True when `self` is strictly below `other` in the hierarchy (a descendant, not equal).
    pub fn is_under(&self, other: &AgencyCode) -> bool {
        self.ancestors().any(|a| a == *other)
    }

    /// True when `self` is `other` or below it: the subtree an agency administers.
    pub fn is_within(&self, other: &AgencyCode) -> bool {
        self == other || self.is_under(other)
    }

    /// The level-1 kind (`G` or `H`).
    pub fn level1_kind(&self) -> Level1Kind {
        self.kind
    }

    /// The child of `self` on the way down to `descendant`, if `descendant` is under `self`.
    /// Routing uses this to pick the next hop down the tree.
    pub fn child_towards(&self, descendant: &AgencyCode) -> Option<AgencyCode> {
        if !descendant.is_under(self) {
            return None;
        }
        let mut step = *descendant;
        while let Some(up) = step.parent() {
            if up == *self {
                return Some(step);
            }
            step = up;
        }
        None
    }

    /// The URI under which the code travels in certificates' subjectAltName.
    pub fn to_uri(&self) -> String {
        format!("{URI_PREFIX}{self}")
    }

    /// Reads the code back from a certificate URI; `None` if the URI is not an agency URI,
    /// an error if it is one but the code in it is malformed.
    pub fn from_uri(uri: &str) -> Option<Result<AgencyCode, AgencyCodeError>> {
        uri.strip_prefix(URI_PREFIX).map(str::parse)
    }
}

/// Prefix of the subjectAltName URI that carries an agency code in every certificate.
pub const URI_PREFIX: &str = "urn:lienthong:agency:";

fn digits(input: &str, group: &str, name: &'static str) -> Result<u16, AgencyCodeError> {
    if !group.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AgencyCodeError::NotDigits { input: input.to_owned(), name, found: group.to_owned() });
    }
    // At most three ASCII digits, so the parse cannot overflow.
    Ok(group.bytes().fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0')))
}

impl FromStr for AgencyCode {
    type Err = AgencyCodeError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let len = input.chars().count();
        if len == 0 {
            return Err(AgencyCodeError::Empty);
        }
        if len > MAX_INPUT_LEN {
            return Err(AgencyCodeError::TooLong { len });
        }
        let groups: Vec<&str> = input.split('.').collect();
        if groups.len() != 4 {
            return Err(AgencyCodeError::GroupCount { input: input.to_owned(), groups: groups.len() });
        }
        const SHAPE: [(&str, usize); 4] = [("V1V2V3", 3), ("Z1Z2", 2), ("Y1Y2", 2), ("M1M2M3", 3)];
        for (i, (group, (name, width))) in groups.iter().zip(SHAPE).enumerate() {
            let found = group.chars().count();
            if found != width {
                return Err(AgencyCodeError::GroupWidth {
                    input: input.to_owned(),
                    group: i + 1,
                    name,
                    found: (*group).to_owned(),
                    expected: width,
                });
            }
        }
        let v = digits(input, groups[0], "V1V2V3")?;
        let z = digits(input, groups[1], "Z1Z2")?;
        let y = digits(input, groups[2], "Y1Y2")?;
        let level1 = groups[3];
        let mut chars = level1.chars();
        let letter = chars.next().ok_or(AgencyCodeError::Empty)?;
        let kind = match letter {
            'G' => Level1Kind::Central,
            'H' => Level1Kind::Province,
            'g' | 'h' => {
                return Err(AgencyCodeError::LowerCase {
                    input: input.to_owned(),
                    found: letter,
                    upper: letter.to_ascii_uppercase(),
                });
            }
            other => return Err(AgencyCodeError::UnknownLetter { input: input.to_owned(), found: other }),
        };
        let m = digits(input, chars.as_str(), "M2M3")?;
        if m == 0 {
            return Err(AgencyCodeError::EmptyLevel1 { input: input.to_owned() });
        }
        // Levels from the top: 1 (M), 2 (Y), 3 (Z), 4 (V); a filled level needs every level
        // above it filled.
        let filled = [m != 0, y != 0, z != 0, v != 0];
        for lower in 1..4 {
            if filled[lower] && !filled[lower - 1] {
                return Err(AgencyCodeError::FilledUnderEmpty {
                    input: input.to_owned(),
                    filled: lower as u8 + 1,
                    empty: lower as u8,
                });
            }
        }
        // The digit checks above bound each group to its width, so these fit.
        Ok(AgencyCode { kind, m: m as u8, y: y as u8, z: z as u8, v })
    }
}

impl fmt::Display for AgencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}.{:02}.{:02}.{}{:02}", self.v, self.z, self.y, self.kind.letter(), self.m)
    }
}

impl fmt::Debug for AgencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgencyCode({self})")
    }
}

impl serde::Serialize for AgencyCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for AgencyCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The part of the hierarchy a certificate authority may issue for: the whole country for the
/// national root, or one agency's subtree for a sub-CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The national root: every code.
    National,
    /// One agency and everything under it.
    Agency(AgencyCode),
}

impl Scope {
    /// True when `code` lies in this scope.
    pub fn contains(&self, code: &AgencyCode) -> bool {
        match self {
            Scope::National => true,
            Scope::Agency(top) => code.is_within(top),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::National => f.write_str("national root"),
            Scope::Agency(code) => write!(f, "{code}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(s: &str) -> AgencyCode {
        s.parse().unwrap()
    }

    #[test]
    fn demo_codes_and_levels() {
        assert_eq!(code("000.00.00.G22").level(), 1);
        assert_eq!(code("000.00.00.H49").level(), 1);
        assert_eq!(code("000.00.41.H49").level(), 2);
        assert_eq!(code("000.01.41.H49").level(), 3);
        assert_eq!(code("001.01.41.H49").level(), 4);
        assert_eq!(code("000.01.41.H49").parent(), Some(code("000.00.41.H49")));
        assert_eq!(code("000.00.41.H49").parent(), Some(code("000.00.00.H49")));
        assert_eq!(code("000.00.00.H49").parent(), None);
        assert!(code("000.01.41.H49").is_under(&code("000.00.00.H49")));
        assert!(!code("000.01.41.H49").is_under(&code("000.00.42.H49")));
        assert!(!code("000.00.00.H49").is_under(&code("000.00.00.H49")));
        assert!(code("000.00.00.H49").is_within(&code("000.00.00.H49")));
        assert!(!code("000.00.41.H49").is_under(&code("000.00.00.G22")));
        assert_eq!(code("000.00.00.H49").child_towards(&code("000.01.41.H49")), Some(code("000.00.41.H49")));
        assert_eq!(code("000.00.42.H49").child_towards(&code("000.01.41.H49")), None);
    }

    #[test]
    fn malformed_codes_say_what_is_wrong() {
        use AgencyCodeError as E;
        type Check = fn(&AgencyCodeError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, E::Empty)),
            ("000.00.00.H49.000.00.00.H49.000.00.00", |e| matches!(e, E::TooLong { len: 37 })),
            ("00.00.00.H49", |e| matches!(e, E::GroupWidth { group: 1, .. })),
            ("000.0.00.H49", |e| matches!(e, E::GroupWidth { group: 2, name: "Z1Z2", .. })),
            ("000.00.00.H4", |e| matches!(e, E::GroupWidth { group: 4, .. })),
            ("000.00.H49", |e| matches!(e, E::GroupCount { groups: 3, .. })),
            ("000.00.00.h49", |e| matches!(e, E::LowerCase { found: 'h', upper: 'H', .. })),
            ("000.00.00.X49", |e| matches!(e, E::UnknownLetter { found: 'X', .. })),
            ("000.00.00.H00", |e| matches!(e, E::EmptyLevel1 { .. })),
            ("000.01.00.H49", |e| matches!(e, E::FilledUnderEmpty { filled: 3, empty: 2, .. })),
            ("001.00.41.H49", |e| matches!(e, E::FilledUnderEmpty { filled: 4, empty: 3, .. })),
            ("0a0.00.00.H49", |e| matches!(e, E::NotDigits { name: "V1V2V3", .. })),
            ("000.00.00.H4x", |e| matches!(e, E::NotDigits { name: "M2M3", .. })),
            ("000.00.00.Hé9", |e| matches!(e, E::NotDigits { .. })),
            ("000.00.00.ĐH4", |e| matches!(e, E::UnknownLetter { .. })),
        ];
        for (input, check) in cases {
            let err = input.parse::<AgencyCode>().unwrap_err();
            assert!(check(&err), "{input:?} gave {err:?}");
            assert!(!err.to_string().is_empty());
        }
        // The message names the offending group.
        let err = "000.0.00.H49".parse::<AgencyCode>().unwrap_err().to_string();
        assert!(err.contains("Z1Z2") && err.contains("expected 2"), "{err}");
    }

    #[test]
    fn uri_round_trip() {
        let c = code("000.01.41.H49");
        assert_eq!(c.to_uri(), "urn:lienthong:agency:000.01.41.H49");
        assert_eq!(AgencyCode::from_uri(&c.to_uri()), Some(Ok(c)));
        assert_eq!(AgencyCode::from_uri("https://example.org"), None);
        assert!(matches!(AgencyCode::from_uri("urn:lienthong:agency:bad"), Some(Err(_))));
    }

    fn any_code() -> impl Strategy<Value = AgencyCode> {
        (any::<bool>(), 1u8..=99, 0u8..=4, 1u8..=99, 1u8..=99, 1u16..=999).prop_map(|(central, m, level, y, z, v)| {
            AgencyCode {
                kind: if central { Level1Kind::Central } else { Level1Kind::Province },
                m,
                y: if level >= 2 { y } else { 0 },
                z: if level >= 3 { z } else { 0 },
                v: if level >= 4 { v } else { 0 },
            }
        })
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(c in any_code()) {
            let text = c.to_string();
            prop_assert_eq!(text.len(), 13);
            prop_assert_eq!(text.parse::<AgencyCode>(), Ok(c));
        }

        #[test]
        fn parse_display_round_trip(s in "[0-9]{3}\\.[0-9]{2}\\.[0-9]{2}\\.[GH][0-9]{2}") {
            // Whatever parses prints back to exactly the same text.
            if let Ok(c) = s.parse::<AgencyCode>() {
                prop_assert_eq!(c.to_string(), s);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<AgencyCode>();
        }

        #[test]
        fn ancestors_are_exactly_the_codes_above(
            (c, d) in prop_oneof![
                // Half the cases: d is an ancestor of c (or c itself), so the branches below run.
                (any_code(), 0..4usize).prop_map(|(c, k)| (c, c.ancestors().nth(k).unwrap_or(c))),
                // The other half: an unrelated code.
                (any_code(), any_code()),
            ]
        ) {
            // The ancestor chain has one code per level above, each one level shorter.
            let chain: Vec<_> = c.ancestors().collect();
            prop_assert_eq!(chain.len(), usize::from(c.level() - 1));
            for (i, a) in chain.iter().enumerate() {
                prop_assert_eq!(a.level(), c.level() - 1 - i as u8);
                prop_assert!(c.is_under(a));
            }
            // is_under is a strict partial order consistent with levels and parents, and it
            // holds exactly for the codes on the ancestor chain.
            prop_assert!(!c.is_under(&c));
            prop_assert_eq!(c.is_under(&d), chain.contains(&d));
            if c.is_under(&d) {
                prop_assert!(!d.is_under(&c));
                prop_assert!(d.level() < c.level());
                prop_assert_eq!(d.child_towards(&c).and_then(|s| s.parent()), Some(d));
            }
            // Transitivity through the parent.
            if let Some(p) = c.parent() && p.is_under(&d) {
                prop_assert!(c.is_under(&d));
            }
        }
    }
}
