//! The clerk's `lienthong` commands as processes against real nodes: profiles, send, inbox,
//! show, fetch, status, track, recall, replace; every mistake a clerk can make gets a message
//! a clerk can act on; and the one-command demo.

use std::time::Duration;

use harness::network::{NetOptions, PERSON_PASSPHRASE, TestNet, only, topology};
use harness::{Cli, Run};

pub(crate) const TIEN_YEN: &str = "000.00.41.H49";
pub(crate) const PHONG_DU: &str = "000.01.41.H49";
pub(crate) const HA_LAU: &str = "000.02.41.H49";

pub(crate) use harness::cli::{add_profile, clerk_shell};

pub(crate) async fn network_with_profiles() -> (TestNet, Cli) {
    let net =
        TestNet::start(only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU, HA_LAU]), NetOptions::default()).await;
    let cli = clerk_shell();
    add_profile(&cli, &net, "phong-du", PHONG_DU);
    add_profile(&cli, &net, "ha-lau", HA_LAU);
    std::fs::write(cli.path("Công văn 7.pdf"), b"%PDF-1.4 Cong van so 7\n").unwrap();
    (net, cli)
}

/// Runs `lienthong` on a blocking thread (it is a process; the nodes run on this runtime).
pub(crate) async fn lienthong(cli: &Cli, args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let program = harness::bin("lienthong");
    let dir = cli.dir.path().to_owned();
    let envs: Vec<(String, String)> = vec![
        ("LIENTHONG_CONFIG_DIR".into(), dir.join("config").to_str().unwrap().to_owned()),
        ("CHU_TICH_PASS".into(), PERSON_PASSPHRASE.into()),
        ("WRONG_PASS".into(), "not-it".into()),
    ];
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(program)
            .args(&args)
            .current_dir(&dir)
            .envs(envs)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        Run {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

pub(crate) async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let start = std::time::Instant::now();
    while !check().await {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn sent_id(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Sent "))
        .unwrap_or_else(|| panic!("no id in {stdout}"))
        .trim()
        .to_owned()
}

pub(crate) const SEND: &[&str] = &[
    "--profile",
    "phong-du",
    "send",
    "--to",
    HA_LAU,
    "--number",
    "7",
    "--notation",
    "UBND-VP",
    "--place",
    "Phong Dụ",
    "--subject",
    "Về việc tổ chức tập huấn phòng chống thiên tai",
    "--urgency",
    "khẩn",
    "--due",
    "2099-12-31",
    "--attach",
    "Công văn 7.pdf",
    "--passphrase-env",
    "CHU_TICH_PASS",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_inbox_show_fetch_status_track_recall_and_replace() {
    harness::logging();
    let (net, cli) = network_with_profiles().await;
    let out = lienthong(&cli, SEND).await.ok();
    let id = sent_id(&out);
    assert!(id.starts_with("000.01.41.H49,") && id.ends_with(",7/UBND-VP"), "{id}");

    // The recipient's inbox: a table with the sender's name and the subject.
    until("the document in Hà Lâu's inbox", async || {
        lienthong(&cli, &["--profile", "ha-lau", "inbox"]).await.stdout.contains(&id)
    })
    .await;
    let table = lienthong(&cli, &["--profile", "ha-lau", "inbox"]).await.ok();
    for expected in [
        "Arrived",
        "Urgency",
        "Khẩn",
        "000.01.41.H49 Ủy ban nhân dân xã Phong Dụ",
        "7/UBND-VP",
        "Về việc tổ chức",
        "2099-12-31",
        "new",
    ] {
        assert!(table.contains(expected), "{expected:?} missing from:\n{table}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&lienthong(&cli, &["--profile", "ha-lau", "inbox", "--json", "--urgent"]).await.ok())
            .unwrap();
    assert_eq!(json[0]["document"], id.as_str());
    let none: serde_json::Value = serde_json::from_str(
        &lienthong(&cli, &["--profile", "ha-lau", "inbox", "--json", "--from", "000.00.00.G22"]).await.ok(),
    )
    .unwrap();
    assert_eq!(none.as_array().unwrap().len(), 0, "the --from filter");

    // Show and fetch verify what arrived.
    let shown = lienthong(&cli, &["--profile", "ha-lau", "show", &id]).await.ok();
    // The network's CRLs were published before the document: the report shows it as not yet
    // established (TRY_LATER) rather than refusing to show the document.
    assert!(
        shown.starts_with(&format!("INDETERMINATE (TRY_LATER)  {id}")) && shown.contains("Nguyễn Văn An, Chủ tịch"),
        "{shown}"
    );
    let fetched = lienthong(&cli, &["--profile", "ha-lau", "fetch", &id, "--out", "received"]).await.ok();
    assert!(fetched.contains("intact"), "{fetched}");
    assert_eq!(std::fs::read(cli.path("received/Công văn 7.pdf")).unwrap(), b"%PDF-1.4 Cong van so 7\n");
    let bundle = std::fs::read_dir(cli.path("received"))
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "ltd"))
        .unwrap()
        .path();
    let verified = lienthong(
        &cli,
        &["verify", bundle.to_str().unwrap(), "--anchor", net.dir.path().join("root.pem").to_str().unwrap()],
    )
    .await;
    assert_eq!(verified.status, 3, "INDETERMINATE: {}", verified.stdout);
    assert!(verified.stdout.starts_with("INDETERMINATE (TRY_LATER)"), "{}", verified.stdout);

    // Statuses travel back; the sender's track shows hops and statuses.
    lienthong(&cli, &["--profile", "ha-lau", "status", &id, "accepted", "--note", "Đã tiếp nhận"]).await.ok();
    lienthong(&cli, &["--profile", "ha-lau", "status", &id, "completed"]).await.ok();
    until("statuses at the sender", async || {
        let t = lienthong(&cli, &["--profile", "phong-du", "track", &id]).await.stdout;
        t.contains("03 accepted") && t.contains("06 completed")
    })
    .await;
    let track = lienthong(&cli, &["--profile", "phong-du", "track", &id]).await.ok();
    assert!(
        track.contains("000.00.41.H49 took responsibility from 000.01.41.H49")
            && track.contains("received it (01 arrived)")
            && track.contains("Đã tiếp nhận")
            && crate::cli_conventions::has_local_time(&track),
        "{track}"
    );

    // Recall: requested by the sender, seen and accepted by the recipient.
    lienthong(&cli, &["--profile", "phong-du", "recall", &id, "--note", "Ban hành nhầm"]).await.ok();
    until("the recall request at Hà Lâu", async || {
        lienthong(&cli, &["--profile", "ha-lau", "inbox"]).await.stdout.contains("recall requested")
    })
    .await;
    lienthong(&cli, &["--profile", "ha-lau", "status", &id, "recall-accepted"]).await.ok();
    assert!(lienthong(&cli, &["--profile", "ha-lau", "inbox"]).await.ok().contains("recalled"));

    // Replace: a new document that supersedes an earlier one at the recipient.
    std::fs::write(cli.path("form.toml"), "to = [\"000.02.41.H49\"]\nnumber = 8\nnotation = \"UBND-VP\"\nplace = \"Phong Dụ\"\nsubject = \"Thay thế công văn số 7\"\n").unwrap();
    let out = lienthong(
        &cli,
        &["--profile", "phong-du", "replace", &id, "--with", "form.toml", "--passphrase-env", "CHU_TICH_PASS"],
    )
    .await
    .ok();
    let new_id = sent_id(&out);
    until("the replacement to act on the earlier document", async || {
        lienthong(&cli, &["--profile", "ha-lau", "inbox"]).await.stdout.contains(&format!("replaced by {new_id}"))
    })
    .await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_clerk_mistake_gets_a_message_a_clerk_can_act_on() {
    harness::logging();
    let (net, cli) = network_with_profiles().await;
    let fails = async |args: &[&str], expected: &[&str]| {
        let run = lienthong(&cli, args).await;
        let line = run.fails();
        for e in expected {
            assert!(line.contains(e), "{args:?}: expected {e:?} in {line}");
        }
    };
    let with = |extra: &[&'static str], drop: &[&str]| -> Vec<&'static str> {
        let mut args: Vec<&str> = Vec::new();
        let mut skip = false;
        for a in SEND {
            if skip {
                skip = false;
                continue;
            }
            if drop.contains(a) {
                skip = true;
                continue;
            }
            args.push(a);
        }
        args.extend_from_slice(extra);
        args
    };
    // Before anything is signed.
    fails(&with(&["--to", "000.02.41.h49"], &["--to"]), &["recipient \"000.02.41.h49\"", "upper case"]).await;
    let long = "dài ".repeat(130);
    fails(&with(&["--subject", Box::leak(long.into_boxed_str())], &["--subject"]), &["subject has", "more than 500"])
        .await;
    fails(&with(&["--attach", "thiếu.pdf"], &["--attach"]), &["thiếu.pdf"]).await;
    fails(&with(&[], &["--number"]), &["no number", "--number"]).await;
    fails(&with(&["--urgency", "gấp"], &["--urgency"]), &["unknown urgency", "hỏa tốc"]).await;
    fails(&with(&["--due", "12/31/2099"], &["--due"]), &["due", "there is no month 31"]).await;
    fails(&with(&["--due", "hôm nay"], &["--due"]), &["due", "2026-12-01 or 01/12/2026"]).await;
    // Said once: "manifest field due due date …" stuttered (issue 14).
    let before = lienthong(&cli, &with(&["--due", "01/01/2020"], &["--due"])).await.fails();
    assert!(before.contains("manifest field due 2020-01-01 is before the document date"), "{before}");
    assert!(!before.contains("due due"), "{before}");
    fails(&with(&["--passphrase-env", "WRONG_PASS"], &["--passphrase-env"]), &["wrong passphrase"]).await;
    fails(&with(&["--to", PHONG_DU], &["--to"]), &["cannot send to itself"]).await;
    // Nobody runs 000.09.41.H49: refused before anything is signed, naming the node that has
    // no route and why (issue 14; it used to print "Sent" and refuse later, in `track`).
    fails(
        &with(&["--to", "000.09.41.H49", "--number", "70"], &["--to", "--number"]),
        &["no node serves this recipient", "the node of 000.00.41.H49 has no route to it", "Nothing was signed"],
    )
    .await;
    let pending = lienthong(&cli, &["send", "--pending"]).await.ok();
    assert!(pending.contains("No signed document is waiting"), "nothing signed, nothing kept: {pending}");
    // Working on documents.
    fails(
        &["--profile", "ha-lau", "status", "000.01.41.H49,2026/01/01,99/UBND-VP", "accepted"],
        &["no document", "at this agency"],
    )
    .await;
    let id = sent_id(&lienthong(&cli, SEND).await.ok());
    fails(&["--profile", "phong-du", "status", &id, "accepted"], &["was not received by this agency"]).await;
    until("the document in Hà Lâu's inbox", async || ha_lau_inbox(&cli).await.contains(&id)).await;
    fails(&["--profile", "ha-lau", "recall", &id], &["only the sender can recall it"]).await;
    fails(&["--profile", "ha-lau", "fetch", "000.01.41.H49,2026/01/01,99/UBND-VP", "--out", "x"], &["no document"])
        .await;
    let usage = lienthong(&cli, &["--profile", "ha-lau", "status", &id, "done"]).await;
    assert_eq!(usage.status, 2);
    assert!(
        usage.stderr.contains("possible values: accepted, assigned, processing, completed, refused"),
        "{}",
        usage.stderr
    );
    // Profiles.
    fails(&["--profile", "nowhere", "inbox"], &["no profile named \"nowhere\""]).await;
    let mut empty = Cli::new();
    let cfg = empty.path("cfg");
    empty.env("LIENTHONG_CONFIG_DIR", cfg.to_str().unwrap());
    let err = empty.lienthong(["inbox"]).fails();
    assert!(err.contains("no profile yet") && err.contains("lienthong profile add"), "{err}");
    let err = empty
        .lienthong([
            "profile",
            "add",
            "x",
            "--agency",
            HA_LAU,
            "--node",
            "127.0.0.1:1",
            "--anchor",
            net.dir.path().join("root.pem").to_str().unwrap(),
            "--clerk-cert",
            net.node_dir(&HA_LAU.parse().unwrap()).join("seal.chain.pem").to_str().unwrap(),
            "--clerk-key",
            "k",
        ])
        .fails();
    assert!(err.contains("cannot be used as a clerk certificate"), "{err}");
    // The node is down.
    let mut net = net;
    net.stop_node(&HA_LAU.parse().unwrap()).await;
    fails(&["--profile", "ha-lau", "inbox"], &["cannot reach the node 000.02.41.H49", "is the node running"]).await;
    net.stop().await;
}

/// The ids in Hà Lâu's inbox (its clerk's view), as often as each appears.
async fn ha_lau_inbox(cli: &Cli) -> Vec<String> {
    let json: serde_json::Value =
        serde_json::from_str(&lienthong(cli, &["--profile", "ha-lau", "inbox", "--json"]).await.ok()).unwrap();
    json.as_array().unwrap().iter().map(|e| e["document"].as_str().unwrap().to_owned()).collect()
}

/// Issue 10: a clerk cannot retry safely when the node's answer is lost. The CLI keeps the
/// signed envelope until the node confirms it; `send --resume` sends the same bytes, which
/// the node takes once whatever happened before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_the_node_did_not_confirm_is_kept_and_resumed_exactly_once() {
    harness::logging();
    let (mut net, cli) = network_with_profiles().await;
    let phong_du = PHONG_DU.parse().unwrap();

    // The node is down: nothing was sent, and the signed document is kept.
    net.stop_node(&phong_du).await;
    let err = lienthong(&cli, SEND).await.fails();
    assert!(err.contains("nothing was sent") && err.contains("lienthong send --resume"), "{err}");
    let pending: serde_json::Value =
        serde_json::from_str(&lienthong(&cli, &["send", "--pending", "--json"]).await.ok()).unwrap();
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
    let id = pending[0]["document"].as_str().unwrap().to_owned();
    let digest = pending[0]["envelope_sha256"].as_str().unwrap().to_owned();
    assert!(lienthong(&cli, &["send", "--pending"]).await.ok().contains(&id));

    // Signing the same document again would make a second envelope with the same id.
    let again = lienthong(&cli, SEND).await.fails();
    assert!(again.contains("already signed") && again.contains(&format!("--resume \"{id}\"")), "{again}");

    // A changed attachment is named, not sent.
    std::fs::write(cli.path("Công văn 7.pdf"), b"%PDF-1.4 altered\n").unwrap();
    net.start_node(&phong_du).await;
    let changed = lienthong(&cli, &["--profile", "phong-du", "send", "--resume", &id]).await.fails();
    assert!(changed.contains("changed since the document was signed"), "{changed}");
    std::fs::write(cli.path("Công văn 7.pdf"), b"%PDF-1.4 Cong van so 7\n").unwrap();

    // Resumed by a prefix of its SHA-256: the same document, delivered once.
    let entry = cli.path(&format!("config/outgoing/{digest}"));
    let kept = cli.path("kept-entry");
    copy_dir(&entry, &kept);
    let out = lienthong(&cli, &["--profile", "phong-du", "send", "--resume", &digest[..12]]).await.ok();
    assert_eq!(sent_id(&out), id);
    assert!(!entry.exists(), "the entry goes once the node confirmed");
    let none = lienthong(&cli, &["send", "--pending"]).await.ok();
    assert!(none.contains("No signed document is waiting"), "{none}");
    until("the document in Hà Lâu's inbox", async || ha_lau_inbox(&cli).await.contains(&id)).await;

    // The answer was lost after all (the entry is back): resuming again only confirms.
    copy_dir(&kept, &entry);
    let out = lienthong(&cli, &["--profile", "phong-du", "send", "--resume", &id, "--json"]).await.ok();
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((answer["document"].as_str(), answer["resumed"].as_bool()), (Some(id.as_str()), Some(true)));
    assert_eq!(answer["envelope_sha256"].as_str(), Some(digest.as_str()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(ha_lau_inbox(&cli).await.iter().filter(|d| **d == id).count(), 1, "exactly once");
    let sender = net.open_store(&phong_du).await;
    assert_eq!(sender.sent(100).await.unwrap().iter().filter(|d| d.document == id).count(), 1);
    let err = lienthong(&cli, &["--profile", "phong-du", "send", "--resume", &id]).await.fails();
    assert!(err.contains("no signed document") && err.contains("--pending"), "{err}");
    net.stop().await;
}

/// The clerk's process dies in the middle of a large attachment: the node may or may not
/// have it; resuming delivers it exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_killed_mid_upload_is_resumed_and_delivered_once() {
    harness::logging();
    let (net, cli) = network_with_profiles().await;
    let big: Vec<u8> = (0..48u32 * 1024 * 1024).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(cli.path("Hồ sơ.bin"), &big).unwrap();
    let mut args: Vec<&str> = SEND.to_vec();
    args.extend(["--attach", "Hồ sơ.bin"]);
    let mut child = std::process::Command::new(harness::bin("lienthong"))
        .args(&args)
        .current_dir(cli.dir.path())
        .env("LIENTHONG_CONFIG_DIR", cli.path("config"))
        .env("CHU_TICH_PASS", PERSON_PASSPHRASE)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the node is receiving the attachment (a partly written partial file: a
    // large upload is resumable, and `--resume` sends only what the node did not keep).
    let receiving = net.node_dir(&PHONG_DU.parse().unwrap()).join("data/blobs/partial");
    until("the upload under way", async || {
        std::fs::read_dir(&receiving)
            .is_ok_and(|d| d.filter_map(Result::ok).any(|e| e.metadata().is_ok_and(|m| m.len() > 0)))
    })
    .await;
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success(), "killed before it could finish");
    let pending: serde_json::Value =
        serde_json::from_str(&lienthong(&cli, &["send", "--pending", "--json"]).await.ok()).unwrap();
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
    let id = pending[0]["document"].as_str().unwrap().to_owned();
    let out = lienthong(&cli, &["--profile", "phong-du", "send", "--resume", &id]).await.ok();
    assert_eq!(sent_id(&out), id);
    until("the document in Hà Lâu's inbox", async || ha_lau_inbox(&cli).await.contains(&id)).await;
    let fetched = lienthong(&cli, &["--profile", "ha-lau", "fetch", &id, "--out", "received"]).await.ok();
    assert!(fetched.contains("intact"), "{fetched}");
    assert_eq!(std::fs::read(cli.path("received/Hồ sơ.bin")).unwrap(), big);
    assert_eq!(ha_lau_inbox(&cli).await.iter().filter(|d| **d == id).count(), 1, "exactly once");
    net.stop().await;
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn the_demo_runs_in_one_command() {
    let cli = Cli::new();
    let run = cli.lienthong(["demo", "--dir", "net"]);
    assert_eq!(run.status, 0, "demo failed:\n{}\n{}", run.stdout, run.stderr);
    for expected in [
        "arrived at Ủy ban nhân dân xã Thanh Sơn",
        "arrived at Văn phòng Chính phủ",
        "06 completed",
        "took responsibility from",
        "PASSED  000.01.41.H49",
        "proven to exist by",
        "Network stopped",
        "Demo finished in",
    ] {
        assert!(run.stdout.contains(expected), "{expected:?} missing from:\n{}", run.stdout);
    }
    assert!(!cli.path("net/pids.txt").exists(), "no node left running");
    // The 2025 network (no districts) runs on the same code.
    let run = cli.lienthong(["demo", "--dir", "net2025", "--topology", "quang-ninh-2025"]);
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("arrived at Ủy ban nhân dân đặc khu Vân Đồn"), "{}", run.stdout);
}
