//! Revocation in the network: CRLs travel down the tree and with documents, and every node
//! keeps the newest one of each CA it can check.
//!
//! Sources: the files in `crl.files` (this agency's own CA publishes there; they are polled),
//! the parent (it pushes new CRLs to its children as soon as it has them; a child also asks on
//! connecting), and the CRLs that accompany documents and receipts. A CRL is kept only if it is
//! signed by a CA this node knows (the root, or an intermediate seen on a validated path), so a
//! neighbour cannot displace a genuine CRL with a forged newer one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use pki::Crl;
use serde_bytes::ByteBuf;

use crate::Node;
use crate::protocol::{NodeRequest, NodeResponse};
use crate::routing::Relation;
use crate::storage::millis;

/// Reloads the trust state from the stored CRLs.
pub async fn refresh(node: &Node) {
    match node.store.crls().await {
        Ok(crls) => {
            node.trust.trust().set_crls(crls);
            let closed = node.trust.recheck_connections();
            if closed > 0 {
                tracing::warn!(closed, "live connections closed: the new CRLs revoke their certificates");
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot read stored CRLs"),
    }
}

/// Reloads the trust state from the stored CRLs if they differ from those in use: the CRLs
/// another process of a scaled-out node stored (they share the database), or those stored
/// before this process started. Cheap: a node holds one CRL per CA it knows.
pub async fn sync_from_store(node: &Node) {
    match node.store.crls().await {
        Ok(stored) => {
            let mut held: Vec<[u8; 32]> =
                node.trust.trust().validator().crls().iter().map(|c| c.fingerprint()).collect();
            let mut found: Vec<[u8; 32]> = stored.iter().map(|c| c.fingerprint()).collect();
            held.sort_unstable();
            found.sort_unstable();
            if held != found {
                tracing::debug!(held = held.len(), stored = found.len(), "CRLs in the database changed; reloading");
                refresh(node).await;
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot read stored CRLs"),
    }
}

/// Stores the CRLs among `crls` that are newer and signed by a known CA (or, for the
/// operator's own files, `trusted`, checked when used); returns the stored.
pub async fn store_checked(node: &Node, crls: &[Crl], trusted: bool) -> Vec<Crl> {
    let now = millis(node.now());
    let mut stored = Vec::new();
    let result: Result<(), crate::storage::StoreError> = async {
        let mut tx = node.store.begin().await?;
        for crl in crls {
            if !trusted && !node.trust.trust().knows_signer_of(crl) {
                tracing::debug!(issuer = %crl.issuer, "CRL from a CA not known here (or with a bad signature); not kept");
                continue;
            }
            if tx.store_crl(crl, now).await? {
                stored.push(crl.clone());
            }
        }
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot store CRLs");
        return Vec::new();
    }
    if !stored.is_empty() {
        refresh(node).await;
        for c in &stored {
            tracing::info!(issuer = %c.issuer, this_update = %pki::format_utc(c.this_update), "new CRL");
        }
    }
    stored
}

fn read_file(path: &PathBuf) -> Vec<Crl> {
    let Ok(bytes) = std::fs::read(path) else {
        tracing::warn!(file = %path.display(), "cannot read CRL file");
        return Vec::new();
    };
    let parsed = if bytes.starts_with(b"-----") {
        String::from_utf8(bytes).ok().map(|t| Crl::from_pem_all(&t))
    } else {
        Some(Crl::from_der(&bytes).map(|c| vec![c]))
    };
    match parsed {
        Some(Ok(crls)) => crls,
        Some(Err(e)) => {
            tracing::warn!(file = %path.display(), error = %e, "CRL file does not parse");
            Vec::new()
        }
        None => Vec::new(),
    }
}

/// Loads the configured CRL files once, at start.
pub async fn load_configured(node: &Node) {
    let crls: Vec<Crl> = node.config.crl_files.iter().flat_map(read_file).collect();
    // Storing refreshes the trust state when anything is new; the CRLs already in the
    // database were loaded when the trust state was made.
    store_checked(node, &crls, true).await;
    // Another process of this agency may have stored them first (then nothing was new here).
    sync_from_store(node).await;
}

/// Polls the CRL files (a change is stored and pushed to the children), and fetches from the
/// parent whenever a new connection to it is made.
pub async fn watch_files(node: Arc<Node>) {
    let mut seen: HashMap<PathBuf, SystemTime> = HashMap::new();
    for f in &node.config.crl_files {
        if let Ok(t) = std::fs::metadata(f).and_then(|m| m.modified()) {
            seen.insert(f.clone(), t);
        }
    }
    let mut shutdown = node.shutdown_signal();
    loop {
        // A node that cannot check its own chain holds no fresh CRLs: it asks its parent at
        // start and at every poll until it has them (it refuses unchecked certificates).
        sync_from_store(&node).await;
        if lacks_crls(&node) {
            fetch_from_parent(&node).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(node.config.crl_poll) => {}
            _ = node.trust.crls_wanted() => {
                fetch_from_parent(&node).await;
                continue;
            }
            _ = shutdown.changed() => break,
        }
        let mut changed = Vec::new();
        for f in &node.config.crl_files {
            if let Ok(t) = std::fs::metadata(f).and_then(|m| m.modified())
                && seen.get(f) != Some(&t)
            {
                seen.insert(f.clone(), t);
                tracing::debug!(file = %f.display(), "CRL file changed");
                changed.extend(read_file(f));
            }
        }
        if !changed.is_empty() {
            let stored = store_checked(&node, &changed, true).await;
            tracing::debug!(read = changed.len(), stored = stored.len(), "CRL files reloaded");
            push_to_children(&node, &stored).await;
        }
    }
}

/// True when this node cannot vouch for its own node certificate's chain with the CRLs it
/// holds: the sign that it has no fresh CRLs of its part of the tree.
fn lacks_crls(node: &Node) -> bool {
    let now = node.now();
    let chain: Vec<&[u8]> = node.config.tls.chain.iter().map(|c| c.der()).collect();
    match node.trust.trust().validate(&chain, now, pki::Profile::Node) {
        Ok(verified) => node.trust.trust().chain_gap(&verified, now).is_some(),
        Err(_) => false,
    }
}

/// CRLs pushed by the parent: keep the good ones and pass them on down.
pub async fn take_pushed(node: &Arc<Node>, ders: &[Vec<u8>]) {
    let crls: Vec<Crl> = ders.iter().filter_map(|d| Crl::from_der(d).ok()).collect();
    let stored = store_checked(node, &crls, false).await;
    if !stored.is_empty() {
        let node = node.clone();
        tokio::spawn(async move { push_to_children(&node, &stored).await });
    }
}

/// The stored CRLs newer than what an asker holds.
pub fn newer_than(node: &Node, known: &[(Vec<u8>, i64)]) -> Vec<Vec<u8>> {
    node.trust
        .trust()
        .validator()
        .crls()
        .iter()
        .filter(|c| !known.iter().any(|(issuer, t)| *issuer == c.issuer_raw && *t >= c.this_update.unix_timestamp()))
        .map(|c| c.der().to_vec())
        .collect()
}

/// Sends new CRLs to every child, best effort (a child also asks when it connects).
pub async fn push_to_children(node: &Arc<Node>, crls: &[Crl]) {
    if crls.is_empty() {
        return;
    }
    let request = NodeRequest::CrlPush { crls: crls.iter().map(|c| ByteBuf::from(c.der().to_vec())).collect() };
    for (child, relation) in node.config.neighbours() {
        if relation != Relation::Child {
            continue;
        }
        match node.outbound.simple_request(&child.agency, &request).await {
            Ok(NodeResponse::Accepted) => tracing::info!(peer = %child.agency, count = crls.len(), "CRLs pushed"),
            Ok(other) => tracing::warn!(peer = %child.agency, answer = %other, "CRL push not accepted"),
            Err(e) => {
                tracing::info!(peer = %child.agency, error = %e, "CRL push failed; the child fetches on reconnect")
            }
        }
    }
}

/// Asks the parent for CRLs newer than ours (on every new connection to it).
pub async fn fetch_from_parent(node: &Arc<Node>) {
    let Some(parent) = node.config.parent.as_ref().map(|p| p.agency) else { return };
    let known = node
        .trust
        .trust()
        .validator()
        .crls()
        .iter()
        .map(|c| (ByteBuf::from(c.issuer_raw.clone()), c.this_update.unix_timestamp()))
        .collect();
    match node.outbound.simple_request(&parent, &NodeRequest::CrlFetch { known }).await {
        Ok(NodeResponse::Crls { crls }) => {
            let crls: Vec<Crl> = crls.iter().filter_map(|d| Crl::from_der(d).ok()).collect();
            let stored = store_checked(node, &crls, false).await;
            push_to_children(node, &stored).await;
        }
        Ok(other) => tracing::warn!(peer = %parent, answer = %other, "CRL fetch not answered"),
        Err(e) => tracing::info!(peer = %parent, error = %e, "CRL fetch failed"),
    }
}
