//! Hostile and unlucky peers for the transport tests: a tiny UDP relay that drops or blackholes
//! datagrams, attackers that flood handshakes, stall frames or spray garbage, and the
//! measurements the tests print — a node process's memory from `/proc` and a clerk's request
//! latency. The seeded fault proxy for the loss and partition scenarios is elsewhere; this
//! relay is only what the transport tests need.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use node::clerk_client::ClerkClient;
use node::config::Identity;
use pki::{AgencyCode, Profile};
use tokio::net::UdpSocket;

use crate::network::{NetOptions, NodeProcess, TestNet, only, topology};

pub const PROVINCE: &str = "000.00.00.H49";
pub const TIEN_YEN: &str = "000.00.41.H49";
pub const PHONG_DU: &str = "000.01.41.H49";
pub const HA_LAU: &str = "000.02.41.H49";

/// What the relay does with datagrams from the server back to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Replies {
    /// Forward them (subject to loss and blackhole).
    Forward = 0,
    /// Drop them all: the client's Initials reach the server, nothing comes back, as with a
    /// flood from spoofed addresses.
    Drop = 1,
    /// Forward only QUIC Retry packets: a client that proves its address and then stalls.
    RetryOnly = 2,
}

struct RelayState {
    /// Drop everything in both directions.
    blackhole: AtomicBool,
    replies: AtomicU8,
    /// Share of datagrams dropped in each direction, per mille.
    loss_per_mille: AtomicU32,
    rng: std::sync::Mutex<u64>,
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

impl RelayState {
    fn lose(&self) -> bool {
        let share = self.loss_per_mille.load(Ordering::Relaxed);
        if share == 0 {
            return false;
        }
        let mut s = self.rng.lock().unwrap();
        *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % 1000) < u64::from(share)
    }
}

/// A UDP relay for one client endpoint: datagrams to [`Relay::addr`] go to the target from
/// the relay's own socket, and the target's answers go back to the client that spoke last.
pub struct Relay {
    /// Where clients send.
    pub addr: SocketAddr,
    state: Arc<RelayState>,
    task: tokio::task::JoinHandle<()>,
    seed: u64,
}

impl Relay {
    /// A relay to `target`, its server-facing socket bound to `back_ip` (the address the
    /// target sees), loss decisions drawn from `seed`.
    pub async fn start(target: SocketAddr, back_ip: IpAddr, seed: u64) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let back = UdpSocket::bind(SocketAddr::new(back_ip, 0)).await.unwrap();
        back.connect(target).await.unwrap();
        let addr = front.local_addr().unwrap();
        let state = Arc::new(RelayState {
            blackhole: AtomicBool::new(false),
            replies: AtomicU8::new(Replies::Forward as u8),
            loss_per_mille: AtomicU32::new(0),
            rng: std::sync::Mutex::new(seed),
            forwarded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let s = state.clone();
        let task = tokio::spawn(async move {
            let mut client: Option<SocketAddr> = None;
            let mut up = vec![0u8; 65536];
            let mut down = vec![0u8; 65536];
            loop {
                tokio::select! {
                    r = front.recv_from(&mut up) => {
                        let Ok((n, from)) = r else { continue };
                        client = Some(from);
                        if s.blackhole.load(Ordering::Relaxed) || s.lose() {
                            s.dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        s.forwarded.fetch_add(1, Ordering::Relaxed);
                        let _ = back.send(&up[..n]).await;
                    }
                    r = back.recv(&mut down) => {
                        let Ok(n) = r else { continue };
                        let Some(to) = client else { continue };
                        let is_retry = n > 0 && down[0] & 0x80 != 0 && (down[0] >> 4) & 0x3 == 3;
                        let pass = match s.replies.load(Ordering::Relaxed) {
                            x if x == Replies::Drop as u8 => false,
                            x if x == Replies::RetryOnly as u8 => is_retry,
                            _ => true,
                        };
                        if !pass || s.blackhole.load(Ordering::Relaxed) || s.lose() {
                            s.dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        s.forwarded.fetch_add(1, Ordering::Relaxed);
                        let _ = front.send_to(&down[..n], to).await;
                    }
                }
            }
        });
        Relay { addr, state, task, seed }
    }

    /// Drops everything from now on (or forwards again).
    pub fn blackhole(&self, on: bool) {
        self.state.blackhole.store(on, Ordering::Relaxed);
    }

    /// What happens to the server's answers.
    pub fn replies(&self, replies: Replies) {
        self.state.replies.store(replies as u8, Ordering::Relaxed);
    }

    /// Drops this share (0 to 1) of the datagrams in each direction.
    pub fn loss(&self, share: f64) {
        self.state.loss_per_mille.store((share * 1000.0).round() as u32, Ordering::Relaxed);
    }

    /// The seed of the loss decisions (print it on failure to replay a run).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// (forwarded, dropped) datagrams so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.state.forwarded.load(Ordering::Relaxed), self.state.dropped.load(Ordering::Relaxed))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A process's memory from `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// Resident now.
    pub rss_kib: u64,
    /// Highest resident since the process started.
    pub hwm_kib: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Memory { rss_kib: field("VmRSS:"), hwm_kib: field("VmHWM:") }
    }

    /// Resets the process's VmHWM to its current VmRSS (Linux `clear_refs` 5), so the next
    /// reading gives the peak of what happens from now on.
    pub fn reset_peak(pid: u32) {
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    }

    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }

    pub fn hwm_mib(&self) -> f64 {
        self.hwm_kib as f64 / 1024.0
    }
}

/// Request latencies of a clerk.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    pub samples: Vec<Duration>,
    /// Requests that failed or took longer than the sampler's timeout.
    pub failures: Vec<String>,
}

impl Latencies {
    fn percentile(&self, p: f64) -> Duration {
        let mut s = self.samples.clone();
        s.sort();
        if s.is_empty() {
            return Duration::ZERO;
        }
        let i = ((s.len() as f64 * p).ceil() as usize).clamp(1, s.len()) - 1;
        s[i]
    }

    pub fn p50(&self) -> Duration {
        self.percentile(0.50)
    }

    pub fn p99(&self) -> Duration {
        self.percentile(0.99)
    }
}

impl std::fmt::Display for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.1} ms, p99 {:.1} ms over {} requests, {} failed",
            self.p50().as_secs_f64() * 1000.0,
            self.p99().as_secs_f64() * 1000.0,
            self.samples.len(),
            self.failures.len()
        )
    }
}

/// Samples a clerk's request latency (an inbox of 20) in the background until finished.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Latencies>,
}

impl Sampler {
    /// One request every `every` (sequential, each bounded by 10 s).
    pub fn start(clerk: Arc<ClerkClient>, every: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut out = Latencies::default();
            while !flag.load(Ordering::Relaxed) {
                let t = Instant::now();
                match tokio::time::timeout(Duration::from_secs(10), clerk.inbox(20)).await {
                    Ok(Ok(_)) => out.samples.push(t.elapsed()),
                    Ok(Err(e)) => out.failures.push(e.to_string()),
                    Err(_) => out.failures.push("no answer within 10 s".into()),
                }
                tokio::time::sleep(every).await;
            }
            out
        });
        Sampler { stop, task }
    }

    pub async fn finish(self) -> Latencies {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// `n` sequential requests of a clerk, measured.
pub async fn latency(clerk: &ClerkClient, n: usize) -> Latencies {
    let mut out = Latencies::default();
    for _ in 0..n {
        let t = Instant::now();
        match tokio::time::timeout(Duration::from_secs(10), clerk.inbox(20)).await {
            Ok(Ok(_)) => out.samples.push(t.elapsed()),
            Ok(Err(e)) => out.failures.push(e.to_string()),
            Err(_) => out.failures.push("no answer within 10 s".into()),
        }
    }
    out
}

/// Tiên Yên's node as a process (its parent and children configured but not running), with a
/// clerk connected to it: what every hostile-peer test attacks.
pub struct Target {
    pub net: TestNet,
    pub process: NodeProcess,
    pub clerk: Arc<ClerkClient>,
    pub addr: SocketAddr,
}

impl Target {
    /// Starts Tiên Yên with `extra` appended to its configuration.
    pub async fn start(extra: &str) -> Target {
        let topology = only(&topology("quang-ninh-2024"), &[PROVINCE, TIEN_YEN, PHONG_DU, HA_LAU]);
        let mut options = NetOptions::default();
        options.extra_config.push_str(extra);
        let mut net = TestNet::prepare(topology, options);
        let code: AgencyCode = TIEN_YEN.parse().unwrap();
        let process = net.spawn_process(&code);
        let clerk = Arc::new(net.wait_ready(TIEN_YEN).await);
        let addr = net.addrs[&code];
        Target { net, process, clerk, addr }
    }

    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    pub fn memory(&self) -> Memory {
        Memory::of(self.pid())
    }

    /// An identity of `code` for `profile` (`Node` to play a neighbour, `Clerk` a clerk).
    pub fn identity(&self, code: &str, profile: Profile) -> Identity {
        self.net.identity(&code.parse().unwrap(), profile)
    }

    /// A new clerk certificate for Tiên Yên, distinct from the one the network was built with.
    pub fn new_clerk(&mut self, name: &str) -> Identity {
        let code: AgencyCode = TIEN_YEN.parse().unwrap();
        let issuer = std::iter::once(code).chain(code.ancestors()).find(|c| self.net.pki.cas.contains_key(c)).unwrap();
        let issued = self.net.pki.cas.get_mut(&issuer).unwrap().issue(Profile::Clerk, code, name).unwrap();
        let above = self.net.pki.agencies[&code].above.clone();
        Identity { chain: std::iter::once(issued.cert).chain(above).collect(), key: issued.key }
    }

    /// A clerk connection with `identity`, checked with one request.
    pub async fn clerk_with(&self, identity: &Identity) -> Result<ClerkClient, String> {
        let code: AgencyCode = TIEN_YEN.parse().unwrap();
        let connect = ClerkClient::connect(self.addr, code, identity, vec![self.net.pki.root.cert.clone()]);
        let clerk = tokio::time::timeout(Duration::from_secs(15), connect)
            .await
            .map_err(|_| "no connection within 15 s".to_owned())?
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(15), clerk.health()).await {
            Ok(Ok(_)) => Ok(clerk),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer within 15 s".into()),
        }
    }

    /// A QUIC connection to the node as neighbour `code`'s node (ALPN `lienthong/3`).
    pub async fn neighbour(&self, code: &str) -> crate::network::RawPeer {
        let identity = self.identity(code, Profile::Node);
        let connect = crate::network::RawPeer::connect(&self.net, &identity, TIEN_YEN);
        tokio::time::timeout(Duration::from_secs(20), connect).await.expect("no QUIC connection within 20 s")
    }

    /// Prints one measurement line, the form the report takes its figures from.
    pub fn report(
        &self,
        attack: &str,
        before: Memory,
        peak: Memory,
        after: Memory,
        calm: &Latencies,
        during: &Latencies,
    ) {
        println!(
            "HOSTILE {attack}: node VmRSS before {:.1} MiB, VmHWM during {:.1} MiB, VmRSS after {:.1} MiB; clerk latency before: {calm}; during: {during}",
            before.rss_mib(),
            peak.hwm_mib(),
            after.rss_mib()
        );
    }
}

/// A client endpoint whose connections never finish their handshakes (through a relay that
/// drops the answers): each `connect` is one Initial with a ClientHello, retransmitted by the
/// client as QUIC does, and nothing more.
pub struct HandshakeFlood {
    pub endpoint: quinn::Endpoint,
    /// Kept alive: dropping one would send a CONNECTION_CLOSE and free the server's state.
    pub attempts: Vec<quinn::Connecting>,
}

impl HandshakeFlood {
    /// Starts `count` handshakes to `to` (an agency whose node is at `addr`) presenting
    /// `identity` (never sent: the handshake does not get that far), in batches of 50 every
    /// 40 ms — about 1,250 a second, paced so that no socket buffer on the way drops them.
    pub async fn start(
        addr: SocketAddr,
        to: &str,
        identity: &Identity,
        anchor: &pki::Certificate,
        count: usize,
    ) -> Self {
        let trust = Arc::new(node::trust::Trust::new(vec![anchor.clone()], Vec::new(), Duration::from_secs(86400)));
        let crypto = node::tls::client_config(identity, trust, node::protocol::ALPN_CLERK).unwrap();
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap();
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
        let mut attempts = Vec::with_capacity(count);
        while attempts.len() < count {
            for _ in 0..50.min(count - attempts.len()) {
                attempts.push(endpoint.connect(addr, to).unwrap());
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        HandshakeFlood { endpoint, attempts }
    }
}

/// Writes a frame header declaring `declared` bytes and then `body` on a new stream, and
/// leaves the stream open: a frame that never finishes. Returns the stream's halves (keep them
/// to keep the stream alive) once the bytes are written, or when `give_up` passes.
pub async fn stalled_frame(
    conn: &quinn::Connection,
    declared: u32,
    body: &[u8],
    give_up: Duration,
) -> Option<(quinn::SendStream, quinn::RecvStream)> {
    let (mut send, recv) = tokio::time::timeout(give_up, conn.open_bi()).await.ok()?.ok()?;
    let written = async {
        send.write_all(&declared.to_be_bytes()).await?;
        send.write_all(body).await
    };
    let _ = tokio::time::timeout(give_up, written).await;
    Some((send, recv))
}

/// Reads a node's answer on a stream, if one comes within `within`.
pub async fn answer(recv: &mut quinn::RecvStream, within: Duration) -> Result<node::protocol::NodeResponse, String> {
    match tokio::time::timeout(within, node::protocol::read_frame(recv, 1 << 20)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {within:?}")),
    }
}

/// Random datagrams at `to` for `duration`: sizes 1–1400 bytes, every fourth one shaped like a
/// QUIC v1 Initial (long header, version 1, 1200 bytes) so it reaches the decryption step.
/// Returns how many were sent.
pub async fn garbage_datagrams(to: SocketAddr, duration: Duration, seed: u64) -> u64 {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let start = Instant::now();
    let mut sent = 0u64;
    let mut buf = vec![0u8; 1400];
    while start.elapsed() < duration {
        let initial = sent.is_multiple_of(4);
        let len = if initial { 1200 } else { 1 + (next() % 1400) as usize };
        for chunk in buf[..len].chunks_mut(8) {
            let r = next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        if initial {
            buf[0] = 0xC0 | (buf[0] & 0x0F);
            buf[1..5].copy_from_slice(&1u32.to_be_bytes());
            buf[5] = 8;
        }
        if socket.send_to(&buf[..len], to).await.is_ok() {
            sent += 1;
        }
        if sent.is_multiple_of(256) {
            tokio::task::yield_now().await;
        }
    }
    sent
}
