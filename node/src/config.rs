//! The node's configuration: the TOML file as written ([`RawConfig`]), and the validated
//! [`Config`] the node runs on.
//!
//! Validation collects every problem, each with the key it concerns, so an operator fixes a
//! file in one pass; a node never starts half-configured.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pki::{AgencyCode, Certificate, PrivateKey, Profile};
use serde::Deserialize;

mod document;
mod units;

pub use document::Problem;
pub use units::{ByteRate, ByteSize, HumanDuration, SizeError};

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[node]`.
    pub node: RawNode,
    /// `[tls]`.
    pub tls: RawTls,
    /// `[seal]`.
    pub seal: RawSeal,
    /// `[crl]`.
    #[serde(default)]
    pub crl: RawCrl,
    /// `[parent]`.
    pub parent: Option<RawNeighbour>,
    /// `[[child]]`.
    #[serde(default, rename = "child")]
    pub children: Vec<RawNeighbour>,
    /// `[[peer]]`.
    #[serde(default, rename = "peer")]
    pub peers: Vec<RawNeighbour>,
    /// `[limits]`.
    #[serde(default)]
    pub limits: RawLimits,
    /// `[retry]`.
    #[serde(default)]
    pub retry: RawRetry,
    /// `[mail]`: email notifications (optional).
    pub mail: Option<crate::mail::RawMail>,
    /// `[health]`: when the health read-out alerts.
    #[serde(default)]
    pub health: crate::health::RawAlerts,
    /// `[http]`: the web verifier, console, metrics and health checks (optional).
    pub http: Option<crate::http::RawHttp>,
    /// `[log]`: the transparency log.
    #[serde(default)]
    pub log: crate::tlog::RawLog,
}

/// `[node]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// Agency code.
    pub agency: String,
    /// Agency name.
    pub name: String,
    /// UDP address to listen on.
    pub listen: String,
    /// Directory for the attachment store (and the default SQLite database).
    pub data_dir: PathBuf,
    /// Database URL; default `sqlite://DATA_DIR/node.db`.
    pub database: Option<String>,
}

/// `[tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// Node certificate chain (leaf first).
    pub certificate: PathBuf,
    /// Node private key.
    pub key: PathBuf,
    /// National root certificate.
    pub trust_anchor: PathBuf,
}

/// `[seal]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSeal {
    /// Agency seal certificate chain (leaf first).
    pub certificate: PathBuf,
    /// Seal private key.
    pub key: PathBuf,
    /// File holding the key's passphrase, if the key is encrypted.
    pub passphrase_file: Option<PathBuf>,
}

/// `[crl]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCrl {
    /// CRL files to load and watch (e.g. the CRLs this agency's CA publishes).
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// CRLs older than this make verification provisional.
    #[serde(default = "default_freshness")]
    pub freshness: HumanDuration,
    /// How often the files are checked for changes.
    #[serde(default = "default_poll")]
    pub poll: HumanDuration,
    /// Accept peer and clerk certificates (and documents' signers) whose revocation cannot be
    /// checked: no CRL of their issuer, or one older than `freshness`. Off by default: a
    /// certificate revoked where this node cannot see it would otherwise be taken. When on,
    /// every such acceptance raises an alert (status, operator mail) instead of a refusal.
    #[serde(default)]
    pub danger_accept_unchecked: bool,
}

fn default_freshness() -> HumanDuration {
    HumanDuration::days(7)
}

fn default_poll() -> HumanDuration {
    HumanDuration::secs(10)
}

impl Default for RawCrl {
    fn default() -> Self {
        RawCrl {
            files: Vec::new(),
            freshness: default_freshness(),
            poll: default_poll(),
            danger_accept_unchecked: false,
        }
    }
}

/// A parent, child or direct peer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNeighbour {
    /// Its agency code.
    pub agency: String,
    /// Its UDP address, or several: the processes of a scaled-out node.
    pub address: Addresses,
}

/// One address or a list of them.
#[derive(Debug, Clone)]
pub enum Addresses {
    /// `address = "10.0.0.5:7400"`.
    One(String),
    /// `address = ["10.0.0.5:7400", "10.0.0.6:7400"]`.
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for Addresses {
    /// By hand rather than `#[serde(untagged)]`, whose error ("data did not match any variant")
    /// does not say what to write.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AddressesVisitor;
        impl<'de> serde::de::Visitor<'de> for AddressesVisitor {
            type Value = Addresses;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an address like \"10.0.0.5:7400\", or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Addresses, E> {
                Ok(Addresses::One(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Addresses, A::Error> {
                let mut list = Vec::new();
                while let Some(a) = seq.next_element::<String>()? {
                    list.push(a);
                }
                Ok(Addresses::Many(list))
            }
        }
        d.deserialize_any(AddressesVisitor)
    }
}

/// `[limits]`: every bound a peer could otherwise push on us.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    /// Largest request or response frame (envelope, CRLs, receipts), bytes.
    pub max_frame_bytes: ByteSize,
    /// Largest single attachment, bytes.
    pub max_attachment_bytes: ByteSize,
    /// Largest sum of a document's attachments, bytes.
    pub max_document_bytes: ByteSize,
    /// Most simultaneous QUIC connections (authenticated), all peers together.
    pub max_connections: usize,
    /// Most simultaneous connections from one neighbour agency.
    pub max_connections_per_peer: usize,
    /// Most simultaneous connections of this agency's clerks, all together: a pool of its
    /// own, so clerks and neighbours cannot crowd each other out.
    pub max_clerk_connections: usize,
    /// Most simultaneous connections with one clerk certificate, so one clerk (or one stolen
    /// certificate) cannot take the clerks' pool.
    pub max_connections_per_certificate: usize,
    /// Most handshakes in progress, all addresses together.
    pub max_handshakes: usize,
    /// Documents verified at once (signatures and chains): the verification pool, off the
    /// network's async workers so that a burst of documents cannot stall connections. 0: one
    /// per CPU core.
    pub verify_threads: usize,
    /// Questions about documents' paths (`NodeRequest::PathEvidence`, behind `track` and
    /// `fetch`) this node answers for its neighbours at once. Each costs reads and, further
    /// along the path, questions to this node's own neighbours; beyond this a question is
    /// answered "busy, ask again later", so no neighbour can keep the node's storage and
    /// connections asking on its behalf.
    pub max_path_questions: usize,
    /// Most CRLs a neighbour may send in answer to this node asking for the CRLs a document or
    /// a batch of notices references and this node lacks (`NodeResponse::CrlsWanted`). A
    /// document's chains have a handful of CAs; more than this missing at once is refused for
    /// now (transient), as a revocation gap is.
    pub max_crl_fetch_count: usize,
    /// Most bytes of those CRLs together: a CRL grows by some 40 bytes per revocation, so the
    /// default holds tens of thousands of revocations and stays well inside a frame.
    pub max_crl_fetch_bytes: ByteSize,
    /// Most handshakes in progress from addresses that have not proved they receive what is
    /// sent to them; beyond this, attempts get a QUIC Retry (address validation) first.
    pub max_unvalidated_handshakes: usize,
    /// Most handshakes in progress from one validated address.
    pub max_handshakes_per_address: usize,
    /// A handshake not finished within this is abandoned.
    pub handshake_timeout: HumanDuration,
    /// Most concurrent streams (requests) per connection.
    pub max_streams_per_connection: u32,
    /// QUIC receive window per connection, bytes: what a peer may have in flight to us on one
    /// connection (a stream gets a quarter of it).
    pub receive_window: ByteSize,
    /// The receive buffer asked of the kernel for the node's UDP socket, bytes: what arrives
    /// while the node is busy waits there, and what does not fit is dropped (and answered by
    /// the sender's congestion control slowing down). The kernel may give less (Linux:
    /// `net.core.rmem_max`); the node then says so in its log. At most 512MiB; 0 leaves the
    /// system's default.
    pub udp_receive_buffer: ByteSize,
    /// Request-frame memory one connection may hold, bytes.
    pub frame_budget_per_connection: ByteSize,
    /// Request-frame memory one certificate may hold over all its connections, bytes.
    pub frame_budget_per_certificate: ByteSize,
    /// Request-frame memory of the whole node, bytes.
    pub frame_budget_total: ByteSize,
    /// A request frame must arrive within this plus its size at `min_transfer_rate`.
    pub frame_timeout: HumanDuration,
    /// The slowest transfer a request is given time for, bytes per second: frames get
    /// `frame_timeout` plus their size at this rate, requests `request_timeout` plus theirs.
    pub min_transfer_rate: ByteRate,
    /// Most documents sent to one next hop at a time. A hop's rate to one neighbour is at
    /// most this over the time a transfer takes (the round trip, the neighbour's
    /// verification and its commit); 32 rather than 16 gave one hop from a clerk 12–31 %
    /// more on loopback, where the round trip is nothing, and matters more between
    /// provinces. Within the neighbour's `max_streams_per_connection` (64).
    pub max_in_flight_per_peer: usize,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: HumanDuration,
    /// Keep-alive interval on idle connections.
    pub keep_alive: HumanDuration,
    /// A request to a neighbour that takes longer than this (plus its size at
    /// `min_transfer_rate`) fails, its connection is dropped, and it is retried on a new one.
    pub request_timeout: HumanDuration,
    /// Connecting to one address of a neighbour gives up after this long (and tries the next).
    pub connect_timeout: HumanDuration,
    /// How long a claim on an outbox transfer holds unless renewed. The process holding it
    /// renews it while the transfer runs; when a process of a scaled-out node dies, the others
    /// take its transfers over after at most this long.
    pub outbox_lease: HumanDuration,
    /// Free space, bytes, the node keeps on the filesystems it writes to (the attachment
    /// store, the SQLite database): a document that would leave less is refused for now (the
    /// sender retries) before anything is written. 0 turns the check off.
    pub min_free_bytes: ByteSize,
    /// Where a document enters the network (this node taking it from its clerk), the oldest
    /// signing time accepted, before the node's clock: the signer's `iat` is a claim, and a
    /// signature claimed to be older is refused rather than taken on its word.
    pub max_signature_age: HumanDuration,
    /// Most bytes kept, all together, from large transfers that broke off (the attachment
    /// store's `partial/` files), so that the next attempt continues where they stopped; a
    /// transfer being received counts at its full size. Oldest evicted first; an attachment
    /// larger than this is received without resuming. 0 turns resuming off.
    pub max_partial_bytes: ByteSize,
    /// The bytes of a broken-off transfer not continued within this are removed (when another
    /// transfer starts, and at start).
    pub max_partial_age: HumanDuration,
    /// Most files those bytes are kept in (one per attachment of a broken-off transfer),
    /// counting transfers being received: `max_partial_bytes` counts bytes only, and a peer
    /// that starts resumable transfers and sends a byte of each would leave a file per
    /// document. Oldest evicted first; a transfer that finds no room is received without
    /// resuming.
    pub max_partial_files: u32,
    /// Attachments of at most this many bytes are kept in the database, in the transaction
    /// that takes their document, instead of as files: a file costs its own sync and its
    /// directory's on every hop (three syncs where one does). Larger ones are files, streamed.
    /// At most 256KiB (they are held whole in memory while received); 0 keeps every
    /// attachment as a file.
    pub inline_attachment_bytes: ByteSize,
    /// A document from a neighbour for another node is passed on while this node commits it,
    /// not after (see `outbound::cut_through`): the next hop verifies and stores it while this
    /// node syncs, about a commit less per hop of latency. The hop receipt still waits for the
    /// commit. The price, when this node's commit fails and it cannot take the document
    /// afterwards either (its storage failing for longer than the previous hop retries, the
    /// signer revoked before the retry): the recipient holds a document whose sender also
    /// holds a refusal from this node. `false`: every document is committed before it leaves.
    pub pass_on_before_commit: bool,
    /// A notice (a receipt or status on its way to a document's sender) waits at most this
    /// long for others to the same neighbour, so that they go in one request and one
    /// transaction on each side; a batch's worth (64) goes at once, and none waits while the
    /// outbox is short of places (waiting notices hold theirs). Receipts are not on a
    /// document's path: over four hops one at a time, 25ms took 1.6 ms of CPU per document
    /// off the nodes and 0.8 ms off the documents' median latency (medians of four interleaved
    /// pairs' differences), for at most 25ms more per hop before a receipt reaches its sender.
    /// At most 1s; 0 sends each as soon as it is due.
    pub notice_linger: HumanDuration,
}

/// The largest [`RawLimits::udp_receive_buffer`] accepted: Linux cuts any request to half an
/// `int` (just under 1 GiB) before doubling it, so 1 GiB could never be granted in full.
pub const MAX_UDP_RECEIVE_BUFFER: ByteSize = ByteSize(512 << 20);

/// The longest [`RawLimits::notice_linger`] accepted.
pub const MAX_NOTICE_LINGER: Duration = Duration::from_secs(1);

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            // An envelope is at most 512 KiB; the rest is room for the CRLs that ride along.
            max_frame_bytes: ByteSize::mib(4),
            max_attachment_bytes: ByteSize::mib(256),
            max_document_bytes: ByteSize::gib(1),
            max_connections: 1024,
            max_connections_per_peer: 8,
            max_clerk_connections: 64,
            max_connections_per_certificate: 4,
            max_handshakes: 128,
            verify_threads: 0,
            max_path_questions: 16,
            max_crl_fetch_count: 32,
            max_crl_fetch_bytes: ByteSize::mib(2),
            max_unvalidated_handshakes: 32,
            max_handshakes_per_address: 16,
            handshake_timeout: HumanDuration::secs(10),
            max_streams_per_connection: 64,
            receive_window: ByteSize::mib(8),
            udp_receive_buffer: ByteSize(lienthong_protocol::udp::RECEIVE_BUFFER as u64),
            frame_budget_per_connection: ByteSize::mib(16),
            frame_budget_per_certificate: ByteSize::mib(32),
            frame_budget_total: ByteSize::mib(256),
            frame_timeout: HumanDuration::secs(10),
            min_transfer_rate: ByteRate(ByteSize::kib(256)),
            max_in_flight_per_peer: 32,
            idle_timeout: HumanDuration::secs(60),
            keep_alive: HumanDuration::secs(15),
            request_timeout: HumanDuration::secs(20),
            connect_timeout: HumanDuration::secs(10),
            outbox_lease: HumanDuration::secs(30),
            min_free_bytes: ByteSize::mib(256),
            max_signature_age: HumanDuration::days(3),
            max_partial_bytes: ByteSize::gib(2),
            max_partial_age: HumanDuration::days(1),
            max_partial_files: 256,
            inline_attachment_bytes: ByteSize::kib(64),
            pass_on_before_commit: true,
            notice_linger: HumanDuration(Duration::from_millis(25)),
        }
    }
}

/// `[retry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRetry {
    /// First delay.
    pub initial: HumanDuration,
    /// Longest delay.
    pub max: HumanDuration,
    /// Growth factor per attempt.
    pub multiplier: f64,
    /// Random spread, as a fraction of the delay (0 to 1).
    pub jitter: f64,
    /// After this many attempts a transfer is dead-lettered and the sender told.
    pub max_attempts: u32,
    /// Seed for the jitter, for reproducible tests; random when absent.
    pub jitter_seed: Option<u64>,
}

impl Default for RawRetry {
    fn default() -> Self {
        RawRetry {
            initial: HumanDuration::secs(1),
            max: HumanDuration::mins(10),
            multiplier: 2.0,
            jitter: 0.2,
            max_attempts: 30,
            jitter_seed: None,
        }
    }
}

/// A neighbour, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// Its agency code.
    pub agency: AgencyCode,
    /// Its addresses, `host:port`, tried in order when connecting, starting after the one
    /// whose connection was lost last (a name is looked up at each connection and may resolve
    /// to several addresses, so DNS changes need no restart). Several addresses are the
    /// processes of a scaled-out node.
    pub addresses: Vec<String>,
}

/// Limits, validated.
#[derive(Debug, Clone)]
pub struct Limits {
    /// See [`RawLimits::max_frame_bytes`].
    pub max_frame_bytes: usize,
    /// See [`RawLimits::max_attachment_bytes`].
    pub max_attachment_bytes: u64,
    /// See [`RawLimits::max_document_bytes`].
    pub max_document_bytes: u64,
    /// See [`RawLimits::max_connections`].
    pub max_connections: usize,
    /// See [`RawLimits::max_connections_per_peer`].
    pub max_connections_per_peer: usize,
    /// See [`RawLimits::max_clerk_connections`].
    pub max_clerk_connections: usize,
    /// See [`RawLimits::max_connections_per_certificate`].
    pub max_connections_per_certificate: usize,
    /// See [`RawLimits::max_handshakes`].
    pub max_handshakes: usize,
    /// See [`RawLimits::verify_threads`]; 0 resolved to the cores.
    pub verify_threads: usize,
    /// See [`RawLimits::max_path_questions`].
    pub max_path_questions: usize,
    /// See [`RawLimits::max_crl_fetch_count`].
    pub max_crl_fetch_count: usize,
    /// See [`RawLimits::max_crl_fetch_bytes`].
    pub max_crl_fetch_bytes: u64,
    /// See [`RawLimits::max_unvalidated_handshakes`].
    pub max_unvalidated_handshakes: usize,
    /// See [`RawLimits::max_handshakes_per_address`].
    pub max_handshakes_per_address: usize,
    /// See [`RawLimits::handshake_timeout`].
    pub handshake_timeout: Duration,
    /// See [`RawLimits::max_streams_per_connection`].
    pub max_streams_per_connection: u32,
    /// See [`RawLimits::receive_window`].
    pub receive_window: u64,
    /// See [`RawLimits::udp_receive_buffer`].
    pub udp_receive_buffer: usize,
    /// See [`RawLimits::frame_budget_per_connection`].
    pub frame_budget_per_connection: usize,
    /// See [`RawLimits::frame_budget_per_certificate`].
    pub frame_budget_per_certificate: usize,
    /// See [`RawLimits::frame_budget_total`].
    pub frame_budget_total: usize,
    /// See [`RawLimits::frame_timeout`].
    pub frame_timeout: Duration,
    /// See [`RawLimits::min_transfer_rate`].
    pub min_transfer_rate: u64,
    /// See [`RawLimits::max_in_flight_per_peer`].
    pub max_in_flight_per_peer: usize,
    /// See [`RawLimits::idle_timeout`].
    pub idle_timeout: Duration,
    /// See [`RawLimits::keep_alive`].
    pub keep_alive: Duration,
    /// See [`RawLimits::request_timeout`].
    pub request_timeout: Duration,
    /// See [`RawLimits::connect_timeout`].
    pub connect_timeout: Duration,
    /// See [`RawLimits::outbox_lease`].
    pub outbox_lease: Duration,
    /// See [`RawLimits::min_free_bytes`].
    pub min_free_bytes: u64,
    /// See [`RawLimits::max_signature_age`].
    pub max_signature_age: Duration,
    /// See [`RawLimits::max_partial_bytes`].
    pub max_partial_bytes: u64,
    /// See [`RawLimits::max_partial_age`].
    pub max_partial_age: Duration,
    /// See [`RawLimits::max_partial_files`].
    pub max_partial_files: usize,
    /// See [`RawLimits::inline_attachment_bytes`].
    pub inline_attachment_bytes: u64,
    /// See [`RawLimits::pass_on_before_commit`].
    pub pass_on_before_commit: bool,
    /// See [`RawLimits::notice_linger`].
    pub notice_linger: Duration,
}

impl Limits {
    /// How long `bytes` take at `min_transfer_rate`.
    pub fn transfer_time(&self, bytes: u64) -> Duration {
        Duration::from_millis(bytes.saturating_mul(1000) / self.min_transfer_rate.max(1))
    }

    /// The time a request carrying `bytes` may take, on either end: `request_timeout` (well
    /// under the idle timeout, so a small request fails long before its connection would be
    /// given up) plus its size at `min_transfer_rate`.
    pub fn request_time(&self, bytes: u64) -> Duration {
        self.request_timeout.saturating_add(self.transfer_time(bytes))
    }

    /// The time a request frame of `bytes` may take to arrive, from its stream's opening.
    pub fn frame_time(&self, bytes: u64) -> Duration {
        self.frame_timeout.saturating_add(self.transfer_time(bytes))
    }

    /// The bounds on the partial files of broken-off transfers.
    pub fn partials(&self) -> crate::storage::blobs::PartialLimits {
        crate::storage::blobs::PartialLimits {
            max_bytes: self.max_partial_bytes,
            max_age: self.max_partial_age,
            max_files: self.max_partial_files,
        }
    }
}

/// Retry policy, validated.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// First delay.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Growth factor.
    pub multiplier: f64,
    /// Spread fraction.
    pub jitter: f64,
    /// Attempts before dead-lettering.
    pub max_attempts: u32,
    /// Jitter seed.
    pub jitter_seed: Option<u64>,
}

/// The longest `retry.initial` or `retry.max` (and `mail.retry.…`) a configuration may give:
/// 30 days. Waiting longer than that between two attempts is never what an operator means, and
/// the bound keeps every delay, jitter included, far inside what the outbox's millisecond
/// times hold (a `max` of billions of years used to make the first retry panic).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30 * 24 * 3600);

impl RetryPolicy {
    /// The delay before attempt `attempt` (1-based, after a failure), with `unit` in [0, 1) as
    /// the random draw: exponential, capped, spread by ± jitter. Total for any policy: a delay
    /// beyond what a `Duration` holds (only a policy that skipped validation can ask for one)
    /// is `max`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.initial.as_secs_f64() * self.multiplier.powi(attempt.saturating_sub(1).min(64) as i32);
        let capped = base.min(self.max.as_secs_f64());
        let spread = 1.0 + self.jitter * (2.0 * unit - 1.0);
        Duration::try_from_secs_f64((capped * spread).max(0.0)).unwrap_or(self.max)
    }
}

/// Records a problem for `key` when `delay` is longer than [`MAX_RETRY_DELAY`].
pub(crate) fn check_retry_delay(problems: &mut Vec<(String, String)>, key: &str, delay: Option<Duration>) {
    if delay.is_some_and(|d| d > MAX_RETRY_DELAY) {
        problems.push((key.to_owned(), "must be at most 30d".to_owned()));
    }
}

pub use lienthong_protocol::Identity;

/// The validated configuration a node runs on.
#[derive(Debug)]
pub struct Config {
    /// This node's agency.
    pub agency: AgencyCode,
    /// Its name.
    pub name: String,
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Database URL.
    pub database: String,
    /// TLS identity (node profile).
    pub tls: Identity,
    /// Seal identity (signs receipts and statuses).
    pub seal: Identity,
    /// Trust anchors.
    pub anchors: Vec<Certificate>,
    /// CRL files to watch.
    pub crl_files: Vec<PathBuf>,
    /// CRL freshness budget.
    pub crl_freshness: Duration,
    /// CRL file poll interval.
    pub crl_poll: Duration,
    /// See [`RawCrl::danger_accept_unchecked`].
    pub crl_accept_unchecked: bool,
    /// Routing parent.
    pub parent: Option<Neighbour>,
    /// Children.
    pub children: Vec<Neighbour>,
    /// Direct peers.
    pub peers: Vec<Neighbour>,
    /// Limits.
    pub limits: Limits,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Email notifications; `None` without `[mail]`.
    pub mail: Option<crate::mail::MailConfig>,
    /// When the health read-out alerts.
    pub health: crate::health::Alerts,
    /// The web face; `None` without `[http]`.
    pub http: Option<crate::http::HttpConfig>,
    /// The transparency log.
    pub log: crate::tlog::LogConfig,
    /// The key and certificate files, for the checks of `lienthong-node check` and the health
    /// read-out (a key file opened to others, a certificate revoked or expiring).
    pub files: OwnFiles,
}

/// The node's own key and certificate files, as resolved from the configuration.
#[derive(Debug, Clone)]
pub struct OwnFiles {
    /// `tls.certificate`.
    pub tls_certificate: PathBuf,
    /// `tls.key`.
    pub tls_key: PathBuf,
    /// `seal.certificate`.
    pub seal_certificate: PathBuf,
    /// `seal.key`.
    pub seal_key: PathBuf,
    /// `seal.passphrase_file`.
    pub seal_passphrase_file: Option<PathBuf>,
}

impl OwnFiles {
    /// The private files, with their keys: they must be readable by their owner only.
    pub fn private(&self) -> Vec<(&'static str, &Path)> {
        let mut files = vec![("tls.key", self.tls_key.as_path()), ("seal.key", self.seal_key.as_path())];
        if let Some(f) = &self.seal_passphrase_file {
            files.push(("seal.passphrase_file", f.as_path()));
        }
        files
    }
}

/// Every problem found in a configuration file, each with its key and line, so an operator
/// fixes the file in one pass.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The file, when the configuration came from one.
    pub file: Option<PathBuf>,
    /// Every problem, in the order of the file (those without a line last).
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// Problems found without a file at hand: no lines.
    fn unlocated(pairs: Vec<(String, String)>) -> ConfigError {
        let problems = pairs.into_iter().map(|(key, message)| Problem { key, line: None, message }).collect();
        ConfigError { file: None, problems }
    }
}

impl std::fmt::Display for ConfigError {
    /// `FILE has N problems:` and one line per problem, `FILE:LINE: key: what` (the GNU
    /// convention editors and terminals jump from).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.file.as_ref().map_or_else(|| "the configuration".to_owned(), |p| p.display().to_string());
        let n = self.problems.len();
        write!(f, "{name} has {n} problem{}:", if n == 1 { "" } else { "s" })?;
        for problem in &self.problems {
            match problem.line {
                Some(line) => write!(f, "\n  {name}:{line}: {problem}")?,
                None => write!(f, "\n  {name}: {problem}")?,
            }
        }
        Ok(())
    }
}

/// Locates `problems` (key, message) in the configuration file `path`: each gets the line of
/// its key or of the nearest section above it. For findings made after loading (`check`).
pub fn locate(path: &Path, problems: Vec<(String, String)>) -> Vec<Problem> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let document = document::Document::parse(&text).ok();
    problems
        .into_iter()
        .map(|(key, message)| Problem { line: document.as_ref().and_then(|d| d.line(&key)), key, message })
        .collect()
}

struct Problems(Vec<(String, String)>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, problem: impl ToString) {
        self.0.push((key.into(), problem.to_string()));
    }

    fn check<T, E: ToString>(&mut self, key: &str, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(key, e);
                None
            }
        }
    }
}

/// A key file's permissions: only its owner may read it (like ssh, which refuses such keys),
/// or `Err` saying what to do.
pub fn check_private_file(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?.permissions().mode();
        if mode & 0o077 != 0 {
            let who = if mode & 0o070 != 0 && mode & 0o007 != 0 {
                "its group and all users"
            } else if mode & 0o070 != 0 {
                "its group"
            } else {
                "all users"
            };
            return Err(format!(
                "{} is open to {who} (mode {:04o}); a private key must be readable by its owner only: chmod 600 {}",
                path.display(),
                mode & 0o7777,
                path.display()
            ));
        }
    }
    Ok(())
}

/// Whether a chain file holds the whole chain up to the national root: each certificate issued
/// by the next, the last one by a trust anchor (the anchor itself may be left out). A peer that
/// has not met our CAs before can validate nothing less.
fn check_chain_complete(chain: &[Certificate], anchors: &[Certificate], file: &Path) -> Result<(), String> {
    for (i, pair) in chain.windows(2).enumerate() {
        if pair[0].issuer_raw != pair[1].subject_raw {
            return Err(format!(
                "{}: certificate #{} ({}) is not issued by the next one ({}); the file must hold the certificate first, then its CA, then that CA's CA, up to the national root",
                file.display(),
                i + 1,
                pair[0].id(),
                pair[1].id()
            ));
        }
    }
    let Some(top) = chain.last() else { return Err(format!("{} holds no certificate", file.display())) };
    let anchored = anchors.iter().any(|a| a.fingerprint() == top.fingerprint() || a.subject_raw == top.issuer_raw);
    if anchored {
        return Ok(());
    }
    let holds = if chain.len() == 1 {
        format!("holds only the certificate {}", top.id())
    } else {
        format!("ends with {}", top.id())
    };
    Err(format!(
        "{} {holds}, issued by \"{}\", which is not the national root: the CA certificates between them are missing, so a neighbour that has not met those CAs refuses it; append them to the file, each CA after the certificate it issued",
        file.display(),
        top.issuer
    ))
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_owned() } else { base.join(path) }
}

fn load_chain(p: &mut Problems, key: &str, path: &Path) -> Option<Vec<Certificate>> {
    let text =
        p.check(key, std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display())))?;
    p.check(key, Certificate::from_pem_all(&text).map_err(|e| format!("{}: {e}", path.display())))
}

/// The files of an identity as the configuration names them.
struct IdentityFiles<'a> {
    /// `tls` or `seal`.
    section: &'a str,
    certificate: &'a Path,
    key: &'a Path,
    passphrase: Option<&'a Path>,
}

fn load_identity(
    p: &mut Problems,
    files: IdentityFiles<'_>,
    profile: Profile,
    agency: Option<AgencyCode>,
    anchors: Option<&[Certificate]>,
) -> Option<Identity> {
    let IdentityFiles { section, certificate: cert, key, passphrase } = files;
    let chain = load_chain(p, &format!("{section}.certificate"), cert);
    let key_text = p.check(
        &format!("{section}.key"),
        std::fs::read_to_string(key).map_err(|e| format!("cannot read {}: {e}", key.display())),
    );
    if key_text.is_some() {
        p.check(&format!("{section}.key"), check_private_file(key));
    }
    let pass = match passphrase {
        Some(f) => p
            .check(
                &format!("{section}.passphrase_file"),
                std::fs::read(f).map_err(|e| format!("cannot read {}: {e}", f.display())),
            )
            .inspect(|_| {
                p.check(&format!("{section}.passphrase_file"), check_private_file(f));
            })
            .map(|mut b| {
                while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                    b.pop();
                }
                b
            }),
        None => None,
    };
    let private = key_text.and_then(|t| {
        p.check(
            &format!("{section}.key"),
            PrivateKey::from_pem(&t, pass.as_deref()).map_err(|e| format!("{}: {e}", key.display())),
        )
    });
    let (chain, private) = (chain?, private?);
    let Some(leaf) = chain.first() else {
        p.add(format!("{section}.certificate"), format!("{} holds no certificate", cert.display()));
        return None;
    };
    if let Some(anchors) = anchors
        && let Err(problem) = check_chain_complete(&chain, anchors, cert)
    {
        p.add(format!("{section}.certificate"), problem);
    }
    if let Err(problem) = leaf.check_usage(profile) {
        p.add(
            format!("{section}.certificate"),
            format!("{} cannot be used as a {profile} certificate: {problem}", cert.display()),
        );
    }
    if let Some(agency) = agency
        && leaf.agency != Some(agency)
    {
        p.add(
            format!("{section}.certificate"),
            format!(
                "{} is for agency {}, but node.agency is {agency}",
                cert.display(),
                leaf.agency.map_or("(none)".into(), |c| c.to_string())
            ),
        );
    }
    if leaf.public_key.as_ref().map(|k| &k.spki_der) != Ok(&private.public_key().spki_der) {
        p.add(
            format!("{section}.key"),
            format!("{} does not belong to the certificate {}", key.display(), cert.display()),
        );
    }
    Some(Identity { chain, key: private })
}

/// `host:port` or `[v6]:port`, with a host and a numeric port.
fn check_host_port(text: &str) -> Result<String, String> {
    let bad = || format!("{text:?} is not an address like 10.0.0.5:7400 or node.example.gov.vn:7400");
    if text.parse::<SocketAddr>().is_ok() {
        return Ok(text.to_owned());
    }
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains(['[', ']', '/']) {
        return Err(bad());
    }
    Ok(text.to_owned())
}

fn neighbour(p: &mut Problems, key: &str, raw: &RawNeighbour) -> Option<Neighbour> {
    let agency = p.check(&format!("{key}.agency"), raw.agency.parse::<AgencyCode>());
    let listed = match &raw.address {
        Addresses::One(a) => std::slice::from_ref(a),
        Addresses::Many(list) => list.as_slice(),
    };
    if listed.is_empty() {
        p.add(format!("{key}.address"), "is an empty list");
        return None;
    }
    let mut addresses = Vec::with_capacity(listed.len());
    for a in listed {
        addresses.push(p.check(&format!("{key}.address"), check_host_port(a)));
    }
    let addresses: Option<Vec<String>> = addresses.into_iter().collect();
    Some(Neighbour { agency: agency?, addresses: addresses? })
}

/// The neighbours' places in the code tree. A parent is an ancestor of this agency (for a
/// commune, its district or, without districts, its province), and a child is below it, with
/// one exception the design makes: the national hub (itself a level-1 code, `000.00.00.G22`)
/// is the routing parent of every level-1 node (ministries and provinces), which are not under
/// it by code. So a level-1 node's parent may be another level-1 code (the hub), and a level-1
/// node without a parent (the hub) may have level-1 children. Direct peers may be anywhere.
fn check_tree(p: &mut Problems, agency: AgencyCode, parent: Option<AgencyCode>, children: &[Option<AgencyCode>]) {
    let ancestors: Vec<String> = agency.ancestors().map(|a| a.to_string()).collect();
    if let Some(parent) = parent {
        let hub = agency.level() == 1 && parent.level() == 1;
        if !agency.is_under(&parent) && !hub {
            let expected = if ancestors.is_empty() {
                "a level-1 node's parent is the national hub, a level-1 code like 000.00.00.G22".to_owned()
            } else {
                format!("the parent of {agency} is one of the agencies above it: {}", ancestors.join(", "))
            };
            p.add("parent.agency", format!("{parent} is not above {agency} in the code tree; {expected}"));
        }
    }
    let is_hub = agency.level() == 1 && parent.is_none();
    for (i, child) in children.iter().enumerate() {
        let Some(child) = child else { continue };
        let hub_child = is_hub && child.level() == 1;
        if !child.is_under(&agency) && !hub_child {
            let why = if agency.level() == 1 && parent.is_some() {
                " (only the national hub, a level-1 node without a parent, has level-1 children)"
            } else {
                ""
            };
            p.add(
                format!("child[{i}].agency"),
                format!("{child} is not below {agency} in the code tree; a child is an agency under this one{why}"),
            );
        }
    }
}

/// A size that must fit in memory on this machine (`usize`).
fn in_memory(p: &mut Problems, key: &str, size: ByteSize) -> usize {
    usize::try_from(size.get()).unwrap_or_else(|_| {
        p.add(key, format!("{size} does not fit in this machine's memory"));
        0
    })
}

/// A duration that must not be zero.
fn nonzero(p: &mut Problems, key: &str, d: HumanDuration) -> Duration {
    if d.get().is_zero() {
        p.add(key, "must be longer than zero");
    }
    d.get()
}

/// Validates `[limits]`, recording every problem; `None` if there was one.
fn limits(p: &mut Problems, l: &RawLimits) -> Option<Limits> {
    let problems_before = p.0.len();
    let max_frame_bytes = in_memory(p, "limits.max_frame_bytes", l.max_frame_bytes);
    let frame_budget_per_connection = in_memory(p, "limits.frame_budget_per_connection", l.frame_budget_per_connection);
    let frame_budget_per_certificate =
        in_memory(p, "limits.frame_budget_per_certificate", l.frame_budget_per_certificate);
    let frame_budget_total = in_memory(p, "limits.frame_budget_total", l.frame_budget_total);
    for (key, value) in [
        ("limits.max_frame_bytes", l.max_frame_bytes.get()),
        ("limits.max_attachment_bytes", l.max_attachment_bytes.get()),
        ("limits.max_document_bytes", l.max_document_bytes.get()),
        ("limits.max_connections", l.max_connections as u64),
        ("limits.max_connections_per_peer", l.max_connections_per_peer as u64),
        ("limits.max_clerk_connections", l.max_clerk_connections as u64),
        ("limits.max_connections_per_certificate", l.max_connections_per_certificate as u64),
        ("limits.max_handshakes", l.max_handshakes as u64),
        ("limits.max_handshakes_per_address", l.max_handshakes_per_address as u64),
        ("limits.max_streams_per_connection", u64::from(l.max_streams_per_connection)),
        ("limits.min_transfer_rate", l.min_transfer_rate.0.get()),
        ("limits.max_in_flight_per_peer", l.max_in_flight_per_peer as u64),
        ("limits.max_path_questions", l.max_path_questions as u64),
        ("limits.max_crl_fetch_count", l.max_crl_fetch_count as u64),
        ("limits.max_crl_fetch_bytes", l.max_crl_fetch_bytes.get()),
    ] {
        if value == 0 {
            p.add(key, "must be at least 1");
        }
    }
    if l.max_frame_bytes.get() > u64::from(u32::MAX) {
        p.add(
            "limits.max_frame_bytes",
            format!("{} is more than a frame's 32-bit length can say (4GiB − 1)", l.max_frame_bytes),
        );
    }
    if l.max_unvalidated_handshakes > l.max_handshakes {
        p.add("limits.max_unvalidated_handshakes", "must not exceed limits.max_handshakes");
    }
    if l.max_handshakes_per_address > l.max_handshakes {
        p.add("limits.max_handshakes_per_address", "must not exceed limits.max_handshakes");
    }
    if l.max_connections_per_certificate > l.max_clerk_connections {
        p.add("limits.max_connections_per_certificate", "must not exceed limits.max_clerk_connections");
    }
    if !(ByteSize::kib(64)..=ByteSize(1 << 40)).contains(&l.receive_window) {
        p.add("limits.receive_window", format!("{} is not between 64KiB and 1TiB", l.receive_window));
    }
    if l.udp_receive_buffer > MAX_UDP_RECEIVE_BUFFER {
        p.add("limits.udp_receive_buffer", format!("{} is more than 512MiB", l.udp_receive_buffer));
    }
    // A frame must fit in each budget it is read under, or it could never be read.
    if l.frame_budget_per_connection < l.max_frame_bytes {
        p.add("limits.frame_budget_per_connection", "must be at least limits.max_frame_bytes");
    }
    if l.frame_budget_per_certificate < l.frame_budget_per_connection {
        p.add("limits.frame_budget_per_certificate", "must be at least limits.frame_budget_per_connection");
    }
    if l.frame_budget_total < l.frame_budget_per_certificate {
        p.add("limits.frame_budget_total", "must be at least limits.frame_budget_per_certificate");
    }
    let handshake_timeout = nonzero(p, "limits.handshake_timeout", l.handshake_timeout);
    let max_signature_age = nonzero(p, "limits.max_signature_age", l.max_signature_age);
    let max_partial_age = nonzero(p, "limits.max_partial_age", l.max_partial_age);
    if l.max_partial_files == 0 {
        p.add("limits.max_partial_files", "must be at least 1 (limits.max_partial_bytes = 0 turns resuming off)");
    }
    let frame_timeout = nonzero(p, "limits.frame_timeout", l.frame_timeout);
    if l.outbox_lease.get() < Duration::from_secs(1) {
        p.add("limits.outbox_lease", "must be at least 1s (it is renewed every third of it)");
    }
    if l.notice_linger.get() > MAX_NOTICE_LINGER {
        p.add("limits.notice_linger", "must be at most 1s (receipts would reach their senders late)");
    }
    if l.keep_alive >= l.idle_timeout {
        p.add("limits.keep_alive", "must be shorter than limits.idle_timeout");
    }
    if l.max_path_questions > tokio::sync::Semaphore::MAX_PERMITS {
        p.add("limits.max_path_questions", format!("must be at most {}", tokio::sync::Semaphore::MAX_PERMITS));
    }
    if l.inline_attachment_bytes.get() > crate::storage::inline::MAX_INLINE_BYTES as u64 {
        p.add(
            "limits.inline_attachment_bytes",
            format!(
                "{} is more than 256KiB (an attachment kept in the database is received whole in memory)",
                l.inline_attachment_bytes
            ),
        );
    }
    if l.verify_threads > MAX_VERIFY_THREADS {
        p.add("limits.verify_threads", format!("must be at most {MAX_VERIFY_THREADS} (0: one per CPU core)"));
    }
    if p.0.len() > problems_before {
        return None;
    }
    Some(Limits {
        max_frame_bytes,
        max_attachment_bytes: l.max_attachment_bytes.get(),
        max_document_bytes: l.max_document_bytes.get(),
        max_connections: l.max_connections,
        max_connections_per_peer: l.max_connections_per_peer,
        max_clerk_connections: l.max_clerk_connections,
        max_connections_per_certificate: l.max_connections_per_certificate,
        max_handshakes: l.max_handshakes,
        verify_threads: match l.verify_threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n => n,
        },
        max_path_questions: l.max_path_questions,
        max_crl_fetch_count: l.max_crl_fetch_count,
        max_crl_fetch_bytes: l.max_crl_fetch_bytes.get(),
        max_unvalidated_handshakes: l.max_unvalidated_handshakes,
        max_handshakes_per_address: l.max_handshakes_per_address,
        handshake_timeout,
        max_streams_per_connection: l.max_streams_per_connection,
        receive_window: l.receive_window.get(),
        udp_receive_buffer: usize::try_from(l.udp_receive_buffer.get()).unwrap_or(usize::MAX),
        frame_budget_per_connection,
        frame_budget_per_certificate,
        frame_budget_total,
        frame_timeout,
        min_transfer_rate: l.min_transfer_rate.0.get(),
        max_in_flight_per_peer: l.max_in_flight_per_peer,
        idle_timeout: l.idle_timeout.get(),
        keep_alive: l.keep_alive.get(),
        request_timeout: l.request_timeout.get(),
        connect_timeout: l.connect_timeout.get(),
        outbox_lease: l.outbox_lease.get(),
        min_free_bytes: l.min_free_bytes.get(),
        max_signature_age,
        max_partial_bytes: l.max_partial_bytes.get(),
        max_partial_age,
        max_partial_files: l.max_partial_files as usize,
        inline_attachment_bytes: l.inline_attachment_bytes.get(),
        pass_on_before_commit: l.pass_on_before_commit,
        notice_linger: l.notice_linger.get(),
    })
}

impl Config {
    /// Reads and validates a config file; relative paths are taken from the file's directory.
    ///
    /// Every problem of the file comes back at once, each with its key path and line: what
    /// the TOML reader finds (syntax, unknown keys with the nearest valid one, values of the
    /// wrong kind, missing keys) and what validation finds in the rest. A problem validation
    /// would find again in a key already reported (an unknown key's absence, a stand-in for a
    /// missing one) is left out.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let failed = |problems: Vec<Problem>| ConfigError { file: Some(path.to_owned()), problems };
        let text = std::fs::read_to_string(path).map_err(|e| {
            failed(vec![Problem { key: String::new(), line: None, message: format!("cannot read it: {e}") }])
        })?;
        let document = document::Document::parse(&text).map_err(failed)?;
        let read = document.read::<RawConfig>();
        let mut problems = read.problems;
        let Some(raw) = read.value else { return Err(failed(problems)) };
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        match Config::validate(raw, &base) {
            Ok(config) if problems.is_empty() => return Ok(config),
            Ok(_) => {}
            Err(e) => problems.extend(
                e.problems
                    .into_iter()
                    .filter(|p| !document::follows_from(&p.key, &p.message, &read.covered))
                    .map(|p| Problem { line: document.line(&p.key), ..p }),
            ),
        }
        // In the order of the file; problems of no particular line last.
        problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        Err(failed(problems))
    }

    /// Validates a raw config, resolving relative paths against `base`.
    pub fn validate(raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
        let mut p = Problems(Vec::new());
        let agency = p.check("node.agency", raw.node.agency.parse::<AgencyCode>());
        if raw.node.name.trim().is_empty() {
            p.add("node.name", "is empty");
        }
        let listen = p.check(
            "node.listen",
            raw.node
                .listen
                .parse::<SocketAddr>()
                .map_err(|e| format!("{:?} is not an address like 0.0.0.0:7400 ({e})", raw.node.listen)),
        );
        let data_dir = resolve(base, &raw.node.data_dir);
        let database = match &raw.node.database {
            Some(url)
                if url.starts_with("sqlite:") || url.starts_with("postgres:") || url.starts_with("postgresql:") =>
            {
                url.clone()
            }
            Some(url) => {
                p.add("node.database", format!("{url:?} is neither a sqlite: nor a postgres: URL"));
                String::new()
            }
            None => format!("sqlite://{}", data_dir.join("node.db").display()),
        };
        let files = OwnFiles {
            tls_certificate: resolve(base, &raw.tls.certificate),
            tls_key: resolve(base, &raw.tls.key),
            seal_certificate: resolve(base, &raw.seal.certificate),
            seal_key: resolve(base, &raw.seal.key),
            seal_passphrase_file: raw.seal.passphrase_file.as_ref().map(|f| resolve(base, f)),
        };
        let anchors = load_chain(&mut p, "tls.trust_anchor", &resolve(base, &raw.tls.trust_anchor));
        let tls = load_identity(
            &mut p,
            IdentityFiles {
                section: "tls",
                certificate: &files.tls_certificate,
                key: &files.tls_key,
                passphrase: None,
            },
            Profile::Node,
            agency,
            anchors.as_deref(),
        );
        let seal = load_identity(
            &mut p,
            IdentityFiles {
                section: "seal",
                certificate: &files.seal_certificate,
                key: &files.seal_key,
                passphrase: files.seal_passphrase_file.as_deref(),
            },
            Profile::Seal,
            agency,
            anchors.as_deref(),
        );
        let crl_files: Vec<PathBuf> = raw.crl.files.iter().map(|f| resolve(base, f)).collect();
        for (i, f) in crl_files.iter().enumerate() {
            if !f.exists() {
                p.add(format!("crl.files[{i}]"), format!("{} does not exist", f.display()));
            }
        }
        let crl_freshness = raw.crl.freshness.get();
        let crl_poll = nonzero(&mut p, "crl.poll", raw.crl.poll);
        let parent = raw.parent.as_ref().and_then(|n| neighbour(&mut p, "parent", n));
        let children: Vec<Neighbour> =
            raw.children.iter().enumerate().filter_map(|(i, n)| neighbour(&mut p, &format!("child[{i}]"), n)).collect();
        let peers: Vec<Neighbour> =
            raw.peers.iter().enumerate().filter_map(|(i, n)| neighbour(&mut p, &format!("peer[{i}]"), n)).collect();
        if let Some(agency) = agency {
            let all = parent.iter().chain(&children).chain(&peers);
            for n in all.clone() {
                if n.agency == agency {
                    p.add("parent/child/peer", format!("{} is this node itself", n.agency));
                }
            }
            let mut seen = std::collections::BTreeSet::new();
            for n in all {
                if !seen.insert(n.agency) {
                    p.add("parent/child/peer", format!("{} is listed twice", n.agency));
                }
            }
            // From the codes as written, whatever else is wrong with those entries.
            let parent_code = raw.parent.as_ref().and_then(|n| n.agency.parse().ok());
            let child_codes: Vec<Option<AgencyCode>> = raw.children.iter().map(|n| n.agency.parse().ok()).collect();
            check_tree(&mut p, agency, parent_code, &child_codes);
        }
        let limits = limits(&mut p, &raw.limits);
        let r = &raw.retry;
        let (initial, max) = (r.initial.get(), r.max.get());
        if max < initial {
            p.add("retry.max", "must not be shorter than retry.initial");
        }
        check_retry_delay(&mut p.0, "retry.initial", Some(initial));
        check_retry_delay(&mut p.0, "retry.max", Some(max));
        if !(r.multiplier >= 1.0 && r.multiplier.is_finite()) {
            p.add("retry.multiplier", "must be at least 1");
        }
        if !(0.0..=1.0).contains(&r.jitter) {
            p.add("retry.jitter", "must be between 0 and 1");
        }
        if r.max_attempts == 0 {
            p.add("retry.max_attempts", "must be at least 1");
        }
        let mail = crate::mail::config::validate(raw.mail.as_ref(), base, &mut p.0);
        let health = crate::health::validate_alerts(&raw.health, &mut p.0);
        let http = crate::http::config::validate(raw.http.as_ref(), base, &mut p.0);
        let log = crate::tlog::validate_config(&raw.log, agency, &children, &mut p.0);
        if !p.0.is_empty() {
            return Err(ConfigError::unlocated(p.0));
        }
        // Every Option below is Some when no problem was recorded.
        let missing = || ConfigError::unlocated(vec![("(internal)".into(), "incomplete configuration".into())]);
        Ok(Config {
            agency: agency.ok_or_else(missing)?,
            name: raw.node.name.trim().to_owned(),
            listen: listen.ok_or_else(missing)?,
            data_dir,
            database,
            tls: tls.ok_or_else(missing)?,
            seal: seal.ok_or_else(missing)?,
            anchors: anchors.ok_or_else(missing)?,
            crl_files,
            crl_freshness,
            crl_poll,
            crl_accept_unchecked: raw.crl.danger_accept_unchecked,
            parent,
            children,
            peers,
            limits: limits.ok_or_else(missing)?,
            retry: RetryPolicy {
                initial,
                max,
                multiplier: r.multiplier,
                jitter: r.jitter,
                max_attempts: r.max_attempts,
                jitter_seed: r.jitter_seed,
            },
            mail,
            health,
            http,
            log,
            files,
        })
    }

    /// Every neighbour with its role, for routing and authorisation.
    pub fn neighbours(&self) -> impl Iterator<Item = (&Neighbour, crate::routing::Relation)> {
        use crate::routing::Relation;
        self.parent
            .iter()
            .map(|n| (n, Relation::Parent))
            .chain(self.children.iter().map(|n| (n, Relation::Child)))
            .chain(self.peers.iter().map(|n| (n, Relation::Peer)))
    }
}

/// A commented configuration for a new node, as `lienthong-node init` writes it.
pub fn template(agency: &AgencyCode, name: &str, listen: &str, parent: Option<(&AgencyCode, &str)>) -> String {
    let parent_block = match parent {
        Some((code, addr)) => format!("[parent]\nagency = \"{code}\"\naddress = \"{addr}\"\n"),
        None => "# [parent]            # the national hub has none\n# agency = \"000.00.00.G22\"\n# address = \"hub.example.gov.vn:7400\"\n".into(),
    };
    let mail_section = crate::mail::config::TEMPLATE;
    let http_section = crate::http::config::TEMPLATE;
    format!(
        r#"# lienthong-node configuration for {name} ({agency}).
# Relative paths are taken from this file's directory. Check it with `lienthong-node check`.

[node]
agency = "{agency}"
name = "{name}"
# UDP address for QUIC (nodes and this agency's clerks connect here).
listen = "{listen}"
# Attachments are stored here, content-addressed; the SQLite database too by default.
data_dir = "data"
# database = "postgres://lienthong@localhost/lienthong"   # default: sqlite://DATA_DIR/node.db

[tls]
# The node certificate chain and key: `lienthong pki issue --cert-profile node`. The chain file
# holds the certificate first, then each CA above it (the national root may be left out); the
# key file must be readable by its owner only (chmod 600).
certificate = "node.chain.pem"
key = "node.key.pem"
# The national root certificate.
trust_anchor = "root.pem"

[seal]
# The agency seal (`--cert-profile seal`, chain and key as above): signs hop receipts, delivery
# receipts and statuses.
certificate = "seal.chain.pem"
key = "seal.key.pem"
# passphrase_file = "seal.pass"   # if the seal key is encrypted

[crl]
# CRL files to load and watch, e.g. those this agency's CA publishes. CRLs also arrive from
# the parent and with documents.
files = []
# A certificate (a neighbour's, a clerk's, a document signer's) can be vouched for only with a
# CRL of its issuer no older than this; without one it is refused (a fresh node asks its
# parent for CRLs at start and keeps asking until it has them).
freshness = "7d"
poll = "10s"
# DANGER: take certificates whose revocation cannot be checked (marked provisional, alerted).
danger_accept_unchecked = false

{parent_block}
# One [[child]] per node below this one, and [[peer]] for direct short-cuts:
# [[child]]
# agency = "000.01.41.H49"
# address = "10.0.0.5:7400"
# A node scaled out over several processes: list them (tried in order, the next one after a
# lost connection), or give one DNS name that resolves to all of them.
# address = ["10.0.0.5:7400", "10.0.0.6:7400", "10.0.0.7:7400"]

[limits]
# Sizes are bytes, or a number with a unit: "4MiB", "256 MiB", "1GB" (KiB/MiB/GiB/TiB count in
# 1024s, kB/MB/GB/TB in 1000s). Durations have their unit: "500ms", "10s", "5m", "7d".
max_frame_bytes = "4MiB"             # one request: envelope (at most 512 KiB) and the CRLs riding along
max_attachment_bytes = "256MiB"      # per attachment
max_document_bytes = "1GiB"          # attachments per document
max_connections = 1024               # authenticated connections, everyone together
max_connections_per_peer = 8         # per neighbour agency
max_clerk_connections = 64           # this agency's clerks together (their own pool)
max_connections_per_certificate = 4  # one clerk certificate
max_handshakes = 128                 # handshakes in progress; nothing unauthenticated holds more
max_unvalidated_handshakes = 32      # beyond this, unproven addresses get a QUIC Retry first
max_handshakes_per_address = 16
handshake_timeout = "10s"
verify_threads = 0                   # documents verified at once, off the network threads; 0: one per core
max_path_questions = 16              # neighbours' questions about documents' paths (track, fetch) answered at once
max_crl_fetch_count = 32             # CRLs a neighbour may send when asked for those a document references
max_crl_fetch_bytes = "2MiB"         # and their bytes together
max_streams_per_connection = 64
receive_window = "8MiB"              # in flight per connection (a stream: a quarter)
udp_receive_buffer = "4MiB"          # asked of the kernel for the UDP socket (capped by
                                     # net.core.rmem_max; the log says so); 0: the system's default
frame_budget_per_connection = "16MiB"    # request-frame memory per connection,
frame_budget_per_certificate = "32MiB"   # per certificate (all its connections),
frame_budget_total = "256MiB"            # and for the node
frame_timeout = "10s"                # a request frame gets this plus its size at min_transfer_rate
min_transfer_rate = "256KiB/s"       # the slowest transfer given time for
max_in_flight_per_peer = 32
idle_timeout = "60s"
keep_alive = "15s"
request_timeout = "20s"              # well under idle_timeout; larger requests get their size at min_transfer_rate
connect_timeout = "10s"              # per address of a neighbour; then the next address
outbox_lease = "30s"                 # a dead process's transfers are taken over after this
min_free_bytes = "256MiB"            # kept free on the data (and database) filesystem:
                                     # documents that would use it are refused for now, and retried
max_signature_age = "3d"             # a clerk's document signed longer ago is refused (iat is a claim)
max_partial_bytes = "2GiB"           # kept from large transfers that broke off, to resume them (0: never resume)
max_partial_age = "1d"               # such bytes not resumed within this are removed
max_partial_files = 256              # most files they are kept in (one per attachment)
inline_attachment_bytes = "64KiB"    # attachments this small are kept in the database (one sync
                                     # per document instead of three); at most 256KiB, 0: all files
pass_on_before_commit = true         # a neighbour's document goes on while this node commits it
                                     # (the hop receipt still waits); false: committed before it leaves
notice_linger = "25ms"               # receipts to one neighbour wait this long for others to go with
                                     # (64 go at once); at most 1s, 0: each as soon as it is due

[retry]
initial = "1s"
max = "10m"
multiplier = 2.0
jitter = 0.2
max_attempts = 30                    # then dead-lettered, and the sender gets a signed refusal

[health]
# When `lienthong-node status` and the clerks' health read-out raise alerts.
backlog_age = "5m"                   # transfers pending longer than this
neighbour_down_after = "1m"          # a neighbour failing (no answer, no hand-over) this long
stuck_after = "5m"                   # a transfer attempt running this long
storage_error_window = "1h"          # storage errors are shown this long after the latest
expiry_warning = "30d"               # the node's or seal's chain expiring within this
{mail_section}{http_section}"#
    )
}

/// Most verification threads `limits.verify_threads` may ask for: more than any machine a
/// node runs on has cores, and each is a blocking thread.
pub const MAX_VERIFY_THREADS: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &RawLimits) -> Result<Limits, Vec<String>> {
        let mut p = Problems(Vec::new());
        match limits(&mut p, raw) {
            Some(l) if p.0.is_empty() => Ok(l),
            _ => Err(p.0.into_iter().map(|(k, v)| format!("{k}: {v}")).collect()),
        }
    }

    fn refused(raw: &RawLimits, key: &str) {
        let problems = check(raw).err().unwrap_or_default();
        assert!(problems.iter().any(|p| p.starts_with(key)), "{key} not refused: {problems:?}");
    }

    #[test]
    fn the_default_limits_are_valid_and_consistent() {
        let l = check(&RawLimits::default()).unwrap();
        assert!(l.max_frame_bytes <= l.frame_budget_per_connection);
        assert!(l.request_timeout < l.idle_timeout, "a small request must fail before its connection is given up");
        assert!(l.handshake_timeout < l.idle_timeout);
        // A frame gets frame_timeout plus its size at the minimum rate.
        assert_eq!(l.frame_time(256 * 1024), Duration::from_secs(11));
        assert_eq!(l.transfer_time(u64::MAX), Duration::from_millis(u64::MAX / (256 * 1024)), "saturates");
    }

    #[test]
    fn the_verification_pool_is_sized_to_the_cores_or_as_asked_up_to_its_bound() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        assert_eq!(check(&RawLimits::default()).unwrap().verify_threads, cores);
        let mut raw = RawLimits { verify_threads: MAX_VERIFY_THREADS, ..RawLimits::default() };
        assert_eq!(check(&raw).unwrap().verify_threads, MAX_VERIFY_THREADS);
        raw.verify_threads += 1;
        refused(&raw, "limits.verify_threads");
    }

    #[test]
    fn attachments_kept_in_the_database_are_at_most_256_kib() {
        assert_eq!(check(&RawLimits::default()).unwrap().inline_attachment_bytes, 64 * 1024);
        let raw = RawLimits { inline_attachment_bytes: ByteSize::kib(256), ..RawLimits::default() };
        assert_eq!(check(&raw).unwrap().inline_attachment_bytes, 256 * 1024);
        assert_eq!(
            check(&RawLimits { inline_attachment_bytes: ByteSize(0), ..raw.clone() }).unwrap().inline_attachment_bytes,
            0
        );
        refused(
            &RawLimits { inline_attachment_bytes: ByteSize(256 * 1024 + 1), ..raw },
            "limits.inline_attachment_bytes",
        );
    }

    #[test]
    fn notices_linger_at_most_a_second() {
        assert_eq!(check(&RawLimits::default()).unwrap().notice_linger, Duration::from_millis(25));
        let at = |d: Duration| RawLimits { notice_linger: HumanDuration(d), ..RawLimits::default() };
        assert_eq!(check(&at(Duration::ZERO)).unwrap().notice_linger, Duration::ZERO);
        assert_eq!(check(&at(MAX_NOTICE_LINGER)).unwrap().notice_linger, MAX_NOTICE_LINGER);
        refused(&at(MAX_NOTICE_LINGER + Duration::from_millis(1)), "limits.notice_linger");
    }

    #[test]
    fn path_questions_are_at_least_one_at_a_time() {
        let raw = RawLimits { max_path_questions: 1, ..RawLimits::default() };
        assert_eq!(check(&raw).unwrap().max_path_questions, 1);
        refused(&RawLimits { max_path_questions: 0, ..raw }, "limits.max_path_questions");
        let raw = RawLimits { max_crl_fetch_count: 1, max_crl_fetch_bytes: ByteSize(1), ..RawLimits::default() };
        assert_eq!(check(&raw).unwrap().max_crl_fetch_count, 1);
        assert_eq!(check(&raw).unwrap().max_crl_fetch_bytes, 1);
        refused(&RawLimits { max_crl_fetch_count: 0, ..raw.clone() }, "limits.max_crl_fetch_count");
        refused(&RawLimits { max_crl_fetch_bytes: ByteSize(0), ..raw }, "limits.max_crl_fetch_bytes");
    }

    #[test]
    fn frame_budgets_must_hold_a_frame_and_each_other() {
        let mut raw = RawLimits::default();
        raw.frame_budget_per_connection = raw.max_frame_bytes;
        raw.frame_budget_per_certificate = raw.max_frame_bytes;
        raw.frame_budget_total = raw.max_frame_bytes;
        check(&raw).unwrap();
        let mut under = raw.clone();
        under.frame_budget_total.0 -= 1;
        refused(&under, "limits.frame_budget_total");
        let mut under = raw.clone();
        under.frame_budget_per_certificate.0 -= 1;
        refused(&under, "limits.frame_budget_per_certificate");
        raw.frame_budget_per_connection.0 -= 1;
        refused(&raw, "limits.frame_budget_per_connection");
    }

    #[test]
    fn handshake_and_connection_caps_are_checked_at_their_edges() {
        let mut raw = RawLimits::default();
        raw.max_unvalidated_handshakes = raw.max_handshakes;
        raw.max_handshakes_per_address = raw.max_handshakes;
        raw.max_connections_per_certificate = raw.max_clerk_connections;
        check(&raw).unwrap();
        // No unvalidated handshakes at all: every new address gets a Retry first.
        raw.max_unvalidated_handshakes = 0;
        check(&raw).unwrap();
        let mut over = raw.clone();
        over.max_unvalidated_handshakes = over.max_handshakes + 1;
        refused(&over, "limits.max_unvalidated_handshakes");
        let mut over = raw.clone();
        over.max_handshakes_per_address = over.max_handshakes + 1;
        refused(&over, "limits.max_handshakes_per_address");
        let mut over = raw.clone();
        over.max_connections_per_certificate = over.max_clerk_connections + 1;
        refused(&over, "limits.max_connections_per_certificate");
        for zero in [
            |r: &mut RawLimits| r.max_handshakes = 0,
            |r: &mut RawLimits| r.max_clerk_connections = 0,
            |r: &mut RawLimits| r.min_transfer_rate = ByteRate(ByteSize(0)),
        ] {
            let mut r = RawLimits::default();
            zero(&mut r);
            assert!(check(&r).is_err());
        }
    }

    #[test]
    fn timeouts_and_windows_are_checked() {
        let mut raw = RawLimits {
            receive_window: ByteSize::kib(64),
            handshake_timeout: HumanDuration(Duration::from_millis(1)),
            ..RawLimits::default()
        };
        check(&raw).unwrap();
        raw.receive_window.0 -= 1;
        refused(&raw, "limits.receive_window");
        let at = |b: ByteSize| RawLimits { udp_receive_buffer: b, ..RawLimits::default() };
        assert_eq!(check(&at(ByteSize(0))).unwrap().udp_receive_buffer, 0);
        assert_eq!(check(&at(MAX_UDP_RECEIVE_BUFFER)).unwrap().udp_receive_buffer, 512 << 20);
        refused(&at(ByteSize(MAX_UDP_RECEIVE_BUFFER.0 + 1)), "limits.udp_receive_buffer");
        let files = |n: u32| RawLimits { max_partial_files: n, ..RawLimits::default() };
        assert_eq!(check(&files(1)).unwrap().partials().max_files, 1);
        refused(&files(0), "limits.max_partial_files");
        let mut raw = RawLimits { frame_timeout: HumanDuration::secs(0), ..RawLimits::default() };
        refused(&raw, "limits.frame_timeout");
        raw.handshake_timeout = HumanDuration::secs(0);
        refused(&raw, "limits.handshake_timeout");
    }

    /// The problems of a configuration whose files do not exist, with `retry` as its
    /// `[retry]` section.
    fn problems_with_retry(retry: &str) -> Vec<(String, String)> {
        let text = format!(
            "[node]\nagency = \"000.00.41.H49\"\nname = \"Tiên Yên\"\nlisten = \"127.0.0.1:7400\"\ndata_dir = \
             \"data\"\n[tls]\ncertificate = \"n.pem\"\nkey = \"n.key\"\ntrust_anchor = \"r.pem\"\n[seal]\ncertificate = \
             \"s.pem\"\nkey = \"s.key\"\n[retry]\n{retry}\n"
        );
        let raw: RawConfig = toml::from_str(&text).unwrap();
        Config::validate(raw, Path::new("/nonexistent-lienthong"))
            .unwrap_err()
            .problems
            .into_iter()
            .map(|p| (p.key, p.message))
            .collect()
    }

    #[test]
    fn retry_delays_are_bounded_at_30_days() {
        let keys = |retry: &str| -> Vec<String> {
            problems_with_retry(retry).into_iter().map(|(k, _)| k).filter(|k| k.starts_with("retry.")).collect()
        };
        assert!(keys("initial = \"30d\"\nmax = \"30d\"").is_empty());
        assert_eq!(keys("initial = \"1s\"\nmax = \"30days 1s\""), vec!["retry.max"]);
        // Found by the `config` fuzz target: this made the first retry panic.
        assert_eq!(keys("initial = \"500000000000y\"\nmax = \"500000000000y\""), vec!["retry.initial", "retry.max"]);
    }

    #[test]
    fn a_delay_is_total_for_any_policy() {
        let policy = RetryPolicy {
            initial: Duration::MAX,
            max: Duration::MAX,
            multiplier: f64::MAX,
            jitter: 1.0,
            max_attempts: u32::MAX,
            jitter_seed: None,
        };
        assert_eq!(policy.delay(u32::MAX, 0.999_999), Duration::MAX);
        let sane = RetryPolicy { initial: Duration::from_secs(1), max: MAX_RETRY_DELAY, ..policy };
        assert!(sane.delay(u32::MAX, 0.999_999) <= MAX_RETRY_DELAY * 2);
        assert_eq!(sane.delay(1, 0.5), Duration::from_secs(1));
    }

    #[test]
    fn the_init_template_reads_and_writes_the_defaults_in_human_units() {
        let agency: AgencyCode = "000.01.41.H49".parse().unwrap();
        let parent: AgencyCode = "000.00.41.H49".parse().unwrap();
        let text = template(&agency, "Ủy ban nhân dân xã Phong Dụ", "0.0.0.0:7400", Some((&parent, "10.0.0.2:7400")));
        let document = document::Document::parse(&text).unwrap();
        let (raw, problems) = document.deserialize::<RawConfig>();
        assert!(problems.is_empty(), "{problems:?}");
        let raw = raw.unwrap();
        // The values written out are the defaults, so the comments in the file tell the truth.
        assert_eq!(format!("{:?}", raw.limits), format!("{:?}", RawLimits::default()));
        assert_eq!(format!("{:?}", raw.retry), format!("{:?}", RawRetry::default()));
        assert_eq!(format!("{:?}", raw.health), format!("{:?}", crate::health::RawAlerts::default()));
        assert_eq!(format!("{:?}", raw.crl), format!("{:?}", RawCrl::default()));
        assert!(text.contains("max_frame_bytes = \"4MiB\"") && text.contains("min_free_bytes = \"256MiB\""));
        assert!(
            text.contains("--cert-profile node") && !text.contains("--profile node"),
            "the option is --cert-profile"
        );
    }

    fn tree(agency: &str, parent: Option<&str>, children: &[&str]) -> Vec<String> {
        let children: Vec<Option<AgencyCode>> = children.iter().map(|c| c.parse().ok()).collect();
        let mut p = Problems(Vec::new());
        check_tree(&mut p, agency.parse().unwrap(), parent.map(|c| c.parse().unwrap()), &children);
        p.0.into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn a_parent_is_above_the_agency_except_the_hub_above_level_one() {
        // A commune under its district, or (2025, no districts) under its province.
        assert!(tree("000.01.41.H49", Some("000.00.41.H49"), &[]).is_empty());
        assert!(tree("000.00.61.H49", Some("000.00.00.H49"), &[]).is_empty());
        // A province under the national hub: both level 1, not related by code.
        assert!(tree("000.00.00.H49", Some("000.00.00.G22"), &["000.00.41.H49"]).is_empty());
        // The hub: no parent, level-1 children.
        assert!(tree("000.00.00.G22", None, &["000.00.00.H49", "000.00.00.H37"]).is_empty());
        // A commune whose parent is another district, or the hub.
        assert_eq!(tree("000.01.41.H49", Some("000.00.42.H49"), &[]), ["parent.agency"]);
        assert_eq!(tree("000.01.41.H49", Some("000.00.00.G22"), &[]), ["parent.agency"]);
        // A district listing a commune of another district, or its own province, as a child.
        assert_eq!(tree("000.00.41.H49", Some("000.00.00.H49"), &["000.01.42.H49"]), ["child[0].agency"]);
        assert_eq!(tree("000.00.41.H49", None, &["000.00.00.H49"]), ["child[0].agency"]);
        // A province with a parent is not the hub: no level-1 children.
        assert_eq!(tree("000.00.00.H49", Some("000.00.00.G22"), &["000.00.00.H37"]), ["child[0].agency"]);
    }
}
