//! The daemon's configuration, `check` and logs as operators of mature tools expect them
//! (issue 14, second round; issue 11 item 4): every problem of a file at once with its key and
//! line; sizes and durations as people write them; `lienthong-node check` finding what breaks
//! a node (a chain file without its CAs, a parent that is not above the agency, key files open
//! to others, its own certificates revoked, expired or expiring, CRLs missing); the running
//! node's health read-out alerting on what changes at runtime; logs without colours or Rust
//! debug structures. Each through the real `lienthong-node` binary.

use std::path::Path;
use std::time::Duration;

use harness::identities::issuer_of;
use harness::network::{NetOptions, TestNet, only, topology, wait_for};
use harness::{Run, bin};
use pki::{AgencyCode, Certificate, PrivateKey, Profile, RevocationReason};
use time::OffsetDateTime;

const HUB: &str = "000.00.00.G22";
const PROVINCE: &str = "000.00.00.H49";
const TIEN_YEN: &str = "000.00.41.H49";
const PHONG_DU: &str = "000.01.41.H49";
const BA_CHE: &str = "000.00.42.H49";

fn code(c: &str) -> AgencyCode {
    c.parse().unwrap()
}

/// `lienthong-node ARGS` in `dir`.
fn node(dir: &Path, args: &[&str]) -> Run {
    let out = std::process::Command::new(bin("lienthong-node"))
        .args(args)
        .current_dir(dir)
        .env_remove("LIENTHONG_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `lienthong-node check --config node.toml` in the node directory of `agency`.
fn check(net: &TestNet, agency: &str) -> Run {
    let run = node(&net.node_dir(&code(agency)), &["check", "--config", "node.toml"]);
    println!(
        "$ lienthong-node check --config node.toml   # {agency}, exit {}\n{}{}",
        run.status, run.stdout, run.stderr
    );
    run
}

/// The demo network's files for the hub, the province, a district and a commune (CRL files
/// from every CA included), no node started.
fn files() -> TestNet {
    TestNet::prepare(only(&topology("quang-ninh-2024"), &[HUB, PROVINCE, TIEN_YEN, PHONG_DU]), NetOptions::default())
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Replaces `agency`'s node certificate chain and key with `chain` and `key`.
fn install_node_identity(net: &TestNet, agency: &str, chain: &[Certificate], key: &PrivateKey) {
    let dir = net.node_dir(&code(agency));
    std::fs::write(dir.join("node.chain.pem"), chain.iter().map(Certificate::to_pem).collect::<String>()).unwrap();
    write_private(&dir.join("node.key.pem"), &key.to_pem());
}

/// A node certificate for `agency` from its genuine CA, valid until `not_after`.
fn node_identity_until(net: &mut TestNet, agency: &str, not_after: OffsetDateTime) -> (Vec<Certificate>, PrivateKey) {
    let agency = code(agency);
    let ca = net.pki.cas.get_mut(&issuer_of(&net.pki, &agency)).unwrap();
    let saved = ca.not_after;
    ca.not_after = not_after;
    let issued = ca.issue(Profile::Node, agency, "Ủy ban nhân dân xã Phong Dụ (ngắn hạn)").unwrap();
    ca.not_after = saved;
    let chain = std::iter::once(issued.cert).chain(net.pki.agencies[&agency].above.iter().cloned()).collect();
    (chain, issued.key)
}

/// Revokes `agency`'s node certificate (key compromise, a minute ago) in its CA.
fn revoke_node_certificate(net: &mut TestNet, agency: &str, now: OffsetDateTime) -> String {
    let agency = code(agency);
    let serial = net.pki.agencies[&agency].node.cert.serial.clone();
    let ca = net.pki.cas.get_mut(&issuer_of(&net.pki, &agency)).unwrap();
    ca.revoke(&serial, now - time::Duration::minutes(1), RevocationReason::KeyCompromise);
    net.pki.agencies[&agency].node.cert.id().to_string()
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn every_problem_of_a_file_comes_at_once_with_its_key_path_and_line() {
    let net = files();
    let dir = net.node_dir(&code(PHONG_DU));
    // Lines numbered as the expected output names them.
    let text = [
        "[node]",                                 // 1
        "agency = \"000.01.41.H49\"",             // 2
        "name = \"Ủy ban nhân dân xã Phong Dụ\"", // 3
        "listn = \"127.0.0.1:0\"",                // 4: a typo
        "data_dir = \"data\"",                    // 5
        "",                                       // 6
        "[tls]",                                  // 7
        "certificate = \"node.chain.pem\"",       // 8
        "key = \"node.key.pem\"",                 // 9
        "trust_anchor = \"../root.pem\"",         // 10
        "",                                       // 11
        "[seal]",                                 // 12
        "certificate = \"seal.chain.pem\"",       // 13
        "key = \"seal.key.pem\"",                 // 14
        "pasphrase_file = \"seal.pass\"",         // 15: a typo
        "",                                       // 16
        "[parent]",                               // 17
        "agency = \"000.00.42.H49\"",             // 18: another district, not Phong Dụ's
        "address = 7400",                         // 19
        "",                                       // 20
        "[limits]",                               // 21
        "max_connections = \"thirty\"",           // 22
        "max_frame_bytes = \"256M\"",             // 23
        "idle_timeout = 60",                      // 24
        "keep_alive = \"90s\"",                   // 25: longer than the default idle_timeout, but that key is wrong
        "max_handshakes = -5",                    // 26
        "min_transfer_rate = \"fast\"",           // 27
        "",                                       // 28
        "[retry]",                                // 29
        "jitter = 2.0",                           // 30
        "",                                       // 31
        "[helth]",                                // 32
        "backlog_age = \"5m\"",                   // 33
    ]
    .join("\n");
    std::fs::write(dir.join("bad.toml"), text).unwrap();
    let run = node(&dir, &["check", "--config", "bad.toml"]);
    println!("$ lienthong-node check --config bad.toml   # exit {}\n{}", run.status, run.stderr);
    assert_eq!(run.status, 1);
    assert_eq!(
        run.stderr.trim_end(),
        [
            "error: bad.toml has 11 problems:",
            "  bad.toml:4: node.listn: unknown key; did you mean `listen`?",
            "  bad.toml:15: seal.pasphrase_file: unknown key; did you mean `passphrase_file`?",
            "  bad.toml:18: parent.agency: 000.00.42.H49 is not above 000.01.41.H49 in the code tree; the parent of 000.01.41.H49 is one of the agencies above it: 000.00.41.H49, 000.00.00.H49",
            "  bad.toml:19: parent.address: 7400 is not an address like \"10.0.0.5:7400\", or a list of them",
            "  bad.toml:22: limits.max_connections: \"thirty\" is not a whole number",
            "  bad.toml:23: limits.max_frame_bytes: \"256M\" is ambiguous: write \"256MiB\" (1024-based) or \"256MB\" (1000-based)",
            "  bad.toml:24: limits.idle_timeout: 60 is not a duration with its unit, like \"30s\", \"10m\" or \"7d\"",
            "  bad.toml:26: limits.max_handshakes: -5 is out of range: 0 or more",
            "  bad.toml:27: limits.min_transfer_rate: \"fast\" is not a rate like \"256KiB/s\" or a whole number of bytes per second",
            "  bad.toml:30: retry.jitter: must be between 0 and 1",
            "  bad.toml:32: helth: unknown key; did you mean `health`?",
        ]
        .join("\n")
    );
    // `run` refuses the same file the same way, and creates nothing.
    let started = node(&dir, &["run", "--config", "bad.toml"]);
    assert_eq!((started.status, started.stderr), (1, run.stderr));
    assert!(!dir.join("data").exists(), "a refused configuration creates no state");
    // Not TOML at all: the syntax error with its line.
    std::fs::write(dir.join("broken.toml"), "[node]\nagency = \"000.01.41.H49\nname = \"x\"\n").unwrap();
    let broken = node(&dir, &["check", "--config", "broken.toml"]);
    println!("$ lienthong-node check --config broken.toml   # exit {}\n{}", broken.status, broken.stderr);
    assert_eq!(broken.status, 1);
    assert!(broken.stderr.contains("  broken.toml:2: not valid TOML"), "{}", broken.stderr);
}

#[test]
fn sizes_and_durations_are_read_as_people_write_them() {
    let net = files();
    let dir = net.node_dir(&code(PHONG_DU));
    let config = dir.join("node.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n[limits]\nmax_frame_bytes = \"4 MiB\"\nmax_attachment_bytes = \"1GB\"\nmax_document_bytes = 2147483648\nreceive_window = \"16MiB\"\nframe_budget_per_connection = \"1.5 GiB\"\nframe_budget_per_certificate = \"2GiB\"\nframe_budget_total = \"2GiB\"\nmin_transfer_rate = \"64KiB/s\"\nmin_free_bytes = \"512 mib\"\nidle_timeout = \"2m\"\nkeep_alive = \"20s\"\nrequest_timeout = \"1m 30s\"\n\n[health]\nexpiry_warning = \"2weeks\"\n"
        ),
    )
    .unwrap();
    let run = check(&net, PHONG_DU);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert!(run.stdout.contains("node.toml is valid: node 000.01.41.H49"), "{}", run.stdout);
    // What the node runs on is what was meant.
    let limits = node::config::Config::load(&config).unwrap().limits;
    assert_eq!(
        (limits.max_frame_bytes, limits.max_attachment_bytes, limits.max_document_bytes, limits.receive_window),
        (4 << 20, 1_000_000_000, 2 << 30, 16 << 20)
    );
    assert_eq!(
        (limits.frame_budget_per_connection, limits.min_transfer_rate, limits.min_free_bytes),
        (3 << 29, 64 << 10, 512 << 20)
    );
    assert_eq!((limits.idle_timeout, limits.request_timeout), (Duration::from_secs(120), Duration::from_secs(90)));
}

#[test]
fn check_passes_every_level_including_the_hub_above_the_provinces() {
    let net = files();
    // The hub has level-1 children and no parent; the province's parent is the hub, which is
    // not above it by code: both as the design wants. Districts and communes follow the codes.
    for agency in [HUB, PROVINCE, TIEN_YEN, PHONG_DU] {
        let run = check(&net, agency);
        assert_eq!(run.status, 0, "{agency}: {}", run.stderr);
        assert_eq!(run.stderr, "", "{agency}: no warnings for a complete node");
        assert!(run.stdout.contains("node.toml is valid: node"), "{}", run.stdout);
    }
}

#[test]
fn check_refuses_a_leaf_only_chain_a_stranger_as_parent_an_open_key_and_another_agencys_seal() {
    let net = files();
    let dir = net.node_dir(&code(PHONG_DU));
    let line_of = |key_line: &str| {
        let text = std::fs::read_to_string(dir.join("node.toml")).unwrap();
        text.lines().position(|l| l.starts_with(key_line)).unwrap() + 1
    };

    // The node certificate without the CAs above it: a neighbour that has not learnt those CAs
    // cannot validate it ("UnknownIssuer").
    let chain = std::fs::read_to_string(dir.join("node.chain.pem")).unwrap();
    let leaf = Certificate::from_pem_all(&chain).unwrap().remove(0);
    std::fs::write(dir.join("node.chain.pem"), leaf.to_pem()).unwrap();
    let run = check(&net, PHONG_DU);
    assert_eq!(run.status, 1);
    let expected = format!(
        "  node.toml:{}: tls.certificate: node.chain.pem holds only the certificate {}, issued by \"{}\", which is not the national root: the CA certificates between them are missing",
        line_of("certificate = \"node.chain.pem\""),
        leaf.id(),
        leaf.issuer
    );
    assert!(run.stderr.contains(&expected), "{expected}\nnot in:\n{}", run.stderr);
    std::fs::write(dir.join("node.chain.pem"), &chain).unwrap();

    // A parent that is not above the commune: another district.
    let config = dir.join("node.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    edit(&config, &format!("[parent]\nagency = \"{TIEN_YEN}\""), &format!("[parent]\nagency = \"{BA_CHE}\""));
    let run = check(&net, PHONG_DU);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.contains(&format!(
            "node.toml:{}: parent.agency: {BA_CHE} is not above {PHONG_DU} in the code tree; the parent of {PHONG_DU} is one of the agencies above it: {TIEN_YEN}, {PROVINCE}",
            line_of(&format!("agency = \"{BA_CHE}\""))
        )),
        "{}",
        run.stderr
    );
    // Nor the hub, for a commune: only level-1 nodes have the hub as parent.
    edit(&config, &format!("agency = \"{BA_CHE}\""), &format!("agency = \"{HUB}\""));
    assert!(check(&net, PHONG_DU).stderr.contains(&format!("parent.agency: {HUB} is not above {PHONG_DU}")));
    std::fs::write(&config, &original).unwrap();

    // The seal key readable by every user of the machine.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("seal.key.pem"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = check(&net, PHONG_DU);
    assert_eq!(run.status, 1);
    let key = dir.join("seal.key.pem");
    assert!(
        run.stderr.contains(&format!(
            "node.toml:{}: seal.key: seal.key.pem is open to its group and all users (mode 0644); a private key must be readable by its owner only: chmod 600 seal.key.pem",
            line_of("key = \"seal.key.pem\"")
        )),
        "{}",
        run.stderr
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(check(&net, PHONG_DU).stderr.contains("is open to its group (mode 0640)"), "group-readable is open too");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // The district's seal in the commune's files.
    let district = net.node_dir(&code(TIEN_YEN));
    for f in ["seal.chain.pem", "seal.key.pem"] {
        std::fs::copy(district.join(f), dir.join(f)).unwrap();
    }
    let run = check(&net, PHONG_DU);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.contains(&format!(
            "seal.certificate: seal.chain.pem is for agency {TIEN_YEN}, but node.agency is {PHONG_DU}"
        )),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_the_node_revoked_by_a_crl_in_its_files_or_only_in_its_database() {
    let mut net = files();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    // The CRLs as they were an hour earlier, before the revocation.
    let older = net.pki.crls(now - time::Duration::hours(1)).unwrap();
    let revoked = revoke_node_certificate(&mut net, PHONG_DU, now);
    net.publish_crls();

    // The CRL naming it is in crl.files.
    let run = check(&net, PHONG_DU);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.contains(&format!("tls.certificate: the node certificate {revoked} was revoked at ")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("(keyCompromise): neighbours refuse the node certificate now; have a new one issued (lienthong pki issue --cert-profile node) and restart the node"), "{}", run.stderr);

    // The node has run and kept that CRL in its database; the file now holds only the older
    // CRLs (a parent pushed the new one, say). `check` still finds it.
    net.start_node(&code(PHONG_DU)).await;
    net.stop_node(&code(PHONG_DU)).await;
    std::fs::write(net.dir.path().join("crls.pem"), older.iter().map(pki::Crl::to_pem).collect::<String>()).unwrap();
    let run = check(&net, PHONG_DU);
    assert_eq!(run.status, 1, "the revocation is in the database: {}", run.stdout);
    assert!(run.stderr.contains(&format!("the node certificate {revoked} was revoked at ")), "{}", run.stderr);
}

#[test]
fn check_fails_an_expired_certificate_and_warns_of_one_expiring_and_of_missing_crls() {
    let mut net = files();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let (chain, key) = node_identity_until(&mut net, PHONG_DU, now - time::Duration::minutes(1));
    install_node_identity(&net, PHONG_DU, &chain, &key);
    let run = check(&net, PHONG_DU);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.contains(&format!("tls.certificate: the node certificate {} expired at ", chain[0].id())),
        "{}",
        run.stderr
    );

    // Ten days left, with the default warning at 30 days: valid, with a warning.
    let (chain, key) = node_identity_until(&mut net, PHONG_DU, now + time::Duration::days(10));
    install_node_identity(&net, PHONG_DU, &chain, &key);
    let run = check(&net, PHONG_DU);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("warning: node.toml:")
            && run.stderr.contains(": tls.certificate: the node certificate expires in 9 days ("),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("node.toml is valid (1 warning above): node 000.01.41.H49"), "{}", run.stdout);

    // No CRL files and no database: the node cannot tell whether it is revoked.
    let config = net.config_path(&code(PHONG_DU));
    edit(&config, "files = [\"../crls.pem\"]", "files = []");
    let run = check(&net, PHONG_DU);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let district_ca = &net.pki.cas[&code(TIEN_YEN)].cert.subject;
    assert!(
        run.stderr.contains(&format!(": crl.files: no CRL of \"{district_ca}\", which issued the node certificate and the seal certificate: this node cannot tell whether it is itself revoked")),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("warnings above"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_alerts_when_its_own_certificate_is_revoked() {
    harness::logging();
    let mut net =
        TestNet::start(only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]), NetOptions::default()).await;
    let clerk = net.clerk(PHONG_DU).await;
    let alerts = |json: String| -> Vec<String> {
        let health: serde_json::Value = serde_json::from_str(&json).unwrap();
        health["alerts"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect()
    };
    let before = alerts(clerk.health().await.unwrap());
    assert!(!before.iter().any(|a| a.starts_with("tls.certificate")), "{before:?}");
    // The district's CA revokes the commune's node certificate and publishes its CRL; the
    // commune's node reads it from crl.files (polled every second) without a restart.
    let revoked = revoke_node_certificate(&mut net, PHONG_DU, OffsetDateTime::now_utc());
    net.publish_crls();
    let expected = format!("tls.certificate: the node certificate {revoked} was revoked at ");
    wait_for("the revocation alert", Duration::from_secs(20), || async {
        alerts(clerk.health().await.unwrap()).iter().any(|a| a.starts_with(&expected))
    })
    .await;
    println!("alerts: {:#?}", alerts(clerk.health().await.unwrap()));
    clerk.close().await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_plain_text_or_json_lines_with_values_in_their_display_form() {
    let mut net =
        TestNet::prepare(only(&topology("quang-ninh-2024"), &[PROVINCE, TIEN_YEN, PHONG_DU]), NetOptions::default());
    // The commune and the province log text (stderr is a file, not a terminal), the district
    // JSON lines.
    let mut processes = Vec::new();
    for agency in [PROVINCE, PHONG_DU] {
        processes.push(net.spawn_process(&code(agency)));
    }
    net.release_socket(&code(TIEN_YEN));
    let district = net.node_dir(&code(TIEN_YEN));
    let json_log = std::fs::File::create(district.join("node.log")).unwrap();
    let mut json_node = std::process::Command::new(bin("lienthong-node"))
        .args(["--log-json", "run", "--config", "node.toml"])
        .current_dir(&district)
        .env("LIENTHONG_LOG", "info")
        .stderr(json_log)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let clerk = net.wait_ready(PHONG_DU).await;
    net.wait_ready(TIEN_YEN).await;
    let province = net.wait_ready(PROVINCE).await;
    // To the province and the district: the commune hands it to the district, which keeps
    // one copy and passes the other up.
    let doc = net.document(PHONG_DU, &[PROVINCE, TIEN_YEN], 1);
    doc.submit(&clerk).await.unwrap();
    wait_for("the document at the province", Duration::from_secs(30), || async {
        !province.inbox(10).await.unwrap().is_empty()
    })
    .await;
    let log_of = |agency: &str| std::fs::read_to_string(net.node_dir(&code(agency)).join("node.log")).unwrap();
    wait_for("the receipts back at the commune", Duration::from_secs(30), || async {
        log_of(PHONG_DU).matches("receipt taken").count() >= 2
    })
    .await;
    clerk.close().await;
    province.close().await;
    for p in &mut processes {
        p.kill();
    }
    let _ = json_node.kill();
    let _ = json_node.wait();

    let mut all = String::new();
    for agency in [PROVINCE, TIEN_YEN, PHONG_DU] {
        let log = log_of(agency);
        println!("--- {agency} node.log\n{log}");
        all.push_str(&log);
    }
    assert!(!all.contains('\u{1b}'), "no terminal escapes in a log file");
    for debug in ["AgencyCode(", "Neighbour(", "Some(", "None", "Status(", "Hop,", "Duration {"] {
        assert!(!all.contains(debug), "a Rust debug structure ({debug}) in the logs");
    }
    // The commune's text line names the next hop by its code.
    let taken = log_of(PHONG_DU).lines().find(|l| l.contains("document taken")).unwrap().to_owned();
    assert!(taken.contains(&format!("next_hops={TIEN_YEN}:2")), "{taken}");
    // Receipt kinds by name: the delivery receipts taken (hop receipts stay with the node they
    // were given to and are not "taken" as notices; the district's delivery receipt came with
    // its hop receipt, the province's as a notice from the district).
    assert!(log_of(PHONG_DU).contains("kind=01 arrived"), "receipt kinds by name");
    // The district's lines are JSON, its next hops "local:1, <province>:1" as one string.
    let json = log_of(TIEN_YEN);
    let lines: Vec<serde_json::Value> =
        json.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let taken = lines.iter().find(|l| l["fields"]["message"] == "document taken").unwrap();
    assert_eq!(taken["fields"]["next_hops"], format!("local:1, {PROVINCE}:1"), "{taken}");
    assert_eq!(taken["fields"]["peer"], PHONG_DU);
}

/// The node asks the kernel for `limits.udp_receive_buffer` on its QUIC socket (4 MiB unless
/// set; `0` leaves the system's default), and `check` warns when the kernel would give less.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_udp_receive_buffer_is_asked_for_and_a_kernel_that_gives_less_is_named() {
    use lienthong_protocol::udp;
    let (Some(max), Ok(default)) =
        (udp::receive_buffer_limit(), std::fs::read_to_string("/proc/sys/net/core/rmem_default"))
    else {
        return; // not Linux: nothing of this to read
    };
    let default: usize = default.trim().parse().unwrap();
    let mut net = files();
    let config_path = net.config_path(&code(PHONG_DU));
    let text = std::fs::read_to_string(&config_path).unwrap();
    // What a started node's socket has, read on a second handle of it.
    let buffer_of = async |limits: &str| {
        std::fs::write(&config_path, format!("{text}\n[limits]\n{limits}\n")).unwrap();
        let config = node::config::Config::load(&config_path).unwrap();
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let handle = socket.try_clone().unwrap();
        let running = node::Node::start(config, socket).await.unwrap();
        let reported = udp::receive_buffer(&handle).unwrap();
        running.shutdown(Duration::from_secs(5)).await;
        reported
    };
    // The default: 4 MiB, or the kernel's most if that is less (Linux reports twice what it
    // keeps for data).
    let asked = udp::RECEIVE_BUFFER.min(max);
    assert_eq!(buffer_of("").await, 2 * asked);
    assert_eq!(buffer_of("udp_receive_buffer = \"256KiB\"").await, 2 * (256 << 10).min(max));
    assert_eq!(buffer_of("udp_receive_buffer = 0").await, default, "0 leaves the system's default");

    // `check`: within the kernel's most, nothing to say; beyond it, a warning on its line.
    if max >= node::config::MAX_UDP_RECEIVE_BUFFER.get() as usize {
        return; // the kernel allows more than a node may ask for
    }
    std::fs::write(&config_path, format!("{text}\n[limits]\nudp_receive_buffer = {max}\n")).unwrap();
    let run = check(&net, PHONG_DU);
    assert_eq!((run.status, run.stderr.as_str()), (0, ""));
    std::fs::write(&config_path, format!("{text}\n[limits]\nudp_receive_buffer = {}\n", max + 1)).unwrap();
    let run = check(&net, PHONG_DU);
    assert_eq!(run.status, 0, "a warning, not an error: {}", run.stderr);
    assert!(
        run.stderr.starts_with("warning: node.toml:")
            && run.stderr.contains(&format!(
                ": limits.udp_receive_buffer: this kernel gives a socket at most {max} bytes of receive buffer (net.core.rmem_max), less than the {} asked for",
                max + 1
            ))
            && run.stderr.contains("sysctl -w net.core.rmem_max="),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("node.toml is valid (1 warning above)"), "{}", run.stdout);

    // A node started so still serves, and its log names what it asked and what it was given.
    let process = net.spawn_process(&code(PHONG_DU));
    net.wait_ready(PHONG_DU).await.close().await;
    drop(process);
    let log = std::fs::read_to_string(net.node_dir(&code(PHONG_DU)).join("node.log")).unwrap();
    let line = log.lines().find(|l| l.contains("smaller receive buffer")).unwrap_or_else(|| panic!("{log}"));
    println!("{line}");
    assert!(line.contains("WARN"), "a warning: {line}");
    assert!(line.contains(&format!("asked={}", max + 1)) && line.contains(&format!("given={max}")), "{line}");
}

/// On PostgreSQL, `check` reads the server's settings that break what a receipt promises (a
/// document the node answered for survives a crash of the server's machine): `fsync = off`
/// fails it (the node would refuse to start), `full_page_writes = off` and `data_sync_retry =
/// on` are warned of, each on the config's `database` line. A server with the defaults gets
/// none of them.
#[test]
fn check_reads_the_postgresql_servers_durability_settings() {
    let net = files();
    let config = net.config_path(&code(PHONG_DU));
    let good = harness::postgres::PgCluster::start();
    let url = good.database("lienthong");
    edit(&config, "data_dir = \"data\"\n", &format!("data_dir = \"data\"\ndatabase = \"{url}\"\n"));
    let run = check(&net, PHONG_DU);
    assert_eq!(run.status, 0, "{}", run.stderr);
    // Nothing to say: not the settings, not the CRLs of a database the node never set up.
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);

    let unsafe_server =
        harness::postgres::PgCluster::start_with("-c fsync=off -c full_page_writes=off -c data_sync_retry=on");
    let unsafe_url = unsafe_server.database("lienthong");
    edit(&config, &url, &unsafe_url);
    let line =
        std::fs::read_to_string(&config).unwrap().lines().position(|l| l.starts_with("database = ")).unwrap() + 1;
    let run = check(&net, PHONG_DU);
    assert_eq!(run.status, 1, "fsync = off passed: {}", run.stdout);
    assert!(
        run.stderr
            .contains("node.database: the PostgreSQL server runs with fsync = off: what it commits is not on disk"),
        "{}",
        run.stderr
    );
    for setting in ["full_page_writes = off", "data_sync_retry = on"] {
        assert!(
            run.stderr.contains(&format!(
                "warning: node.toml:{line}: node.database: the PostgreSQL server runs with {setting}: "
            )),
            "no warning for {setting}: {}",
            run.stderr
        );
    }
}
