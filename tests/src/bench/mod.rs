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
use self::measure::{Figures, cores, human, percentiles_ms};
use self::network::{Bulk, Requests};
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
    let crypto = pki::crypto_limit(figures);
    let (limits, bulk) = rt.block_on(async {
        let requests = request_limits(figures, &sizes).await;
        let bulk = raw_bulk_limit(figures, &sizes).await;
        let sqlite = network::raw_sqlite(sizes.commits).await;
        figures.limit("raw_sqlite_inserts_per_s", "raw SQLite durable insert, 1 row per commit", sqlite, "rows/s");
        let cluster = PgCluster::start();
        let pg = storage::raw_postgres(&cluster, "raw1", 1, sizes.commits / 2).await;
        figures.limit("raw_postgres_inserts_per_s", "raw PostgreSQL durable insert, 1 row per commit", pg, "rows/s");
        let pg48 = storage::raw_postgres(&cluster, "raw48", 48, sizes.commits * 48 / 20).await;
        figures.limit("raw_postgres_48_inserts_per_s", "same, 48 connections (group commit)", pg48, "rows/s");
        drop(cluster);
        (HopLimits { crypto, requests, sqlite }, bulk)
    });
    let disk = disk_limit(figures, &sizes);

    figures.section("lienthong");
    rt.block_on(async {
        hops(figures, &sizes, &limits).await;
        attachments(figures, &sizes, bulk, disk).await;
    });
    documents::verify_cli(figures, sizes.many_bundles, sizes.bundles, crypto.verify_per_s);
}

/// The limits a hop is measured against, from this run.
struct HopLimits {
    /// Raw P-256 on every core.
    crypto: pki::Crypto,
    /// Raw quinn requests: 64 in flight, then one at a time.
    requests: [Requests; 2],
    /// Raw durable SQLite inserts per second, one row per commit.
    sqlite: f64,
}

/// Raw quinn requests, 64 in flight (the rate, and the CPU a request costs) and one at a time
/// (the floor of a hop's latency).
async fn request_limits(figures: &mut Figures, sizes: &Sizes) -> [Requests; 2] {
    let loaded = network::raw_quic(64, sizes.quic_requests).await;
    figures.limit("raw_quic_req_per_s", "raw quinn 1 KiB -> 64 B requests, 64 in flight", loaded.per_s, "req/s");
    let cpu_us = loaded.cpu_per_request.as_secs_f64() * 1e6;
    figures.note(&format!("{cpu_us:.1} µs of CPU per request, both ends"));
    figures.record("raw_quic_cpu_us_per_req", cpu_us, "µs");
    let sequential = network::raw_quic(1, sizes.quic_requests / 10).await;
    figures.limit("raw_quic_sequential_req_per_s", "raw quinn requests, one at a time", sequential.per_s, "req/s");
    figures.limit("raw_quic_sequential_p50_ms", "raw quinn request time p50, one at a time", ms(sequential.p50), "ms");
    [loaded, sequential]
}

/// Raw quinn bulk, one stream: the limit of an attachment's transfer, and the CPU it costs.
async fn raw_bulk_limit(figures: &mut Figures, sizes: &Sizes) -> Bulk {
    let bulk = network::raw_quic_bulk(sizes.quic_bulk).await;
    let text = format!("raw quinn bulk, one stream, {} MiB", sizes.quic_bulk / MIB);
    figures.limit("raw_quic_bulk_mb_per_s", &text, bulk.mb_per_s, "MB/s");
    figures.note(&format!("{:.2} s of CPU per GiB, sender and receiver together", bulk.cpu_s_per_gib));
    figures.record("raw_quic_bulk_cpu_s_per_gib", bulk.cpu_s_per_gib, "s/GiB");
    bulk
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
/// raw quinn bulk (`bulk`) and the disk (`disk`, MB/s written then synced).
async fn attachments(figures: &mut Figures, sizes: &Sizes, bulk: Bulk, disk: f64) {
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
/// four hops one at a time, against the crypto limit and the floor of a hop (one raw request
/// one at a time and one raw durable insert).
async fn hops(figures: &mut Figures, sizes: &Sizes, limits: &HopLimits) {
    let crypto = limits.crypto.limit;
    let crypto_limit = ("crypto limit", crypto);
    // The CPU the crypto limit's work takes per document: every core for 1/crypto s.
    let crypto_cpu = ("crypto CPU per document", cores() as f64 * 1e3 / crypto);
    for (database, label) in [(Database::Sqlite, "sqlite"), (Database::Postgres, "postgres")] {
        let rates = storage::one_hop(database, 1, 1, &sizes.one_hop).await;
        for ((in_flight, n), (rate, cpu_ms, server_ms)) in sizes.one_hop.iter().zip(rates) {
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
            if database == Database::Postgres {
                figures.against(
                    &format!("one_hop_{label}_{in_flight}_server_cpu_ms_per_doc"),
                    "  CPU per document, the PostgreSQL server",
                    server_ms,
                    "ms",
                    crypto_cpu,
                );
            }
        }
    }
    let n = sizes.under_load;
    // One hop as a clerk sees it: both ends are nodes, so the sender's side of the hop (its
    // outbox, the send, the receipt's check and record) is counted, which `one_hop` leaves out.
    let network::Delivered { rate, cpu_ms, .. } = network::delivered_over(Database::Sqlite, 1, n, 64).await;
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
    let one_hop_cpu_ms = cpu_ms;
    let design = DesignWork::new(limits);
    design.one_hop_bounds(figures, crypto);
    // The same on PostgreSQL: the goal names both backends, and a clerk's document costs the
    // first node two transactions (its intake, the record of the next hop's answer) where the
    // receiving side's one hop above has one.
    let network::Delivered { rate, cpu_ms, server_ms, statements } =
        network::delivered_over(Database::Postgres, 1, n, 64).await;
    let text = format!("one hop from a clerk, PostgreSQL, 64 in flight ({n} documents)");
    figures.against("clerk_one_hop_postgres_docs_per_s", &text, rate, "docs/s", crypto_limit);
    figures.against(
        "clerk_one_hop_postgres_cpu_ms_per_doc",
        "  CPU per document, both nodes and the clerk, not counting the server",
        cpu_ms,
        "ms",
        crypto_cpu,
    );
    figures.against(
        "clerk_one_hop_postgres_server_cpu_ms_per_doc",
        "  CPU per document, the PostgreSQL server (both nodes' databases)",
        server_ms,
        "ms",
        crypto_cpu,
    );
    // Steady where the rate and CPU are not: what the server's cost follows (see
    // BENCHMARKS.md, "What the twenty-fifth session measured").
    for (side, counted) in ["first", "next"].iter().zip(&statements) {
        let per_doc = |count: u64| count as f64 / f64::from(n);
        let (statements, commits) = (per_doc(counted.statements), per_doc(counted.commits));
        figures.record(&format!("clerk_one_hop_postgres_{side}_node_statements_per_doc"), statements, "");
        figures.record(&format!("clerk_one_hop_postgres_{side}_node_commits_per_doc"), commits, "");
        figures.note(&format!(
            "  {side} node: {statements:.1} statements ({commits:.2} commits) a document, counted by the server"
        ));
    }
    let network::Delivered { rate, cpu_ms, .. } = network::delivered_over(Database::Sqlite, 4, n, 64).await;
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
    design.four_hop_bounds(figures, one_hop_cpu_ms);
    let mut latencies = network::four_hop_latency(sizes.four_hop_latency).await;
    let (p50, p99) = percentiles_ms(&mut latencies);
    // The floor: what lies on the document's path as this design verifies (a document's two
    // signatures one after the other on one pool thread; a design verifying them in parallel
    // could go below it; "one core" is the all-core rate divided by the cores). Five transfers
    // (the clerk's submit and four hops), each at least a raw request one at a time; two
    // durable commits, the first node's (a clerk's document leaves only once its agency's node
    // has taken it) and the recipient's (stored), since the three nodes in between pass the
    // document on while they commit (`limits.pass_on_before_commit`); and at each of the five
    // nodes the document's two signatures verified. Until
    // the eighteenth session the floor counted a commit at every node (5 x (request + commit)),
    // which cut-through forwarding took off the path: it was no lower bound.
    let one_core_verify_ms = cores() as f64 * 1e3 / limits.crypto.verify_per_s;
    let floor = 5.0 * ms(limits.requests[1].p50) + 2.0 * 1e3 / limits.sqlite + 10.0 * one_core_verify_ms;
    let limit = ("5 raw requests + 2 durable commits + 10 verifications on one core", floor);
    let text = format!("four hops one at a time, submit -> stored, p50 ({} documents)", sizes.four_hop_latency);
    figures.against("four_hop_p50_ms", &text, p50, "ms", limit);
    figures.against("four_hop_p99_ms", "four hops one at a time, p99", p99, "ms", limit);
}

/// What the design requires of a document's hops on these cores, at this run's raw costs:
/// signature work and transfers only (no storage, no parsing), so the rates it allows are
/// bounds no implementation of this protocol passes here. The counts are the ones measured
/// with uprobes on ring's point multiplications (BENCHMARKS.md, fourteenth session).
struct DesignWork {
    crypto: pki::Crypto,
    /// CPU of one raw quinn request, both ends, ms.
    request_ms: f64,
}

impl DesignWork {
    /// One hop from a clerk: both nodes verify the document's two signatures; the next node
    /// signs a hop receipt and an "arrived" status, and the first node verifies both; the
    /// clerk's submit and the hop are a request each.
    const ONE_HOP: (f64, f64, f64) = (6.0, 2.0, 2.0);
    /// The same with one signature over a batch of receipts (amortised to nothing), which the
    /// receiver verifies once a batch: the document's four verifications and the requests.
    const ONE_HOP_BATCHED: (f64, f64, f64) = (4.0, 0.0, 2.0);
    /// Four hops: 18 verifications and 5 signatures counted (the delivery receipt and the hop
    /// receipts checked on their way), the clerk's submit and four hops.
    const FOUR_HOPS: (f64, f64, f64) = (18.0, 5.0, 5.0);

    fn new(limits: &HopLimits) -> DesignWork {
        DesignWork { crypto: limits.crypto, request_ms: ms(limits.requests[0].cpu_per_request) }
    }

    /// CPU ms of (verifications, signatures, requests).
    fn cpu_ms(&self, (verifications, signatures, requests): (f64, f64, f64)) -> f64 {
        self.crypto.cpu_ms(verifications, signatures) + requests * self.request_ms
    }

    /// The documents per second `cpu_ms` of work per document allows on every core.
    fn rate(cpu_ms: f64) -> f64 {
        cores() as f64 * 1e3 / cpu_ms
    }

    fn one_hop_bounds(&self, figures: &mut Figures, crypto: f64) {
        let now = self.cpu_ms(Self::ONE_HOP);
        let batched = self.cpu_ms(Self::ONE_HOP_BATCHED);
        let (now_rate, batched_rate) = (Self::rate(now), Self::rate(batched));
        figures.note(&format!(
            "bound by the design's own work ({now:.3} ms: 6 verifications, 2 signatures, 2 raw requests): {} docs/s = {:.2} of the crypto limit; with one signature per batch of receipts ({batched:.3} ms): {} = {:.2}",
            human(now_rate),
            now_rate / crypto,
            human(batched_rate),
            batched_rate / crypto
        ));
        figures.record("one_hop_design_bound_docs_per_s", now_rate, "docs/s");
        figures.record("one_hop_design_bound_ratio", now_rate / crypto, "ratio");
        figures.record("one_hop_batched_receipts_bound_docs_per_s", batched_rate, "docs/s");
        figures.record("one_hop_batched_receipts_bound_ratio", batched_rate / crypto, "ratio");
    }

    /// Four hops against one: the nodes share these cores, so the rates go as the inverse of
    /// the CPU per document. `one_hop_cpu_ms` is one hop's measured CPU per document.
    fn four_hop_bounds(&self, figures: &mut Figures, one_hop_cpu_ms: f64) {
        let four = self.cpu_ms(Self::FOUR_HOPS);
        let extra = four - self.cpu_ms(Self::ONE_HOP);
        let bound = one_hop_cpu_ms / (one_hop_cpu_ms + extra);
        figures.note(&format!(
            "bound by the design's own work ({four:.3} ms: 18 verifications, 5 signatures, 5 raw requests): {} docs/s; one hop's measured {one_hop_cpu_ms:.2} ms plus three more hops' {extra:.3} ms: at most {bound:.2} x one hop",
            human(Self::rate(four))
        ));
        figures.record("four_hop_design_bound_docs_per_s", Self::rate(four), "docs/s");
        figures.record("four_hop_vs_one_hop_bound_ratio", bound, "ratio");
    }
}

/// Only the hops and the limits they are measured against (`bench --only hops`): for working
/// on the pipeline (and profiling it) without the attachments and verification.
pub fn hops_only(figures: &mut Figures, quick: bool) {
    let sizes = if quick { QUICK } else { FULL };
    let rt = network::runtime();
    figures.section("limits: the machine, measured in this run");
    let crypto = pki::crypto_limit(figures);
    rt.block_on(async {
        let requests = request_limits(figures, &sizes).await;
        let sqlite = network::raw_sqlite(sizes.commits).await;
        figures.limit("raw_sqlite_inserts_per_s", "raw SQLite durable insert, 1 row per commit", sqlite, "rows/s");
        figures.section("lienthong");
        hops(figures, &sizes, &HopLimits { crypto, requests, sqlite }).await;
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
    let crypto = pki::crypto_limit(figures);
    figures.section("offline verification");
    documents::verify_cli(figures, sizes.many_bundles, sizes.bundles, crypto.verify_per_s);
}

/// The median transfer of `runs` (by end-to-end time) and the highest peak memory seen.
///
/// Besides raw quinn (the limit), each rate is also set against the bound durability
/// puts on it on this machine: a node answers for a document only once its attachment is
/// written and synced, so one hop cannot beat the slower of raw quinn and the disk, and the
/// next node starts only once the first has answered, so the two hops of "end to end" take
/// their times in turn: at best half of that.
///
/// For large transfers, also the bound the cores put on it: the processes share this
/// machine's cores, and an attachment end to end is two QUIC transfers, each costing at least
/// what raw quinn's costs (`bulk.cpu_s_per_gib`).
fn attachment_figures(figures: &mut Figures, label: &str, runs: &mut [Transfer], raw_bulk: Bulk, disk: f64) {
    let bulk = raw_bulk.mb_per_s;
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
    // Even if every part overlapped on every core, the cores give at most this many GiB/s.
    let on_cores = |cpu_s_per_gib: f64| cores() as f64 / cpu_s_per_gib * (1u64 << 30) as f64 / 1e6;
    let measured = on_cores(cli_cpu + sender_cpu + receiver_cpu);
    let two_transfers = on_cores(2.0 * raw_bulk.cpu_s_per_gib);
    figures.note(&format!(
        "bound by the cores: at this CPU per GiB {measured:.0} MB/s ({:.2} of raw quinn); two transfers at raw quinn's {:.2} s per GiB alone, {two_transfers:.0} MB/s ({:.2})",
        measured / bulk,
        2.0 * raw_bulk.cpu_s_per_gib,
        two_transfers / bulk,
    ));
    figures.record(&format!("attachment_{label}_cpu_bound_mb_per_s"), measured, "MB/s");
    figures.record(&format!("attachment_{label}_two_raw_transfers_cpu_bound_mb_per_s"), two_transfers, "MB/s");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
