//! Nodes: documents per second one node takes from a neighbour, and latency over the 4-hop
//! path, next to raw QUIC and raw SQLite measured in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::network::{NetOptions, RawPeer, TestNet, only, topology};
use node::protocol::NodeResponse;
use pki::Profile;

use crate::measure::report;

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Raw quinn on loopback: 1 KiB request, 64-byte answer, one stream each, `parallel` at once.
async fn raw_quic(parallel: usize, total: usize) -> (f64, Duration) {
    let cert = rcgen_self_signed();
    let (server_cfg, client_cfg) = cert;
    let server = quinn::Endpoint::server(server_cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(async move {
        while let Some(incoming) = server.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        let _ = recv.read_to_end(4096).await;
                        let _ = send.write_all(&[0u8; 64]).await;
                        let _ = send.finish();
                    });
                }
            });
        }
    });
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(client_cfg);
    let conn = client.connect(addr, "localhost").unwrap().await.unwrap();
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut latencies = Vec::with_capacity(total);
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
    let rate = total as f64 / start.elapsed().as_secs_f64();
    latencies.sort();
    (rate, latencies[latencies.len() / 2])
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
/// limit a node's hand-over is built on.
pub(crate) async fn raw_sqlite(total: usize) -> f64 {
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

pub(crate) fn run() {
    println!("\n== network: nodes on loopback, QUIC with mutual TLS, SQLite (WAL, synchronous FULL)");
    let rt = runtime();
    rt.block_on(async {
        let (quic_rate, quic_p50) = raw_quic(64, 20_000).await;
        report("raw QUIC 1 KiB -> 64 B, 64 streams in flight", quic_rate, "req", None);
        let (quic_seq, quic_seq_p50) = raw_quic(1, 3_000).await;
        report("raw QUIC, sequential", quic_seq, "req", None);
        println!("  {:<52} p50 {:?} (64 in flight), {:?} (sequential)", "", quic_p50, quic_seq_p50);
        let db = raw_sqlite(2_000).await;
        report("raw SQLite insert, 1 row per transaction", db, "row", None);

        // One hop: a neighbour hands documents to a node that is their recipient.
        let one_hop = only(&topology("quang-ninh-2024"), &["000.00.41.H49", "000.01.41.H49"]);
        let mut options = NetOptions::default();
        options.extra_config.push_str("\n[limits]\nmax_streams_per_connection = 256\n");
        // The commune's node keeps running: the district's delivery receipts go back to it, as
        // they would in service; the benchmark's documents come in on a second connection.
        let net = TestNet::start(one_hop, options).await;
        let peer = Arc::new(
            RawPeer::connect(&net, &net.identity(&"000.01.41.H49".parse().unwrap(), Profile::Node), "000.00.41.H49")
                .await,
        );
        let n = 1_000;
        let docs: Vec<_> = (1..=n).map(|i| Arc::new(net.document("000.01.41.H49", &["000.00.41.H49"], i))).collect();
        for parallel in [1usize, 16] {
            let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
            let start = Instant::now();
            let mut tasks = Vec::new();
            let offset = if parallel == 1 { 0 } else { n as usize / 2 };
            for d in docs.iter().skip(offset).take(n as usize / 2) {
                let permit = sem.clone().acquire_owned().await.unwrap();
                let (peer, d) = (peer.clone(), d.clone());
                tasks.push(tokio::spawn(async move {
                    let r = peer.deliver(&d, &["000.00.41.H49"]).await;
                    drop(permit);
                    assert!(matches!(r, Ok(NodeResponse::HopReceipt { .. })), "{r:?}");
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let rate = (n / 2) as f64 / start.elapsed().as_secs_f64();
            report(
                &format!("one hop: node takes documents, {parallel} in flight"),
                rate,
                "doc",
                Some(("raw SQLite commit", db)),
            );
        }
        net.stop().await;

        // Latency over the 4-hop path Phong Dụ → Tiên Yên → Quảng Ninh → Ba Chẽ → Thanh Sơn.
        let topology = only(
            &topology("quang-ninh-2024"),
            &["000.00.00.H49", "000.00.41.H49", "000.00.42.H49", "000.01.41.H49", "000.01.42.H49"],
        );
        let net = TestNet::start(topology, NetOptions::default()).await;
        let clerk = net.clerk("000.01.41.H49").await;
        let recipient = net.node("000.01.42.H49");
        let samples = 200;
        let mut latencies = Vec::with_capacity(samples);
        for i in 0..samples {
            let d = net.document("000.01.41.H49", &["000.01.42.H49"], 10_000 + i as u32);
            let start = Instant::now();
            d.submit(&clerk).await.unwrap();
            while recipient.store.document_by_id(&d.id).await.unwrap().is_none() {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            latencies.push(start.elapsed());
        }
        latencies.sort();
        let p50 = latencies[samples / 2];
        let p99 = latencies[samples * 99 / 100];
        println!(
            "  {:<52} p50 {:>8.2} ms   p99 {:>8.2} ms   ({} documents, submit to stored at the recipient)",
            "4-hop path latency",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            samples
        );
        println!(
            "  {:<52} {:>8.1} x raw sequential QUIC request (p50) per transfer (clerk submit + 4 hops)",
            "",
            p50.as_secs_f64() / 5.0 / quic_seq_p50.as_secs_f64()
        );
        clerk.close().await;
        net.stop().await;
    });
}
