//! Revocation in the network: CRLs pushed down the tree, fetched on connect, and provisional
//! verification (traffic continues, the operator is told) when CRLs are old or missing.

use std::time::Duration;

use harness::network::{NetOptions, TestNet, only, topology, wait_for};
use pki::{AgencyCode, Profile};

const PROVINCE: &str = "000.00.00.H49";
const TIEN_YEN: &str = "000.00.41.H49";
const PHONG_DU: &str = "000.01.41.H49";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crls_are_fetched_on_connect_and_pushed_down_the_tree() {
    harness::logging();
    // Only the province reads CRL files; the district and the commune start with none.
    let topology = only(&topology("quang-ninh-2024"), &[PROVINCE, TIEN_YEN, PHONG_DU]);
    let mut net = TestNet::prepare(topology, NetOptions { with_crls: false, ..NetOptions::default() });
    let province_config = net.config_path(&PROVINCE.parse().unwrap());
    let text = std::fs::read_to_string(&province_config).unwrap();
    std::fs::write(
        &province_config,
        text.replace("[tls]", "[crl]\nfiles = [\"../crls.pem\"]\npoll = \"200ms\"\n\n[tls]"),
    )
    .unwrap();
    for code in net.topology.codes() {
        net.start_node(&code).await;
    }
    assert!(net.node(TIEN_YEN).trust.validator().crls().is_empty());

    // The district connects to its parent (to forward a document) and fetches the CRLs.
    let clerk = net.clerk(PHONG_DU).await;
    net.document(PHONG_DU, &[PROVINCE], 1).submit(&clerk).await.unwrap();
    wait_for("the district to fetch CRLs from the province", Duration::from_secs(20), || async {
        net.node(TIEN_YEN).trust.validator().crls().len() >= 2
    })
    .await;

    // A new revocation published at the province reaches the district and the commune.
    let province_ca = net.pki.cas.get_mut(&PROVINCE.parse().unwrap()).unwrap();
    let victim = province_ca
        .issue(Profile::Node, "000.00.42.H49".parse().unwrap(), "Ủy ban nhân dân huyện Ba Chẽ")
        .unwrap()
        .cert
        .serial;
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    province_ca.revoke(&victim, now, pki::RevocationReason::Superseded);
    net.publish_crls();
    for at in [TIEN_YEN, PHONG_DU] {
        let node = net.node(at);
        wait_for(&format!("the pushed CRL at {at}"), Duration::from_secs(20), || async {
            node.trust.validator().crls().iter().any(|c| c.lookup(&victim).is_some())
        })
        .await;
    }
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_crls_make_verification_provisional_not_stop_traffic() {
    harness::logging();
    let topology = only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]);
    let mut options = NetOptions::default();
    // The test CRLs were issued an hour ago: with a 1-minute budget they are too old.
    options.extra_config = options
        .extra_config
        .replace("[retry]", "[crl]\nfiles = [\"../crls.pem\"]\nfreshness = \"1m\"\npoll = \"200ms\"\n\n[retry]");
    options.with_crls = false;
    let net = TestNet::start(topology, options).await;
    let sender = net.clerk(PHONG_DU).await;
    let recipient = net.clerk(TIEN_YEN).await;
    let doc = net.document(PHONG_DU, &[TIEN_YEN], 1);
    doc.submit(&sender).await.unwrap();
    wait_for("the document at Tiên Yên", Duration::from_secs(20), || async {
        !recipient.inbox(10).await.unwrap().is_empty()
    })
    .await;
    let entry = &recipient.inbox(10).await.unwrap()[0];
    assert!(entry.provisional, "taken, but marked provisional");
    let health: serde_json::Value = serde_json::from_str(&recipient.health().await.unwrap()).unwrap();
    let alerts = health["alerts"].as_array().unwrap();
    assert!(alerts.iter().any(|a| a.as_str().unwrap().contains("older than the freshness budget")), "{alerts:?}");
    assert!(health["since_start"]["provisional"].as_u64().unwrap() >= 1);
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_node_process_gracefully() {
    let topology = only(&topology("quang-ninh-2024"), &[PROVINCE]);
    let mut net = TestNet::prepare(topology, NetOptions::default());
    let code: AgencyCode = PROVINCE.parse().unwrap();
    let mut process = net.spawn_process(&code);
    let clerk = net.wait_ready(PROVINCE).await;
    clerk.close().await;
    let pid = process.child.id().to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || process.child.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    let log = std::fs::read_to_string(net.node_dir(&code).join("node.log")).unwrap();
    assert!(log.contains("node stopped"), "{log}");
}
