//! `lienthong demo`: the Quảng Ninh network on this machine, in one command. It builds the
//! demo hierarchy's certificates, starts every node as a real `lienthong-node` process on
//! loopback with SQLite, sends a signed document from a commune to another commune and to the
//! Government Office, has the recipients accept and complete it, and prints the track and the
//! provenance report. It stops the network afterwards, or leaves it running with `--keep`.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ::demo::{DemoPki, NodeOptions, Topology};
use anyhow::{Context, bail};
use clap::Args;
use lienthong_protocol::clerk_client::ClerkClient;
use pki::document::validation::{PoeEvidence, verify_bundle};
use pki::document::{Attachment, Business, DocumentKind, Envelope, Manifest, ReceiptKind, StatusCode, Urgency};
use pki::{AgencyCode, Profile as CertProfile};
use unicode_normalization::UnicodeNormalization;

use crate::outln;
use crate::profile::{Profile, Profiles};
use crate::timefmt::{human, now, today_vietnam};

/// The passphrase of the demo officials' keys (they are encrypted, as real ones are).
pub(crate) const DEMO_PASSPHRASE: &str = "demo-passphrase";

/// Arguments of `lienthong demo`.
#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Directory for the network's files (default: a new directory under the system's temp).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Leave the network running and print how to talk to it.
    #[arg(long)]
    keep: bool,
    /// quang-ninh-2024 (four levels, as before July 2025) or quang-ninh-2025 (no districts).
    #[arg(long, default_value = "quang-ninh-2024", value_parser = ["quang-ninh-2024", "quang-ninh-2025"])]
    topology: String,
    /// Stop a network left running by `lienthong demo --keep --dir DIR`.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["dir", "keep"])]
    stop: Option<PathBuf>,
}

/// A short, ASCII name for an agency's profile: "Ủy ban nhân dân xã Phong Dụ" → "phong-du".
pub(crate) fn slug(name: &str) -> String {
    let ascii: String = place(name)
        .nfd()
        .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
        .map(|c| match c {
            'đ' | 'Đ' => 'd',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    ascii.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join("-")
}

/// The place in an agency's name: "Ủy ban nhân dân xã Phong Dụ" → "Phong Dụ".
fn place(name: &str) -> &str {
    let mut rest = name.trim();
    for prefix in ["Ủy ban nhân dân ", "Uỷ ban nhân dân "] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    for level in ["thành phố ", "đặc khu ", "tỉnh ", "huyện ", "xã ", "phường ", "thị trấn "] {
        rest = rest.strip_prefix(level).unwrap_or(rest);
    }
    rest
}

fn node_binary() -> PathBuf {
    let sibling = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join("lienthong-node")));
    match sibling {
        Some(p) if p.exists() => p,
        _ => PathBuf::from("lienthong-node"),
    }
}

/// A free loopback TCP port per agency, for the nodes' web faces.
fn free_web_addresses(codes: &[AgencyCode]) -> anyhow::Result<BTreeMap<AgencyCode, SocketAddr>> {
    let mut out = BTreeMap::new();
    let mut held = Vec::new();
    for c in codes {
        let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback TCP port")?;
        out.insert(*c, l.local_addr()?);
        held.push(l);
    }
    Ok(out)
}

/// Turns on `code`'s web face at `addr`: an operator certificate for its console
/// (`operator.chain.pem`, `operator.key.pem`) and the `[http]` section.
fn enable_web(dir: &Path, code: &AgencyCode, name: &str, pki: &mut DemoPki, addr: SocketAddr) -> anyhow::Result<()> {
    let nd = dir.join(code.to_string());
    let operator = pki.issue_operator(code, &format!("Quản trị viên {name}"))?;
    let chain: String = operator.chain.iter().map(pki::Certificate::to_pem).collect();
    std::fs::write(nd.join("operator.chain.pem"), chain)?;
    crate::files::create_new(&nd.join("operator.key.pem"), operator.key.to_pem().as_bytes(), true)?;
    let config = nd.join("node.toml");
    let mut text = std::fs::read_to_string(&config).with_context(|| format!("cannot read {}", config.display()))?;
    text.push_str(&format!(
        "
# The web face: verifier, operator console, metrics, health.
[http]
listen = \"{addr}\"
operators = [\"operator.chain.pem\"]
"
    ));
    std::fs::write(&config, text).with_context(|| format!("cannot write {}", config.display()))?;
    Ok(())
}

fn free_addresses(codes: &[AgencyCode]) -> anyhow::Result<BTreeMap<AgencyCode, SocketAddr>> {
    // Bind, note the port, release: a race with another program is possible but harmless here
    // (that node would fail to start and the demo would say so).
    let mut out = BTreeMap::new();
    let mut held = Vec::new();
    for c in codes {
        let s = UdpSocket::bind("127.0.0.1:0").context("cannot bind a loopback UDP port")?;
        out.insert(*c, s.local_addr()?);
        held.push(s);
    }
    Ok(out)
}

fn stop_processes(children: &mut [(AgencyCode, Child)]) {
    for (_, child) in children.iter() {
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    }
    for (code, child) in children.iter_mut() {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    eprintln!("node {code} did not stop in 15 s; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
    }
}

/// `lienthong demo --stop DIR`.
fn stop(dir: &Path) -> anyhow::Result<()> {
    let pids = std::fs::read_to_string(dir.join("pids.txt"))
        .with_context(|| format!("{} holds no running demo (no pids.txt)", dir.display()))?;
    // Signal every node first (they shut down in parallel), then wait for each to be gone:
    // "stopped" is said only of a process that has exited.
    let mut signalled = Vec::new();
    for line in pids.lines() {
        let Some((code, pid)) = line.split_once(' ') else { continue };
        if Command::new("kill").args(["-TERM", pid]).stderr(Stdio::null()).status().is_ok_and(|s| s.success()) {
            signalled.push((code.to_owned(), pid.to_owned()));
        } else {
            outln!("{code} (pid {pid}) was not running")?;
        }
    }
    let mut stopped = 0;
    let mut still = Vec::new();
    for (code, pid) in &signalled {
        if wait_gone(pid, Duration::from_secs(20)) {
            outln!("stopped {code} (pid {pid})")?;
            stopped += 1;
        } else {
            still.push(format!("{code} (pid {pid})"));
        }
    }
    if !still.is_empty() {
        bail!(
            "{} did not exit within 20 s of SIGTERM; see their node.log in {}, or end them with kill -KILL",
            still.join(", "),
            dir.display()
        );
    }
    std::fs::remove_file(dir.join("pids.txt"))?;
    outln!("{stopped} node(s) stopped; their files stay in {}", dir.display())?;
    Ok(())
}

/// Waits until process `pid` no longer exists (not a child of this process: `kill -0`
/// asks), at most `limit`. A process that is gone, or was never there, counts as gone.
fn wait_gone(pid: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let alive = Command::new("kill").args(["-0", pid]).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
            && !is_zombie(pid);
        if !alive {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An exited process not yet reaped by its parent (state Z) has stopped all the same.
fn is_zombie(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Who sends to whom in each topology.
fn scenario(topology: &str) -> (&'static str, [&'static str; 2]) {
    match topology {
        "quang-ninh-2025" => ("000.00.61.H49", ["000.00.63.H49", "000.00.00.G22"]),
        _ => ("000.01.41.H49", ["000.01.42.H49", "000.00.00.G22"]),
    }
}

/// The demo's transparency logs: a checkpoint every second (so the demo can show the
/// proofs a moment after delivery), and the top node's log co-signed by its children, as the
/// national hub's is by the level-1 nodes it names.
fn witness_the_top(dir: &Path, code: &AgencyCode, topology: &Topology) -> anyhow::Result<()> {
    let mut section = String::from("\n[log]\ncheckpoint_interval = \"1s\"\n");
    if topology.parent(code).is_none() {
        let children: Vec<String> = topology.children(code).iter().map(|c| format!("\"{c}\"")).collect();
        section.push_str(&format!("witnesses = [{}]\n", children.join(", ")));
    }
    let file = dir.join(code.to_string()).join("node.toml");
    let mut config = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    config.push_str(&section);
    std::fs::write(&file, config).with_context(|| format!("cannot write {}", file.display()))
}

/// The nodes a document passes from `from` to `to` in the hierarchy: up to their nearest
/// common ancestor, then down.
fn path(topology: &Topology, from: &AgencyCode, to: &AgencyCode) -> Vec<AgencyCode> {
    let up = |start: &AgencyCode| {
        let mut line = vec![*start];
        while let Some(p) = line.last().and_then(|c| topology.parent(c)) {
            line.push(p);
        }
        line
    };
    let (a, b) = (up(from), up(to));
    let Some(meet) = a.iter().position(|c| b.contains(c)) else { return Vec::new() };
    let down = b.iter().position(|c| *c == a[meet]).unwrap_or(0);
    let mut nodes = a[..=meet].to_vec();
    nodes.extend(b[..down].iter().rev());
    nodes
}

/// `lienthong demo`.
pub(crate) fn run(a: DemoArgs) -> anyhow::Result<()> {
    if let Some(dir) = &a.stop {
        return stop(dir);
    }
    let started = Instant::now();
    let text = match a.topology.as_str() {
        "quang-ninh-2025" => ::demo::QUANG_NINH_2025,
        _ => ::demo::QUANG_NINH_2024,
    };
    let topology = Topology::parse(text).map_err(anyhow::Error::msg)?;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("lienthong-demo-{}", std::process::id())),
    };
    if dir.join("pids.txt").exists() {
        bail!("{} holds a running demo; stop it with `lienthong demo --stop {}`", dir.display(), dir.display());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    outln!("lienthong demo — the {} network in {}", a.topology, dir.display())?;

    // 1. Certificates for every agency: a national root, a CA per province and district, and
    //    node, seal, clerk and chairman certificates.
    let mut pki = DemoPki::build(&topology, now())?;
    let crls = pki.crls(now())?;
    ::demo::write_shared(&dir, &pki, &crls)?;
    let addrs = free_addresses(&topology.codes())?;
    let options =
        NodeOptions { database: None, crl_file: true, extra: "[retry]\ninitial = \"200ms\"\nmax = \"5s\"\n".into() };
    let web = free_web_addresses(&topology.codes())?;
    for code in topology.codes() {
        ::demo::write_node(&dir, &code, &topology, &pki, &addrs, &options, DEMO_PASSPHRASE.as_bytes())?;
        enable_web(&dir, &code, &topology.name(&code), &mut pki, web[&code])?;
        witness_the_top(&dir, &code, &topology)?;
    }
    outln!(
        "  certificates: a national root, {} CAs, and node, seal, clerk and chairman certificates for {} agencies",
        pki.cas.len(),
        topology.codes().len()
    )?;

    // 2. Profiles, so the clerk commands work against this network.
    let mut profiles = Profiles::default();
    for code in topology.codes() {
        let nd = dir.join(code.to_string());
        profiles.profiles.insert(
            slug(&topology.name(&code)),
            Profile {
                agency: code.to_string(),
                node: addrs[&code].to_string(),
                anchor: dir.join("root.pem"),
                clerk_cert: nd.join("clerk.chain.pem"),
                clerk_key: nd.join("clerk.key.pem"),
                seal_cert: Some(nd.join("seal.chain.pem")),
                seal_key: Some(nd.join("seal.key.pem")),
                person_cert: Some(nd.join("person.chain.pem")),
                person_key: Some(nd.join("person.key.pem")),
            },
        );
    }
    let config_dir = dir.join("config");
    std::fs::create_dir_all(&config_dir).with_context(|| format!("cannot create {}", config_dir.display()))?;
    let profiles_file = config_dir.join("profiles.toml");
    std::fs::write(&profiles_file, toml::to_string_pretty(&profiles)?)
        .with_context(|| format!("cannot write {}", profiles_file.display()))?;

    // 3. Nodes, as processes.
    let binary = node_binary();
    let mut children: Vec<(AgencyCode, Child)> = Vec::new();
    let mut pids = String::new();
    for code in topology.codes() {
        let nd = dir.join(code.to_string());
        let log = std::fs::File::create(nd.join("node.log"))
            .with_context(|| format!("cannot write {}", nd.join("node.log").display()))?;
        let child = Command::new(&binary)
            .args(["run", "--config", "node.toml"])
            .current_dir(&nd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {} (build it with `cargo build --release`)", binary.display()))?;
        pids.push_str(&format!("{code} {}\n", child.id()));
        children.push((code, child));
    }
    std::fs::write(dir.join("pids.txt"), &pids).with_context(|| format!("cannot write {}/pids.txt", dir.display()))?;
    outln!("  nodes: {} lienthong-node processes on 127.0.0.1 (QUIC, mutual TLS, SQLite)", children.len())?;

    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(exchange(&dir, &topology, &mut pki, &addrs, &a.topology));
    if let Err(e) = result {
        stop_processes(&mut children);
        let _ = std::fs::remove_file(dir.join("pids.txt"));
        return Err(e.context(format!("the demo failed; node logs are in {}/*/node.log", dir.display())));
    }
    let (_, to) = scenario(&a.topology);
    if let Ok(receiver) = to[0].parse::<AgencyCode>() {
        let url = format!("https://{}", web[&receiver]);
        let nd = dir.join(receiver.to_string());
        outln!()?;
        outln!(
            "The web face of {} (every node has one; HTTPS with the node's certificate, which names an agency, not a host: browsers warn):",
            topology.name(&receiver)
        )?;
        outln!(
            "  verifier: {url}/verify   (upload the .ltd file above; or: curl -k --data-binary @FILE {url}/verify.json)"
        )?;
        outln!(
            "  console:  {url}/console  (operators only: client certificate {}, key {})",
            nd.join("operator.chain.pem").display(),
            nd.join("operator.key.pem").display()
        )?;
        outln!(
            "            for a browser: openssl pkcs12 -export -in operator.chain.pem -inkey operator.key.pem -out operator.p12, then import operator.p12"
        )?;
        outln!("  metrics:  {url}/metrics   health: {url}/healthz, {url}/readyz")?;
        if !a.keep {
            outln!("  (these answer while the network runs: start the demo with --keep to use them)")?;
        }
    }
    if a.keep {
        outln!()?;
        outln!("The network is still running. Talk to it as any agency's clerk:")?;
        outln!("  export LIENTHONG_CONFIG_DIR={}", config_dir.display())?;
        outln!("  lienthong profile list")?;
        // The hints name this topology's own agencies, so each profile named exists.
        let (from, to) = scenario(&a.topology);
        let name_of = |code: &str| code.parse::<AgencyCode>().map(|c| topology.name(&c)).unwrap_or_default();
        outln!("  lienthong --profile {} inbox", slug(&name_of(to[0])))?;
        outln!(
            "  lienthong --profile {} send --to 000.00.00.G22 --number 124 --notation UBND-VP --place \"{}\" --subject \"Báo cáo tình hình\" --passphrase-env DEMO_PASS",
            slug(&name_of(from)),
            place(&name_of(from))
        )?;
        outln!("  (the chairmen's key passphrase is {DEMO_PASSPHRASE:?}: export DEMO_PASS={DEMO_PASSPHRASE})")?;
        outln!("Stop it with: lienthong demo --stop {}", dir.display())?;
        // The processes outlive this command.
        for (_, child) in children {
            std::mem::forget(child);
        }
    } else {
        stop_processes(&mut children);
        std::fs::remove_file(dir.join("pids.txt"))?;
        outln!()?;
        outln!("Network stopped. Every node's database, log and certificates stay in {}", dir.display())?;
    }
    outln!("Demo finished in {:.1} s.", started.elapsed().as_secs_f64())?;
    Ok(())
}

async fn connect(
    dir: &Path,
    pki: &DemoPki,
    addrs: &BTreeMap<AgencyCode, SocketAddr>,
    code: &AgencyCode,
) -> anyhow::Result<ClerkClient> {
    let identity = pki.identity(code, CertProfile::Clerk).context("clerk identity")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match ClerkClient::connect(addrs[code], *code, &identity, vec![pki.root.cert.clone()]).await {
            Ok(c) if c.health().await.is_ok() => return Ok(c),
            result => {
                if Instant::now() > deadline {
                    let reason = result.err().map(|e| e.to_string()).unwrap_or_else(|| "no health answer".into());
                    bail!(
                        "node {code} did not come up within 30 s ({reason}); see {}",
                        dir.join(code.to_string()).join("node.log").display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn exchange(
    dir: &Path,
    topology: &Topology,
    pki: &mut DemoPki,
    addrs: &BTreeMap<AgencyCode, SocketAddr>,
    name: &str,
) -> anyhow::Result<()> {
    let (from, to) = scenario(name);
    let from: AgencyCode = from.parse()?;
    let to: Vec<AgencyCode> = to.iter().map(|c| c.parse()).collect::<Result<_, _>>()?;
    let mut clerks = BTreeMap::new();
    for code in topology.codes() {
        clerks.insert(code, connect(dir, pki, addrs, &code).await?);
    }
    outln!("  all {} nodes answer", clerks.len())?;

    // The chairman signs, the clerk seals, the node sends.
    let body = format!(
        "CÔNG VĂN SỐ 123/UBND-VP\n\n{} kính gửi {}.\n\nVề việc chủ động ứng phó với bão số 3 và mưa lũ trên địa bàn.\n",
        topology.name(&from),
        to.iter().map(|c| topology.name(c)).collect::<Vec<_>>().join(", ")
    )
    .into_bytes();
    let attachment = Attachment {
        name: "Công văn số 123.txt".into(),
        media_type: "text/plain".into(),
        size: body.len() as u64,
        sha256: pki::sha256(&body),
    };
    let place_name = place(&topology.name(&from)).to_owned();
    let manifest = Manifest {
        from,
        to: to.clone(),
        number: 123,
        notation: "UBND-VP".into(),
        place: place_name,
        date: today_vietnam(),
        kind: DocumentKind::Administrative,
        type_name: "Công văn".into(),
        subject: "Về việc chủ động ứng phó với bão số 3 và mưa lũ trên địa bàn".into(),
        signer_name: "Nguyễn Văn An".into(),
        signer_position: "Chủ tịch".into(),
        due: Some(today_vietnam() + time::Duration::days(7)),
        urgency: Urgency::Flash,
        steering: 0,
        business: Business::New,
        attachments: vec![attachment],
    }
    .normalized();
    let person = pki.identity(&from, CertProfile::Person).context("person identity")?;
    let seal = pki.identity(&from, CertProfile::Seal).context("seal identity")?;
    let t = now();
    let envelope = Envelope::sign_person(&manifest.to_cbor()?, &person.key, &person.chain, t)?.add_seal(
        &seal.key,
        &seal.chain,
        t,
    )?;
    let sent_at = Instant::now();
    let sender = &clerks[&from];
    let body_for_submit = body.clone();
    let (id, _) = sender
        .submit(envelope.as_bytes(), Vec::new(), move |_| Ok(std::io::Cursor::new(body_for_submit.clone())), |_| {})
        .await?;
    outln!()?;
    outln!("{} sends {id}", topology.name(&from))?;
    outln!("  signed by the chairman, Nguyễn Văn An, then sealed by {}", topology.name(&from))?;
    outln!("  to {}", to.iter().map(|c| format!("{} ({c})", topology.name(c))).collect::<Vec<_>>().join(" and "))?;

    for r in &to {
        let clerk = &clerks[r];
        let deadline = Instant::now() + Duration::from_secs(30);
        while !clerk.inbox(10).await?.iter().any(|e| e.document == id) {
            if Instant::now() > deadline {
                bail!("the document did not reach {r} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        outln!("  arrived at {} after {} ms, verified and stored", topology.name(r), sent_at.elapsed().as_millis())?;
    }
    for r in &to {
        clerks[r].post_status(&id, StatusCode::Accepted.code(), Some("Đã tiếp nhận".into())).await?;
        clerks[r].post_status(&id, StatusCode::Completed.code(), Some("Đã xử lý xong".into())).await?;
        outln!("  {} accepts it (03) and completes it (06)", topology.name(r))?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let track = sender.track(&id).await?;
        let done = to.iter().all(|r| {
            track.iter().any(|x| x.receipt.by == *r && x.receipt.kind == ReceiptKind::Status(StatusCode::Completed))
        });
        if done {
            break;
        }
        if Instant::now() > deadline {
            bail!("the statuses did not come back within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    outln!()?;
    outln!("Track of {id} at {} (every receipt is signed and kept by every node it passed):", topology.name(&from))?;
    let mut track = sender.track(&id).await?;
    // Same-second receipts: the hops first (in the order they came back), then the statuses.
    track.sort_by_key(|r| (r.receipt.at, r.receipt.kind != ReceiptKind::Hop));
    for r in &track {
        outln!("  {}  {}", human(r.receipt.at), crate::clerk_cmd::describe_named(r, &from, |c| topology.name(c)))?;
    }

    let receiver = to[0];
    let out = dir.join("received").join(slug(&topology.name(&receiver)));
    // Every node on the way logged the document; each log's next checkpoint is co-signed by
    // the node's parent within a second or two. The fetch gathers the proofs along the path.
    let along = path(topology, &from, &receiver);
    let origins: Vec<String> = along.iter().map(|c| pki::tlog::LogOrigin::first(*c).to_string()).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let bundle = loop {
        let bundle = crate::clerk_cmd::fetch_into(&clerks[&receiver], &id, true, &out).await?;
        let mut file = std::fs::File::open(&bundle)?;
        let carried = pki::document::Bundle::open(&mut file, pki::document::BundleLimits::default())?.log_proofs;
        let logs: Vec<String> = carried
            .iter()
            .filter_map(|p| pki::tlog::LogProof::from_bytes(p).ok())
            .map(|p| p.proof.checkpoint.checkpoint().origin.to_string())
            .collect();
        if origins.iter().all(|o| logs.contains(o)) || Instant::now() > deadline {
            break bundle;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The CAs publish their next CRLs after the delivery: issued after the receipts, they speak
    // for the time the receipts prove, and the report can be PASSED.
    let published = now();
    let mut fresh = vec![pki.root.crl(published, published + time::Duration::days(7))?];
    for ca in pki.cas.values_mut() {
        fresh.push(ca.crl(published, published + time::Duration::days(7))?);
    }
    let fresh_pem = fresh.iter().map(pki::Crl::to_pem).collect::<String>();
    std::fs::write(dir.join("crls-after.pem"), &fresh_pem)?;
    // The nodes poll `crls.pem` (every second in the demo): they take the new CRLs too, so
    // `show` and `fetch` at any node of a kept network carry them and can say PASSED.
    std::fs::write(dir.join("crls.pem"), &fresh_pem)?;
    let mut options = pki::document::validation::VerifyOptions::new(vec![pki.root.cert.clone()], now());
    options.crls = fresh;
    let report = verify_bundle(BufReader::new(std::fs::File::open(&bundle)?), &options)?;
    outln!()?;
    outln!("Provenance of the copy {} received ({}):", topology.name(&receiver), bundle.display())?;
    outln!()?;
    crate::report::print(&report)?;
    outln!()?;
    outln!("Logged along the way (an inclusion proof in each node's log, carried in the bundle):")?;
    for (code, origin) in along.iter().zip(&origins) {
        let proven: Vec<String> = report
            .proofs_of_existence
            .iter()
            .filter_map(|p| match &p.evidence {
                PoeEvidence::LogCheckpoint { log, leaf, tree_size, .. } if log == origin => Some(format!(
                    "entry #{leaf} in a checkpoint of {tree_size} entries, co-signed by {} at {}",
                    topology.name(&p.by),
                    human(p.time)
                )),
                _ => None,
            })
            .collect();
        let name = topology.name(code);
        match proven.as_slice() {
            [] => outln!("  {name}: no co-signed checkpoint holds it yet")?,
            proven => outln!("  {name}: {}", proven.join("; "))?,
        }
    }
    outln!()?;
    outln!(
        "Verify it yourself, offline: lienthong verify \"{}\" --anchor {} --crl {}",
        bundle.display(),
        dir.join("root.pem").display(),
        dir.join("crls-after.pem").display()
    )?;
    for (_, c) in clerks {
        c.close().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_short_ascii_names() {
        assert_eq!(slug("Ủy ban nhân dân xã Phong Dụ"), "phong-du");
        assert_eq!(slug("Ủy ban nhân dân huyện Ba Chẽ"), "ba-che");
        assert_eq!(slug("Văn phòng Chính phủ"), "van-phong-chinh-phu");
        assert_eq!(slug("Ủy ban nhân dân xã Đạp Thanh"), "dap-thanh");
        assert_eq!(slug("Ủy ban nhân dân đặc khu Vân Đồn"), "van-don");
        assert_eq!(place("Ủy ban nhân dân tỉnh Quảng Ninh"), "Quảng Ninh");
    }
}
