//! A throwaway PostgreSQL cluster for tests: the machine's own `initdb` and `pg_ctl`
//! (`/usr/lib/postgresql/*/bin`), run as the `postgres` user when the tests run as root
//! (initdb refuses root), listening only on a private socket directory, removed afterwards.
//!
//! Nothing is skipped: if PostgreSQL cannot be started the test fails and says why.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What a database's clients ran (see [`PgCluster::statements`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Statements {
    /// Statements run, `BEGIN` and `COMMIT` included.
    pub statements: u64,
    /// Transactions committed with a `COMMIT`.
    pub commits: u64,
}

impl Statements {
    /// What was run since `before` (a reading of the same database, taken earlier).
    pub fn since(self, before: Statements) -> Statements {
        Statements {
            statements: self.statements.saturating_sub(before.statements),
            commits: self.commits.saturating_sub(before.commits),
        }
    }
}

/// A running cluster; stopped and deleted on drop.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    /// Started with [`PgCluster::COUNTING`].
    counting: bool,
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
        let counting = options.contains(PgCluster::COUNTING);
        let cluster = PgCluster { dir, bin, as_postgres, counting };
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
        if cluster.counting {
            let host = cluster.socket_dir().to_str().unwrap().to_owned();
            let create = "CREATE EXTENSION pg_stat_statements";
            cluster.run("psql", &["-h", &host, "-U", "postgres", "-d", "postgres", "-X", "-c", create]);
        }
        cluster
    }

    /// Runs `program` (see [`PgCluster::command`]) and returns what it wrote; a failure fails
    /// the test with its output and the server's log.
    fn run(&self, program: &str, args: &[&str]) -> String {
        let path = self.bin.join(program);
        let output =
            self.command(program, args).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
        assert!(
            output.status.success(),
            "{program} failed: {}\n{}\nserver log: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `program` of the server's binaries with `args`, as the user that owns the cluster.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path).args(args);
            command
        } else {
            let mut command = Command::new(&path);
            command.args(args);
            command
        }
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

    /// Server options that make [`PgCluster::statements`] count (`pg_stat_statements`, in the
    /// server package since PostgreSQL 10): for [`PgCluster::start_with`].
    pub const COUNTING: &'static str = "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top -c pg_stat_statements.max=10000";

    /// The statements each database's clients have run so far and the transactions they
    /// committed (`COMMIT`s), by database name; empty unless the cluster was started with
    /// [`PgCluster::COUNTING`]. A test's own queries are left out when their text holds
    /// `/* harness */` (the server groups statements by their normalised form, comments
    /// aside, under the first text it saw: a harness query must be one the node never runs).
    /// Counted by the server as each statement ends, whatever the machine's noise: a
    /// statement is a round trip from the node, but the `SET LOCAL`s sent with a `BEGIN` in
    /// one query count apart.
    pub fn statements(&self) -> std::collections::BTreeMap<String, Statements> {
        if !self.counting {
            return Default::default();
        }
        let query = "SELECT d.datname, sum(s.calls)::bigint, \
            COALESCE(sum(s.calls) FILTER (WHERE upper(s.query) = 'COMMIT'), 0)::bigint \
            FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
            WHERE s.query NOT LIKE '%/* harness */%' GROUP BY d.datname";
        let host = self.socket_dir().to_str().unwrap().to_owned();
        let output = self.run("psql", &["-h", &host, "-U", "postgres", "-d", "postgres", "-AtX", "-c", query]);
        output
            .lines()
            .filter_map(|line| {
                let mut fields = line.split('|');
                let name = fields.next()?.to_owned();
                let statements = fields.next()?.parse().ok()?;
                let commits = fields.next()?.parse().ok()?;
                Some((name, Statements { statements, commits }))
            })
            .collect()
    }

    /// Where the server binaries are (for pg_dump and pg_restore in backup tests).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The CPU time the server has spent so far: the postmaster's, its live processes'
    /// (backends, the WAL writer, the checkpointer…) and that of those that have exited,
    /// which the postmaster waited for. For benchmarks, where the server shares the cores
    /// with the nodes and its share is part of what a document costs.
    pub fn server_cpu(&self) -> std::time::Duration {
        use crate::bench::measure::{ProcStat, ticks};
        let pid_file = self.dir.path().join("data").join("postmaster.pid");
        let Some(postmaster) =
            std::fs::read_to_string(pid_file).ok().and_then(|s| s.lines().next()?.trim().parse::<u32>().ok())
        else {
            return std::time::Duration::ZERO;
        };
        let mut total = 0;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let Some(stat) = ProcStat::read(&pid.to_string()) else { continue };
            if pid == postmaster {
                total += stat.utime + stat.stime + stat.cutime + stat.cstime;
            } else if stat.ppid == postmaster {
                total += stat.utime + stat.stime;
            }
        }
        ticks(total)
    }
}

impl Drop for PgCluster {
    /// Stops the server before its directory is deleted: left running, it would find its lock
    /// file gone only at its next check, within about a minute, its processes and memory held
    /// until then (several at once in a test run, one beside each later benchmark).
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let Some(data) = data.to_str() else { return };
        // Nothing to keep: stopped without a checkpoint; a failure only leaves the old way.
        let _ = self.command("pg_ctl", &["-D", data, "-m", "immediate", "-w", "-t", "30", "stop"]).output();
    }
}

#[cfg(test)]
mod tests {
    use super::{PgCluster, Statements};

    /// What a backend spent counts after its connection closed and the process exited (the
    /// benchmark's pools close their connections before it reads the server's time again).
    #[test]
    fn the_server_cpu_counts_backends_that_have_exited() {
        let cluster = PgCluster::start();
        let before = cluster.server_cpu();
        let socket = cluster.socket_dir().to_str().unwrap().to_owned();
        let work = "SELECT count(*) FROM generate_series(1, 4000000) AS g(n) WHERE n % 7 = 3";
        cluster.run("psql", &["-h", &socket, "-U", "postgres", "-d", "postgres", "-c", work]);
        // The backend ends with the connection; the postmaster reaps it soon after.
        std::thread::sleep(std::time::Duration::from_millis(500));
        let spent = cluster.server_cpu() - before;
        assert!(spent >= std::time::Duration::from_millis(100), "the server spent {spent:?}");
    }

    /// Each database's statements and commits, counted by the server; a test's own queries
    /// marked `/* harness */` left out; nothing counted on a cluster started without
    /// `COUNTING`.
    #[test]
    fn the_server_counts_each_databases_statements_and_commits() {
        let cluster = PgCluster::start_with(PgCluster::COUNTING);
        cluster.database("node_a");
        cluster.database("node_b");
        let socket = cluster.socket_dir().to_str().unwrap().to_owned();
        let run =
            |db: &str, sql: &str| cluster.run("psql", &["-h", &socket, "-U", "postgres", "-d", db, "-X", "-c", sql]);
        run("node_a", "CREATE TABLE t (n int)");
        let before = cluster.statements();
        // Four statements in one query, as separate statements; two transactions committed.
        run("node_a", "BEGIN; INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); COMMIT");
        run("node_a", "BEGIN; SELECT 1; COMMIT");
        run("node_a", "SELECT count(*) FROM t /* harness */");
        run("node_b", "SELECT 2");
        let after = cluster.statements();
        let spent =
            |db: &str| after.get(db).copied().unwrap_or_default().since(before.get(db).copied().unwrap_or_default());
        assert_eq!(spent("node_a"), Statements { statements: 7, commits: 2 });
        assert_eq!(spent("node_b"), Statements { statements: 1, commits: 0 });
        assert!(PgCluster::start().statements().is_empty(), "counted without pg_stat_statements");
    }
}
