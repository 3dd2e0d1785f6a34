//! Reading a configuration file as a spanned TOML document, so that every problem of the file
//! is reported at once, each with its key path and line, in plain words.
//!
//! The typed structures (`RawConfig` and its sections) stay plain serde structures: adding a
//! section is adding a field with `#[derive(Deserialize)]`, nothing here changes. serde stops
//! at the first error, so [`Document::read`] loops: it deserializes the document,
//! turns the error into a [`Problem`] located by its span in the parsed document (unknown key,
//! wrong type, missing key), takes the offending entry out (or puts a stand-in where a
//! required key is missing) and tries again, until the rest of the file reads. What it
//! removed or stood in for is remembered, so the caller can leave out the follow-on problems
//! the semantic checks would find in those keys.

use std::borrow::Cow;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One problem of a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key path, like `limits.max_connections` or `child[1].address`; empty for the file
    /// as a whole.
    pub key: String,
    /// The 1-based line of the key (or of its section) in the file, when the file names it.
    pub line: Option<usize>,
    /// What is wrong, in words.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.key, self.message) }
    }
}

/// A step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Renders a path as the validator writes keys: `a.b`, `child[1].address`.
fn dotted(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Reads `child[1].address` back into steps.
fn parse_path(key: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return None;
        }
        steps.push(Step::Key(name.to_owned()));
        while !rest.is_empty() {
            let (index, after) = rest.split_once(']')?;
            steps.push(Step::Index(index.parse().ok()?));
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    Some(steps)
}

/// How many times [`Document::read`] tries again: far more problems than a file has
/// before anyone reads the list, and a bound on the work a hostile file can cause.
const MAX_ROUNDS: usize = 200;

/// What stands in for a missing required key, tried in turn until its type fits.
const STAND_INS: &[&str] = &["\"\"", "0", "false", "[]", "{}"];

/// A parsed configuration file.
pub(super) struct Document<'t> {
    text: &'t str,
    root: Spanned<DeTable<'t>>,
}

impl<'t> Document<'t> {
    /// Parses `text` as TOML; a file that is not TOML gives its syntax errors, each with its
    /// line.
    pub(super) fn parse(text: &'t str) -> Result<Document<'t>, Vec<Problem>> {
        let (root, errors) = DeTable::parse_recoverable(text);
        if errors.is_empty() {
            return Ok(Document { text, root });
        }
        Err(errors
            .iter()
            .map(|e| Problem {
                key: String::new(),
                line: e.span().map(|s| line_of(text, s.start)),
                message: format!("not valid TOML: {}", e.message().trim().replace('\n', "; ")),
            })
            .collect())
    }

    /// [`Document::read`]'s value and problems.
    #[cfg(test)]
    pub(super) fn deserialize<T: DeserializeOwned>(&self) -> (Option<T>, Vec<Problem>) {
        let read = self.read::<T>();
        (read.value, read.problems)
    }

    /// Deserializes the document into `T`, collecting every problem serde finds on the way,
    /// with the keys whose values were left out or stood in for. No value when something could
    /// not be stepped over (then the problems say what).
    pub(super) fn read<T: DeserializeOwned>(&self) -> Read<T> {
        let mut doc = self.root.clone();
        let mut problems: Vec<Problem> = Vec::new();
        let mut reported: Vec<Vec<Step>> = Vec::new();
        // Keys suggested for unknown ones ("did you mean `listen`?"): their absence is that
        // slip, not a second problem.
        let mut suggested: Vec<Vec<Step>> = Vec::new();
        // Stand-ins put where a required key was missing, with the index of the one in place.
        let mut stand_ins: Vec<(Vec<Step>, usize)> = Vec::new();
        let fake_span = |n: usize| self.text.len() + 1 + 2 * n..self.text.len() + 1 + 2 * n;
        for round in 0..MAX_ROUNDS {
            let error = match T::deserialize(toml::de::Deserializer::from(doc.clone())) {
                Ok(value) => {
                    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
                    return Read {
                        value: Some(value),
                        problems,
                        covered: reported.iter().map(|p| dotted(p)).collect(),
                    };
                }
                Err(e) => e,
            };
            let message = error.message().to_owned();
            let Some(span) = error.span() else {
                problems.push(Problem { key: String::new(), line: None, message });
                return Read { value: None, problems, covered: Vec::new() };
            };
            let shadowed = |path: &[Step], reported: &[Vec<Step>]| reported.iter().any(|r| path.starts_with(r));
            if let Some(field) = backticked(&message).first().filter(|_| message.starts_with("missing field")) {
                let Some(mut path) = find_table(&doc, span.clone()) else { break };
                let line = entry_line(self.text, &self.root, &path);
                path.push(Step::Key(field.clone()));
                if !shadowed(&path, &reported) {
                    if !suggested.contains(&path) {
                        problems.push(Problem { key: dotted(&path), line, message: "is required but missing".into() });
                    }
                    reported.push(path.clone());
                }
                if !put(&mut doc, &path, stand_in(0, fake_span(round))) {
                    break;
                }
                stand_ins.push((path, 0));
                continue;
            }
            let Some(path) = find(&doc, span.clone()) else { break };
            if let Some((_, tried)) = stand_ins.iter_mut().find(|(p, _)| *p == path) {
                *tried += 1;
                if *tried >= STAND_INS.len() || !put(&mut doc, &path, stand_in(*tried, fake_span(round))) {
                    break;
                }
                continue;
            }
            if !shadowed(&path, &reported) {
                let written = self.text.get(span.clone()).unwrap_or("").trim();
                let message = plain_words(&message, written);
                if let Some(key) = backticked(&message).first()
                    && message.starts_with("unknown key; did you mean")
                {
                    suggested.push(path[..path.len() - 1].iter().cloned().chain([Step::Key(key.clone())]).collect());
                }
                problems.push(Problem {
                    key: dotted(&path),
                    line: (span.start < self.text.len()).then(|| line_of(self.text, span.start)),
                    message,
                });
                reported.push(path.clone());
            }
            if !remove(&mut doc, &path) {
                break;
            }
        }
        problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        if problems.is_empty() {
            problems.push(Problem {
                key: String::new(),
                line: None,
                message: "cannot be read as a lienthong-node configuration".into(),
            });
        }
        Read { value: None, problems, covered: Vec::new() }
    }

    /// The line where `key` (a path like `child[1].address`) is written, or else the line of
    /// the nearest section above it that is; `None` for keys the file does not name at all.
    pub(super) fn line(&self, key: &str) -> Option<usize> {
        let path = parse_path(key)?;
        (1..=path.len()).rev().find_map(|n| entry_line(self.text, &self.root, &path[..n]))
    }
}

/// What [`Document::read`] makes of a document.
pub(super) struct Read<T> {
    /// The value, unless something could not be stepped over.
    pub(super) value: Option<T>,
    /// The problems, in the order of the file.
    pub(super) problems: Vec<Problem>,
    /// The keys whose values were left out (or stood in for): problems later checks find in
    /// them, or in keys that mention them, follow from these.
    pub(super) covered: Vec<String>,
}

/// Whether a later problem (`key`, `message`) follows from a key already dealt with: it is
/// about that key or one below it, or it names that key ("must be shorter than
/// limits.idle_timeout" when idle_timeout's value was refused).
pub(super) fn follows_from(key: &str, message: &str, covered: &[String]) -> bool {
    covered.iter().any(|c| {
        covered_by(key, c)
            || message.match_indices(c.as_str()).any(|(at, _)| {
                let after = message[at + c.len()..].chars().next();
                !after.is_some_and(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            })
    })
}

/// Whether `path` is `under` or below it: a problem already reported for `under` covers it.
pub(super) fn covered_by(key: &str, under: &str) -> bool {
    !under.is_empty()
        && key.strip_prefix(under).is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

fn stand_in(which: usize, span: Range<usize>) -> Spanned<DeValue<'static>> {
    let value = DeValue::parse(STAND_INS[which]).map(Spanned::into_inner).unwrap_or(DeValue::Boolean(false));
    Spanned::new(span, value)
}

/// The line of the entry at `path` in the file as written: of its key (for a section, its
/// header), or of the array element.
fn entry_line(text: &str, root: &Spanned<DeTable<'_>>, path: &[Step]) -> Option<usize> {
    let mut table = root.get_ref();
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    let mut span: Option<Range<usize>> = None;
    for step in path {
        match (step, value.map(Spanned::get_ref)) {
            (Step::Key(k), None | Some(DeValue::Table(_))) => {
                if let Some(DeValue::Table(t)) = value.map(Spanned::get_ref) {
                    table = t;
                }
                let (key, v) = table.get_key_value(k.as_str())?;
                span = Some(key.span());
                value = Some(v);
            }
            (Step::Index(i), Some(DeValue::Array(a))) => {
                let v = a.get(*i)?;
                span = Some(v.span());
                value = Some(v);
            }
            _ => return None,
        }
    }
    span.filter(|s| s.start < text.len()).map(|s| line_of(text, s.start))
}

/// The path of the entry whose key or value has exactly `span`, the deepest one first (an
/// array of tables and its first table share their header's span).
fn find(root: &Spanned<DeTable<'_>>, span: Range<usize>) -> Option<Vec<Step>> {
    fn in_value(v: &Spanned<DeValue<'_>>, span: &Range<usize>, path: &mut Vec<Step>) -> Option<Vec<Step>> {
        match v.get_ref() {
            DeValue::Table(t) => in_table(t, span, path),
            DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    path.push(Step::Index(i));
                    if let Some(found) = in_value(item, span, path) {
                        return Some(found);
                    }
                    if item.span() == *span {
                        return Some(path.clone());
                    }
                    path.pop();
                }
                None
            }
            _ => None,
        }
    }
    fn in_table(t: &DeTable<'_>, span: &Range<usize>, path: &mut Vec<Step>) -> Option<Vec<Step>> {
        for (k, v) in t.iter() {
            path.push(Step::Key(k.get_ref().to_string()));
            if let Some(found) = in_value(v, span, path) {
                return Some(found);
            }
            if k.span() == *span || v.span() == *span {
                return Some(path.clone());
            }
            path.pop();
        }
        None
    }
    in_table(root.get_ref(), &span, &mut Vec::new())
}

/// The path of the table a "missing field" error is about: the one with that span, or the
/// document itself.
fn find_table(root: &Spanned<DeTable<'_>>, span: Range<usize>) -> Option<Vec<Step>> {
    if root.span() == span {
        return Some(Vec::new());
    }
    find(root, span)
}

/// Takes the entry at `path` out of the document; false when there is none.
fn remove(root: &mut Spanned<DeTable<'_>>, path: &[Step]) -> bool {
    fn in_table(t: &mut DeTable<'_>, path: &[Step]) -> bool {
        match path {
            [Step::Key(k)] => t.remove(k.as_str()).is_some(),
            [Step::Key(k), rest @ ..] => t.get_mut(k.as_str()).is_some_and(|v| in_value(v.get_mut(), rest)),
            _ => false,
        }
    }
    fn in_value(v: &mut DeValue<'_>, path: &[Step]) -> bool {
        match (v, path) {
            (DeValue::Table(t), _) => in_table(t, path),
            (DeValue::Array(a), [Step::Index(i)]) if *i < a.len() => {
                let mut kept = toml::de::DeArray::new();
                for (j, item) in a.iter().enumerate() {
                    if j != *i {
                        kept.push(item.clone());
                    }
                }
                *a = kept;
                true
            }
            (DeValue::Array(a), [Step::Index(i), rest @ ..]) => {
                a.get_mut(*i).is_some_and(|item| in_value(item.get_mut(), rest))
            }
            _ => false,
        }
    }
    in_table(root.get_mut(), path)
}

/// Puts `value` at `path` (its key gets a span of its own beside the value's); false when the
/// path does not lead to a table.
fn put<'t>(root: &mut Spanned<DeTable<'t>>, path: &[Step], value: Spanned<DeValue<'t>>) -> bool {
    fn in_table<'t>(t: &mut DeTable<'t>, path: &[Step], value: Spanned<DeValue<'t>>) -> bool {
        match path {
            [Step::Key(k)] => {
                let at = value.span().start + 1;
                t.insert(Spanned::new(at..at, Cow::Owned(k.clone())), value);
                true
            }
            [Step::Key(k), rest @ ..] => t.get_mut(k.as_str()).is_some_and(|v| in_value(v.get_mut(), rest, value)),
            _ => false,
        }
    }
    fn in_value<'t>(v: &mut DeValue<'t>, path: &[Step], value: Spanned<DeValue<'t>>) -> bool {
        match (v, path) {
            (DeValue::Table(t), _) => in_table(t, path, value),
            (DeValue::Array(a), [Step::Index(i), rest @ ..]) => match a.get_mut(*i) {
                Some(item) if rest.is_empty() => {
                    *item = value;
                    true
                }
                Some(item) => in_value(item.get_mut(), rest, value),
                None => false,
            },
            _ => false,
        }
    }
    in_table(root.get_mut(), path, value)
}

/// The backticked words of a serde message: the field first, then the expected ones.
fn backticked(message: &str) -> Vec<String> {
    message.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// serde's and toml's words turned into an operator's: the value as written and what the key
/// takes. Messages from our own types are already in those words and stay as they are.
fn plain_words(message: &str, written: &str) -> String {
    let written = shorten(written);
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let words = backticked(rest);
        let (typed, known) = match words.split_first() {
            Some((typed, known)) => (typed.as_str(), known),
            None => ("", &[][..]),
        };
        return match nearest(typed, known) {
            Some(best) => format!("unknown key; did you mean `{best}`?"),
            None if known.is_empty() => "unknown key; nothing can be set here".into(),
            None => format!("unknown key; the keys here are {}", known.join(", ")),
        };
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((_, expected)) = rest.rsplit_once(", expected ")
        {
            let out_of_range = prefix == "invalid value: ";
            return match integer_range(expected) {
                Some(range) if out_of_range => format!("{written} is out of range: {range}"),
                Some(_) => format!("{written} is not a whole number"),
                None => format!("{written} is not {}", expected_words(expected)),
            };
        }
    }
    if message.contains("number overflowed") {
        return format!("{written} is too large");
    }
    message.to_owned()
}

/// The range of an integer type serde names, or `None` when it names no integer type.
fn integer_range(expected: &str) -> Option<&'static str> {
    Some(match expected {
        "u8" => "from 0 to 255",
        "u16" => "from 0 to 65535",
        "u32" => "from 0 to 4294967295",
        "u64" | "usize" | "u128" => "0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" | "i128" => "a whole number",
        _ => return None,
    })
}

fn expected_words(expected: &str) -> String {
    match expected {
        "f32" | "f64" => "a number".into(),
        "a string" | "a borrowed string" | "a character" => "text in quotes".into(),
        "a boolean" => "true or false".into(),
        "a sequence" => "a list, like [\"a\", \"b\"]".into(),
        "a map" => "a table".into(),
        e if e.starts_with("struct ") => "a table".into(),
        e => e.to_owned(),
    }
}

fn shorten(written: &str) -> String {
    let one_line = written.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 60 {
        format!("{}…", one_line.chars().take(59).collect::<String>())
    } else {
        one_line
    }
}

/// The known key nearest to `typed`, if near enough to be a slip: within a third of its length
/// (at least one edit), counting a swap of two neighbours as one edit.
fn nearest<'a>(typed: &str, known: &'a [String]) -> Option<&'a str> {
    let typed_lower = typed.to_lowercase().replace('-', "_");
    known
        .iter()
        .map(|k| (osa_distance(&typed_lower, k), k))
        .filter(|(d, k)| *d <= (typed.chars().count().max(k.chars().count()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// neighbours, each one edit.
fn osa_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        node: SampleNode,
        #[serde(default)]
        limits: SampleLimits,
        #[serde(default, rename = "child")]
        children: Vec<SampleChild>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SampleNode {
        agency: String,
        listen: String,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct SampleLimits {
        max_connections: u32,
        max_frame_bytes: crate::config::ByteSize,
        idle_timeout: crate::config::HumanDuration,
        jitter: f64,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SampleChild {
        agency: String,
        address: String,
    }

    fn read(text: &str) -> (Option<Sample>, Vec<String>) {
        let doc = Document::parse(text).unwrap_or_else(|p| panic!("{p:?}"));
        let (value, problems) = doc.deserialize::<Sample>();
        let lines =
            problems.iter().map(|p| format!("{}: {p}", p.line.map_or("-".to_owned(), |l| l.to_string()))).collect();
        (value, lines)
    }

    #[test]
    fn every_problem_is_found_in_one_pass_with_its_key_and_line() {
        let (value, problems) = read(
            "[node]\nagency = \"000.01.41.H49\"\nlistn = \"0.0.0.0:7400\"\n\n[limits]\nmax_connections = \"thirty\"\nmax_frame_bytes = \"256M\"\nidle_timeout = 60\njitter = true\nmax_conections = 3\n\n[[child]]\nagency = \"000.01.01.H49\"\naddress = 7400\n\n[[child]]\nagency = 5\n",
        );
        assert_eq!(
            problems,
            [
                "3: node.listn: unknown key; did you mean `listen`?",
                "6: limits.max_connections: \"thirty\" is not a whole number",
                "7: limits.max_frame_bytes: \"256M\" is ambiguous: write \"256MiB\" (1024-based) or \"256MB\" (1000-based)",
                "8: limits.idle_timeout: 60 is not a duration with its unit, like \"30s\", \"10m\" or \"7d\"",
                "9: limits.jitter: true is not a number",
                "10: limits.max_conections: unknown key; did you mean `max_connections`?",
                "14: child[0].address: 7400 is not text in quotes",
                "16: child[1].address: is required but missing",
                "17: child[1].agency: 5 is not text in quotes",
            ]
        );
        // The rest of the file still reads: what was right is kept, what was wrong is left out.
        let value = value.unwrap();
        assert_eq!(value.node.agency, "000.01.41.H49");
        assert_eq!(value.node.listen, "", "a stand-in, never used: the file is refused");
        assert_eq!((value.limits.max_connections, value.limits.jitter), (0, 0.0));
        assert_eq!(value.limits.max_frame_bytes, crate::config::ByteSize(0));
        assert_eq!(value.limits.idle_timeout, crate::config::HumanDuration::default());
        let children: Vec<(&str, &str)> =
            value.children.iter().map(|c| (c.agency.as_str(), c.address.as_str())).collect();
        assert_eq!(children, [("000.01.01.H49", ""), ("", "")]);
    }

    #[test]
    fn a_section_of_the_wrong_kind_is_one_problem_and_a_missing_one_has_no_line() {
        assert_eq!(read("node = 5\n").1, ["1: node: 5 is not a table"]);
        assert_eq!(read("[limits]\nmax_connections = 1\n").1, ["-: node: is required but missing"]);
        assert_eq!(read("[node]\nagency = \"x\"\n").1, ["1: node.listen: is required but missing"]);
        assert_eq!(
            read("[node]\nagency = \"x\"\nlisten = \"y\"\n[frobnicate]\n").1,
            ["4: frobnicate: unknown key; the keys here are node, limits, child"]
        );
        assert_eq!(
            read("[node]\nagency = \"x\"\nlisten = \"y\"\n[limits]\nmax_connections = -1\n").1,
            ["5: limits.max_connections: -1 is out of range: from 0 to 4294967295"]
        );
    }

    #[test]
    fn syntax_errors_are_reported_with_their_lines() {
        let problems = Document::parse("[node]\nagency = \"x\"\nlisten = \n").err().unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, Some(3));
        assert!(problems[0].message.starts_with("not valid TOML"), "{problems:?}");
    }

    #[test]
    fn keys_of_later_checks_are_found_in_the_file() {
        let text =
            "[node]\nagency = \"x\"\n\n[[child]]\nagency = \"a\"\n\n[[child]]\nagency = \"b\"\naddress = \"c\"\n";
        let doc = Document::parse(text).unwrap();
        assert_eq!(doc.line("node.agency"), Some(2));
        assert_eq!(doc.line("child[1].address"), Some(9));
        assert_eq!(doc.line("child[0].address"), Some(4), "absent: the line of its section");
        assert_eq!(doc.line("limits.max_connections"), None, "nothing of it in the file");
        assert_eq!(doc.line("parent/child/peer"), None);
        assert!(covered_by("child[1].address", "child[1]") && covered_by("node.listen", "node.listen"));
        assert!(!covered_by("node.listener", "node.listen") && !covered_by("x", ""));
    }
}
