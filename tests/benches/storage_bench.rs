//! Storage backends: documents per second one node takes on SQLite and on PostgreSQL, and on
//! PostgreSQL with one and with three node instances of the same agency sharing the database,
//! next to the raw commit rate of each database measured in the same run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use harness::network::{Database, NetOptions, RawPeer, SignedDocument, TestNet, only, topology};
use harness::postgres::PgCluster;
use node::protocol::NodeResponse;
use pki::Profile;

use crate::measure::report;
use crate::network_bench::{raw_sqlite, runtime};

const DISTRICT: &str = "000.00.41.H49";
const COMMUNE: &str = "000.01.41.H49";

/// Raw sqlx PostgreSQL inserts over the cluster's Unix socket, one row per transaction,
/// fsync and synchronous commit on, from `parallel` connections at once (PostgreSQL commits
/// concurrent transactions with one WAL flush): the durable-commit limit on PostgreSQL.
async fn raw_postgres(cluster: &PgCluster, name: &str, parallel: usize, total: usize) -> f64 {
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
/// peer; returns documents per second.
async fn deliver(peers: &[Arc<RawPeer>], docs: &[Arc<SignedDocument>], parallel: usize) -> f64 {
    let sems: Vec<_> = peers.iter().map(|_| Arc::new(tokio::sync::Semaphore::new(parallel))).collect();
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
    docs.len() as f64 / start.elapsed().as_secs_f64()
}

/// One district node (or `instances` of it on one PostgreSQL database) taking `n` documents
/// from its commune over three connections, 16 in flight each.
async fn node_rate(database: Database, instances: usize, n: u32) -> f64 {
    let topology = only(&topology("quang-ninh-2024"), &[DISTRICT, COMMUNE]);
    let mut options = NetOptions { database, ..NetOptions::default() };
    options.extra_config.push_str("\n[limits]\nmax_streams_per_connection = 256\n");
    let mut net = TestNet::prepare(topology, options);
    let district = DISTRICT.parse().unwrap();
    let commune = COMMUNE.parse().unwrap();
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
    for i in 0..3 {
        peers.push(Arc::new(RawPeer::connect_at(&net, &identity, DISTRICT, addrs[i % addrs.len()]).await));
    }
    let docs: Vec<_> = (1..=n).map(|i| Arc::new(net.document(COMMUNE, &[DISTRICT], i))).collect();
    let rate = deliver(&peers, &docs, 16).await;
    for h in handles {
        h.shutdown(std::time::Duration::from_secs(5)).await;
    }
    net.stop().await;
    rate
}

pub(crate) fn run() {
    println!("\n== storage: one node on SQLite and on PostgreSQL; one and three instances on PostgreSQL");
    let rt = runtime();
    rt.block_on(async {
        let sqlite = raw_sqlite(2_000).await;
        report("raw SQLite insert, 1 row per transaction", sqlite, "row", None);
        let cluster = PgCluster::start();
        let pg_sequential = raw_postgres(&cluster, "raw1", 1, 1_000).await;
        report("raw PostgreSQL insert, 1 row per transaction", pg_sequential, "row", None);
        let postgres = raw_postgres(&cluster, "raw48", 48, 4_800).await;
        report("same, 48 connections at once (group commit)", postgres, "row", None);
        drop(cluster);
        let n = 1_500;
        let on_sqlite = node_rate(Database::Sqlite, 1, n).await;
        report("node takes documents, SQLite", on_sqlite, "doc", Some(("raw SQLite commit", sqlite)));
        let on_postgres = node_rate(Database::Postgres, 1, n).await;
        report("node takes documents, PostgreSQL, 1 instance", on_postgres, "doc", Some(("raw PG commit", postgres)));
        let three = node_rate(Database::Postgres, 3, n).await;
        report("node takes documents, PostgreSQL, 3 instances", three, "doc", Some(("raw PG commit", postgres)));
        println!(
            "  {:<52} {:>12.2} x SQLite node;  3 instances: {:.2} x 1 instance",
            "PostgreSQL node",
            on_postgres / on_sqlite,
            three / on_postgres
        );
    });
}
