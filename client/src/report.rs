//! The validation report for a verifier reading a terminal. The words are
//! `pki::document::report_text`'s, shared with the node's web verifier so both say the same;
//! times, those `pki` wrote into reasons and notes too, in the machine's zone ([`human`]).

use pki::document::report_text;
use pki::document::validation::ValidationReport;

pub(crate) use report_text::{remedy, verdict};

use crate::output::outln;
use crate::timefmt::human;

/// Prints the report.
pub(crate) fn print(report: &ValidationReport) -> anyhow::Result<()> {
    for line in report_text::lines(report, &human) {
        outln!("{line}")?;
    }
    Ok(())
}
