//! The node's web face in tests: `[http]` turned on for one node of a [`TestNet`] with an
//! operator certificate, HTTPS clients (anonymous, operator, any identity), bundles as a
//! verifier receives them (fetched from a node, with receipts and CRLs), tampered ones, and
//! reading Prometheus samples.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use node::config::Identity;
use node::http::client::{Client, ServerCheck};
use pki::AgencyCode;

use crate::network::{SignedDocument, TestNet};

/// What [`enable`] set up.
pub struct WebFace {
    /// The operator's identity.
    pub operator: Identity,
    /// Its chain (PEM) and key (PKCS#8 PEM, unencrypted), as a browser is given them.
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

/// A TCP port free now on 127.0.0.1 (for node processes, whose bound port the test cannot
/// read back).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Issues an operator certificate for `code` ("Quản trị viên …"), writes it beside the
/// node's config (`operator.chain.pem`, `operator.key.pem`) and appends `[http]` with `listen`,
/// the operator, and `extra` lines to the config. Call before the node starts.
pub fn enable(net: &mut TestNet, code: &AgencyCode, listen: &str, extra: &str) -> WebFace {
    let name = format!("Quản trị viên {}", net.topology.name(code));
    let operator = net.pki.issue_operator(code, &name).unwrap();
    let dir = net.node_dir(code);
    let cert_pem = dir.join("operator.chain.pem");
    let key_pem = dir.join("operator.key.pem");
    std::fs::write(&cert_pem, operator.chain.iter().map(pki::Certificate::to_pem).collect::<String>()).unwrap();
    std::fs::write(&key_pem, operator.key.to_pem().as_bytes()).unwrap();
    let mut config = std::fs::read_to_string(net.config_path(code)).unwrap();
    config.push_str(&format!("\n[http]\nlisten = \"{listen}\"\noperators = [\"operator.chain.pem\"]\n{extra}\n"));
    std::fs::write(net.config_path(code), config).unwrap();
    WebFace { operator, cert_pem, key_pem }
}

/// A client of the web face at `addr`, presenting `identity` if given.
pub fn client(addr: SocketAddr, identity: Option<&Identity>) -> Client {
    Client::new(addr, identity, ServerCheck::DangerAcceptAny, Duration::from_secs(120)).unwrap()
}

/// The web face of an in-process node.
pub fn addr(net: &TestNet, code: &str) -> SocketAddr {
    net.node(code).http_addr().expect("the node has [http]")
}

/// The bundle a verifier gets: the envelope, `crls`, `receipts` and the document's
/// attachments, in the one canonical layout.
pub fn bundle(doc: &SignedDocument, crls: &[Vec<u8>], receipts: &[Vec<u8>]) -> Vec<u8> {
    let envelope = pki::document::Envelope::from_bytes(&doc.envelope).unwrap();
    let mut bodies = doc.bodies.iter();
    pki::document::write_bundle(std::io::Cursor::new(Vec::new()), &envelope, crls, receipts, |_, out| {
        out.write_all(bodies.next().unwrap()).map_err(Into::into)
    })
    .unwrap()
    .into_inner()
}

/// `bundle` with one byte of `needle` (a piece of an attachment's content) changed: what a
/// forger who edits the PDF inside the file produces.
pub fn tamper(bundle: &[u8], needle: &[u8]) -> Vec<u8> {
    let at = bundle.windows(needle.len()).position(|w| w == needle).expect("content to alter");
    let mut out = bundle.to_vec();
    out[at] ^= 0x01;
    out
}

/// A `multipart/form-data` body with one file field `bundle`, as a browser sends it.
pub fn multipart(file_name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----lienthongtestboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"bundle\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The sum of the samples of metric `name` whose labels include all of `labels`.
pub fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((m, r)) => (m, r.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let all = labels.iter().all(|(k, v)| rest.split(',').any(|p| p == format!("{k}=\"{v}\"")));
            if all { value.parse::<f64>().ok() } else { None }
        })
        .sum()
}

/// Peak and current resident memory of a process, KiB (`VmHWM`, `VmRSS` from `/proc`).
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CRLs of the root and every CA issued after every signature made so far. The test PKI dates
/// its CRLs an hour back, and a CRL older than a signature cannot speak for it (issue 11): a
/// document signed a moment ago is INDETERMINATE (TRY_LATER) until its CAs publish again, for
/// the web verifier as for `lienthong verify`. These are dated an hour ahead (so issued now),
/// after a pause past the current second (CRL times are whole seconds).
pub fn crls_after_signing(net: &mut TestNet) -> Vec<pki::Crl> {
    std::thread::sleep(Duration::from_millis(1100));
    net.pki.crls(time::OffsetDateTime::now_utc() + time::Duration::hours(1)).unwrap()
}

/// Publishes [`crls_after_signing`] to the network's `crls.pem` and waits until the node whose
/// web face is at `web` holds them (its `/metrics` shows every CRL younger than a minute).
pub async fn publish_crls_after_signing(net: &mut TestNet, web: SocketAddr) {
    let crls = crls_after_signing(net);
    std::fs::write(net.dir.path().join("crls.pem"), crls.iter().map(pki::Crl::to_pem).collect::<String>()).unwrap();
    let client = client(web, None);
    crate::network::wait_for("the node holding the new CRLs", Duration::from_secs(15), || async {
        let Ok(answer) = client.get("/metrics").await else { return false };
        let ages: Vec<f64> = answer
            .text()
            .lines()
            .filter(|l| l.starts_with("lienthong_crl_age_seconds{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
            .collect();
        !ages.is_empty() && ages.iter().all(|&age| age < 60.0)
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn samples_are_summed_over_matching_labels() {
        let text = "# TYPE x counter\nx_total{via=\"clerk\"} 2\nx_total{via=\"neighbour\",peer=\"a\"} 3\nx_total{via=\"neighbour\",peer=\"b\"} 4\ny 1\n";
        assert_eq!(sample(text, "x_total", &[]), 9.0);
        assert_eq!(sample(text, "x_total", &[("via", "neighbour")]), 7.0);
        assert_eq!(sample(text, "y", &[]), 1.0);
        assert_eq!(sample(text, "z", &[]), 0.0);
    }
}
