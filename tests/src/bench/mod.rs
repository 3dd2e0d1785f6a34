//! Benchmarks. Each figure is printed next to a limit measured in the same run on the same
//! machine (raw signatures, raw QUIC, raw durable writes) and the ratio between them: a ratio
//! survives a change of machine, a bare number does not.
//!
//! Two ways in, one piece of code per measurement: `cargo bench -p lienthong-tests --bench
//! lienthong -- [pki] [documents] [network] [storage]` runs the groups of a component, and
//! `cargo run --release -p lienthong-tests --bin bench -- --json FILE [--quick]` measures the
//! whole pipeline against its limits in one run ([`pipeline`]) and writes the figures as
//! JSON.

pub mod attachments;
pub mod documents;
pub mod measure;
pub mod network;
pub mod pki;
pub mod storage;

use std::time::Duration;

use serde::Serialize;

use self::attachments::{Pair, Transfer};
use self::measure::{Figures, cores, percentiles_ms};
use self::storage::Database;
use crate::postgres::PgCluster;

/// The machine a run was taken on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_mib: u64,
    pub kernel: String,
    pub cpu_model: String,
    /// `/proc/loadavg` when the run started: other work on a shared machine shows here.
    pub load_average_at_start: String,
    /// UTC, RFC 3339.
    pub date: String,
    pub quick: bool,
}

impl Machine {
    pub fn read(quick: bool) -> Machine {
        let file = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let meminfo = file("/proc/meminfo");
        let memory_kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let cpu_model = file("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_default();
        Machine {
            cores: cores(),
            memory_mib: memory_kib / 1024,
            kernel: file("/proc/sys/kernel/osrelease").trim().to_owned(),
            cpu_model,
            load_average_at_start: file("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
            date: time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap(),
            quick,
        }
    }
}

/// What a run writes as JSON: `{"machine": {...}, "figures": [{"name", "value", "unit",
/// "limit", "ratio"}, ...]}`.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub machine: &'a Machine,
    pub figures: &'a [measure::Figure],
}

/// How long a run is: the full run, or `--quick` (fewer documents and one transfer of each
/// attachment size instead of three; every figure is still measured, the 1 GiB attachment
/// included).
#[derive(Debug, Clone, Copy)]
struct Sizes {
    quic_requests: usize,
    quic_bulk: u64,
    commits: usize,
    disk: u64,
    one_hop: [(usize, u32); 3],
    /// Documents sent under load from a clerk, over one hop and over four.
    under_load: u32,
    four_hop_latency: u32,
    attachment_runs: usize,
    /// Bundles `lienthong verify DIR` verifies in one process.
    many_bundles: u32,
    /// Of those, how many are verified again with a process each.
    bundles: u32,
}

const MIB: u64 = 1 << 20;

const FULL: Sizes = Sizes {
    quic_requests: 20_000,
    quic_bulk: 1024 * MIB,
    commits: 2_000,
    disk: 1024 * MIB,
    one_hop: [(1, 300), (16, 1_500), (256, 3_000)],
    under_load: 1_000,
    four_hop_latency: 200,
    attachment_runs: 3,
    many_bundles: 2_000,
    bundles: 300,
};

const QUICK: Sizes = Sizes {
    quic_requests: 5_000,
    quic_bulk: 256 * MIB,
    commits: 500,
    disk: 256 * MIB,
    one_hop: [(1, 100), (16, 500), (256, 1_000)],
    under_load: 300,
    four_hop_latency: 50,
    attachment_runs: 1,
    many_bundles: 1_000,
    bundles: 60,
};

/// The whole pipeline against its limits, in one run: the limits first (crypto on every
/// core, raw QUIC, raw durable inserts on SQLite and PostgreSQL, disk writes with fsync),
/// then lienthong (one hop on both backends, four hops under load and one at a time,
/// attachments between node processes, offline verification).
pub fn pipeline(figures: &mut Figures, quick: bool) {
    let sizes = if quick { QUICK } else { FULL };
    let rt = network::runtime();

    figures.section("limits: the machine, measured in this run");
    let (raw_verify_all, crypto) = pki::crypto_limit(figures);
    let (quic_seq_p50, sqlite, bulk) = rt.block_on(async {
        let (rate, _) = network::raw_quic(64, sizes.quic_requests).await;
        figures.limit("raw_quic_req_per_s", "raw quinn 1 KiB -> 64 B requests, 64 in flight", rate, "req/s");
        let (rate, p50) = network::raw_quic(1, sizes.quic_requests / 10).await;
        figures.limit("raw_quic_sequential_req_per_s", "raw quinn requests, one at a time", rate, "req/s");
        figures.limit("raw_quic_sequential_p50_ms", "raw quinn request time p50, one at a time", ms(p50), "ms");
        let bulk = raw_bulk_limit(figures, &sizes).await;
        let sqlite = network::raw_sqlite(sizes.commits).await;
        figures.limit("raw_sqlite_inserts_per_s", "raw SQLite durable insert, 1 row per commit", sqlite, "rows/s");
        let cluster = PgCluster::start();
        let pg = storage::raw_postgres(&cluster, "raw1", 1, sizes.commits / 2).await;
        figures.limit("raw_postgres_inserts_per_s", "raw PostgreSQL durable insert, 1 row per commit", pg, "rows/s");
        let pg48 = storage::raw_postgres(&cluster, "raw48", 48, sizes.commits * 48 / 20).await;
        figures.limit("raw_postgres_48_inserts_per_s", "same, 48 connections (group commit)", pg48, "rows/s");
        drop(cluster);
        (p50, sqlite, bulk)
    });
    let disk = disk_limit(figures, &sizes);

    figures.section("lienthong");
    rt.block_on(async {
        hops(figures, &sizes, crypto, quic_seq_p50, sqlite).await;
        attachments(figures, &sizes, bulk, disk).await;
    });
    documents::verify_cli(figures, sizes.many_bundles, sizes.bundles, raw_verify_all);
}

/// Raw quinn bulk, one stream, MB/s: the limit of an attachment's transfer.
async fn raw_bulk_limit(figures: &mut Figures, sizes: &Sizes) -> f64 {
    let bulk = network::raw_quic_bulk(sizes.quic_bulk).await;
    let text = format!("raw quinn bulk, one stream, {} MiB", sizes.quic_bulk / MIB);
    figures.limit("raw_quic_bulk_mb_per_s", &text, bulk, "MB/s")
}

/// The disk, written direct then synced, MB/s.
fn disk_limit(figures: &mut Figures, sizes: &Sizes) -> f64 {
    let disk = network::disk_write(sizes.disk);
    figures.limit(
        "disk_write_mb_per_s",
        &format!("disk write {} MiB direct, then fsync", sizes.disk / MIB),
        disk,
        "MB/s",
    )
}

/// Attachments of 1 MiB, 100 MiB and 1 GiB from a clerk through two node processes, against
/// raw quinn bulk (`bulk`, MB/s) and the disk (`disk`, MB/s written then synced).
async fn attachments(figures: &mut Figures, sizes: &Sizes, bulk: f64, disk: f64) {
    let mut pair = Pair::start().await;
    for (size, label) in [(MIB, "1mib"), (100 * MIB, "100mib"), (1024 * MIB, "1gib")] {
        let mut runs = Vec::new();
        for _ in 0..sizes.attachment_runs {
            runs.push(pair.send(size).await);
        }
        attachment_figures(figures, label, &mut runs, bulk, disk);
    }
    pair.stop().await;
}

/// The pipeline's hops: one hop on both backends at 1, 16 and 256 in flight (the receiving
/// side), one hop from a clerk and four hops under load (nodes at both ends of every hop), and
/// four hops one at a time, against the crypto limit and the floor of a hop (`quic_seq_p50`,
/// one raw request; `sqlite`, raw durable inserts per second).
async fn hops(figures: &mut Figures, sizes: &Sizes, crypto: f64, quic_seq_p50: Duration, sqlite: f64) {
    let crypto_limit = ("crypto limit", crypto);
    // The CPU the crypto limit's work takes per document: every core for 1/crypto s.
    let crypto_cpu = ("crypto CPU per document", cores() as f64 * 1e3 / crypto);
    for (database, label) in [(Database::Sqlite, "sqlite"), (Database::Postgres, "postgres")] {
        let rates = storage::one_hop(database, 1, 1, &sizes.one_hop).await;
        for ((in_flight, n), (rate, cpu_ms)) in sizes.one_hop.iter().zip(rates) {
            let name = format!("one_hop_{label}_{in_flight}_docs_per_s");
            let text = format!("one hop, {label}, {in_flight} in flight ({n} documents)");
            figures.against(&name, &text, rate, "docs/s", crypto_limit);
            let server = if database == Database::Postgres { ", not counting the server" } else { "" };
            figures.against(
                &format!("one_hop_{label}_{in_flight}_cpu_ms_per_doc"),
                &format!("  CPU per document, both nodes{server}"),
                cpu_ms,
                "ms",
                crypto_cpu,
            );
        }
    }
    let n = sizes.under_load;
    // One hop as a clerk sees it: both ends are nodes, so the sender's side of the hop (its
    // outbox, the send, the receipt's check and record) is counted, which `one_hop` leaves out.
    let (rate, cpu_ms) = network::delivered_over(1, n, 64).await;
    let text =
        format!("one hop from a clerk: submit -> first node -> stored at the next, 64 in flight ({n} documents)");
    figures.against("clerk_one_hop_delivered_docs_per_s", &text, rate, "docs/s", crypto_limit);
    figures.against(
        "clerk_one_hop_cpu_ms_per_doc",
        "  CPU per document, both nodes and the clerk",
        cpu_ms,
        "ms",
        crypto_cpu,
    );
    // The one hop is this one (clerk -> node -> stored at the next node); until the
    // seventh session the headline was the receiving side alone, `one_hop_sqlite_256_docs_per_s`.
    figures.against("one_hop_docs_per_s", "one hop (= from a clerk, nodes at both ends)", rate, "docs/s", crypto_limit);
    let (rate, cpu_ms) = network::delivered_over(4, n, 64).await;
    let text = format!("four hops, 64 in flight, delivered ({n} documents)");
    figures.against("four_hop_delivered_docs_per_s", &text, rate, "docs/s", crypto_limit);
    if let Some(one) = figures.get("one_hop_docs_per_s") {
        figures.note(&format!("{:.2} x the one-hop rate (from a clerk)", rate / one));
    }
    if let Some(one) = figures.get("one_hop_sqlite_256_docs_per_s") {
        figures.note(&format!("{:.2} x the receiving side's one-hop rate", rate / one));
    }
    figures.against(
        "four_hop_cpu_ms_per_doc",
        "  CPU per document, all five nodes and the clerk",
        cpu_ms,
        "ms",
        crypto_cpu,
    );
    let mut latencies = network::four_hop_latency(sizes.four_hop_latency).await;
    let (p50, p99) = percentiles_ms(&mut latencies);
    // The floor: five transfers (the clerk's submit and four hops), each a raw request and
    // one durable commit.
    let floor = 5.0 * (ms(quic_seq_p50) + 1e3 / sqlite);
    let limit = ("5 x (raw request + durable commit)", floor);
    let text = format!("four hops one at a time, submit -> stored, p50 ({} documents)", sizes.four_hop_latency);
    figures.against("four_hop_p50_ms", &text, p50, "ms", limit);
    figures.against("four_hop_p99_ms", "four hops one at a time, p99", p99, "ms", limit);
}

/// Only the hops and the limits they are measured against (`bench --only hops`): for working
/// on the pipeline (and profiling it) without the attachments and verification.
pub fn hops_only(figures: &mut Figures, quick: bool) {
    let sizes = if quick { QUICK } else { FULL };
    let rt = network::runtime();
    figures.section("limits: the machine, measured in this run");
    let (_, crypto) = pki::crypto_limit(figures);
    rt.block_on(async {
        let (rate, p50) = network::raw_quic(1, sizes.quic_requests / 10).await;
        figures.limit("raw_quic_sequential_req_per_s", "raw quinn requests, one at a time", rate, "req/s");
        let sqlite = network::raw_sqlite(sizes.commits).await;
        figures.limit("raw_sqlite_inserts_per_s", "raw SQLite durable insert, 1 row per commit", sqlite, "rows/s");
        figures.section("lienthong");
        hops(figures, &sizes, crypto, p50, sqlite).await;
    });
}

/// Only the attachments and the limits they are measured against, raw quinn bulk and the
/// disk (`bench --only attachments`): for working on large transfers without the rest.
pub fn attachments_only(figures: &mut Figures, quick: bool) {
    let sizes = if quick { QUICK } else { FULL };
    let rt = network::runtime();
    figures.section("limits: the machine, measured in this run");
    let bulk = rt.block_on(raw_bulk_limit(figures, &sizes));
    let disk = disk_limit(figures, &sizes);
    figures.section("lienthong");
    rt.block_on(attachments(figures, &sizes, bulk, disk));
}

/// Only the offline verification figures and the crypto limit they are measured against
/// (`bench --only verify`): for working on `lienthong verify` without the whole run.
pub fn verify_only(figures: &mut Figures, quick: bool) {
    let sizes = if quick { QUICK } else { FULL };
    figures.section("limits: the machine, measured in this run");
    let (raw_verify_all, _) = pki::crypto_limit(figures);
    figures.section("offline verification");
    documents::verify_cli(figures, sizes.many_bundles, sizes.bundles, raw_verify_all);
}

/// The median transfer of `runs` (by end-to-end time) and the highest peak memory seen.
///
/// Besides raw quinn (the limit), each rate is also set against the bound durability
/// puts on it on this machine: a node answers for a document only once its attachment is
/// written and synced, so one hop cannot beat the slower of raw quinn and the disk, and the
/// next node starts only once the first has answered, so the two hops of "end to end" take
/// their times in turn: at best half of that.
fn attachment_figures(figures: &mut Figures, label: &str, runs: &mut [Transfer], bulk: f64, disk: f64) {
    runs.sort_by_key(|t| t.end_to_end);
    let median = runs[runs.len() / 2];
    let peak = |i: usize| runs.iter().map(|t| t.peak_rss_mib[i]).fold(0.0, f64::max);
    let raw = ("raw quinn bulk", bulk);
    let what = format!("{label} attachment");
    figures.against(
        &format!("attachment_{label}_mb_per_s"),
        &format!("{what}, clerk -> node -> next node stored ({} runs)", runs.len()),
        median.mb_per_s(),
        "MB/s",
        raw,
    );
    let hop = bulk.min(disk);
    figures.note(&format!(
        "{:.2} x two durable hops in turn, min(raw quinn, disk) / 2 = {:.0} MB/s",
        median.mb_per_s() / (hop / 2.0),
        hop / 2.0
    ));
    figures.record(&format!("attachment_{label}_durable_bound_ratio"), median.mb_per_s() / (hop / 2.0), "ratio");
    figures.against(
        &format!("attachment_{label}_clerk_mb_per_s"),
        &format!("{what}, clerk -> first node (`lienthong send` exits)"),
        median.clerk_mb_per_s(),
        "MB/s",
        raw,
    );
    figures.note(&format!(
        "{:.2} x one durable hop, min(raw quinn, disk) = {hop:.0} MB/s (the CLI's start, with its key's scrypt, counts too)",
        median.clerk_mb_per_s() / hop
    ));
    let (cli, sender, receiver) = (peak(0), peak(1), peak(2));
    figures.alone(
        &format!("attachment_{label}_peak_rss_mib"),
        &format!("{what}, peak RSS of any process"),
        cli.max(sender).max(receiver),
        "MiB",
    );
    figures.note(&format!("CLI {cli:.1} MiB, sending node {sender:.1} MiB, receiving node {receiver:.1} MiB"));
    for (who, value) in [("cli", cli), ("sender", sender), ("receiver", receiver)] {
        figures.record(&format!("attachment_{label}_peak_rss_{who}_mib"), value, "MiB");
    }
    // Where the time goes: on this machine the processes together can be short of cores, not
    // of network or disk. (Not for small transfers: the kernel counts CPU in 10 ms ticks, and
    // the CLI's start would be all there is.)
    if median.bytes < 64 * MIB {
        return;
    }
    let gib = median.bytes as f64 / (1u64 << 30) as f64;
    let [cli_cpu, sender_cpu, receiver_cpu] = median.cpu_s.map(|s| s / gib);
    figures.note(&format!(
        "CPU per GiB: CLI {cli_cpu:.2} s, sending node {sender_cpu:.2} s, receiving node {receiver_cpu:.2} s ({:.2} s of {} cores' {:.2} s)",
        cli_cpu + sender_cpu + receiver_cpu,
        cores(),
        cores() as f64 * median.end_to_end.as_secs_f64() / gib
    ));
    for (who, value) in [("cli", cli_cpu), ("sender", sender_cpu), ("receiver", receiver_cpu)] {
        figures.record(&format!("attachment_{label}_cpu_{who}_s_per_gib"), value, "s/GiB");
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
