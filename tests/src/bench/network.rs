//! Nodes on loopback (QUIC with mutual TLS, SQLite in WAL with synchronous FULL): raw QUIC,
//! raw durable writes, and documents over four hops, one at a time and under load.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pki::AgencyCode;

use crate::delivery::Databases;
use crate::network::{NetOptions, TestNet, only, topology};
use crate::postgres::Statements;

use super::measure::{Figures, percentiles_ms};
use super::storage::{Database, one_hop};

/// The runtime the benchmarks drive nodes and clients on: two workers, as the nodes' own.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The 4-hop path Phong Dụ → Tiên Yên → Quảng Ninh → Ba Chẽ → Thanh Sơn.
const PATH: [&str; 5] = ["000.01.41.H49", "000.00.41.H49", "000.00.00.H49", "000.00.42.H49", "000.01.42.H49"];

/// What raw quinn's requests achieved.
#[derive(Clone, Copy, Debug)]
pub struct Requests {
    /// Requests per second.
    pub per_s: f64,
    /// The median request time.
    pub p50: Duration,
    /// CPU per request, both ends (this process): the least a transfer costs these cores.
    pub cpu_per_request: Duration,
}

/// Raw quinn on loopback: 1 KiB request, 64-byte answer, one stream each, `parallel` at once.
pub async fn raw_quic(parallel: usize, total: usize) -> Requests {
    let (client, conn) = raw_pair(|conn| async move {
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            tokio::spawn(async move {
                let _ = recv.read_to_end(4096).await;
                let _ = send.write_all(&[0u8; 64]).await;
                let _ = send.finish();
            });
        }
    })
    .await;
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut latencies = Vec::with_capacity(total);
    let cpu = super::measure::process_cpu();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..total {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            send.write_all(&[1u8; 1024]).await.unwrap();
            send.finish().unwrap();
            recv.read_to_end(1024).await.unwrap();
            drop(permit);
            t.elapsed()
        }));
    }
    for t in tasks {
        latencies.push(t.await.unwrap());
    }
    let per_s = total as f64 / start.elapsed().as_secs_f64();
    let cpu_per_request = (super::measure::process_cpu() - cpu) / u32::try_from(total).unwrap_or(u32::MAX);
    latencies.sort();
    client.close(0u32.into(), b"done");
    Requests { per_s, p50: latencies[latencies.len() / 2], cpu_per_request }
}

/// What raw quinn's bulk transfer achieved: how fast, and the CPU it took (both ends, this
/// process), which bounds what transfers through node processes sharing these cores can do.
#[derive(Clone, Copy, Debug)]
pub struct Bulk {
    /// MB/s (10^6 bytes).
    pub mb_per_s: f64,
    /// CPU seconds per GiB, sender and receiver together.
    pub cpu_s_per_gib: f64,
}

/// Raw quinn bulk transfer on loopback with quinn's default windows: `bytes` on one
/// stream, written in 64 KiB chunks, the receiver discarding them.
pub async fn raw_quic_bulk(bytes: u64) -> Bulk {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<u64>();
    let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
    let (client, conn) = raw_pair(move |conn| {
        let done_tx = done_tx.clone();
        async move {
            if let Ok(mut recv) = conn.accept_uni().await {
                let mut total = 0u64;
                while let Ok(Some(chunk)) = recv.read_chunk(1 << 20, true).await {
                    total += chunk.bytes.len() as u64;
                }
                if let Some(tx) = done_tx.lock().unwrap().take() {
                    let _ = tx.send(total);
                }
            }
        }
    })
    .await;
    let chunk = vec![0xa5u8; 64 * 1024];
    let cpu = super::measure::process_cpu();
    let start = Instant::now();
    let mut send = conn.open_uni().await.unwrap();
    let mut sent = 0u64;
    while sent < bytes {
        send.write_all(&chunk).await.unwrap();
        sent += chunk.len() as u64;
    }
    send.finish().unwrap();
    let received = done_rx.await.unwrap();
    let mb_per_s = received as f64 / 1e6 / start.elapsed().as_secs_f64();
    let cpu = super::measure::process_cpu() - cpu;
    assert_eq!(received, sent);
    client.close(0u32.into(), b"done");
    Bulk { mb_per_s, cpu_s_per_gib: cpu.as_secs_f64() / (received as f64 / (1u64 << 30) as f64) }
}

/// A raw quinn endpoint on a loopback socket with the receive buffer lienthong asks for
/// (`lienthong_protocol::udp::RECEIVE_BUFFER`): a server with `server`, else a client.
fn raw_endpoint(server: Option<quinn::ServerConfig>) -> quinn::Endpoint {
    let socket = lienthong_protocol::udp::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    quinn::Endpoint::new(quinn::EndpointConfig::default(), server, socket, quinn::default_runtime().unwrap()).unwrap()
}

/// A raw quinn server on loopback running `serve` on each connection, and a client
/// connected to it.
async fn raw_pair<F, Fut>(serve: F) -> (quinn::Endpoint, quinn::Connection)
where
    F: Fn(quinn::Connection) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (server_cfg, client_cfg) = rcgen_self_signed();
    // Both ends' sockets with the receive buffer a node and the CLI ask for, so that the limit
    // is raw quinn on the same sockets as lienthong's.
    let server = raw_endpoint(Some(server_cfg));
    let addr = server.local_addr().unwrap();
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        while let Some(incoming) = server.accept().await {
            let serve = serve.clone();
            tokio::spawn(async move {
                if let Ok(conn) = incoming.await {
                    serve(conn).await;
                }
            });
        }
    });
    let mut client = raw_endpoint(None);
    client.set_default_client_config(client_cfg);
    let conn = client.connect(addr, "localhost").unwrap().await.unwrap();
    (client, conn)
}

fn rcgen_self_signed() -> (quinn::ServerConfig, quinn::ClientConfig) {
    // A throwaway TLS identity for the raw QUIC limit; the nodes use the full PKI.
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = vec![certified.cert.der().clone()];
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, der)
        .unwrap();
    server.alpn_protocols = vec![b"bench".to_vec()];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"bench".to_vec()];
    let server =
        quinn::ServerConfig::with_crypto(Arc::new(quinn::crypto::rustls::QuicServerConfig::try_from(server).unwrap()));
    let client = quinn::ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(client).unwrap()));
    (server, client)
}

/// Raw sqlx SQLite inserts, one row per transaction, synchronous FULL: the durable-commit
/// limit a node's hand-over is built on. Returns rows per second.
pub async fn raw_sqlite(total: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("raw.db").display());
    let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect(&url).await.unwrap();
    for pragma in ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL"] {
        sqlx::query(pragma).execute(&pool).await.unwrap();
    }
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)").execute(&pool).await.unwrap();
    let start = Instant::now();
    for _ in 0..total {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO t (v) VALUES ($1)").bind(vec![7u8; 256]).execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// Writes `bytes` to a file in the temporary directory (where the benchmark's nodes keep
/// their data) in 1 MiB writes, then fsyncs it. Returns MB/s (10^6 bytes).
///
/// Written with `O_DIRECT` where the filesystem takes it, as the nodes write large attachments:
/// through the page cache, on the benchmark's VM, the figure measured the kernel's copy into
/// new pages (325 to 1,565 MB/s from run to run) more than the disk.
pub fn disk_write(bytes: u64) -> f64 {
    const BLOCK: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let mut file = std::fs::File::create(dir.path().join("disk")).unwrap();
    if let Ok(flags) = rustix::fs::fcntl_getfl(&file) {
        let _ = rustix::fs::fcntl_setfl(&file, flags | rustix::fs::OFlags::DIRECT);
    }
    // One block, starting on a 4 KiB boundary as `O_DIRECT` needs.
    let buffer: Vec<u8> = (0..BLOCK as u32 + 4096).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let start_at = buffer.as_ptr().align_offset(4096).min(4096);
    let block = &buffer[start_at..start_at + BLOCK];
    let start = Instant::now();
    let mut written = 0u64;
    while written < bytes {
        file.write_all(block).unwrap();
        written += BLOCK as u64;
    }
    file.sync_all().unwrap();
    written as f64 / 1e6 / start.elapsed().as_secs_f64()
}

/// Submit → stored at the recipient over the 4-hop path, `samples` documents one at a time.
/// Returns the latencies.
///
/// "Stored" is the moment the recipient's count of documents taken moves, which it does right
/// after the commit: the recipient wakes this task then (`Metrics::taken`). Until the tenth
/// session the bench queried the recipient's database on tokio's timer (1 ms ticks, and a
/// query competing with the nodes for the cores: about half a millisecond on every sample);
/// until the seventeenth it polled the counter from a thread of its own every 50 µs, whose
/// 20,000 wake-ups a second cost the process 1.1 ms of CPU per document and added 1.1 ms to
/// the median (medians of three interleaved pairs' differences). That the document is then in the recipient's database is
/// checked after each sample.
pub async fn four_hop_latency(samples: u32) -> Vec<Duration> {
    let net = TestNet::start(only(&topology("quang-ninh-2024"), &PATH), NetOptions::default()).await;
    let clerk = net.clerk(PATH[0]).await;
    let recipient = net.node(PATH[4]);
    let metrics = recipient.observed.metrics();
    let mut latencies = Vec::with_capacity(samples as usize);
    for i in 0..samples {
        let d = net.document(PATH[0], &[PATH[4]], 10_000 + i);
        let before = metrics.documents_in.load(Ordering::SeqCst);
        // Registered before the submit, so that no wake-up is missed.
        let mut taken = std::pin::pin!(metrics.taken.notified());
        taken.as_mut().enable();
        let start = Instant::now();
        let stored = async {
            while metrics.documents_in.load(Ordering::SeqCst) == before {
                taken.as_mut().await;
                taken.set(metrics.taken.notified());
                taken.as_mut().enable();
            }
            Instant::now()
        };
        let (submitted, stored) =
            tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(d.submit(&clerk), stored) })
                .await
                .unwrap_or_else(|_| panic!("{} did not arrive in a minute", d.id));
        submitted.unwrap();
        latencies.push(stored - start);
        assert!(recipient.store.document_by_id(&d.id).await.unwrap().is_some(), "{} counted, not stored", d.id);
    }
    clerk.close().await;
    net.stop().await;
    latencies
}

/// Documents per second delivered over the first `hops` hops of the 4-hop path under load,
/// and the CPU time this process (every node on the path and the clerks' side) spent per
/// document, ms: `n` documents submitted by the first agency's clerk, `in_flight` at a time
/// over 4 clerk connections, from the first submit until the last is stored at the end of the
/// path. Unlike [`one_hop`], every hop here has a real node at both ends: the sender's
/// outbox, its send and its record of the receipt are counted too. Every node on `database`
/// (on PostgreSQL, one database each in one cluster, whose server also counts what each
/// node's database ran: see [`Delivered`]).
pub async fn delivered_over(database: Database, hops: usize, n: u32, in_flight: usize) -> Delivered {
    assert!((1..PATH.len()).contains(&hops), "the path has 1 to {} hops, not {hops}", PATH.len() - 1);
    let path = &PATH[..=hops];
    let mut options = NetOptions { database, count_statements: true, ..NetOptions::default() };
    options
        .extra_config
        .push_str("\n[limits]\nmax_streams_per_connection = 256\nmax_connections_per_certificate = 8\n");
    let net = TestNet::start(only(&topology("quang-ninh-2024"), path), options).await;
    let mut clerks = Vec::new();
    for _ in 0..4 {
        clerks.push(Arc::new(net.clerk(path[0]).await));
    }
    let end = path[hops];
    let docs: Vec<_> = (0..n).map(|i| Arc::new(net.document(path[0], &[end], 20_000 + i))).collect();
    let databases = Databases::open(&net).await;
    let recipient = databases.pool(&end.parse().unwrap());
    // Counted in the recipient's inbox, in the transaction that stores the document: its rows
    // are narrow, where counting the documents read all their envelopes every 5 ms while the
    // path drained (1.2 ms a count at 6,000 documents on PostgreSQL, on the cores the nodes
    // and the server share, and counted in the server's CPU).
    let stored = async || -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM inbox /* harness */").fetch_one(recipient).await.unwrap()
    };
    let sem = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let (cpu, server, counted) = (super::measure::process_cpu(), net.server_cpu(), net.statements());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (clerk, d) = (clerks[i % clerks.len()].clone(), d.clone());
        tasks.push(tokio::spawn(async move {
            d.submit(&clerk).await.unwrap();
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    while stored().await < i64::from(n) {
        assert!(start.elapsed() < Duration::from_secs(600), "the load over {hops} hops did not drain in 10 minutes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = f64::from(n) / start.elapsed().as_secs_f64();
    let per_doc = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(n);
    let (cpu_ms, server_ms) = (per_doc(super::measure::process_cpu() - cpu), per_doc(net.server_cpu() - server));
    let now = net.statements();
    // Every node of the path, in its order, so that the first is the first node's.
    let statements = if now.is_empty() {
        Vec::new()
    } else {
        path.iter()
            .map(|code| {
                let code: AgencyCode = code.parse().expect("the path's codes parse");
                let reading =
                    |counts: &BTreeMap<AgencyCode, Statements>| counts.get(&code).copied().unwrap_or_default();
                reading(&now).since(reading(&counted))
            })
            .collect()
    };
    databases.close().await;
    for c in clerks {
        if let Ok(c) = Arc::try_unwrap(c) {
            c.close().await;
        }
    }
    net.stop().await;
    Delivered { rate, cpu_ms, server_ms, statements }
}

/// What [`delivered_over`] measured.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// Documents delivered a second.
    pub rate: f64,
    /// CPU this process spent a document (every node on the path, the clerks' side), ms.
    pub cpu_ms: f64,
    /// CPU the PostgreSQL server spent a document meanwhile, ms (zero on SQLite).
    pub server_ms: f64,
    /// On PostgreSQL, what each node's database ran during the load, in the path's order
    /// (the first node first), counted by the server: steady (within a few per cent, with how
    /// a backlog goes) where CPU and rates move with the machine's noise, and what the
    /// server's cost follows; empty on SQLite.
    pub statements: Vec<Statements>,
}

/// The raw QUIC and SQLite limits, one hop at 1 and 16 in flight and the 4-hop latency.
pub fn run(figures: &mut Figures) {
    figures.section("network: nodes on loopback, QUIC with mutual TLS, SQLite (WAL, synchronous FULL)");
    runtime().block_on(async {
        let loaded = raw_quic(64, 20_000).await;
        figures.limit("raw_quic_req_per_s", "raw QUIC 1 KiB -> 64 B, 64 streams in flight", loaded.per_s, "req/s");
        let sequential = raw_quic(1, 3_000).await;
        figures.limit("raw_quic_sequential_req_per_s", "raw QUIC, sequential", sequential.per_s, "req/s");
        let quic_seq_p50 = sequential.p50;
        figures.note(&format!("p50 {:?} (64 in flight), {quic_seq_p50:?} (sequential)", loaded.p50));
        let db = figures.limit(
            "raw_sqlite_inserts_per_s",
            "raw SQLite insert, 1 row per transaction",
            raw_sqlite(2_000).await,
            "rows/s",
        );
        let rates = one_hop(Database::Sqlite, 1, 1, &[(1, 500), (16, 500)]).await;
        for (parallel, (r, _, _)) in [1, 16].into_iter().zip(rates) {
            figures.against(
                &format!("one_hop_sqlite_{parallel}_docs_per_s"),
                &format!("one hop: node takes documents, {parallel} in flight"),
                r,
                "docs/s",
                ("raw SQLite commit", db),
            );
        }
        let mut latencies = four_hop_latency(200).await;
        let (p50, p99) = percentiles_ms(&mut latencies);
        let floor = 5.0 * quic_seq_p50.as_secs_f64() * 1e3;
        let limit = ("5 raw sequential QUIC requests", floor);
        figures.against("four_hop_p50_ms", "4-hop latency p50, 200 documents one at a time", p50, "ms", limit);
        figures.against("four_hop_p99_ms", "4-hop latency p99", p99, "ms", limit);
    });
}
