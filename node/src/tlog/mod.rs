//! The node's transparency log: the checkpointer that indexes what the node did, signs
//! checkpoints with the agency seal and has them co-signed by its witnesses; the witness's side
//! ([`witness`]); the `[log]` configuration; and the alerts the health read-out shows.
//!
//! Leaves are appended by the storage layer in the transaction that records each event
//! (`storage::tlog`); everything here runs off the document's path, every
//! `log.checkpoint_interval` while the log grows, or on demand ([`checkpoint_now`]). The
//! format and the rules (hashing, proofs, signed notes, the witness rule) are `pki::tlog`'s.

pub mod query;
pub mod witness;

use std::sync::Arc;
use std::time::Duration;

use pki::AgencyCode;
use pki::tlog::{Checkpoint, LogOrigin};
use serde::Deserialize;

use crate::Node;
use crate::config::HumanDuration;
use crate::storage::tlog::StoredCheckpoint;
use crate::storage::{Store, StoreError, millis};

/// `[log]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// Keep the log. On by default; off only to measure what it costs.
    pub enabled: bool,
    /// How often, while the log grows, pending leaves are indexed and a checkpoint is signed
    /// and sent to the witnesses.
    pub checkpoint_interval: HumanDuration,
    /// The agencies whose nodes co-sign this node's checkpoints. Empty: the parent. The
    /// national hub, which has no parent, names level-1 nodes here.
    pub witnesses: Vec<String>,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog { enabled: true, checkpoint_interval: HumanDuration::secs(5), witnesses: Vec::new() }
    }
}

/// `[log]`, validated.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// See [`RawLog::enabled`].
    pub enabled: bool,
    /// See [`RawLog::checkpoint_interval`].
    pub checkpoint_interval: Duration,
    /// The witnesses named in the file (the parent is added at run time when this is empty).
    pub witnesses: Vec<AgencyCode>,
}

/// Validates `[log]`, adding each problem with its key.
pub fn validate_config(
    raw: &RawLog,
    agency: Option<AgencyCode>,
    children: &[crate::config::Neighbour],
    problems: &mut Vec<(String, String)>,
) -> LogConfig {
    let interval = raw.checkpoint_interval.get();
    if interval < Duration::from_millis(100) {
        problems.push(("log.checkpoint_interval".into(), "must be at least 100ms".into()));
    }
    let mut witnesses = Vec::new();
    for (i, w) in raw.witnesses.iter().enumerate() {
        let key = format!("log.witnesses[{i}]");
        match w.parse::<AgencyCode>() {
            Ok(code) if Some(code) == agency => problems.push((key, format!("{code} is this node itself"))),
            Ok(code) if !children.iter().any(|c| c.agency == code) => {
                problems.push((key, format!("{code} is not a [[child]] of this node")));
            }
            Ok(code) => witnesses.push(code),
            Err(e) => problems.push((key, e.to_string())),
        }
    }
    LogConfig { enabled: raw.enabled, checkpoint_interval: interval, witnesses }
}

/// The running node's log state: one checkpoint round at a time, and a way to ask for one.
#[derive(Debug, Default)]
pub struct LogState {
    round: tokio::sync::Mutex<()>,
}

/// The agencies that co-sign this node's checkpoints: `log.witnesses`, else the parent.
pub fn witnesses(node: &Node) -> Vec<AgencyCode> {
    if !node.config.log.witnesses.is_empty() {
        return node.config.log.witnesses.clone();
    }
    node.config.parent.iter().map(|p| p.agency).collect()
}

/// This node's log origin.
pub fn origin(node: &Node) -> LogOrigin {
    LogOrigin::first(node.config.agency)
}

/// Indexes pending leaves (up to `MAX_INTEGRATE`, in writes of `INTEGRATE_PER_WRITE`) and
/// signs a checkpoint of the tree they make, in the last write. Returns the latest checkpoint
/// (`None` while the log is empty). A write that indexed leaves without a checkpoint leaves
/// them as pending ones are: covered by the next checkpoint.
pub async fn checkpoint(node: &Node) -> Result<Option<StoredCheckpoint>, StoreError> {
    use crate::storage::tlog::{INTEGRATE_PER_WRITE, MAX_INTEGRATE};
    let mut indexed = 0;
    let (mut tx, frontier) = loop {
        let mut tx = node.store.begin().await?;
        let (frontier, taken) = tx.integrate().await?;
        indexed += taken;
        if taken < INTEGRATE_PER_WRITE || indexed >= MAX_INTEGRATE {
            break (tx, frontier);
        }
        tx.commit().await?;
    };
    if frontier.size() > 0 {
        let body = Checkpoint::new(origin(node), frontier.size(), frontier.root());
        let signed = body
            .sign(&node.seal().key)
            .map_err(|e| StoreError::Corrupt(format!("cannot sign a log checkpoint with the seal: {e}")))?;
        if tx.insert_checkpoint(frontier.size(), &signed.to_text(), millis(node.now())).await? {
            tracing::debug!(size = frontier.size(), "log checkpoint signed");
        }
    }
    tx.commit().await?;
    node.store.latest_checkpoint().await
}

/// One round: checkpoint, then ask every witness that has not co-signed the latest one.
/// Returns the latest checkpoint with the cosignatures it got.
pub async fn checkpoint_now(node: &Node) -> Result<Option<StoredCheckpoint>, StoreError> {
    let _round = node.log.round.lock().await;
    let Some(latest) = checkpoint(node).await? else { return Ok(None) };
    witness::ask_all(node, &latest).await?;
    node.store.latest_checkpoint().await
}

/// How long a clerk's on-demand checkpoint waits for the witnesses before answering with the
/// checkpoint as it stands (the next round asks them again).
pub const ON_DEMAND_WITNESS_WAIT: Duration = Duration::from_secs(3);

/// A round for a clerk who asked: the checkpoint is signed at once (signing needs no round:
/// the database serialises it); the witnesses are given [`ON_DEMAND_WITNESS_WAIT`], including
/// any wait for a round already asking them.
pub async fn checkpoint_on_demand(node: &Node) -> Result<Option<StoredCheckpoint>, StoreError> {
    let Some(latest) = checkpoint(node).await? else { return Ok(None) };
    let witnessed = tokio::time::timeout(ON_DEMAND_WITNESS_WAIT, async {
        let _round = node.log.round.lock().await;
        witness::ask_all(node, &latest).await
    })
    .await;
    if let Ok(result) = witnessed {
        result?;
    }
    node.store.latest_checkpoint().await
}

/// The checkpointer: a round every `log.checkpoint_interval` while the node runs.
pub async fn run(node: Arc<Node>) {
    if !node.config.log.enabled {
        return;
    }
    let mut shutdown = node.shutdown_signal();
    let mut ticks = tokio::time::interval(node.config.log.checkpoint_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        if node.stopping() {
            return;
        }
        if let Err(e) = checkpoint_now(&node).await {
            tracing::warn!(error = %e, "log checkpoint round failed; retried at the next interval");
            node.storage_failed("log checkpoint", &e);
        }
    }
}

/// Alerts about the log for the health read-out: checkpoints of neighbours refused as forks
/// or rewrites (this node as a witness), and this node's latest checkpoint refused by a
/// witness.
pub async fn alerts(store: &Store) -> Result<Vec<String>, StoreError> {
    let mut alerts = Vec::new();
    for fork in store.log_forks(5).await? {
        let at = crate::storage::from_millis(fork.at).map(pki::format_utc).unwrap_or_default();
        alerts.push(format!(
            "the log of {} presented a checkpoint that does not extend the one this node co-signed ({}) at {at}; both signed checkpoints are kept as evidence",
            fork.agency, fork.reason
        ));
    }
    if let Some(latest) = store.latest_checkpoint().await?
        && let Some(refused) = &latest.refused
    {
        alerts.push(format!(
            "a witness refused to co-sign this node's log checkpoint of size {}: {refused}",
            latest.size
        ));
    }
    Ok(alerts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Vec<(String, String)> {
        let raw: RawLog = toml::from_str(text).unwrap();
        let child = crate::config::Neighbour {
            agency: "000.01.41.H49".parse().unwrap(),
            addresses: vec!["127.0.0.1:1".into()],
        };
        let mut problems = Vec::new();
        validate_config(&raw, "000.00.41.H49".parse().ok(), &[child], &mut problems);
        problems
    }

    #[test]
    fn the_checkpoint_interval_is_at_least_100ms_and_witnesses_are_children() {
        assert!(check("").is_empty(), "the defaults are valid");
        assert!(check("checkpoint_interval = \"100ms\"").is_empty());
        assert_eq!(check("checkpoint_interval = \"99ms\"")[0].0, "log.checkpoint_interval");
        assert!(check("witnesses = [\"000.01.41.H49\"]").is_empty());
        let problems = check("witnesses = [\"000.00.41.H49\", \"000.02.41.H49\", \"nonsense\"]");
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["log.witnesses[0]", "log.witnesses[1]", "log.witnesses[2]"], "{problems:?}");
    }
}
