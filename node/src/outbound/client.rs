//! The outbound client: connections to neighbours and requests over them.
//!
//! A neighbour may have several addresses (the processes of a scaled-out node, or a name
//! resolving to several); they are tried in turn, and after a lost connection the next one
//! first. A request is bounded by its time (`Limits::request_time`); one that times out closes its
//! connection, so the retry connects afresh instead of waiting on a dead or half-open one.
//! Why a request got no answer is a [`RequestError`] by stage, whose text is what the outbox
//! records as a transfer's `last_error`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use pki::AgencyCode;
use tokio::sync::Notify;

use crate::config::{Config, Limits};
use crate::live::{Standing, TrustState};
use crate::protocol::{FrameError, NodeRequest, NodeResponse, read_frame, write_frame};
use crate::storage::StoreError;

/// One cached connection per neighbour, each behind its own lock, so connecting to a dead
/// neighbour does not hold up traffic to the others.
type ConnectionSlots = StdMutex<HashMap<AgencyCode, Arc<tokio::sync::Mutex<Slot>>>>;

/// A neighbour's connection and where the next connection attempt starts.
#[derive(Default)]
struct Slot {
    connection: Option<quinn::Connection>,
    /// Index into the neighbour's resolved addresses of the next one to try first.
    next: usize,
}

/// Why one address of a neighbour gave no connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// A configured name could not be looked up.
    #[error("cannot look up {address}: {error}")]
    Lookup {
        /// The name as configured.
        address: String,
        /// The resolver's error.
        error: std::io::Error,
    },
    /// The configured addresses resolved to no address at all.
    #[error("{addresses} resolves to nothing")]
    NothingResolved {
        /// The configured addresses, comma-separated.
        addresses: String,
    },
    /// quinn refused to start the connection (a bad address, the endpoint closing).
    #[error("{addr}: {error}")]
    Start {
        /// The address tried.
        addr: SocketAddr,
        /// quinn's error.
        error: quinn::ConnectError,
    },
    /// The handshake did not finish within `limits.connect_timeout`.
    #[error("{addr}: timed out after {}", humantime::format_duration(*after))]
    TimedOut {
        /// The address tried.
        addr: SocketAddr,
        /// `limits.connect_timeout`.
        after: Duration,
    },
    /// The handshake failed: a side refused the other's certificate, or the neighbour closed.
    #[error("{addr}: {}", connection_refused(hop, error))]
    Refused {
        /// The address tried.
        addr: SocketAddr,
        /// The neighbour.
        hop: AgencyCode,
        /// quinn's error.
        error: quinn::ConnectionError,
    },
}

/// What went wrong while sending a request or what follows its frame (attachments).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The request frame could not be written.
    #[error("{0}")]
    Frame(FrameError),
    /// The stream failed while writing what follows the frame.
    #[error("{0}")]
    Stream(std::io::Error),
    /// The stream could not be finished.
    #[error("{0}")]
    Finish(#[from] quinn::ClosedStream),
    /// A stored attachment could not be opened (its file, or its row in the database).
    #[error("attachment {name:?}: {error}")]
    AttachmentOpen {
        /// Its name in the manifest.
        name: String,
        /// Why.
        error: StoreError,
    },
    /// The neighbour's resume offsets do not fit the attachments.
    #[error("the next hop gave {offsets} resume offsets for {attachments} attachments")]
    OffsetCount {
        /// Offsets given.
        offsets: usize,
        /// Attachments of the document.
        attachments: usize,
    },
    /// The neighbour would resume an attachment past its end.
    #[error("the next hop would resume {name:?} at {offset}, past its {size} bytes")]
    OffsetPastEnd {
        /// The attachment.
        name: String,
        /// The offset asked for.
        offset: u64,
        /// Its size.
        size: u64,
    },
}

/// Why a request to a neighbour got no (usable) answer, by stage. The text is what the outbox
/// records (`last_error`), what `inbox --sent` shows and what the health read-out quotes:
/// keep the wording.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The agency is not a neighbour in the configuration.
    #[error("{0} is not a configured neighbour")]
    NotNeighbour(AgencyCode),
    /// No address of the neighbour answered; each address's error, in the order tried.
    #[error("cannot connect to {hop}: {}", joined(problems))]
    Unreachable {
        /// The neighbour.
        hop: AgencyCode,
        /// Each address's error.
        problems: Vec<ConnectError>,
    },
    /// The neighbour's certificate cannot be checked for revocation here yet: only CRLs are
    /// exchanged with it.
    #[error(
        "{hop}'s certificate cannot be checked for revocation here ({reason}); nothing but CRLs is exchanged with it until this node has fresh CRLs"
    )]
    CrlsOnly {
        /// The neighbour.
        hop: AgencyCode,
        /// Why its revocation cannot be checked.
        reason: String,
    },
    /// Connecting and the exchange together took longer than the request's time.
    #[error("request to {hop} timed out after {}", humantime::format_duration(*after))]
    TimedOut {
        /// The neighbour.
        hop: AgencyCode,
        /// The request's time.
        after: Duration,
    },
    /// No stream could be opened on the connection.
    #[error("cannot open a stream to {hop}: {error}")]
    OpenStream {
        /// The neighbour.
        hop: AgencyCode,
        /// quinn's error.
        error: quinn::ConnectionError,
    },
    /// The request (its frame or what follows) could not be sent, and no answer came.
    #[error("sending to {hop}: {error}")]
    Send {
        /// The neighbour.
        hop: AgencyCode,
        /// Why.
        error: SendError,
    },
    /// The answer could not be read or decoded.
    #[error("reading the answer of {hop}: {error}")]
    Read {
        /// The neighbour.
        hop: AgencyCode,
        /// Why.
        error: FrameError,
    },
}

fn joined(problems: &[ConnectError]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// A node's client side toward its neighbours: the QUIC endpoint (shared with the server),
/// one cached connection per neighbour, and what the workers that send (the outbox, the mail
/// worker) share: the owner name of their leases, their retry jitter and the outbox's wake-up.
pub struct Client {
    endpoint: quinn::Endpoint,
    client_config: quinn::ClientConfig,
    connections: ConnectionSlots,
    /// Each neighbour's configured addresses.
    neighbours: HashMap<AgencyCode, Vec<String>>,
    parent: Option<AgencyCode>,
    limits: Limits,
    /// Connections opened are registered there, and their standing checked before use.
    trust: Arc<TrustState>,
    outbox_wake: Notify,
    handoffs: super::handoff::Handoffs,
    /// Next hops' answers waiting to be recorded together (see [`super::answers`]).
    answers: super::answers::Answers,
    /// Claims of transfers handed over or passed on, waiting to be made together (see
    /// [`super::handoff::claim`]).
    claims: super::handoff::Claims,
    /// The outbox rows this process is sending now (claimed, handed over or passed on before
    /// their intake's commit): none is started twice, and the claims leave them out.
    in_flight: Arc<StdMutex<HashSet<i64>>>,
    /// Each neighbour's places for documents and notice batches in flight
    /// (`limits.max_in_flight_per_peer`), shared by the outbox and the documents passed on
    /// before their intake's commit (see [`super::cut_through`]).
    peer_slots: StdMutex<HashMap<AgencyCode, Arc<tokio::sync::Semaphore>>>,
    lease_owner: String,
    jitter: StdMutex<u64>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("lease_owner", &self.lease_owner).finish_non_exhaustive()
    }
}

impl Client {
    /// A client dialing from `endpoint` with `client_config` to `config`'s neighbours;
    /// `lease_owner` names this process in claims, `jitter_seed` starts the jitter stream.
    pub fn new(
        config: &Config,
        endpoint: quinn::Endpoint,
        client_config: quinn::ClientConfig,
        trust: Arc<TrustState>,
        lease_owner: String,
        jitter_seed: u64,
    ) -> Client {
        // The first entry of an agency wins, as a lookup in the configuration's order would.
        let mut neighbours = HashMap::new();
        for (n, _) in config.neighbours() {
            neighbours.entry(n.agency).or_insert_with(|| n.addresses.clone());
        }
        Client {
            endpoint,
            client_config,
            connections: StdMutex::new(HashMap::new()),
            neighbours,
            parent: config.parent.as_ref().map(|n| n.agency),
            limits: config.limits.clone(),
            trust,
            outbox_wake: Notify::new(),
            handoffs: super::handoff::Handoffs::default(),
            answers: super::answers::queue(),
            claims: super::handoff::claims(),
            in_flight: Arc::default(),
            peer_slots: StdMutex::new(HashMap::new()),
            lease_owner,
            jitter: StdMutex::new(jitter_seed),
        }
    }

    /// Who holds the leases of this process's claims (outbox and mail): "instance/pid-random".
    pub fn lease_owner(&self) -> &str {
        &self.lease_owner
    }

    /// Wakes the outbox worker (new work was queued).
    pub fn wake_outbox(&self) {
        self.outbox_wake.notify_one();
    }

    /// Hands transfers an intake just committed to the outbox, with their document (see
    /// [`super::handoff`]), and wakes it if there are any or the commit `queued` other rows
    /// (notices: see `Tx::queued`). Those beyond the queue's bound are left to the outbox's
    /// next claim.
    pub fn hand_over(&self, handed: Vec<super::Handed>, queued: bool) {
        if handed.is_empty() && !queued {
            return;
        }
        if !handed.is_empty() {
            self.handoffs.push(handed);
        }
        self.wake_outbox();
    }

    /// The answers waiting to be recorded together.
    pub(crate) fn answers(&self) -> &super::answers::Answers {
        &self.answers
    }

    /// The claims of hand-offs waiting to be made together.
    pub(crate) fn claims(&self) -> &super::handoff::Claims {
        &self.claims
    }

    /// Up to `at_most` of the transfers handed over, oldest first.
    pub(crate) fn handed(&self, at_most: usize) -> Vec<super::Handed> {
        self.handoffs.take(at_most)
    }

    /// Keeps the documents of hand-offs that fell due unstarted for their claims (see
    /// [`super::handoff`]).
    pub(crate) fn keep_for_claim(&self, past_due: Vec<super::Handed>) {
        self.handoffs.keep_for_claim(past_due);
    }

    /// Lets the hand-offs due at `now` (ms) go to the claims, their documents kept for them.
    pub(crate) fn handed_fall_due(&self, now: i64) {
        self.handoffs.fall_due(now);
    }

    /// The document kept for claimed transfer `id`, if any.
    pub(crate) fn claimed_document(&self, id: i64) -> Option<Arc<super::Forward>> {
        self.handoffs.claimed(id)
    }

    /// The rows being sent now, shared by the outbox and the sends its intakes start.
    pub(crate) fn in_flight(&self) -> Arc<StdMutex<HashSet<i64>>> {
        Arc::clone(&self.in_flight)
    }

    /// The places for transfers running to `hop` at once (`limits.max_in_flight_per_peer`).
    pub(crate) fn peer_slots(&self, hop: AgencyCode) -> Arc<tokio::sync::Semaphore> {
        let mut slots = self.peer_slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let max = self.limits.max_in_flight_per_peer;
        Arc::clone(slots.entry(hop).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(max))))
    }

    /// Wakes every waiting outbox worker (shutdown began).
    pub(crate) fn wake_all_outbox(&self) {
        self.outbox_wake.notify_waiters();
    }

    /// Resolves when the outbox worker is woken.
    pub(crate) async fn outbox_woken(&self) {
        self.outbox_wake.notified().await;
    }

    /// A uniform draw in [0, 1) for retry jitter: a splitmix64 stream, seeded from the config
    /// for reproducible tests or from the OS.
    pub fn jitter_draw(&self) -> f64 {
        let mut state = match self.jitter.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The connection to neighbour `hop`, opening one if needed. A neighbour may have several
    /// addresses (the processes of a scaled-out node, or a name resolving to several): they
    /// are tried in turn, starting with the first listed, and after a lost connection with
    /// the next one, so traffic moves off a dead process at once.
    pub async fn connection(&self, hop: &AgencyCode) -> Result<quinn::Connection, RequestError> {
        let slot = {
            let mut slots = match self.connections.lock() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            slots.entry(*hop).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(c) = slot.connection.as_ref() {
            if c.close_reason().is_none() {
                return Ok(c.clone());
            }
            slot.connection = None;
            slot.next += 1;
        }
        let listed = self.neighbours.get(hop).ok_or(RequestError::NotNeighbour(*hop))?;
        let mut addrs = Vec::new();
        let mut problems = Vec::new();
        for address in listed {
            match tokio::net::lookup_host(address.as_str()).await {
                Ok(found) => addrs.extend(found),
                Err(error) => problems.push(ConnectError::Lookup { address: address.clone(), error }),
            }
        }
        if addrs.is_empty() {
            problems.push(ConnectError::NothingResolved { addresses: listed.join(", ") });
        }
        for i in 0..addrs.len() {
            let at = (slot.next + i) % addrs.len();
            let addr = addrs[at];
            let attempt = async {
                let connecting = self
                    .endpoint
                    .connect_with(self.client_config.clone(), addr, &crate::tls::server_name(hop))
                    .map_err(|error| ConnectError::Start { addr, error })?;
                let after = self.limits.connect_timeout;
                tokio::time::timeout(after, connecting)
                    .await
                    .map_err(|_| ConnectError::TimedOut { addr, after })?
                    .map_err(|error| ConnectError::Refused { addr, hop: *hop, error })
            };
            match attempt.await {
                Ok(conn) => {
                    let chain = crate::live::peer_chain(&conn).unwrap_or_default();
                    self.trust.register_connection(&conn, chain, pki::Profile::Node, crate::live::node_named(hop));
                    slot.connection = Some(conn.clone());
                    slot.next = at;
                    drop(slot);
                    tracing::info!(peer = %hop, address = %addr, "connected");
                    if self.parent == Some(*hop) {
                        // Children fetch CRLs on connecting to their parent (the CRL task does it).
                        self.trust.fetch_crls();
                    }
                    return Ok(conn);
                }
                Err(e) => {
                    tracing::warn!(peer = %hop, error = %e, "cannot connect");
                    problems.push(e);
                }
            }
        }
        slot.next += 1;
        Err(RequestError::Unreachable { hop: *hop, problems })
    }

    /// Sends one request to `hop` and reads the answer, within `timeout`. `body` writes
    /// anything that follows the request frame (attachments), and resets the stream if it
    /// fails so the peer never mistakes a local failure for a short document. A refused write
    /// does not hide the peer's answer: the peer may answer early (a duplicate, a refusal) and
    /// stop reading.
    ///
    /// A request that times out closes its connection: a connection on which a request got
    /// no answer in its time is taken as dead or half-open (the peer frozen, the path gone, a
    /// handshake one side never finished), so the next request connects afresh, to the
    /// neighbour's next address, instead of waiting for the idle timeout on the old one.
    pub async fn request<F, Fut>(
        &self,
        hop: &AgencyCode,
        request: &NodeRequest,
        timeout: Duration,
        body: F,
    ) -> Result<NodeResponse, RequestError>
    where
        F: FnOnce(quinn::SendStream) -> Fut,
        Fut: std::future::Future<Output = Result<(), SendError>>,
    {
        let max_frame = self.limits.max_frame_bytes;
        self.exchange(hop, request, timeout, |send, mut recv| async move {
            let written = body(send).await;
            read_answer(hop, &mut recv, max_frame, written).await
        })
        .await
    }

    /// Like [`Client::request`], with `converse` given both streams once the request frame is
    /// written and reading the answer itself: for exchanges of more than one answer frame,
    /// such as a resumable delivery (the offsets to continue from, then the hop receipt).
    pub async fn exchange<F, Fut>(
        &self,
        hop: &AgencyCode,
        request: &NodeRequest,
        timeout: Duration,
        converse: F,
    ) -> Result<NodeResponse, RequestError>
    where
        F: FnOnce(quinn::SendStream, quinn::RecvStream) -> Fut,
        Fut: std::future::Future<Output = Result<NodeResponse, RequestError>>,
    {
        let deadline = crate::protocol::deadline_after(tokio::time::Instant::now(), timeout);
        let timed_out = || RequestError::TimedOut { hop: *hop, after: timeout };
        let conn = tokio::time::timeout_at(deadline, self.connection(hop)).await.map_err(|_| timed_out())??;
        // Only CRLs travel over a connection whose peer's revocation cannot be checked yet.
        if !matches!(request, NodeRequest::CrlFetch { .. } | NodeRequest::CrlPush { .. })
            && let Standing::CrlsOnly(reason) = self.trust.standing(&conn)
        {
            return Err(RequestError::CrlsOnly { hop: *hop, reason });
        }
        let heard_before = conn.stats().udp_rx.datagrams;
        let exchange = async {
            let (mut send, mut recv) =
                conn.open_bi().await.map_err(|error| RequestError::OpenStream { hop: *hop, error })?;
            match write_frame(&mut send, request).await {
                Ok(()) => converse(send, recv).await,
                Err(e) => match read_frame::<NodeResponse>(&mut recv, self.limits.max_frame_bytes).await {
                    Ok(r) => Ok(r),
                    Err(_) => Err(RequestError::Send { hop: *hop, error: SendError::Frame(e) }),
                },
            }
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(r) => r,
            Err(_) => {
                let heard = conn.stats().udp_rx.datagrams.saturating_sub(heard_before);
                tracing::warn!(peer = %hop, timeout = %humantime::format_duration(timeout), datagrams_heard = heard, "request timed out; dropping its connection, the next request connects afresh");
                conn.close(crate::server::close::REQUEST_TIMED_OUT.into(), b"request timed out");
                Err(timed_out())
            }
        }
    }

    /// A request with nothing after its frame.
    pub async fn simple_request(&self, hop: &AgencyCode, request: &NodeRequest) -> Result<NodeResponse, RequestError> {
        self.request(hop, request, self.limits.request_timeout, finish).await
    }

    /// The neighbours this node holds an open outgoing connection to now (for the console and
    /// `/metrics`). A neighbour whose slot is busy connecting is left out.
    pub fn connected_neighbours(&self) -> Vec<AgencyCode> {
        let slots: Vec<(AgencyCode, Arc<tokio::sync::Mutex<Slot>>)> = match self.connections.lock() {
            Ok(s) => s.iter().map(|(k, v)| (*k, v.clone())).collect(),
            Err(p) => p.into_inner().iter().map(|(k, v)| (*k, v.clone())).collect(),
        };
        slots
            .into_iter()
            .filter(|(_, slot)| {
                slot.try_lock().is_ok_and(|s| s.connection.as_ref().is_some_and(|c| c.close_reason().is_none()))
            })
            .map(|(code, _)| code)
            .collect()
    }
}

/// The body of a request with nothing after its frame: finish the stream.
pub async fn finish(mut send: quinn::SendStream) -> Result<(), SendError> {
    send.finish().map_err(SendError::Finish)
}

/// Reads `hop`'s answer after what followed the request frame was `written`: the answer if
/// one comes (a refused write does not hide it), else why not — the write's failure first.
pub(crate) async fn read_answer(
    hop: &AgencyCode,
    recv: &mut quinn::RecvStream,
    max_frame: usize,
    written: Result<(), SendError>,
) -> Result<NodeResponse, RequestError> {
    match read_frame::<NodeResponse>(recv, max_frame).await {
        Ok(r) => Ok(r),
        Err(error) => Err(match written {
            Err(error) => RequestError::Send { hop: *hop, error },
            Ok(()) => RequestError::Read { hop: *hop, error },
        }),
    }
}

/// Why a connection to neighbour `hop` failed, in words an operator or a clerk (who sees it in
/// `inbox --sent`) can act on: which side refused which certificate, rather than a TLS alert
/// number.
fn connection_refused(hop: &AgencyCode, e: &quinn::ConnectionError) -> String {
    use quinn::ConnectionError as E;
    const CRYPTO: u64 = 0x100;
    let (code, local, reason) = match e {
        E::TransportError(t) => (u64::from(t.code), true, t.reason.clone()),
        E::ConnectionClosed(c) => (u64::from(c.error_code), false, String::from_utf8_lossy(&c.reason).into_owned()),
        E::ApplicationClosed(a) => {
            let reason = String::from_utf8_lossy(&a.reason).into_owned();
            let code = u32::try_from(a.error_code.into_inner()).unwrap_or(u32::MAX);
            return match code {
                crate::server::close::NOT_NEIGHBOUR => {
                    format!(
                        "{hop} does not list this node as a neighbour: check its [parent]/[[child]]/[[peer]] configuration"
                    )
                }
                crate::server::close::NO_REVOCATION_INFO => format!(
                    "{hop} cannot check this node's certificate for revocation yet ({reason}); it needs fresh CRLs"
                ),
                crate::server::close::REVOKED => format!("{hop} closed the connection: {reason}"),
                crate::server::close::TOO_MANY => format!("{hop} has too many connections from this agency right now"),
                _ => e.to_string(),
            };
        }
        _ => return e.to_string(),
    };
    if !(CRYPTO..CRYPTO + 0x100).contains(&code) {
        return e.to_string();
    }
    match (code - CRYPTO, local) {
        (_, true) if reason.contains("NotValidForName") => format!(
            "the node at that address is not {hop}'s node (its certificate is for another agency): check the address of {hop} in the configuration"
        ),
        (44, true) => format!(
            "{hop}'s node certificate is revoked (a CRL this node holds lists it): nothing is handed to it until its operator installs a new certificate"
        ),
        (45, true) => {
            format!("{hop}'s node certificate has expired or is not yet valid (check this machine's clock too)")
        }
        (48, true) => format!("{hop}'s node certificate does not chain to the national root this node trusts"),
        (_, true) => format!("{hop}'s node certificate is refused here ({reason})"),
        (44, false) => format!(
            "{hop} refused this node's certificate as revoked: have a new node certificate issued (lienthong pki issue --cert-profile node)"
        ),
        (45, false) => format!("{hop} refused this node's certificate as expired or not yet valid"),
        (48, false) => format!(
            "{hop} cannot chain this node's certificate to the national root: tls.certificate must be the chain file (the certificate and the CAs above it)"
        ),
        (_, false) => format!("{hop} refused this node's certificate ({reason})"),
    }
}
