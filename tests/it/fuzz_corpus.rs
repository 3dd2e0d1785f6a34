//! The committed fuzz corpora (`fuzz/corpus/TARGET/`) and crash regressions
//! (`fuzz/regressions/TARGET/`) replayed as ordinary tests, through the very entry functions
//! the fuzz targets run (`fuzz/src/`, compiled here as a module), so anything the fuzzer once
//! found stays fixed under `cargo test`. Seeds named `ok-*` are valid inputs made by the
//! project's own code and must still be accepted (decoded, and verified where the target
//! verifies); if a format changes on purpose, rewrite them with
//! `cargo test -p lienthong-tests --test it fuzz_corpus::write_seed_corpus -- --ignored`.

use std::path::{Path, PathBuf};

#[allow(unreachable_pub, dead_code)]
#[path = "../../fuzz/src/lib.rs"]
mod fuzz;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

fn entry(target: &str) -> fuzz::Entry {
    fuzz::TARGETS.iter().find(|(name, _)| *name == target).map(|(_, e)| *e).unwrap()
}

/// Replays one target's corpus and regressions; returns (files, accepted).
fn replay(target: &str) -> (usize, usize) {
    let run = entry(target);
    let corpus = files_in(&fuzz_dir().join("corpus").join(target));
    assert!(!corpus.is_empty(), "fuzz/corpus/{target} holds no seeds");
    let regressions = files_in(&fuzz_dir().join("regressions").join(target));
    let mut accepted = 0;
    for file in corpus.iter().chain(&regressions) {
        let bytes = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&bytes));
        let Ok(ok) = outcome else {
            panic!("{target}: {} makes the target fail (see the panic above)", file.display())
        };
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(
            ok || !name.starts_with("ok-"),
            "{target}: the valid seed {} is no longer accepted; if the format changed on purpose, rewrite the \
             seeds (see this module's documentation)",
            file.display()
        );
        accepted += usize::from(ok);
    }
    (corpus.len() + regressions.len(), accepted)
}

macro_rules! replay_targets {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                let (files, accepted) = replay(stringify!($target));
                println!("{}: {files} inputs replayed, {accepted} accepted", stringify!($target));
            }
        )*

        /// Every target has a binary, a corpus and a replay test, and nothing else lies there.
        #[test]
        fn every_target_is_fuzzed_and_replayed() {
            let mut replayed = vec![$(stringify!($target)),*];
            replayed.sort_unstable();
            let mut listed: Vec<&str> = fuzz::TARGETS.iter().map(|(name, _)| *name).collect();
            listed.sort_unstable();
            assert_eq!(listed, replayed, "fuzz::TARGETS and the replay tests differ");
            let stems = |dir: &str, files: bool| -> Vec<String> {
                let mut out: Vec<String> = std::fs::read_dir(fuzz_dir().join(dir))
                    .unwrap()
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file() == files)
                    .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                    .collect();
                out.sort();
                out
            };
            assert_eq!(stems("fuzz_targets", true), listed, "fuzz/fuzz_targets/*.rs and fuzz::TARGETS differ");
            assert_eq!(stems("corpus", false), listed, "fuzz/corpus/* and fuzz::TARGETS differ");
            let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
            for name in &listed {
                assert!(manifest.contains(&format!("name = \"{name}\"")), "fuzz/Cargo.toml has no [[bin]] {name}");
            }
        }
    };
}

replay_targets!(
    agency_code,
    bundle,
    cbor_scan,
    certificate,
    checkpoint,
    config,
    crl,
    envelope,
    frame,
    log_entry,
    log_proof,
    manifest,
    merkle_proof,
    node_request,
    pem,
    receipt,
);

/// Writes the fixture PKI (`fuzz/fixtures/`) and the named seeds of every corpus
/// (`fuzz/corpus/TARGET/ok-*` and edge cases) from the project's own code. Not a test: run it
/// by hand when a format changes (see the module documentation). Keys are fresh each time,
/// so fixtures and seeds are rewritten together.
#[test]
#[ignore = "writes fuzz/fixtures and the seed corpora; run by hand"]
fn write_seed_corpus() {
    seeds::write_all(&fuzz_dir());
}

/// Writes the transparency log's fixture world (`fuzz/fixtures/tlog/`) and the seeds of its
/// targets only (`checkpoint`, `log_entry`, `log_proof`, `merkle_proof`), leaving the main
/// fixture PKI and the other corpora as they are. [`write_seed_corpus`] does this too.
#[test]
#[ignore = "writes fuzz/fixtures/tlog and the log targets' seeds; run by hand"]
fn write_tlog_seed_corpus() {
    tlog_seeds::write_all(&fuzz_dir());
}

mod seeds {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::path::Path;

    use demo::{DemoPki, NodeOptions, Topology};
    use node::protocol::{ClerkRequest, ClerkResponse, DocumentSummary, ErrorKind, NodeRequest, NodeResponse, encode};
    use pki::document::{
        Attachment, Business, DocumentKind, Envelope, Manifest, Receipt, ReceiptKind, StatusCode, Urgency, write_bundle,
    };
    use pki::{AgencyCode, Crl, RevocationReason};
    use serde_bytes::ByteBuf;

    use super::fuzz::fixtures::{self, code};

    /// The corpus being written: `fuzz/corpus/TARGET/NAME`.
    pub(super) struct Corpus<'a>(pub(super) &'a Path);

    impl Corpus<'_> {
        pub(super) fn put(&self, target: &str, name: &str, bytes: &[u8]) {
            let dir = self.0.join("corpus").join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        }

        /// A seed whose first byte selects (a message type, a neighbour, limits).
        pub(super) fn put_selected(&self, target: &str, name: &str, selector: u8, bytes: &[u8]) {
            let mut all = vec![selector];
            all.extend_from_slice(bytes);
            self.put(target, name, &all);
        }
    }

    /// A frame body (the CBOR after the 4-byte length).
    fn body<T: serde::Serialize>(message: &T) -> Vec<u8> {
        encode(message)[4..].to_vec()
    }

    struct Signed {
        manifest: Manifest,
        envelope: Envelope,
        bodies: Vec<Vec<u8>>,
    }

    fn document(pki: &DemoPki, from: &str, to: &[&str], number: u32, business: Business) -> Signed {
        let from = code(from);
        let body = format!("%PDF-1.4 Công văn số {number} của {from}\n").into_bytes();
        let manifest = Manifest {
            from,
            to: to.iter().map(|c| code(c)).collect(),
            number,
            notation: "UBND-VP".into(),
            place: "Quảng Ninh".into(),
            date: fixtures::SIGNED.date(),
            kind: DocumentKind::Administrative,
            type_name: "Công văn".into(),
            subject: format!("Về việc thử nghiệm liên thông văn bản số {number}"),
            signer_name: "Nguyễn Văn An".into(),
            signer_position: "Chủ tịch".into(),
            due: Some(fixtures::SIGNED.date().next_day().unwrap()),
            urgency: Urgency::Urgent,
            steering: 0,
            business,
            attachments: vec![Attachment {
                name: format!("cv-{number}.pdf"),
                media_type: "application/pdf".into(),
                size: body.len() as u64,
                sha256: pki::sha256(&body),
            }],
        };
        let a = &pki.agencies[&from];
        let envelope = Envelope::sign_person(
            &manifest.to_cbor().unwrap(),
            &a.person.key,
            &a.chain(&a.person.cert),
            fixtures::SIGNED,
        )
        .unwrap()
        .add_seal(&a.seal.key, &a.chain(&a.seal.cert), fixtures::SIGNED)
        .unwrap();
        Signed { manifest, envelope, bodies: vec![body] }
    }

    fn receipt(pki: &DemoPki, doc: &Signed, kind: ReceiptKind, by: &str, to: &str, rcpt: &[&str]) -> Vec<u8> {
        let note = matches!(kind, ReceiptKind::Status(StatusCode::Refused))
            .then(|| "Người nhận không xác định: thử nghiệm".to_owned());
        let r = Receipt {
            kind,
            document: doc.manifest.id(),
            envelope: doc.envelope.digest(),
            by: code(by),
            to: code(to),
            at: fixtures::SIGNED,
            recipients: rcpt.iter().map(|c| code(c)).collect(),
            note,
        };
        let a = &pki.agencies[&code(by)];
        r.sign(&a.seal.key, &a.chain(&a.seal.cert)).unwrap().as_bytes().to_vec()
    }

    pub(super) fn write_all(fuzz: &Path) {
        let topology = Topology::parse(demo::QUANG_NINH_2024).unwrap();
        let mut pki = DemoPki::build(&topology, fixtures::BUILT).unwrap();
        let revoked = code(fixtures::REVOKED_SEAL);
        let serial = pki.agencies[&revoked].seal.cert.serial.clone();
        let revoked_at = fixtures::BUILT - time::Duration::minutes(30);
        pki.cas.get_mut(&revoked).unwrap().revoke(&serial, revoked_at, RevocationReason::KeyCompromise);
        // Issued at BUILT, due a week after SIGNED.
        let crls: Vec<Crl> = pki.crls(fixtures::BUILT + time::Duration::hours(1)).unwrap();

        // The fixture files: root, CRLs, and the fixture node's certificates and keys.
        let fixtures_dir = fuzz.join("fixtures");
        let scratch = tempfile::tempdir().unwrap();
        let own = code(fixtures::OWN);
        let mut addrs: BTreeMap<AgencyCode, SocketAddr> = BTreeMap::new();
        for (i, c) in topology.codes().into_iter().enumerate() {
            addrs.insert(c, format!("127.0.0.1:{}", 7400 + i).parse().unwrap());
        }
        let extra = "[limits]\nmax_frame_bytes = 1048576\nidle_timeout = \"30s\"\n\n[retry]\ninitial = \"1s\"\nmax = \
                     \"10m\"\nmultiplier = 2.0\njitter = 0.2\nmax_attempts = 30\njitter_seed = 7\n";
        let options = NodeOptions { database: None, crl_file: true, extra: extra.into() };
        demo::write_shared(scratch.path(), &pki, &crls).unwrap();
        let node_dir = demo::write_node(scratch.path(), &own, &topology, &pki, &addrs, &options, b"mat-khau").unwrap();
        std::fs::create_dir_all(&fixtures_dir).unwrap();
        for name in ["root.pem", "crls.pem"] {
            std::fs::copy(scratch.path().join(name), fixtures_dir.join(name)).unwrap();
        }
        for name in ["node.chain.pem", "node.key.pem", "seal.chain.pem", "seal.key.pem", "clerk.chain.pem"] {
            std::fs::copy(node_dir.join(name), fixtures_dir.join(name)).unwrap();
        }

        let corpus = Corpus(fuzz);
        let (parent, child1, child2) = (fixtures::PARENT, fixtures::CHILDREN[0], fixtures::CHILDREN[1]);

        // Documents: commune to sibling commune (through the fixture node), the province down
        // to a commune, the fixture node up to the province, and one sealed with a revoked seal.
        let sideways = document(&pki, child1, &[child2], 1, Business::New);
        let down = document(&pki, parent, &[child1, fixtures::OWN], 2, Business::New);
        let earlier = document(&pki, fixtures::OWN, &[parent], 3, Business::New);
        let up = document(&pki, fixtures::OWN, &[parent], 5, Business::Update(earlier.manifest.id()));
        let by_revoked = document(&pki, fixtures::REVOKED_SEAL, &[child1], 4, Business::New);
        let hop = receipt(&pki, &sideways, ReceiptKind::Hop, fixtures::OWN, child1, &[child2]);
        let arrived = receipt(&pki, &sideways, ReceiptKind::Status(StatusCode::Arrived), child2, child1, &[child2]);
        let refused = receipt(&pki, &down, ReceiptKind::Status(StatusCode::Refused), child1, parent, &[child1]);
        let recall =
            receipt(&pki, &up, ReceiptKind::Status(StatusCode::RecallRequested), fixtures::OWN, parent, &[parent]);
        let revoked_receipt = receipt(&pki, &by_revoked, ReceiptKind::Hop, fixtures::REVOKED_SEAL, child1, &[child1]);
        let crl_ders: Vec<Vec<u8>> = crls.iter().map(|c| c.der().to_vec()).collect();
        let crl_bufs = || crl_ders.iter().cloned().map(ByteBuf::from).collect::<Vec<_>>();
        // Documents and notices name their CRLs; a CRL newer than the fixture node holds is
        // referenced, asked for and sent (`crl_refs`).
        let crl_refs = || crls.iter().map(node::crl_refs::reference).collect::<Vec<_>>();
        // Only those of the CAs on the document's chains, as a sender references them.
        let sideways_issuers: Vec<Vec<u8>> = sideways
            .envelope
            .headers()
            .unwrap()
            .iter()
            .flat_map(|h| h.chain.iter().map(|der| pki::Certificate::from_der(der).unwrap().issuer_raw))
            .collect();
        let newer: Vec<Crl> = pki
            .crls(fixtures::BUILT + time::Duration::hours(2))
            .unwrap()
            .into_iter()
            .filter(|c| sideways_issuers.contains(&c.issuer_raw))
            .collect();
        let newer_refs = || newer.iter().map(node::crl_refs::reference).collect::<Vec<_>>();
        let newer_bufs = || newer.iter().map(|c| ByteBuf::from(c.der().to_vec())).collect::<Vec<_>>();

        // agency_code
        for c in topology.codes() {
            corpus.put("agency_code", &format!("ok-{c}"), c.to_string().as_bytes());
        }
        for (name, text) in
            [("edge-short-group", "00.00.00.H49"), ("edge-long", "000.00.00.H49.000"), ("edge-kind", "000.00.00.X49")]
        {
            corpus.put("agency_code", name, text.as_bytes());
        }

        // certificate
        corpus.put("certificate", "ok-root.der", pki.root.cert.der());
        for (c, ca) in &pki.cas {
            corpus.put("certificate", &format!("ok-ca-{c}.der"), ca.cert.der());
        }
        let a = &pki.agencies[&own];
        for (name, issued) in [("node", &a.node), ("seal", &a.seal), ("clerk", &a.clerk), ("person", &a.person)] {
            corpus.put("certificate", &format!("ok-{name}.der"), issued.cert.der());
        }

        // crl
        for (i, der) in crl_ders.iter().enumerate() {
            corpus.put("crl", &format!("ok-{i:02}.der"), der);
        }

        // manifest, envelope, bundle, receipt
        for (name, doc) in [("sideways", &sideways), ("down", &down), ("up", &up), ("revoked-seal", &by_revoked)] {
            corpus.put("manifest", &format!("ok-{name}.cbor"), doc.envelope.payload());
            let prefix = if name == "revoked-seal" { "" } else { "ok-" };
            corpus.put("envelope", &format!("{prefix}{name}.cose"), doc.envelope.as_bytes());
        }
        let bundle = write_bundle(
            std::io::Cursor::new(Vec::new()),
            &sideways.envelope,
            &crl_ders,
            &[hop.clone(), arrived.clone()],
            |_, out| {
                out.write_all(&sideways.bodies[0])?;
                Ok(())
            },
        )
        .unwrap()
        .into_inner();
        corpus.put("bundle", "ok-sideways.ltd", &bundle);
        for (name, bytes) in [
            ("ok-hop", &hop),
            ("ok-arrived", &arrived),
            ("ok-refused", &refused),
            ("ok-recall", &recall),
            ("revoked-seal", &revoked_receipt),
        ] {
            corpus.put("receipt", &format!("{name}.cose"), bytes);
        }

        // cbor_scan: the first byte picks the limits (even: tight, odd: generous).
        corpus.put_selected("cbor_scan", "ok-manifest", 1, sideways.envelope.payload());
        corpus.put_selected("cbor_scan", "ok-receipt", 1, &hop);
        corpus.put_selected(
            "cbor_scan",
            "ok-frame",
            1,
            &body(&NodeRequest::CrlFetch { known: vec![(ByteBuf::from(vec![0x30, 0x00]), 1)] }),
        );
        corpus.put_selected("cbor_scan", "ok-small-map", 0, &[0xa2, 0x61, 0x61, 0x01, 0x62, 0x74, 0x6f, 0x80]);
        corpus.put_selected("cbor_scan", "edge-indefinite", 0, &[0x9f, 0x01, 0xff]);
        corpus.put_selected("cbor_scan", "edge-deep", 0, &[0x81, 0x81, 0x81, 0x81, 0x81, 0x01]);
        corpus.put_selected("cbor_scan", "edge-unsorted", 0, &[0xa2, 0x62, 0x74, 0x6f, 0x01, 0x61, 0x61, 0x02]);
        corpus.put_selected("cbor_scan", "edge-huge-length", 1, &[0x5b, 0x40, 0, 0, 0, 0, 0, 0, 0]);

        // pem
        for name in ["root.pem", "crls.pem", "seal.chain.pem", "seal.key.pem"] {
            corpus.put("pem", &format!("ok-{name}"), &std::fs::read(fixtures_dir.join(name)).unwrap());
        }
        corpus.put("pem", "person.key.pem", &std::fs::read(node_dir.join("person.key.pem")).unwrap());

        // frame: the first byte picks the message type.
        let summary = DocumentSummary {
            document: sideways.manifest.id().to_string(),
            digest: hex_digest(&sideways.envelope),
            sender: child1.into(),
            sender_name: "Ủy ban nhân dân xã Phong Dụ".into(),
            recipients: vec![child2.into()],
            number: "1/UBND-VP".into(),
            type_name: "Công văn".into(),
            subject: sideways.manifest.subject.clone(),
            urgency: 1,
            due: Some("2026-01-02".into()),
            at_ms: 1_767_229_200_000,
            status: Some(1),
            provisional: false,
            superseded: None,
            recall_requested: false,
            waiting: Vec::new(),
        };
        let node_requests = [
            (
                "deliver",
                NodeRequest::Deliver {
                    envelope: ByteBuf::from(sideways.envelope.as_bytes().to_vec()),
                    recipients: vec![child2.into()],
                    crls: crl_refs(),
                    crls_asked: Vec::new(),
                    resume: false,
                    statuses_back: true,
                },
            ),
            (
                "notice",
                NodeRequest::Notices {
                    receipts: vec![ByteBuf::from(arrived.clone())],
                    crls: crl_refs(),
                    crls_asked: Vec::new(),
                },
            ),
            ("crl-push", NodeRequest::CrlPush { crls: crl_bufs() }),
            (
                "crl-fetch",
                NodeRequest::CrlFetch {
                    known: crls
                        .iter()
                        .map(|c| (ByteBuf::from(c.issuer_raw.clone()), c.this_update.unix_timestamp()))
                        .collect(),
                },
            ),
        ];
        for (name, request) in &node_requests {
            corpus.put_selected("frame", &format!("ok-node-request-{name}"), 0, &body(request));
        }
        let node_responses = [
            (
                "hop-receipt",
                NodeResponse::HopReceipt {
                    receipt: ByteBuf::from(hop.clone()),
                    statuses: vec![ByteBuf::from(arrived.clone())],
                },
            ),
            ("refused", NodeResponse::Refused { receipt: ByteBuf::from(refused.clone()) }),
            ("accepted", NodeResponse::Accepted),
            (
                "notices-taken",
                NodeResponse::NoticesTaken {
                    refused: vec![(1, ErrorKind::Forbidden, "not its status to post".into())],
                },
            ),
            (
                "path-evidence",
                NodeResponse::PathEvidence {
                    proofs: Vec::new(),
                    receipts: vec![ByteBuf::from(hop.clone())],
                    crls: crl_bufs(),
                },
            ),
            ("crls", NodeResponse::Crls { crls: crl_bufs() }),
            ("crls-wanted", NodeResponse::CrlsWanted { sha256: newer_refs().into_iter().map(|r| r.sha256).collect() }),
            ("error", NodeResponse::Error { kind: ErrorKind::Unavailable, message: "node is shutting down".into() }),
        ];
        for (name, response) in &node_responses {
            corpus.put_selected("frame", &format!("ok-node-response-{name}"), 1, &body(response));
        }
        let id = sideways.manifest.id().to_string();
        let clerk_requests = [
            (
                "submit",
                ClerkRequest::Submit {
                    envelope: ByteBuf::from(up.envelope.as_bytes().to_vec()),
                    crls: vec![],
                    resume: false,
                },
            ),
            ("inbox", ClerkRequest::Inbox { limit: 50 }),
            ("sent", ClerkRequest::Sent { limit: 50 }),
            ("fetch", ClerkRequest::Fetch { document: id.clone(), evidence: false }),
            (
                "post-status",
                ClerkRequest::PostStatus { document: id.clone(), status: 3, note: Some("Đã tiếp nhận".into()) },
            ),
            ("track", ClerkRequest::Track { document: id.clone() }),
            ("recall", ClerkRequest::Recall { document: id.clone(), note: None }),
            ("health", ClerkRequest::Health),
        ];
        for (name, request) in &clerk_requests {
            corpus.put_selected("frame", &format!("ok-clerk-request-{name}"), 2, &body(request));
        }
        let clerk_responses = [
            ("submitted", ClerkResponse::Submitted { document: id.clone(), digest: hex_digest(&sideways.envelope) }),
            ("documents", ClerkResponse::Documents { entries: vec![summary] }),
            (
                "document",
                ClerkResponse::Document {
                    envelope: ByteBuf::from(sideways.envelope.as_bytes().to_vec()),
                    crls: crl_bufs(),
                    receipts: vec![ByteBuf::from(hop.clone())],
                    log_proofs: Vec::new(),
                },
            ),
            (
                "receipts",
                ClerkResponse::Receipts { receipts: vec![ByteBuf::from(hop.clone()), ByteBuf::from(arrived.clone())] },
            ),
            ("done", ClerkResponse::Done),
            ("health", ClerkResponse::Health { json: "{\"alerts\":[]}".into() }),
            ("error", ClerkResponse::Error { kind: ErrorKind::BadRequest, message: "không có văn bản".into() }),
        ];
        for (name, response) in &clerk_responses {
            corpus.put_selected("frame", &format!("ok-clerk-response-{name}"), 3, &body(response));
        }
        corpus.put_selected(
            "frame",
            "edge-unknown-type",
            0,
            &[0xa1, 0x64, 0x74, 0x79, 0x70, 0x65, 0x63, 0x62, 0x61, 0x64],
        );

        // node_request: the first byte picks the neighbour (0 parent, 1 and 2 the children,
        // 3 an agency that is no neighbour).
        let deliver = |doc: &Signed, rcpt: &[&str]| NodeRequest::Deliver {
            envelope: ByteBuf::from(doc.envelope.as_bytes().to_vec()),
            recipients: rcpt.iter().map(|c| (*c).to_owned()).collect(),
            crls: crl_refs(),
            crls_asked: Vec::new(),
            resume: false,
            statuses_back: true,
        };
        let notice = |bytes: &[u8]| NodeRequest::Notices {
            receipts: vec![ByteBuf::from(bytes.to_vec())],
            crls: crl_refs(),
            crls_asked: Vec::new(),
        };
        // With CRLs newer than the node's: asked for (not taken yet), then sent as asked (taken),
        // and sent as asked but one of them not the CRL referenced (refused for now).
        let with_newer = |asked: Vec<ByteBuf>| NodeRequest::Deliver {
            envelope: ByteBuf::from(sideways.envelope.as_bytes().to_vec()),
            recipients: vec![child2.into()],
            crls: newer_refs(),
            crls_asked: asked,
            resume: false,
            statuses_back: true,
        };
        corpus.put_selected("node_request", "deliver-crls-wanted", 1, &body(&with_newer(Vec::new())));
        corpus.put_selected("node_request", "ok-deliver-crls-asked", 1, &body(&with_newer(newer_bufs())));
        let mut mismatched = newer_bufs();
        mismatched[0] = crl_bufs()[0].clone();
        corpus.put_selected("node_request", "deliver-crls-asked-mismatch", 1, &body(&with_newer(mismatched)));
        let notices_newer = NodeRequest::Notices {
            receipts: vec![ByteBuf::from(arrived.to_vec())],
            crls: newer_refs(),
            crls_asked: newer_bufs(),
        };
        // The commune's seal chain has the same CAs as its sibling's document.
        corpus.put_selected("node_request", "ok-notice-crls-asked", 2, &body(&notices_newer));
        corpus.put_selected("node_request", "ok-deliver-from-child", 1, &body(&deliver(&sideways, &[child2])));
        corpus.put_selected(
            "node_request",
            "ok-deliver-from-parent",
            0,
            &body(&deliver(&down, &[child1, fixtures::OWN])),
        );
        corpus.put_selected("node_request", "deliver-sibling-relays", 2, &body(&deliver(&sideways, &[child2])));
        corpus.put_selected("node_request", "deliver-revoked-seal", 0, &body(&deliver(&by_revoked, &[child1])));
        corpus.put_selected(
            "node_request",
            "deliver-not-a-recipient",
            1,
            &body(&deliver(&sideways, &[child1, child2])),
        );
        corpus.put_selected("node_request", "ok-notice-arrived", 2, &body(&notice(&arrived)));
        corpus.put_selected("node_request", "ok-notice-refused", 1, &body(&notice(&refused)));
        corpus.put_selected("node_request", "notice-revoked-seal", 1, &body(&notice(&revoked_receipt)));
        let both = NodeRequest::Notices {
            receipts: vec![ByteBuf::from(revoked_receipt.to_vec()), ByteBuf::from(arrived.to_vec())],
            crls: crl_refs(),
            crls_asked: Vec::new(),
        };
        corpus.put_selected("node_request", "ok-notices-one-revoked-one-arrived", 2, &body(&both));
        corpus.put_selected("node_request", "ok-crl-push", 0, &body(&NodeRequest::CrlPush { crls: crl_bufs() }));
        corpus.put_selected(
            "node_request",
            "crl-push-from-child",
            1,
            &body(&NodeRequest::CrlPush { crls: crl_bufs() }),
        );
        corpus.put_selected("node_request", "ok-crl-fetch", 1, &body(&node_requests[3].1));

        // config: the node's own file, the `init` template, and one with every section.
        corpus.put("config", "ok-node.toml", &std::fs::read(node_dir.join("node.toml")).unwrap());
        let template = node::config::template(
            &own,
            "Ủy ban nhân dân huyện Tiên Yên",
            "0.0.0.0:7400",
            Some((&code(parent), "10.0.0.1:7400")),
        );
        corpus.put("config", "ok-template.toml", template.as_bytes());
        let full = format!(
            "{}\n[[peer]]\nagency = \"000.00.00.H37\"\naddress = [\"10.0.0.5:7400\", \"ls.example.gov.vn:7400\"]\n\n[mail]\nserver = \
             \"127.0.0.1\"\ntls = \"none\"\nfrom = \"Liên thông <lienthong@tienyen.example.gov.vn>\"\nclerks = \
             [\"vanthu@tienyen.example.gov.vn\"]\noperators = [\"Quản trị <qt@tienyen.example.gov.vn>\"]\ndigest_at = \
             \"07:30\"\ncertificates = [\"node.chain.pem\"]\n[mail.retry]\ninitial = \"30s\"\nmax = \"30m\"\nmax_attempts = 50\n",
            String::from_utf8(std::fs::read(node_dir.join("node.toml")).unwrap()).unwrap()
        );
        corpus.put("config", "ok-full.toml", full.as_bytes());

        super::tlog_seeds::write_all(fuzz);
    }

    fn hex_digest(envelope: &Envelope) -> String {
        envelope.digest().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The transparency log's fixture world and seeds: a root with a province, a district (the
/// log, ECDSA P-256 seal) and a sibling district CA; the province's seal (Ed25519) witnesses,
/// the sibling's seal (RSA) witnesses too but is revoked; a log of [`TREE_SIZE`] real entries
/// of every kind. Fresh keys each time; only certificates, CRLs and signed notes are kept.
mod tlog_seeds {
    use std::path::Path;

    use pki::document::{DocumentId, ReceiptKind, StatusCode};
    use pki::testing::{Issued, TestCa, rsa_key};
    use pki::tlog::proof::root_at;
    use pki::tlog::{
        AddCheckpoint, Checkpoint, Cosignature, EMPTY_ROOT, LogEntry, LogOrigin, LogProof, MemoryTree,
        SignedCheckpoint, Via, consistency_proof, inclusion_proof,
    };
    use pki::{Certificate, Crl, KeyAlgorithm, PrivateKey, Profile, RevocationReason};
    use time::Duration;

    use super::fuzz::fixtures::{self, code};
    use super::fuzz::tlog_targets::{ENVELOPE, INDEX, LAST_SIZE, TREE_SIZE, WITNESSES};
    use super::seeds::Corpus;

    /// Leaf `i` of the fixture log: the document at [`INDEX`], otherwise every kind in turn.
    fn entry(i: u64) -> LogEntry {
        let envelope = if i == INDEX { ENVELOPE } else { pki::sha256(&i.to_be_bytes()) };
        let receipt = pki::sha256(format!("receipt {i}").as_bytes());
        let at = fixtures::SIGNED + Duration::seconds(i as i64);
        let document =
            |sender: &str| -> DocumentId { format!("{sender},2026/01/01,{}/UBND-VP", i + 1).parse().unwrap() };
        match if i == INDEX { 1 } else { i % 6 } {
            0 => LogEntry::Document { envelope, document: document(fixtures::OWN), via: Via::Clerk, at },
            1 => LogEntry::Document {
                envelope,
                document: document(fixtures::CHILDREN[0]),
                via: Via::Node(code(fixtures::CHILDREN[0])),
                at,
            },
            2 => LogEntry::Signed { receipt, kind: ReceiptKind::Hop, envelope, at },
            3 => LogEntry::Signed { receipt, kind: ReceiptKind::Status(StatusCode::Arrived), envelope, at },
            4 => LogEntry::Recorded { receipt, kind: ReceiptKind::Hop, by: code(fixtures::PARENT), envelope, at },
            _ => LogEntry::Recorded {
                receipt,
                kind: ReceiptKind::Status(StatusCode::Refused),
                by: code(fixtures::CHILDREN[1]),
                envelope,
                at,
            },
        }
    }

    fn pem_chain(issued: &Issued, cas: &[&TestCa]) -> (String, Vec<Vec<u8>>) {
        let certs: Vec<&Certificate> = std::iter::once(&issued.cert).chain(cas.iter().map(|ca| &ca.cert)).collect();
        (certs.iter().map(|c| c.to_pem()).collect(), certs.iter().map(|c| c.der().to_vec()).collect())
    }

    pub(super) fn write_all(fuzz: &Path) {
        let built = fixtures::BUILT;
        let mut root = TestCa::root();
        let mut province = root.sub_ca(fixtures::PARENT, "Ủy ban nhân dân tỉnh Quảng Ninh");
        let mut district = province.sub_ca(fixtures::OWN, "Ủy ban nhân dân huyện Tiên Yên");
        let mut sibling = province.sub_ca(WITNESSES[1], "Ủy ban nhân dân huyện Bình Liêu");
        let log_seal = district.issue(Profile::Seal, fixtures::OWN, "Ủy ban nhân dân huyện Tiên Yên");
        let witness = province.issue_key(
            Profile::Seal,
            WITNESSES[0],
            "Ủy ban nhân dân tỉnh Quảng Ninh",
            PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap(),
        );
        let revoked = sibling.issue_key(Profile::Seal, WITNESSES[1], "Ủy ban nhân dân huyện Bình Liêu", rsa_key());
        sibling.revoke(&revoked.cert.serial, built + Duration::minutes(30), RevocationReason::KeyCompromise);
        let crls: Vec<Crl> = [&mut root, &mut province, &mut district, &mut sibling]
            .into_iter()
            .map(|ca| ca.crl(built, built + Duration::days(8)))
            .collect();

        let (log_pem, log_der) = pem_chain(&log_seal, &[&district, &province]);
        let (w1_pem, w1_der) = pem_chain(&witness, &[&province]);
        let (w2_pem, w2_der) = pem_chain(&revoked, &[&sibling, &province]);

        let mut tree = MemoryTree::new();
        for i in 0..TREE_SIZE {
            tree.push(&entry(i).to_bytes()).unwrap();
        }
        let origin = LogOrigin::first(code(fixtures::OWN));
        let signed_at =
            |size: u64| Checkpoint::new(origin, size, root_at(&tree, size).unwrap()).sign(&log_seal.key).unwrap();
        let cosign = |signed: &mut SignedCheckpoint, who: &Issued, i: usize, at| {
            let cosig = Cosignature::sign(signed.checkpoint(), code(WITNESSES[i]), &who.key, at).unwrap();
            signed.add_cosignature(&cosig).unwrap();
            cosig
        };
        let bare = signed_at(TREE_SIZE);
        let mut checkpoint = bare.clone();
        let counted = cosign(&mut checkpoint, &witness, 0, fixtures::SIGNED);
        let not_counted = cosign(&mut checkpoint, &revoked, 1, fixtures::SIGNED - Duration::minutes(10));
        let mut last = signed_at(LAST_SIZE);
        let last_cosig = cosign(&mut last, &witness, 0, built + Duration::minutes(20));

        let dir = fuzz.join("fixtures/tlog");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in [
            ("root.pem", root.cert.to_pem()),
            ("crls.pem", crls.iter().map(Crl::to_pem).collect()),
            ("log.chain.pem", log_pem),
            ("witness-1.chain.pem", w1_pem),
            ("witness-2.chain.pem", w2_pem),
            ("checkpoint.note", checkpoint.to_text()),
            ("last.note", last.to_text()),
        ] {
            std::fs::write(dir.join(name), text).unwrap();
        }

        let corpus = Corpus(fuzz);
        // checkpoint, 0: signed checkpoint notes.
        let mut second =
            Checkpoint::new(LogOrigin { agency: origin.agency, generation: 2 }, 3, root_at(&tree, 3).unwrap());
        second.extensions.push("lienthong.gov.vn/ghi-chú thử".into());
        let empty = Checkpoint::new(origin, 0, EMPTY_ROOT).sign(&log_seal.key).unwrap();
        let by_witness = Checkpoint::new(origin, TREE_SIZE, tree.root()).sign(&witness.key).unwrap();
        for (name, signed) in [
            ("ok-cosigned", &checkpoint),
            ("ok-last", &last),
            ("ok-bare", &bare),
            ("ok-empty", &empty),
            ("ok-generation-extension", &second.sign(&log_seal.key).unwrap()),
            ("signed-by-witness", &by_witness),
        ] {
            corpus.put_selected("checkpoint", &format!("{name}.note"), 0, signed.to_text().as_bytes());
        }
        // checkpoint, 1: cosignature lines over the fixture checkpoint.
        corpus.put_selected("checkpoint", "ok-cosignature-ed25519", 1, counted.line().as_bytes());
        corpus.put_selected("checkpoint", "ok-cosignature-rsa", 1, not_counted.line().as_bytes());
        corpus.put_selected("checkpoint", "cosignature-of-another-checkpoint", 1, last_cosig.line().as_bytes());
        // checkpoint, 2 and 3: add-checkpoint requests, against the last co-signed one or the first.
        let request = |old: u64, proof: Vec<[u8; 32]>, checkpoint: &SignedCheckpoint| {
            AddCheckpoint { old_size: old, proof, checkpoint: checkpoint.clone() }.to_text().into_bytes()
        };
        let extends = consistency_proof(&tree, LAST_SIZE, TREE_SIZE).unwrap();
        let mut broken = extends.clone();
        broken[0][0] ^= 1;
        let fork = Checkpoint::new(origin, LAST_SIZE, [7; 32]).sign(&log_seal.key).unwrap();
        corpus.put_selected("checkpoint", "ok-add-checkpoint", 2, &request(LAST_SIZE, extends.clone(), &bare));
        corpus.put_selected("checkpoint", "ok-add-checkpoint-same", 2, &request(LAST_SIZE, vec![], &last));
        corpus.put_selected("checkpoint", "add-checkpoint-bad-proof", 2, &request(LAST_SIZE, broken, &bare));
        corpus.put_selected("checkpoint", "add-checkpoint-fork", 2, &request(LAST_SIZE, vec![], &fork));
        corpus.put_selected("checkpoint", "add-checkpoint-rollback", 2, &request(50, vec![], &signed_at(50)));
        corpus.put_selected("checkpoint", "add-checkpoint-stale-size", 2, &request(30, extends, &bare));
        corpus.put_selected("checkpoint", "ok-add-first", 3, &request(0, vec![], &checkpoint));

        // log_entry: one of each kind.
        for (name, i) in [
            ("document-clerk", 0),
            ("document-node", INDEX),
            ("signed-hop", 2),
            ("signed-status", 3),
            ("recorded-hop", 4),
            ("recorded-status", 5),
        ] {
            corpus.put("log_entry", &format!("ok-{name}.cbor"), &entry(i).to_bytes());
        }

        // log_proof: even, the CBOR proof; odd, its tlog-proof text (chains from the fixtures).
        let chains = vec![w2_der.clone(), log_der.clone(), w1_der.clone()];
        let proof_of = |i: u64, signed: &SignedCheckpoint| {
            LogProof::new(&entry(i), i, inclusion_proof(&tree, i, TREE_SIZE).unwrap(), signed.clone(), chains.clone())
        };
        let proof = proof_of(INDEX, &checkpoint);
        corpus.put_selected("log_proof", "ok-log-proof.cbor", 0, &proof.to_bytes());
        corpus.put_selected("log_proof", "ok-tlog-proof.txt", 1, proof.proof.to_text().as_bytes());
        corpus.put_selected("log_proof", "other-envelope.cbor", 0, &proof_of(5, &checkpoint).to_bytes());
        let mut revoked_only = bare.clone();
        cosign(&mut revoked_only, &revoked, 1, fixtures::SIGNED);
        corpus.put_selected("log_proof", "only-revoked-witness.cbor", 0, &proof_of(INDEX, &revoked_only).to_bytes());

        // merkle_proof: the raw modes (0, 1) with a real tree, the reference modes (2, 3).
        let mut reference = MemoryTree::new();
        for i in 0..1000u64 {
            reference.push(&i.to_le_bytes()).unwrap();
        }
        let raw = |mode: u8, a: u64, b: u64, h1: [u8; 32], h2: [u8; 32], proof: &[[u8; 32]]| {
            let mut out = vec![mode];
            out.extend(a.to_be_bytes());
            out.extend(b.to_be_bytes());
            out.extend(h1);
            out.extend(h2);
            proof.iter().for_each(|h| out.extend(h));
            out
        };
        let leaf = pki::tlog::leaf_hash(&377u64.to_le_bytes());
        let path = inclusion_proof(&reference, 377, 1000).unwrap();
        corpus.put("merkle_proof", "ok-inclusion", &raw(0, 377, 1000, leaf, reference.root(), &path));
        let (old_root, extension) =
            (root_at(&reference, 600).unwrap(), consistency_proof(&reference, 600, 1000).unwrap());
        corpus.put("merkle_proof", "ok-consistency", &raw(1, 600, 1000, old_root, reference.root(), &extension));
        corpus.put("merkle_proof", "edge-huge-size", &raw(0, u64::MAX - 1, u64::MAX, leaf, leaf, &path));
        corpus.put("merkle_proof", "edge-huge-consistency", &raw(1, u64::MAX >> 1, u64::MAX, leaf, leaf, &extension));
        let reference_mode = |mode: u8, a: u16, b: u16, length: u8, mask: &[u8]| {
            let mut out = vec![mode];
            out.extend(a.to_be_bytes());
            out.extend(b.to_be_bytes());
            out.push(length);
            out.extend(mask);
            out
        };
        corpus.put("merkle_proof", "ok-inclusion-reference", &reference_mode(2, 999, 377, 0, &[]));
        corpus.put("merkle_proof", "inclusion-reference-flipped", &reference_mode(2, 999, 377, 0, &[0, 0, 1]));
        corpus.put("merkle_proof", "inclusion-reference-short", &reference_mode(2, 999, 377, 1, &[]));
        corpus.put("merkle_proof", "ok-consistency-reference", &reference_mode(3, 999, 599, 0, &[]));
        corpus.put("merkle_proof", "consistency-reference-longer", &reference_mode(3, 999, 599, 128, &[]));
    }
}
