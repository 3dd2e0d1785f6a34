//! A small filesystem of its own for a test: a tmpfs mounted on a fresh directory, which the
//! test fills up, frees or grows (`mount -o remount,size=…`) to put a node through a full disk
//! for real (ENOSPC from the kernel, not a simulated error).
//!
//! Mounting needs root (the tests run as root here). Nothing is skipped: if the mount fails
//! the test fails and says why.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs; unmounted (lazily, so open files do not keep it busy) on drop.
pub struct Tmpfs {
    path: PathBuf,
    /// The mount point, when this made it (removed on drop).
    _dir: Option<tempfile::TempDir>,
    filler: u32,
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` on a new directory.
    pub fn mount(bytes: u64) -> Tmpfs {
        let dir = tempfile::Builder::new().prefix("lienthong-tmpfs-").tempdir().unwrap();
        let mut fs = Tmpfs::mount_at(dir.path(), bytes);
        fs._dir = Some(dir);
        fs
    }

    /// Mounts a tmpfs of `bytes` on `path` (created if missing), e.g. a node's data directory.
    pub fn mount_at(path: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let text = path.to_str().unwrap();
        if let Err(e) = run("mount", &["-t", "tmpfs", "-o", &format!("size={bytes},mode=0777"), "tmpfs", text]) {
            panic!(
                "the disk-full tests need a small filesystem of their own and cannot mount one: {e}\n\
                 (they mount a tmpfs with `mount -t tmpfs`, which needs root or CAP_SYS_ADMIN; run them as root \
                 or in a container allowed to mount)"
            );
        }
        Tmpfs { path: path.to_owned(), _dir: None, filler: 0 }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes its size (growing it is "space returns"; files stay).
    pub fn resize(&self, bytes: u64) {
        let path = self.path.to_str().unwrap();
        run("mount", &["-o", &format!("remount,size={bytes}"), path]).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Makes it read-only (`ro`) or writable again.
    pub fn read_only(&self, ro: bool) {
        let path = self.path.to_str().unwrap();
        run("mount", &["-o", if ro { "remount,ro" } else { "remount,rw" }, path]).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Bytes free, as `statvfs` reports them (`df`).
    pub fn free(&self) -> u64 {
        let out = Command::new("df").args(["-B1", "--output=avail"]).arg(self.path()).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().nth(1).and_then(|l| l.trim().parse().ok()).unwrap()
    }

    /// Fills every free byte with a new filler file (until the kernel says ENOSPC); returns
    /// its path. [`Tmpfs::empty`] removes the fillers.
    pub fn fill(&mut self) -> PathBuf {
        self.filler += 1;
        let path = self.path().join(format!("filler-{}", self.filler));
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0xA5u8; 64 * 1024];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        // Smaller pieces for the last partial block.
        loop {
            match file.write(&block[..512]) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        path
    }

    /// Fills it, then gives `bytes` back: nearly full, so that some writes still fit and the
    /// next ones fail wherever they happen to be (an attachment, a database commit).
    pub fn fill_leaving(&mut self, bytes: u64) {
        let path = self.fill();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        file.set_len(len.saturating_sub(bytes)).unwrap();
    }

    /// Removes every filler file.
    pub fn empty(&mut self) {
        for i in 1..=self.filler {
            let _ = std::fs::remove_file(self.path().join(format!("filler-{i}")));
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Some(path) = self.path.to_str() {
            let _ = run("umount", &["-l", path]);
        }
    }
}
