//! The lienthong node: an agency's end of the document exchange.
//!
//! A node listens on one QUIC endpoint for its neighbours (parent, children, direct peers) and
//! its own clerks, takes responsibility for documents only once it has verified and durably
//! stored them (then answers with a signed hop receipt), forwards them along the hierarchy from
//! a durable outbox with retries, and routes signed receipts and statuses back.
//!
//! [`Node::start`] takes a bound UDP socket and a validated [`config::Config`], so tests run
//! nodes on `127.0.0.1:0` in-process exactly as the daemon runs them.
#![forbid(unsafe_code)]

pub mod admission;
pub mod backup;
pub mod budget;
pub mod clerk;
pub mod config;
pub mod cpu;
pub mod crl_refs;
pub mod crls;
pub(crate) mod gather;
pub mod health;
pub mod http;
pub mod inbound;
pub mod intake;
pub mod live;
pub mod mail;
pub mod metrics;
pub mod notices;
pub mod outbound;
pub mod path;
pub mod protocol;
pub mod route_check;
pub mod routing;
pub mod self_check;
pub mod server;
pub mod storage;
pub mod tlog;

pub use lienthong_protocol::{clerk_client, tls, trust};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::routing::Routes;
use crate::storage::Store;
use crate::trust::Trust;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Storage would not open.
    #[error(transparent)]
    Store(#[from] storage::StoreError),
    /// TLS configuration failed.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The QUIC endpoint failed.
    #[error("QUIC endpoint: {0}")]
    Endpoint(String),
    /// Another node process already runs on this SQLite database.
    #[error(
        "another lienthong-node is already running on {0} (a SQLite node is one process; to run several processes of one agency, use PostgreSQL)"
    )]
    AlreadyRunning(std::path::PathBuf),
    /// The run lock could not be taken.
    #[error("cannot lock {0}: {1}")]
    Lock(std::path::PathBuf, std::io::Error),
    /// The web face (`[http]`) could not start.
    #[error(transparent)]
    Http(#[from] http::HttpStartError),
}

/// Takes the lock that keeps a second process off a SQLite node's data (two processes would
/// both send every transfer, since SQLite claims are plain reads). Held until the handle goes.
fn run_lock(config: &Config) -> Result<Option<std::fs::File>, StartError> {
    if storage::Backend::of_url(&config.database) != storage::Backend::Sqlite {
        return Ok(None);
    }
    let path = config.data_dir.join("node.lock");
    let lock_error = |e| StartError::Lock(path.clone(), e);
    std::fs::create_dir_all(&config.data_dir).map_err(lock_error)?;
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(lock_error)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::AlreadyRunning(config.data_dir.clone())),
        Err(std::fs::TryLockError::Error(e)) => Err(lock_error(e)),
    }
}

/// Counters kept in memory since start (the persistent ones are in the database).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Documents taken from neighbours or clerks: new to this node (a repeat is counted in
    /// `duplicates_in`).
    pub documents_in: AtomicU64,
    /// Documents handed over to next hops.
    pub documents_out: AtomicU64,
    /// Documents refused.
    pub refused: AtomicU64,
    /// Failed transfer attempts (retried).
    pub retries: AtomicU64,
    /// Transfers given up (dead-lettered).
    pub dead: AtomicU64,
    /// Documents accepted with provisional verification.
    pub provisional: AtomicU64,
    /// Notices (receipts, statuses) taken.
    pub notices_in: AtomicU64,
    /// Requests of notices that brought new ones (each a batch, one transaction): with
    /// `notices_in`, how well a neighbour batches.
    pub notice_batches_in: AtomicU64,
    /// New statuses a next hop sent with its hop receipt (see `NodeResponse::HopReceipt`):
    /// notice transfers that did not have to happen.
    pub statuses_with_receipts_in: AtomicU64,
    /// Statuses that came with a hop receipt and could be stored neither with it (the
    /// database refused that transaction) nor in a transaction of their own after it (see
    /// `outbound::keep_statuses_apart`): they rode in the answer only, so the sender's route
    /// stays as the hop receipt left it. Should stay 0.
    pub statuses_lost: AtomicU64,
    /// Transactions that recorded next hops' plain answers (see `outbound::answers`): with
    /// `documents_out`, how many answers a transaction holds under the load.
    pub answer_transactions: AtomicU64,
    /// Transactions of several answers that failed and were done again one answer at a time:
    /// the database refusing some writes, or failing.
    pub answer_transactions_redone: AtomicU64,
    /// Transactions that took documents together (see `intake::together`, PostgreSQL): with
    /// `documents_in`, how many documents a transaction holds under the load.
    pub intake_transactions: AtomicU64,
    /// Transactions of several documents that failed and were done again one document at a
    /// time.
    pub intake_transactions_redone: AtomicU64,
    /// Documents waiting to be taken together that were found stored when their rows went in
    /// (another delivery of the same document at once, a retry, or the document's own row
    /// kept by a transaction of several whose `COMMIT` was in doubt), taken alone after: with
    /// no repeats sent and no transaction redone, a document new here counted in it was
    /// wrongly left out of its transaction. Counted once an intake, when it is told so.
    pub intake_found_stored: AtomicU64,
    /// Times this node asked a neighbour for CRLs a document or notices referenced and it
    /// lacked (`NodeResponse::CrlsWanted`).
    pub crl_asks: AtomicU64,
    /// CRLs received from neighbours in answer to those asks and used.
    pub crls_fetched: AtomicU64,
    /// Document transfers sent with the document their intake held in memory (handed to the
    /// outbox, or kept for the claim of a hand-off that fell due unstarted), rather than read
    /// back from the database (see `outbound::handoff`): with `documents_out`, how often
    /// forwarding takes the short way.
    pub sent_from_intake: AtomicU64,
    /// Of those, the documents from a neighbour passed on while their intake committed (see
    /// `outbound::cut_through`).
    pub passed_before_commit: AtomicU64,
    /// Documents received again after this node had taken them, answered from storage with
    /// the hop receipt given the first time (a sender that did not get it, or sent twice, or
    /// two deliveries at once: the one taken second). Not counted in `documents_in`.
    pub duplicates_in: AtomicU64,
    /// Woken each time `documents_in` (or `duplicates_in`, for a repeat found by its
    /// transaction) moves, right after the document's commit: a test or a
    /// benchmark waits on it for a document to arrive instead of polling the counter. (Polling
    /// every 50 µs, 20,000 wake-ups a second, the latency benchmark slowed the nodes it
    /// watched on a 2-core machine: see BENCHMARKS.md, seventeenth session.)
    pub taken: tokio::sync::Notify,
}

impl Metrics {
    /// Adds one.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A running node: its parts, each owning its state and behaviour, and its lifecycle.
///
/// The parts: the validated `config`, the `store`, the `routes`, the trust side (`trust`:
/// anchors, CRLs, CRL references, live connections; see `live`), what the node observes of
/// itself (`observed`: counters, telemetry, the health watch; see `health`), the outbound
/// client (`outbound`: connections and requests to neighbours, the outbox's wake-up and
/// leases; see `outbound::client`) and the server side's caps (`capacity`: admission, frame
/// budgets, path questions; see `server`). What needs several parts at once is a free
/// function taking the node (`intake`, `notices`, `outbound::run_outbox`, …) or, for the
/// receipts a node signs, `impl Node` in `intake`.
pub struct Node {
    /// Validated configuration.
    pub config: Config,
    /// Storage.
    pub store: Store,
    /// Routing table.
    pub routes: Routes,
    /// The trust side: anchors, CRLs, CRL references, live connections (see `live`).
    pub trust: Arc<live::TrustState>,
    /// Counters, telemetry and the health watch, with their hooks (see `health`).
    pub observed: Arc<health::Observations>,
    /// Connections and requests to neighbours (see `outbound::client`).
    pub outbound: outbound::Client,
    /// Handshake and connection slots, request-frame memory, path questions (see `server`).
    pub capacity: server::Capacity,
    /// The transparency log's checkpoint rounds (see `tlog`).
    pub log: tlog::LogState,
    /// Where documents are verified (see `cpu`).
    pub verification: cpu::CpuPool,
    /// Documents waiting to be taken together, on PostgreSQL (see `intake::together`).
    pub(crate) intakes: intake::together::Intakes,
    /// Intakes' duplicate checks waiting to be asked together, on PostgreSQL.
    pub(crate) intake_lookups: intake::together::Lookups,
    /// The QUIC endpoint the server accepts on (the outbound client dials from a clone).
    endpoint: quinn::Endpoint,
    shutdown: watch::Receiver<bool>,
    started: time::OffsetDateTime,
    /// Where the web face listens, when `[http]` is on.
    http_addr: Option<std::net::SocketAddr>,
    /// Every task doing work (connections, requests, transfers), so shutdown can wait for
    /// them.
    pub(crate) tasks: TaskTracker,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("agency", &self.config.agency)
            .field("listen", &self.local_addr())
            .finish_non_exhaustive()
    }
}

/// A started node: its state, its tasks, and the switch that stops it.
#[derive(Debug)]
pub struct NodeHandle {
    /// The node's state.
    pub node: Arc<Node>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// See [`run_lock`]; released when the handle is dropped (after shutdown).
    _run_lock: Option<std::fs::File>,
}

/// This machine's name, to tell the processes of a scaled-out node apart.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

/// Asks the kernel for the receive buffer `limits.udp_receive_buffer` gives the node's UDP
/// socket (see `lienthong_protocol::udp`), and says in the log when it gave less; 0 leaves
/// the system's default. A socket whose buffer cannot be set still serves.
fn receive_buffer(socket: &std::net::UdpSocket, bytes: usize) {
    if bytes == 0 {
        return;
    }
    match lienthong_protocol::udp::set_receive_buffer(socket, bytes) {
        Ok(granted) if granted.is_short() => tracing::warn!(
            asked = bytes,
            given = granted.held(),
            "the kernel gave the QUIC socket a smaller receive buffer than limits.udp_receive_buffer asks for: bursts of packets beyond it are dropped, which slows transfers; raise net.core.rmem_max to at least {bytes} (sysctl), or lower the limit"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot set the QUIC socket's receive buffer (limits.udp_receive_buffer)"),
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u64::from_le_bytes(b)
}

impl Node {
    /// Starts a node on an already bound UDP socket: opens storage (applying migrations),
    /// loads CRLs, and spawns the server, the outbox worker and the CRL watcher.
    pub async fn start(config: Config, socket: std::net::UdpSocket) -> Result<NodeHandle, StartError> {
        let run_lock = run_lock(&config)?;
        let store = Store::open(&config.database, &config.data_dir).await?;
        // Bytes of broken-off transfers too old to resume go at start (see storage::blobs).
        store.blobs().sweep_partials(&config.limits.partials(), std::time::SystemTime::now());
        if config.log.enabled {
            store.keep_log(config.agency);
        }
        // Claims are owned by "instance/pid-random". The instance (host and listen address)
        // is the same across restarts of one process of a scaled-out node, so a restarted
        // process frees what its previous run held at once instead of waiting out the lease.
        let instance = format!("{}@{}/{}", config.agency, hostname(), config.listen);
        match store.backend() {
            // A single-process node: nothing from a previous run is still being sent.
            storage::Backend::Sqlite => store.release_leases(None).await?,
            storage::Backend::Postgres => store.release_leases(Some(&instance)).await?,
        }
        let trust = Arc::new(Trust::new(config.anchors.clone(), store.crls().await?, config.crl_freshness));
        let routes = Routes::new(
            config.agency,
            config.parent.as_ref().map(|n| n.agency),
            config.children.iter().map(|n| n.agency).collect(),
            config.peers.iter().map(|n| n.agency).collect(),
        );
        let server_crypto = tls::server_config(&config.tls, trust.clone())?;
        let client_crypto = tls::client_config(&config.tls, trust.clone(), protocol::ALPN_NODE)?;
        let transport = Arc::new(server::transport_config(&config.limits));
        let quic_server = quinn::crypto::rustls::QuicServerConfig::try_from(server_crypto)
            .map_err(|e| StartError::Endpoint(e.to_string()))?;
        let server_config = server::quic_server_config(Arc::new(quic_server), transport.clone(), &config.limits);
        let quic_client = quinn::crypto::rustls::QuicClientConfig::try_from(client_crypto)
            .map_err(|e| StartError::Endpoint(e.to_string()))?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(quic_client));
        client_config.transport_config(transport);
        let runtime = quinn::default_runtime().ok_or_else(|| StartError::Endpoint("no async runtime".into()))?;
        // The stateless-reset key is derived from the node key, so after a restart (or a crash)
        // the node can tell peers at once that their old connections are gone, instead of
        // leaving them to wait out the idle timeout.
        let secret = ring::digest::digest(
            &ring::digest::SHA256,
            &[b"lienthong stateless reset".as_slice(), config.tls.key.pkcs8_der()].concat(),
        );
        let mut endpoint_config =
            quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_ref())));
        // quinn's default connection IDs carry a hash under a per-process key, and a packet for
        // an ID that fails it gets no reset; random IDs (validated by nothing) let the
        // restarted node answer the old connections' packets with resets.
        endpoint_config.cid_generator(|| Box::new(RandomCids));
        receive_buffer(&socket, config.limits.udp_receive_buffer);
        let endpoint = quinn::Endpoint::new(endpoint_config, Some(server_config), socket, runtime)
            .map_err(|e| StartError::Endpoint(e.to_string()))?;
        // The web face's port is bound here, so a port in use fails the start like the QUIC one.
        let web = match &config.http {
            Some(h) => Some(http::bind(h, &config.tls).await?),
            None => None,
        };
        let (stop, shutdown) = watch::channel(false);
        let seed = config.retry.jitter_seed.unwrap_or_else(random_u64);
        let observed =
            Arc::new(health::Observations::new(config.mail.as_ref().is_some_and(|m| !m.operators.is_empty())));
        let trust = Arc::new(live::TrustState::new(trust, config.crl_accept_unchecked, observed.clone()));
        let outbound = outbound::Client::new(
            &config,
            endpoint.clone(),
            client_config,
            trust.clone(),
            format!("{instance}/{}-{:x}", std::process::id(), random_u64()),
            seed,
        );
        let node = Arc::new(Node {
            store,
            trust,
            routes,
            observed,
            outbound,
            capacity: server::Capacity::new(&config.limits),
            log: tlog::LogState::default(),
            verification: cpu::CpuPool::new(config.limits.verify_threads),
            intakes: intake::together::queue(),
            intake_lookups: intake::together::lookups(),
            endpoint,
            shutdown,
            started: time::OffsetDateTime::now_utc(),
            http_addr: web.as_ref().map(http::Bound::local_addr),
            tasks: TaskTracker::new(),
            config,
        });
        node.trust.trust().learn(node.store.ca_certs().await?);
        // This node's own CAs: CRLs they sign are kept whatever else has been seen.
        node.trust.trust().learn(node.config.tls.chain.iter().chain(&node.config.seal.chain).cloned());
        crls::load_configured(&node).await;
        let mut tasks = JoinSet::new();
        tasks.spawn(server::serve(node.clone()));
        tasks.spawn(outbound::run_outbox(node.clone()));
        tasks.spawn(crls::watch_files(node.clone()));
        tasks.spawn(mail::run(node.clone()));
        if let Some(web) = web {
            tasks.spawn(http::serve(node.clone(), web));
        }
        tasks.spawn(tlog::run(node.clone()));
        tracing::info!(agency = %node.config.agency, listen = %node.local_addr(), "node started");
        Ok(NodeHandle { node, stop, tasks, _run_lock: run_lock })
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.endpoint.local_addr().unwrap_or(self.config.listen)
    }

    /// Where the web face (`[http]`) listens, when it is on.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http_addr
    }

    /// True once shutdown began.
    pub fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// A receiver that changes when shutdown begins.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// Now, read once per operation and passed down.
    pub fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }

    /// The seal's chain and key, for signing receipts.
    pub fn seal(&self) -> &config::Identity {
        &self.config.seal
    }

    /// Remembers a storage failure for the read-out (and the database, once it takes writes
    /// again) and logs it. On the node, not a part: it needs the store and the clock only, and
    /// every module that writes calls it.
    pub fn storage_failed(&self, what: &str, error: &storage::StoreError) {
        if error.is_storage_failure() {
            tracing::error!(error = %error, disk_full = error.is_disk_full(), "storage failure while {what}");
        }
        self.store.note_failure(error, storage::millis(self.now()));
    }
}

/// Random 8-byte connection IDs that any packet passes, so stateless resets work across
/// restarts (see `Node::start`).
struct RandomCids;

impl quinn::ConnectionIdGenerator for RandomCids {
    fn generate_cid(&mut self) -> quinn::ConnectionId {
        let mut id = [0u8; 8];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id);
        quinn::ConnectionId::new(&id)
    }

    fn cid_len(&self) -> usize {
        8
    }

    fn cid_lifetime(&self) -> Option<std::time::Duration> {
        None
    }
}

impl NodeHandle {
    /// Stops accepting, lets in-flight requests and transfers finish (up to `grace`), closes
    /// connections and the database. Work cut off by the grace period is retried after the
    /// next start (the outbox and the senders' retries make that safe).
    pub async fn shutdown(mut self, grace: std::time::Duration) {
        let _ = self.stop.send(true);
        self.node.outbound.wake_all_outbox();
        self.node.tasks.close();
        let drained = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
            self.node.tasks.wait().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("shutdown grace period over; abandoning in-flight work (it is retried after restart)");
            self.tasks.abort_all();
        }
        self.node.endpoint.close(quinn::VarInt::from_u32(0), b"shutting down");
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.node.endpoint.wait_idle()).await;
        self.node.store.close().await;
        tracing::info!(agency = %self.node.config.agency, "node stopped");
    }
}
