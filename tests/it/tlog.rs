//! The transparency log in real nodes (in-process, real QUIC, SQLite and PostgreSQL): every
//! document and receipt is a leaf in each log it passes, checkpoints are co-signed by the
//! parent, a delivered document's inclusion proof verifies offline, and a rewritten or forked
//! log is caught by the parent with its evidence stored and an alert raised.

use std::time::Duration;

use harness::network::{Database, NetOptions, RawPeer, TestNet, only, topology, wait_for};
use node::protocol::{NodeRequest, NodeResponse};
use pki::tlog::{
    AddCheckpoint, Checkpoint, Cosignature, Frontier, LogEntry, LogOrigin, LogProof, SignedCheckpoint, Via,
    inclusion_plan, leaf_hash,
};
use pki::{AgencyCode, Profile};
use serde_bytes::ByteBuf;
use sqlx::Row;

const PHONG_DU: &str = "000.01.41.H49";
const TIEN_YEN: &str = "000.00.41.H49";
const PROVINCE: &str = "000.00.00.H49";

fn code(s: &str) -> AgencyCode {
    s.parse().unwrap()
}

/// The default test options with checkpoints every 200 ms.
fn options(database: Database) -> NetOptions {
    let mut options = NetOptions { database, ..NetOptions::default() };
    options.extra_config.push_str("[log]\ncheckpoint_interval = \"200ms\"\n");
    options
}

async fn start(database: Database) -> TestNet {
    harness::logging();
    TestNet::start(only(&topology("quang-ninh-2024"), &[PHONG_DU, TIEN_YEN, PROVINCE]), options(database)).await
}

/// Waits until `at`'s latest checkpoint has `size` leaves or more and is co-signed by its parent.
async fn wait_witnessed(net: &TestNet, at: &str, size: u64) -> SignedCheckpoint {
    let store = &net.node(at).store;
    wait_for(&format!("{at}'s checkpoint of {size}+ leaves co-signed"), Duration::from_secs(30), || async {
        store.latest_witnessed_checkpoint().await.unwrap().is_some_and(|c| c.size >= size)
    })
    .await;
    let latest = store.latest_witnessed_checkpoint().await.unwrap().unwrap();
    SignedCheckpoint::parse(latest.note.as_bytes()).unwrap()
}

on_both_backends!(every_node_logs_a_document_and_proves_it_into_a_cosigned_checkpoint);

/// A document from Phong Dụ to the province: each node on the path has one document leaf for
/// it (and leaves for the receipts it signed and kept); each node's checkpoint is co-signed by
/// its parent; the inclusion proof of the document leaf into that checkpoint, built from the
/// stored subtree hashes, verifies offline as a `pki::tlog::LogProof`.
async fn every_node_logs_a_document_and_proves_it_into_a_cosigned_checkpoint(database: Database) {
    let mut net = start(database).await;
    let doc = net.document(PHONG_DU, &[PROVINCE], 1301);
    doc.submit(&net.clerk(PHONG_DU).await).await.unwrap();
    wait_for("the province to hold the document", Duration::from_secs(30), || async {
        net.node(PROVINCE).store.document_by_digest(&doc.digest).await.unwrap().is_some()
    })
    .await;
    // The verifier's view: the root and the CRLs published now.
    let mut crls = pki::CrlSet::new();
    for crl in net.pki.crls(time::OffsetDateTime::now_utc()).unwrap() {
        crls.add(crl);
    }
    let validator = pki::Validator::new(vec![net.pki.root.cert.clone()]).with_crls(crls);
    for (at, via) in
        [(PHONG_DU, Via::Clerk), (TIEN_YEN, Via::Node(code(PHONG_DU))), (PROVINCE, Via::Node(code(TIEN_YEN)))]
    {
        let store = &net.node(at).store;
        wait_for(&format!("{at} to index the document's leaf"), Duration::from_secs(30), || async {
            !store.log_leaves_for(&doc.digest).await.unwrap().is_empty()
        })
        .await;
        let leaves = store.log_leaves_for(&doc.digest).await.unwrap();
        let documents: Vec<(u64, LogEntry)> = leaves
            .iter()
            .map(|(i, bytes)| (*i, LogEntry::from_bytes(bytes).unwrap()))
            .filter(|(_, e)| matches!(e, LogEntry::Document { .. }))
            .collect();
        assert_eq!(documents.len(), 1, "{at}: one document leaf, got {documents:?}");
        let (index, entry) = documents[0].clone();
        match &entry {
            LogEntry::Document { document, via: v, .. } => {
                assert_eq!(document.to_string(), doc.id);
                assert_eq!(*v, via, "{at}: handed over by");
            }
            other => panic!("{other:?}"),
        }
        // The province is the top of this network: nobody witnesses it.
        if at == PROVINCE {
            continue;
        }
        let checkpoint = wait_witnessed(&net, at, index + 1).await;
        let size = checkpoint.checkpoint().size;
        let plan = inclusion_plan(index, size).unwrap();
        let proof = plan.assemble(&store.log_hashes(plan.nodes()).await.unwrap()).unwrap();
        let mut chains = vec![net.identity(&code(at), Profile::Seal).chain.iter().map(|c| c.der().to_vec()).collect()];
        chains.extend(store.log_cosigners().await.unwrap().into_iter().map(|(_, chain, _)| chain));
        let log_proof = LogProof::new(&entry, index, proof, checkpoint, chains);
        let bytes = log_proof.to_bytes();
        let evidence = LogProof::from_bytes(&bytes)
            .unwrap()
            .verify(&doc.digest, &validator, time::OffsetDateTime::now_utc())
            .unwrap_or_else(|e| panic!("{at}: the proof does not verify: {e:?}"));
        let parent = if at == PHONG_DU { TIEN_YEN } else { PROVINCE };
        assert_eq!(evidence.index, index);
        assert_eq!(evidence.earliest().map(|w| w.agency), Some(code(parent)), "{at}: witnessed by its parent");
        println!("{at}: leaf {index} of {size}, witnessed by {parent}; the proof is {} bytes", bytes.len());
    }
    net.stop().await;
}

on_both_backends!(a_log_rewritten_in_the_database_is_caught_by_the_parent);

/// Phong Dụ's operator rewrites the first leaf of its log directly in the database (and, to
/// cover the tracks, every subtree hash above it). At the next checkpoint Tiên Yên, which
/// co-signed the old history, refuses: the consistency proof from the co-signed checkpoint
/// fails. Both signed checkpoints are kept as evidence, `status` shows the alert, and Phong
/// Dụ's checkpoint is marked refused.
async fn a_log_rewritten_in_the_database_is_caught_by_the_parent(database: Database) {
    let net = start(database).await;
    let first = net.document(PHONG_DU, &[TIEN_YEN], 1311);
    first.submit(&net.clerk(PHONG_DU).await).await.unwrap();
    let witnessed = wait_witnessed(&net, PHONG_DU, 1).await;
    let parent = &net.node(TIEN_YEN).store;
    assert!(parent.log_forks(10).await.unwrap().is_empty());

    // The rewrite: leaf 0 says the document was taken a day later, every hash recomputed.
    let pool = net.raw_pool(&code(PHONG_DU)).await;
    let mut tx = pool.begin().await.unwrap();
    // Takes the write lock (SQLite) or the head row (PostgreSQL), as the checkpointer does.
    sqlx::query("UPDATE tlog_head SET size = size WHERE id = 1").execute(&mut *tx).await.unwrap();
    let rows = sqlx::query("SELECT idx, entry FROM tlog_leaves ORDER BY idx").fetch_all(&mut *tx).await.unwrap();
    let mut leaves: Vec<Vec<u8>> = rows.iter().map(|r| r.get::<Vec<u8>, _>("entry")).collect();
    let forged = match LogEntry::from_bytes(&leaves[0]).unwrap() {
        LogEntry::Document { envelope, document, via, at } => {
            LogEntry::Document { envelope, document, via, at: at + time::Duration::days(1) }
        }
        other => panic!("leaf 0 is {other:?}"),
    };
    leaves[0] = forged.to_bytes();
    sqlx::query("UPDATE tlog_leaves SET entry = $1 WHERE idx = 0")
        .bind(leaves[0].clone())
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("DELETE FROM tlog_nodes").execute(&mut *tx).await.unwrap();
    let mut frontier = Frontier::new();
    for leaf in &leaves {
        for (node, hash) in frontier.append(leaf_hash(leaf)).unwrap() {
            sqlx::query("INSERT INTO tlog_nodes (level, idx, hash) VALUES ($1, $2, $3)")
                .bind(i64::from(node.level))
                .bind(node.index as i64)
                .bind(hash.to_vec())
                .execute(&mut *tx)
                .await
                .unwrap();
        }
    }
    tx.commit().await.unwrap();
    pool.close().await;

    // The log grows; its next checkpoint reaches the parent.
    let second = net.document(PHONG_DU, &[TIEN_YEN], 1312);
    second.submit(&net.clerk(PHONG_DU).await).await.unwrap();
    wait_for("Tiên Yên to refuse Phong Dụ's rewritten log", Duration::from_secs(30), || async {
        !parent.log_forks(10).await.unwrap().is_empty()
    })
    .await;
    let forks = parent.log_forks(10).await.unwrap();
    assert_eq!(forks.len(), 1, "{forks:?}");
    let fork = &forks[0];
    assert_eq!(fork.agency, PHONG_DU);
    assert!(fork.reason.contains("consistency proof fails"), "{}", fork.reason);
    let kept = SignedCheckpoint::parse(fork.witnessed.as_bytes()).unwrap();
    let presented = SignedCheckpoint::parse(fork.presented.as_bytes()).unwrap();
    assert_eq!(kept.checkpoint(), witnessed.checkpoint(), "the evidence holds the checkpoint co-signed before");
    assert!(presented.checkpoint().size > kept.checkpoint().size);
    // Both are signed by Phong Dụ's seal: evidence anyone can check.
    let seal = net.identity(&code(PHONG_DU), Profile::Seal);
    let key = seal.chain[0].public_key.as_ref().unwrap();
    kept.verify(key).unwrap();
    presented.verify(key).unwrap();

    let health = node::health::report(net.node(TIEN_YEN)).await.unwrap();
    println!("Tiên Yên's alerts: {:#?}", health.alerts);
    assert!(
        health.alerts.iter().any(|a| a.contains(PHONG_DU) && a.contains("does not extend")),
        "no alert: {:?}",
        health.alerts
    );
    let child = &net.node(PHONG_DU).store;
    wait_for("Phong Dụ to record the refusal", Duration::from_secs(10), || async {
        child.latest_checkpoint().await.unwrap().is_some_and(|c| c.refused.is_some())
    })
    .await;
    let own = node::health::report(net.node(PHONG_DU)).await.unwrap();
    assert!(own.alerts.iter().any(|a| a.contains("refused to co-sign")), "{:?}", own.alerts);
    net.stop().await;
}

on_both_backends!(a_forked_child_is_caught_by_its_parent);

/// A child presents two checkpoints of the same size with different roots, both signed by its
/// seal (played by a raw peer with the child's node and seal identities, over QUIC). The
/// parent co-signs the first, refuses the second as a fork, keeps both, and alerts: in its
/// health read-out and by one mail to its operators, through a real SMTP server.
async fn a_forked_child_is_caught_by_its_parent(database: Database) {
    use harness::smtp::{MailSetup, SmtpOptions, SmtpPki, SmtpServer, SmtpTls};
    const OPERATOR: &str = "quantri@tienyen.example.gov.vn";
    harness::logging();
    let mut net = TestNet::prepare(only(&topology("quang-ninh-2024"), &[PHONG_DU, TIEN_YEN]), options(database));
    let mail_pki = SmtpPki::new("CA thư điện tử thử nghiệm");
    let mail_dir = harness::smtp::mail_dir();
    let port = harness::smtp::free_port();
    let _relay = SmtpServer::start(
        port,
        mail_dir.path(),
        &SmtpOptions { tls: SmtpTls::Starttls, pki: Some(&mail_pki), login: None, reject: None },
    );
    let setup = MailSetup {
        operators: &[OPERATOR],
        ..MailSetup::starttls(port, &mail_pki.ca_pem, "lienthong@tienyen.example.gov.vn", &[])
    };
    harness::smtp::set_mail(&net.config_path(&code(TIEN_YEN)), &setup.section(&net.node_dir(&code(TIEN_YEN))));
    net.start_node(&code(TIEN_YEN)).await;
    let child_node = net.identity(&code(PHONG_DU), Profile::Node);
    let child_seal = net.identity(&code(PHONG_DU), Profile::Seal);
    let chain: Vec<ByteBuf> = child_seal.chain.iter().map(|c| ByteBuf::from(c.der().to_vec())).collect();
    let peer = RawPeer::connect(&net, &child_node, TIEN_YEN).await;
    let origin = LogOrigin::first(code(PHONG_DU));
    let ask = |root: [u8; 32]| {
        let checkpoint = Checkpoint::new(origin, 3, root).sign(&child_seal.key).unwrap();
        NodeRequest::LogWitness {
            add_checkpoint: ByteBuf::from(
                AddCheckpoint { old_size: 0, proof: Vec::new(), checkpoint }.to_text().into_bytes(),
            ),
            seal_chain: chain.clone(),
        }
    };
    let first = Checkpoint::new(origin, 3, leaf_hash(b"history one"));
    match peer.request(&ask(leaf_hash(b"history one")), &[]).await.unwrap() {
        NodeResponse::Cosigned { cosignature, seal_chain } => {
            let cosignature = Cosignature::parse_line(&cosignature).unwrap();
            assert_eq!(cosignature.witness, code(TIEN_YEN));
            let witness = pki::Certificate::from_der(&seal_chain[0]).unwrap();
            cosignature.verify(&first, witness.public_key.as_ref().unwrap()).unwrap();
        }
        other => panic!("the first checkpoint was not co-signed: {other}"),
    }
    // Same size, another root. The child claims the witness has nothing yet (old 0): the two
    // signed checkpoints are evidence whatever it claims.
    match peer.request(&ask(leaf_hash(b"history two")), &[]).await.unwrap() {
        NodeResponse::WitnessRefused { reason, evidence, .. } => {
            assert!(evidence, "{reason}");
            assert!(reason.contains("fork"), "{reason}");
        }
        other => panic!("the fork was not refused: {other}"),
    }
    let store = &net.node(TIEN_YEN).store;
    let forks = store.log_forks(10).await.unwrap();
    assert_eq!(forks.len(), 1);
    let kept = SignedCheckpoint::parse(forks[0].witnessed.as_bytes()).unwrap();
    let presented = SignedCheckpoint::parse(forks[0].presented.as_bytes()).unwrap();
    assert_eq!(kept.checkpoint().size, presented.checkpoint().size);
    assert_ne!(kept.checkpoint().root, presented.checkpoint().root);
    // The witness still holds the first history, not the fork.
    let witnessed = store.log_witnessed_all().await.unwrap();
    assert_eq!(witnessed.len(), 1);
    assert_eq!(SignedCheckpoint::parse(witnessed[0].1.note.as_bytes()).unwrap().checkpoint(), &first);
    let health = node::health::report(net.node(TIEN_YEN)).await.unwrap();
    assert!(health.alerts.iter().any(|a| a.contains(PHONG_DU) && a.contains("fork")), "{:?}", health.alerts);
    let mail = harness::smtp::wait_for_mail(mail_dir.path(), 1, Duration::from_secs(30)).await;
    assert!(mail[0].rcpt_tos.iter().any(|r| r == OPERATOR), "{:?}", mail[0].rcpt_tos);
    assert!(
        mail[0].subject.contains("[CẢNH BÁO NHẬT KÝ]") && mail[0].subject.contains(PHONG_DU),
        "{}",
        mail[0].subject
    );
    assert!(mail[0].body.contains("fork"), "{}", mail[0].body);

    // Another agency's log is not this peer's to present.
    let other = Checkpoint::new(LogOrigin::first(code(TIEN_YEN)), 1, leaf_hash(b"x")).sign(&child_seal.key).unwrap();
    let request = NodeRequest::LogWitness {
        add_checkpoint: ByteBuf::from(
            AddCheckpoint { old_size: 0, proof: Vec::new(), checkpoint: other }.to_text().into_bytes(),
        ),
        seal_chain: chain.clone(),
    };
    assert!(matches!(peer.request(&request, &[]).await.unwrap(), NodeResponse::Error { .. }));
    net.stop().await;
}

on_both_backends!(the_log_commands_prove_save_verify_and_audit);

/// `lienthong log` as processes: `prove` on a delivered document verifies; `checkpoint --save`
/// builds a chain that `verify` checks offline (and refuses once a proof in it is altered);
/// `consistency` proves one checkpoint extends another; `audit` is clean for honest nodes and
/// finds an entry the parent claims this agency handed over but that it never sent.
async fn the_log_commands_prove_save_verify_and_audit(database: Database) {
    let net = start(database).await;
    let cli = crate::clerk_cli::clerk_shell();
    crate::clerk_cli::add_profile(&cli, &net, "phong-du", PHONG_DU);
    crate::clerk_cli::add_profile(&cli, &net, "tien-yen", TIEN_YEN);
    let doc = net.document(PHONG_DU, &[PROVINCE], 1321);
    doc.submit(&net.clerk(PHONG_DU).await).await.unwrap();
    wait_for("the province to hold the document", Duration::from_secs(30), || async {
        net.node(PROVINCE).store.document_by_digest(&doc.digest).await.unwrap().is_some()
    })
    .await;
    let store = &net.node(PHONG_DU).store;
    wait_for("Phong Dụ to index the document", Duration::from_secs(30), || async {
        !store.log_leaves_for(&doc.digest).await.unwrap().is_empty()
    })
    .await;
    let index = store.log_leaves_for(&doc.digest).await.unwrap()[0].0;
    wait_witnessed(&net, PHONG_DU, index + 1).await;

    let digest: String = doc.digest.iter().map(|b| format!("{b:02x}")).collect();
    let proved = cli.lienthong(["--profile", "phong-du", "log", "prove", &digest]).ok();
    println!("{proved}");
    assert!(proved.contains(&format!("document {} taken from this agency's clerk", doc.id)), "{proved}");
    assert!(proved.contains(&format!("co-signed by {TIEN_YEN}")), "{proved}");
    let unknown = cli.lienthong(["--profile", "phong-du", "log", "prove", &"00".repeat(32)]).fails();
    assert!(unknown.contains("no entry about envelope"), "{unknown}");

    let chain = cli.path("phong-du.chain.json");
    let chain_arg = chain.to_str().unwrap();
    cli.lienthong(["--profile", "phong-du", "log", "checkpoint", "--save", chain_arg]).ok();
    let more = net.document(PHONG_DU, &[TIEN_YEN], 1322);
    more.submit(&net.clerk(PHONG_DU).await).await.unwrap();
    let before: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&chain).unwrap()).unwrap();
    let first = SignedCheckpoint::parse(before["checkpoints"][0]["note"].as_str().unwrap().as_bytes()).unwrap();
    wait_for("Phong Dụ's log to grow", Duration::from_secs(30), || async {
        store.latest_checkpoint().await.unwrap().is_some_and(|c| c.size > first.checkpoint().size)
    })
    .await;
    let saved = cli.lienthong(["--profile", "phong-du", "log", "checkpoint", "--save", chain_arg]).ok();
    println!("{saved}");
    let verified = cli.lienthong(["--profile", "phong-du", "log", "verify", chain_arg]).ok();
    println!("{verified}");
    assert!(verified.contains("2 checkpoints of lienthong.gov.vn/log/000.01.41.H49"), "{verified}");
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&chain).unwrap()).unwrap();
    let second = SignedCheckpoint::parse(file["checkpoints"][1]["note"].as_str().unwrap().as_bytes()).unwrap();
    let (old, new) = (first.checkpoint().size.to_string(), second.checkpoint().size.to_string());
    let consistent = cli.lienthong(["--profile", "phong-du", "log", "consistency", &old, &new]).ok();
    assert!(consistent.contains(&format!("consistent: size {new} extends size {old}")), "{consistent}");
    // One hash of the saved consistency proof altered: the chain no longer verifies.
    let text = std::fs::read_to_string(&chain).unwrap();
    let hash = file["checkpoints"][1]["consistency"][0].as_str().unwrap().to_owned();
    let flipped = format!("{}{}", if hash.starts_with('0') { "1" } else { "0" }, &hash[1..]);
    std::fs::write(&chain, text.replace(&hash, &flipped)).unwrap();
    let refused = cli.lienthong(["--profile", "phong-du", "log", "verify", chain_arg]).fails();
    assert!(refused.contains("does not extend"), "{refused}");

    // Tiên Yên handed Phong Dụ's document to the province: the audit finds nothing amiss.
    wait_for("the province to index the document", Duration::from_secs(30), || async {
        !net.node(PROVINCE).store.log_leaves_for(&doc.digest).await.unwrap().is_empty()
    })
    .await;
    let clean = cli.lienthong(["--profile", "tien-yen", "log", "audit"]).ok();
    assert!(clean.contains(&format!("entries in the log of {PROVINCE} name this agency's node")), "{clean}");
    assert!(!clean.contains("ALERT"), "{clean}");
    // The province's log claims a document from Tiên Yên that Tiên Yên never sent.
    let forged = net.document(TIEN_YEN, &[PROVINCE], 1323);
    let entry = LogEntry::Document {
        envelope: forged.digest,
        document: forged.manifest.id(),
        via: Via::Node(code(TIEN_YEN)),
        at: time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap(),
    };
    let pool = net.raw_pool(&code(PROVINCE)).await;
    sqlx::query("INSERT INTO tlog_pending (entry) VALUES ($1)").bind(entry.to_bytes()).execute(&pool).await.unwrap();
    pool.close().await;
    let province = &net.node(PROVINCE).store;
    wait_for("the province to index the claimed entry", Duration::from_secs(30), || async {
        !province.log_leaves_for(&forged.digest).await.unwrap().is_empty()
    })
    .await;
    let audit = cli.lienthong(["--profile", "tien-yen", "log", "audit"]);
    println!("{}{}", audit.stdout, audit.stderr);
    assert!(audit.stdout.contains("ALERT") && audit.stdout.contains(&forged.id), "{}", audit.stdout);
    let error = audit.fails();
    assert!(error.contains("claims a document this agency never sent"), "{error}");
    net.stop().await;
}

on_both_backends!(the_national_hub_is_witnessed_by_the_level_1_nodes_it_names);

/// The hub has no parent: `log.witnesses` names level-1 nodes (its children), which co-sign
/// its checkpoints, while the province's own log is witnessed by the hub, its parent.
async fn the_national_hub_is_witnessed_by_the_level_1_nodes_it_names(database: Database) {
    harness::logging();
    const HUB: &str = "000.00.00.G22";
    let mut net = TestNet::prepare(
        only(&topology("quang-ninh-2024"), &[HUB, PROVINCE]),
        NetOptions { database, ..NetOptions::default() },
    );
    let append = |code: &str, text: &str| {
        let path = net.config_path(&self::code(code));
        let mut config = std::fs::read_to_string(&path).unwrap();
        config.push_str(text);
        std::fs::write(&path, config).unwrap();
    };
    append(HUB, &format!("\n[log]\ncheckpoint_interval = \"200ms\"\nwitnesses = [\"{PROVINCE}\"]\n"));
    append(PROVINCE, "\n[log]\ncheckpoint_interval = \"200ms\"\n");
    net.start_node(&code(HUB)).await;
    net.start_node(&code(PROVINCE)).await;
    let doc = net.document(HUB, &[PROVINCE], 1331);
    doc.submit(&net.clerk(HUB).await).await.unwrap();
    let hub = wait_witnessed(&net, HUB, 1).await;
    let witnesses: Vec<AgencyCode> = hub
        .note()
        .signatures()
        .iter()
        .filter_map(|s| Cosignature::from_note_signature(s).unwrap())
        .map(|c| c.witness)
        .collect();
    assert_eq!(witnesses, [code(PROVINCE)], "the hub's checkpoint is co-signed by the province it names");
    let province = wait_witnessed(&net, PROVINCE, 1).await;
    let witnesses: Vec<AgencyCode> = province
        .note()
        .signatures()
        .iter()
        .filter_map(|s| Cosignature::from_note_signature(s).unwrap())
        .map(|c| c.witness)
        .collect();
    assert_eq!(witnesses, [code(HUB)], "the province's checkpoint is co-signed by its parent, the hub");
    net.stop().await;
}

on_both_backends!(a_log_checkpoint_is_proof_of_existence_after_a_revocation);

/// Phong Dụ's document is logged by Tiên Yên and the checkpoint co-signed by the province;
/// then the official's key is revoked for keyCompromise. The bundle as signed (no receipts)
/// is INDETERMINATE REVOKED_NO_POE; with Tiên Yên's log proof beside it, PASSED, the proof of
/// existence being the province's cosignature — in `pki` and through `lienthong verify
/// --log-proof`.
async fn a_log_checkpoint_is_proof_of_existence_after_a_revocation(database: Database) {
    use pki::document::validation::{Indication, PoeEvidence, SubIndication, VerifyOptions, verify_bundle};
    let mut net = start(database).await;
    let doc = net.document(PHONG_DU, &[PROVINCE], 1341);
    doc.submit(&net.clerk(PHONG_DU).await).await.unwrap();
    let district = net.node(TIEN_YEN);
    wait_for("Tiên Yên to index the document", Duration::from_secs(30), || async {
        !district.store.log_leaves_for(&doc.digest).await.unwrap().is_empty()
    })
    .await;
    let index = district.store.log_leaves_for(&doc.digest).await.unwrap()[0].0;
    wait_witnessed(&net, TIEN_YEN, index + 1).await;
    let proofs = node::tlog::query::log_proofs(district, &doc.digest).await.unwrap();
    let proof = proofs.into_iter().find(|p| p.proof.index == index).unwrap().to_bytes();

    // The key is compromised, and revoked, after the cosignature.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let person = net.pki.agencies[&code(PHONG_DU)].person.cert.clone();
    let revoked_at = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let ca = net.pki.cas.values_mut().find(|ca| ca.cert.subject_raw == person.issuer_raw).unwrap();
    ca.revoke(&person.serial, revoked_at, pki::RevocationReason::KeyCompromise);
    let at = revoked_at + time::Duration::seconds(2);
    // Issued a second after the revocation (the demo PKI dates a CRL an hour before the time given).
    let crls = net.pki.crls(revoked_at + time::Duration::hours(1) + time::Duration::seconds(1)).unwrap();

    // The bundle as the sender signed it: envelope and attachments, no receipts.
    let envelope = pki::document::Envelope::from_bytes(&doc.envelope).unwrap();
    let crl_ders: Vec<Vec<u8>> = crls.iter().map(|c| c.der().to_vec()).collect();
    let mut bodies = doc.bodies.iter();
    let bundle =
        pki::document::bundle::write_bundle(std::io::Cursor::new(Vec::new()), &envelope, &crl_ders, &[], |_, out| {
            out.write_all(bodies.next().unwrap()).map_err(pki::document::bundle::BundleError::Io)
        })
        .unwrap()
        .into_inner();
    let mut options = VerifyOptions::new(vec![net.pki.root.cert.clone()], at);
    options.crls = crls.clone();
    let without = verify_bundle(std::io::Cursor::new(&bundle), &options).unwrap();
    assert_eq!(without.total.indication, Indication::Indeterminate, "{:#?}", without.total);
    assert_eq!(without.total.sub_indication, Some(SubIndication::RevokedNoPoe), "{:#?}", without.total);
    options.log_proofs = vec![proof.clone()];
    let with = verify_bundle(std::io::Cursor::new(&bundle), &options).unwrap();
    assert_eq!(with.total.indication, Indication::Passed, "{:#?}", with.total);
    let poe = &with.proofs_of_existence[0];
    assert_eq!(poe.by, code(PROVINCE));
    assert!(matches!(&poe.evidence, PoeEvidence::LogCheckpoint { log, .. } if log.ends_with(TIEN_YEN)), "{poe:?}");
    assert!(poe.time < revoked_at);
    println!("proof of existence: {poe}; the log proof is {} bytes", proof.len());

    // The same through the CLI.
    let cli = crate::clerk_cli::clerk_shell();
    std::fs::write(cli.path("doc.ltd"), &bundle).unwrap();
    std::fs::write(cli.path("crls.pem"), crls.iter().map(pki::Crl::to_pem).collect::<String>()).unwrap();
    std::fs::write(cli.path("doc.logproof"), &proof).unwrap();
    let root = net.dir.path().join("root.pem");
    let at_arg = at.format(&time::format_description::well_known::Rfc3339).unwrap();
    let args = |extra: &[&str]| {
        let mut v: Vec<String> = ["verify", cli.path("doc.ltd").to_str().unwrap(), "--anchor", root.to_str().unwrap()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(["--crl".into(), cli.path("crls.pem").to_str().unwrap().into(), "--at".into(), at_arg.clone()]);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = cli.lienthong(args(&[]));
    assert_eq!(run.status, 3, "INDETERMINATE without the log proof: {}{}", run.stdout, run.stderr);
    let run = cli.lienthong(args(&["--log-proof", cli.path("doc.logproof").to_str().unwrap()]));
    println!("{}", run.stdout);
    assert_eq!(run.status, 0, "PASSED with it: {}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("log proof #1"), "{}", run.stdout);
    // The report lists the proof that counted: whose log, which entry, who co-signed.
    let listed = run.stdout.split("Logged by (1):").nth(1).unwrap_or_else(|| panic!("no list: {}", run.stdout));
    assert!(listed.contains(&format!("lienthong.gov.vn/log/{TIEN_YEN}")) && listed.contains(PROVINCE), "{listed}");
    net.stop().await;
}

on_both_backends!(a_fetched_bundle_carries_the_proofs_of_every_node_it_passed);

/// Phong Dụ → Tiên Yên → province → Ba Chẽ → Thanh Sơn, the province's log witnessed by Tiên
/// Yên (as the hub's is by the level-1 nodes it names). The recipient's `fetch --evidence`
/// carries one proof per node on the path, each verifying offline and co-signed by the next
/// node up; the bundle written with them verifies with five log proofs of existence. The
/// sender's `fetch --evidence` gathers the same five the other way. Both carry the path's four
/// hop receipts, gathered from the nodes that keep them. A neighbour the document did not
/// pass to is refused.
async fn a_fetched_bundle_carries_the_proofs_of_every_node_it_passed(database: Database) {
    use pki::document::validation::{Indication, PoeEvidence, VerifyOptions, verify_bundle};
    const BA_CHE: &str = "000.00.42.H49";
    const THANH_SON: &str = "000.01.42.H49";
    harness::logging();
    let path = [PHONG_DU, TIEN_YEN, PROVINCE, BA_CHE, THANH_SON];
    let mut net =
        TestNet::prepare(only(&topology("quang-ninh-2024"), &path), NetOptions { database, ..NetOptions::default() });
    for at in path {
        let file = net.config_path(&code(at));
        let mut config = std::fs::read_to_string(&file).unwrap();
        config.push_str("\n[log]\ncheckpoint_interval = \"200ms\"\n");
        if at == PROVINCE {
            config.push_str(&format!("witnesses = [\"{TIEN_YEN}\"]\n"));
        }
        std::fs::write(&file, config).unwrap();
    }
    for at in path {
        net.start_node(&code(at)).await;
    }
    let doc = net.document(PHONG_DU, &[THANH_SON], 1351);
    doc.submit(&net.clerk(PHONG_DU).await).await.unwrap();
    wait_for("Thanh Sơn to hold the document", Duration::from_secs(30), || async {
        net.node(THANH_SON).store.document_by_digest(&doc.digest).await.unwrap().is_some()
    })
    .await;
    // The verifier's view two minutes from now, with CRLs issued after every cosignature the
    // fetches below gather (the demo PKI dates a CRL an hour before the time given).
    let verified_at = time::OffsetDateTime::now_utc() + time::Duration::minutes(2);
    let mut crls = pki::CrlSet::new();
    for crl in net.pki.crls(verified_at + time::Duration::minutes(59)).unwrap() {
        crls.add(crl);
    }
    let validator = pki::Validator::new(vec![net.pki.root.cert.clone()]).with_crls(crls);
    let origins: Vec<String> = path.iter().map(|c| LogOrigin::first(code(c)).to_string()).collect();
    let witness_of = |log: &str| {
        let at = path.iter().find(|c| LogOrigin::first(code(c)).to_string() == log).unwrap();
        if *at == PROVINCE { code(TIEN_YEN) } else { net.topology.parent(&code(at)).unwrap() }
    };
    // `fetch --evidence` until every node's checkpoint holding the document is co-signed.
    let gather = |at: &'static str| {
        let (net, origins, id) = (&net, &origins, doc.id.clone());
        async move {
            let clerk = net.clerk(at).await;
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let fetched = clerk
                    .fetch(&id, true, |a, mut recv| async move {
                        let mut body = vec![0u8; a.size as usize];
                        recv.read_exact(&mut body)
                            .await
                            .map_err(|e| node::clerk_client::ClerkError::Transport(e.to_string()))?;
                        Ok(recv)
                    })
                    .await
                    .unwrap();
                let logs: Vec<String> = fetched
                    .log_proofs
                    .iter()
                    .map(|p| LogProof::from_bytes(p).unwrap().proof.checkpoint.checkpoint().origin.to_string())
                    .collect();
                if origins.iter().all(|o| logs.contains(o)) {
                    return fetched;
                }
                assert!(std::time::Instant::now() < deadline, "{at}: proofs from {logs:?} only after 30 s");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let gathered = [gather(THANH_SON).await, gather(PHONG_DU).await];
    for (at, fetched) in [THANH_SON, PHONG_DU].into_iter().zip(gathered) {
        assert_eq!(fetched.log_proofs.len(), path.len(), "{at}: one document entry per node, each once");
        // And every hand-over's hop receipt, each kept by the node it was given to and gathered
        // along the path the same way: four, each once.
        let mut hops: Vec<(AgencyCode, AgencyCode)> = fetched
            .receipts
            .iter()
            .map(|r| pki::document::SignedReceipt::from_bytes(r).unwrap().receipt)
            .filter(|r| r.kind == pki::document::ReceiptKind::Hop)
            .map(|r| (r.by, r.to))
            .collect();
        hops.sort();
        let mut expected: Vec<(AgencyCode, AgencyCode)> = path.windows(2).map(|w| (code(w[1]), code(w[0]))).collect();
        expected.sort();
        assert_eq!(hops, expected, "{at}: the hop receipts of the path");
        for bytes in &fetched.log_proofs {
            let evidence = LogProof::from_bytes(bytes)
                .unwrap()
                .verify(&doc.digest, &validator, verified_at)
                .unwrap_or_else(|e| panic!("{at}: a carried proof does not verify: {e:?}"));
            let log = evidence.origin.to_string();
            assert!(matches!(evidence.entry, LogEntry::Document { .. }), "{at}: {log} proves a document entry");
            assert_eq!(evidence.earliest().map(|w| w.agency), Some(witness_of(&log)), "{at}: {log}'s witness");
        }
        println!(
            "{at}: {} proofs, {} bytes in all",
            fetched.log_proofs.len(),
            fetched.log_proofs.iter().map(Vec::len).sum::<usize>()
        );
        if at == THANH_SON {
            // The bundle as `lienthong fetch` writes it verifies with the five proofs counted.
            let envelope = pki::document::Envelope::from_bytes(&fetched.envelope).unwrap();
            let carried = pki::document::Carried {
                crls: &fetched.crls,
                receipts: &fetched.receipts,
                log_proofs: &fetched.log_proofs,
            };
            let mut bodies = doc.bodies.iter();
            let bundle = pki::document::write_bundle_carrying(
                std::io::Cursor::new(Vec::new()),
                pki::document::BundleLimits::default(),
                &envelope,
                carried,
                |_, out| out.write_all(bodies.next().unwrap()).map_err(pki::document::bundle::BundleError::Io),
            )
            .unwrap()
            .into_inner();
            let mut options = VerifyOptions::new(vec![net.pki.root.cert.clone()], verified_at);
            options.crls = validator.crls().iter().cloned().collect();
            let report = verify_bundle(std::io::Cursor::new(&bundle), &options).unwrap();
            assert_eq!(report.total.indication, Indication::Passed, "{:#?}", report.total);
            let logged = report
                .proofs_of_existence
                .iter()
                .filter(|p| matches!(p.evidence, PoeEvidence::LogCheckpoint { .. }))
                .count();
            assert_eq!(logged, path.len(), "{:#?}", report.proofs_of_existence);
        }
    }

    // Tiên Yên routed the document to the province, not to Phong Dụ: asked by Phong Dụ for
    // the proofs back toward the sender, it refuses; toward the recipients (it took the
    // document from Phong Dụ), it answers.
    let peer = RawPeer::connect(&net, &net.identity(&code(PHONG_DU), Profile::Node), TIEN_YEN).await;
    let ask = |toward| NodeRequest::PathEvidence { envelope: ByteBuf::from(doc.digest.to_vec()), toward, hops_left: 0 };
    match peer.request(&ask(node::protocol::Toward::Sender), &[]).await.unwrap() {
        NodeResponse::Error { kind: node::protocol::ErrorKind::Forbidden, .. } => {}
        other => panic!("expected a refusal, got {other}"),
    }
    match peer.request(&ask(node::protocol::Toward::Recipients), &[]).await.unwrap() {
        NodeResponse::PathEvidence { proofs, receipts, .. } => {
            assert_eq!(proofs.len(), 1, "Tiên Yên's own entry only (hops_left 0)");
            let hops: Vec<(AgencyCode, AgencyCode)> = receipts
                .iter()
                .map(|r| pki::document::SignedReceipt::from_bytes(r).unwrap().receipt)
                .map(|r| (r.by, r.to))
                .collect();
            assert_eq!(hops, [(code(PROVINCE), code(TIEN_YEN))], "the hop receipt Tiên Yên was given, and no other");
        }
        other => panic!("expected proofs, got {other}"),
    }
    net.stop().await;
}

on_both_backends!(a_round_indexes_more_leaves_than_a_write_takes_under_one_checkpoint);

/// More pending leaves than one write indexes (`INTEGRATE_PER_WRITE`, which bounds what one
/// SQLite savepoint keeps in memory): one round indexes them all, in several writes, and signs
/// one checkpoint of them all.
async fn a_round_indexes_more_leaves_than_a_write_takes_under_one_checkpoint(database: Database) {
    let net = start(database).await;
    let node = net.node(TIEN_YEN);
    let before = node::tlog::checkpoint(node).await.unwrap().map_or(0, |c| c.size);
    let n = 2 * node::storage::tlog::INTEGRATE_PER_WRITE as u64 + 500;
    let at = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let mut tx = node.store.begin().await.unwrap();
    for i in 0..n {
        let mut receipt = [0u8; 32];
        receipt[..8].copy_from_slice(&i.to_be_bytes());
        tx.log_entry(&LogEntry::Signed { receipt, kind: pki::document::ReceiptKind::Hop, envelope: [7; 32], at });
    }
    tx.commit().await.unwrap();
    let after = node::tlog::checkpoint(node).await.unwrap().unwrap();
    assert_eq!(after.size, before + n, "every pending leaf is under the round's checkpoint");
    let checkpoint = SignedCheckpoint::parse(after.note.as_bytes()).unwrap();
    assert_eq!(checkpoint.checkpoint().size, after.size);
    net.stop().await;
}
