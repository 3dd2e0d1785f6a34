//! A test network: the demo topology's PKI, node configs on disk, nodes started in-process (on
//! sockets bound to 127.0.0.1:0) or as `lienthong-node` processes, clerks, and signed
//! documents.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use node::clerk_client::ClerkClient;
use node::config::{Config, Identity};
use node::{Node, NodeHandle};
use pki::document::Envelope;
use pki::document::manifest::{Attachment, Business, DocumentKind, Manifest, Urgency};
use pki::testing::{Issued, TestCa};
use pki::{AgencyCode, Certificate, PrivateKey, Profile};

/// One agency of a topology file.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct TopoAgency {
    pub code: String,
    pub name: String,
    pub parent: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct TopologyFile {
    agency: Vec<TopoAgency>,
}

/// A topology: agencies, parents first.
#[derive(Debug, Clone)]
pub struct Topology {
    pub agencies: Vec<(AgencyCode, String, Option<AgencyCode>)>,
}

impl Topology {
    /// Reads `deploy/topology/NAME.toml`.
    pub fn load(name: &str) -> Topology {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/topology").join(format!("{name}.toml"));
        let file: TopologyFile = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let agencies = file
            .agency
            .into_iter()
            .map(|a| (a.code.parse().unwrap(), a.name, a.parent.map(|p| p.parse().unwrap())))
            .collect();
        Topology { agencies }
    }

    /// Only these agencies; a parent left out becomes no parent.
    pub fn only(&self, codes: &[&str]) -> Topology {
        let keep: Vec<AgencyCode> = codes.iter().map(|c| c.parse().unwrap()).collect();
        let agencies = self
            .agencies
            .iter()
            .filter(|(c, _, _)| keep.contains(c))
            .map(|(c, n, p)| (*c, n.clone(), p.filter(|p| keep.contains(p))))
            .collect();
        Topology { agencies }
    }

    pub fn parent(&self, code: &AgencyCode) -> Option<AgencyCode> {
        self.agencies.iter().find(|(c, _, _)| c == code).and_then(|(_, _, p)| *p)
    }

    pub fn children(&self, code: &AgencyCode) -> Vec<AgencyCode> {
        self.agencies.iter().filter(|(_, _, p)| p.as_ref() == Some(code)).map(|(c, _, _)| *c).collect()
    }

    pub fn name(&self, code: &AgencyCode) -> String {
        self.agencies.iter().find(|(c, _, _)| c == code).map(|(_, n, _)| n.clone()).unwrap_or_default()
    }

    pub fn codes(&self) -> Vec<AgencyCode> {
        self.agencies.iter().map(|(c, _, _)| *c).collect()
    }
}

/// An agency's certificates and keys.
#[derive(Debug)]
pub struct AgencyPki {
    pub node: Issued,
    pub seal: Issued,
    pub clerk: Issued,
    pub person: Issued,
    /// The CAs above its leaves, issuing CA first, root excluded.
    pub above: Vec<Certificate>,
}

impl AgencyPki {
    pub fn chain(&self, leaf: &Certificate) -> Vec<Certificate> {
        std::iter::once(leaf.clone()).chain(self.above.iter().cloned()).collect()
    }
}

/// The PKI of a topology: a root, a CA for every level-1 agency and every agency with children,
/// and node, seal, clerk and person certificates for every agency.
#[derive(Debug)]
pub struct NetPki {
    pub root: TestCa,
    pub cas: BTreeMap<AgencyCode, TestCa>,
    pub agencies: BTreeMap<AgencyCode, AgencyPki>,
}

fn copy_key(key: &PrivateKey) -> PrivateKey {
    PrivateKey::from_pkcs8_der(key.pkcs8_der()).unwrap()
}

impl NetPki {
    pub fn build(topology: &Topology) -> NetPki {
        let mut root = TestCa::root();
        let mut cas: BTreeMap<AgencyCode, TestCa> = BTreeMap::new();
        let mut agencies = BTreeMap::new();
        for (code, name, _) in &topology.agencies {
            // Certificates follow the code tree (not the routing tree: the hub is not the
            // provinces' CA). The nearest code ancestor (or self) running a CA issues.
            let runs_ca = code.level() == 1 || !topology.children(code).is_empty();
            if runs_ca {
                let ca = match code.ancestors().find(|c| cas.contains_key(c)) {
                    Some(i) => cas.get_mut(&i).unwrap().sub_ca(&code.to_string(), name),
                    None => root.sub_ca(&code.to_string(), name),
                };
                cas.insert(*code, ca);
            }
            let issuer = std::iter::once(*code).chain(code.ancestors()).find(|c| cas.contains_key(c)).unwrap();
            let above: Vec<Certificate> = std::iter::once(issuer)
                .chain(issuer.ancestors())
                .filter_map(|c| cas.get(&c).map(|ca| ca.cert.clone()))
                .collect();
            let ca = cas.get_mut(&issuer).unwrap();
            let s = code.to_string();
            let node = ca.issue(Profile::Node, &s, name);
            let seal = ca.issue(Profile::Seal, &s, name);
            let clerk = ca.issue(Profile::Clerk, &s, &format!("Văn thư {name}"));
            let person = ca.issue_person(&s, "Nguyễn Văn An", "Chủ tịch", name);
            agencies.insert(*code, AgencyPki { node, seal, clerk, person, above });
        }
        NetPki { root, cas, agencies }
    }

    /// Fresh CRLs from the root and every CA, issued an hour ago, due in a week.
    pub fn crls(&mut self) -> Vec<pki::Crl> {
        let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let (from, to) = (now - time::Duration::hours(1), now + time::Duration::days(7));
        std::iter::once(self.root.crl(from, to)).chain(self.cas.values_mut().map(|ca| ca.crl(from, to))).collect()
    }

    pub fn identity(&self, code: &AgencyCode, which: Profile) -> Identity {
        let a = &self.agencies[code];
        let issued = match which {
            Profile::Node => &a.node,
            Profile::Seal => &a.seal,
            Profile::Clerk => &a.clerk,
            Profile::Person => &a.person,
            Profile::Ca => panic!("no CA identity"),
        };
        Identity { chain: a.chain(&issued.cert), key: copy_key(&issued.key) }
    }
}

/// Storage for the nodes of a test network.
#[derive(Debug, Clone)]
pub enum Database {
    /// A SQLite file per node in its data directory.
    Sqlite,
    /// A PostgreSQL URL per node.
    Postgres(BTreeMap<AgencyCode, String>),
}

/// How to run a test network.
#[derive(Debug, Clone)]
pub struct NetOptions {
    pub database: Database,
    /// Extra TOML appended to every node's config (limits, retry...).
    pub extra_config: String,
    /// Write CRL files and point every node at them.
    pub with_crls: bool,
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions {
            database: Database::Sqlite,
            extra_config: "[retry]\ninitial = \"100ms\"\nmax = \"1s\"\nmultiplier = 2.0\njitter = 0.2\nmax_attempts = 1000\njitter_seed = 7\n".into(),
            with_crls: true,
        }
    }
}

/// A network of nodes, their files, and (when started in-process) their handles.
pub struct TestNet {
    pub dir: tempfile::TempDir,
    pub pki: NetPki,
    pub topology: Topology,
    pub addrs: BTreeMap<AgencyCode, SocketAddr>,
    pub nodes: BTreeMap<AgencyCode, NodeHandle>,
    sockets: BTreeMap<AgencyCode, UdpSocket>,
    options: NetOptions,
}

fn write_pem(path: &Path, certs: &[Certificate]) {
    std::fs::write(path, certs.iter().map(Certificate::to_pem).collect::<String>()).unwrap();
}

impl TestNet {
    /// Builds the PKI and writes every node's files and config. Sockets are bound now (to
    /// 127.0.0.1:0) so the configs carry real addresses.
    pub fn prepare(topology: Topology, options: NetOptions) -> TestNet {
        let mut dir = tempfile::Builder::new().prefix("lienthong-net-").tempdir().unwrap();
        if std::env::var_os("LIENTHONG_KEEP_TEST_DIR").is_some() {
            eprintln!("test network in {}", dir.path().display());
            dir.disable_cleanup(true);
        }
        let mut pki = NetPki::build(&topology);
        let crls = pki.crls();
        let mut sockets = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        for code in topology.codes() {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            addrs.insert(code, socket.local_addr().unwrap());
            sockets.insert(code, socket);
        }
        write_pem(&dir.path().join("root.pem"), std::slice::from_ref(&pki.root.cert));
        std::fs::write(dir.path().join("crls.pem"), crls.iter().map(pki::Crl::to_pem).collect::<String>()).unwrap();
        let net = TestNet { dir, pki, topology, addrs, nodes: BTreeMap::new(), sockets, options };
        for code in net.topology.codes() {
            net.write_node_files(&code);
        }
        net
    }

    /// Prepares and starts every node in-process.
    pub async fn start(topology: Topology, options: NetOptions) -> TestNet {
        let mut net = TestNet::prepare(topology, options);
        for code in net.topology.codes() {
            net.start_node(&code).await;
        }
        net
    }

    pub fn node_dir(&self, code: &AgencyCode) -> PathBuf {
        self.dir.path().join(code.to_string())
    }

    pub fn config_path(&self, code: &AgencyCode) -> PathBuf {
        self.node_dir(code).join("node.toml")
    }

    fn write_node_files(&self, code: &AgencyCode) {
        let dir = self.node_dir(code);
        std::fs::create_dir_all(&dir).unwrap();
        let a = &self.pki.agencies[code];
        write_pem(&dir.join("node.chain.pem"), &a.chain(&a.node.cert));
        std::fs::write(dir.join("node.key.pem"), a.node.key.to_pem().as_bytes()).unwrap();
        write_pem(&dir.join("seal.chain.pem"), &a.chain(&a.seal.cert));
        std::fs::write(dir.join("seal.key.pem"), a.seal.key.to_pem().as_bytes()).unwrap();
        write_pem(&dir.join("clerk.chain.pem"), &a.chain(&a.clerk.cert));
        std::fs::write(dir.join("clerk.key.pem"), a.clerk.key.to_pem().as_bytes()).unwrap();
        let database = match &self.options.database {
            Database::Sqlite => String::new(),
            Database::Postgres(urls) => format!("database = \"{}\"\n", urls[code]),
        };
        let mut config = format!(
            "[node]\nagency = \"{code}\"\nname = \"{}\"\nlisten = \"{}\"\ndata_dir = \"data\"\n{database}\n[tls]\ncertificate = \"node.chain.pem\"\nkey = \"node.key.pem\"\ntrust_anchor = \"../root.pem\"\n\n[seal]\ncertificate = \"seal.chain.pem\"\nkey = \"seal.key.pem\"\n\n",
            self.topology.name(code),
            self.addrs[code]
        );
        if self.options.with_crls {
            config.push_str("[crl]\nfiles = [\"../crls.pem\"]\npoll = \"200ms\"\n\n");
        }
        if let Some(parent) = self.topology.parent(code) {
            config.push_str(&format!("[parent]\nagency = \"{parent}\"\naddress = \"{}\"\n\n", self.addrs[&parent]));
        }
        for child in self.topology.children(code) {
            config.push_str(&format!("[[child]]\nagency = \"{child}\"\naddress = \"{}\"\n\n", self.addrs[&child]));
        }
        config.push_str(&self.options.extra_config);
        std::fs::write(dir.join("node.toml"), config).unwrap();
    }

    /// Starts one node in-process (on its reserved socket the first time, rebinding its
    /// address after a stop).
    pub async fn start_node(&mut self, code: &AgencyCode) {
        let config = Config::load(&self.config_path(code)).unwrap_or_else(|e| panic!("config of {code}: {e}"));
        let socket = match self.sockets.remove(code) {
            Some(s) => s,
            None => UdpSocket::bind(self.addrs[code]).unwrap(),
        };
        let handle = Node::start(config, socket).await.unwrap_or_else(|e| panic!("start {code}: {e}"));
        self.nodes.insert(*code, handle);
    }

    /// Stops one in-process node.
    pub async fn stop_node(&mut self, code: &AgencyCode) {
        if let Some(h) = self.nodes.remove(code) {
            h.shutdown(Duration::from_secs(5)).await;
        }
    }

    /// Gives up the reserved socket of a node so a process can bind its address.
    pub fn release_socket(&mut self, code: &AgencyCode) {
        self.sockets.remove(code);
    }

    pub fn node(&self, code: &str) -> &Node {
        &self.nodes[&code.parse::<AgencyCode>().unwrap()].node
    }

    /// A clerk of `code` connected to its node.
    pub async fn clerk(&self, code: &str) -> ClerkClient {
        let code: AgencyCode = code.parse().unwrap();
        ClerkClient::connect(
            self.addrs[&code],
            code,
            &self.pki.identity(&code, Profile::Clerk),
            vec![self.pki.root.cert.clone()],
        )
        .await
        .unwrap()
    }

    /// A signed, sealed document from `from` to `to`, with one small attachment.
    pub fn document(&self, from: &str, to: &[&str], number: u32) -> SignedDocument {
        let from: AgencyCode = from.parse().unwrap();
        let body = format!("%PDF-1.4 Công văn số {number} của {from}\n").into_bytes();
        let attachment = Attachment {
            name: format!("cv-{number}.pdf"),
            media_type: "application/pdf".into(),
            size: body.len() as u64,
            sha256: pki::sha256(&body),
        };
        let manifest = Manifest {
            from,
            to: to.iter().map(|c| c.parse().unwrap()).collect(),
            number,
            notation: "UBND-VP".into(),
            place: "Quảng Ninh".into(),
            date: time::OffsetDateTime::now_utc().date(),
            kind: DocumentKind::Administrative,
            type_name: "Công văn".into(),
            subject: format!("Về việc thử nghiệm liên thông văn bản số {number}"),
            signer_name: "Nguyễn Văn An".into(),
            signer_position: "Chủ tịch".into(),
            due: None,
            urgency: Urgency::Normal,
            steering: 0,
            business: Business::New,
            attachments: vec![attachment],
        };
        self.sign(manifest, vec![body])
    }

    /// Signs a manifest as `from`'s chairman and seals it.
    pub fn sign(&self, manifest: Manifest, bodies: Vec<Vec<u8>>) -> SignedDocument {
        let a = &self.pki.agencies[&manifest.from];
        let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let envelope =
            Envelope::sign_person(&manifest.to_cbor().unwrap(), &a.person.key, &a.chain(&a.person.cert), now)
                .unwrap()
                .add_seal(&a.seal.key, &a.chain(&a.seal.cert), now)
                .unwrap();
        SignedDocument {
            id: manifest.id().to_string(),
            envelope: envelope.as_bytes().to_vec(),
            digest: envelope.digest(),
            bodies,
            manifest,
        }
    }

    /// Stops every in-process node.
    pub async fn stop(mut self) {
        let codes: Vec<AgencyCode> = self.nodes.keys().copied().collect();
        for c in codes {
            self.stop_node(&c).await;
        }
    }
}

/// A document ready to submit.
#[derive(Debug, Clone)]
pub struct SignedDocument {
    pub id: String,
    pub envelope: Vec<u8>,
    pub digest: [u8; 32],
    pub bodies: Vec<Vec<u8>>,
    pub manifest: Manifest,
}

impl SignedDocument {
    /// Submits it through a clerk.
    pub async fn submit(&self, clerk: &ClerkClient) -> Result<String, node::clerk_client::ClerkError> {
        let bodies = self.bodies.clone();
        let mut i = 0;
        clerk
            .submit(
                &self.envelope,
                Vec::new(),
                move |_| {
                    let body = bodies[i].clone();
                    i += 1;
                    Ok(std::io::Cursor::new(body))
                },
                |_| {},
            )
            .await
            .map(|(id, _)| id)
    }
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !check().await {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A raw node-protocol client with any identity, for tests that play a misbehaving or
/// foreign neighbour.
pub struct RawPeer {
    pub endpoint: quinn::Endpoint,
    pub connection: Result<quinn::Connection, String>,
}

impl RawPeer {
    /// Connects to `to`'s node presenting `identity`, trusting `anchor` for the server.
    pub async fn connect(net: &TestNet, identity: &Identity, to: &str) -> RawPeer {
        let to: AgencyCode = to.parse().unwrap();
        let trust = std::sync::Arc::new(node::trust::Trust::new(
            vec![net.pki.root.cert.clone()],
            Vec::new(),
            Duration::from_secs(86400),
        ));
        let crypto = node::tls::client_config(identity, trust, node::protocol::ALPN_NODE).unwrap();
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap();
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(quic)));
        let connection = match endpoint.connect(net.addrs[&to], &to.to_string()) {
            Ok(c) => c.await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        RawPeer { endpoint, connection }
    }

    /// Sends a request (and raw bytes after it) and reads the answer.
    pub async fn request(
        &self,
        request: &node::protocol::NodeRequest,
        after: &[u8],
    ) -> Result<node::protocol::NodeResponse, String> {
        let conn = self.connection.as_ref().map_err(Clone::clone)?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        let written = async {
            node::protocol::write_frame(&mut send, request).await.map_err(|e| e.to_string())?;
            send.write_all(after).await.map_err(|e| e.to_string())?;
            send.finish().map_err(|e| e.to_string())
        }
        .await;
        match node::protocol::read_frame(&mut recv, 64 << 20).await {
            Ok(r) => Ok(r),
            Err(e) => Err(written.err().unwrap_or_else(|| e.to_string())),
        }
    }

    /// Delivers a document (attachments from `doc.bodies`).
    pub async fn deliver(
        &self,
        doc: &SignedDocument,
        recipients: &[&str],
    ) -> Result<node::protocol::NodeResponse, String> {
        let request = node::protocol::NodeRequest::Deliver {
            envelope: serde_bytes::ByteBuf::from(doc.envelope.clone()),
            recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
            crls: Vec::new(),
        };
        self.request(&request, &doc.bodies.concat()).await
    }
}

/// A node running as a `lienthong-node` process.
pub struct NodeProcess {
    pub code: AgencyCode,
    pub child: std::process::Child,
}

impl NodeProcess {
    /// Kills it with SIGKILL: no shutdown, no flush, mid-whatever.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

impl TestNet {
    /// Starts one node as a process (its reserved socket is released first); its log goes to
    /// `node.log` in its directory.
    pub fn spawn_process(&mut self, code: &AgencyCode) -> NodeProcess {
        self.release_socket(code);
        let dir = self.node_dir(code);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("node.log")).unwrap();
        let child = std::process::Command::new(crate::bin("lienthong-node"))
            .args(["run", "--config", "node.toml"])
            .current_dir(&dir)
            .env("LIENTHONG_LOG", std::env::var("LIENTHONG_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        NodeProcess { code: *code, child }
    }

    /// Waits until a node process answers its clerk.
    pub async fn wait_ready(&self, code: &str) -> ClerkClient {
        let start = std::time::Instant::now();
        loop {
            let agency: AgencyCode = code.parse().unwrap();
            match ClerkClient::connect(
                self.addrs[&agency],
                agency,
                &self.pki.identity(&agency, Profile::Clerk),
                vec![self.pki.root.cert.clone()],
            )
            .await
            {
                Ok(c) if c.health().await.is_ok() => return c,
                _ => {
                    assert!(
                        start.elapsed() < Duration::from_secs(30),
                        "{code} did not come up; see {}",
                        self.node_dir(&agency).join("node.log").display()
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}
