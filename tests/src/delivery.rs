//! What every node's database says about a set of sent documents, and the exactly-once
//! checks every fault scenario states the same way:
//!
//! - each document is held by every node on its path (with the digest that was signed) and by
//!   no other, and sits once in each recipient's inbox, its attachments in the recipient's
//!   store with their size and SHA-256;
//! - the sender holds exactly one delivery receipt (status 01) from each recipient, and no
//!   refusal; each node of the path (the sender too) holds its next hop's hop receipt exactly
//!   once, and no hop receipt of a hop further on (a hop receipt stays with the node it was
//!   given to); no node holds any receipt of a document twice (a document taken twice would
//!   leave a second, differently signed receipt);
//! - every outbox is drained: nothing pending, nothing dead, nothing refused that was not
//!   meant to be.
//!
//! A document may instead be expected to be refused by a node of its path
//! ([`Expect::RefusedBy`]): then the nodes before it hold it, that node and the rest do not,
//! and the sender holds exactly one signed refusal (status 02) from it and no delivery receipt.
//!
//! The databases are read directly with SQL (SQLite files or PostgreSQL databases, as the
//! nodes' configurations name them), while the nodes run or after they stopped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use pki::AgencyCode;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use crate::fault_net::path;
use crate::network::{SignedDocument, TestNet, Topology};

/// What should become of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Delivered to every recipient.
    Delivered,
    /// Refused by this node of its path, with a signed status 02 back to the sender.
    RefusedBy(AgencyCode),
}

/// A document a scenario sent, and what should become of it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Its id.
    pub id: String,
    /// The digest of the signed envelope.
    pub digest: [u8; 32],
    /// The sender.
    pub from: AgencyCode,
    /// The recipients.
    pub to: Vec<AgencyCode>,
    /// Each attachment's size and SHA-256.
    pub attachments: Vec<(u64, [u8; 32])>,
    /// Delivered or refused.
    pub expect: Expect,
}

impl Sent {
    /// `doc`, expected at every recipient.
    pub fn delivered(doc: &SignedDocument) -> Sent {
        Sent::expecting(doc, Expect::Delivered)
    }

    /// `doc`, expected to be refused by `by`.
    pub fn refused_by(doc: &SignedDocument, by: AgencyCode) -> Sent {
        Sent::expecting(doc, Expect::RefusedBy(by))
    }

    fn expecting(doc: &SignedDocument, expect: Expect) -> Sent {
        Sent {
            id: doc.id.clone(),
            digest: doc.digest,
            from: doc.manifest.from,
            to: doc.manifest.to.clone(),
            attachments: doc.manifest.attachments.iter().map(|a| (a.size, a.sha256)).collect(),
            expect,
        }
    }
}

/// A receipt's identity for counting: document, kind (`hop` or `status`), status code (-1
/// for a hop receipt), signer.
type ReceiptKey = (String, String, i64, String);

/// One node's database, as far as the checks need it.
#[derive(Debug, Default)]
pub struct NodeState {
    /// Document id → envelope digest.
    pub documents: HashMap<String, Vec<u8>>,
    /// Document ids in the inbox.
    pub inbox: HashSet<String>,
    /// How many receipts of each kind and signer it holds per document.
    pub receipts: HashMap<ReceiptKey, i64>,
    /// The notes of the refusals (status 02) it holds, per document.
    pub refusals: HashMap<String, Vec<String>>,
    /// Outbox rows per state, and their attempts in all.
    pub outbox: BTreeMap<String, (i64, i64)>,
    /// A few unfinished outbox rows: state, attempts, next hop, last error.
    pub unfinished: Vec<(String, i64, String, String)>,
    /// Document id → its attachments' (size, SHA-256).
    pub attachments: HashMap<String, Vec<(i64, Vec<u8>)>>,
}

impl NodeState {
    /// Outbox rows in `state`.
    pub fn outbox_rows(&self, state: &str) -> i64 {
        self.outbox.get(state).map_or(0, |(n, _)| *n)
    }

    /// Failed attempts recorded over the whole outbox.
    pub fn outbox_attempts(&self) -> i64 {
        self.outbox.values().map(|(_, a)| a).sum()
    }

    fn receipts_of(&self, doc: &str, kind: &str, status: i64, by: &AgencyCode) -> i64 {
        self.receipts.get(&(doc.to_owned(), kind.to_owned(), status, by.to_string())).copied().unwrap_or(0)
    }
}

/// The outcome of the checks over a set of documents.
#[derive(Debug, Default)]
pub struct Audit {
    /// Every check that failed, one line each.
    pub problems: Vec<String>,
    /// Documents sent.
    pub sent: usize,
    /// Documents in every recipient's inbox.
    pub delivered: usize,
    /// Documents refused as expected (a signed refusal at the sender).
    pub refused: usize,
    /// Documents some node took or receipted more than once.
    pub duplicated: usize,
    /// Documents expected somewhere and not there.
    pub lost: usize,
}

impl Audit {
    /// `sent …, delivered …, refused …, duplicated …, lost …`.
    pub fn summary(&self) -> String {
        format!(
            "sent {}, delivered {}, refused {}, duplicated {}, lost {}",
            self.sent, self.delivered, self.refused, self.duplicated, self.lost
        )
    }

    /// Whether every check passed.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// The summary and the first problems, for a failure message.
    pub fn explain(&self) -> String {
        let shown: Vec<&str> = self.problems.iter().take(25).map(String::as_str).collect();
        format!(
            "{}; {} problem(s){}:\n  {}",
            self.summary(),
            self.problems.len(),
            if self.problems.len() > shown.len() { ", the first 25" } else { "" },
            shown.join("\n  ")
        )
    }
}

/// Every node's database of a test network, open for reading.
pub struct Databases {
    nodes: BTreeMap<AgencyCode, (AnyPool, node::storage::blobs::BlobStore)>,
    topology: Topology,
}

impl Databases {
    /// Opens every node's database (call once the nodes have started: they create and migrate
    /// them).
    pub async fn open(net: &TestNet) -> Databases {
        sqlx::any::install_default_drivers();
        let mut nodes = BTreeMap::new();
        for code in net.topology.codes() {
            let config =
                node::config::Config::load(&net.config_path(&code)).unwrap_or_else(|e| panic!("config of {code}: {e}"));
            let pool = AnyPoolOptions::new()
                .max_connections(1)
                .connect(&config.database)
                .await
                .unwrap_or_else(|e| panic!("cannot open {code}'s database {}: {e}", config.database));
            let blobs = node::storage::blobs::BlobStore::open(&config.data_dir.join("blobs")).unwrap();
            nodes.insert(code, (pool, blobs));
        }
        Databases { nodes, topology: net.topology.clone() }
    }

    /// A node's database, for a scenario's own queries.
    pub fn pool(&self, code: &AgencyCode) -> &AnyPool {
        &self.nodes[code].0
    }

    /// Reads one node's state.
    pub async fn read(&self, code: &AgencyCode) -> NodeState {
        let (pool, _) = &self.nodes[code];
        read_state(pool).await.unwrap_or_else(|e| panic!("cannot read {code}'s database: {e}"))
    }

    /// Checks `sent` against every node's database; with `blobs`, also reads every delivered
    /// attachment back from the recipients' stores (the database's `inline_blobs`, else the
    /// attachment files) and checks its size and hash.
    pub async fn audit(&self, sent: &[Sent], blobs: bool) -> Audit {
        let mut states = BTreeMap::new();
        for code in self.nodes.keys() {
            states.insert(*code, self.read(code).await);
        }
        let mut audit = check(&self.topology, &states, sent);
        if blobs {
            for s in sent.iter().filter(|s| s.expect == Expect::Delivered) {
                for r in &s.to {
                    let (pool, store) = &self.nodes[r];
                    for (size, sha) in &s.attachments {
                        // Small attachments are kept in the database (`storage::inline`).
                        let inline: Option<Vec<u8>> =
                            match sqlx::query_scalar("SELECT bytes FROM inline_blobs WHERE sha256 = $1")
                                .bind(sha.to_vec())
                                .fetch_optional(pool)
                                .await
                            {
                                Ok(b) => b,
                                Err(e) => {
                                    audit.problems.push(format!("{}: cannot read inline_blobs at {r}: {e}", s.id));
                                    continue;
                                }
                            };
                        let read = match inline {
                            Some(bytes) => Ok(bytes),
                            None => std::fs::read(store.path(sha)),
                        };
                        match read {
                            Ok(bytes) if bytes.len() as u64 == *size && pki::sha256(&bytes) == *sha => {}
                            Ok(bytes) => audit.problems.push(format!(
                                "{}: attachment {} at {r} has {} bytes (expected {size}) or the wrong hash",
                                s.id,
                                hex(sha),
                                bytes.len()
                            )),
                            Err(e) => {
                                audit.problems.push(format!("{}: attachment {} missing at {r}: {e}", s.id, hex(sha)))
                            }
                        }
                    }
                }
            }
        }
        audit
    }

    /// Polls [`Databases::audit`] until every check passes, then checks the attachments too;
    /// panics with the remaining problems if that takes longer than `bound`. Returns the clean
    /// audit and how long the wait took.
    pub async fn wait_drained(&self, sent: &[Sent], bound: Duration) -> (Audit, Duration) {
        let start = Instant::now();
        loop {
            let audit = self.audit(sent, false).await;
            if audit.is_clean() {
                let audit = self.audit(sent, true).await;
                assert!(audit.is_clean(), "drained, but {}", audit.explain());
                return (audit, start.elapsed());
            }
            assert!(
                start.elapsed() < bound,
                "not drained within {bound:?}: {}\n{}",
                audit.explain(),
                self.outboxes().await
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Every node's outbox, one line each, with a few unfinished rows: what to look at when a
    /// scenario does not drain.
    pub async fn outboxes(&self) -> String {
        let mut out = String::new();
        for code in self.nodes.keys() {
            let s = self.read(code).await;
            out.push_str(&format!("  {code} outbox {:?}\n", s.outbox));
            for (state, attempts, hop, error) in &s.unfinished {
                out.push_str(&format!("    {state} after {attempts} attempt(s) to {hop}: {error}\n"));
            }
        }
        out
    }

    /// Closes the connections.
    pub async fn close(self) {
        for (pool, _) in self.nodes.values() {
            pool.close().await;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().take(6).map(|b| format!("{b:02x}")).collect::<String>() + "…"
}

async fn read_state(pool: &AnyPool) -> Result<NodeState, sqlx::Error> {
    let mut s = NodeState::default();
    for (id, digest) in
        sqlx::query_as::<_, (String, Vec<u8>)>("SELECT doc_id, digest FROM documents").fetch_all(pool).await?
    {
        s.documents.insert(id, digest);
    }
    s.inbox = sqlx::query_as::<_, (String,)>("SELECT d.doc_id FROM inbox i JOIN documents d ON d.id = i.document")
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect();
    let receipts = sqlx::query_as::<_, (String, String, i64, String, i64)>(
        "SELECT doc_id, kind, CAST(COALESCE(status, -1) AS BIGINT), by_agency, CAST(COUNT(*) AS BIGINT)
         FROM receipts GROUP BY doc_id, kind, status, by_agency",
    )
    .fetch_all(pool)
    .await?;
    for (doc, kind, status, by, n) in receipts {
        s.receipts.insert((doc, kind, status, by), n);
    }
    for (doc, note) in sqlx::query_as::<_, (String, String)>(
        "SELECT doc_id, COALESCE(note, '') FROM receipts WHERE kind = 'status' AND status = 2",
    )
    .fetch_all(pool)
    .await?
    {
        s.refusals.entry(doc).or_default().push(note);
    }
    for (state, n, attempts) in sqlx::query_as::<_, (String, i64, i64)>(
        "SELECT state, CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(attempts), 0) AS BIGINT) FROM outbox GROUP BY state",
    )
    .fetch_all(pool)
    .await?
    {
        s.outbox.insert(state, (n, attempts));
    }
    s.unfinished = sqlx::query_as::<_, (String, i64, String, String)>(
        "SELECT state, CAST(attempts AS BIGINT), next_hop, COALESCE(last_error, '') FROM outbox WHERE state <> 'done' ORDER BY id LIMIT 5",
    )
    .fetch_all(pool)
    .await?;
    for (doc, size, sha) in sqlx::query_as::<_, (String, i64, Vec<u8>)>(
        "SELECT d.doc_id, CAST(a.size AS BIGINT), a.sha256 FROM attachments a JOIN documents d ON d.id = a.document ORDER BY a.position",
    )
    .fetch_all(pool)
    .await?
    {
        s.attachments.entry(doc).or_default().push((size, sha));
    }
    Ok(s)
}

/// The checks, over states already read.
fn check(topology: &Topology, states: &BTreeMap<AgencyCode, NodeState>, sent: &[Sent]) -> Audit {
    let mut a = Audit { sent: sent.len(), ..Audit::default() };
    let mut expected_refused: BTreeMap<AgencyCode, i64> = BTreeMap::new();
    // Receipts any node holds more than once, per document.
    let mut twice: HashMap<&str, Vec<String>> = HashMap::new();
    for (code, state) in states {
        for ((d, kind, status, by), n) in &state.receipts {
            if *n > 1 {
                twice
                    .entry(d.as_str())
                    .or_default()
                    .push(format!("{code} holds {n} {kind} receipts (status {status}) from {by}"));
            }
        }
    }
    for s in sent {
        let (mut lost, mut duplicated) = (false, false);
        let sender = &states[&s.from];
        // The nodes that must hold it, and the receipts the sender must hold.
        let mut holders: HashSet<AgencyCode> = HashSet::from([s.from]);
        let mut delivered_everywhere = true;
        for r in &s.to {
            let full = path(topology, &s.from, r);
            let reached: Vec<AgencyCode> = match s.expect {
                Expect::Delivered => full.clone(),
                Expect::RefusedBy(x) => {
                    let k =
                        full.iter().position(|c| *c == x).unwrap_or_else(|| panic!("{x} is not on {}'s path", s.id));
                    let before = if k == 0 { s.from } else { full[k - 1] };
                    *expected_refused.entry(before).or_default() += 1;
                    full[..k].to_vec()
                }
            };
            holders.extend(reached.iter().copied());
            // Each node holds its next hop's hop receipt exactly once, and none from further on.
            let nodes: Vec<&AgencyCode> = std::iter::once(&s.from).chain(reached.iter()).collect();
            for (i, at) in nodes.iter().enumerate() {
                if let Some(next) = nodes.get(i + 1) {
                    let n = states[*at].receipts_of(&s.id, "hop", -1, next);
                    if n != 1 {
                        a.problems.push(format!("{}: {at} holds {n} hop receipt(s) from {next}", s.id));
                    }
                    duplicated |= n > 1;
                }
                for later in nodes.iter().skip(i + 2) {
                    let n = states[*at].receipts_of(&s.id, "hop", -1, later);
                    if n != 0 {
                        a.problems.push(format!(
                            "{}: {at} holds {n} hop receipt(s) from {later}, which should stay where it was given",
                            s.id
                        ));
                    }
                }
            }
            if s.expect == Expect::Delivered {
                if !states[r].inbox.contains(&s.id) {
                    a.problems.push(format!("{}: not in {r}'s inbox", s.id));
                    delivered_everywhere = false;
                    lost = true;
                }
                let n = sender.receipts_of(&s.id, "status", 1, r);
                if n != 1 {
                    a.problems.push(format!("{}: the sender holds {n} delivery receipt(s) from {r}", s.id));
                }
                duplicated |= n > 1;
            }
        }
        match s.expect {
            Expect::Delivered => {
                if let Some(notes) = sender.refusals.get(&s.id) {
                    a.problems.push(format!("{}: refused: {notes:?}", s.id));
                }
                if delivered_everywhere {
                    a.delivered += 1;
                }
            }
            Expect::RefusedBy(x) => {
                let n = sender.receipts_of(&s.id, "status", 2, &x);
                if n == 1 {
                    a.refused += 1;
                } else {
                    a.problems.push(format!("{}: the sender holds {n} refusal(s) from {x}", s.id));
                }
                for r in &s.to {
                    if sender.receipts_of(&s.id, "status", 1, r) > 0 {
                        a.problems.push(format!("{}: refused by {x}, yet delivered according to {r}", s.id));
                    }
                }
            }
        }
        for (code, state) in states {
            match (holders.contains(code), state.documents.get(&s.id)) {
                (true, None) => {
                    a.problems.push(format!("{}: missing at {code}", s.id));
                    lost = true;
                }
                (true, Some(d)) if d[..] != s.digest[..] => {
                    a.problems.push(format!("{}: {code} holds another envelope under its id", s.id));
                }
                (false, Some(_)) => a.problems.push(format!("{}: held by {code}, which is off its path", s.id)),
                _ => {}
            }
            if !s.to.contains(code) && state.inbox.contains(&s.id) {
                a.problems.push(format!("{}: in the inbox of {code}, not a recipient", s.id));
            }
        }
        for problem in twice.get(s.id.as_str()).into_iter().flatten() {
            a.problems.push(format!("{}: {problem}", s.id));
            duplicated = true;
        }
        a.lost += usize::from(lost);
        a.duplicated += usize::from(duplicated);
    }
    for (code, state) in states {
        let (pending, dead, refused) =
            (state.outbox_rows("pending"), state.outbox_rows("dead"), state.outbox_rows("refused"));
        if pending > 0 {
            a.problems.push(format!("{code}: {pending} transfer(s) still pending"));
        }
        if dead > 0 {
            a.problems.push(format!("{code}: {dead} transfer(s) dead-lettered"));
        }
        let expected = expected_refused.get(code).copied().unwrap_or(0);
        if refused != expected {
            a.problems.push(format!("{code}: {refused} transfer(s) refused by the next hop, {expected} expected"));
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: [&str; 5] = ["000.01.41.H49", "000.00.41.H49", "000.00.00.H49", "000.00.42.H49", "000.01.42.H49"];

    fn code(s: &str) -> AgencyCode {
        s.parse().unwrap()
    }

    fn topology() -> Topology {
        Topology::parse(demo::QUANG_NINH_2024).unwrap().only(&PATH.map(code))
    }

    fn sent(expect: Expect) -> Sent {
        Sent {
            id: "doc-1".into(),
            digest: [7; 32],
            from: code(PATH[0]),
            to: vec![code(PATH[4])],
            attachments: Vec::new(),
            expect,
        }
    }

    fn receipt(state: &mut NodeState, kind: &str, status: i64, by: &str) {
        *state.receipts.entry(("doc-1".into(), kind.into(), status, by.into())).or_default() += 1;
    }

    /// What the databases hold when the document went through the first `reached` hops of the
    /// path (all four: delivered), every transfer done: each node holds the hop receipt it gave
    /// and the one its next hop gave it, and the delivery receipt.
    fn states(reached: usize) -> BTreeMap<AgencyCode, NodeState> {
        let mut states: BTreeMap<AgencyCode, NodeState> =
            PATH.iter().map(|c| (code(c), NodeState::default())).collect();
        for (i, c) in PATH.iter().enumerate().take(reached + 1) {
            let s = states.get_mut(&code(c)).unwrap();
            s.documents.insert("doc-1".into(), vec![7; 32]);
            s.outbox.insert("done".into(), (1, 0));
            if i > 0 {
                receipt(s, "hop", -1, c);
            }
            if i < reached {
                receipt(s, "hop", -1, PATH[i + 1]);
            }
            if reached == 4 && i < 4 {
                receipt(s, "status", 1, PATH[4]);
            }
        }
        if reached == 4 {
            states.get_mut(&code(PATH[4])).unwrap().inbox.insert("doc-1".into());
        }
        states
    }

    #[test]
    fn a_delivered_document_with_every_receipt_once_is_clean() {
        let audit = check(&topology(), &states(4), &[sent(Expect::Delivered)]);
        assert!(audit.is_clean(), "{}", audit.explain());
        assert_eq!((audit.delivered, audit.lost, audit.duplicated), (1, 0, 0));
    }

    #[test]
    fn a_document_missing_from_the_inbox_is_lost() {
        let mut s = states(4);
        s.get_mut(&code(PATH[4])).unwrap().inbox.clear();
        let audit = check(&topology(), &s, &[sent(Expect::Delivered)]);
        assert_eq!((audit.delivered, audit.lost), (0, 1));
        assert!(audit.problems.iter().any(|p| p.contains("not in 000.01.42.H49's inbox")), "{}", audit.explain());
    }

    #[test]
    fn a_second_hop_receipt_is_a_duplicate() {
        let mut s = states(4);
        receipt(s.get_mut(&code(PATH[1])).unwrap(), "hop", -1, PATH[2]);
        let audit = check(&topology(), &s, &[sent(Expect::Delivered)]);
        assert_eq!(audit.duplicated, 1, "{}", audit.explain());
        assert!(
            audit.problems.iter().any(|p| p.contains("000.00.41.H49 holds 2 hop receipt(s) from 000.00.00.H49")),
            "{}",
            audit.explain()
        );
    }

    #[test]
    fn a_hop_receipt_that_walked_back_to_the_sender_is_reported() {
        let mut s = states(4);
        receipt(s.get_mut(&code(PATH[0])).unwrap(), "hop", -1, PATH[3]);
        let audit = check(&topology(), &s, &[sent(Expect::Delivered)]);
        assert!(
            audit.problems.iter().any(|p| p.contains("000.01.41.H49 holds 1 hop receipt(s) from 000.00.42.H49")),
            "{}",
            audit.explain()
        );
    }

    #[test]
    fn a_missing_delivery_receipt_or_relay_copy_is_reported() {
        let mut s = states(4);
        s.get_mut(&code(PATH[0])).unwrap().receipts.remove(&("doc-1".into(), "status".into(), 1, PATH[4].into()));
        s.get_mut(&code(PATH[2])).unwrap().documents.clear();
        let audit = check(&topology(), &s, &[sent(Expect::Delivered)]);
        assert!(audit.problems.iter().any(|p| p.contains("0 delivery receipt(s)")), "{}", audit.explain());
        assert!(audit.problems.iter().any(|p| p.contains("missing at 000.00.00.H49")), "{}", audit.explain());
    }

    #[test]
    fn pending_dead_and_unexpected_refused_transfers_are_reported() {
        let mut s = states(4);
        let province = s.get_mut(&code(PATH[2])).unwrap();
        province.outbox.insert("pending".into(), (2, 3));
        province.outbox.insert("dead".into(), (1, 1000));
        province.outbox.insert("refused".into(), (1, 0));
        let audit = check(&topology(), &s, &[sent(Expect::Delivered)]);
        for expected in ["2 transfer(s) still pending", "1 transfer(s) dead-lettered", "1 transfer(s) refused"] {
            assert!(audit.problems.iter().any(|p| p.contains(expected)), "{expected}: {}", audit.explain());
        }
    }

    #[test]
    fn an_expected_refusal_needs_the_signed_refusal_and_nothing_past_the_refusing_node() {
        let mut s = states(2);
        receipt(s.get_mut(&code(PATH[0])).unwrap(), "status", 2, PATH[3]);
        s.get_mut(&code(PATH[2])).unwrap().outbox.insert("refused".into(), (1, 0));
        let refused = sent(Expect::RefusedBy(code(PATH[3])));
        let audit = check(&topology(), &s, std::slice::from_ref(&refused));
        assert!(audit.is_clean(), "{}", audit.explain());
        assert_eq!(audit.refused, 1);

        // A copy past the refusing node, or no refusal at the sender, is caught.
        s.get_mut(&code(PATH[4])).unwrap().documents.insert("doc-1".into(), vec![7; 32]);
        s.get_mut(&code(PATH[0])).unwrap().receipts.remove(&("doc-1".into(), "status".into(), 2, PATH[3].into()));
        let audit = check(&topology(), &s, &[refused]);
        assert!(audit.problems.iter().any(|p| p.contains("off its path")), "{}", audit.explain());
        assert!(audit.problems.iter().any(|p| p.contains("0 refusal(s)")), "{}", audit.explain());
    }
}
