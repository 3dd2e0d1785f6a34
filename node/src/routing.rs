//! Routing by agency code, and who may hand us what.
//!
//! The rule: a document for this agency is delivered here; one for an agency within a direct
//! peer's subtree goes to that peer; one within a child's subtree goes to that child (the most
//! specific match wins); an agency below this one that no child leads to is unknown; anything
//! else goes up to the parent; with no parent (the national hub) and no match, the recipient
//! is unknown. An unknown recipient gets the sender a signed refusal. The
//! routing tree is configuration: below level 1 it follows the codes, and the hub is simply
//! the node whose children are the level-1 nodes, so the same rule runs the four-level network
//! of 2024 and the three-level one of 2025.

use std::collections::BTreeMap;

use pki::AgencyCode;

/// How a neighbour relates to this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    /// Our routing parent.
    Parent,
    /// A node below us.
    Child,
    /// A direct short-cut.
    Peer,
}

/// Recipients grouped by next hop, and those that cannot be routed with the reason.
pub type Plan = (BTreeMap<NextHop, Vec<AgencyCode>>, Vec<(AgencyCode, RouteError)>);

/// Where a recipient's copy goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NextHop {
    /// This node is the recipient's.
    Local,
    /// Forward to this neighbour.
    Neighbour(AgencyCode),
}

impl std::fmt::Display for NextHop {
    /// `local`, or the neighbour's agency code: how logs name a next hop.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NextHop::Local => f.write_str("local"),
            NextHop::Neighbour(code) => code.fmt(f),
        }
    }
}

/// The routing table of one node.
#[derive(Debug, Clone)]
pub struct Routes {
    own: AgencyCode,
    parent: Option<AgencyCode>,
    children: Vec<AgencyCode>,
    peers: Vec<AgencyCode>,
}

/// Why a recipient cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Nothing this node knows leads there.
    #[error("no route to {0}: it is not this agency, under a child or peer, and there is no parent to pass it to")]
    Unknown(AgencyCode),
    /// It would go back where it came from.
    #[error("routing {recipient} would send the document back to {from}, where it came from")]
    Loop {
        /// The recipient.
        recipient: AgencyCode,
        /// The neighbour it came from.
        from: AgencyCode,
    },
}

impl Routes {
    /// A table for `own` with the given neighbours.
    pub fn new(own: AgencyCode, parent: Option<AgencyCode>, children: Vec<AgencyCode>, peers: Vec<AgencyCode>) -> Self {
        Routes { own, parent, children, peers }
    }

    /// How `agency` relates to us, if it is a neighbour.
    pub fn relation(&self, agency: &AgencyCode) -> Option<Relation> {
        if self.parent.as_ref() == Some(agency) {
            Some(Relation::Parent)
        } else if self.children.contains(agency) {
            Some(Relation::Child)
        } else if self.peers.contains(agency) {
            Some(Relation::Peer)
        } else {
            None
        }
    }

    /// The most specific neighbour in `list` whose subtree holds `to`.
    fn deepest(list: &[AgencyCode], to: &AgencyCode) -> Option<AgencyCode> {
        list.iter().filter(|c| to.is_within(c)).max_by_key(|c| c.level()).copied()
    }

    /// The next hop toward `to`.
    pub fn next_hop(&self, to: &AgencyCode) -> Result<NextHop, RouteError> {
        if *to == self.own {
            return Ok(NextHop::Local);
        }
        if let Some(peer) = Self::deepest(&self.peers, to) {
            return Ok(NextHop::Neighbour(peer));
        }
        if let Some(child) = Self::deepest(&self.children, to) {
            return Ok(NextHop::Neighbour(child));
        }
        // Below us but under no child: nobody else would know it either.
        if to.is_under(&self.own) {
            return Err(RouteError::Unknown(*to));
        }
        match self.parent {
            Some(parent) => Ok(NextHop::Neighbour(parent)),
            None => Err(RouteError::Unknown(*to)),
        }
    }

    /// Groups recipients by next hop, so a document travels once per next hop. A recipient
    /// whose next hop is `came_from` is a loop and is refused.
    pub fn plan(&self, recipients: &[AgencyCode], came_from: Option<AgencyCode>) -> Plan {
        let mut plan: BTreeMap<NextHop, Vec<AgencyCode>> = BTreeMap::new();
        let mut refused = Vec::new();
        for r in recipients {
            match self.next_hop(r) {
                Ok(NextHop::Neighbour(n)) if Some(n) == came_from => {
                    refused.push((*r, RouteError::Loop { recipient: *r, from: n }))
                }
                Ok(hop) => plan.entry(hop).or_default().push(*r),
                Err(e) => refused.push((*r, e)),
            }
        }
        (plan, refused)
    }

    /// Whether neighbour `from` may hand us a document sent by `sender`: a child or peer only
    /// for documents from its own subtree (it cannot relay for its siblings), the parent for
    /// anything (it relays the rest of the country to us).
    pub fn may_relay(&self, from: &AgencyCode, sender: &AgencyCode) -> Result<Relation, String> {
        match self.relation(from) {
            Some(Relation::Parent) => Ok(Relation::Parent),
            Some(rel @ (Relation::Child | Relation::Peer)) => {
                if sender.is_within(from) {
                    Ok(rel)
                } else {
                    Err(format!("{from} may only send documents of its own subtree, not one from {sender}"))
                }
            }
            None => Err(format!("{from} is not a neighbour of {}", self.own)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> AgencyCode {
        s.parse().unwrap()
    }

    /// The 2024 demo: hub G22; Quảng Ninh H49 with districts 41 and 42; communes under them.
    fn tables() -> (Routes, Routes, Routes, Routes) {
        let hub = Routes::new(c("000.00.00.G22"), None, vec![c("000.00.00.H49"), c("000.00.00.H37")], vec![]);
        let province = Routes::new(
            c("000.00.00.H49"),
            Some(c("000.00.00.G22")),
            vec![c("000.00.41.H49"), c("000.00.42.H49")],
            vec![],
        );
        let district = Routes::new(
            c("000.00.41.H49"),
            Some(c("000.00.00.H49")),
            vec![c("000.01.41.H49"), c("000.02.41.H49")],
            vec![],
        );
        let commune = Routes::new(c("000.01.41.H49"), Some(c("000.00.41.H49")), vec![], vec![]);
        (hub, province, district, commune)
    }

    #[test]
    fn documents_go_down_to_the_child_else_up() {
        let (hub, province, district, commune) = tables();
        let thanh_son = c("000.01.42.H49");
        assert_eq!(commune.next_hop(&thanh_son), Ok(NextHop::Neighbour(c("000.00.41.H49"))));
        assert_eq!(district.next_hop(&thanh_son), Ok(NextHop::Neighbour(c("000.00.00.H49"))));
        assert_eq!(province.next_hop(&thanh_son), Ok(NextHop::Neighbour(c("000.00.42.H49"))));
        assert_eq!(province.next_hop(&c("000.00.00.G22")), Ok(NextHop::Neighbour(c("000.00.00.G22"))));
        assert_eq!(hub.next_hop(&c("000.00.00.G22")), Ok(NextHop::Local));
        assert_eq!(hub.next_hop(&thanh_son), Ok(NextHop::Neighbour(c("000.00.00.H49"))));
        assert_eq!(hub.next_hop(&c("000.05.01.H37")), Ok(NextHop::Neighbour(c("000.00.00.H37"))));
        assert_eq!(hub.next_hop(&c("000.00.00.H01")), Err(RouteError::Unknown(c("000.00.00.H01"))));
        // A commune under Tiên Yên that has no node is unknown at Tiên Yên, not sent up.
        assert_eq!(district.next_hop(&c("000.09.41.H49")), Err(RouteError::Unknown(c("000.09.41.H49"))));
    }

    #[test]
    fn several_recipients_travel_once_per_next_hop() {
        let (_, province, _, commune) = tables();
        let (plan, refused) = commune.plan(&[c("000.01.42.H49"), c("000.00.00.G22"), c("000.02.41.H49")], None);
        assert!(refused.is_empty());
        assert_eq!(plan.len(), 1, "all go up through Tiên Yên");
        let (plan, _) =
            province.plan(&[c("000.01.42.H49"), c("000.02.42.H49"), c("000.00.00.G22")], Some(c("000.00.41.H49")));
        assert_eq!(plan[&NextHop::Neighbour(c("000.00.42.H49"))].len(), 2);
        assert_eq!(plan[&NextHop::Neighbour(c("000.00.00.G22"))], vec![c("000.00.00.G22")]);
    }

    #[test]
    fn loops_and_unknown_recipients_are_refused() {
        let (_, province, _, _) = tables();
        // A document from the parent for an agency that is not below us would go back up.
        let (plan, refused) = province.plan(&[c("000.00.00.H37")], Some(c("000.00.00.G22")));
        assert!(plan.is_empty());
        assert!(matches!(refused[0].1, RouteError::Loop { .. }));
    }

    #[test]
    fn direct_peers_short_cut_and_the_2025_tree_works() {
        let province = Routes::new(
            c("000.00.00.H49"),
            Some(c("000.00.00.G22")),
            vec![c("000.00.61.H49"), c("000.00.62.H49")],
            vec![c("000.00.00.H37")],
        );
        assert_eq!(province.next_hop(&c("000.00.61.H49")), Ok(NextHop::Neighbour(c("000.00.61.H49"))));
        assert_eq!(province.next_hop(&c("000.00.05.H37")), Ok(NextHop::Neighbour(c("000.00.00.H37"))));
        assert_eq!(province.next_hop(&c("000.00.00.G22")), Ok(NextHop::Neighbour(c("000.00.00.G22"))));
    }

    #[test]
    fn who_may_relay_what() {
        let (_, province, district, _) = tables();
        // Tiên Yên relays its communes' documents up, not Ba Chẽ's.
        assert_eq!(province.may_relay(&c("000.00.41.H49"), &c("000.01.41.H49")), Ok(Relation::Child));
        assert!(province.may_relay(&c("000.00.41.H49"), &c("000.01.42.H49")).is_err());
        // The parent relays anything down.
        assert_eq!(district.may_relay(&c("000.00.00.H49"), &c("000.00.00.G22")), Ok(Relation::Parent));
        // A stranger relays nothing.
        assert!(district.may_relay(&c("000.00.42.H49"), &c("000.00.42.H49")).is_err());
    }
}
