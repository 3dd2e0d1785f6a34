//! A seeded UDP fault proxy: a relay on 127.0.0.1 that a node reaches a neighbour through,
//! and that drops, delays, reorders and duplicates datagrams, or cuts the link altogether
//! (a partition), on command or on a schedule.
//!
//! One proxy carries one direction of a link: node A's configuration names the proxy's
//! address as neighbour B's, so every connection A opens to B (both ways of its datagrams)
//! passes through it; B reaches A through another proxy. Each client address (A's endpoint)
//! gets its own upstream socket, so B sees one steady peer address per client, as through a
//! NAT.
//!
//! Randomness is a small PRNG per direction, seeded from one seed
//! ([`FaultSeed`]: `LIENTHONG_FAULT_SEED`, or random and printed on failure). Every datagram
//! draws the same number of values whatever its fate, so the n-th datagram through a
//! direction meets the same fate in every run with that seed; the nodes' own timing is not
//! fixed, so a replay repeats the fault pattern, not the exact interleaving.
//!
//! Counters per direction say what happened to the traffic (passed, dropped, duplicated,
//! held back, cut, bytes), which is also how a test measures bytes sent over a link.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// The environment variable that fixes the fault seed (decimal, or hex with `0x`).
pub const SEED_VARIABLE: &str = "LIENTHONG_FAULT_SEED";

/// Largest datagram relayed. QUIC stays far below it; anything larger is cut to this size by
/// the kernel, which QUIC then treats as a damaged (dropped) packet.
const MAX_DATAGRAM: usize = 64 * 1024;

/// splitmix64: small, fast, and good enough to draw faults from; the same seed gives the same
/// stream on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// A stable 64-bit hash of a name (FNV-1a), to derive one proxy's seed from the test's seed and
/// the proxy's name, whatever order the proxies are created in.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The seed of a fault test: from `LIENTHONG_FAULT_SEED`, or random. Printed when the test
/// panics (keep the value alive for the whole test), with how to replay the run.
#[derive(Debug)]
pub struct FaultSeed {
    /// The seed.
    pub value: u64,
}

impl FaultSeed {
    /// Reads `LIENTHONG_FAULT_SEED`, or draws a random seed.
    pub fn from_env() -> FaultSeed {
        let value = match std::env::var(SEED_VARIABLE) {
            Ok(text) => {
                let text = text.trim();
                let parsed = match text.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => text.parse(),
                };
                parsed.unwrap_or_else(|e| panic!("{SEED_VARIABLE}={text:?} is not a 64-bit number: {e}"))
            }
            Err(_) => {
                use std::hash::{BuildHasher, Hasher};
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u128(
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
                );
                h.finish()
            }
        };
        eprintln!("fault seed {value} ({SEED_VARIABLE}={value} replays it)");
        FaultSeed { value }
    }

    /// The seed of the proxy named `name` under this test seed.
    pub fn for_name(&self, name: &str) -> u64 {
        let mut rng = Rng::new(self.value ^ name_hash(name));
        rng.next_u64()
    }
}

impl Drop for FaultSeed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let test = std::thread::current().name().unwrap_or("the test").to_owned();
            eprintln!(
                "\n*** {test} failed with fault seed {seed}; replay: {SEED_VARIABLE}={seed} cargo test -p lienthong-tests --test it {test}\n",
                seed = self.value
            );
        }
    }
}

/// What the proxy does to datagrams. Probabilities are per datagram and per direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// Probability that a datagram is sent twice (the copy a little later).
    pub duplicate: f64,
    /// Probability that a datagram is held back so that later ones overtake it.
    pub reorder: f64,
    /// How long a held-back datagram (or a duplicate's copy) waits, at most; at least half of
    /// it, so the datagrams behind it really overtake it.
    pub reorder_delay: Duration,
    /// Added to every datagram.
    pub delay: Duration,
    /// A uniform random extra delay up to this, per datagram.
    pub jitter: Duration,
}

impl Faults {
    /// A clean link: every datagram passes at once (the proxy only counts).
    pub fn none() -> Faults {
        Faults {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
        }
    }

    fn check(&self) {
        for (what, p) in [("loss", self.loss), ("duplicate", self.duplicate), ("reorder", self.reorder)] {
            assert!((0.0..=1.0).contains(&p), "fault probability {what} = {p} is not within 0..=1");
        }
    }
}

/// A change to a proxy, for [`FaultProxy::schedule`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// Cut the link: every datagram both ways is dropped.
    Cut,
    /// Heal a cut.
    Heal,
    /// Apply other faults.
    Faults(Faults),
}

/// The two directions of a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client (the node that connects) to the target (its neighbour).
    ToTarget,
    /// From the target back to the client.
    ToClient,
}

/// Counters of one direction.
#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    passed: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    held_back: AtomicU64,
    cut: AtomicU64,
    unsent: AtomicU64,
    bytes: AtomicU64,
}

/// What happened to the datagrams of one direction so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Datagrams that reached the proxy.
    pub received: u64,
    /// Datagrams sent on (once each; duplicates are counted in `duplicated`).
    pub passed: u64,
    /// Datagrams dropped as loss.
    pub dropped: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Datagrams held back so later ones overtook them.
    pub held_back: u64,
    /// Datagrams dropped because the link was cut.
    pub cut: u64,
    /// Datagrams the kernel refused to send (the target's port closed: a killed node).
    pub unsent: u64,
    /// Bytes sent on, copies included.
    pub bytes: u64,
}

impl Counters {
    fn snapshot(&self) -> Counts {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            received: l(&self.received),
            passed: l(&self.passed),
            dropped: l(&self.dropped),
            duplicated: l(&self.duplicated),
            held_back: l(&self.held_back),
            cut: l(&self.cut),
            unsent: l(&self.unsent),
            bytes: l(&self.bytes),
        }
    }
}

impl std::ops::Add for Counts {
    type Output = Counts;
    fn add(self, o: Counts) -> Counts {
        Counts {
            received: self.received + o.received,
            passed: self.passed + o.passed,
            dropped: self.dropped + o.dropped,
            duplicated: self.duplicated + o.duplicated,
            held_back: self.held_back + o.held_back,
            cut: self.cut + o.cut,
            unsent: self.unsent + o.unsent,
            bytes: self.bytes + o.bytes,
        }
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} received, {} passed, {} dropped, {} duplicated, {} held back, {} cut, {} unsent, {} bytes",
            self.received,
            self.passed,
            self.dropped,
            self.duplicated,
            self.held_back,
            self.cut,
            self.unsent,
            self.bytes
        )
    }
}

/// Both directions' counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyCounts {
    /// Client to target.
    pub to_target: Counts,
    /// Target to client.
    pub to_client: Counts,
}

/// One direction's state: its own random stream and counters.
#[derive(Debug)]
struct Way {
    rng: Mutex<Rng>,
    counters: Counters,
}

/// The fate of one datagram.
enum Fate {
    /// Not sent (lost or cut).
    Gone,
    /// Sent after each of these delays (two for a duplicate).
    Send(Duration, Option<Duration>),
}

#[derive(Debug)]
struct Inner {
    name: String,
    target: SocketAddr,
    faults: Mutex<Faults>,
    cut: AtomicBool,
    to_target: Way,
    to_client: Way,
    listen: Arc<UdpSocket>,
    clients: Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A running fault proxy; its tasks stop when it is dropped.
#[derive(Debug)]
pub struct FaultProxy {
    inner: Arc<Inner>,
    address: SocketAddr,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl FaultProxy {
    /// Starts a proxy named `name` on a fresh 127.0.0.1 port, relaying to `target`.
    pub async fn start(name: &str, target: SocketAddr, faults: Faults, seed: u64) -> std::io::Result<FaultProxy> {
        faults.check();
        let listen = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let address = listen.local_addr()?;
        let mut seeds = Rng::new(seed);
        let inner = Arc::new(Inner {
            name: name.to_owned(),
            target,
            faults: Mutex::new(faults),
            cut: AtomicBool::new(false),
            to_target: Way { rng: Mutex::new(Rng::new(seeds.next_u64())), counters: Counters::default() },
            to_client: Way { rng: Mutex::new(Rng::new(seeds.next_u64())), counters: Counters::default() },
            listen,
            clients: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(Inner::serve(inner.clone()));
        lock(&inner.tasks).push(task);
        Ok(FaultProxy { inner, address })
    }

    /// Where clients send to (what a node's configuration names as the neighbour's address).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The node behind it.
    pub fn target(&self) -> SocketAddr {
        self.inner.target
    }

    /// Its name (e.g. `000.01.41.H49→000.00.41.H49`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Applies other faults from now on.
    pub fn set_faults(&self, faults: Faults) {
        faults.check();
        *lock(&self.inner.faults) = faults;
    }

    /// The faults applied now.
    pub fn faults(&self) -> Faults {
        *lock(&self.inner.faults)
    }

    /// Cuts the link: every datagram, both ways, is dropped until [`FaultProxy::heal`].
    pub fn cut(&self) {
        self.inner.cut.store(true, Ordering::SeqCst);
    }

    /// Ends a cut.
    pub fn heal(&self) {
        self.inner.cut.store(false, Ordering::SeqCst);
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        self.inner.cut.load(Ordering::SeqCst)
    }

    /// Applies each change at its offset from now (in order; offsets are from now, not from
    /// the previous change).
    pub fn schedule(&self, mut changes: Vec<(Duration, Change)>) {
        changes.sort_by_key(|(at, _)| *at);
        let inner = self.inner.clone();
        let start = tokio::time::Instant::now();
        let task = tokio::spawn(async move {
            for (at, change) in changes {
                tokio::time::sleep_until(start + at).await;
                match change {
                    Change::Cut => inner.cut.store(true, Ordering::SeqCst),
                    Change::Heal => inner.cut.store(false, Ordering::SeqCst),
                    Change::Faults(f) => *lock(&inner.faults) = f,
                }
            }
        });
        lock(&self.inner.tasks).push(task);
    }

    /// What happened so far.
    pub fn counts(&self) -> ProxyCounts {
        ProxyCounts {
            to_target: self.inner.to_target.counters.snapshot(),
            to_client: self.inner.to_client.counters.snapshot(),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        for task in lock(&self.inner.tasks).drain(..) {
            task.abort();
        }
    }
}

impl Inner {
    fn way(&self, direction: Direction) -> &Way {
        match direction {
            Direction::ToTarget => &self.to_target,
            Direction::ToClient => &self.to_client,
        }
    }

    /// Draws a datagram's fate. Six values are drawn for every datagram, whatever happens to
    /// it, so the fate of the n-th datagram depends only on the seed, n and the faults.
    fn fate(&self, direction: Direction, len: usize) -> Fate {
        let way = self.way(direction);
        let f = *lock(&self.faults);
        let [lost, jitter, held, held_for, doubled, doubled_after] = {
            let mut rng = lock(&way.rng);
            [rng.unit(), rng.unit(), rng.unit(), rng.unit(), rng.unit(), rng.unit()]
        };
        let c = &way.counters;
        c.received.fetch_add(1, Ordering::Relaxed);
        if self.cut.load(Ordering::SeqCst) {
            c.cut.fetch_add(1, Ordering::Relaxed);
            return Fate::Gone;
        }
        if lost < f.loss {
            c.dropped.fetch_add(1, Ordering::Relaxed);
            return Fate::Gone;
        }
        let mut delay = f.delay + f.jitter.mul_f64(jitter);
        if held < f.reorder {
            c.held_back.fetch_add(1, Ordering::Relaxed);
            delay += f.reorder_delay.mul_f64(0.5 + 0.5 * held_for);
        }
        c.passed.fetch_add(1, Ordering::Relaxed);
        c.bytes.fetch_add(len as u64, Ordering::Relaxed);
        let copy = (doubled < f.duplicate).then(|| {
            c.duplicated.fetch_add(1, Ordering::Relaxed);
            c.bytes.fetch_add(len as u64, Ordering::Relaxed);
            delay + f.reorder_delay.mul_f64(doubled_after) + Duration::from_micros(100)
        });
        Fate::Send(delay, copy)
    }

    /// Sends `datagram` on `socket` (to `to`, or to the connected peer) after its fate's
    /// delays.
    async fn forward(
        self: &Arc<Self>,
        direction: Direction,
        datagram: &[u8],
        socket: &Arc<UdpSocket>,
        to: Option<SocketAddr>,
    ) {
        let Fate::Send(first, copy) = self.fate(direction, datagram.len()) else { return };
        for delay in std::iter::once(first).chain(copy) {
            if delay.is_zero() {
                self.send(direction, socket, datagram, to).await;
            } else {
                let (inner, socket, datagram) = (self.clone(), socket.clone(), datagram.to_vec());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    inner.send(direction, &socket, &datagram, to).await;
                });
            }
        }
    }

    async fn send(&self, direction: Direction, socket: &UdpSocket, datagram: &[u8], to: Option<SocketAddr>) {
        let sent = match to {
            Some(to) => socket.send_to(datagram, to).await,
            None => socket.send(datagram).await,
        };
        if sent.is_err() {
            self.way(direction).counters.unsent.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Relays from clients to the target, opening an upstream socket per client.
    async fn serve(self: Arc<Self>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            // Errors here are the kernel reporting an earlier send's ICMP (a port closed while a
            // node restarts): not fatal to the relay.
            let Ok((n, client)) = self.listen.recv_from(&mut buf).await else { continue };
            let upstream = match self.upstream(client).await {
                Ok(u) => u,
                Err(e) => {
                    eprintln!("fault proxy {}: cannot open an upstream socket: {e}", self.name);
                    continue;
                }
            };
            self.forward(Direction::ToTarget, &buf[..n], &upstream, None).await;
        }
    }

    /// The upstream socket of `client`, created (with its reply task) on its first datagram.
    async fn upstream(self: &Arc<Self>, client: SocketAddr) -> std::io::Result<Arc<UdpSocket>> {
        if let Some(u) = lock(&self.clients).get(&client) {
            return Ok(u.clone());
        }
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        socket.connect(self.target).await?;
        let socket = Arc::new(socket);
        lock(&self.clients).insert(client, socket.clone());
        let (inner, replies) = (self.clone(), socket.clone());
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                // A refused port (the target restarting) shows up as an error here; keep going.
                let Ok(n) = replies.recv(&mut buf).await else {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                };
                let listen = inner.listen.clone();
                inner.forward(Direction::ToClient, &buf[..n], &listen, Some(client)).await;
            }
        });
        lock(&self.tasks).push(task);
        Ok(socket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP endpoint that records what it receives and echoes it back.
    async fn echo() -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>, JoinHandle<()>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                lock(&log).push(buf[..n].to_vec());
                let _ = socket.send_to(&buf[..n], from).await;
            }
        });
        (addr, seen, task)
    }

    /// Sends `n` numbered datagrams through `proxy` one after the other and waits for the
    /// traffic to settle; returns what the client got back.
    async fn exchange(proxy: &FaultProxy, n: u32) -> Vec<u32> {
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(proxy.address()).await.unwrap();
        for i in 0..n {
            client.send(&i.to_be_bytes()).await.unwrap();
            // One at a time, so the n-th datagram's fate is the n-th draw.
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let mut back = Vec::new();
        let mut buf = [0u8; 16];
        while let Ok(Ok(len)) = tokio::time::timeout(Duration::from_millis(300), client.recv(&mut buf)).await {
            back.push(u32::from_be_bytes(buf[..len].try_into().unwrap()));
        }
        back
    }

    fn numbers(seen: &Mutex<Vec<Vec<u8>>>) -> Vec<u32> {
        lock(seen).iter().map(|d| u32::from_be_bytes(d[..].try_into().unwrap())).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_clean_proxy_passes_everything_in_order_and_counts_it() {
        let (target, seen, _t) = echo().await;
        let proxy = FaultProxy::start("clean", target, Faults::none(), 1).await.unwrap();
        let back = exchange(&proxy, 200).await;
        assert_eq!(numbers(&seen), (0..200).collect::<Vec<_>>());
        assert_eq!(back, (0..200).collect::<Vec<_>>());
        let c = proxy.counts();
        assert_eq!((c.to_target.received, c.to_target.passed, c.to_target.bytes), (200, 200, 800));
        assert_eq!((c.to_client.received, c.to_client.passed), (200, 200));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn loss_duplication_and_reordering_follow_the_seed() {
        let faults = Faults {
            loss: 0.2,
            duplicate: 0.05,
            reorder: 0.1,
            reorder_delay: Duration::from_millis(4),
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
        };
        let mut runs = Vec::new();
        for _ in 0..2 {
            let (target, seen, _t) = echo().await;
            let proxy = FaultProxy::start("lossy", target, faults, 42).await.unwrap();
            exchange(&proxy, 1000).await;
            let got = numbers(&seen);
            let c = proxy.counts().to_target;
            assert_eq!(c.received, 1000);
            assert_eq!(c.passed + c.dropped, 1000);
            assert_eq!(got.len() as u64, c.passed + c.duplicated, "every datagram sent arrived once per copy");
            assert!((150..=250).contains(&c.dropped), "20 % loss dropped {} of 1000", c.dropped);
            assert!((20..=80).contains(&c.duplicated), "5 % duplication copied {}", c.duplicated);
            assert!(c.held_back > 50, "10 % reordering held back {}", c.held_back);
            let mut distinct = got.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len() as u64, c.passed);
            assert!(got.windows(2).any(|w| w[0] > w[1]), "nothing arrived out of order");
            runs.push((distinct, c.dropped, c.duplicated, c.held_back));
        }
        assert_eq!(runs[0], runs[1], "the same seed must drop, copy and hold back the same datagrams");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_seed_drops_other_datagrams() {
        let faults = Faults { loss: 0.2, ..Faults::none() };
        let mut kept = Vec::new();
        for seed in [1, 2] {
            let (target, seen, _t) = echo().await;
            let proxy = FaultProxy::start("lossy", target, faults, seed).await.unwrap();
            exchange(&proxy, 300).await;
            kept.push(numbers(&seen));
        }
        assert_ne!(kept[0], kept[1]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cut_drops_both_ways_until_healed_on_command_or_on_schedule() {
        let (target, seen, _t) = echo().await;
        let proxy = FaultProxy::start("cut", target, Faults::none(), 3).await.unwrap();
        proxy.cut();
        assert!(exchange(&proxy, 10).await.is_empty());
        assert!(numbers(&seen).is_empty());
        proxy.heal();
        assert_eq!(exchange(&proxy, 10).await.len(), 10);
        assert_eq!(proxy.counts().to_target.cut, 10);

        // Cut after 100 ms for 400 ms.
        proxy.schedule(vec![(Duration::from_millis(500), Change::Heal), (Duration::from_millis(100), Change::Cut)]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(proxy.is_cut());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!proxy.is_cut());
        assert_eq!(exchange(&proxy, 10).await.len(), 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delays_hold_datagrams_for_at_least_the_delay() {
        let (target, _seen, _t) = echo().await;
        let faults = Faults { delay: Duration::from_millis(30), ..Faults::none() };
        let proxy = FaultProxy::start("slow", target, faults, 4).await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(proxy.address()).await.unwrap();
        let start = std::time::Instant::now();
        client.send(b"ping").await.unwrap();
        let mut buf = [0u8; 8];
        client.recv(&mut buf).await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(60), "a round trip took {:?}", start.elapsed());
    }

    #[test]
    fn proxy_seeds_depend_on_the_test_seed_and_the_name_only() {
        let a = FaultSeed { value: 7 };
        let b = FaultSeed { value: 8 };
        assert_eq!(a.for_name("x→y"), FaultSeed { value: 7 }.for_name("x→y"));
        assert_ne!(a.for_name("x→y"), a.for_name("y→x"));
        assert_ne!(a.for_name("x→y"), b.for_name("x→y"));
    }
}
