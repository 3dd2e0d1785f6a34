//! Faults on a test network: a [`FaultProxy`] on each direction of chosen links (the node
//! configurations written by [`TestNet::prepare`] rewritten to reach the neighbour through
//! it), and node processes run under a shifted clock (libfaketime).

use std::collections::BTreeMap;
use std::path::PathBuf;

use pki::AgencyCode;

use crate::fault_proxy::{Counts, FaultProxy, FaultSeed, Faults, ProxyCounts};
use crate::network::{NodeProcess, TestNet, Topology};

/// Every routing link of a topology, as (child, parent).
pub fn every_link(topology: &Topology) -> Vec<(AgencyCode, AgencyCode)> {
    topology.codes().into_iter().filter_map(|c| topology.parent(&c).map(|p| (c, p))).collect()
}

/// The agencies a document from `from` to `to` passes through after `from`, `to` included:
/// up to the nearest common ancestor, then down.
pub fn path(topology: &Topology, from: &AgencyCode, to: &AgencyCode) -> Vec<AgencyCode> {
    let up = |c: &AgencyCode| {
        let mut line = vec![*c];
        while let Some(p) = topology.parent(line.last().unwrap()) {
            line.push(p);
        }
        line
    };
    let (from_up, to_up) = (up(from), up(to));
    let meet =
        from_up.iter().position(|c| to_up.contains(c)).unwrap_or_else(|| panic!("{from} and {to} share no ancestor"));
    let down = to_up.iter().position(|c| *c == from_up[meet]).unwrap();
    let mut hops: Vec<AgencyCode> = from_up[1..=meet].to_vec();
    hops.extend(to_up[..down].iter().rev());
    hops
}

/// The fault proxies of a network: one per direction of each link.
pub struct Links {
    /// (from, to) → the proxy `from` reaches `to` through.
    proxies: BTreeMap<(AgencyCode, AgencyCode), FaultProxy>,
}

impl Links {
    /// Puts a proxy with `faults` on both directions of each of `links`, seeded from `seed`
    /// and the link's name, and rewrites the configurations so each node reaches those
    /// neighbours through them. Call after [`TestNet::prepare`] and before the nodes start.
    pub async fn install(net: &TestNet, links: &[(AgencyCode, AgencyCode)], faults: Faults, seed: &FaultSeed) -> Links {
        let mut proxies = BTreeMap::new();
        for (a, b) in links {
            for (from, to) in [(*a, *b), (*b, *a)] {
                let name = format!("{from}→{to}");
                let proxy = FaultProxy::start(&name, net.addrs[&to], faults, seed.for_name(&name))
                    .await
                    .unwrap_or_else(|e| panic!("cannot start the fault proxy {name}: {e}"));
                point_at(net, &from, &to, &proxy.address().to_string());
                proxies.insert((from, to), proxy);
            }
        }
        Links { proxies }
    }

    /// The proxy `from` reaches `to` through.
    pub fn proxy(&self, from: &AgencyCode, to: &AgencyCode) -> &FaultProxy {
        self.proxies.get(&(*from, *to)).unwrap_or_else(|| panic!("no fault proxy from {from} to {to}"))
    }

    /// Cuts the link between `a` and `b`, both ways (a partition).
    pub fn cut(&self, a: &AgencyCode, b: &AgencyCode) {
        self.proxy(a, b).cut();
        self.proxy(b, a).cut();
    }

    /// Heals the link between `a` and `b`.
    pub fn heal(&self, a: &AgencyCode, b: &AgencyCode) {
        self.proxy(a, b).heal();
        self.proxy(b, a).heal();
    }

    /// Applies `faults` on every proxy from now on.
    pub fn set_faults(&self, faults: Faults) {
        for p in self.proxies.values() {
            p.set_faults(faults);
        }
    }

    /// Every proxy's counts.
    pub fn counts(&self) -> BTreeMap<(AgencyCode, AgencyCode), ProxyCounts> {
        self.proxies.iter().map(|(k, p)| (*k, p.counts())).collect()
    }

    /// All datagrams of all proxies, both directions together.
    pub fn total(&self) -> Counts {
        self.proxies.values().map(|p| p.counts()).fold(Counts::default(), |t, c| t + c.to_target + c.to_client)
    }

    /// One line per proxy and direction, for the test's output.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for ((from, to), c) in self.counts() {
            out.push_str(&format!("  {from} → {to}: {}\n  {to} → {from} (answers): {}\n", c.to_target, c.to_client));
        }
        out.push_str(&format!("  all links: {}\n", self.total()));
        out
    }
}

/// Rewrites `from`'s configuration so that it reaches neighbour `to` at `address`.
pub fn point_at(net: &TestNet, from: &AgencyCode, to: &AgencyCode, address: &str) {
    let path = net.config_path(from);
    let text = std::fs::read_to_string(&path).unwrap();
    let section = format!("agency = \"{to}\"\naddress = \"{}\"", net.addrs[to]);
    assert_eq!(text.matches(&section).count(), 1, "{} does not name {to} at {} once", path.display(), net.addrs[to]);
    std::fs::write(&path, text.replace(&section, &format!("agency = \"{to}\"\naddress = \"{address}\""))).unwrap();
}

/// libfaketime's preload library: `LIENTHONG_LIBFAKETIME`, or where Debian's `faketime`
/// package puts it.
pub fn libfaketime() -> PathBuf {
    if let Some(p) = std::env::var_os("LIENTHONG_LIBFAKETIME") {
        return PathBuf::from(p);
    }
    let mut candidates = vec![PathBuf::from("/usr/lib/faketime/libfaketime.so.1")];
    if let Ok(dirs) = std::fs::read_dir("/usr/lib") {
        candidates.extend(dirs.flatten().map(|d| d.path().join("faketime/libfaketime.so.1")));
    }
    candidates.into_iter().find(|p| p.exists()).unwrap_or_else(|| {
        panic!("libfaketime.so.1 not found (install Debian's `faketime` package; .ci/run does) — the clock-skew tests cannot run")
    })
}

/// The environment that runs a process with its wall clock shifted by `offset` (libfaketime
/// syntax: `+4m`, `-6m`, `+1d`). The monotonic clock is left alone: only the time of day is
/// wrong, as on a machine whose clock drifted.
pub fn shifted_clock(offset: &str) -> Vec<(String, String)> {
    vec![
        ("LD_PRELOAD".into(), libfaketime().display().to_string()),
        ("FAKETIME".into(), offset.into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ]
}

/// Starts `code`'s node as a process like [`TestNet::spawn_process`], with `env` added to its
/// environment.
pub fn spawn_process_env(net: &mut TestNet, code: &AgencyCode, env: &[(String, String)]) -> NodeProcess {
    net.release_socket(code);
    let dir = net.node_dir(code);
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("node.log")).unwrap();
    let child = std::process::Command::new(crate::bin("lienthong-node"))
        .args(["run", "--config", "node.toml"])
        .current_dir(&dir)
        .env("LIENTHONG_LOG", std::env::var("LIENTHONG_LOG").unwrap_or_else(|_| "info".into()))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    NodeProcess { code: *code, child }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> AgencyCode {
        s.parse().unwrap()
    }

    #[test]
    fn paths_go_up_to_the_common_ancestor_and_down() {
        let t = Topology::parse(demo::QUANG_NINH_2024).unwrap();
        let hops = |a: &str, b: &str| path(&t, &code(a), &code(b)).iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            hops("000.01.41.H49", "000.01.42.H49"),
            ["000.00.41.H49", "000.00.00.H49", "000.00.42.H49", "000.01.42.H49"]
        );
        assert_eq!(hops("000.01.41.H49", "000.02.41.H49"), ["000.00.41.H49", "000.02.41.H49"]);
        assert_eq!(hops("000.00.00.H49", "000.01.41.H49"), ["000.00.41.H49", "000.01.41.H49"]);
        assert_eq!(hops("000.01.41.H49", "000.00.00.G22"), ["000.00.41.H49", "000.00.00.H49", "000.00.00.G22"]);
        assert_eq!(every_link(&t).len(), 8);
    }
}
