//! The plans SQLite makes of the queries whose cost must not grow with what the node holds
//! (PostgreSQL's are tested in `tests/it/storage.rs`, which starts a server).

use super::sqlite::Conn;
use super::{ATTACHMENTS, Arg, INBOX, OUTBOX_BY_HOP, SENT, SUPERSEDER, Store, WAITING, tlog};

/// The lookup every arrival makes reads an index, so its cost does not grow with the number of
/// documents the node holds (it read the whole table before migration 0006), and so do a page
/// of the log entries a child audits (it sorted all the child's entries on PostgreSQL before
/// migration 0008), a clerk's inbox and sent listings (which read and sorted every document
/// before migration 0009) and the waiting transfers of a sent document the listing shows
/// (which read every waiting transfer before migration 0010), each in the index's order,
/// sorting nothing; the health read-out's outbox per next hop (which read every transfer
/// ever queued before migration 0010; it sorts only the few next hops and groups only the
/// waiting transfers); and a document's attachments, each one's bytes found by its key. Planned on a connection like the writer's, which runs the first (the
/// planner's stability guarantee on: the plan cannot use the bound value).
#[tokio::test]
async fn the_lookups_and_listings_read_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.db");
    let store = Store::open(&format!("sqlite://{}", file.display()), dir.path()).await.unwrap();
    let conn = Conn::open(&file).unwrap();
    let via = vec![Arg::from("clerk"), Arg::from(5), Arg::from(11)];
    // (query, its arguments, a step the plan must have, whether it may sort)
    let lookups = [
        (SUPERSEDER, vec![Arg::from("QN-1/2026")], "SEARCH d USING INDEX documents_business_of", false),
        (tlog::DOCUMENTS_VIA, via, "USING INDEX tlog_leaves_via (via=? AND idx>?)", false),
        (INBOX, vec![Arg::from(20)], "SCAN i USING INDEX inbox_listing", false),
        (SENT, vec![Arg::from(20)], "SCAN d USING INDEX documents_sent", false),
        (WAITING, vec![Arg::from(vec![7u8; 32])], "SEARCH o USING INDEX outbox_document (document=?)", false),
        (OUTBOX_BY_HOP, vec![Arg::from(0)], "SEARCH o USING COVERING INDEX outbox_by_hop (next_hop>?)", true),
        (ATTACHMENTS, vec![Arg::from(5)], "SEARCH b USING INDEX sqlite_autoindex_inline_blobs_1 (sha256=?)", false),
    ];
    for (query, args, step, may_sort) in lookups {
        let plan: Vec<String> = conn
            .fetch_all(&format!("EXPLAIN QUERY PLAN {query}"), &args)
            .unwrap()
            .iter()
            .map(|row| row.try_get::<String, _>("detail").unwrap())
            .collect();
        assert!(plan.iter().any(|s| s.contains(step)), "{query}: {plan:?}");
        // A table read whole; `h` is the next hops' own recursive query, not a table.
        let reads_all = |s: &String| s.starts_with("SCAN") && !s.contains("INDEX") && s != "SCAN h";
        assert!(!plan.iter().any(reads_all), "{query}: {plan:?}");
        assert!(may_sort || !plan.iter().any(|s| s.contains("TEMP B-TREE")), "{query}: {plan:?}");
    }
    drop(conn);
    store.close().await;
}
