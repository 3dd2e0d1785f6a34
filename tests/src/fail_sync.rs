//! A disk whose sync fails, for a node process: `fsync` and `fdatasync` of the files whose
//! path ends with a given suffix return `EIO` while the test says so.
//!
//! This is how Linux reports a write-back that failed (a dying disk, a lost SAN path): once,
//! to the sync, after which it marks the pages clean and may serve the unwritten bytes from
//! its cache as if they were on disk. The test cannot make a device fail here (no
//! device-mapper in this kind of container), so a preload library (`fail_sync.c`, built with
//! the machine's C compiler on first use) answers the sync in the kernel's place; everything
//! else, the write included, is the real system's.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The preload library, built in a directory of the test's, and the files that drive it.
pub struct FailSync {
    library: PathBuf,
    trigger: PathBuf,
    log: PathBuf,
    suffix: String,
}

impl FailSync {
    /// Builds the library into `dir`, to fail the syncs of files whose path ends with `suffix`
    /// (a node's SQLite log: `node.db-wal`).
    pub fn build(dir: &Path, suffix: &str) -> FailSync {
        let source = dir.join("fail_sync.c");
        std::fs::write(&source, include_str!("fail_sync.c")).unwrap();
        let library = dir.join("fail_sync.so");
        let out = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
            .arg(&library)
            .arg(&source)
            .arg("-ldl")
            .output()
            .unwrap_or_else(|e| panic!("cannot run the C compiler `cc` to build the failing-sync library: {e}"));
        assert!(
            out.status.success(),
            "cc could not build the failing-sync library: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        FailSync { library, trigger: dir.join("fail_sync.on"), log: dir.join("fail_sync.log"), suffix: suffix.into() }
    }

    /// The environment that preloads the library into a process.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("LD_PRELOAD".into(), self.library.display().to_string()),
            ("LIENTHONG_FAIL_SYNC_TRIGGER".into(), self.trigger.display().to_string()),
            ("LIENTHONG_FAIL_SYNC_SUFFIX".into(), self.suffix.clone()),
            ("LIENTHONG_FAIL_SYNC_LOG".into(), self.log.display().to_string()),
        ]
    }

    /// From now on, the syncs fail, until [`FailSync::heal`].
    pub fn fail(&self) {
        std::fs::write(&self.trigger, b"").unwrap();
    }

    /// The next `n` syncs fail, then they go to the kernel again: a failure the kernel reports
    /// once, as it does for a write-back that failed.
    pub fn fail_next(&self, n: u32) {
        std::fs::write(&self.trigger, n.to_string()).unwrap();
    }

    /// From now on, the syncs go to the kernel again.
    pub fn heal(&self) {
        let _ = std::fs::remove_file(&self.trigger);
    }

    /// The syncs failed so far (each names its file).
    pub fn failed(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log).map(|s| s.lines().map(str::to_owned).collect()).unwrap_or_default()
    }
}
