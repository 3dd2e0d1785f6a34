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
use pki::{AgencyCode, Profile};

pub use demo::{DemoPki, Topology};

use crate::postgres::PgCluster;

/// Loads `deploy/topology/NAME.toml`.
pub fn topology(name: &str) -> Topology {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/topology").join(format!("{name}.toml"));
    Topology::parse(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// `topology` restricted to `codes`.
pub fn only(topology: &Topology, codes: &[&str]) -> Topology {
    topology.only(&codes.iter().map(|c| c.parse().unwrap()).collect::<Vec<_>>())
}

/// The person key passphrase the test networks use.
pub const PERSON_PASSPHRASE: &str = "demo-passphrase";

/// Storage for the nodes of a test network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file per node in its data directory.
    Sqlite,
    /// A throwaway PostgreSQL cluster for the network, one database per agency (processes of
    /// the same agency share it).
    Postgres,
}

/// Binds a node's address again after a stop: the stopped endpoint's socket is freed a moment
/// after shutdown returns, so "address in use" is retried for a few seconds.
pub(crate) fn rebind(addr: SocketAddr) -> UdpSocket {
    let start = std::time::Instant::now();
    loop {
        match UdpSocket::bind(addr) {
            Ok(s) => return s,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && start.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot bind {addr} again: {e}"),
        }
    }
}

/// The PostgreSQL database of an agency in a test network.
pub fn database_name(code: &AgencyCode) -> String {
    format!("node_{}", code.to_string().replace('.', "_").to_lowercase())
}

/// How to run a test network.
#[derive(Debug, Clone)]
pub struct NetOptions {
    pub database: Database,
    /// Extra TOML appended to every node's config (limits, retry...).
    pub extra_config: String,
    /// Write CRL files and point every node at them.
    pub with_crls: bool,
    /// On PostgreSQL, have the server count each database's statements (see
    /// [`TestNet::statements`]).
    pub count_statements: bool,
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions {
            database: Database::Sqlite,
            extra_config: "[retry]\ninitial = \"100ms\"\nmax = \"1s\"\nmultiplier = 2.0\njitter = 0.2\nmax_attempts = 1000\njitter_seed = 7\n".into(),
            with_crls: true,
            count_statements: false,
        }
    }
}

/// A network of nodes, their files, and (when started in-process) their handles.
pub struct TestNet {
    pub dir: tempfile::TempDir,
    pub pki: DemoPki,
    pub topology: Topology,
    pub addrs: BTreeMap<AgencyCode, SocketAddr>,
    pub nodes: BTreeMap<AgencyCode, NodeHandle>,
    sockets: BTreeMap<AgencyCode, UdpSocket>,
    options: NetOptions,
    pg: Option<PgCluster>,
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
        let mut pki = DemoPki::build(&topology, time::OffsetDateTime::now_utc()).unwrap();
        let crls = pki.crls(time::OffsetDateTime::now_utc()).unwrap();
        let mut sockets = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        for code in topology.codes() {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            addrs.insert(code, socket.local_addr().unwrap());
            sockets.insert(code, socket);
        }
        demo::write_shared(dir.path(), &pki, &crls).unwrap();
        let pg = match options.database {
            Database::Sqlite => None,
            Database::Postgres => {
                let cluster = PgCluster::start_with(if options.count_statements { PgCluster::COUNTING } else { "" });
                for code in topology.codes() {
                    cluster.database(&database_name(&code));
                }
                Some(cluster)
            }
        };
        let net = TestNet { dir, pki, topology, addrs, nodes: BTreeMap::new(), sockets, options, pg };
        for code in net.topology.codes() {
            net.write_node_files(&code);
        }
        net
    }

    /// Publishes fresh CRLs (with every revocation so far) into the shared `crls.pem`.
    pub fn publish_crls(&mut self) {
        let crls = self.pki.crls(time::OffsetDateTime::now_utc()).unwrap();
        std::fs::write(self.dir.path().join("crls.pem"), crls.iter().map(pki::Crl::to_pem).collect::<String>())
            .unwrap();
    }

    /// Prepares and starts every node in-process.
    pub async fn start(topology: Topology, options: NetOptions) -> TestNet {
        let mut net = TestNet::prepare(topology, options);
        for code in net.topology.codes() {
            net.start_node(&code).await;
        }
        net
    }

    /// Opens `code`'s database and attachment store as its node does (what another process of
    /// the agency, or an operator's command, would open).
    pub async fn open_store(&self, code: &AgencyCode) -> node::storage::Store {
        let config = Config::load(&self.config_path(code)).unwrap_or_else(|e| panic!("config of {code}: {e}"));
        node::storage::Store::open(&config.database, &config.data_dir).await.unwrap()
    }

    /// The network's PostgreSQL cluster, if it runs on one.
    pub fn pg(&self) -> Option<&PgCluster> {
        self.pg.as_ref()
    }

    /// The CPU time its PostgreSQL server has spent so far (see [`PgCluster::server_cpu`]);
    /// zero on SQLite.
    pub fn server_cpu(&self) -> std::time::Duration {
        self.pg.as_ref().map_or(std::time::Duration::ZERO, PgCluster::server_cpu)
    }

    /// What each node's database has run so far (see [`PgCluster::statements`]); empty on
    /// SQLite or without `NetOptions::count_statements`.
    pub fn statements(&self) -> BTreeMap<AgencyCode, crate::postgres::Statements> {
        let Some(pg) = &self.pg else { return BTreeMap::new() };
        let counted = pg.statements();
        self.topology
            .codes()
            .into_iter()
            .filter_map(|code| Some((code, *counted.get(&database_name(&code))?)))
            .collect()
    }

    pub fn node_dir(&self, code: &AgencyCode) -> PathBuf {
        self.dir.path().join(code.to_string())
    }

    pub fn config_path(&self, code: &AgencyCode) -> PathBuf {
        self.node_dir(code).join("node.toml")
    }

    /// A pool of one connection on `code`'s database, as an operator with database access
    /// would have: for what a test does to the database behind the node's back (a trigger
    /// that refuses rows, a log rewritten).
    pub async fn raw_pool(&self, code: &AgencyCode) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        let config = Config::load(&self.config_path(code)).unwrap();
        sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&config.database).await.unwrap()
    }

    fn write_node_files(&self, code: &AgencyCode) {
        let database = self.pg.as_ref().map(|pg| pg.url(&database_name(code)));
        let options =
            demo::NodeOptions { database, crl_file: self.options.with_crls, extra: self.options.extra_config.clone() };
        demo::write_node(
            self.dir.path(),
            code,
            &self.topology,
            &self.pki,
            &self.addrs,
            &options,
            PERSON_PASSPHRASE.as_bytes(),
        )
        .unwrap();
    }

    /// Starts one node in-process (on its reserved socket the first time, rebinding its
    /// address after a stop).
    pub async fn start_node(&mut self, code: &AgencyCode) {
        let config = Config::load(&self.config_path(code)).unwrap_or_else(|e| panic!("config of {code}: {e}"));
        let socket = match self.sockets.remove(code) {
            Some(s) => s,
            None => rebind(self.addrs[code]),
        };
        let handle = Node::start(config, socket).await.unwrap_or_else(|e| panic!("start {code}: {e}"));
        self.nodes.insert(*code, handle);
    }

    /// Starts, in-process, the node instance of `code` configured by `config` in its
    /// directory (e.g. `p2.toml` from [`TestNet::scale_out`]), on the address it listens on.
    pub async fn start_instance(&self, code: &AgencyCode, config: &str) -> NodeHandle {
        let config = Config::load(&self.node_dir(code).join(config)).unwrap_or_else(|e| panic!("{config}: {e}"));
        let socket = rebind(config.listen);
        Node::start(config, socket).await.unwrap_or_else(|e| panic!("start {code}: {e}"))
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
            &self.identity(&code, Profile::Clerk),
            vec![self.pki.root.cert.clone()],
        )
        .await
        .unwrap()
    }

    /// `doc` verified as a node verifies it on arrival now, against the hierarchy's root and
    /// the CRLs last published (`crls.pem`): what a node's storage takes. Panics if it does
    /// not verify.
    pub fn verified(&self, doc: &SignedDocument) -> pki::document::verify::VerifiedEnvelope {
        let now = time::OffsetDateTime::now_utc();
        let mut crls = pki::CrlSet::new();
        let published = std::fs::read_to_string(self.dir.path().join("crls.pem")).unwrap();
        for crl in pki::Crl::from_pem_all(&published).unwrap() {
            crls.add(crl);
        }
        let validator = pki::Validator::new(vec![self.pki.root.cert.clone()]).with_crls(crls);
        let envelope = Envelope::from_bytes(&doc.envelope).unwrap();
        pki::document::validation::verify_arrival(&envelope, &validator, &pki::document::validation::Arrival::new(now))
            .unwrap()
    }

    /// An agency's identity for a profile.
    pub fn identity(&self, code: &AgencyCode, which: Profile) -> Identity {
        self.pki.identity(code, which).unwrap()
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
        self.sign_at(manifest, bodies, time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap())
    }

    /// Signs a manifest as `from`'s chairman and seals it, both claiming to sign at `now`
    /// (the signer chooses its `iat`: what a backdating attacker does).
    pub fn sign_at(&self, manifest: Manifest, bodies: Vec<Vec<u8>>, now: time::OffsetDateTime) -> SignedDocument {
        let a = &self.pki.agencies[&manifest.from];
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

    /// A receipt of `kind` about `doc`, sealed now by agency `by`, addressed to `to`, for
    /// `recipients`: what that agency's node would sign.
    pub fn receipt(
        &self,
        kind: pki::document::ReceiptKind,
        doc: &SignedDocument,
        by: &str,
        to: &str,
        recipients: &[&str],
    ) -> pki::document::SignedReceipt {
        let by: AgencyCode = by.parse().unwrap();
        let a = &self.pki.agencies[&by];
        pki::document::Receipt {
            kind,
            document: doc.manifest.id(),
            envelope: doc.digest,
            by,
            to: to.parse().unwrap(),
            at: time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap(),
            recipients: recipients.iter().map(|r| r.parse().unwrap()).collect(),
            note: None,
        }
        .sign(&a.seal.key, &a.chain(&a.seal.cert))
        .unwrap()
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

/// Fetches a document through a clerk, returning what came with it and every attachment's
/// bytes in manifest order.
pub async fn fetch_all(
    clerk: &ClerkClient,
    document: &str,
) -> Result<(node::clerk_client::Fetched, Vec<Vec<u8>>), node::clerk_client::ClerkError> {
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let fetched = clerk
        .fetch(document, false, |a, mut recv| {
            let out = bodies.clone();
            async move {
                let mut buf = vec![0u8; a.size as usize];
                recv.read_exact(&mut buf)
                    .await
                    .map_err(|e| node::clerk_client::ClerkError::Transport(e.to_string()))?;
                out.lock().unwrap().push(buf);
                Ok(recv)
            }
        })
        .await?;
    let bodies = bodies.lock().unwrap().clone();
    Ok((fetched, bodies))
}

/// Submits `docs` through `clerk`, `in_flight` at a time, and waits for every submission
/// (each must succeed).
pub async fn submit_all(
    clerk: &std::sync::Arc<ClerkClient>,
    docs: &[std::sync::Arc<SignedDocument>],
    in_flight: usize,
) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut tasks = Vec::new();
    for doc in docs {
        let (doc, clerk, permit) = (doc.clone(), clerk.clone(), slots.clone().acquire_owned().await.unwrap());
        tasks.push(tokio::spawn(async move {
            doc.submit(&clerk).await.unwrap();
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
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
        let addr = net.addrs[&to.parse::<AgencyCode>().unwrap()];
        RawPeer::connect_at(net, identity, to, addr).await
    }

    /// Connects to the process of `to` at `addr`.
    pub async fn connect_at(net: &TestNet, identity: &Identity, to: &str, addr: SocketAddr) -> RawPeer {
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
        let connection = match endpoint.connect(addr, &to.to_string()) {
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

    /// Delivers a document (attachments from `doc.bodies`), as a node of this version does.
    pub async fn deliver(
        &self,
        doc: &SignedDocument,
        recipients: &[&str],
    ) -> Result<node::protocol::NodeResponse, String> {
        self.deliver_with(doc, recipients, true).await
    }

    /// Delivers a document the node must take ([`RawPeer::deliver_with`]): its hop receipt
    /// and the statuses that came with it, as bytes. Panics with the answer otherwise.
    pub async fn taken(
        &self,
        doc: &SignedDocument,
        recipients: &[&str],
        statuses_back: bool,
    ) -> (Vec<u8>, Vec<Vec<u8>>) {
        match self.deliver_with(doc, recipients, statuses_back).await {
            Ok(node::protocol::NodeResponse::HopReceipt { receipt, statuses }) => {
                (receipt.into_vec(), statuses.into_iter().map(serde_bytes::ByteBuf::into_vec).collect())
            }
            other => panic!("{} not taken: {other:?}", doc.id),
        }
    }

    /// Delivers a document, saying whether this peer keeps the statuses that come with a hop
    /// receipt (`false`: as a node from before they could).
    pub async fn deliver_with(
        &self,
        doc: &SignedDocument,
        recipients: &[&str],
        statuses_back: bool,
    ) -> Result<node::protocol::NodeResponse, String> {
        let request = node::protocol::NodeRequest::Deliver {
            envelope: serde_bytes::ByteBuf::from(doc.envelope.clone()),
            recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
            crls: Vec::new(),
            crls_asked: Vec::new(),
            resume: false,
            statuses_back,
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
        self.spawn_with(code, "node.toml")
    }

    /// Starts a process of `code` with the config file `config` of its directory; its log
    /// goes beside it (`p2.toml` logs to `p2.log`).
    pub fn spawn_with(&self, code: &AgencyCode, config: &str) -> NodeProcess {
        let dir = self.node_dir(code);
        let log_name = if config == "node.toml" { "node.log".to_owned() } else { config.replace(".toml", ".log") };
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(log_name)).unwrap();
        let child = std::process::Command::new(crate::bin("lienthong-node"))
            .args(["run", "--config", config])
            .current_dir(&dir)
            .env("LIENTHONG_LOG", std::env::var("LIENTHONG_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        NodeProcess { code: *code, child }
    }

    /// Scales `code` out to `n` processes sharing its database and data directory: writes
    /// `p1.toml` … `pN.toml` (the same config on other loopback ports) and gives every
    /// neighbour the list of addresses, rotated so that each neighbour prefers another
    /// process. Returns the addresses; start them with [`TestNet::spawn_with`].
    pub fn scale_out(&mut self, code: &AgencyCode, n: usize) -> Vec<SocketAddr> {
        self.release_socket(code);
        let first = self.addrs[code];
        let mut addrs = vec![first];
        for _ in 1..n {
            addrs.push(UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
        }
        let base = std::fs::read_to_string(self.config_path(code)).unwrap();
        let listen = format!("listen = \"{first}\"");
        assert!(base.contains(&listen));
        for (i, a) in addrs.iter().enumerate() {
            let text = base.replace(&listen, &format!("listen = \"{a}\""));
            std::fs::write(self.node_dir(code).join(format!("p{}.toml", i + 1)), text).unwrap();
        }
        let single = format!("address = \"{first}\"");
        let neighbours: Vec<AgencyCode> = self.topology.codes().into_iter().filter(|c| c != code).collect();
        for (k, neighbour) in neighbours.iter().enumerate() {
            let path = self.config_path(neighbour);
            let text = std::fs::read_to_string(&path).unwrap();
            if !text.contains(&single) {
                continue;
            }
            let mut order = addrs.clone();
            order.rotate_left(k % n);
            let list = order.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ");
            std::fs::write(&path, text.replace(&single, &format!("address = [{list}]"))).unwrap();
        }
        addrs
    }

    /// Waits until a node process answers its clerk.
    pub async fn wait_ready(&self, code: &str) -> ClerkClient {
        self.wait_ready_at(code, self.addrs[&code.parse::<AgencyCode>().unwrap()]).await
    }

    /// Waits until the node process of `code` at `addr` answers its clerk.
    pub async fn wait_ready_at(&self, code: &str, addr: SocketAddr) -> ClerkClient {
        let start = std::time::Instant::now();
        loop {
            let agency: AgencyCode = code.parse().unwrap();
            match ClerkClient::connect(
                addr,
                agency,
                &self.identity(&agency, Profile::Clerk),
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
