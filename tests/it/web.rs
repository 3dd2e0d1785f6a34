//! The node's web face (`[http]`), driven over real HTTPS against real nodes: metrics scraped
//! during a real exchange, health probes, `lienthong-node status` asking the running node,
//! the console's authentication and CSRF, retrying and dropping dead transfers, the
//! verifier's reports, upload limits and the node's memory under a large upload. The same
//! pages in a real browser: `browser.rs`.

use std::time::{Duration, Instant};

use harness::network::{Database, NetOptions, RawPeer, TestNet, fetch_all, only, topology, wait_for};
use harness::web::{self, WebFace, client, multipart, sample};
use pki::{AgencyCode, Profile};

pub(crate) const TIEN_YEN: &str = "000.00.41.H49";
pub(crate) const PHONG_DU: &str = "000.01.41.H49";
pub(crate) const HA_LAU: &str = "000.02.41.H49";

pub(crate) fn code(s: &str) -> AgencyCode {
    s.parse().unwrap()
}

fn options(database: Database, extra: &str) -> NetOptions {
    NetOptions {
        database,
        extra_config: format!("{}{extra}", NetOptions::default().extra_config),
        ..NetOptions::default()
    }
}

/// Tiên Yên with its two communes; Tiên Yên's web face on, on a port known in advance.
async fn district(database: Database, extra: &str, http_extra: &str) -> (TestNet, WebFace, std::net::SocketAddr) {
    let mut net =
        TestNet::prepare(only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU, HA_LAU]), options(database, extra));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", web::free_port()).parse().unwrap();
    let face = web::enable(&mut net, &code(TIEN_YEN), &addr.to_string(), http_extra);
    for c in [TIEN_YEN, PHONG_DU, HA_LAU] {
        net.start_node(&code(c)).await;
    }
    assert_eq!(net.node(TIEN_YEN).http_addr(), Some(addr));
    (net, face, addr)
}

async fn metrics(addr: std::net::SocketAddr) -> String {
    let answer = client(addr, None).get("/metrics").await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(answer.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    answer.text()
}

on_both_backends!(metrics_and_health_follow_a_real_exchange);

/// Three documents from Phong Dụ to Hà Lâu pass through Tiên Yên; its `/metrics` then holds
/// exactly those three (taken from a neighbour, verified, committed, handed over to Hà Lâu),
/// the queues drained, its connections, certificates and CRLs; one refused document shows
/// with its reason class, on the console too. `/healthz`, `/readyz` and `/status.json`
/// answer, and `lienthong-node status` asks the running node, then reads the database once
/// it is stopped.
async fn metrics_and_health_follow_a_real_exchange(database: Database) {
    harness::logging();
    let (mut net, face, addr) = district(database, "", "").await;
    let anonymous = client(addr, None);
    let live = anonymous.get("/healthz").await.unwrap();
    assert_eq!((live.status, live.text().as_str()), (200, "ok\n"));
    let ready = anonymous.send("GET", "/readyz", &[("accept", "application/json")], Vec::new()).await.unwrap();
    let ready_json: serde_json::Value = serde_json::from_slice(&ready.body).unwrap();
    assert_eq!((ready.status, &ready_json["ready"]), (200, &serde_json::json!(true)), "{ready_json}");
    let names: Vec<&str> =
        ready_json["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["running", "database", "node certificate", "seal certificate", "crls"]);

    let before = metrics(addr).await;
    assert_eq!(sample(&before, "lienthong_documents_taken_total", &[]), 0.0, "{before}");

    let clerk = net.clerk(PHONG_DU).await;
    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(net.document(PHONG_DU, &[HA_LAU], n).submit(&clerk).await.unwrap());
    }
    for id in &ids {
        wait_for("the documents delivered", Duration::from_secs(30), || async {
            net.node(HA_LAU).store.document_by_id(id).await.unwrap().is_some()
        })
        .await;
    }
    // The receipts travel back through Tiên Yên to Phong Dụ: wait for its outbox to drain.
    wait_for("Tiên Yên's outbox drained", Duration::from_secs(30), || async {
        let m = metrics(addr).await;
        sample(&m, "lienthong_transfers", &[("state", "pending")]) == 0.0
            && sample(&m, "lienthong_transfers", &[("state", "done")]) >= 3.0
    })
    .await;
    let m = metrics(addr).await;
    eprintln!("WEB metrics of {TIEN_YEN} after 3 documents ({database:?}):\n{m}");
    assert_eq!(sample(&m, "lienthong_documents_taken_total", &[("via", "neighbour")]), 3.0);
    assert_eq!(sample(&m, "lienthong_documents_taken_total", &[("via", "clerk")]), 0.0);
    assert_eq!(sample(&m, "lienthong_verification_seconds_count", &[]), 3.0);
    assert_eq!(sample(&m, "lienthong_commit_seconds_count", &[]), 3.0);
    assert!(sample(&m, "lienthong_verification_seconds_sum", &[]) > 0.0);
    assert_eq!(sample(&m, "lienthong_transfer_attempts_total", &[("peer", HA_LAU), ("outcome", "finished")]), 3.0);
    assert_eq!(sample(&m, "lienthong_documents_handed_over_total", &[]), 3.0);
    // Each answer carried Hà Lâu's delivery receipt on toward Phong Dụ: a plain answer
    // (`outbound::answers`), the receipt queued on in its transaction; one a transaction, or
    // fewer when answers come at once (one before they were plain: 0).
    let plain = sample(&m, "lienthong_answer_transactions_total", &[]);
    assert!((1.0..=3.0).contains(&plain), "{plain} transactions of plain answers\n{m}");
    // Taken one at a time: on PostgreSQL by the intake's writer (`intake::together`), a
    // transaction each, those that brought only their own rows; on SQLite each alone.
    let together = sample(&m, "lienthong_intake_transactions_total", &[]);
    match database {
        Database::Postgres => assert!((1.0..=3.0).contains(&together), "{together}"),
        Database::Sqlite => assert_eq!(together, 0.0),
    }
    assert_eq!(sample(&m, "lienthong_documents_refused_total", &[]), 0.0);
    assert_eq!(sample(&m, "lienthong_transfers", &[("state", "dead")]), 0.0);
    assert_eq!(sample(&m, "lienthong_connections", &[("peer", HA_LAU), ("direction", "out")]), 1.0);
    assert!(sample(&m, "lienthong_connections", &[("peer", PHONG_DU), ("direction", "in")]) >= 1.0);
    assert!(sample(&m, "lienthong_certificate_days_to_expiry", &[("certificate", "node")]) > 300.0);
    assert!(m.lines().filter(|l| l.starts_with("lienthong_crl_age_seconds{")).count() >= 2, "{m}");
    assert!(m.trim_end().ends_with("# EOF"));
    // Every metric the dashboard and the alert rules in deploy/ name is one the node exports.
    let monitoring = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring");
    for file in ["grafana-dashboard.json", "prometheus-alerts.yml"] {
        let text = std::fs::read_to_string(monitoring.join(file)).unwrap();
        let mut named: Vec<&str> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("lienthong_"))
            .collect();
        named.sort_unstable();
        named.dedup();
        assert!(named.len() >= 8, "{file}: {named:?}");
        for name in named {
            let base =
                ["_total", "_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
            assert!(m.contains(&format!("# TYPE {base} ")), "{file} names {name}, which the node does not export");
        }
    }

    // A neighbour handing over what it may not: refused, counted by class, on the console.
    let foreign = net.document(HA_LAU, &[PHONG_DU], 9);
    let peer = RawPeer::connect(&net, &net.identity(&code(PHONG_DU), Profile::Node), TIEN_YEN).await;
    let answer = peer.deliver(&foreign, &[PHONG_DU]).await.unwrap();
    assert!(matches!(answer, node::protocol::NodeResponse::Refused { .. }), "{answer:?}");
    let m = metrics(addr).await;
    assert_eq!(sample(&m, "lienthong_documents_refused_total", &[("reason", "not_allowed")]), 1.0, "{m}");
    let operator = client(addr, Some(&face.operator));
    let page = operator.get("/console/refusals?lang=en").await.unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains(&foreign.id) && page.text().contains("may only send documents of its own subtree"));

    // The health read-out: for operators and the node's own certificate, nobody else.
    assert_eq!(anonymous.get("/status.json").await.unwrap().status, 403);
    let own = client(addr, Some(&net.identity(&code(TIEN_YEN), Profile::Node))).get("/status.json").await.unwrap();
    let health: serde_json::Value = serde_json::from_slice(&own.body).unwrap();
    assert_eq!((health["agency"].as_str(), health["since_start"]["documents_in"].as_u64()), (Some(TIEN_YEN), Some(3)));

    // `lienthong-node status` asks the running node (uptime is what only it knows) ...
    let dir = net.node_dir(&code(TIEN_YEN));
    let status = |json: bool| {
        let mut cmd = std::process::Command::new(harness::bin("lienthong-node"));
        cmd.arg("status").args(json.then_some("--json")).args(["--config", "node.toml"]);
        cmd.current_dir(&dir).output().unwrap()
    };
    let out = status(false);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(table.contains("asked the running node at https://") && table.contains(", up "), "{table}");
    assert!(table.contains("OUTBOX       pending 0") && table.contains(HA_LAU), "{table}");
    let json: serde_json::Value = serde_json::from_slice(&status(true).stdout).unwrap();
    assert!(json["uptime_seconds"].is_i64(), "{json}");
    // ... and reads the database when it is stopped, saying so.
    net.stop_node(&code(TIEN_YEN)).await;
    let out = status(false);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && table.contains("read from the database"), "{table}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not answer"));
    net.stop().await;
}

/// The console answers operators only: no certificate, a clerk's (valid but not listed) and a
/// revoked operator's are refused with the reason; an action without the operator's CSRF
/// token is refused and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_refuses_strangers_forged_actions_and_revoked_operators() {
    harness::logging();
    let (mut net, face, addr) = district(Database::Sqlite, "", "").await;
    let refused = |answer: &node::http::client::Answer, why: &str| {
        assert_eq!(answer.status, 403, "{}", answer.text());
        assert!(answer.text().contains(why), "{why:?} not in {}", answer.text());
    };
    refused(&client(addr, None).get("/console?lang=en").await.unwrap(), "The browser sent none");
    let clerk = net.identity(&code(TIEN_YEN), Profile::Clerk);
    refused(&client(addr, Some(&clerk)).get("/console?lang=en").await.unwrap(), "not listed as an operator");
    let own = net.identity(&code(TIEN_YEN), Profile::Node);
    refused(&client(addr, Some(&own)).get("/console/transfers?lang=en").await.unwrap(), "reads the status");

    let operator = client(addr, Some(&face.operator));
    let page = operator.get("/console?lang=en").await.unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("Quản trị viên") && page.text().contains(PHONG_DU), "{}", page.text());
    let vi =
        operator.send("GET", "/console", &[("accept-language", "vi-VN,vi;q=0.9,en;q=0.5")], Vec::new()).await.unwrap();
    assert!(vi.text().contains("<html lang=\"vi\">") && vi.text().contains("Các nút lân cận"));

    let form = |token: &str| format!("csrf={token}").into_bytes();
    let forged = operator
        .send(
            "POST",
            "/console/transfers/1/retry?lang=en",
            &[("content-type", "application/x-www-form-urlencoded")],
            form("00ff"),
        )
        .await
        .unwrap();
    refused(&forged, "anti-forgery token");
    let missing = operator
        .send("POST", "/console/transfers/1/drop", &[("content-type", "application/x-www-form-urlencoded")], Vec::new())
        .await
        .unwrap();
    assert_eq!(missing.status, 422, "{}", missing.text());
    // A form over http.max_form_bytes (16 KiB) is refused before it is read whole.
    let padded = format!("csrf=00&pad={}", "x".repeat(16 * 1024)).into_bytes();
    let big = operator
        .send("POST", "/console/transfers/1/retry", &[("content-type", "application/x-www-form-urlencoded")], padded)
        .await
        .unwrap();
    assert_eq!(big.status, 413, "{}", big.text());

    // Revoked: refused from the next request on, with the reason.
    let issuer = net.pki.cas.get_mut(&code(TIEN_YEN)).unwrap();
    issuer.revoke(
        &face.operator.chain[0].serial,
        time::OffsetDateTime::now_utc() - time::Duration::minutes(1),
        pki::RevocationReason::KeyCompromise,
    );
    net.publish_crls();
    wait_for("the revoked operator refused", Duration::from_secs(15), || async {
        let answer = operator.get("/console?lang=en").await.unwrap();
        answer.status == 403 && answer.text().contains("revoked")
    })
    .await;
    net.stop().await;
}

/// The text between `start` and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).map(|i| i + start.len()).unwrap_or_else(|| panic!("{start:?} not in {text}"));
    let to = text[from..].find(end).map(|i| from + i).unwrap();
    &text[from..to]
}

on_both_backends!(a_dead_transfer_is_retried_or_dropped_from_the_console);

/// Hà Lâu is down and Tiên Yên gives up at once (one attempt): two documents are dead
/// letters, shown on the console with the alert. Hà Lâu comes back; the operator retries one
/// (it is delivered) and drops the other (gone from the queue, kept as `dropped`); both
/// actions are listed with the operator's name, and the alert is gone.
async fn a_dead_transfer_is_retried_or_dropped_from_the_console(database: Database) {
    harness::logging();
    let extra = "[limits]\nconnect_timeout = \"1s\"\n";
    let (mut net, face, addr) = district(database, extra, "").await;
    // One attempt, then dead (the default extra config retries a thousand times).
    let config = std::fs::read_to_string(net.config_path(&code(TIEN_YEN))).unwrap();
    std::fs::write(net.config_path(&code(TIEN_YEN)), config.replace("max_attempts = 1000", "max_attempts = 1"))
        .unwrap();
    net.stop_node(&code(TIEN_YEN)).await;
    net.start_node(&code(TIEN_YEN)).await;
    net.stop_node(&code(HA_LAU)).await;
    let clerk = net.clerk(PHONG_DU).await;
    let kept = net.document(PHONG_DU, &[HA_LAU], 1);
    let dropped = net.document(PHONG_DU, &[HA_LAU], 2);
    kept.submit(&clerk).await.unwrap();
    dropped.submit(&clerk).await.unwrap();
    let operator = client(addr, Some(&face.operator));
    wait_for("two dead letters", Duration::from_secs(30), || async {
        sample(&metrics(addr).await, "lienthong_transfers", &[("state", "dead")]) == 2.0
    })
    .await;
    let overview = operator.get("/console?lang=en").await.unwrap().text();
    assert!(overview.contains("2 transfer(s) dead-lettered"), "{overview}");
    let page = operator.get("/console/transfers?lang=en").await.unwrap().text();
    assert_eq!(page.matches(">DEAD<").count(), 2, "{page}");
    let token = between(&page, "name=\"csrf\" value=\"", "\"").to_owned();
    let row_of = |page: &str, id: &str| {
        let at = page.find(id).unwrap_or_else(|| panic!("{id} not listed"));
        let row_start = page[..at].rfind("<tr>").unwrap();
        between(&page[row_start..], "<td class=\"num\">", "<").parse::<i64>().unwrap()
    };
    let (kept_transfer, dropped_transfer) = (row_of(&page, &kept.id), row_of(&page, &dropped.id));

    net.start_node(&code(HA_LAU)).await;
    let post = |path: String| {
        let operator = operator.clone();
        let body = format!("csrf={token}").into_bytes();
        async move {
            operator.send("POST", &path, &[("content-type", "application/x-www-form-urlencoded")], body).await.unwrap()
        }
    };
    let answer = post(format!("/console/transfers/{kept_transfer}/retry?lang=en")).await;
    assert_eq!(
        (answer.status, answer.header("location")),
        (303, Some("/console/transfers?lang=en&done=revived#outbox"))
    );
    let answer = post(format!("/console/transfers/{dropped_transfer}/drop?lang=en")).await;
    assert_eq!(answer.header("location"), Some("/console/transfers?lang=en&done=dropped#outbox"));
    // Dropping a transfer that is not dead changes nothing.
    let again = post(format!("/console/transfers/{kept_transfer}/drop?lang=en")).await;
    assert_eq!(again.header("location"), Some("/console/transfers?lang=en&done=nothing#outbox"));

    wait_for("the retried document delivered", Duration::from_secs(20), || async {
        net.node(HA_LAU).store.document_by_id(&kept.id).await.unwrap().is_some()
    })
    .await;
    assert!(net.node(HA_LAU).store.document_by_id(&dropped.id).await.unwrap().is_none());
    let page = operator.get("/console/transfers?lang=en").await.unwrap().text();
    assert!(!page.contains(">DEAD<") && !page.contains(&dropped.id), "{page}");
    for action in
        [format!("retry transfer {kept_transfer}: revived"), format!("drop transfer {dropped_transfer}: dropped")]
    {
        assert!(page.contains(&action), "{action:?} not listed: {page}");
    }
    assert!(page.contains("Quản trị viên"));
    let overview = operator.get("/console?lang=en").await.unwrap().text();
    assert!(!overview.contains("dead-lettered"), "{overview}");
    net.stop().await;
}

/// The bundle a recipient's clerk fetches of `doc`: envelope, CRLs and every receipt so far.
pub(crate) async fn fetched_bundle(net: &TestNet, at: &str, doc: &harness::network::SignedDocument) -> Vec<u8> {
    let clerk = net.clerk(at).await;
    let (fetched, bodies) = fetch_all(&clerk, &doc.id).await.unwrap();
    assert_eq!(bodies, doc.bodies);
    web::bundle(doc, &fetched.crls, &fetched.receipts)
}

/// A bundle signed under another national root (a well-formed document no chain to our root
/// can be found for).
pub(crate) fn foreign_bundle() -> Vec<u8> {
    let mut other = TestNet::prepare(only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]), NetOptions::default());
    other.publish_crls();
    let doc = other.document(PHONG_DU, &[TIEN_YEN], 77);
    let crls: Vec<Vec<u8>> =
        other.pki.crls(time::OffsetDateTime::now_utc()).unwrap().iter().map(|c| c.der().to_vec()).collect();
    web::bundle(&doc, &crls, &[])
}

/// The verifier as a script uses it: a delivered document's bundle PASSED with both signers,
/// their chains to the root and the receipts; the same with one byte of its PDF changed
/// FAILED (HASH_FAILURE); one from another root INDETERMINATE (NO_CERTIFICATE_CHAIN_FOUND);
/// the page in both languages; multipart as a browser sends it; nothing kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verifier_reports_passed_failed_and_indeterminate() {
    harness::logging();
    let (mut net, _face, addr) = district(Database::Sqlite, "", "").await;
    let clerk = net.clerk(PHONG_DU).await;
    let doc = net.document(PHONG_DU, &[HA_LAU], 5);
    doc.submit(&clerk).await.unwrap();
    wait_for("the document delivered", Duration::from_secs(20), || async {
        net.node(HA_LAU).store.document_by_id(&doc.id).await.unwrap().is_some()
    })
    .await;
    web::publish_crls_after_signing(&mut net, addr).await;
    let good = fetched_bundle(&net, HA_LAU, &doc).await;
    let anonymous = client(addr, None);
    let verify = |bytes: Vec<u8>| {
        let anonymous = anonymous.clone();
        async move {
            let answer = anonymous.send("POST", "/verify.json", &[], bytes).await.unwrap();
            assert_eq!(answer.status, 200, "{}", answer.text());
            serde_json::from_slice::<serde_json::Value>(&answer.body).unwrap()
        }
    };
    let report = verify(good.clone()).await;
    assert_eq!(
        (report["indication"].as_str(), &report["sub_indication"]),
        (Some("PASSED"), &serde_json::Value::Null),
        "{report}"
    );
    let signers = report["signatures"].as_array().unwrap();
    assert_eq!(signers.iter().map(|s| s["role"].as_str().unwrap()).collect::<Vec<_>>(), ["person", "seal"]);
    // In this three-node network the district's CA is certified by the root directly.
    for s in signers {
        let chain = s["chain"].as_array().unwrap();
        let codes: Vec<&str> = chain.iter().map(|c| c["agency"].as_str().unwrap_or("root")).collect();
        assert_eq!(codes, [PHONG_DU, TIEN_YEN, "root"], "{report}");
    }
    assert!(!report["receipts"].as_array().unwrap().is_empty(), "{report}");
    // The same report as `lienthong verify --json` gives on the same file with the node's
    // trust anchor and CRLs (the validation time aside).
    let cli = harness::Cli::new();
    std::fs::write(cli.path("cv-5.ltd"), &good).unwrap();
    let (root, crls) = (net.dir.path().join("root.pem"), net.dir.path().join("crls.pem"));
    let mut args = vec!["verify".to_owned(), "--json".into(), "cv-5.ltd".into(), "--anchor".into()];
    args.push(root.display().to_string());
    if crls.exists() {
        args.extend(["--crl".to_owned(), crls.display().to_string()]);
    }
    let run = cli.lienthong(&args);
    let mut cli: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {} {}", run.stdout, run.stderr));
    let mut web = report.clone();
    for r in [&mut cli, &mut web] {
        let r = r.as_object_mut().unwrap();
        r.remove("validation_time");
        r.remove("upload");
    }
    assert_eq!(web, cli, "the web verifier and `lienthong verify --json` disagree");
    assert_eq!(report["upload"]["sha256"].as_str().unwrap(), hex::encode(pki::sha256(&good)));

    let tampered = web::tamper(&good, b"%PDF-1.4 C");
    let report = verify(tampered).await;
    assert_eq!(
        (report["indication"].as_str(), report["sub_indication"].as_str()),
        (Some("FAILED"), Some("HASH_FAILURE")),
        "{report}"
    );
    assert!(report["reasons"][0]["message"].as_str().unwrap().contains("cv-5.pdf"), "{report}");

    let report = verify(foreign_bundle()).await;
    assert_eq!(
        (report["indication"].as_str(), report["sub_indication"].as_str()),
        (Some("INDETERMINATE"), Some("NO_CERTIFICATE_CHAIN_FOUND")),
        "{report}"
    );

    let (content_type, body) = multipart("cv-5.ltd", &good);
    let page = anonymous.send("POST", "/verify?lang=en", &[("content-type", &content_type)], body).await.unwrap();
    let html = page.text();
    assert_eq!(page.status, 200, "{html}");
    for want in [
        "PASSED",
        "Nguyễn Văn An, Chủ tịch",
        "official&#39;s signature: PASSED",
        "agency seal: PASSED",
        "national root",
        "took responsibility (hop receipt)",
        "cv-5.ltd",
        "the file was deleted after the check",
    ] {
        assert!(html.contains(want), "{want:?} not in the page");
    }
    let (content_type, body) = multipart("cv-5.ltd", &good);
    let vi = anonymous.send("POST", "/verify?lang=vi", &[("content-type", &content_type)], body).await.unwrap().text();
    assert!(vi.contains("Chữ ký (theo thứ tự ký)") && vi.contains("gốc quốc gia"));
    let uploads = net.node_dir(&code(TIEN_YEN)).join("data").join("http-uploads");
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 0, "nothing uploaded is kept");
    let m = metrics(addr).await;
    assert_eq!(sample(&m, "lienthong_web_verifications_total", &[("result", "passed")]), 3.0, "{m}");
    net.stop().await;
}

/// Upload limits: a bundle over `http.max_upload_bytes` gets a clear 413 (declared by its
/// length, or found while counting a multipart body), garbage and a truncated bundle FAILED
/// with the reason, an empty form 400; and a bundle near the limit, verified by a node
/// process, moves its memory by little (the upload goes to disk, attachments stream): the
/// node's VmHWM is printed and must stay within 48 MiB of where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_bounded_and_a_large_one_costs_little_memory() {
    harness::logging();
    const BIG: usize = 128 * 1024 * 1024;
    let mut net = TestNet::prepare(only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]), NetOptions::default());
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", web::free_port()).parse().unwrap();
    web::enable(
        &mut net,
        &code(TIEN_YEN),
        &addr.to_string(),
        &format!("max_upload_bytes = \"{}MiB\"", (BIG >> 20) + 1),
    );
    let mut process = net.spawn_process(&code(TIEN_YEN));
    net.wait_ready(TIEN_YEN).await;
    let anonymous = client(addr, None);
    wait_for("the web face", Duration::from_secs(10), || async { anonymous.get("/healthz").await.is_ok() }).await;

    // A document with a 128 MiB attachment, as its bundle.
    let body: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    let mut doc = net.document(PHONG_DU, &[TIEN_YEN], 1);
    doc.manifest.attachments[0].size = body.len() as u64;
    doc.manifest.attachments[0].sha256 = pki::sha256(&body);
    let doc = net.sign(doc.manifest, vec![body]);
    let crls: Vec<Vec<u8>> = web::crls_after_signing(&mut net).iter().map(|c| c.der().to_vec()).collect();
    let big = web::bundle(&doc, &crls, &[]);

    let pid = process.child.id();
    let (hwm_before, rss_before) = web::memory_kib(pid);
    let started = Instant::now();
    let answer = anonymous.send("POST", "/verify.json", &[], big.clone()).await.unwrap();
    let took = started.elapsed();
    let (hwm_after, rss_after) = web::memory_kib(pid);
    let report: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(report["indication"], "PASSED", "{report}");
    eprintln!(
        "WEB upload of a {:.1} MiB bundle verified in {:.2} s: node VmRSS {:.1} → {:.1} MiB, VmHWM {:.1} → {:.1} MiB",
        big.len() as f64 / 1048576.0,
        took.as_secs_f64(),
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        hwm_before as f64 / 1024.0,
        hwm_after as f64 / 1024.0
    );
    assert!(hwm_after < hwm_before + 48 * 1024, "peak memory grew by {} KiB", hwm_after.saturating_sub(hwm_before));

    // Over the limit, declared by Content-Length: refused, read and dropped, never stored.
    let over = [big.as_slice(), &vec![0u8; 2 << 20]].concat();
    let answer = anonymous.send("POST", "/verify?lang=en", &[], over.clone()).await.unwrap();
    assert_eq!(answer.status, 413, "{}", answer.text());
    let text = answer.text();
    assert!(text.contains("The verifier takes files of up to 129MiB") && text.contains("Nothing was kept"), "{text}");
    // Over the limit inside a multipart body whose length passes the first check: counted.
    let (content_type, body) = multipart("big.ltd", &over[..BIG + (1 << 20) + 1]);
    let answer = anonymous.send("POST", "/verify.json", &[("content-type", &content_type)], body).await.unwrap();
    assert_eq!(answer.status, 413, "{}", answer.text());
    let (hwm_end, _) = web::memory_kib(pid);
    eprintln!("WEB after two oversized uploads: node VmHWM {:.1} MiB", hwm_end as f64 / 1024.0);
    assert!(hwm_end < hwm_before + 48 * 1024);

    // Hostile or broken input: a clear verdict, nothing else.
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    for (what, bytes) in [("garbage", garbage), ("a truncated bundle", big[..big.len() / 2].to_vec())] {
        let answer = anonymous.send("POST", "/verify.json", &[], bytes).await.unwrap();
        let report: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        eprintln!(
            "WEB {what}: {} {} — {}",
            report["indication"], report["sub_indication"], report["reasons"][0]["message"]
        );
        assert_eq!((answer.status, report["indication"].as_str()), (200, Some("FAILED")), "{what}: {report}");
        assert_eq!(report["sub_indication"], "FORMAT_FAILURE", "{what}: {report}");
    }
    let (content_type, _) = multipart("x", b"");
    let empty = format!("--{}--\r\n", content_type.split("boundary=").nth(1).unwrap());
    let answer = anonymous
        .send("POST", "/verify?lang=en", &[("content-type", &content_type)], empty.into_bytes())
        .await
        .unwrap();
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert!(answer.text().contains("Choose a .ltd file"));
    let uploads = net.node_dir(&code(TIEN_YEN)).join("data").join("http-uploads");
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 0, "nothing uploaded is kept");
    process.kill();
}

/// `lienthong demo --keep` turns every node's web face on and prints where the receiving
/// node's verifier and console are: the verifier there passes the document the demo sent,
/// the console lets the printed operator certificate in, and `/readyz` is ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_a_web_face_that_answers() {
    let cli = harness::Cli::new();
    struct StopDemo(std::path::PathBuf);
    impl Drop for StopDemo {
        fn drop(&mut self) {
            if self.0.join("net/pids.txt").exists() {
                let _ = std::process::Command::new(harness::bin("lienthong"))
                    .args(["demo", "--stop", "net"])
                    .current_dir(&self.0)
                    .output();
            }
        }
    }
    let _guard = StopDemo(cli.dir.path().to_owned());
    let run = cli.lienthong(["demo", "--dir", "net", "--keep"]);
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    let line = |prefix: &str| {
        run.stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {}", run.stdout))
            .to_owned()
    };
    let verifier = line("verifier: ");
    let url = verifier.split_whitespace().next().unwrap().strip_suffix("/verify").unwrap().to_owned();
    let addr: std::net::SocketAddr = url.strip_prefix("https://").unwrap().parse().unwrap();
    let console = line("console:  ");
    // Paths are printed as given (`--dir net`): relative to where the demo ran.
    let cert = cli.path(between(&console, "client certificate ", ", key "));
    let key = cli.path(between(&console, ", key ", ")"));
    let bundle = cli.path(between(&run.stdout, "received (", "):"));

    let anonymous = client(addr, None);
    let ready = anonymous.get("/readyz").await.unwrap();
    assert_eq!(ready.status, 200, "{}", ready.text());
    // The demo published CRLs issued after the delivery (without them a document signed a
    // moment ago is INDETERMINATE, TRY_LATER); the node takes them up within its 1 s poll.
    let bytes = std::fs::read(&bundle).unwrap();
    let mut report = serde_json::Value::Null;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let answer = anonymous.send("POST", "/verify.json", &[], bytes.clone()).await.unwrap();
        report = serde_json::from_slice(&answer.body).unwrap();
        if report["indication"] == "PASSED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(report["indication"], "PASSED", "{report}");
    let operator = node::config::Identity {
        chain: pki::Certificate::from_pem_all(&std::fs::read_to_string(&cert).unwrap()).unwrap(),
        key: pki::PrivateKey::from_pem(&std::fs::read_to_string(&key).unwrap(), None).unwrap(),
    };
    let page = client(addr, Some(&operator)).get("/console?lang=en").await.unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
    let stopped = cli.lienthong(["demo", "--stop", "net"]).ok();
    assert!(stopped.contains("node(s) stopped"), "{stopped}");
}
