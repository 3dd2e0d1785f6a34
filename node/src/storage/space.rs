//! Free space on the filesystems a node writes to, and the reserve it keeps there.
//!
//! A node refuses a document (a transient refusal: the sender retries) when storing it would
//! leave less than `limits.min_free_bytes` free on the attachment store's or the SQLite
//! database's filesystem. It refuses cleanly, before anything is written, instead of running
//! into ENOSPC halfway through an attachment or a commit; and the operator's read-out shows
//! the shortfall. The real ENOSPC path stays safe on its own (see [`super::Tx`] and
//! [`super::blobs`]): the reserve is the polite refusal, not the guarantee.

use std::path::{Path, PathBuf};

/// Bytes an unprivileged writer may still use on the filesystem holding `path` (what `df`
/// shows as available: blocks reserved for root do not count).
pub fn available(path: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(path).map_err(std::io::Error::from)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Whether `needed` bytes fit in `free` while leaving `reserve` free. At the edge (exactly
/// `needed + reserve` free) they fit.
pub fn fits(free: u64, needed: u64, reserve: u64) -> bool {
    needed.checked_add(reserve).is_some_and(|want| free >= want)
}

/// The directory of a SQLite database URL (`sqlite://PATH?…` or `sqlite:PATH`), if it names a
/// file (not `:memory:`).
pub(crate) fn sqlite_dir(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return None;
    }
    let dir = Path::new(path).parent().map(Path::to_path_buf).unwrap_or_default();
    Some(if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_kept_to_the_byte() {
        assert!(fits(1_000, 400, 600), "exactly needed + reserve fits");
        assert!(!fits(999, 400, 600), "one byte less does not");
        assert!(fits(0, 0, 0));
        assert!(!fits(u64::MAX - 1, u64::MAX, 0), "no overflow");
        assert!(!fits(u64::MAX, 1, u64::MAX), "no overflow in needed + reserve");
    }

    #[test]
    fn sqlite_urls_name_their_directory() {
        assert_eq!(sqlite_dir("sqlite://data/node.db"), Some(PathBuf::from("data")));
        assert_eq!(sqlite_dir("sqlite:///var/lib/lt/node.db?mode=rwc"), Some(PathBuf::from("/var/lib/lt")));
        assert_eq!(sqlite_dir("sqlite:node.db"), Some(PathBuf::from(".")));
        assert_eq!(sqlite_dir("sqlite::memory:"), None);
        assert_eq!(sqlite_dir("postgres://x@localhost/db"), None);
    }

    #[test]
    fn free_space_is_read() {
        let dir = tempfile::tempdir().unwrap();
        assert!(available(dir.path()).unwrap() > 0);
        assert!(available(&dir.path().join("missing")).is_err());
    }
}
