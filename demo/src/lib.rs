//! A network as data: a topology file, a PKI for it, and every node's files. What
//! `lienthong demo` stands the Quảng Ninh network up with, and what the tests build their
//! networks with.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pki::issue::IssueError;
use pki::memory_ca::{Issued, MemoryCa};
use pki::{AgencyCode, Certificate, Crl, KeyAlgorithm, PrivateKey, Profile};
use time::{Duration, OffsetDateTime};

use lienthong_protocol::Identity;

/// Quảng Ninh before 1 July 2025: four levels, with a second province.
pub const QUANG_NINH_2024: &str = include_str!("../../deploy/topology/quang-ninh-2024.toml");
/// Quảng Ninh after 1 July 2025: districts abolished, communes under the province.
pub const QUANG_NINH_2025: &str = include_str!("../../deploy/topology/quang-ninh-2025.toml");

#[derive(Debug, Clone, serde::Deserialize)]
struct TopologyFile {
    agency: Vec<TopologyEntry>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyEntry {
    code: String,
    name: String,
    parent: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    role: Option<String>,
}

/// Agencies and their routing parents, parents first.
#[derive(Debug, Clone)]
pub struct Topology {
    /// (code, name, routing parent).
    pub agencies: Vec<(AgencyCode, String, Option<AgencyCode>)>,
}

impl Topology {
    /// Reads a topology file (`[[agency]]` with `code`, `name`, optional `parent`).
    pub fn parse(text: &str) -> Result<Topology, String> {
        let file: TopologyFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut agencies = Vec::new();
        for a in file.agency {
            let code: AgencyCode = a.code.parse().map_err(|e| format!("{}: {e}", a.code))?;
            let parent = a.parent.map(|p| p.parse::<AgencyCode>().map_err(|e| format!("{p}: {e}"))).transpose()?;
            if let Some(p) = parent
                && !agencies.iter().any(|(c, _, _): &(AgencyCode, String, Option<AgencyCode>)| *c == p)
            {
                return Err(format!("{code}'s parent {p} must be listed before it"));
            }
            agencies.push((code, a.name, parent));
        }
        Ok(Topology { agencies })
    }

    /// Only these agencies; a parent left out becomes no parent.
    pub fn only(&self, codes: &[AgencyCode]) -> Topology {
        let agencies = self
            .agencies
            .iter()
            .filter(|(c, _, _)| codes.contains(c))
            .map(|(c, n, p)| (*c, n.clone(), p.filter(|p| codes.contains(p))))
            .collect();
        Topology { agencies }
    }

    /// An agency's routing parent.
    pub fn parent(&self, code: &AgencyCode) -> Option<AgencyCode> {
        self.agencies.iter().find(|(c, _, _)| c == code).and_then(|(_, _, p)| *p)
    }

    /// An agency's routing children.
    pub fn children(&self, code: &AgencyCode) -> Vec<AgencyCode> {
        self.agencies.iter().filter(|(_, _, p)| p.as_ref() == Some(code)).map(|(c, _, _)| *c).collect()
    }

    /// An agency's name.
    pub fn name(&self, code: &AgencyCode) -> String {
        self.agencies.iter().find(|(c, _, _)| c == code).map(|(_, n, _)| n.clone()).unwrap_or_default()
    }

    /// Every code, parents first.
    pub fn codes(&self) -> Vec<AgencyCode> {
        self.agencies.iter().map(|(c, _, _)| *c).collect()
    }
}

/// An agency's certificates and keys.
#[derive(Debug)]
pub struct AgencyPki {
    /// Node (QUIC) identity.
    pub node: Issued,
    /// The agency seal.
    pub seal: Issued,
    /// A clerk's client certificate.
    pub clerk: Issued,
    /// The chairman's personal signing certificate.
    pub person: Issued,
    /// The CAs above these certificates, issuing CA first, root excluded.
    pub above: Vec<Certificate>,
}

impl AgencyPki {
    /// `leaf` followed by the CAs above it.
    pub fn chain(&self, leaf: &Certificate) -> Vec<Certificate> {
        std::iter::once(leaf.clone()).chain(self.above.iter().cloned()).collect()
    }
}

/// The PKI of a topology. Certificates follow the code tree (not the routing tree: the hub is
/// not the provinces' CA): a CA for every level-1 agency and every agency with children, and
/// node, seal, clerk and person certificates for every agency from the nearest CA at or above
/// it.
#[derive(Debug)]
pub struct DemoPki {
    /// The national root.
    pub root: MemoryCa,
    /// The sub-CAs.
    pub cas: BTreeMap<AgencyCode, MemoryCa>,
    /// Every agency's certificates.
    pub agencies: BTreeMap<AgencyCode, AgencyPki>,
}

impl DemoPki {
    /// Builds the PKI, valid from an hour before `now` for ten years (the root twenty).
    pub fn build(topology: &Topology, now: OffsetDateTime) -> Result<DemoPki, IssueError> {
        let start = now - Duration::hours(1);
        let mut root = MemoryCa::root(
            "Root CA Quốc gia lienthong (demo)",
            PrivateKey::generate(KeyAlgorithm::EcdsaP256)?,
            start,
            start + Duration::days(365 * 20),
        )?;
        root.not_after = start + Duration::days(3650);
        let mut cas: BTreeMap<AgencyCode, MemoryCa> = BTreeMap::new();
        let mut agencies = BTreeMap::new();
        for (code, name, _) in &topology.agencies {
            let runs_ca = code.level() == 1 || !topology.children(code).is_empty();
            if runs_ca {
                let ca = match code.ancestors().find(|c| cas.contains_key(c)) {
                    Some(i) => cas.get_mut(&i).map(|ca| ca.sub_ca(*code, name)),
                    None => Some(root.sub_ca(*code, name)),
                };
                if let Some(ca) = ca {
                    cas.insert(*code, ca?);
                }
            }
            let Some(issuer) = std::iter::once(*code).chain(code.ancestors()).find(|c| cas.contains_key(c)) else {
                return Err(IssueError::Hierarchy { code: *code, scope: pki::Scope::National });
            };
            let above: Vec<Certificate> = std::iter::once(issuer)
                .chain(issuer.ancestors())
                .filter_map(|c| cas.get(&c).map(|ca| ca.cert.clone()))
                .collect();
            let Some(ca) = cas.get_mut(&issuer) else { continue };
            let node = ca.issue(Profile::Node, *code, name)?;
            let seal = ca.issue(Profile::Seal, *code, name)?;
            let clerk = ca.issue(Profile::Clerk, *code, &format!("Văn thư {name}"))?;
            let person = ca.issue_person(*code, "Nguyễn Văn An", "Chủ tịch", name)?;
            agencies.insert(*code, AgencyPki { node, seal, clerk, person, above });
        }
        Ok(DemoPki { root, cas, agencies })
    }

    /// Fresh CRLs from the root and every CA, issued an hour before `now`, due in a week.
    pub fn crls(&mut self, now: OffsetDateTime) -> Result<Vec<Crl>, IssueError> {
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let (from, to) = (now - Duration::hours(1), now + Duration::days(7));
        let mut out = vec![self.root.crl(from, to)?];
        for ca in self.cas.values_mut() {
            out.push(ca.crl(from, to)?);
        }
        Ok(out)
    }

    /// A new operator certificate for `code`'s web console: a client certificate (profile
    /// clerk) named `name`, issued by the CA that issues the agency's other certificates. It is
    /// an operator's once listed in `[http] operators` (see `node::http`).
    pub fn issue_operator(&mut self, code: &AgencyCode, name: &str) -> Result<Identity, IssueError> {
        let issuer = std::iter::once(*code)
            .chain(code.ancestors())
            .find(|c| self.cas.contains_key(c))
            .ok_or(IssueError::Hierarchy { code: *code, scope: pki::Scope::National })?;
        let above = self.agencies.get(code).map(|a| a.above.clone()).unwrap_or_default();
        let ca = self.cas.get_mut(&issuer).ok_or(IssueError::Hierarchy { code: *code, scope: pki::Scope::National })?;
        let issued = ca.issue(Profile::Clerk, *code, name)?;
        let chain = std::iter::once(issued.cert).chain(above).collect();
        Ok(Identity { chain, key: issued.key })
    }

    /// An agency's identity for a profile (node, seal, clerk or person).
    pub fn identity(&self, code: &AgencyCode, which: Profile) -> Option<Identity> {
        let a = self.agencies.get(code)?;
        let issued = match which {
            Profile::Node => &a.node,
            Profile::Seal => &a.seal,
            Profile::Clerk => &a.clerk,
            Profile::Person => &a.person,
            Profile::Ca => return None,
        };
        Some(Identity { chain: a.chain(&issued.cert), key: PrivateKey::from_pkcs8_der(issued.key.pkcs8_der()).ok()? })
    }
}

/// How to write a node's configuration.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// A database URL; default the node's SQLite file.
    pub database: Option<String>,
    /// Whether the node reads `../crls.pem`.
    pub crl_file: bool,
    /// TOML appended to the configuration (limits, retry, ...).
    pub extra: String,
}

fn pem(certs: &[Certificate]) -> String {
    certs.iter().map(Certificate::to_pem).collect()
}

/// Writes `root.pem` and `crls.pem` into `dir`.
pub fn write_shared(dir: &Path, pki: &DemoPki, crls: &[Crl]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("root.pem"), pki.root.cert.to_pem())?;
    std::fs::write(dir.join("crls.pem"), crls.iter().map(Crl::to_pem).collect::<String>())
}

/// Writes one node's certificates, keys and `node.toml` into `dir/CODE/`; the person key is
/// encrypted with `person_passphrase`. Returns the node's directory.
pub fn write_node(
    dir: &Path,
    code: &AgencyCode,
    topology: &Topology,
    pki: &DemoPki,
    addrs: &BTreeMap<AgencyCode, SocketAddr>,
    options: &NodeOptions,
    person_passphrase: &[u8],
) -> std::io::Result<PathBuf> {
    let node_dir = dir.join(code.to_string());
    std::fs::create_dir_all(&node_dir)?;
    let a = pki.agencies.get(code).ok_or_else(|| std::io::Error::other(format!("no certificates for {code}")))?;
    let private = |path: &Path, text: &str| -> std::io::Result<()> {
        std::fs::write(path, text)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    };
    for (name, issued) in [("node", &a.node), ("seal", &a.seal), ("clerk", &a.clerk)] {
        std::fs::write(node_dir.join(format!("{name}.chain.pem")), pem(&a.chain(&issued.cert)))?;
        private(&node_dir.join(format!("{name}.key.pem")), &issued.key.to_pem())?;
    }
    std::fs::write(node_dir.join("person.chain.pem"), pem(&a.chain(&a.person.cert)))?;
    let person_key =
        a.person.key.to_encrypted_pem(person_passphrase).map_err(|e| std::io::Error::other(e.to_string()))?;
    private(&node_dir.join("person.key.pem"), &person_key)?;
    let address = |c: &AgencyCode| addrs.get(c).ok_or_else(|| std::io::Error::other(format!("no address for {c}")));
    let database = options.database.as_ref().map(|d| format!("database = \"{d}\"\n")).unwrap_or_default();
    let mut config = format!(
        "# lienthong-node configuration for {} ({code}), written by the demo.\n\n[node]\nagency = \"{code}\"\nname = \"{}\"\nlisten = \"{}\"\ndata_dir = \"data\"\n{database}\n[tls]\ncertificate = \"node.chain.pem\"\nkey = \"node.key.pem\"\ntrust_anchor = \"../root.pem\"\n\n[seal]\ncertificate = \"seal.chain.pem\"\nkey = \"seal.key.pem\"\n\n",
        topology.name(code),
        topology.name(code),
        address(code)?
    );
    if options.crl_file {
        config.push_str("[crl]\nfiles = [\"../crls.pem\"]\npoll = \"1s\"\n\n");
    }
    if let Some(parent) = topology.parent(code) {
        config.push_str(&format!("[parent]\nagency = \"{parent}\"\naddress = \"{}\"\n\n", address(&parent)?));
    }
    for child in topology.children(code) {
        config.push_str(&format!("[[child]]\nagency = \"{child}\"\naddress = \"{}\"\n\n", address(&child)?));
    }
    config.push_str(&options.extra);
    std::fs::write(node_dir.join("node.toml"), config)?;
    Ok(node_dir)
}
