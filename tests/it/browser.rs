//! The web face in a real browser: Debian's `chromium`, driven by Playwright
//! (`tests/browser/web.test.mjs`, run with Node's test runner). This test runs the nodes, makes
//! what the browser needs (a delivered document's bundle, the same tampered, one from another
//! root, a transfer stuck behind a partition) and checks after the browser is done that the
//! transfer it retried was delivered. Screenshots of every page are kept in the test's
//! directory and, with `LIENTHONG_SCREENSHOTS=1`, copied to `tests/browser/screenshots/` for the README.
//!
//! Needs `chromium` (`apt-get install chromium`) and `playwright-core` in
//! `tests/browser/node_modules` (`npm ci --prefix tests/browser`); `.ci/run` installs both.
//! Without them the test fails and says so.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::network::{NetOptions, TestNet, only, topology, wait_for};
use harness::web::{self, sample};

use crate::web::{HA_LAU, PHONG_DU, TIEN_YEN, code, fetched_bundle, foreign_bundle};

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

fn chromium() -> PathBuf {
    let path = PathBuf::from(std::env::var("LIENTHONG_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(path.exists(), "{} is missing: install Debian's browser (apt-get install chromium)", path.display());
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verifier_and_the_console_in_chromium() {
    harness::logging();
    let chromium = chromium();
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: npm ci --prefix {}",
        browser_dir().display()
    );
    // A retried transfer waits a minute: what the operator's button is for.
    let extra = format!(
        "{}[limits]\nconnect_timeout = \"1s\"\n",
        NetOptions::default()
            .extra_config
            .replace("initial = \"100ms\"\nmax = \"1s\"", "initial = \"60s\"\nmax = \"60s\"")
    );
    let mut net = TestNet::prepare(
        only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU, HA_LAU]),
        NetOptions { extra_config: extra, ..NetOptions::default() },
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", web::free_port()).parse().unwrap();
    let face = web::enable(&mut net, &code(TIEN_YEN), &addr.to_string(), "");
    for c in [TIEN_YEN, PHONG_DU, HA_LAU] {
        net.start_node(&code(c)).await;
    }
    let files = net.dir.path().join("browser");
    let shots = files.join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    // A document delivered, its bundle as Hà Lâu's clerk fetches it, and two that are not
    // what they claim.
    let clerk = net.clerk(PHONG_DU).await;
    let doc = net.document(PHONG_DU, &[HA_LAU], 5);
    doc.submit(&clerk).await.unwrap();
    wait_for("the document delivered", Duration::from_secs(20), || async {
        net.node(HA_LAU).store.document_by_id(&doc.id).await.unwrap().is_some()
    })
    .await;
    web::publish_crls_after_signing(&mut net, addr).await;
    let good = fetched_bundle(&net, HA_LAU, &doc).await;
    std::fs::write(files.join("cv-5.ltd"), &good).unwrap();
    std::fs::write(files.join("cv-5-altered.ltd"), web::tamper(&good, b"%PDF-1.4 C")).unwrap();
    std::fs::write(files.join("other-root.ltd"), foreign_bundle()).unwrap();

    // The partition: Hà Lâu down, a document for it fails once and waits a minute; Hà Lâu
    // comes back, the transfer still waits.
    net.stop_node(&code(HA_LAU)).await;
    let stuck = net.document(PHONG_DU, &[HA_LAU], 6);
    stuck.submit(&clerk).await.unwrap();
    let metrics = web::client(addr, None);
    wait_for("the transfer retrying", Duration::from_secs(20), || async {
        let m = metrics.get("/metrics").await.unwrap().text();
        sample(&m, "lienthong_transfers_retrying", &[]) >= 1.0
    })
    .await;
    net.start_node(&code(HA_LAU)).await;

    let fixture = serde_json::json!({
        "base": format!("https://{addr}"),
        "chromium": chromium,
        "shots": shots,
        "files": {
            "good": files.join("cv-5.ltd"),
            "tampered": files.join("cv-5-altered.ltd"),
            "foreign": files.join("other-root.ltd"),
        },
        "attachment": "cv-5.pdf",
        "operator": { "cert": face.cert_pem, "key": face.key_pem },
        "stuck": { "document": stuck.id, "next_hop": HA_LAU },
    });
    let fixture_path = files.join("fixture.json");
    std::fs::write(&fixture_path, serde_json::to_vec_pretty(&fixture).unwrap()).unwrap();

    let started = Instant::now();
    let out = tokio::process::Command::new("node")
        .args(["--test", "--test-reporter=spec", "web.test.mjs"])
        .current_dir(browser_dir())
        .env("LIENTHONG_BROWSER_FIXTURE", &fixture_path)
        .output()
        .await
        .expect("node (Node.js) runs the browser tests: apt-get install nodejs");
    let took = started.elapsed();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{report}");
    eprintln!(
        "WEB browser tests ran in {:.1} s (chromium headless, 6 tests, screenshots in {})",
        took.as_secs_f64(),
        shots.display()
    );
    assert!(out.status.success(), "the browser tests failed (output above)");

    // What the browser's Retry did: the document is at Hà Lâu, well before its next attempt.
    wait_for("the retried document at Hà Lâu", Duration::from_secs(10), || async {
        net.node(HA_LAU).store.document_by_id(&stuck.id).await.unwrap().is_some()
    })
    .await;
    let mut taken: Vec<String> =
        std::fs::read_dir(&shots).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    taken.sort();
    assert_eq!(
        taken,
        [
            "console-certificates.png",
            "console-overview.png",
            "console-refusals.png",
            "console-refused.png",
            "console-transfers-retried.png",
            "console-transfers-stuck.png",
            "verifier-failed.png",
            "verifier-form.png",
            "verifier-indeterminate.png",
            "verifier-passed-print.png",
            "verifier-passed.png",
        ]
    );
    if std::env::var_os("LIENTHONG_SCREENSHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        for name in &taken {
            std::fs::copy(shots.join(name), docs.join(name)).unwrap();
        }
        eprintln!("screenshots copied to {}", docs.display());
    }
    net.stop().await;
}
