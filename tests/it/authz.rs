//! The authorisation matrix (issue 10, item 5): every identity a node can meet × every
//! operation of both protocols, with the answer the node must give written in each cell, so
//! that no operation can be added without deciding who may call it.
//!
//! The node under test is the district Tiên Yên (000.00.41.H49): it has a parent (the
//! province), children (the communes Phong Dụ and Hà Lâu), a configured direct peer (the
//! province of Lạng Sơn), a sibling (the district Ba Chẽ) and strangers. It runs alone,
//! in-process, on SQLite and on PostgreSQL; every other party is played by a raw client
//! (`harness::probe`) presenting that party's genuine certificate — or a broken one — which
//! is all the node ever sees of it. Its neighbours do not run, so nothing the node forwards
//! comes back to change its database behind the test's back.
//!
//! Each cell is one request on a fresh connection. The node's database is read before and
//! after: a refused request must change nothing, a served one must have its effect (the
//! document or receipt stored, the status signed, the CRL kept), and a served read nothing.
//! The whole matrix is printed (✓ served, `H<alert>` refused in the TLS handshake, `0x..`
//! closed with that application code, F/B/U an error response, 02 a signed refusal), with
//! every disagreement and the database rows it changed.

mod snapshot;
mod table;
mod world;

use std::time::{Duration, Instant};

use harness::network::Database;

use table::{N, OPS, Op, TABLE, TIEN_YEN, code};
use world::{Cell, World};

fn pad(s: &str, width: usize) -> String {
    let len = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(len)))
}

/// The matrix as text: one line per identity, one column per operation; a cell that
/// disagrees with the table is marked ✗ and listed below with its evidence.
fn render(cells: &[Vec<Cell>], database: Database, elapsed: Duration, setup: Duration) -> String {
    const LABEL: usize = 32;
    const WIDTH: usize = 7;
    let mut out = format!(
        "authorisation matrix at Tiên Yên ({TIEN_YEN}) on {database:?}: {} identities × {} operations, {} cells in {:.1?} (setup {:.1?})\n",
        TABLE.len(),
        N,
        TABLE.len() * N,
        elapsed,
        setup,
    );
    let split = Op::ClerkConnect.column();
    out.push_str(&pad("", LABEL));
    out.push_str(&pad("| node protocol", WIDTH * split + 2));
    out.push_str("| clerk protocol\n");
    out.push_str(&pad("identity", LABEL));
    for op in OPS {
        if op.column() == 0 || op.column() == split {
            out.push_str("| ");
        }
        out.push_str(&pad(op.header(), WIDTH));
    }
    out.push('\n');
    for (row, (who, _)) in TABLE.iter().enumerate() {
        out.push_str(&pad(who.label(), LABEL));
        for op in OPS {
            if op.column() == 0 || op.column() == split {
                out.push_str("| ");
            }
            let cell = &cells[row][op.column()];
            let mark = if cell.problem.is_some() { "✗" } else { "" };
            out.push_str(&pad(&format!("{mark}{}", cell.seen.short()), WIDTH));
        }
        out.push('\n');
    }
    out.push_str(
        "columns: relay = a third party's document; 13!snd = a recall request signed by an agency that did not send the \
         document; 01!rcp = an arrival signed for another recipient; sub! = another agency's document; fetch!, track! = \
         a document only passing through\n\
         cells: ✓ served; H<n> refused in the TLS handshake with alert n; 0x10 not a neighbour, 0x11 clerk of another \
         agency, 0x13 certificate not for this protocol (application close codes); F/B/U error Forbidden/BadRequest/\
         Unavailable; 02 signed refusal; ? no decision; ✗ disagrees with the table\n",
    );
    let mut problems = 0;
    for (row, (who, _)) in TABLE.iter().enumerate() {
        for op in OPS {
            let cell = &cells[row][op.column()];
            if let Some(p) = &cell.problem {
                problems += 1;
                out.push_str(&format!("✗ {} × {} ({op:?}): {p}\n", who.label(), op.header()));
                for line in &cell.diff {
                    out.push_str(&format!("      {line}\n"));
                }
            }
        }
    }
    if problems == 0 {
        out.push_str("every cell agrees with the table\n");
    }
    out
}

on_both_backends!(authorisation_matrix);

/// Every identity × every operation, at one node, against [`TABLE`].
async fn authorisation_matrix(database: Database) {
    harness::logging();
    // Every operation has a column, and every column is where its operation says.
    for (i, op) in OPS.iter().enumerate() {
        assert_eq!(op.column(), i, "{op:?} is listed in the wrong column of OPS");
    }
    let started = Instant::now();
    let mut world = World::start(database).await;
    let setup = started.elapsed();
    let mut cells: Vec<Vec<Cell>> = Vec::with_capacity(TABLE.len());
    for row in 0..TABLE.len() {
        let mut line = Vec::with_capacity(N);
        for op in OPS {
            line.push(world.cell(row, op).await);
        }
        cells.push(line);
    }
    // Printed whatever the outcome: the test's output shows it on failure (and with
    // `--nocapture`), with the run time.
    println!("{}", render(&cells, database, started.elapsed(), setup));
    let disagreements = cells.iter().flatten().filter(|c| c.problem.is_some()).count();
    let World { mut net, data, .. } = world;
    data.close().await;
    // A short grace: the node's only in-flight work is forwarding to neighbours that do not
    // run, which a stop abandons safely (it is retried after a restart).
    if let Some(handle) = net.nodes.remove(&code(TIEN_YEN)) {
        handle.shutdown(Duration::from_millis(500)).await;
    }
    net.stop().await;
    assert_eq!(disagreements, 0, "cells disagree with the authorisation table: see the matrix printed above");
}
