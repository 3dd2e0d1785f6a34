//! Issue 14: the command line as users of mature tools expect it, tested on the real
//! binaries as processes — a closed pipe, exit codes, recipients no route reaches, refusals
//! in words, local times with their offset, day-first dates, completions and man pages.

use std::io::Read;
use std::process::{Command, Stdio};

use harness::{Cli, Run};

use crate::clerk_cli::{
    HA_LAU, PHONG_DU, SEND, TIEN_YEN, add_profile, clerk_shell, lienthong, network_with_profiles, sent_id, until,
};

/// Whether `text` shows a time as `2026-11-23 09:15:00 +07:00`: local, with its offset.
pub(crate) fn has_local_time(text: &str) -> bool {
    text.lines().any(|l| {
        let b = l.as_bytes();
        (0..b.len().saturating_sub(25)).any(|i| {
            let w = &b[i..i + 26];
            let digit = |j: usize| w[j].is_ascii_digit();
            [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 21, 22, 24, 25].iter().all(|&j| digit(j))
                && w[4] == b'-'
                && w[7] == b'-'
                && w[10] == b' '
                && w[13] == b':'
                && w[16] == b':'
                && w[19] == b' '
                && (w[20] == b'+' || w[20] == b'-')
                && w[23] == b':'
        })
    })
}

/// Runs `lienthong ARGS` with standard output a pipe whose reader is already gone, as after
/// `| head -1` has read its line and exited: every write meets a broken pipe. (Reading one
/// line first would race with short outputs, which fit in the pipe before the reader closes.)
fn with_closed_stdout(cli: &Cli, envs: &[(&str, String)], args: &[&str]) -> Run {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(harness::bin("lienthong"))
        .args(args)
        .current_dir(cli.dir.path())
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The same through a real `head -1`, for the shape users see.
fn through_head(cli: &Cli, envs: &[(&str, String)], args: &[&str]) -> (String, Run) {
    let mut child = Command::new(harness::bin("lienthong"))
        .args(args)
        .current_dir(cli.dir.path())
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = Vec::new();
    let mut stdout = child.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        first.push(byte[0]);
    }
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let run = Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (String::from_utf8_lossy(&first).into_owned(), run)
}

#[track_caller]
fn quiet_success(what: &[&str], run: &Run) {
    assert_eq!(run.status, 0, "{what:?} with a closed stdout: exit {}; stderr: {}", run.status, run.stderr);
    assert!(!run.stderr.contains("panicked") && !run.stderr.contains("Broken pipe"), "{what:?}: {}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listing_ends_quietly_when_its_reader_closes_the_pipe() {
    harness::logging();
    let (net, cli) = network_with_profiles().await;
    let id = sent_id(&lienthong(&cli, SEND).await.ok());
    until("the document in Hà Lâu's inbox", async || {
        lienthong(&cli, &["--profile", "ha-lau", "inbox"]).await.stdout.contains(&id)
    })
    .await;
    let root = net.dir.path().join("root.pem");
    let seal = net.node_dir(&HA_LAU.parse().unwrap()).join("seal.chain.pem");
    let envs = [("LIENTHONG_CONFIG_DIR", cli.path("config").to_str().unwrap().to_owned())];
    let listings: Vec<Vec<&str>> = vec![
        vec!["--profile", "ha-lau", "inbox"],
        vec!["--profile", "ha-lau", "inbox", "--json"],
        vec!["--profile", "phong-du", "inbox", "--sent"],
        vec!["--profile", "phong-du", "track", &id],
        vec!["--profile", "phong-du", "track", &id, "--json"],
        vec!["--profile", "ha-lau", "show", &id, "--json"],
        vec!["--profile", "ha-lau", "show", &id],
        vec!["profile", "list"],
        vec!["profile", "list", "--json"],
        vec!["send", "--pending"],
        vec!["send", "--pending", "--json"],
        vec!["pki", "show", seal.to_str().unwrap()],
        vec!["pki", "show", seal.to_str().unwrap(), "--json"],
        vec!["pki", "verify-chain", seal.to_str().unwrap(), "--anchor", root.to_str().unwrap()],
        vec!["completions", "bash"],
        vec!["--help"],
    ];
    for args in &listings {
        let args: Vec<&str> = args.clone();
        let (cli_ref, envs_ref) = (&cli, &envs);
        let run = tokio::task::block_in_place(|| with_closed_stdout(cli_ref, envs_ref, &args));
        quiet_success(&args, &run);
        let (first, run) = tokio::task::block_in_place(|| through_head(cli_ref, envs_ref, &args));
        quiet_success(&args, &run);
        assert!(!first.is_empty(), "{args:?}: no first line");
    }
    // `verify` prints its report first: a reader that leaves early changes its exit status
    // (the verdict) in nothing, and nothing panics.
    lienthong(&cli, &["--profile", "ha-lau", "fetch", &id, "--out", "fetched"]).await.ok();
    let bundle = std::fs::read_dir(cli.path("fetched"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "ltd"))
        .unwrap();
    for json in [false, true] {
        let mut args = vec!["verify", bundle.to_str().unwrap(), "--anchor", root.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        let whole = lienthong(&cli, &args).await;
        let (cli_ref, envs_ref) = (&cli, &envs);
        for run in [
            tokio::task::block_in_place(|| with_closed_stdout(cli_ref, envs_ref, &args)),
            tokio::task::block_in_place(|| through_head(cli_ref, envs_ref, &args)).1,
        ] {
            assert_eq!(run.status, whole.status, "{args:?}: {}", run.stderr);
            assert!(
                !run.stderr.contains("panicked") && !run.stderr.contains("Broken pipe"),
                "{args:?}: {}",
                run.stderr
            );
        }
    }
    // A real failure on stdout is still a failure: /dev/full refuses every write.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = Command::new(harness::bin("lienthong"))
        .args(["completions", "bash"])
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write to standard output"));
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_no_route_reaches_is_refused_before_signing_and_a_waiting_one_shows_its_retries() {
    harness::logging();
    let (mut net, cli) = network_with_profiles().await;
    add_profile(&cli, &net, "tien-yen", TIEN_YEN);
    // 000.05.41.H49 is well formed, under Tiên Yên, but no node serves it: the commune's node
    // asks its district, which has no such child.
    let mut args: Vec<&str> = SEND.to_vec();
    let to = args.iter().position(|a| *a == "--to").unwrap();
    args[to + 1] = "000.05.41.H49";
    let run = lienthong(&cli, &args).await;
    assert_eq!(run.status, 1, "{}", run.stderr);
    let line = run.fails();
    println!("{line}");
    for expected in [
        "no node serves this recipient",
        "000.05.41.H49: the node of 000.00.41.H49 has no route to it",
        "no route to 000.05.41.H49",
        "Nothing was signed",
    ] {
        assert!(line.contains(expected), "{expected:?} in {line}");
    }
    assert!(lienthong(&cli, &["send", "--pending"]).await.ok().contains("No signed document is waiting"));
    let sent = lienthong(&cli, &["--profile", "phong-du", "inbox", "--sent", "--json"]).await.ok();
    assert_eq!(sent.trim(), "[]", "nothing reached the node: {sent}");

    // The recipient's node is down: the way cannot be confirmed, the document goes, and the
    // sender's list shows it retrying instead of "new".
    let phong_du = PHONG_DU.parse().unwrap();
    net.stop_node(&phong_du).await;
    let mut args: Vec<&str> = SEND.iter().map(|a| if *a == "phong-du" { "tien-yen" } else { *a }).collect::<Vec<_>>();
    args[to + 1] = PHONG_DU;
    let run = lienthong(&cli, &args).await;
    assert!(
        run.stderr.contains("could not be confirmed") && run.stderr.contains("will wait there and be retried"),
        "{}",
        run.stderr
    );
    let id = sent_id(&run.ok());
    let mut table = String::new();
    until("the retries in the sender's list", async || {
        table = lienthong(&cli, &["--profile", "tien-yen", "inbox", "--sent"]).await.ok();
        table.contains("sending (retrying:")
    })
    .await;
    println!("{table}");
    assert!(table.contains(&format!("to {PHONG_DU}")) && table.contains(&id), "{table}");
    assert!(has_local_time(&table), "{table}");
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_at_the_connection_are_said_with_their_cause_and_fix() {
    harness::logging();
    let (net, cli) = network_with_profiles().await;
    let dir = |code: &str| net.node_dir(&code.parse().unwrap());
    let root = net.dir.path().join("root.pem");
    // Write profiles by hand: `profile add` would refuse these mistakes up front.
    let profile = |agency: &str, node: &str, clerk_dir: &str, cert: &str| {
        format!(
            "[profiles.x]\nagency = \"{agency}\"\nnode = \"{}\"\nanchor = \"{}\"\nclerk_cert = \"{}\"\nclerk_key = \"{}\"\n",
            net.addrs[&node.parse().unwrap()],
            root.display(),
            dir(clerk_dir).join(cert).display(),
            dir(clerk_dir).join("clerk.key.pem").display()
        )
    };
    let try_with = async |text: String| {
        let shell = clerk_shell();
        std::fs::create_dir_all(shell.path("config")).unwrap();
        std::fs::write(shell.path("config/profiles.toml"), text).unwrap();
        let run = lienthong(&shell, &["inbox"]).await;
        assert_eq!(run.status, 1, "{}", run.stderr);
        run.fails()
    };
    // The address is another agency's node.
    let line = try_with(profile(HA_LAU, PHONG_DU, HA_LAU, "clerk.chain.pem")).await;
    println!("{line}");
    assert!(line.contains("is not 000.02.41.H49's node") && line.contains("--node"), "{line}");
    assert!(!line.contains("NotValidForName") && !line.contains("error 42"), "{line}");
    // A clerk of another agency at this node.
    let line = try_with(profile(PHONG_DU, PHONG_DU, HA_LAU, "clerk.chain.pem")).await;
    println!("{line}");
    assert!(line.contains("belongs to another agency than this clerk certificate"), "{line}");
    assert!(!line.contains("connection lost"), "{line}");
    // A chain file without the intermediates: the certificate alone.
    let leaf_only = cli.path("clerk-leaf-only.pem");
    let chain = std::fs::read_to_string(dir(PHONG_DU).join("clerk.chain.pem")).unwrap();
    let end = chain.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----\n".len();
    std::fs::write(&leaf_only, &chain[..end]).unwrap();
    let text = profile(PHONG_DU, PHONG_DU, PHONG_DU, "clerk.chain.pem")
        .replace(dir(PHONG_DU).join("clerk.chain.pem").to_str().unwrap(), leaf_only.to_str().unwrap());
    let line = try_with(text).await;
    println!("{line}");
    assert!(line.contains("chain file") || line.contains("not usable as a clerk certificate"), "{line}");
    assert!(!line.contains("UnknownIssuer"), "{line}");
    // A seal certificate where the clerk certificate goes.
    let text = profile(PHONG_DU, PHONG_DU, PHONG_DU, "seal.chain.pem").replace("clerk.key.pem", "seal.key.pem");
    let line = try_with(text).await;
    println!("{line}");
    assert!(line.contains("not usable as a clerk certificate"), "{line}");
    net.stop().await;
}

#[test]
fn usage_errors_exit_2_failures_1_and_help_0() {
    let mut cli = Cli::new();
    cli.env("LIENTHONG_CONFIG_DIR", cli.path("cfg").to_str().unwrap().to_owned().as_str());
    assert_eq!(cli.lienthong(["--help"]).status, 0);
    assert_eq!(cli.lienthong(["--version"]).status, 0);
    assert_eq!(cli.lienthong(["no-such-command"]).status, 2);
    assert_eq!(cli.lienthong(["inbox", "--no-such-flag"]).status, 2);
    assert_eq!(cli.lienthong(["completions", "tcsh"]).status, 2);
    let run = cli.lienthong(["inbox"]);
    assert_eq!(run.status, 1);
    assert!(run.fails().contains("no profile yet"));
    let help = cli.lienthong(["--help"]).ok();
    assert!(help.contains("LIENTHONG_CONFIG_DIR") && help.contains("Exit codes"), "{help}");
}

#[test]
fn completions_and_manual_pages_come_from_the_real_options() {
    let cli = Cli::new();
    for shell in ["bash", "zsh", "fish"] {
        let script = cli.lienthong(["completions", shell]).ok();
        assert!(
            script.contains("cert-profile") && script.contains("inbox"),
            "{shell}: {}",
            &script[..200.min(script.len())]
        );
    }
    let out = cli.lienthong(["man", "--out", "man1"]).ok();
    assert!(out.contains("manual pages"), "{out}");
    let page = std::fs::read_to_string(cli.path("man1/lienthong-pki-issue.1")).unwrap();
    assert!(page.contains(".TH") && page.contains("cert\\-profile"), "{page}");
    assert!(cli.path("man1/lienthong.1").exists() && cli.path("man1/lienthong-send.1").exists());
}

#[test]
fn certificate_profiles_are_cert_profile_and_the_old_spelling_still_works() {
    let mut cli = Cli::new();
    cli.env("ROOT_PASS", "root-pass").env("CA_PASS", "ca-pass");
    cli.lienthong(["pki", "init-root", "--dir", "root", "--key-passphrase-env", "ROOT_PASS"]).ok();
    let issued = cli
        .lienthong([
            "pki",
            "issue",
            "--ca",
            "root",
            "--cert-profile",
            "seal",
            "--agency",
            "000.00.00.H49",
            "--name",
            "Ủy ban nhân dân tỉnh Quảng Ninh",
            "--out",
            "seal",
            "--ca-passphrase-env",
            "ROOT_PASS",
        ])
        .ok();
    assert!(issued.contains("Issued a seal certificate"), "{issued}");
    let run = cli.lienthong([
        "pki",
        "issue",
        "--ca",
        "root",
        "--profile",
        "node",
        "--agency",
        "000.00.00.H49",
        "--name",
        "Ủy ban nhân dân tỉnh Quảng Ninh",
        "--out",
        "node",
        "--ca-passphrase-env",
        "ROOT_PASS",
    ]);
    assert!(run.stderr.contains("is now `--cert-profile node`"), "{}", run.stderr);
    assert!(run.ok().contains("Issued a node certificate"));
    // Times for people in local time with the offset, whatever TZ says; UTC in JSON.
    cli.env("TZ", "Asia/Ho_Chi_Minh");
    let shown = cli.lienthong(["pki", "show", "seal.cert.pem"]).ok();
    assert!(shown.contains(" +07:00"), "{shown}");
    let json: serde_json::Value =
        serde_json::from_str(&cli.lienthong(["pki", "show", "seal.cert.pem", "--json"]).ok()).unwrap();
    assert!(json[0]["not_after"].as_str().unwrap().ends_with('Z'), "{json}");
}

#[test]
fn the_demo_left_running_names_profiles_that_exist_and_stops_only_when_its_nodes_exited() {
    let mut cli = Cli::new();
    // Whatever fails below, the network does not outlive the test.
    struct StopDemo(std::path::PathBuf);
    impl Drop for StopDemo {
        fn drop(&mut self) {
            if self.0.join("net/pids.txt").exists() {
                let _ = Command::new(harness::bin("lienthong"))
                    .args(["demo", "--stop", "net"])
                    .current_dir(&self.0)
                    .output();
            }
        }
    }
    let _guard = StopDemo(cli.dir.path().to_owned());
    let run = cli.lienthong(["demo", "--dir", "net", "--topology", "quang-ninh-2025", "--keep"]);
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    cli.env("LIENTHONG_CONFIG_DIR", cli.path("net/config").to_str().unwrap().to_owned().as_str());
    let profiles: serde_json::Value = serde_json::from_str(&cli.lienthong(["profile", "list", "--json"]).ok()).unwrap();
    let names: Vec<&str> = profiles.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    let hinted: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("lienthong --profile "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert_eq!(hinted.len(), 2, "{}", run.stdout);
    for name in &hinted {
        assert!(names.contains(name), "the hint names {name}, not among {names:?}");
    }
    // The hinted inbox works against the running network.
    let inbox = cli.lienthong(["--profile", hinted[0], "inbox"]).ok();
    assert!(inbox.contains("UBND-VP"), "{inbox}");
    let pids: Vec<String> = std::fs::read_to_string(cli.path("net/pids.txt"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, p)| p.to_owned()))
        .collect();
    let stopped = cli.lienthong(["demo", "--stop", "net"]).ok();
    assert!(stopped.contains(&format!("{} node(s) stopped", pids.len())), "{stopped}");
    // Said stopped only once the processes are gone.
    for pid in &pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next()).unwrap_or(None);
        assert!(matches!(state, None | Some('Z')), "pid {pid} still running after --stop: {stat}");
    }
}
