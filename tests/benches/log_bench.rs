//! The transparency log's cost: documents per second one node takes with its log on and off,
//! in the same run, on SQLite and on PostgreSQL (runs interleaved on, off, on, off so that a
//! machine getting slower or faster during the run weighs on both), and the size of the
//! inclusion proof a document's evidence carries per log it passed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::network::{Database, NetOptions, RawPeer, TestNet, only, topology};
use pki::Profile;

use harness::bench::network::runtime;
use harness::bench::storage::deliver;

const DISTRICT: &str = "000.00.41.H49";
const COMMUNE: &str = "000.01.41.H49";

/// The district takes `n` documents from its commune over three connections, 16 in flight
/// each, with its log on (checkpoints every second, so their work falls inside the run) or
/// off. Returns documents per second and, with the log on, the size in bytes of one
/// `LogProof` from the commune's log (co-signed by the district) for a document's envelope.
async fn rate(database: Database, log: bool, n: u32) -> (f64, Option<usize>) {
    let topology = only(&topology("quang-ninh-2024"), &[DISTRICT, COMMUNE]);
    let mut options = NetOptions { database, ..NetOptions::default() };
    options.extra_config.push_str("\n[limits]\nmax_streams_per_connection = 256\n");
    options.extra_config.push_str(&format!("\n[log]\nenabled = {log}\ncheckpoint_interval = \"1s\"\n"));
    let net = TestNet::start(topology, options).await;
    let identity = net.identity(&COMMUNE.parse().unwrap(), Profile::Node);
    let mut peers = Vec::new();
    for _ in 0..3 {
        peers.push(Arc::new(RawPeer::connect(&net, &identity, DISTRICT).await));
    }
    let docs: Vec<_> = (1..=n).map(|i| Arc::new(net.document(COMMUNE, &[DISTRICT], i))).collect();
    let rate = deliver(&peers, &docs, 16).await.0;
    let mut proof_bytes = None;
    if log {
        // The district's delivery receipts reach the commune, which logs them; its checkpoint
        // is co-signed by the district.
        let commune = net.node(COMMUNE);
        let digest = docs[0].digest;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let proofs = node::tlog::query::log_proofs(commune, &digest).await.unwrap();
            if let Some(p) = proofs.first() {
                proof_bytes = Some(p.to_bytes().len());
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    net.stop().await;
    (rate, proof_bytes)
}

pub(crate) fn run() {
    println!("\n== log: one node taking documents (3 connections x 16 in flight), transparency log on vs off");
    let rt = runtime();
    rt.block_on(async {
        let n = 800;
        for database in [Database::Sqlite, Database::Postgres] {
            let (mut on, mut off) = (Vec::new(), Vec::new());
            let mut proof = None;
            for _ in 0..2 {
                let (r, p) = rate(database, true, n).await;
                on.push(r);
                proof = proof.or(p);
                off.push(rate(database, false, n).await.0);
            }
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let (on_mean, off_mean) = (mean(&on), mean(&off));
            let name = format!("{database:?}");
            println!(
                "  {name:<10} log off {off_mean:>7.0} docs/s ({:.0}, {:.0})   log on {on_mean:>7.0} docs/s ({:.0}, {:.0})   on/off {:.3}",
                off[0],
                off[1],
                on[0],
                on[1],
                on_mean / off_mean
            );
            if let Some(bytes) = proof {
                println!("  {name:<10} one LogProof (leaf, inclusion proof, co-signed checkpoint, 2 seal chains): {bytes} bytes");
            }
        }
    });
}
