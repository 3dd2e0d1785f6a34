//! Storage backends: documents per second one node takes on SQLite and on PostgreSQL, and on
//! PostgreSQL with one and with three node instances of the same agency sharing the database,
//! next to the raw commit rate of each database measured in the same run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use node::protocol::NodeResponse;
use pki::Profile;

pub use crate::network::Database;
use crate::network::{NetOptions, RawPeer, SignedDocument, TestNet, only, topology};
use crate::postgres::PgCluster;

use super::measure::Figures;
use super::network::{raw_sqlite, runtime};

const DISTRICT: &str = "000.00.41.H49";
const COMMUNE: &str = "000.01.41.H49";

/// Raw sqlx PostgreSQL inserts over the cluster's Unix socket, one row per transaction,
/// fsync and synchronous commit on, from `parallel` connections at once (PostgreSQL commits
/// concurrent transactions with one WAL flush): the durable-commit limit on PostgreSQL.
pub async fn raw_postgres(cluster: &PgCluster, name: &str, parallel: usize, total: usize) -> f64 {
    let url = cluster.database(name);
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(parallel as u32).connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, v BYTEA)").execute(&pool).await.unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..total / parallel {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query("INSERT INTO t (v) VALUES ($1)").bind(vec![7u8; 256]).execute(&mut *tx).await.unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = (total / parallel * parallel) as f64 / start.elapsed().as_secs_f64();
    pool.close().await;
    rate
}

/// Delivers `docs` to the district through `peers` (round robin), `parallel` in flight per
/// peer; returns documents per second and the CPU time this process (the nodes, and the
/// peers' side of the connections) spent per document, in ms. Every benchmark that hands documents to a node
/// measures with this one.
pub async fn deliver(peers: &[Arc<RawPeer>], docs: &[Arc<SignedDocument>], parallel: usize) -> (f64, f64) {
    let sems: Vec<_> = peers.iter().map(|_| Arc::new(tokio::sync::Semaphore::new(parallel))).collect();
    let cpu = super::measure::process_cpu();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let k = i % peers.len();
        let permit = sems[k].clone().acquire_owned().await.unwrap();
        let (peer, d) = (peers[k].clone(), d.clone());
        tasks.push(tokio::spawn(async move {
            let r = peer.deliver(&d, &[DISTRICT]).await;
            drop(permit);
            assert!(matches!(r, Ok(NodeResponse::HopReceipt { .. })), "{r:?}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = docs.len() as f64 / start.elapsed().as_secs_f64();
    let cpu_ms = (super::measure::process_cpu() - cpu).as_secs_f64() * 1e3 / docs.len() as f64;
    (rate, cpu_ms)
}

/// One hop: the district's node (or `instances` of it on one PostgreSQL database) takes
/// documents from its commune — verified, stored durably, hop receipt signed and answered —
/// over `connections` connections. For each `(in flight per connection, documents)` of
/// `runs`, in turn on the same nodes, returns documents per second, CPU ms per document
/// (see [`deliver`]) and the PostgreSQL server's CPU ms per document meanwhile (zero on
/// SQLite).
pub async fn one_hop(
    database: Database,
    instances: usize,
    connections: usize,
    runs: &[(usize, u32)],
) -> Vec<(f64, f64, f64)> {
    let topology = only(&topology("quang-ninh-2024"), &[DISTRICT, COMMUNE]);
    let mut options = NetOptions { database, ..NetOptions::default() };
    options.extra_config.push_str("\n[limits]\nmax_streams_per_connection = 256\n");
    let mut net = TestNet::prepare(topology, options);
    let district = DISTRICT.parse().unwrap();
    let commune = COMMUNE.parse().unwrap();
    // The commune's node keeps running: the district's delivery receipts go back to it, as
    // they would in service; the benchmark's documents come in on connections of their own.
    net.start_node(&commune).await;
    let (addrs, handles): (Vec<SocketAddr>, Vec<_>) = if instances == 1 {
        net.start_node(&district).await;
        (vec![net.addrs[&district]], Vec::new())
    } else {
        let addrs = net.scale_out(&district, instances);
        let mut handles = Vec::new();
        for i in 1..=instances {
            handles.push(net.start_instance(&district, &format!("p{i}.toml")).await);
        }
        (addrs, handles)
    };
    let identity = net.identity(&commune, Profile::Node);
    let mut peers = Vec::new();
    for i in 0..connections {
        peers.push(Arc::new(RawPeer::connect_at(&net, &identity, DISTRICT, addrs[i % addrs.len()]).await));
    }
    let mut number = 0;
    let mut rates = Vec::new();
    for &(parallel, n) in runs {
        let docs: Vec<_> = (number + 1..=number + n).map(|i| Arc::new(net.document(COMMUNE, &[DISTRICT], i))).collect();
        number += n;
        let server = net.server_cpu();
        let (rate, cpu_ms) = deliver(&peers, &docs, parallel).await;
        let server_ms = (net.server_cpu() - server).as_secs_f64() * 1e3 / f64::from(n);
        rates.push((rate, cpu_ms, server_ms));
    }
    for h in handles {
        h.shutdown(std::time::Duration::from_secs(5)).await;
    }
    net.stop().await;
    rates
}

pub fn run(figures: &mut Figures) {
    figures.section("storage: one node on SQLite and on PostgreSQL; one and three instances on PostgreSQL");
    runtime().block_on(async {
        let sqlite = figures.limit(
            "raw_sqlite_inserts_per_s",
            "raw SQLite insert, 1 row per transaction",
            raw_sqlite(2_000).await,
            "rows/s",
        );
        let cluster = PgCluster::start();
        figures.limit(
            "raw_postgres_inserts_per_s",
            "raw PostgreSQL insert, 1 row per transaction",
            raw_postgres(&cluster, "raw1", 1, 1_000).await,
            "rows/s",
        );
        let postgres = figures.limit(
            "raw_postgres_48_inserts_per_s",
            "same, 48 connections at once (group commit)",
            raw_postgres(&cluster, "raw48", 48, 4_800).await,
            "rows/s",
        );
        drop(cluster);
        let runs = [(16, 1_500)];
        let on_sqlite = one_hop(Database::Sqlite, 1, 3, &runs).await[0].0;
        figures.against(
            "node_sqlite_docs_per_s",
            "node takes documents, SQLite, 3 x 16 in flight",
            on_sqlite,
            "docs/s",
            ("raw SQLite commit", sqlite),
        );
        let pg = ("raw PG commit, 48 connections", postgres);
        let on_postgres = one_hop(Database::Postgres, 1, 3, &runs).await[0].0;
        figures.against(
            "node_postgres_docs_per_s",
            "node takes documents, PostgreSQL, 1 instance",
            on_postgres,
            "docs/s",
            pg,
        );
        let three = one_hop(Database::Postgres, 3, 3, &runs).await[0].0;
        figures.against(
            "node_postgres_3_instances_docs_per_s",
            "node takes documents, PostgreSQL, 3 instances",
            three,
            "docs/s",
            pg,
        );
        figures.note(&format!(
            "PostgreSQL node {:.2} x SQLite node; 3 instances: {:.2} x 1 instance",
            on_postgres / on_sqlite,
            three / on_postgres
        ));
    });
}
