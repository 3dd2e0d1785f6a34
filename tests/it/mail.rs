//! Email notifications (issue 7) against a real SMTP server on loopback (aiosmtpd, started by
//! the harness): every kind of notification arrives with the right headers and decodes to the
//! right Vietnamese; STARTTLS and implicit TLS work and an untrusted relay is refused; an SMTP
//! outage while documents arrive delays mail without losing or repeating any of it, across
//! node restarts; a bad `[mail]` section stops the node at `check`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use harness::network::{Database, NetOptions, SignedDocument, TestNet, only, topology, wait_for};
use harness::smtp::{MailSetup, Received, SmtpOptions, SmtpPki, SmtpServer, SmtpTls, free_port, set_mail};
use pki::AgencyCode;
use pki::document::manifest::Urgency;

const TIEN_YEN: &str = "000.00.41.H49";
const PHONG_DU: &str = "000.01.41.H49";
/// A commune of Tiên Yên that runs no node: documents to it are refused.
const NOWHERE: &str = "000.09.41.H49";

const PHONG_DU_FROM: &str = "Liên thông Phong Dụ <lienthong@phongdu.example.gov.vn>";
const PHONG_DU_CLERK: &str = "Văn thư Phong Dụ <vanthu@phongdu.example.gov.vn>";
const PHONG_DU_OPERATOR: &str = "quantri@phongdu.example.gov.vn";
const TIEN_YEN_FROM: &str = "lienthong@tienyen.example.gov.vn";
const TIEN_YEN_CLERK: &str = "vanthu@tienyen.example.gov.vn";

fn code(s: &str) -> AgencyCode {
    s.parse().unwrap()
}

/// Tiên Yên and its commune Phong Dụ, each node given the `[mail]` section of `mail(code)`.
async fn network(database: Database, mail: impl Fn(&str, &std::path::Path) -> Option<String>) -> TestNet {
    let topology = only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]);
    let mut net = TestNet::prepare(topology, NetOptions { database, ..NetOptions::default() });
    for c in [TIEN_YEN, PHONG_DU] {
        if let Some(section) = mail(c, &net.node_dir(&code(c))) {
            set_mail(&net.config_path(&code(c)), &section);
        }
    }
    for c in net.topology.codes() {
        net.start_node(&c).await;
    }
    net
}

/// Stops a node and starts it again on the same address.
async fn restart(net: &mut TestNet, agency: &str) {
    net.stop_node(&code(agency)).await;
    net.start_node(&code(agency)).await;
}

/// `doc` re-signed as promulgated five days ago, due two days later, with another urgency and
/// subject: overdue now.
fn overdue(net: &TestNet, doc: SignedDocument, urgency: Urgency, subject: &str) -> SignedDocument {
    let mut m = doc.manifest.clone();
    m.date -= time::Duration::days(5);
    m.due = Some(m.date + time::Duration::days(2));
    m.urgency = urgency;
    m.subject = subject.into();
    net.sign(m, doc.bodies)
}

/// A person certificate that expires in ten days, as PEM.
fn expiring_certificate() -> String {
    let now = time::OffsetDateTime::now_utc();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "Nguyễn Văn An");
    params.not_before = now - time::Duration::days(355);
    params.not_after = now + time::Duration::days(10);
    params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem()
}

fn to(mail: &Received, address: &str) -> bool {
    mail.rcpt_tos.iter().any(|r| r == address)
}

fn expected_id(agency: &str, key: &str, domain: &str) -> String {
    node::mail::message::message_id(&code(agency), key, domain)
}

on_both_backends!(every_notification_arrives_over_starttls_decoded_and_once);

async fn every_notification_arrives_over_starttls_decoded_and_once(database: Database) {
    harness::logging();
    let pki = SmtpPki::new("CA thư điện tử thử nghiệm");
    let mail_dir = harness::smtp::mail_dir();
    let port = free_port();
    let options = SmtpOptions {
        tls: SmtpTls::Starttls,
        pki: Some(&pki),
        login: Some(("lienthong", "mật khẩu SMTP")),
        reject: None,
    };
    let _smtp = SmtpServer::start(port, mail_dir.path(), &options);
    let net = network(database, |c, dir| {
        let setup = match c {
            PHONG_DU => MailSetup {
                login: Some(("lienthong", "mật khẩu SMTP")),
                operators: &[PHONG_DU_OPERATOR],
                extra: "certificates = [\"person.chain.pem\", \"sap-het-han.pem\"]\ndigest_at = \"00:00\"\n",
                ..MailSetup::starttls(port, &pki.ca_pem, PHONG_DU_FROM, &[PHONG_DU_CLERK])
            },
            _ => MailSetup {
                login: Some(("lienthong", "mật khẩu SMTP")),
                extra: "notify_status = true\n",
                ..MailSetup::starttls(port, &pki.ca_pem, TIEN_YEN_FROM, &[TIEN_YEN_CLERK])
            },
        };
        std::fs::write(dir.join("sap-het-han.pem"), expiring_certificate()).unwrap();
        Some(setup.section(dir))
    })
    .await;
    let tien_yen = net.clerk(TIEN_YEN).await;
    let phong_du = net.clerk(PHONG_DU).await;

    // A: hỏa tốc, overdue, Tiên Yên → Phong Dụ. B: to Phong Dụ and to a commune with no node.
    // C: Phong Dụ → that commune, refused on the way by Tiên Yên.
    let subject_a = "Về việc ứng phó khẩn cấp với bão số 3 (Yagi) trên địa bàn xã";
    let a = overdue(&net, net.document(TIEN_YEN, &[PHONG_DU], 1), Urgency::Flash, subject_a);
    let b = net.document(TIEN_YEN, &[PHONG_DU, NOWHERE], 2);
    let c = net.document(PHONG_DU, &[NOWHERE], 3);
    a.submit(&tien_yen).await.unwrap();
    b.submit(&tien_yen).await.unwrap();
    c.submit(&phong_du).await.unwrap();
    wait_for("both documents in Phong Dụ's inbox", Duration::from_secs(30), || async {
        phong_du.inbox(10).await.unwrap().len() == 2
    })
    .await;
    phong_du.post_status(&a.id, 3, Some("Văn thư đã tiếp nhận".into())).await.unwrap();
    // Tiên Yên asks to recall B; Phong Dụ refuses the recall.
    tien_yen.recall(&b.id, Some("Gửi nhầm nơi nhận".into())).await.unwrap();
    wait_for("the recall request at Phong Dụ", Duration::from_secs(30), || async {
        phong_du.inbox(10).await.unwrap().iter().any(|e| e.document == b.id && e.recall_requested)
    })
    .await;
    phong_du.post_status(&b.id, 16, Some("Văn bản đã được triển khai".into())).await.unwrap();

    // The node checked certificates and the digest when it started (digest_at is 00:00 here):
    // the certificate expiring in ten days was queued then, and the digest found nothing
    // overdue. The checks take the time as an argument; asked again now, the certificate is
    // not queued twice and the digest lists A.
    let node_pd = net.node(PHONG_DU);
    let now = node_pd.now();
    let days = time::Duration::days;
    // Ten days left is the 14-day step: queued at start, so not again now or a day on.
    assert_eq!(node::mail::periodic::check_certificates(node_pd, now).await.unwrap(), 0, "warned twice in one step");
    assert_eq!(node::mail::periodic::check_certificates(node_pd, now + days(1)).await.unwrap(), 0);
    let today = now.to_offset(node::mail::message::ICT).date();
    let digest_key = format!("digest:{today}");
    assert!(!node::mail::queue::queued(&node_pd.store, &digest_key).await.unwrap(), "nothing was overdue at start");
    assert_eq!(node::mail::periodic::check_digest(node_pd, now).await.unwrap(), Some(today));
    assert!(node::mail::queue::queued(&node_pd.store, &digest_key).await.unwrap(), "A is overdue now");

    // Phong Dụ: 2 arrivals, 1 failure, 1 digest, 1 expiry warning, and the recall request (the
    // clerk must answer it, so it is mailed although notify_status is off there). Tiên Yên:
    // statuses 01 ×2 and 03, B undeliverable to one recipient, the recall refused.
    harness::smtp::wait_for_mail(mail_dir.path(), 11, Duration::from_secs(60)).await;
    // Both mail queues empty: everything either node will ever send for this is at the relay.
    wait_for("both mail queues to be empty", Duration::from_secs(30), || async {
        let mut empty = true;
        for agency in [PHONG_DU, TIEN_YEN] {
            let now = node::storage::millis(time::OffsetDateTime::now_utc());
            empty &= node::mail::queue::health(&net.node(agency).store, now).await.unwrap().pending == 0;
        }
        empty
    })
    .await;
    let all = harness::smtp::received(mail_dir.path());
    assert_eq!(all.len(), 11, "more mail than expected: {:#?}", all.iter().map(|m| &m.subject).collect::<Vec<_>>());
    let ids: BTreeSet<&str> = all.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids.len(), all.len(), "a notification arrived twice");
    for m in &all {
        assert_eq!(m.tls.as_deref(), Some("TLSv1.3"), "{}", m.subject);
        assert_eq!(m.authenticated_as.as_deref(), Some("lienthong"));
        assert!(m.raw_is_ascii, "{} was not transfer-encoded", m.subject);
        assert_eq!((m.content_type.as_str(), m.charset.as_deref()), ("text/plain", Some("utf-8")));
        assert_eq!(m.auto_submitted, "auto-generated");
    }
    let of = |kind: &str, rcpt: &str| -> Vec<&Received> {
        all.iter().filter(|m| m.notification == kind && to(m, rcpt)).collect()
    };

    // The arrival of A: urgency first, the sender's name, the subject, Vietnamese decoded.
    let arrivals = of("arrived", "vanthu@phongdu.example.gov.vn");
    assert_eq!(arrivals.len(), 2, "{:#?}", all.iter().map(|m| (&m.notification, &m.subject)).collect::<Vec<_>>());
    let arrival = arrivals.iter().find(|m| m.subject.contains("bão số 3")).unwrap();
    assert_eq!(arrival.subject, format!("[HỎA TỐC] Ủy ban nhân dân huyện Tiên Yên: {subject_a}"));
    assert!(arrival.raw_subject.starts_with("=?utf-8?"), "not RFC 2047: {}", arrival.raw_subject);
    assert_eq!(arrival.from, PHONG_DU_FROM);
    assert_eq!(arrival.mail_from, "lienthong@phongdu.example.gov.vn");
    assert_eq!(arrival.to, ["Văn thư Phong Dụ <vanthu@phongdu.example.gov.vn>"]);
    assert_eq!(arrival.message_id, expected_id(PHONG_DU, &format!("arrived:{}", a.id), "phongdu.example.gov.vn"));
    for line in [
        "Độ khẩn:        Hỏa tốc".to_owned(),
        "Số, ký hiệu:    1/UBND-VP".to_owned(),
        format!("Hạn xử lý:      {}", node::mail::message::date_vi(a.manifest.due.unwrap())),
        format!("Mã văn bản:     {}", a.id),
        format!("    lienthong fetch {} --out van-ban-1", a.id),
    ] {
        assert!(arrival.body.contains(&line), "{line:?} missing from:\n{}", arrival.body);
    }
    assert!(arrival.body.contains("HỎA TỐC: cần chuyển và xử lý ngay"), "{}", arrival.body);
    let normal = arrivals.iter().find(|m| !m.subject.contains("bão số 3")).unwrap();
    assert!(
        normal.subject.starts_with("[THƯỜNG] Ủy ban nhân dân huyện Tiên Yên: Về việc thử nghiệm"),
        "{}",
        normal.subject
    );

    // C refused by Tiên Yên on its way: Phong Dụ's clerks are told why.
    let failed = of("failed", "vanthu@phongdu.example.gov.vn");
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].subject.starts_with(&format!("[KHÔNG GỬI ĐƯỢC] 3/UBND-VP đến {NOWHERE}: ")),
        "{}",
        failed[0].subject
    );
    assert!(failed[0].body.contains(&format!("no route to {NOWHERE}")), "{}", failed[0].body);
    assert!(failed[0].body.contains(&format!("lienthong track {}", c.id)), "{}", failed[0].body);
    // B's unknown recipient, refused by Tiên Yên's own node: its clerks are told too.
    let failed = of("failed", TIEN_YEN_CLERK);
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().any(|m| m.subject.contains(&format!("2/UBND-VP đến {NOWHERE}"))), "{failed:#?}");
    // The refused recall.
    let refused = failed.iter().find(|m| m.subject.starts_with("[TỪ CHỐI THU HỒI]")).expect("the refused recall");
    assert_eq!(
        refused.subject,
        format!("[TỪ CHỐI THU HỒI] 2/UBND-VP bởi {PHONG_DU}: Về việc thử nghiệm liên thông văn bản số 2")
    );
    assert!(refused.body.contains("Lý do:          Văn bản đã được triển khai\n"), "{}", refused.body);

    // Statuses back at Tiên Yên (notify_status): 01 for A and B, 03 for A.
    let statuses = of("status", TIEN_YEN_CLERK);
    let subjects: BTreeSet<&str> = statuses.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(statuses.len(), 3, "{subjects:?}");
    assert!(
        subjects.iter().any(|s| s.starts_with(&format!("[TRẠNG THÁI 03] Đã tiếp nhận – {PHONG_DU}: {subject_a}"))),
        "{subjects:?}"
    );
    assert_eq!(subjects.iter().filter(|s| s.starts_with("[TRẠNG THÁI 01] Đã đến nơi nhận")).count(), 2, "{subjects:?}");
    // At Phong Dụ (notify_status off) only the recall request, which the clerk must answer.
    let at_phong_du = of("status", "vanthu@phongdu.example.gov.vn");
    assert_eq!(at_phong_du.len(), 1, "{:#?}", at_phong_du.iter().map(|m| &m.subject).collect::<Vec<_>>());
    assert!(
        at_phong_du[0].subject.starts_with(&format!("[ĐỀ NGHỊ THU HỒI] 2/UBND-VP của {TIEN_YEN}")),
        "{}",
        at_phong_du[0].subject
    );
    assert!(at_phong_du[0].body.contains("recall-accepted"), "{}", at_phong_du[0].body);

    // The digest lists A (overdue, accepted but not completed), not B (no due date).
    let digest = of("digest", "vanthu@phongdu.example.gov.vn");
    assert_eq!(digest.len(), 1);
    let day = node::mail::message::date_vi(today);
    assert_eq!(digest[0].subject, format!("[TỔNG HỢP {day}] 1 văn bản quá hạn xử lý"));
    assert!(digest[0].body.contains("1/UBND-VP (Hỏa tốc) của Ủy ban nhân dân huyện Tiên Yên"), "{}", digest[0].body);
    assert!(digest[0].body.contains("), trạng thái: 03 Đã tiếp nhận"), "{}", digest[0].body);
    assert!(!digest[0].body.contains("2/UBND-VP"), "{}", digest[0].body);
    assert_eq!(digest[0].message_id, expected_id(PHONG_DU, &format!("digest:{today}"), "phongdu.example.gov.vn"));

    // Expiry: the watched certificate close to its end, to the operators only (the node and
    // seal certificates have ten years left).
    let expiry = of("expiry", PHONG_DU_OPERATOR);
    assert_eq!(expiry.len(), 1);
    assert_eq!(
        expiry[0].subject,
        format!(
            "[CHỨNG THƯ SẮP HẾT HẠN] Chứng thư số của Nguyễn Văn An (tệp sap-het-han.pem): còn 9 ngày ({})",
            node::mail::message::date_vi((now + time::Duration::days(10)).to_offset(node::mail::message::ICT).date())
        )
    );
    assert_eq!(expiry[0].rcpt_tos, [PHONG_DU_OPERATOR]);

    // The health read-out counts it all, in-process and over the clerk protocol.
    let health = node::health::report(node_pd).await.unwrap();
    let q = health.mail.expect("mail in the health read-out");
    assert_eq!((q.sent, q.pending, q.dead, q.retrying), (6, 0, 0, 0));
    let json: serde_json::Value = serde_json::from_str(&tien_yen.health().await.unwrap()).unwrap();
    assert_eq!(json["mail"]["sent"], 5, "{json}");
    // Under six days left is the next step (7 days): warned once more.
    assert_eq!(node::mail::periodic::check_certificates(node_pd, now + days(4)).await.unwrap(), 1);
    net.stop().await;
}

on_both_backends!(an_smtp_outage_delays_mail_and_every_notification_arrives_exactly_once);

/// Waits until Phong Dụ's node has recorded `n` notifications as taken by the relay.
async fn recorded_sent(net: &TestNet, n: i64) {
    wait_for("the node to record what the relay took", Duration::from_secs(30), || async {
        let now = node::storage::millis(time::OffsetDateTime::now_utc());
        node::mail::queue::health(&net.node(PHONG_DU).store, now).await.unwrap().sent == n
    })
    .await
}

async fn an_smtp_outage_delays_mail_and_every_notification_arrives_exactly_once(database: Database) {
    const DOCUMENTS: u32 = 20;
    harness::logging();
    let pki = SmtpPki::new("CA thư điện tử thử nghiệm");
    let mail_dir = harness::smtp::mail_dir();
    // The relay's port is chosen, but nothing listens there yet.
    let port = free_port();
    let mut net = network(database, |c, dir| {
        (c == PHONG_DU).then(|| MailSetup::starttls(port, &pki.ca_pem, PHONG_DU_FROM, &[PHONG_DU_CLERK]).section(dir))
    })
    .await;
    let tien_yen = net.clerk(TIEN_YEN).await;
    let docs: Vec<SignedDocument> = (1..=DOCUMENTS).map(|n| net.document(TIEN_YEN, &[PHONG_DU], n)).collect();
    for d in &docs {
        d.submit(&tien_yen).await.unwrap();
    }
    // Documents flow while the relay is down; the notifications wait, with the error in the
    // health read-out.
    wait_for("every document in Phong Dụ's inbox", Duration::from_secs(60), || async {
        net.node(PHONG_DU).store.inbox(1000).await.unwrap().len() == DOCUMENTS as usize
    })
    .await;
    wait_for("every notification to have failed once", Duration::from_secs(30), || async {
        let q = node::mail::queue::health(
            &net.node(PHONG_DU).store,
            node::storage::millis(time::OffsetDateTime::now_utc()),
        )
        .await
        .unwrap();
        q.retrying == i64::from(DOCUMENTS)
    })
    .await;
    let health = node::health::report(net.node(PHONG_DU)).await.unwrap();
    let q = health.mail.unwrap();
    assert_eq!((q.pending, q.sent, q.dead), (i64::from(DOCUMENTS), 0, 0));
    let error = q.last_error.unwrap_or_default();
    assert!(error.contains(&format!("127.0.0.1:{port}")) && error.contains("onnection"), "{error}");
    assert!(health.alerts.iter().any(|a| a.contains("waiting for the relay")), "{:?}", health.alerts);

    // While the node is stopped: claims are leases on PostgreSQL (a plain read on SQLite), and
    // a restarted process frees those its previous run held, by the instance part of the owner.
    net.stop_node(&code(PHONG_DU)).await;
    {
        let store = net.open_store(&code(PHONG_DU)).await;
        let (t, until) = (i64::MAX / 4, i64::MAX / 4 + 1000);
        let all = DOCUMENTS as usize;
        assert_eq!(node::mail::queue::claim(&store, "inst/run1", t, until, 100).await.unwrap().len(), all);
        let held = if database == Database::Postgres { 0 } else { all };
        assert_eq!(node::mail::queue::claim(&store, "other/run", t, until, 100).await.unwrap().len(), held);
        store.release_leases(Some("ins")).await.unwrap();
        assert_eq!(node::mail::queue::claim(&store, "other/run", t, until, 100).await.unwrap().len(), held);
        store.release_leases(Some("inst")).await.unwrap();
        assert_eq!(node::mail::queue::claim(&store, "other/run", t, until, 100).await.unwrap().len(), all);
        store.release_leases(Some("other")).await.unwrap();
        store.close().await;
    }
    // The restart, with the relay still down, loses and adds nothing.
    net.start_node(&code(PHONG_DU)).await;
    let q =
        node::mail::queue::health(&net.node(PHONG_DU).store, node::storage::millis(time::OffsetDateTime::now_utc()))
            .await
            .unwrap();
    assert_eq!(q.pending + q.sent + q.dead, i64::from(DOCUMENTS), "the queue changed across a restart");

    // The relay comes back on the same port: every notification arrives, once.
    let started = Instant::now();
    let options = SmtpOptions { tls: SmtpTls::Starttls, pki: Some(&pki), login: None, reject: None };
    let mut smtp = SmtpServer::start(port, mail_dir.path(), &options);
    harness::smtp::wait_for_mail(mail_dir.path(), DOCUMENTS as usize, Duration::from_secs(60)).await;
    eprintln!("{DOCUMENTS} notifications arrived {:?} after the relay came back ({database:?})", started.elapsed());
    // The node records a notification as sent just after the relay took it: wait for that, or
    // the restart below would be the one documented duplicate (relay took it, node stopped
    // before recording it) rather than a restart after delivery.
    recorded_sent(&net, i64::from(DOCUMENTS)).await;
    // Another restart after delivery sends nothing again: a document sent after it is
    // notified, and nothing else came with it (a resent notification would have been due
    // before it).
    restart(&mut net, PHONG_DU).await;
    let sentinel = net.document(TIEN_YEN, &[PHONG_DU], DOCUMENTS + 1);
    sentinel.submit(&tien_yen).await.unwrap();
    let all = harness::smtp::wait_for_mail(mail_dir.path(), DOCUMENTS as usize + 1, Duration::from_secs(60)).await;
    assert_eq!(all.len(), DOCUMENTS as usize + 1, "{:#?}", all.iter().map(|m| &m.subject).collect::<Vec<_>>());
    let got: BTreeSet<String> = all.iter().map(|m| m.message_id.clone()).collect();
    let want: BTreeSet<String> = docs
        .iter()
        .chain([&sentinel])
        .map(|d| expected_id(PHONG_DU, &format!("arrived:{}", d.id), "phongdu.example.gov.vn"))
        .collect();
    assert_eq!(got, want, "each document's notification exactly once");
    recorded_sent(&net, i64::from(DOCUMENTS) + 1).await;
    let q =
        node::mail::queue::health(&net.node(PHONG_DU).store, node::storage::millis(time::OffsetDateTime::now_utc()))
            .await
            .unwrap();
    assert_eq!((q.sent, q.pending, q.dead), (i64::from(DOCUMENTS) + 1, 0, 0));
    smtp.stop();
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_works_and_a_relay_with_an_untrusted_certificate_gets_nothing() {
    harness::logging();
    let trusted = SmtpPki::new("CA thư điện tử thử nghiệm");
    let stranger = SmtpPki::new("CA lạ");
    let good_dir = harness::smtp::mail_dir();
    let bad_dir = harness::smtp::mail_dir();
    let (good_port, bad_port) = (free_port(), free_port());
    let _good = SmtpServer::start(
        good_port,
        good_dir.path(),
        &SmtpOptions { tls: SmtpTls::Implicit, pki: Some(&trusted), login: None, reject: None },
    );
    let _bad = SmtpServer::start(
        bad_port,
        bad_dir.path(),
        &SmtpOptions { tls: SmtpTls::Starttls, pki: Some(&stranger), login: None, reject: None },
    );
    let setup =
        |port, tls| MailSetup { tls, ..MailSetup::starttls(port, &trusted.ca_pem, PHONG_DU_FROM, &[PHONG_DU_CLERK]) };
    let mut net =
        network(Database::Sqlite, |c, dir| (c == PHONG_DU).then(|| setup(good_port, "implicit").section(dir))).await;
    let tien_yen = net.clerk(TIEN_YEN).await;
    let first = net.document(TIEN_YEN, &[PHONG_DU], 1);
    let submitted = Instant::now();
    first.submit(&tien_yen).await.unwrap();
    let got = harness::smtp::wait_for_mail(good_dir.path(), 1, Duration::from_secs(30)).await;
    eprintln!(
        "the arrival notification reached the relay {:?} after the sender's clerk submitted",
        submitted.elapsed()
    );
    assert_eq!(got[0].tls.as_deref(), Some("TLSv1.3"));
    assert!(got[0].subject.ends_with("Về việc thử nghiệm liên thông văn bản số 1"), "{}", got[0].subject);

    // The same node pointed at a relay whose certificate comes from a CA it does not trust.
    let phong_du = code(PHONG_DU);
    set_mail(&net.config_path(&phong_du), &setup(bad_port, "starttls").section(&net.node_dir(&phong_du)));
    restart(&mut net, PHONG_DU).await;
    let second = net.document(TIEN_YEN, &[PHONG_DU], 2);
    second.submit(&tien_yen).await.unwrap();
    wait_for("the second document in Phong Dụ's inbox", Duration::from_secs(30), || async {
        net.node(PHONG_DU).store.inbox(10).await.unwrap().len() == 2
    })
    .await;
    wait_for("the refused handshake in the health read-out", Duration::from_secs(30), || async {
        let q = node::health::report(net.node(PHONG_DU)).await.unwrap().mail.unwrap();
        q.retrying == 1 && q.last_error.is_some_and(|e| e.contains("certificate"))
    })
    .await;
    let q = node::health::report(net.node(PHONG_DU)).await.unwrap().mail.unwrap();
    assert_eq!((q.pending, q.sent, q.dead), (1, 1, 0), "{q:?}");
    eprintln!("untrusted relay: {}", q.last_error.unwrap_or_default());
    assert!(harness::smtp::received(bad_dir.path()).is_empty(), "mail went to a relay the node does not trust");
    assert_eq!(harness::smtp::received(good_dir.path()).len(), 1);
    net.stop().await;
}

#[test]
fn a_bad_mail_section_is_reported_key_by_key_and_the_node_does_not_start() {
    let net = TestNet::prepare(only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU]), NetOptions::default());
    let config = net.config_path(&code(PHONG_DU));
    set_mail(
        &config,
        "[mail]\nserver = \"smtp.phongdu.example.gov.vn\"\ntls = \"none\"\npassword = \"bí mật\"\nfrom = \"Liên thông\"\nclerks = [\"vanthu@\"]\ndigest_at = \"8h\"\n",
    );
    let check = |config: &std::path::Path| {
        std::process::Command::new(harness::bin("lienthong-node"))
            .args(["check", "--config"])
            .arg(config)
            .output()
            .unwrap()
    };
    let out = check(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for expected in [
        ": mail.tls: tls = \"none\" sends mail and the SMTP password in clear text, so it is allowed only for a relay on this machine (127.0.0.1 or ::1)",
        ": mail.password: passwords are not written in the configuration",
        ": mail.from: \"Liên thông\" is not a mail address",
        ": mail.clerks[0]: \"vanthu@\" is not a mail address",
        ": mail.digest_at: \"8h\" is not a time of day",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in:\n{stderr}");
    }
    // Corrected, it passes.
    set_mail(
        &config,
        "[mail]\nserver = \"127.0.0.1\"\ntls = \"none\"\nfrom = \"Liên thông <lienthong@phongdu.example.gov.vn>\"\nclerks = [\"vanthu@phongdu.example.gov.vn\"]\n",
    );
    let out = check(&config);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_the_relay_refuses_for_good_is_dead_lettered_and_shown() {
    harness::logging();
    let pki = SmtpPki::new("CA thư điện tử thử nghiệm");
    let mail_dir = harness::smtp::mail_dir();
    let port = free_port();
    let options = SmtpOptions { tls: SmtpTls::Starttls, pki: Some(&pki), login: None, reject: Some("khong-ton-tai@") };
    let _smtp = SmtpServer::start(port, mail_dir.path(), &options);
    let net = network(Database::Sqlite, |c, dir| {
        (c == PHONG_DU).then(|| {
            MailSetup::starttls(port, &pki.ca_pem, PHONG_DU_FROM, &["khong-ton-tai@phongdu.example.gov.vn"])
                .section(dir)
        })
    })
    .await;
    net.document(TIEN_YEN, &[PHONG_DU], 1).submit(&net.clerk(TIEN_YEN).await).await.unwrap();
    wait_for("the refused notification to be dead-lettered", Duration::from_secs(30), || async {
        node::health::report(net.node(PHONG_DU)).await.unwrap().mail.unwrap().dead == 1
    })
    .await;
    let health = node::health::report(net.node(PHONG_DU)).await.unwrap();
    let q = health.mail.unwrap();
    assert_eq!((q.pending, q.sent, q.dead), (0, 0, 1));
    let dead = &q.dead_letters[0];
    assert_eq!((dead.kind.as_str(), dead.attempts), ("arrived", 1), "a 5xx answer is final: {dead:?}");
    assert!(dead.last_error.contains("550") && dead.last_error.contains("No such mailbox"), "{dead:?}");
    assert!(health.alerts.iter().any(|a| a.contains("1 notification mail(s) dead-lettered")), "{:?}", health.alerts);
    // The document itself is in the inbox: mail never holds one up.
    assert_eq!(net.node(PHONG_DU).store.inbox(10).await.unwrap().len(), 1);
    assert!(harness::smtp::received(mail_dir.path()).is_empty());
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_refused_for_want_of_revocation_information_is_mailed_to_the_operators() {
    harness::logging();
    let pki = SmtpPki::new("CA thư điện tử thử nghiệm");
    let dir = harness::smtp::mail_dir();
    let port = free_port();
    let _relay = SmtpServer::start(
        port,
        dir.path(),
        &SmtpOptions { tls: SmtpTls::Starttls, pki: Some(&pki), login: None, reject: None },
    );
    // Tiên Yên started without any CRL (its parent, the province, not running): its own clerk
    // cannot be checked for revocation.
    let topology = only(&topology("quang-ninh-2024"), &["000.00.00.H49", TIEN_YEN]);
    let mut net = TestNet::prepare(topology, NetOptions { with_crls: false, ..NetOptions::default() });
    let tien_yen = code(TIEN_YEN);
    let setup = MailSetup {
        operators: &[PHONG_DU_OPERATOR],
        ..MailSetup::starttls(port, &pki.ca_pem, TIEN_YEN_FROM, &[TIEN_YEN_CLERK])
    };
    set_mail(&net.config_path(&tien_yen), &setup.section(&net.node_dir(&tien_yen)));
    net.start_node(&tien_yen).await;
    let clerk = node::clerk_client::ClerkClient::connect(
        net.addrs[&tien_yen],
        tien_yen,
        &net.identity(&tien_yen, pki::Profile::Clerk),
        vec![net.pki.root.cert.clone()],
    )
    .await;
    let refused = match clerk {
        Ok(c) => c.inbox(1).await.map(|_| ()).unwrap_err(),
        Err(e) => e,
    };
    eprintln!("the clerk is told: {refused}");
    let got = harness::smtp::wait_for_mail(dir.path(), 1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1, "one alert, not one per attempt");
    assert!(to(&got[0], PHONG_DU_OPERATOR), "{:?}", got[0].rcpt_tos);
    assert!(got[0].subject.contains("Từ chối chứng thư không kiểm tra được thu hồi"), "{}", got[0].subject);
    assert!(got[0].subject.contains("clerk certificate"), "{}", got[0].subject);
    // A second refusal within the alert window is the same alert: no second mail.
    let again = node::clerk_client::ClerkClient::connect(
        net.addrs[&tien_yen],
        tien_yen,
        &net.identity(&tien_yen, pki::Profile::Clerk),
        vec![net.pki.root.cert.clone()],
    )
    .await;
    if let Ok(c) = again {
        assert!(c.inbox(1).await.is_err());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(harness::smtp::received(dir.path()).len(), 1);
    net.stop().await;
}
