//! Revocation in the network: CRLs pushed down the tree, fetched on connect, and provisional
//! verification (traffic continues, the operator is told) when CRLs are old or missing.

use std::time::Duration;

use harness::network::{NetOptions, RawPeer, TestNet, only, topology, wait_for};
use node::clerk_client::{ClerkClient, ClerkError, Rejection};
use node::protocol::NodeResponse;
use pki::{AgencyCode, Profile};

const PROVINCE: &str = "000.00.00.H49";
const TIEN_YEN: &str = "000.00.41.H49";
const PHONG_DU: &str = "000.01.41.H49";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_crls_fetches_them_from_its_parent_at_start_and_gets_new_ones_pushed() {
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

    // Without CRLs a node takes no certificate unchecked, so it asks its parent at start (and
    // at every poll until it has them): the district from the province, then the commune
    // from the district; no traffic is needed for that.
    for at in [TIEN_YEN, PHONG_DU] {
        wait_for(&format!("{at} to fetch CRLs from its parent"), Duration::from_secs(30), || async {
            net.node(at).trust.trust().validator().crls().len() >= 2
        })
        .await;
    }
    let clerk = net.clerk(PHONG_DU).await;
    net.document(PHONG_DU, &[PROVINCE], 1).submit(&clerk).await.unwrap();

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
            node.trust.trust().validator().crls().iter().any(|c| c.lookup(&victim).is_some())
        })
        .await;
    }
    net.stop().await;
}

/// The CA that issued `code`'s certificates in the test PKI: its own, or its nearest
/// ancestor's.
fn issuer_of(net: &TestNet, code: &str) -> AgencyCode {
    let code: AgencyCode = code.parse().unwrap();
    std::iter::once(code).chain(code.ancestors()).find(|c| net.pki.cas.contains_key(c)).unwrap()
}

/// What a clerk gets from a node that turns its certificate away: the refusal may come at
/// connecting or with the first request (the node closes right after the handshake).
async fn clerk_outcome(net: &TestNet, code: &str) -> Result<(), ClerkError> {
    let code_parsed: AgencyCode = code.parse().unwrap();
    let clerk = ClerkClient::connect(
        net.addrs[&code_parsed],
        code_parsed,
        &net.identity(&code_parsed, Profile::Clerk),
        vec![net.pki.root.cert.clone()],
    )
    .await?;
    clerk.inbox(1).await.map(|_| ())
}

/// How many live connections `at` holds with the node of `with`.
fn live_of(net: &TestNet, at: &str, with: &str) -> usize {
    net.node(at).trust.live_connections().iter().filter(|(who, _)| who == &format!("node {with}")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_clerk_is_refused_by_a_node_without_crls_with_an_alert_unless_the_operator_opts_in() {
    harness::logging();
    // The national node alone, started without any CRL, its clerk's certificate revoked at
    // the CA (the CRL saying so never reached the node).
    let topology = only(&topology("quang-ninh-2024"), &[PROVINCE]);
    let mut net = TestNet::prepare(topology, NetOptions { with_crls: false, ..NetOptions::default() });
    let code: AgencyCode = PROVINCE.parse().unwrap();
    let clerk_serial = net.pki.agencies[&code].clerk.cert.serial.clone();
    let ca = issuer_of(&net, PROVINCE);
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    net.pki.cas.get_mut(&ca).unwrap().revoke(&clerk_serial, now, pki::RevocationReason::KeyCompromise);
    net.start_node(&code).await;

    let refused = clerk_outcome(&net, PROVINCE).await.unwrap_err();
    eprintln!("the clerk is told: {refused}");
    assert!(
        matches!(&refused, ClerkError::Rejected(Rejection::NoRevocationInfo { reason }) if reason.contains("no CRL of")),
        "{refused:?}"
    );
    let health = node::health::report(net.node(PROVINCE)).await.unwrap();
    eprintln!("alerts: {:?}", health.alerts);
    assert!(
        health.alerts.iter().any(|a| a.starts_with("clerk certificate") && a.contains("revocation cannot be checked")),
        "{:?}",
        health.alerts
    );

    // The operator opts in: the clerk is taken, and the node says so as an alert.
    net.stop_node(&code).await;
    let config = net.config_path(&code);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("[retry]", "[crl]\ndanger_accept_unchecked = true\n\n[retry]")).unwrap();
    net.start_node(&code).await;
    clerk_outcome(&net, PROVINCE).await.unwrap();
    let health = node::health::report(net.node(PROVINCE)).await.unwrap();
    assert!(
        health.alerts.iter().any(|a| a.starts_with("clerk certificate") && a.contains("danger_accept_unchecked")),
        "{:?}",
        health.alerts
    );

    // With the CRL, the revocation bites whatever the opt-in says.
    net.stop_node(&code).await;
    net.publish_crls();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("[crl]\n", "[crl]\nfiles = [\"../crls.pem\"]\n")).unwrap();
    net.start_node(&code).await;
    let refused = clerk_outcome(&net, PROVINCE).await.unwrap_err();
    assert!(matches!(refused, ClerkError::Rejected(Rejection::ClerkRevoked)), "{refused:?}");
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_crls_refuse_traffic_unless_the_operator_opts_in_then_it_is_provisional_and_alerted() {
    harness::logging();
    let topology = only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]);
    let mut options = NetOptions::default();
    // The test CRLs were issued an hour ago: with a 1-minute budget they are too old.
    let stale = "[crl]\nfiles = [\"../crls.pem\"]\nfreshness = \"1m\"\npoll = \"200ms\"\n";
    options.extra_config = options.extra_config.replace("[retry]", &format!("{stale}\n[retry]"));
    options.with_crls = false;
    let net = TestNet::start(topology.clone(), options.clone()).await;
    let refused = clerk_outcome(&net, PHONG_DU).await.unwrap_err();
    assert!(
        matches!(&refused, ClerkError::Rejected(Rejection::NoRevocationInfo { reason }) if reason.contains("too old")),
        "{refused:?}"
    );
    net.stop().await;

    options.extra_config = options.extra_config.replace(stale, &format!("{stale}danger_accept_unchecked = true\n"));
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
    assert!(alerts.iter().any(|a| a.as_str().unwrap().contains("danger_accept_unchecked")), "{alerts:?}");
    // The document's signers: one alert naming the latest document, not one per document.
    let signers: Vec<&str> =
        alerts.iter().filter_map(|a| a.as_str()).filter(|a| a.starts_with("documents' signers")).collect();
    assert_eq!(signers.len(), 1, "{alerts:?}");
    assert!(signers[0].contains(&doc.id), "{signers:?}");
    assert!(health["since_start"]["provisional"].as_u64().unwrap() >= 1);
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_node_stops_receiving_within_seconds_without_a_restart() {
    harness::logging();
    let topology = only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]);
    let mut net = TestNet::start(topology, NetOptions::default()).await;
    let sender = net.clerk(TIEN_YEN).await;
    let recipient = net.clerk(PHONG_DU).await;
    net.document(TIEN_YEN, &[PHONG_DU], 1).submit(&sender).await.unwrap();
    wait_for("the first document at Phong Dụ", Duration::from_secs(20), || async {
        recipient.inbox(10).await.unwrap().len() == 1
    })
    .await;
    assert!(live_of(&net, TIEN_YEN, PHONG_DU) > 0, "the district holds a live connection with the commune");

    // The commune's node certificate is revoked; the district reads the new CRL file (polled
    // every second) and must stop handing it documents, without a restart.
    let code: AgencyCode = PHONG_DU.parse().unwrap();
    let serial = net.pki.agencies[&code].node.cert.serial.clone();
    let ca = issuer_of(&net, PHONG_DU);
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    net.pki.cas.get_mut(&ca).unwrap().revoke(&serial, now, pki::RevocationReason::KeyCompromise);
    let published = std::time::Instant::now();
    net.publish_crls();
    wait_for("the district to close its connections with the revoked commune", Duration::from_secs(20), || async {
        live_of(&net, TIEN_YEN, PHONG_DU) == 0
    })
    .await;
    eprintln!("connections with the revoked node closed {:?} after the CRL was published", published.elapsed());

    let second = net.document(TIEN_YEN, &[PHONG_DU], 2);
    second.submit(&sender).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let inbox = recipient.inbox(10).await.unwrap();
    assert_eq!(inbox.len(), 1, "a document reached the revoked node: {inbox:?}");
    let pending = net.node(TIEN_YEN).store.queue_depths(0).await.unwrap();
    eprintln!("the district's queue: {pending:?}");
    assert!(pending.pending >= 1, "the second document waits at the district");
    // What the district's clerk reads in `inbox --sent`: the cause in words, not a TLS alert.
    let mut errors: Vec<String> = Vec::new();
    wait_for("the sent list to say why the second document waits", Duration::from_secs(20), || async {
        sender.sent(10).await.unwrap().iter().flat_map(|d| &d.waiting).any(|w| w.last_error.is_some())
    })
    .await;
    for d in sender.sent(10).await.unwrap() {
        errors.extend(d.waiting.iter().filter_map(|w| w.last_error.clone()));
    }
    eprintln!("why it waits: {errors:?}");
    assert!(errors.iter().any(|e| e.contains("node certificate is revoked")), "{errors:?}");
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backdated_signature_of_a_revoked_official_is_refused_at_the_node_and_gets_no_hop_receipt() {
    harness::logging();
    let topology = only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]);
    let mut net = TestNet::start(topology, NetOptions::default()).await;
    // Phong Dụ's chairman's key is compromised and revoked at T; the thief signs after T with
    // iat = T − 2 s.
    let code: AgencyCode = PHONG_DU.parse().unwrap();
    let serial = net.pki.agencies[&code].person.cert.serial.clone();
    let ca = issuer_of(&net, PHONG_DU);
    let revoked_at = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - time::Duration::seconds(30);
    net.pki.cas.get_mut(&ca).unwrap().revoke(&serial, revoked_at, pki::RevocationReason::KeyCompromise);
    net.publish_crls();
    for at in [TIEN_YEN, PHONG_DU] {
        let node = net.node(at);
        wait_for(&format!("the CRL at {at}"), Duration::from_secs(20), || async {
            node.trust.trust().validator().crls().iter().any(|c| c.lookup(&serial).is_some())
        })
        .await;
    }
    let doc = net.document(PHONG_DU, &[TIEN_YEN], 7);
    let backdated = net.sign_at(doc.manifest.clone(), doc.bodies.clone(), revoked_at - time::Duration::seconds(2));

    // From the clerk: refused, with the reason.
    let clerk = net.clerk(PHONG_DU).await;
    let refused = backdated.submit(&clerk).await.unwrap_err();
    eprintln!("the clerk is told: {refused}");
    assert!(refused.to_string().contains("revoked"), "{refused}");
    assert!(refused.to_string().contains("whatever signing time"), "{refused}");

    // From a neighbour (the commune's node forwarding it): a signed status 02 with the
    // reason, no hop receipt, nothing stored.
    let peer = RawPeer::connect(&net, &net.identity(&code, Profile::Node), TIEN_YEN).await;
    let answer = peer.deliver(&backdated, &[TIEN_YEN]).await.unwrap();
    let NodeResponse::Refused { receipt } = answer else { panic!("not refused with a status: {answer:?}") };
    let receipt = pki::document::SignedReceipt::from_bytes(&receipt).unwrap();
    let receipt = &receipt.receipt;
    assert_eq!(receipt.kind, pki::document::ReceiptKind::Status(pki::document::StatusCode::Refused));
    let note = receipt.note.clone().unwrap_or_default();
    eprintln!("the signed refusal says: {note}");
    assert!(note.contains("revoked") && note.contains("whatever signing time"), "{note}");
    assert!(net.node(TIEN_YEN).store.document_by_id(&backdated.id).await.unwrap().is_none());
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
