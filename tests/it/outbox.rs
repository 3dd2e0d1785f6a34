//! The outbox under load: transfers waiting for one neighbour do not hold up the transfers to
//! the others.

use std::time::Duration;

use harness::network::{Database, NetOptions, TestNet, only, topology, wait_for};
use harness::silent_peer::SilentPeer;
use pki::AgencyCode;

const TIEN_YEN: &str = "000.00.41.H49";
const PHONG_DU: &str = "000.01.41.H49";
const HA_LAU: &str = "000.02.41.H49";

fn code(s: &str) -> AgencyCode {
    s.parse().unwrap()
}

on_both_backends!(a_hung_neighbour_does_not_hold_up_the_others);

/// Tiên Yên has 100 documents for Phong Dụ, whose node hangs (accepts and never answers):
/// they stay in flight, 16 attempts hanging and the rest waiting for a slot. A document for
/// Hà Lâu, submitted after them, still goes at once. (On SQLite a claim is a plain read that
/// returns the running transfers too; asking for only as many rows as there was room for
/// returned the oldest, running ones, and new work waited until the hung attempts timed out.)
async fn a_hung_neighbour_does_not_hold_up_the_others(database: Database) {
    harness::logging();
    let mut options = NetOptions { database, ..NetOptions::default() };
    // The hung attempts last the whole test.
    options.extra_config.push_str("\n[limits]\nrequest_timeout = \"120s\"\n");
    let mut net = TestNet::prepare(only(&topology("quang-ninh-2024"), &[TIEN_YEN, PHONG_DU, HA_LAU]), options);
    net.start_node(&code(TIEN_YEN)).await;
    net.start_node(&code(HA_LAU)).await;
    let _silent = SilentPeer::start(&mut net, &code(PHONG_DU));
    let clerk = net.clerk(TIEN_YEN).await;
    for i in 1..=100 {
        net.document(TIEN_YEN, &[PHONG_DU], i).submit(&clerk).await.unwrap();
    }
    let doc = net.document(TIEN_YEN, &[HA_LAU], 1_000);
    doc.submit(&clerk).await.unwrap();
    let ha_lau = net.node(HA_LAU);
    wait_for("the document for Hà Lâu delivered", Duration::from_secs(15), || async {
        ha_lau.store.document_by_id(&doc.id).await.unwrap().is_some()
    })
    .await;
    clerk.close().await;
    net.stop().await;
}
