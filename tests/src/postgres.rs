//! A throwaway PostgreSQL cluster for tests: the machine's own `initdb` and `pg_ctl`
//! (`/usr/lib/postgresql/*/bin`), run as the `postgres` user when the tests run as root
//! (initdb refuses root), listening only on a private socket directory, removed afterwards.
//!
//! Nothing is skipped: if PostgreSQL cannot be started the test fails and says why.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster; stopped and deleted on drop.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
}

fn find_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("LIENTHONG_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(Result::ok).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (install the `postgresql` package; .ci/run does) — the PostgreSQL tests cannot run")
    })
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

impl PgCluster {
    /// Starts a fresh cluster.
    pub fn start() -> PgCluster {
        PgCluster::start_with("")
    }

    /// Starts a fresh cluster with more server options (`-c name=value …`), which win over
    /// the defaults here: for tests of what the node does on a server set up otherwise.
    pub fn start_with(options: &str) -> PgCluster {
        let bin = find_bin();
        let as_postgres = is_root();
        let dir = tempfile::Builder::new().prefix("lienthong-pg-").tempdir().unwrap();
        if as_postgres {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
            assert!(status.success(), "cannot give {} to the postgres user", dir.path().display());
        }
        let cluster = PgCluster { dir, bin, as_postgres };
        let data = cluster.dir.path().join("data");
        cluster.run(
            "initdb",
            &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"],
        );
        let options = format!(
            "-k {} -c listen_addresses='' -c fsync=on -c max_connections=200 {options}",
            cluster.dir.path().display()
        );
        let log = cluster.dir.path().join("server.log");
        cluster.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-o", &options, "-l", log.to_str().unwrap(), "-w", "-t", "60", "start"],
        );
        cluster
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let output = if self.as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&path).args(args).output()
        } else {
            Command::new(&path).args(args).output()
        }
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
        assert!(
            output.status.success(),
            "{program} failed: {}\n{}\nserver log: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    /// The socket directory.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates a database and returns its URL.
    pub fn database(&self, name: &str) -> String {
        self.run("createdb", &["-h", self.socket_dir().to_str().unwrap(), "-U", "postgres", name]);
        self.url(name)
    }

    /// The URL of a database of this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@localhost/{name}?host={}", self.socket_dir().display())
    }

    /// Where the server binaries are (for pg_dump and pg_restore in backup tests).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let path = self.bin.join("pg_ctl");
        let args = ["-D", data.to_str().unwrap_or_default(), "-m", "immediate", "-w", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&path).args(args).output()
        } else {
            Command::new(&path).args(args).output()
        };
    }
}
