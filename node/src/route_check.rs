//! "Can this recipient be reached?" — asked by `lienthong send` before anything is signed,
//! so a clerk who typed a well-formed code that no node serves (`000.05.41.H49` where the
//! district has no commune 05) is told at once, with the reason, instead of reading "Sent"
//! and finding a refusal in `track` later.
//!
//! Each node answers from its own routing table ([`crate::routing::Routes`]), the same rule
//! that routes documents: a recipient that is this agency is reached; one this node has no
//! route for is refused here with the routing error; one that goes to a neighbour is asked of
//! that neighbour in turn (`NodeRequest::Route`), which answers the same way. The answer is
//! advice, never a promise: a recipient whose way could not be confirmed (a node on the way
//! is down) is reported as such, and the document may still be sent and retried. Nothing is
//! stored, and the question costs at most one request per node on the way.

use std::sync::Arc;
use std::time::Duration;

use pki::AgencyCode;

use crate::Node;
use crate::protocol::{ClerkResponse, ErrorKind, NodeRequest, NodeResponse, RouteAnswer, RouteOutcome};
use crate::routing::NextHop;

pub use lienthong_protocol::wire::MAX_ROUTE_RECIPIENTS;

/// How many nodes a question may pass after the first: the deepest chain a document can take
/// is commune → district → province → hub → province → district → commune (6 hops), and a
/// direct peer only shortens it; 8 leaves room and bounds what one question can cost.
pub const MAX_ROUTE_HOPS: u8 = 8;

/// How long a node waits for its next hop's answer: [`ROUTE_WAIT_BASE`] plus this much per
/// node that may still be asked after it, so each node on the way gives up before the one that
/// asked it (and reports the right node as the one it could not reach). A neighbour that does
/// not answer in time is reported as unconfirmed rather than waited for (connecting to a dead
/// neighbour alone can take `limits.connect_timeout`); the clerk waits at most 5 s.
pub const ROUTE_WAIT_PER_HOP: Duration = Duration::from_millis(500);

/// See [`ROUTE_WAIT_PER_HOP`].
pub const ROUTE_WAIT_BASE: Duration = Duration::from_secs(1);

/// Answers this agency's clerk.
pub async fn answer_clerk(node: &Arc<Node>, recipients: &[String]) -> ClerkResponse {
    match parse(recipients) {
        Ok(codes) => ClerkResponse::Routes { routes: check(node, &codes, None, MAX_ROUTE_HOPS).await },
        Err(message) => ClerkResponse::Error { kind: ErrorKind::BadRequest, message },
    }
}

/// Answers neighbour `peer`.
pub async fn answer_neighbour(
    node: &Arc<Node>,
    peer: AgencyCode,
    recipients: &[String],
    hops_left: u8,
) -> NodeResponse {
    match parse(recipients) {
        Ok(codes) => {
            NodeResponse::Routes { routes: check(node, &codes, Some(peer), hops_left.min(MAX_ROUTE_HOPS)).await }
        }
        Err(message) => NodeResponse::Error { kind: ErrorKind::BadRequest, message },
    }
}

fn parse(recipients: &[String]) -> Result<Vec<AgencyCode>, String> {
    if recipients.len() > MAX_ROUTE_RECIPIENTS {
        return Err(format!(
            "{} recipients asked about, more than {MAX_ROUTE_RECIPIENTS} (a document's own limit)",
            recipients.len()
        ));
    }
    recipients.iter().map(|r| r.parse::<AgencyCode>().map_err(|e| format!("recipient {r:?}: {e}"))).collect()
}

/// The answers for `recipients` asked by `came_from` (none: this node's clerk), this node
/// first on every path.
async fn check(
    node: &Arc<Node>,
    recipients: &[AgencyCode],
    came_from: Option<AgencyCode>,
    hops_left: u8,
) -> Vec<RouteAnswer> {
    let own = node.config.agency.to_string();
    let (plan, refused) = node.routes.plan(recipients, came_from);
    let mut answers: Vec<RouteAnswer> = refused
        .into_iter()
        .map(|(r, e)| RouteAnswer {
            recipient: r.to_string(),
            outcome: RouteOutcome::NoRoute { path: vec![own.clone()], reason: e.to_string() },
        })
        .collect();
    // Every next hop is asked at the same time; each answer is bounded in time.
    let mut asks = tokio::task::JoinSet::new();
    for (hop, group) in plan {
        match hop {
            NextHop::Local => answers.extend(group.iter().map(|r| RouteAnswer {
                recipient: r.to_string(),
                outcome: RouteOutcome::Reachable { path: vec![own.clone()] },
            })),
            NextHop::Neighbour(next) => {
                let node = node.clone();
                asks.spawn(async move { ask(&node, next, &group, hops_left).await });
            }
        }
    }
    while let Some(done) = asks.join_next().await {
        // A panicked ask loses its answers; the recipients then show up as unconfirmed below.
        for mut a in done.unwrap_or_default() {
            prepend(&mut a.outcome, &own);
            answers.push(a);
        }
    }
    for r in recipients {
        let code = r.to_string();
        if !answers.iter().any(|a| a.recipient == code) {
            answers.push(RouteAnswer {
                recipient: code,
                outcome: RouteOutcome::Unconfirmed {
                    path: vec![own.clone()],
                    next_hop: String::new(),
                    reason: "the question was lost on this node".into(),
                },
            });
        }
    }
    // In the order asked.
    let order = |a: &RouteAnswer| recipients.iter().position(|r| r.to_string() == a.recipient).unwrap_or(usize::MAX);
    answers.sort_by_key(order);
    answers
}

/// Asks neighbour `next` about `group`; failures become [`RouteOutcome::Unconfirmed`] with an
/// empty path (the caller puts itself in front).
async fn ask(node: &Arc<Node>, next: AgencyCode, group: &[AgencyCode], hops_left: u8) -> Vec<RouteAnswer> {
    let unconfirmed = |reason: String| {
        group
            .iter()
            .map(|r| RouteAnswer {
                recipient: r.to_string(),
                outcome: RouteOutcome::Unconfirmed {
                    path: Vec::new(),
                    next_hop: next.to_string(),
                    reason: reason.clone(),
                },
            })
            .collect::<Vec<_>>()
    };
    if hops_left == 0 {
        return unconfirmed(format!("the question passed {MAX_ROUTE_HOPS} nodes without reaching the recipient"));
    }
    let request =
        NodeRequest::Route { recipients: group.iter().map(ToString::to_string).collect(), hops_left: hops_left - 1 };
    let wait = ROUTE_WAIT_BASE + ROUTE_WAIT_PER_HOP * u32::from(hops_left);
    let answer = node.outbound.request(&next, &request, wait, crate::outbound::finish).await;
    match answer {
        Ok(NodeResponse::Routes { routes }) => group
            .iter()
            .map(|r| {
                let code = r.to_string();
                routes.iter().find(|a| a.recipient == code).cloned().unwrap_or_else(|| RouteAnswer {
                    recipient: code,
                    outcome: RouteOutcome::Unconfirmed {
                        path: Vec::new(),
                        next_hop: next.to_string(),
                        reason: "its answer left this recipient out".into(),
                    },
                })
            })
            .collect(),
        // A neighbour that predates the question answers it as a malformed request.
        Ok(NodeResponse::Error { message, .. }) => unconfirmed(format!("{next} could not answer: {message}")),
        Ok(other) => unconfirmed(format!("{next} answered {}", kind(&other))),
        Err(e) => unconfirmed(e.to_string()),
    }
}

fn kind(r: &NodeResponse) -> &'static str {
    match r {
        NodeResponse::HopReceipt { .. } => "a hop receipt",
        NodeResponse::Refused { .. } => "a refusal",
        NodeResponse::Accepted => "accepted",
        NodeResponse::ResumeFrom { .. } => "resume offsets",
        NodeResponse::NoticesTaken { .. } => "notices taken",
        NodeResponse::Crls { .. } => "CRLs",
        NodeResponse::Routes { .. } => "routes",
        NodeResponse::Cosigned { .. } => "a cosignature",
        NodeResponse::LogEntries { .. } => "log entries",
        NodeResponse::PathEvidence { .. } => "evidence about a path",
        NodeResponse::WitnessRefused { .. } => "a witness refusal",
        NodeResponse::CrlsWanted { .. } => "a request for CRLs",
        NodeResponse::Error { .. } => "an error",
    }
}

fn prepend(outcome: &mut RouteOutcome, own: &str) {
    let path = match outcome {
        RouteOutcome::Reachable { path }
        | RouteOutcome::NoRoute { path, .. }
        | RouteOutcome::Unconfirmed { path, .. } => path,
    };
    path.insert(0, own.to_owned());
}
